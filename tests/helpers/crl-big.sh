#!/bin/sh
# A throw-away CA with one big CRL (openssl ca -gencrl over an index.txt
# written directly, so 100,000 entries take seconds, not an openssl ca
# -revoke each), for the CRL benchmarks (bench/crl-handshakes,
# bench/crl-load-latency).
#
#   ENTRIES=100000 DIR=/tmp/pki tests/helpers/crl-big.sh
#
# DIR (default ./crl-big) gets (RSA-2048 keys):
#   ca.{crt,key}, ca-bundle.crt   the CA (keyUsage keyCertSign, cRLSign)
#   server.{crt,key}, server-chain.pem  server certificate (127.0.0.1)
#   client.{crt,key}              a client certificate the CRL does NOT list
#   revoked.{crt,key}             a client certificate the CRL lists
#   crl.pem                       the CRL: ENTRIES revoked serials (default
#                                 100000), revoked's among them, random
#                                 64-bit serials for the rest
#   crl.serials                   the listed serials (hex, one a line)
# and prints one line: "crl-big: ENTRIES entries, BYTES bytes of PEM".
# The client certificate's serial is checked to be absent from the CRL and
# revoked's to be present (openssl crl -text), else the script fails.
set -eu

entries=${ENTRIES:-100000}
dir=${DIR:-crl-big}
helpers=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
cd "$dir"

cp "$helpers/crl-ext.cnf" ext.cnf

openssl genrsa -out ca.key 2048 2> /dev/null
openssl req -x509 -new -key ca.key -subj "/O=Valkey CRL Bench/CN=CRL Bench CA" -days 30 -sha256 \
    -config ext.cnf -extensions ca -out ca.crt
cp ca.crt ca-bundle.crt

# issue NAME CN EXTENSIONS SERIAL(hex)
issue() {
    openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -new -key "$1.key" -subj "/O=Valkey CRL Bench/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$4" -days 30 \
        -sha256 -extfile ext.cnf -extensions "$3" -out "$1.crt" 2> /dev/null
    rm -f "$1.csr"
}
# Serials below 2^32: the random ones below are 64-bit with the top bit set,
# so they cannot collide with these.
issue server "Server" server 1001
issue client "Client" client 1002
issue revoked "Revoked Client" client 1003
cat server.crt ca.crt > server-chain.pem

# index.txt: status, expiry, revocation date, serial, file, subject (tabs).
# The serials: revoked's, then ENTRIES-1 distinct random ones.
/usr/bin/python3 - "$entries" << 'EOF'
import secrets, sys, time
n = int(sys.argv[1])
serials = {"1003"}
while len(serials) < n:
    serials.add("%016X" % (secrets.randbits(64) | (1 << 63)))
exp = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 30 * 86400))
rev = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() - 3600))
with open("index.txt", "w") as idx, open("crl.serials", "w") as out:
    for i, s in enumerate(sorted(serials)):
        idx.write("R\t%s\t%s\t%s\tunknown\t/O=Valkey CRL Bench/CN=revoked %d\n" % (exp, rev, s, i))
        out.write(s + "\n")
EOF
echo "unique_subject = no" > index.txt.attr
echo 1000 > crlnumber
cat > ca.cnf << EOF
[ca]
default_ca = ca_default
[ca_default]
database = $PWD/index.txt
crlnumber = $PWD/crlnumber
certificate = $PWD/ca.crt
private_key = $PWD/ca.key
default_md = sha256
default_crl_days = 7
EOF
openssl ca -config ca.cnf -gencrl -out crl.pem -batch 2> /dev/null

# Sanity: the CRL lists ENTRIES serials, revoked's among them, not client's.
openssl crl -in crl.pem -noout -text > crl.txt
listed=$(grep -c 'Serial Number:' crl.txt)
[ "$listed" -eq "$entries" ] || { echo "crl-big: the CRL lists $listed serials, not $entries" >&2; exit 1; }
grep -q 'Serial Number: 1003$' crl.txt || { echo "crl-big: revoked.crt is not listed" >&2; exit 1; }
if grep -q 'Serial Number: 1002$' crl.txt; then echo "crl-big: client.crt is listed" >&2; exit 1; fi
rm -f crl.txt
echo "crl-big: $entries entries, $(wc -c < crl.pem) bytes of PEM"
