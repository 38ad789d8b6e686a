#!/bin/sh
# Mutated OCSP responses through an AddressSanitizer + UBSan server.
#
#   utils/fuzz-ocsp.sh        (make fuzz)
#
#   FUZZ_COUNT   fetches to drive (default 50000)
#   FUZZ_CRL_COUNT  CRL rounds to drive afterwards (default FUZZ_COUNT / 2,
#                at most 10000; 0: none)
#   FUZZ_SEED    the responder's mutation seed (default: from the clock;
#                printed, so a run can be repeated)
#   FUZZ_KEEP=1  keep the work directory (PKI, logs, outcomes)
#
# Builds (or reuses) build/valkey-asan as make test-sanitizers does, makes
# the test PKI (tests/helpers/ocsp-pki.sh) and a real response, and starts
# the test responder (tests/helpers/ocsp-responder.tcl) in its fuzz mode,
# which answers every request with a mutated copy of that response (bit
# flips, bytes set, truncation, insertion, deletion, TLV length and tag
# edits, or none; each logged). A stapling server from the ASan tree then
# fetches FUZZ_COUNT times: utils/fuzz-ocsp.tcl alternates
# tls-ocsp-responder between http://127.0.0.1:PORT/ and
# http://localhost:PORT/ (each change fetches at once) and waits, polling
# INFO tls, for each fetch to end. Afterwards the responder goes back to
# real answers and a client checks that the server still staples a good
# response; then the server shuts down (so LeakSanitizer runs) and every
# sanitizer report in its stderr and log is listed (utils/sanitizer-report.py).
#
# Then the CRLs (utils/fuzz-crl.tcl), on the same server with stapling off:
# the CRL PKI of tests/helpers/crl-pki.sh (its CA joins tls-ca-cert-file),
# two base DER CRLs listing the client alice but not bob (crl-alice.der, and
# crl-many.der with a few hundred more entries), the responder in its fuzz
# mode on each, fed to the server through tls-crl-urls (OCSP REFRESH fetches
# again) and tls-crl-file (a mutant renamed over the file, then OCSP REFRESH,
# or the file watcher): FUZZ_CRL_COUNT rounds in four phases, and after every
# 100 the server must answer PING, refuse alice and accept bob (a mutant
# never replaces the CRL in force with a broken one).
#
# Printed: the mutants served, the fetches by outcome (accepted, or the
# tls_ocsp_last_error name), cross-checked against the server log's lines,
# the outcomes by kind of mutation, the fetch rate and any sanitizer report.
# Exit status non-zero if the server died, stopped fetching or stapling, or
# reported anything; the last line is "1 passed, 0 failed" or "0 passed, 1
# failed" (.ci/run runs make fuzz FUZZ_COUNT=5000). Everything listens on 127.0.0.1 only and every process
# started here is stopped at the end (by PID), also on failure or ^C.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
count=${FUZZ_COUNT:-50000}
seed=${FUZZ_SEED:-$(($(date +%s) % 1000000))}
crl_count=${FUZZ_CRL_COUNT:-$((count / 2 > 10000 ? 10000 : count / 2))}
tree="$top/build/valkey-asan"
say() { echo "fuzz: $*"; }

t0=$(date +%s)
SANITIZER_BUILD_ONLY=1 "$top/utils/test-sanitizers.sh" address || exit 1
work=$(mktemp -d /tmp/fuzz-ocsp.XXXXXX)
pids=""
server_pid=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null; done
    for p in $pids; do
        i=0
        while kill -0 "$p" 2> /dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$p" 2> /dev/null
    done
    if [ -n "${FUZZ_KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    tclsh << 'EOF'
set s [socket -server {} -myaddr 127.0.0.1 0]
puts [lindex [fconfigure $s -sockname] 2]
close $s
EOF
}
resp_port=$(free_port)
port=$(free_port)
tls_port=$(free_port)
pki="$work/pki"
sh "$top/tests/helpers/ocsp-pki.sh" "$pki" "$resp_port" > "$work/pki.log" 2>&1 || {
    cat "$work/pki.log"
    exit 1
}
# The CRLs' PKI (alice listed, bob not), its CA added to the OCSP PKI's
# bundle, and the base CRLs in DER: crl-alice.der, and crl-many.der, which
# lists alice and a few hundred made-up serials (the CA's database written
# directly: one openssl run instead of one a revocation).
crl="$work/crl"
sh "$top/tests/helpers/crl-pki.sh" "$crl" "$pki/ca-bundle.crt" > "$work/crl-pki.log" 2>&1 || {
    cat "$work/crl-pki.log"
    exit 1
}
cp "$crl/crl-alice.der" "$work/crl-alice.der"
mkdir -p "$crl/db-many"
echo 2000 > "$crl/db-many/crlnumber"
grep 'CN=Alice' "$crl/db-ca/index.txt" > "$crl/db-many/index.txt"
awk -v when="$(date -u +%y%m%d%H%M%SZ)" 'BEGIN {
    split("keyCompromise superseded cessationOfOperation affiliationChanged", why, " ")
    for (i = 0; i < 400; i++)
        printf "R\t301231235959Z\t%s%s\t%06X\tunknown\t/O=Valkey CRL Test/CN=fuzz %d\n",
            when, i % 5 ? "," why[i % 4 + 1] : "", 1048576 + i * 7, i
}' >> "$crl/db-many/index.txt"
sed 's|/db-ca/|/db-many/|' "$crl/db-ca/ca.cnf" > "$crl/db-many/ca.cnf"
(cd "$crl" && openssl ca -config db-many/ca.cnf -gencrl -out crl-many.pem -batch > /dev/null 2>&1 &&
    openssl crl -in crl-many.pem -outform DER -out "$work/crl-many.der") || {
    say "cannot make crl-many.der"
    exit 1
}

# The base: a real answer from the delegated signer (its certificate rides
# along: more to parse), valid for a day so a long run never sees it expire.
openssl ocsp -issuer "$pki/ca.crt" -cert "$pki/server.crt" -no_nonce -reqout "$work/req.der" > /dev/null 2>&1
tclsh "$top/tests/helpers/ocsp-responder.tcl" answer "$pki" "$work/req.der" "$work/base.der" openssl -nmin 1440 || exit 1
echo "fuzz $work/base.der $seed" > "$pki/responder.mode"
tclsh "$top/tests/helpers/ocsp-responder.tcl" "$resp_port" "$pki" $$ 127.0.0.1 > "$work/responder.out" 2>&1 &
pids="$pids $!"

UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1" ASAN_OPTIONS="detect_leaks=1" \
    "$tree/src/valkey-server" --port "$port" --tls-port "$tls_port" --bind 127.0.0.1 --dir "$work" \
    --save "" --appendonly no --logfile "$work/server.log" --enable-protected-configs local \
    --tls-cert-file "$pki/server-chain.pem" --tls-key-file "$pki/server.key" \
    --tls-ca-cert-file "$crl/ca-bundle.crt" --tls-ocsp-stapling yes --tls-ocsp-response-timeout 2 \
    --tls-ocsp-retry-delay 3600 > "$work/server.stderr" 2>&1 &
server_pid=$!
pids="$pids $server_pid"
cli() { "$tree/src/valkey-cli" -h 127.0.0.1 -p "$port" "$@" 2> /dev/null; }
info() { cli info tls | tr -d '\r' | sed -n "s/^tls_ocsp_$1://p"; }
ended() { echo $(($(info fetches_ok) + $(info fetches_failed))); }
tries=0
until [ "$(cli ping)" = PONG ] && [ "$(ended)" -ge 1 ]; do
    tries=$((tries + 1))
    kill -0 "$server_pid" 2> /dev/null && [ $tries -lt 300 ] || {
        say "the server did not start, or its first fetch never ended"
        tail -20 "$work/server.stderr" "$work/server.log"
        exit 1
    }
    sleep 0.1
done
served_before=$(grep -c ' fuzz ' "$pki/responder.log" 2> /dev/null || echo 0)
say "seed $seed, $count fetches; server pid $server_pid (ports $port, TLS $tls_port), responder port $resp_port"

start=$(date +%s)
tclsh "$top/utils/fuzz-ocsp.tcl" "$port" "$resp_port" "$count" "$work/outcomes"
driver=$?
elapsed=$(($(date +%s) - start))

status=0
[ $driver -eq 0 ] || status=1
alive=yes
if ! kill -0 "$server_pid" 2> /dev/null || [ "$(cli ping)" != PONG ]; then
    alive=no
    status=1
    say "THE SERVER DIED"
    tail -30 "$work/server.stderr" "$work/server.log"
fi

# Still stapling? Real answers again, one more fetch, then a client asks.
staple=""
if [ $alive = yes ]; then
    echo "openssl" > "$pki/responder.mode"
    before=$(info fetches_ok)
    cli config set tls-ocsp-responder "http://127.0.0.1:$resp_port/" > /dev/null
    i=0
    while [ "$(info fetches_ok)" = "$before" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    staple=$(echo | openssl s_client -connect "127.0.0.1:$tls_port" -status -servername localhost \
        -CAfile "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" 2> /dev/null |
        sed -n 's/^ *Cert Status: //p' | head -n 1)
    if [ "$staple" = good ]; then
        say "after the run: a real response is fetched and stapled (Cert Status: good)"
    else
        say "AFTER THE RUN THE SERVER DOES NOT STAPLE A GOOD RESPONSE (Cert Status: ${staple:-none})"
        status=1
    fi
    served_ocsp=$(grep -c ' fuzz ' "$pki/responder.log" 2> /dev/null || echo 0)
    if [ "$crl_count" -gt 0 ]; then
        entries() { openssl crl -inform DER -in "$1" -noout -text | grep -c 'Serial Number:'; }
        say "CRLs: $crl_count rounds (seeds $seed + phase); base CRLs of $(entries "$work/crl-alice.der")" \
            "and $(entries "$work/crl-many.der") entries ($(wc -c < "$work/crl-alice.der")" \
            "and $(wc -c < "$work/crl-many.der") bytes)"
        crl_start=$(date +%s)
        tclsh "$top/utils/fuzz-crl.tcl" "$port" "$tls_port" "$resp_port" "$crl_count" "$work/crl-outcomes" \
            "$pki" "$crl" "$work" "$tree/src/valkey-cli" "$seed"
        crl_driver=$?
        crl_elapsed=$(($(date +%s) - crl_start))
        [ $crl_driver -eq 0 ] || status=1
        if ! kill -0 "$server_pid" 2> /dev/null || [ "$(cli ping)" != PONG ]; then
            say "THE SERVER DIED (CRL phase)"
            tail -30 "$work/server.stderr" "$work/server.log"
            status=1
        fi
    fi
    # Shut down and wait for the exit, so that LeakSanitizer has reported.
    cli shutdown nosave > /dev/null
    i=0
    while kill -0 "$server_pid" 2> /dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
fi

fuzz_lines() { grep ' fuzz ' "$pki/responder.log" 2> /dev/null; }
served_ocsp=${served_ocsp:-$(fuzz_lines | wc -l)}
# by_kind MUTATION_LINES OUTCOMES: the outcomes by kind of mutation.
by_kind() {
    awk '{ m = $NF; k = m; sub(/@.*/, "", k)
        if (k == "length") { h = m; sub(/.*:/, "", h); k = k ":" h }; print k }' "$1" |
        paste -d' ' - "$2" | awk '
            { n[$1]++; o[$1 " " $2]++ }
            END {
                for (k in n) {
                    line = sprintf("  %-18s %6d:", k, n[k])
                    for (ko in o) { split(ko, p, " "); if (p[1] == k) line = line sprintf(" %s %d", p[2], o[ko]) }
                    print line
                }
            }' | sort
}
served=$served_ocsp
outcomes=$(wc -l < "$work/outcomes" 2> /dev/null || echo 0)
echo
say "$served mutants served (seed $seed), $outcomes fetches driven in $elapsed s" \
    "($(awk -v n="$outcomes" -v s="$elapsed" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }') fetches/s)"
say "outcomes (INFO tls after each fetch: accepted, or tls_ocsp_last_error):"
sort "$work/outcomes" | uniq -c | sort -rn | sed 's/^/  /'
say "the server log's count ('fetched a ... response', 'fetch from ... failed: REASON'; it also has the startup fetch and the final check):"
{
    grep -o 'OCSP: fetched a [a-z]* response' "$work/server.log" | sed 's/.* a \([a-z]*\) response/accepted (\1)/'
    grep -o 'OCSP: fetch from [^ ]* failed: [a-z_]*' "$work/server.log" | sed 's/.* failed: //'
} | sort | uniq -c | sort -rn | sed 's/^/  /'
# Pair each driven fetch with the mutant it got: the responder logs one
# request a fetch, in order (the startup fetch's came before).
if [ $((served - served_before)) -eq "$outcomes" ]; then
    say "outcomes by kind of mutation (kind: count, then outcomes):"
    fuzz_lines | head -n "$served" | tail -n "$outcomes" > "$work/ocsp-mutants"
    by_kind "$work/ocsp-mutants" "$work/outcomes"
    fuzz_lines | head -n "$served" | tail -n "$outcomes" | paste -d' ' - "$work/outcomes" |
        awk '$NF == "accepted" && $(NF-1) != "none" { print $(NF-1) }' > "$work/accepted-mutants"
    n=$(wc -l < "$work/accepted-mutants")
    if [ "$n" -gt 0 ]; then
        say "$n mutant(s) other than 'none' were accepted (verified and cached), e.g.: $(head -5 "$work/accepted-mutants" | tr '\n' ' ')"
    fi
else
    say "($((served - served_before)) mutants for $outcomes fetches: not paired by kind)"
fi

if [ "$crl_count" -gt 0 ] && [ -f "$work/crl-outcomes" ]; then
    crl_outcomes=$(wc -l < "$work/crl-outcomes")
    fuzz_lines | tail -n +"$((served + 1))" > "$work/crl-mutants"
    crl_served=$(wc -l < "$work/crl-mutants")
    echo
    say "CRLs: $crl_served mutants served, $crl_outcomes rounds driven in ${crl_elapsed:-0} s" \
        "($(awk -v n="$crl_outcomes" -v s="${crl_elapsed:-0}" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }') rounds/s)"
    say "CRL outcomes (accepted, or tls_crl_last_error without source, names and numbers):"
    sort "$work/crl-outcomes" | uniq -c | sort -rn | sed 's/^/  /'
    if [ "$crl_served" -eq "$crl_outcomes" ]; then
        say "CRL outcomes by kind of mutation (kind: count, then outcomes):"
        by_kind "$work/crl-mutants" "$work/crl-outcomes"
        n=$(paste -d' ' "$work/crl-mutants" "$work/crl-outcomes" | awk '$NF == "accepted" && $(NF-1) != "none"' | wc -l)
        [ "$n" -gt 0 ] && say "$n CRL mutant(s) other than 'none' were accepted: $(paste -d' ' "$work/crl-mutants" "$work/crl-outcomes" |
            awk '$NF == "accepted" && $(NF-1) != "none" { print $(NF-1) }' | head -5 | tr '\n' ' ')"
    else
        say "($crl_served CRL mutants for $crl_outcomes rounds: not paired by kind)"
    fi
fi

echo
python3 "$top/utils/sanitizer-report.py" --tree "$tree" "$work/server.stderr" "$work/server.log" || status=1
say "total $(($(date +%s) - t0)) s (build check included); exit status $status"
# One line for .ci/run to add up: the fuzz run is one test.
echo "$((1 - status)) passed, $status failed"
exit $status
