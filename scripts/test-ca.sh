#!/usr/bin/env bash
# A throw-away certificate authority for tests and examples: never use its
# keys for anything real. Everything is ECDSA P-256 and written into DIR.
#
#   scripts/test-ca.sh init DIR             root CA + intermediate + localhost
#   scripts/test-ca.sh leaf DIR NAME SAN... a server certificate NAME.pem
#                                           (leaf then intermediate) and
#                                           NAME.key; SANs are DNS names or
#                                           IP addresses
#   scripts/test-ca.sh client DIR NAME      a client certificate (mTLS)
#   scripts/test-ca.sh ocsp DIR NAME        NAME.ocsp: a DER OCSP response
#                                           saying NAME.pem is good (7 days)
#   scripts/test-ca.sh rsa DIR NAME SAN...  like leaf, with an RSA 2048 key
#
# init writes: ca.pem (the root to trust), ca.key, int.pem, int.key,
# localhost.pem/.key (SANs localhost, 127.0.0.1, ::1). Certificates are
# valid from yesterday for a year, and name an OCSP responder and a CRL on
# 127.0.0.1:9 that nobody answers (scanners such as testssl.sh want them).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
mkdir -p "$dir"
cd "$dir"
umask 077

days=365
# -not_before needs OpenSSL 3.4; backdate through the CA database instead:
# "openssl ca" takes -startdate
start=$(date -u -d yesterday +%Y%m%d%H%M%SZ)

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# ca_conf NAME: an "openssl ca" setup signing with NAME.pem/NAME.key.
ca_conf() {
    local n=$1
    mkdir -p "db-$n"
    [[ -f db-$n/index.txt ]] || : >"db-$n/index.txt"
    [[ -f db-$n/serial ]] || openssl rand -hex 16 >"db-$n/serial"
    cat >"db-$n/ca.cnf" <<EOF
[ ca ]
default_ca = this
[ this ]
database = db-$n/index.txt
serial = db-$n/serial
new_certs_dir = db-$n
certificate = $n.pem
private_key = $n.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[ anything ]
commonName = supplied
[ v3_int ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_server ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/ocsp
crlDistributionPoints = URI:http://127.0.0.1:9/int.crl
[ v3_client ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_ocsp ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
EOF
}

# sign CA_NAME EXT CSR OUT
sign() {
    openssl ca -batch -notext -config "db-$1/ca.cnf" -extensions "$2" \
        -startdate "$start" -days "$days" -in "$3" -out "$4" 2>/dev/null
}

# san_list SAN...: "DNS:a,IP:1.2.3.4"
san_list() {
    local out="" s
    for s in "$@"; do
        if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then out+="${out:+,}IP:$s"; else out+="${out:+,}DNS:$s"; fi
    done
    echo "$out"
}

# issue NAME KEYTYPE EXT SAN...: NAME.key, NAME.pem (leaf + intermediate)
issue() {
    local name=$1 kt=$2 ext=$3
    shift 3
    [[ -f int.pem ]] || { echo "test-ca: run init first" >&2; exit 1; }
    if [[ $kt == rsa ]]; then rsa_key "$name.key"; else ec_key "$name.key"; fi
    local args=(-new -key "$name.key" -subj "/CN=$name" -out "$name.csr")
    [[ $# -gt 0 ]] && args+=(-addext "subjectAltName=$(san_list "$@")")
    openssl req "${args[@]}" 2>/dev/null
    ca_conf int
    sign int "$ext" "$name.csr" "$name.crt"
    cat "$name.crt" int.pem >"$name.pem"
    rm -f "$name.csr"
    chmod 644 "$name.pem" "$name.crt"
}

case $cmd in
init)
    ec_key ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=Gatehouse Test Root CA" \
        -days $((days + 1)) -sha256 -out ca.pem \
        -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    ec_key int.key
    openssl req -new -key int.key -subj "/CN=Gatehouse Test Intermediate CA" -out int.csr 2>/dev/null
    ca_conf ca
    sign ca v3_int int.csr int.pem
    rm -f int.csr
    issue localhost ec v3_server localhost 127.0.0.1 ::1
    chmod 644 ca.pem int.pem
    ;;
leaf) name=${3:?NAME}; shift 3; issue "$name" ec v3_server "$@" ;;
rsa) name=${3:?NAME}; shift 3; issue "$name" rsa v3_server "$@" ;;
client) issue "${3:?NAME}" ec v3_client ;;
ocsp)
    name=${3:?NAME}
    [[ -f ocsp-signer.pem ]] || issue ocsp-signer ec v3_ocsp
    ca_conf int
    openssl ocsp -index db-int/index.txt -rsigner ocsp-signer.crt -rkey ocsp-signer.key \
        -CA int.pem -issuer int.pem -cert "$name.crt" -ndays 7 -no_nonce \
        -respout "$name.ocsp" >/dev/null 2>&1
    chmod 644 "$name.ocsp"
    ;;
*) echo "test-ca: unknown command '$cmd'" >&2; exit 2 ;;
esac
