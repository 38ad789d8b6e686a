#!/bin/sh
# OCSP stapling end to end, on a throw-away PKI in build/demo/:
#
#   utils/demo.sh                (make demo) show a stapled response, then stop
#   utils/demo.sh --foreground   (make run)  keep the server up until Ctrl-C
#   utils/demo.sh --bin DIR      valkey-server and valkey-cli from DIR instead of
#                                build/valkey/src (utils/install-test.sh: PREFIX/bin)
#   utils/demo.sh --dir DIR      the PKI, logs and data in DIR instead of build/demo
#                                (emptied first; refused unless empty or a demo's)
#
# Starts an OCSP responder (tests/helpers/ocsp-responder.tcl) and valkey-server
# with the example valkey.conf, both on 127.0.0.1 and free ports, waits until
# the server holds a verified response, then shows what the server reports and
# what clients receive. Everything it starts is stopped on the way out, also
# on failure or Ctrl-C. Exits non-zero unless clients saw a "good" staple.
# shellcheck disable=SC2317 # stop and cleanup run from traps
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/build/demo
bin=$top/build/valkey/src
py=/usr/bin/python3
wait_seconds=30

usage() {
    echo "usage: $0 [--foreground] [--bin DIR] [--dir DIR]" >&2
    exit 2
}
foreground=no
while [ $# -gt 0 ]; do
    case "$1" in
    --foreground) foreground=yes ;;
    --bin)
        [ $# -ge 2 ] || usage
        bin=$(cd "$2" 2> /dev/null && pwd) || { echo "demo: no such directory: $2" >&2; exit 2; }
        shift ;;
    --dir)
        [ $# -ge 2 ] || usage
        case "$2" in /*) demo=$2 ;; *) demo=$(pwd)/$2 ;; esac
        shift ;;
    *) usage ;;
    esac
    shift
done
pki=$demo/pki
server_bin=$bin/valkey-server
cli_bin=$bin/valkey-cli

say() { printf '%s\n' "$*"; }
fail() {
    printf 'demo: FAILED: %s\n' "$*" >&2
    exit 1
}
# Paths as the user can type them: relative when run from the top (make).
show() { if [ "$(pwd)" = "$top" ]; then printf '%s' "${1#"$top"/}"; else printf '%s' "$1"; fi; }

for f in "$server_bin" "$cli_bin"; do
    [ -x "$f" ] || fail "$(show "$f") is missing: build first (make)"
done
for c in openssl tclsh; do
    command -v "$c" > /dev/null 2>&1 || fail "$c is missing: run make deps"
done

# --- Processes we start, stopped by PID whatever happens ---------------------

pids=""
running() {
    state=$(ps -o stat= -p "$1" 2> /dev/null) || return 1
    case "$state" in Z*) return 1 ;; esac
}
# stop PID [GRACE]: wait up to GRACE tenths of a second for PID to end by
# itself, then SIGTERM, then after 5 s SIGKILL.
stop() {
    n=0
    while running "$1" && [ "$n" -lt "${2:-0}" ]; do
        sleep 0.1
        n=$((n + 1))
    done
    kill "$1" 2> /dev/null || true
    n=0
    while running "$1" && [ "$n" -lt 50 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    running "$1" && kill -9 "$1" 2> /dev/null
    wait "$1" 2> /dev/null || true
}
interrupted=no
cleanup() {
    status=$?
    # A second Ctrl-C must not cut the cleanup short.
    trap '' INT TERM HUP
    trap - EXIT
    [ -n "$pids" ] || exit "$status"
    # In the order listed: the log follower, the server, the responder. A
    # Ctrl-C reached the server too, which then shuts down by itself.
    grace=0
    [ "$interrupted" = yes ] && grace=10
    for pid in $pids; do
        if [ "$pid" = "${server_pid:-}" ]; then stop "$pid" "$grace"; else stop "$pid"; fi
    done
    say "Stopped the demo server and responder."
    exit "$status"
}
trap cleanup EXIT
trap 'interrupted=yes; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A free TCP port on 127.0.0.1 (the kernel's choice, released at once).
free_port() {
    # shellcheck disable=SC2016 # Tcl, not shell
    echo 'set s [socket -server {} -myaddr 127.0.0.1 0]; puts [lindex [fconfigure $s -sockname] 2]; close $s' | tclsh
}

now_ms() { date +%s%3N; }

# --- PKI and OCSP responder ---------------------------------------------------

# The responder's port is part of the server certificate (its AIA OCSP URL),
# so the PKI is made for a port first; if that port got taken meanwhile, the
# responder cannot listen and the whole step is repeated with another one.
# The work directory is ours to empty only if it is empty or a demo's.
if [ -d "$demo" ] && [ -n "$(ls -A "$demo")" ] && [ ! -f "$demo/.ocsp-demo" ]; then
    fail "$(show "$demo") is not empty and not a demo's directory: choose another --dir"
fi
rm -rf "$demo"
mkdir -p "$demo"
: > "$demo/.ocsp-demo"
responder_pid=""
for _ in 1 2 3; do
    rport=$(free_port)
    rm -rf "$pki"
    "$top/tests/helpers/ocsp-pki.sh" "$pki" "$rport" > "$demo/pki.log" 2>&1 ||
        { cat "$demo/pki.log" >&2; fail "could not create the demo PKI"; }
    tclsh "$top/tests/helpers/ocsp-responder.tcl" "$rport" "$pki" > "$demo/responder.log" 2>&1 &
    responder_pid=$!
    pids="$responder_pid"
    while running "$responder_pid" && ! grep -q listening "$demo/responder.log"; do sleep 0.05; done
    running "$responder_pid" && break
    wait "$responder_pid" 2> /dev/null || true
    pids=""
    responder_pid=""
done
[ -n "$responder_pid" ] || { cat "$demo/responder.log" >&2; fail "the OCSP responder did not start"; }

# --- The server ---------------------------------------------------------------

vport=$(free_port)
"$server_bin" "$top/valkey.conf" \
    --tls-port "$vport" \
    --tls-cert-file "$pki/server-chain.pem" \
    --tls-key-file "$pki/server.key" \
    --tls-ca-cert-file "$pki/ca-bundle.crt" \
    --dir "$demo" --logfile "$demo/valkey.log" --save "" --daemonize no \
    > "$demo/valkey.out" 2>&1 &
server_pid=$!
pids="$server_pid $responder_pid"

say "OCSP stapling demo: Valkey $("$server_bin" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') with this patch set"
say "  PKI         $(show "$pki")/ (server certificate's OCSP URL: http://127.0.0.1:$rport/)"
say "  responder   127.0.0.1:$rport (PID $responder_pid)"
say "  server      127.0.0.1:$vport, TLS only, $(show "$top/valkey.conf") (PID $server_pid)"
say "  binary      $(show "$server_bin")"

cli() {
    "$cli_bin" -h 127.0.0.1 -p "$vport" --tls --cacert "$pki/ca.crt" \
        --cert "$pki/client.crt" --key "$pki/client.key" "$@"
}
field() { printf '%s\n' "$info" | tr -d '\r' | sed -n "s/^$1://p"; }
ocsp_info() { printf '%s\n' "$info" | tr -d '\r' | grep '^tls_ocsp_' | sed 's/^/  /' || true; }
ocsp_log() { grep 'OCSP' "$demo/valkey.log" | sed 's/^[0-9]*:[A-Z] [0-9]* [A-Za-z]* [0-9]* \([0-9:.]*\) [*#.-] /  \1 /' || true; }

started=$(now_ms)
deadline=$(($(date +%s) + wait_seconds))
info=""
status=""
while :; do
    if ! running "$server_pid"; then
        tail -n 20 "$demo/valkey.log" "$demo/valkey.out" >&2 2> /dev/null || true
        fail "valkey-server exited (log: $(show "$demo/valkey.log"))"
    fi
    info=$(cli info tls 2> /dev/null || true)
    status=$(field tls_ocsp_status)
    lasterr=$(field tls_ocsp_last_error)
    # Waiting makes sense only for "none" (first fetch under way or retrying).
    case "$status:$lasterr" in
    good:*) break ;;
    "":* | none:none | none:timeout | none:connect_failed | none:resolve_failed | none:http_status | none:truncated) ;;
    *)
        { ocsp_info; ocsp_log; } >&2
        fail "the server's OCSP status is $status (last error: $lasterr), not good" ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || {
        { ocsp_info; ocsp_log; } >&2 || true
        fail "no good OCSP response within ${wait_seconds}s (tls_ocsp_status: ${status:-no INFO answer}, tls_ocsp_last_error: ${lasterr:-none})"
    }
    sleep 0.1
done
say "  first OCSP response fetched and verified $(($(now_ms) - started)) ms after the server started"

ok=yes

# --- What clients receive -----------------------------------------------------

say ""
say "Client: openssl s_client -status (the stapled response, as received):"
sclient=$(openssl s_client -connect "127.0.0.1:$vport" -status -CAfile "$pki/ca.crt" \
    -cert "$pki/client.crt" -key "$pki/client.key" < /dev/null 2>&1 || true)
printf '%s\n' "$sclient" |
    sed -n 's/^[[:space:]]*\(OCSP response: no response sent\|OCSP Response Status:.*\|Cert Status:.*\|This Update:.*\|Next Update:.*\)$/  \1/p'
if ! printf '%s\n' "$sclient" | grep -q 'OCSP Response Status: successful' ||
    ! printf '%s\n' "$sclient" | grep -q 'Cert Status: good'; then
    ok=no
    say "  (no good staple received)"
fi

if [ -x "$py" ] && "$py" -c 'import redis, OpenSSL' 2> /dev/null; then
    say ""
    say "Client: redis-py $("$py" -c 'import redis; print(redis.__version__)'), ssl_validate_ocsp_stapled=True (checks the staple's signature and status):"
    if out=$("$py" - "$vport" "$pki" 2>&1 << 'EOF'
import sys
import redis

port, pki = int(sys.argv[1]), sys.argv[2]
r = redis.Redis(host="127.0.0.1", port=port, ssl=True,
                ssl_ca_certs=pki + "/ca.crt", ssl_certfile=pki + "/client.crt",
                ssl_keyfile=pki + "/client.key", ssl_validate_ocsp_stapled=True)
try:
    print("  PING ->", r.ping())
except Exception as e:
    print("  rejected: %s: %s" % (type(e).__name__, e))
    sys.exit(1)
EOF
    ); then
        say "$out"
    else
        say "$out"
        ok=no
    fi
else
    say ""
    say "Client: redis-py: skipped ($py cannot import redis and OpenSSL; make deps installs them)"
fi

# --- What the server reports ---------------------------------------------------

say ""
say "Server: INFO tls (the OCSP part):"
info=$(cli info tls 2> /dev/null || true)
ocsp_info
say "Server log:"
ocsp_log

say ""
if [ "$ok" != yes ]; then
    fail "the server holds a good response, but a client did not receive a good staple"
fi

if [ "$foreground" = no ]; then
    say "Demo OK: clients received a verified \"good\" OCSP staple."
    exit 0
fi

# --- make run: keep the server up ----------------------------------------------

d=$(show "$pki")
cli_show=$(show "$top/src/valkey-cli")
[ -x "$top/src/valkey-cli" ] && [ "$bin" = "$top/build/valkey/src" ] || cli_show=$(show "$cli_bin")
say "The server is running (Ctrl-C stops it and the responder). Try:"
say "  $cli_show -p $vport --tls --cacert $d/ca.crt --cert $d/client.crt --key $d/client.key info tls"
say "  openssl s_client -connect 127.0.0.1:$vport -status -CAfile $d/ca.crt -cert $d/client.crt -key $d/client.key < /dev/null"
say "Following the server log ($(show "$demo/valkey.log")):"
trap 'interrupted=yes; say ""; exit 0' INT
tail -n 0 -f "$demo/valkey.log" &
tail_pid=$!
pids="$tail_pid $server_pid $responder_pid"
wait "$server_pid" || true
# Reached only when the server stopped without us: SHUTDOWN, a signal of its
# own (Ctrl-C when this shell ignores SIGINT), or a crash.
pids="$tail_pid $responder_pid"
if grep -q 'ready to exit, bye bye' "$demo/valkey.log"; then
    say "valkey-server shut down."
    exit 0
fi
fail "valkey-server exited (log: $(show "$demo/valkey.log"))"
