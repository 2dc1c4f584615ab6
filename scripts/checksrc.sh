#!/bin/bash
# scripts/checksrc.sh: the rules of ../shared/STYLE.md a grep can check.
#   - no sprintf/vsprintf/strcpy/strcat/strncpy/strtok/atoi/atol/gets in src/
#   - OpenSSL only under src/tls/, nghttp2 only under src/h2/
# Prints each violation as file:line: text and exits 1 when there is any.
set -u
cd "$(dirname "$0")/.."
bad=0
report() { # report WHAT GREP-OUTPUT
    [[ -z $2 ]] && return
    printf '%s\n' "$2" | sed "s/\$/   <- $1/"
    bad=1
}
report "banned function (STYLE.md)" "$(grep -rnE \
    '(^|[^a-z_])(v?sprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets)[[:space:]]*\(' \
    --include='*.c' --include='*.h' src | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|/\*|//)')"
report "OpenSSL outside src/tls" "$(grep -rn '#include <openssl/' src --include='*.[ch]' | grep -v '^src/tls/')"
report "nghttp2 outside src/h2" "$(grep -rn '#include <nghttp2/' src --include='*.[ch]' | grep -v '^src/h2/')"
if [[ $bad -eq 0 ]]; then
    echo "checksrc: clean"
fi
exit $bad
