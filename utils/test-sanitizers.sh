#!/bin/sh
# Our OCSP test files under a sanitizer build, in a tree of its own.
#
#   utils/test-sanitizers.sh [address]  AddressSanitizer + UndefinedBehaviorSanitizer
#                                       (make test-sanitizers; .ci/run runs it)
#   utils/test-sanitizers.sh thread     ThreadSanitizer, every server with io-threads
#                                       (make test-tsan)
#   utils/test-sanitizers.sh MODE ARGS  ARGS go to the harness (e.g. --only PATTERN)
#
# The tree (build/valkey-asan or build/valkey-tsan) is assembled like
# build/valkey (deps/assemble.sh with VALKEY_TREE): pristine upstream,
# patches/series, links to our live src/ and tests/ files, so a second run
# rebuilds only what changed. Built with OPT=-O1 (no LTO: quick to
# build and relink, exact stacks) and libc malloc, which the sanitizers track.
#
# address: the harness fails a test whose server wrote a report to its
# stderr; then utils/sanitizer-report.py reads every file the run left in
# tests/tmp (all server stdout/stderr logs) and every report fails the run.
# thread: reports go to tests/tmp/tsan/tsan.PID (TSAN_OPTIONS log_path), so
# the harness judges the tests alone, and utils/sanitizer-report.py lists
# each distinct report with its top frames, classified as ours (tls_ocsp*, tls_crl*
# frames, or lines our patches add) or upstream's; only ours fail the run.
# Upstream ships no ThreadSanitizer suppressions; TSAN_SUPPRESSIONS=FILE
# adds one of yours.
#
# Ends with one line "N passed, M failed" (M: failed tests + failing report
# groups); exit status 0 only when M is 0 and N is not.
# SANITIZER_BUILD_ONLY=1: build the tree and stop (utils/fuzz-ocsp.sh).
# SANITIZER_TESTS: the test files (default: our three OCSP files, unit/tls-crl,
# unit/tls-crl-links and unit/tls-crl-urls).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-address}
[ $# -gt 0 ] && shift
tests=${SANITIZER_TESTS:-"unit/tls-ocsp unit/tls-ocsp-sources unit/tls-ocsp-peers unit/tls-crl unit/tls-crl-links unit/tls-crl-urls"}
jobs=$(nproc 2> /dev/null || echo 1)
case "$mode" in
address)
    tree="$top/build/valkey-asan"
    # Upstream's SANITIZER=address (with -fno-sanitize-recover=all: every
    # report aborts); UBSan joins through SERVER_CFLAGS/SERVER_LDFLAGS, which
    # upstream's Makefile adds to every compile and link of its programs.
    san="SANITIZER=address"
    extra_cflags="-fsanitize=undefined -fno-sanitize-recover=undefined"
    extra_ldflags="-fsanitize=undefined"
    harness_args="--port 26079 --baseport 26111"
    report_args=""
    # The harness sets ASAN_OPTIONS itself (allocator_may_return_null=1);
    # leak checking is on by default.
    UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
    export UBSAN_OPTIONS
    ;;
thread)
    tree="$top/build/valkey-tsan"
    san="SANITIZER=thread"
    extra_cflags=""
    extra_ldflags=""
    harness_args="--io-threads --port 27079 --baseport 27111"
    report_args="--ours-only"
    ;;
*)
    echo "usage: $0 [address|thread] [harness arguments]" >&2
    exit 2
    ;;
esac
log="$tree.test.log"
report="$tree.sanitizer-report.txt"

name=test-sanitizers
. "$top/utils/test-lib.sh"

start=$(date +%s)
VALKEY_TREE=$tree "$top/deps/assemble.sh" || summary 0 1
# shellcheck disable=SC2086
GIT_CEILING_DIRECTORIES="$top/build" make -C "$tree" -j"$jobs" BUILD_TLS=yes $san MALLOC=libc \
    OPT="-O1 -fno-omit-frame-pointer" SERVER_CFLAGS="$extra_cflags" SERVER_LDFLAGS="$extra_ldflags" \
    > "$tree.build.log" 2>&1 || {
    tail -40 "$tree.build.log"
    say "the $mode build failed (log: ${tree#"$top"/}.build.log)"
    summary 0 1
}
built=$(date +%s)
say "$mode build ready in $((built - start)) s (log: ${tree#"$top"/}.build.log)"
[ -n "${SANITIZER_BUILD_ONLY:-}" ] && exit 0

# Pristine upstream beside the tree, to tell the lines our patches add.
pristine="$tree.pristine"
pristine_id=$(sed -n 's/^VALKEY_TARBALL_SHA256 = //p' "$top/deps/upstream.mk")${VALKEY_SRC:+" $VALKEY_SRC"}
if [ "$(cat "$pristine/.ocsp-pristine-id" 2> /dev/null)" != "$pristine_id" ]; then
    "$top/deps/assemble.sh" pristine "$pristine" && echo "$pristine_id" > "$pristine/.ocsp-pristine-id"
fi

cd "$tree" || summary 0 1
if [ ! -f tests/tls/valkey.dh ]; then
    ./utils/gen-test-certs.sh > tests/tls-gen.log 2>&1 || summary 0 1
fi
# Only this run's logs: the harness keeps them (--dont-clean) for the check.
rm -rf tests/tmp
mkdir -p tests/tmp/tsan
if [ "$mode" = thread ]; then
    TSAN_OPTIONS="halt_on_error=0 history_size=5 second_deadlock_stack=1 log_path=$tree/tests/tmp/tsan/tsan${TSAN_SUPPRESSIONS:+ suppressions=$TSAN_SUPPRESSIONS} ${TSAN_OPTIONS:-}"
    export TSAN_OPTIONS
fi
args=""
for t in $tests; do [ -f "tests/$t.tcl" ] && args="$args --single $t"; done
say "running$args (log: ${tree#"$top"/}.test.log)"
# shellcheck disable=SC2086
./runtest --tls --clients 2 --dont-clean $harness_args $args "$@" > "$log" 2>&1
harness_count "$log" show
ran=$(date +%s)

# Every file the run left (each server's stdout and stderr, TSan's logs),
# not only the stderr files the harness reads.
files=$(grep -rlE 'ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
    tests/tmp 2> /dev/null)
echo
# shellcheck disable=SC2086
python3 "$top/utils/sanitizer-report.py" $report_args --tree "$tree" --pristine "$pristine" --out "$report" \
    $files > "$tree.sanitizer-report.out" 2>&1
cat "$tree.sanitizer-report.out"
groups=$(sed -n 's/^sanitizer-report: \([0-9]*\) failing$/\1/p' "$tree.sanitizer-report.out")
case "$groups" in
"" | *[!0-9]*) say "the report script failed"; groups=1 ;;
esac
failed=$((failed + groups))
if [ "$failed" -eq 0 ]; then
    rm -rf tests/tmp
else
    say "logs kept in ${tree#"$top"/}/tests/tmp"
fi
say "$mode: build $((built - start)) s, tests $((ran - built)) s, $(($(date +%s) - start)) s in all;" \
    "every report in ${report#"$top"/}"
summary "$passed" "$failed"
