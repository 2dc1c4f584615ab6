#!/usr/bin/env bash
# Installs the Debian packages Gatehouse needs to build, test and benchmark,
# and only those that are missing. Not root: prints the command instead.
set -euo pipefail

# What each command needs: build for `make run`, + test for `make test`,
# + bench for `make bench`.  scripts/deps.sh [build|test|bench|fuzz]
BUILD_PKGS=(
    build-essential clang pkg-config libyaml-dev libssl-dev libcrypt-dev
    libc-ares-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev
    libseccomp-dev
)
TEST_PKGS=(
    libcmocka-dev libclang-rt-14-dev
    curl openssl python3 python3-pytest python3-websockets python3-h2
    nghttp2-client procps iproute2 util-linux
    apache2-utils chromium
)
BENCH_PKGS=(
    nginx haproxy wrk util-linux squid tinyproxy
)

case "${1:-test}" in
    build) PKGS=("${BUILD_PKGS[@]}") ;;
    test | fuzz) PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    bench) PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    *) echo "usage: $0 [build|test|bench|fuzz]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "gatehouse: missing packages; run as root:" >&2
    echo "  apt-get update && ${cmd[*]}" >&2
    exit 1
fi
echo "gatehouse: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${cmd[@]}"
# A package such as nginx starts its service on install; the benchmarks and
# tests start their own instances on free ports, so stop the system ones.
for svc in nginx haproxy squid tinyproxy; do
    if printf '%s\n' "${missing[@]}" | grep -qx "$svc"; then
        (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || \
            (command -v service >/dev/null && service "$svc" stop 2>/dev/null) || true
    fi
done
