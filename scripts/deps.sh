#!/usr/bin/env bash
# Installs the Debian packages Gatehouse needs to build, test and benchmark,
# and only those that are missing. Not root: prints the command instead.
set -euo pipefail

# What each command needs: build for `make run`, + test for `make test`,
# + bench for `make bench`.  scripts/deps.sh [build|test|bench|fuzz]
BUILD_PKGS=(
    build-essential clang pkg-config libyaml-dev libssl-dev libcrypt-dev
    libc-ares-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev
    libseccomp-dev libhiredis-dev
)
TEST_PKGS=(
    libcmocka-dev libclang-rt-14-dev
    curl openssl python3 python3-pytest python3-websockets python3-h2
    nghttp2-client procps iproute2 util-linux
    chromium python3-prometheus-client testssl.sh libnss3-tools
    redis-server haproxy apache2-utils
    tomcat10 openjdk-17-jdk-headless python3-brotli python3-zstandard strace
    python3-grpcio
)
BENCH_PKGS=(
    nginx haproxy varnish wrk util-linux gnuplot-nox nghttp2-client squid tinyproxy
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
# A package such as nginx (or tomcat10) starts its service on install; the
# benchmarks and tests start their own instances on free ports, so stop the
# system ones (and keep tomcat10 from starting at boot).
for svc in nginx haproxy redis-server varnish tomcat10 squid tinyproxy; do
    if printf '%s\n' "${missing[@]}" | grep -qx "$svc"; then
        (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || \
            (command -v service >/dev/null && service "$svc" stop 2>/dev/null) || true
        if [ "$svc" = tomcat10 ] && command -v systemctl >/dev/null; then
            systemctl disable tomcat10 2>/dev/null || true
        fi
    fi
done
