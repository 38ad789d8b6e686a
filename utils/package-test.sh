#!/bin/sh
# The package test of make deb (make package-test; as root, not in CI): the
# packages in dist/ install, staple and go away cleanly, on a system without
# valkey and on one with Debian's own packages (dist/debian-own/, from
# make deb-debian-own: Debian 12 has no valkey of its own).
#
#   1. over nothing: apt-get install ./dist/valkey-server_*.deb
#      ./dist/valkey-tools_*.deb; /usr/bin/valkey-server, run as the packaged
#      valkey user with the packaged /etc/valkey/valkey.conf (included) plus
#      TLS and tls-ocsp-stapling yes, against a responder on 127.0.0.1
#      answering with `openssl ocsp`, staples a good response that
#      openssl s_client -status shows, openssl ocsp and valkey-cli
#      --tls-ocsp-verify yes verify as good;
#      then apt-get purge leaves nothing behind;
#   2. over Debian's own: install Debian's 9.1.2-1, ours over it (the
#      configuration file becomes ours), the same stapling check, back to
#      Debian's (the README's way back), purge.
#
# The only script of ours that changes the system (packages, the valkey
# user); the PKI and the servers live in a directory under /tmp, on ports
# PACKAGE_TEST_PORT (31600) to +2, and every process it starts is stopped.
# Valkey packages installed before it runs are purged first. Ends with
# "N passed, M failed".
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
name=package-test
. "$top/utils/test-lib.sh"
base=${PACKAGE_TEST_PORT:-31600}
rport=$base          # the OCSP responder (the certificates' AIA URL)
vport=$((base + 1))  # valkey-server, plain
tport=$((base + 2))  # valkey-server, TLS
passed=0
failed=0
pids=""

ok() {
    echo "[ok]: $*"
    passed=$((passed + 1))
}
err() {
    echo "[err]: $*"
    failed=$((failed + 1))
}
# check DESCRIPTION COMMAND...: one test.
check() {
    what=$1
    shift
    if "$@" >> "$work/checks.log" 2>&1; then ok "$what"; else err "$what (log: $work/checks.log)"; fi
}

[ "$(id -u)" = 0 ] || { say "needs root (it installs and purges packages)"; exit 1; }
for d in valkey-server valkey-tools; do
    ls "$top"/dist/${d}_*.deb > /dev/null 2>&1 || { say "no dist/${d}_*.deb: run make deb first"; exit 1; }
    ls "$top"/dist/debian-own/${d}_*.deb > /dev/null 2>&1 || { say "no dist/debian-own/${d}_*.deb: run make deb-debian-own first"; exit 1; }
done
start=$(date +%s)
work=$(mktemp -d /tmp/valkey-package-test.XXXXXX)
# The server runs as the valkey user: it must reach its directory, data-*,
# which it owns (0700), through this one.
chmod 711 "$work"
policy=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null || true; done
    for p in $pids; do wait "$p" 2> /dev/null || true; done
    [ -z "$policy" ] || rm -f "$policy"
    # The logs of a failed run stay.
    if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "package-test: logs kept in $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The packages' maintainer scripts would start the service (port 6379, not
# ours); a policy-rc.d that forbids it, unless the system has one already.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# valkey package test (utils/package-test.sh): no service starts\nexit 101\n' > "$policy"
    chmod 755 "$policy"
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${db:Status-Status} ${Package}\n' 'valkey*' 2> /dev/null | awk '$1 == "installed" || $1 == "config-files" { print $2 }'; }
# shellcheck disable=SC2086 # one package a word
purge_all() { p=$(installed); [ -z "$p" ] || apt-get purge -y -q $p; }
apt_install() { apt-get install -y -q --allow-downgrades "$@"; }
version_is() { [ "$(dpkg-query -W -f='${Version}' "$1")" = "$2" ]; }
ours=$(dpkg-deb -f "$(ls "$top"/dist/valkey-server_*.deb | head -n 1)" Version)
debians=$(dpkg-deb -f "$(ls "$top"/dist/debian-own/valkey-server_*.deb | head -n 1)" Version)

left=$(installed)
if [ -n "$left" ]; then
    say "purging the valkey packages installed before the test: $(printf '%s\n' "$left" | tr '\n' ' ')"
    purge_all > "$work/purge-first.log" 2>&1
fi

# A CA, a delegated OCSP signer and a server certificate whose AIA OCSP URL
# is http://127.0.0.1:$rport/ (the tests' PKI generator).
"$top/tests/helpers/ocsp-pki.sh" "$work/pki" "$rport" > "$work/pki.log" 2>&1 || { cat "$work/pki.log"; summary 0 1; }
# The tests' responder: it listens on 127.0.0.1 only and has `openssl ocsp`
# answer each request from index.txt (whose own -port mode would listen on
# every address); it exits by itself should this script die.
tclsh "$top/tests/helpers/ocsp-responder.tcl" "$rport" "$work/pki" $$ > "$work/responder.log" 2>&1 &
responder=$!
pids=$responder
i=0
while [ $i -lt 100 ] && ! grep -q listening "$work/responder.log"; do sleep 0.1; i=$((i + 1)); done
grep -q listening "$work/responder.log" || { cat "$work/responder.log"; summary 0 1; }

# stapling_check LABEL: the installed server with the packaged configuration
# plus TLS and stapling staples a good response the clients verify.
stapling_check() {
    label=$1
    data=$work/data-$label
    mkdir -m 700 -p "$data"
    cp "$work/pki/server-chain.pem" "$work/pki/server.key" "$work/pki/ca-bundle.crt" "$data/"
    chown -R valkey: "$data"
    cat > "$data/valkey.conf" << EOF
# The packaged configuration, then what this test changes.
include /etc/valkey/valkey.conf
daemonize no
supervised no
pidfile ""
logfile $data/server.log
dir $data
bind 127.0.0.1
port $vport
tls-port $tport
tls-cert-file $data/server-chain.pem
tls-key-file $data/server.key
tls-ca-cert-file $data/ca-bundle.crt
tls-auth-clients no
tls-ocsp-stapling yes
EOF
    chown valkey: "$data/valkey.conf"
    setpriv --reuid=valkey --regid=valkey --init-groups /usr/bin/valkey-server "$data/valkey.conf" > "$data/stdout.log" 2>&1 &
    server=$!
    pids="$pids $server"
    status=""
    i=0
    while [ $i -lt 100 ] && kill -0 "$server" 2> /dev/null; do
        status=$(valkey-cli -h 127.0.0.1 -p "$vport" info tls 2> /dev/null | tr -d '\r' | sed -n 's/^tls_ocsp_status://p')
        [ "$status" = good ] && break
        sleep 0.1
        i=$((i + 1))
    done
    if [ "$status" = good ]; then ok "$label: /usr/bin/valkey-server with /etc/valkey/valkey.conf + TLS: INFO tls_ocsp_status:good"; else
        err "$label: the server reports tls_ocsp_status:${status:-nothing} (log: $data/server.log)"; tail -n 5 "$data/server.log" 2> /dev/null || true; fi
    sclient=$(openssl s_client -connect "127.0.0.1:$tport" -status -CAfile "$work/pki/ca.crt" < /dev/null 2>&1 || true)
    printf '%s\n' "$sclient" > "$data/s_client.log"
    # s_client shows the staple without judging it ...
    if printf '%s\n' "$sclient" | grep -q 'OCSP Response Status: successful' && printf '%s\n' "$sclient" | grep -q 'Cert Status: good'; then
        ok "$label: openssl s_client -status: a stapled response, Cert Status: good"
    else
        err "$label: openssl s_client -status saw no good staple (log: $data/s_client.log)"
    fi
    # ... openssl ocsp verifies the one the server keeps (its cache file) ...
    verified=$(openssl ocsp -respin "$data/ocsp-response.der" -issuer "$work/pki/ca.crt" \
        -cert "$work/pki/server.crt" -CAfile "$work/pki/ca.crt" 2>&1 || true)
    printf '%s\n' "$verified" > "$data/ocsp-verify.log"
    if printf '%s\n' "$verified" | grep -q '^Response verify OK' && printf '%s\n' "$verified" | grep -q 'server.crt: good'; then
        ok "$label: openssl ocsp -respin (the server's cached response): Response verify OK, good"
    else
        err "$label: openssl ocsp could not verify the server's response as good (log: $data/ocsp-verify.log)"
    fi
    # ... and valkey-cli checks the staple itself: signature, certificate, status.
    pong=$(valkey-cli -h 127.0.0.1 -p "$tport" --tls --cacert "$work/pki/ca.crt" --tls-ocsp-verify yes ping 2>&1 || true)
    if [ "$pong" = PONG ]; then ok "$label: valkey-cli --tls-ocsp-verify yes: PONG"; else err "$label: valkey-cli --tls-ocsp-verify yes: $pong"; fi
    valkey-cli -h 127.0.0.1 -p "$vport" shutdown nosave > /dev/null 2>&1 || kill "$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
    pids=$responder
}

# purge_check LABEL: apt-get purge removes every package and file.
purge_check() {
    check "$1: apt-get purge valkey-server valkey-tools" apt-get purge -y -q valkey-server valkey-tools
    left=$(installed)
    files=$(ls /usr/bin/valkey-* /etc/valkey 2> /dev/null || true)
    if [ -z "$left" ] && [ -z "$files" ]; then ok "$1: purged: dpkg -l lists no valkey package, no valkey files in /usr/bin or /etc/valkey"; else
        err "$1: left after the purge: packages: ${left:-none}; files: ${files:-none}"; fi
}

say "1. over nothing: $ours"
check "nothing: apt-get install ./dist/valkey-server_*.deb ./dist/valkey-tools_*.deb" \
    apt_install "$top"/dist/valkey-server_*.deb "$top"/dist/valkey-tools_*.deb
check "nothing: valkey-server and valkey-tools $ours installed" sh -c \
    "[ \"\$(dpkg-query -W -f='\${Version}' valkey-server)\" = '$ours' ] && [ \"\$(dpkg-query -W -f='\${Version}' valkey-tools)\" = '$ours' ]"
check "nothing: the valkey user exists (the packaged sysusers file)" id valkey
check "nothing: /etc/valkey/valkey.conf documents tls-ocsp-stapling" grep -q '^# *tls-ocsp-stapling ' /etc/valkey/valkey.conf
stapling_check nothing
purge_check nothing

say "2. over Debian's own: $debians, then $ours, then back"
check "debian: apt-get install Debian's own $debians" \
    apt_install "$top"/dist/debian-own/valkey-server_*.deb "$top"/dist/debian-own/valkey-tools_*.deb
check "debian: Debian's /etc/valkey/valkey.conf knows no tls-ocsp" sh -c '! grep -q tls-ocsp /etc/valkey/valkey.conf'
check "debian: apt-get install ./dist/valkey-server_*.deb ./dist/valkey-tools_*.deb over it" \
    apt_install "$top"/dist/valkey-server_*.deb "$top"/dist/valkey-tools_*.deb
check "debian: $ours replaced $debians" version_is valkey-server "$ours"
check "debian: /etc/valkey/valkey.conf is ours now (documents tls-ocsp-stapling)" grep -q '^# *tls-ocsp-stapling ' /etc/valkey/valkey.conf
stapling_check debian
check "debian: back to Debian's $debians (apt-get install --allow-downgrades of its .debs)" \
    apt_install "$top"/dist/debian-own/valkey-server_*.deb "$top"/dist/debian-own/valkey-tools_*.deb
check "debian: $debians is installed again" version_is valkey-server "$debians"
purge_check debian

say "$(($(date +%s) - start)) s"
summary "$passed" "$failed"
