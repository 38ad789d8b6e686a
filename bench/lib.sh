# shellcheck shell=bash disable=SC2034  # some globals here are used by the scripts only
# Shared by the bench scripts (bash; sourced, not run).
#
# Gives: a temporary work dir ($WORK), a PKI and an OCSP responder from
# tests/helpers, valkey-server instances started in the background and
# tracked by PID, polling with deadlines, and cleanup of every process we
# started on any exit (success, failure, ^C).
#
# Environment knobs:
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU   CPU lists for taskset (default 1 / 0
#                                         on a machine with >= 2 CPUs; set
#                                         both to "" to disable pinning)
#   BENCH_KEEP=1                          keep $WORK (logs) after the run
#   BENCH_TREE=build/valkey-tls-module    the binaries of another tree (default
#                                         src/, which is build/valkey's); when
#                                         it holds valkey-tls.so (a
#                                         BUILD_TLS=module build), every server
#                                         loads it

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=$TOP/${BENCH_TREE:+$BENCH_TREE/}src
SERVER_BIN=$BIN_DIR/valkey-server
CLI_BIN=$BIN_DIR/valkey-cli
# Extra server arguments: --loadmodule valkey-tls.so for a module build.
SERVER_MODULE_ARGS=()
PYTHON=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/valkey-bench.XXXXXX")
PKI=$WORK/pki
STARTED_PIDS=()
BENCH_FAILED=0

if [ "$(nproc)" -ge 2 ]; then
    BENCH_SERVER_CPU=${BENCH_SERVER_CPU-1}
    BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU-0}
else
    BENCH_SERVER_CPU=${BENCH_SERVER_CPU-}
    BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU-}
fi

# Command prefixes that pin to those CPUs (arrays, so that "${SERVER_PIN[@]}"
# cmd & stays one process: taskset execs cmd, and $! is cmd's PID).
SERVER_PIN=()
CLIENT_PIN=()
[ -z "$BENCH_SERVER_CPU" ] || SERVER_PIN=(taskset -c "$BENCH_SERVER_CPU")
[ -z "$BENCH_CLIENT_CPU" ] || CLIENT_PIN=(taskset -c "$BENCH_CLIENT_CPU")

log() { printf '%s\n' "$*"; }

fail() {
    BENCH_FAILED=1
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Still running (and not a zombie waiting to be reaped)?
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2> /dev/null) || return 1
    [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    # A script may define bench_before_cleanup to undo a state of its own
    # before the processes are stopped (best effort, also on failure).
    if declare -F bench_before_cleanup > /dev/null; then bench_before_cleanup || true; fi
    for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then kill -KILL "$pid" 2> /dev/null || true; fi
        wait "$pid" 2> /dev/null || true
    done
    if [ "$rc" -ne 0 ] || [ "$BENCH_FAILED" -ne 0 ]; then
        for f in "$WORK"/*/valkey.log; do
            [ -f "$f" ] || continue
            printf -- '--- last lines of %s\n' "$f" >&2
            tail -n 8 "$f" >&2
        done
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# run_tracked CMD...: run CMD as a tracked child and wait for it (a signal
# to this script then interrupts the wait and cleanup stops CMD as well).
run_tracked() {
    local pid rc=0 kept=() p
    "$@" &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait "$pid" || rc=$?
    for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    STARTED_PIDS=("${kept[@]}")
    return "$rc"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1 (held together while
# chosen, so they differ; released just before use).
free_ports() {
    "$PYTHON" -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + timeout))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for: $what"
        sleep 0.05
    done
}

# make_pki RESPONDER_PORT: the test PKI in $PKI (server cert AIA -> that port).
make_pki() {
    sh "$TOP/tests/helpers/ocsp-pki.sh" "$PKI" "$1" > "$WORK/pki.out" 2>&1 ||
        { cat "$WORK/pki.out" >&2; fail "PKI generation failed"; }
}

# make_crl_pki ENTRIES: the PKI of tests/helpers/crl-big.sh in $PKI (CA,
# server, client.crt not listed, revoked.crt listed, crl.pem with ENTRIES
# revoked serials); its summary line goes to the log.
make_crl_pki() {
    ENTRIES=$1 DIR=$PKI sh "$TOP/tests/helpers/crl-big.sh" > "$WORK/pki.out" 2>&1 ||
        { cat "$WORK/pki.out" >&2; fail "CRL PKI generation failed"; }
    log "$(tail -n 1 "$WORK/pki.out")"
}

# start_responder PORT [PKI_DIR]: the test OCSP responder on 127.0.0.1:PORT
# for the PKI in PKI_DIR (default $PKI), answering per PKI_DIR/responder.mode
# and logging to PKI_DIR/responder.log. Sets RESPONDER_PID.
start_responder() {
    local port=$1 dir=${2:-$PKI}
    tclsh "$TOP/tests/helpers/ocsp-responder.tcl" "$port" "$dir" > "$WORK/responder-$port.out" 2>&1 &
    RESPONDER_PID=$!
    STARTED_PIDS+=("$RESPONDER_PID")
    wait_until 10 "OCSP responder on port $port" grep -q listening "$WORK/responder-$port.out"
}

# Extra TLS arguments of every cli call: a client certificate for servers
# with tls-auth-clients yes (CLI_TLS_ARGS=(--cert C --key K)).
CLI_TLS_ARGS=()

cli() {
    local port=$1
    shift
    "$CLI_BIN" --tls --cacert "$PKI/ca.crt" "${CLI_TLS_ARGS[@]}" -h 127.0.0.1 -p "$port" "$@"
}

# info_in PORT SECTION FIELD: one field of INFO SECTION.
info_in() {
    cli "$1" info "$2" 2> /dev/null | tr -d '\r' | sed -n "s/^$3://p"
}

# info_field PORT FIELD: one field of INFO tls.
info_field() { info_in "$1" tls "$2"; }

field_is() { [ "$(info_field "$1" "$2")" = "$3" ]; }

# start_server NAME TLS_PORT [EXTRA ARGS...]: valkey-server (foreground mode,
# backgrounded here, pinned to $BENCH_SERVER_CPU), TLS only, on 127.0.0.1.
# Its dir and log are $WORK/NAME. Sets SERVER_PID.
start_server() {
    local name=$1 port=$2
    shift 2
    mkdir -p "$WORK/$name"
    "${SERVER_PIN[@]}" "$SERVER_BIN" \
        --bind 127.0.0.1 --port 0 --tls-port "$port" \
        --tls-cert-file "$PKI/server-chain.pem" --tls-key-file "$PKI/server.key" \
        --tls-ca-cert-file "$PKI/ca-bundle.crt" --tls-auth-clients no \
        --daemonize no --save '' --appendonly no --enable-protected-configs local \
        --dir "$WORK/$name" --logfile "$WORK/$name/valkey.log" "${SERVER_MODULE_ARGS[@]}" "$@" &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_until 20 "valkey-server $name on port $port" server_up "$port" "$SERVER_PID"
}

server_up() {
    alive "$2" || fail "valkey-server on port $1 exited"
    [ "$(cli "$1" ping 2> /dev/null)" = PONG ]
}

# build_client NAME: compile bench/NAME.c into $WORK/NAME.
build_client() {
    cc -O2 -Wall -o "$WORK/$1" "$TOP/bench/$1.c" -lssl -lcrypto -lm ||
        fail "cannot compile bench/$1.c (needs cc and libssl-dev)"
}

# cpu_ms PID: user+system CPU time of a process so far, in ms.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat"
}

# kv LINE KEY: value of KEY=value in a RESULT line.
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# float_cmp EXPR: awk-evaluated comparison, e.g. float_cmp "0.98 >= 0.97".
float_cmp() { awk "BEGIN { exit !($1) }"; }

# check_prereqs: tools present; then snapshot the server and cli binaries
# into $WORK, so that both sides run the very same build even if someone
# rebuilds src/ during the run.
check_prereqs() {
    if [ ! -x "$SERVER_BIN" ] || [ ! -x "$CLI_BIN" ]; then
        fail "build first: $SERVER_BIN / $CLI_BIN missing (run make)"
    fi
    local tool
    for tool in cc openssl tclsh taskset "$PYTHON"; do
        command -v "$tool" > /dev/null || fail "$tool not found"
    done
    cp "$SERVER_BIN" "$WORK/valkey-server"
    cp "$CLI_BIN" "$WORK/valkey-cli"
    log "valkey-server: copy of $(readlink -f "$SERVER_BIN") ($("$WORK/valkey-server" --version |
        sed -n 's/.*v=\([^ ]*\).*/\1/p'), sha256 $(sha256sum "$WORK/valkey-server" | cut -c1-12))"
    SERVER_BIN=$WORK/valkey-server
    CLI_BIN=$WORK/valkey-cli
    if [ -f "$BIN_DIR/valkey-tls.so" ]; then
        cp "$BIN_DIR/valkey-tls.so" "$WORK/valkey-tls.so"
        SERVER_MODULE_ARGS=(--loadmodule "$WORK/valkey-tls.so")
        log "TLS as a module: the servers load a copy of ${BIN_DIR#"$TOP"/}/valkey-tls.so"
    fi
}
