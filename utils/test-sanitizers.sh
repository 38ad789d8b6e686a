#!/bin/sh
# Our OCSP test files under a sanitizer build, in a tree of its own.
#
#   utils/test-sanitizers.sh            AddressSanitizer + UndefinedBehaviorSanitizer
#                                       (make test-sanitizers; .ci/run runs it)
#   utils/test-sanitizers.sh thread     ThreadSanitizer, every server with io-threads
#                                       (make test-tsan)
#
# The tree (build/valkey-asan or build/valkey-tsan) is assembled like
# build/valkey: pristine upstream, patches/series, links to our src/ and
# tests/, so a second run rebuilds only what changed. The harness fails a
# test whose server wrote a sanitizer report to its stderr; this script also
# searches every server log of the run and fails on any report, then ends
# with one line "N passed, M failed". Extra arguments go to the harness.
# SANITIZER_BUILD_ONLY=1: build the tree and stop (utils/fuzz-ocsp.sh).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-address}
[ $# -gt 0 ] && shift
case "$mode" in
address)
    tree="$top/build/valkey-asan"
    # Upstream's SANITIZER=address; UBSan joins through SERVER_CFLAGS, which
    # upstream's Makefile adds to every compile and link of the server.
    build_args="SANITIZER=address SERVER_CFLAGS=-fsanitize=undefined SERVER_LDFLAGS=-fsanitize=undefined"
    harness_args=""
    ;;
thread)
    tree="$top/build/valkey-tsan"
    build_args="SANITIZER=thread MALLOC=libc"
    harness_args="--io-threads"
    # Upstream's own reports are suppressed (utils/tsan-upstream.sup says
    # which and why); keep going after a report, so one run lists them all.
    TSAN_OPTIONS="suppressions=$top/utils/tsan-upstream.sup halt_on_error=0 ${TSAN_OPTIONS:-}"
    export TSAN_OPTIONS
    ;;
*)
    echo "usage: $0 [address|thread] [harness arguments]" >&2
    exit 2
    ;;
esac
tests="unit/tls-ocsp unit/tls-ocsp-sources unit/tls-ocsp-peers"
log="$tree.test.log"
jobs=$(nproc 2> /dev/null || echo 1)

summary() {
    echo "$1 passed, $2 failed"
    [ "$2" -eq 0 ] && [ "$1" -gt 0 ]
    exit $?
}

VALKEY_TREE=$tree "$top/deps/assemble.sh" || summary 0 1
start=$(date +%s)
# shellcheck disable=SC2086
GIT_CEILING_DIRECTORIES="$top/build" make -C "$tree" -j"$jobs" BUILD_TLS=yes $build_args > "$tree.build.log" 2>&1 || {
    tail -40 "$tree.build.log"
    echo "test-sanitizers: the $mode build failed (log: $tree.build.log)"
    summary 0 1
}
echo "test-sanitizers: $mode build ready in $(($(date +%s) - start)) s"
[ -n "${SANITIZER_BUILD_ONLY:-}" ] && exit 0

cd "$tree" || summary 0 1
if [ ! -f tests/tls/valkey.dh ]; then
    ./utils/gen-test-certs.sh > tests/tls-gen.log 2>&1 || summary 0 1
fi
args=""
for t in $tests; do [ -f "tests/$t.tcl" ] && args="$args --single $t"; done
# A base port of its own, so that this can run beside `make test`.
# shellcheck disable=SC2086
./runtest --tls --clients 2 --baseport 26000 --dont-clean $harness_args $args "$@" > "$log" 2>&1
plain=$(sed 's/\x1b\[[0-9;]*m//g; /The following tests failed/q' "$log")
printf '%s\n' "$plain" | grep -E '^\[(ok|err|exception|ignore|skip)'
passed=$(printf '%s\n' "$plain" | grep -c '^\[ok\]: ')
failed=$(printf '%s\n' "$plain" | grep -c '^\[\(err\|exception\)\]: ')
if ! printf '%s\n' "$plain" | grep -q 'All tests passed without errors!'; then
    tail -20 "$log"
    [ "$failed" -gt 0 ] || failed=1
fi
# Every server's stderr and log of the run, not only those the harness read.
reports=$(grep -rlE 'ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
    tests/tmp 2> /dev/null)
if [ "$mode" = thread ] && [ -n "$reports" ]; then
    # Left after the suppressions: each distinct report, and whether a frame
    # is in our files.
    # shellcheck disable=SC2086
    awk '/WARNING: ThreadSanitizer/ { block = $0; next }
         block != "" { block = block "\n" $0 }
         /^SUMMARY: ThreadSanitizer/ {
             kind = (block ~ /tls_ocsp/) ? "ours" : "upstream"
             sub(/.*SUMMARY: ThreadSanitizer: /, "", $0); sub(/ \/[^ ]*\/src\//, " ", $0)
             print kind ": " $0; block = "" }' $reports | sort | uniq -c | sort -rn > "$tree.tsan-reports"
    echo "test-sanitizers: TSan reports (count, whose, where):"
    cat "$tree.tsan-reports"
    echo "test-sanitizers: $(grep -c ' ours: ' "$tree.tsan-reports") distinct TSan report(s) in our code"
    failed=$((failed + $(wc -l < "$tree.tsan-reports")))
elif [ -n "$reports" ]; then
    echo "test-sanitizers: sanitizer reports in:"
    for f in $reports; do
        echo "== $f"
        grep -E -A12 'Sanitizer|runtime error:' "$f" | head -40
    done
    failed=$((failed + 1))
fi
rm -rf tests/tmp/*
echo "test-sanitizers: $mode run took $(($(date +%s) - start)) s in all (log: $log)"
summary "$passed" "$failed"
