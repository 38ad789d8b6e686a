#!/bin/sh
# Mutated OCSP responses through an AddressSanitizer + UBSan server.
#
#   utils/fuzz-ocsp.sh        (make fuzz; FUZZ_COUNT mutants, default 50000)
#
# The test responder (tests/helpers/ocsp-responder.tcl, mode "fuzz") answers
# every request with a mutated copy of one real response (byte flips,
# truncation, insertion, length edits; the mutation is logged). A stapling
# server from build/valkey-asan (built as make test-sanitizers builds it) is
# made to fetch again and again with OCSP REFRESH until FUZZ_COUNT fetches
# have ended. Printed: the mutants served, the fetches by outcome
# (tls_ocsp_last_error names, from the server's log), and any sanitizer
# report; the exit status is non-zero if the server died or reported.
# Everything listens on 127.0.0.1 and is stopped at the end.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
count=${FUZZ_COUNT:-50000}
seed=${FUZZ_SEED:-1}
tree="$top/build/valkey-asan"

SANITIZER_BUILD_ONLY=1 "$top/utils/test-sanitizers.sh" address || exit 1
work=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null; done
    wait 2> /dev/null
    [ -n "${FUZZ_KEEP:-}" ] && echo "fuzz: kept $work" || rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
    tclsh << 'EOF'
set s [socket -server {} -myaddr 127.0.0.1 0]
puts [lindex [fconfigure $s -sockname] 2]
close $s
EOF
}
resp_port=$(free_port)
tls_port=$(free_port)
pki="$work/pki"
sh "$top/tests/helpers/ocsp-pki.sh" "$pki" "$resp_port" > "$work/pki.log" 2>&1 || {
    cat "$work/pki.log"
    exit 1
}
openssl ocsp -issuer "$pki/ca.crt" -cert "$pki/server.crt" -no_nonce -reqout "$work/req.der" > /dev/null 2>&1
tclsh "$top/tests/helpers/ocsp-responder.tcl" answer "$pki" "$work/req.der" "$work/base.der" || exit 1
echo "fuzz $work/base.der $seed" > "$pki/responder.mode"
tclsh "$top/tests/helpers/ocsp-responder.tcl" "$resp_port" "$pki" $$ 127.0.0.1 > "$work/responder.out" 2>&1 &
pids="$pids $!"

"$tree/src/valkey-server" --port 0 --tls-port "$tls_port" --bind 127.0.0.1 --dir "$work" --save "" \
    --logfile "$work/server.log" --tls-cert-file "$pki/server-chain.pem" --tls-key-file "$pki/server.key" \
    --tls-ca-cert-file "$pki/ca-bundle.crt" --tls-ocsp-stapling yes --tls-ocsp-response-timeout 2 \
    --tls-ocsp-retry-delay 1 > "$work/server.stderr" 2>&1 &
server_pid=$!
pids="$pids $server_pid"
cli() {
    "$tree/src/valkey-cli" --tls -p "$tls_port" --cacert "$pki/ca.crt" --cert "$pki/client.crt" \
        --key "$pki/client.key" "$@"
}
info() { cli info tls | tr -d '\r' | sed -n "s/^tls_ocsp_$1://p"; }
tries=0
until [ "$(cli ping 2> /dev/null)" = PONG ]; do
    tries=$((tries + 1))
    [ $tries -lt 100 ] || { echo "fuzz: the server did not start"; cat "$work/server.stderr"; exit 1; }
    sleep 0.1
done

start=$(date +%s)
fetches() { echo $(($(info fetches_ok) + $(info fetches_failed))); }
done_fetches=$(fetches)
while [ "$done_fetches" -lt "$count" ] && kill -0 "$server_pid" 2> /dev/null; do
    # One REFRESH every 2 ms; one that finds a fetch in flight changes nothing.
    cli -r 2000 -i 0.002 ocsp refresh > /dev/null 2>&1
    done_fetches=$(fetches)
    echo "fuzz: $done_fetches fetches after $(($(date +%s) - start)) s"
done
elapsed=$(($(date +%s) - start))

status=0
if ! kill -0 "$server_pid" 2> /dev/null || [ "$(cli ping 2> /dev/null)" != PONG ]; then
    echo "fuzz: THE SERVER DIED"
    tail -30 "$work/server.stderr" "$work/server.log"
    status=1
fi
served=$(grep -c ' fuzz ' "$pki/responder.log" 2> /dev/null)
echo
echo "fuzz: $served mutants served, $done_fetches fetches ended in $elapsed s (seed $seed)"
echo "fuzz: outcomes (from the server log):"
{
    grep -o 'OCSP: fetched a [a-z]* response' "$work/server.log" | sed 's/OCSP: fetched a \([a-z]*\) response/accepted_\1/'
    grep -o 'OCSP: fetch from [^ ]* failed: [a-z_]*' "$work/server.log" | sed 's/.* failed: //'
} | sort | uniq -c | sort -rn
echo "fuzz: mutations served, by kind:"
awk '/ fuzz / { print $4 }' "$pki/responder.log" | sort | uniq -c | sort -rn | head -12
if grep -lE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$work/server.stderr" "$work/server.log" > /dev/null 2>&1; then
    echo "fuzz: SANITIZER REPORT:"
    grep -hE -A20 'Sanitizer|runtime error:' "$work/server.stderr" "$work/server.log" | head -60
    status=1
else
    echo "fuzz: no sanitizer report"
fi
cli shutdown nosave > /dev/null 2>&1
exit $status
