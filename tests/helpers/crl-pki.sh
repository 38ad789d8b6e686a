#!/bin/sh
# Make a throw-away CA with real CRLs (openssl ca -gencrl) for the
# tls-crl-file tests.
#
#   tests/helpers/crl-pki.sh DIR [EXTRA_CA_FILE]
#
# DIR gets (RSA keys):
#   ca.{crt,key}             the CA (keyUsage keyCertSign, cRLSign)
#   rogue-ca.{crt,key}       an unrelated CA with the same subject name
#   server.{crt,key}         server certificate (127.0.0.1), server-chain.pem
#   server2.{crt,key}        a second one, server2-chain.pem
#   alice, bob, carol.{crt,key}  client certificates
#   ca-bundle.crt            CA (+ EXTRA_CA_FILE), for tls-ca-cert-file
#   crl-none.pem             a CRL listing nothing
#   crl-alice.pem            alice revoked; crl-alice.der the same in DER
#   crl-alice-bob.pem        alice and bob revoked
#   crl-alice-bob-server2.pem  and server2
#   crl-two.pem              crl-none.pem and crl-alice.pem in one file
#   crl-rogue.pem            listing alice, bob and carol, signed by rogue-ca
#   crl-garbage.pem          not a CRL; crl-truncated.pem: crl-alice.pem cut short
#   crl-backwards.pem        alice revoked, nextUpdate before thisUpdate
#   crl-older.pem            listing nothing, thisUpdate a day before crl-none.pem's
#   server3, server4.{crt,key}  two more server certificates (made after all of
#                            the above, whose serials and CRLs they leave as
#                            they are), server3-chain.pem, server4-chain.pem
#   crl-alice-bob-server2-server3.pem  crl-alice-bob-server2.pem's entries and server3
#   db-alice/ca.cnf          openssl ca's configuration for the CA with alice
#                            alone revoked (a CRL of it when a test needs one:
#                            openssl ca -config db-alice/ca.cnf -gencrl ...)
set -eu

dir=$1
extra_ca=${2:-}
helpers=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
cd "$dir"

cp "$helpers/crl-ext.cnf" ext.cnf

# ca.cnf NAME: openssl ca's database for the CA NAME.
ca_cnf() {
    mkdir -p "db-$1"
    : > "db-$1/index.txt"
    echo 1000 > "db-$1/crlnumber"
    cat > "db-$1/ca.cnf" << EOF2
[ca]
default_ca = ca_default
[ca_default]
database = $PWD/db-$1/index.txt
crlnumber = $PWD/db-$1/crlnumber
certificate = $PWD/$1.crt
private_key = $PWD/$1.key
default_md = sha256
default_crl_days = 7
EOF2
}

self_signed() {
    openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -x509 -new -key "$1.key" -subj "/O=Valkey CRL Test/CN=$2" -days 30 -sha256 \
        -config ext.cnf -extensions ca -out "$1.crt"
    ca_cnf "$1"
}

serial=8192
issue() {
    openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -new -key "$1.key" -subj "/O=Valkey CRL Test/CN=$2" -out "$1.csr"
    serial=$((serial + 1))
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "$serial" -days 30 \
        -sha256 -extfile ext.cnf -extensions "$3" -out "$1.crt" 2> /dev/null
    rm -f "$1.csr"
}

revoke() { openssl ca -config "db-$1/ca.cnf" -revoke "$2" -batch 2> /dev/null; }
gencrl() { openssl ca -config "db-$1/ca.cnf" -gencrl -out "$2" -batch 2> /dev/null; }

self_signed ca "CRL Test CA"
self_signed rogue-ca "CRL Test CA"
issue server "Server" server
issue server2 "Server Two" server
issue alice "Alice" client
issue bob "Bob" client
issue carol "Carol" client
for name in server server2; do cat "$name.crt" ca.crt > "$name-chain.pem"; done
cat ca.crt ${extra_ca:+"$extra_ca"} > ca-bundle.crt

gencrl ca crl-none.pem
# A CRL from before alice was revoked (-crl_lastupdate needs OpenSSL 3.0;
# no file where the option is missing).
openssl ca -config db-ca/ca.cnf -gencrl -crl_lastupdate "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" \
    -out crl-older.pem -batch 2> /dev/null || rm -f crl-older.pem
revoke ca alice.crt
gencrl ca crl-alice.pem
openssl crl -in crl-alice.pem -outform DER -out crl-alice.der
revoke ca bob.crt
gencrl ca crl-alice-bob.pem
revoke ca server2.crt
gencrl ca crl-alice-bob-server2.pem
cat crl-none.pem crl-alice.pem > crl-two.pem

for name in alice bob carol; do revoke rogue-ca "$name.crt"; done
gencrl rogue-ca crl-rogue.pem

echo "this is not a certificate revocation list" > crl-garbage.pem
head -c "$(($(wc -c < crl-alice.pem) / 2))" crl-alice.pem > crl-truncated.pem

# nextUpdate before thisUpdate: -crl_lastupdate needs OpenSSL 3.0; skipped
# (no file) where the option is missing.
openssl ca -config db-ca/ca.cnf -gencrl -crl_lastupdate 20300101000000Z -crl_nextupdate 20290101000000Z \
    -out crl-backwards.pem -batch 2> /dev/null || rm -f crl-backwards.pem

# The peers of tests/unit/tls-crl-links.tcl: last, so that every certificate
# and CRL above stays what it was.
issue server3 "Server Three" server
issue server4 "Server Four" server
for name in server3 server4; do cat "$name.crt" ca.crt > "$name-chain.pem"; done
revoke ca server3.crt
gencrl ca crl-alice-bob-server2-server3.pem

# tests/unit/tls-crl-urls.tcl: a database of the same CA listing alice alone,
# for the CRLs that test makes when it needs them (short-lived ones, with
# -crlsec); last too, and it issues and revokes nothing.
mkdir -p db-alice
grep 'CN=Alice' db-ca/index.txt > db-alice/index.txt
echo 2000 > db-alice/crlnumber
sed 's#/db-ca/#/db-alice/#' db-ca/ca.cnf > db-alice/ca.cnf
