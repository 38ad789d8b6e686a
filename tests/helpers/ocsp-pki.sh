#!/bin/sh
# Make a throw-away PKI for OCSP stapling tests and demos.
#
#   tests/helpers/ocsp-pki.sh DIR PORT [EXTRA_CA_FILE]
#
# DIR gets (RSA keys: redis-py verifies OCSP signatures with RSA only):
#   ca.{crt,key}               the CA
#   signer.{crt,key}           delegated OCSP signer (EKU OCSPSigning), from the CA
#   nosign.{crt,key}           a CA-issued certificate WITHOUT OCSPSigning
#   rogue-ca.{crt,key}         an unrelated self-signed CA
#   rogue.{crt,key}            an OCSP signer issued by the rogue CA
#   server.{crt,key}           server certificate, AIA OCSP URL http://127.0.0.1:PORT/
#   server2.{crt,key}          a second server certificate with the same AIA URL
#   server-unknown.{crt,key}   AIA URL, but not in the responder's index: "unknown"
#   server-noaia.{crt,key}     no AIA extension at all
#   other.{crt,key}            another CA-issued certificate, to get responses for
#   client.{crt,key}           client certificate
#   <name>-chain.pem           leaf + CA, for tls-cert-file (clients want the issuer)
#   ca-bundle.crt              CA (+ EXTRA_CA_FILE), for tls-ca-cert-file
#   index.txt                  the responder's database: every certificate but
#                              server-unknown is valid (V)
set -eu

dir=$1
port=$2
extra_ca=${3:-}
mkdir -p "$dir"
cd "$dir"

cat > ext.cnf << EOF
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[signer]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored

[plain]
basicConstraints = CA:false
keyUsage = critical, digitalSignature

[server_aia]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$port/

[server_noaia]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost

[client]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF

serial=4096
# issue NAME CN EXTENSION ISSUER
issue() {
    openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -new -key "$1.key" -subj "/O=Valkey OCSP Test/CN=$2" -out "$1.csr"
    serial=$((serial + 1))
    openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -set_serial "$serial" -days 30 \
        -sha256 -extfile ext.cnf -extensions "$3" -out "$1.crt" 2> /dev/null
    rm -f "$1.csr"
}
# self_signed NAME CN
self_signed() {
    openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -x509 -new -key "$1.key" -subj "/O=Valkey OCSP Test/CN=$2" -days 30 -sha256 \
        -config ext.cnf -extensions ca -out "$1.crt"
}

self_signed ca "OCSP Test CA"
self_signed rogue-ca "Rogue CA"
issue signer "OCSP Signer" signer ca
issue nosign "Not an OCSP signer" plain ca
issue rogue "Rogue OCSP Signer" signer rogue-ca
issue server "Server" server_aia ca
issue server2 "Server Two" server_aia ca
issue server-unknown "Server Unknown" server_aia ca
issue server-noaia "Server without AIA" server_noaia ca
issue other "Other" server_noaia ca
issue client "Client" client ca

for name in server server2 server-unknown server-noaia; do
    cat "$name.crt" ca.crt > "$name-chain.pem"
done
cat ca.crt ${extra_ca:+"$extra_ca"} > ca-bundle.crt

# index.txt: status, expiry, revocation, serial (hex), file, subject.
: > index.txt
for name in signer nosign server server2 server-noaia other client; do
    serial_hex=$(openssl x509 -in "$name.crt" -noout -serial | cut -d= -f2)
    expiry=$(date -u -d "$(openssl x509 -in "$name.crt" -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
    subject=$(openssl x509 -in "$name.crt" -noout -subject -nameopt compat | sed 's/^subject=//')
    printf 'V\t%s\t\t%s\tunknown\t%s\n' "$expiry" "$serial_hex" "$subject" >> index.txt
done
echo "unique_subject = no" > index.txt.attr
