#!/usr/bin/env bash
# Runs the unit tests (cmocka, ASan+UBSan build) and the integration tests
# (pytest with Debian's python3 against the real binary), then prints one
# plain summary line: "N passed, N failed".
#   scripts/test.sh [unit|integration|cluster|all] [pytest args...]
# "cluster" runs tests/cluster (network namespaces, HAProxy, Redis; root
# only, else skipped) after the integration tests.
set -uo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
shift || true
passed=0
failed=0
skipped=0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_unit() {
    local bin out rc p f
    for bin in $(find build/debug/tests/unit -type f -perm -u+x -name '*_test' 2>/dev/null | sort); do
        out=$("$bin" 2>&1)
        rc=$?
        printf '%s\n' "$out" | grep -E '^\[  (FAILED|PASSED)  \]|^\[  ERROR   \]|ERROR: AddressSanitizer|runtime error' || true
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "unit: $bin exited $rc"
            printf '%s\n' "$out" | tail -30
            f=1
        fi
        echo "unit: $(basename "$bin"): $p passed, $f failed"
        passed=$((passed + p))
        failed=$((failed + f))
    done
}

run_integration() {
    run_pytest tests/integration build/pytest.xml "$@"
}

# The cluster test beds (tests/cluster/bed.sh): about a minute.
run_cluster() {
    run_pytest tests/cluster build/pytest-cluster.xml "$@"
}

run_pytest() {
    local dir=$1 xml=$2
    shift 2
    rm -f "$xml"
    /usr/bin/python3 -m pytest "$dir" -q -p no:cacheprovider \
        --junitxml="$xml" "$@"
    local rc=$?
    if [ -f "$xml" ]; then
        read -r t f e s < <(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == "testsuite" else list(r)
tot = lambda k: sum(int(s.get(k, 0)) for s in suites)
print(tot("tests"), tot("failures"), tot("errors"), tot("skipped"))
PY
)
        passed=$((passed + t - f - e - s))
        failed=$((failed + f + e))
        skipped=$((skipped + s))
    elif [ "$rc" -ne 5 ]; then
        echo "$dir: pytest exited $rc without a report"
        failed=$((failed + 1))
    fi
}

# Each libFuzzer target for FUZZ_SECONDS (CI sets it): one test each.
run_fuzz() {
    local secs=${FUZZ_SECONDS:-}
    [ -n "$secs" ] || return 0
    local bin name
    for bin in build/fuzz/fuzz_*; do
        [ -x "$bin" ] || continue
        name=${bin##*/}
        if FUZZ_NO_MERGE=1 scripts/fuzz.sh "$secs" "$name" > "build/$name.log" 2>&1; then
            echo "fuzz: $name: ${secs}s clean"
            passed=$((passed + 1))
        else
            echo "fuzz: $name: FAILED (build/$name.log)"
            tail -40 "build/$name.log"
            failed=$((failed + 1))
        fi
    done
}

case "$what" in
    unit) run_unit ;;
    integration) run_integration "$@" ;;
    cluster) run_cluster "$@" ;;
    fuzz) run_fuzz ;;
    all) run_unit; run_fuzz; run_integration "$@"; run_cluster ;;
    *) echo "usage: $0 [unit|integration|cluster|all]" >&2; exit 2 ;;
esac

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
