# Sourced by the test scripts (run-tests.sh, test-sanitizers.sh,
# test-openssl-1.1.sh, test-tls-module.sh): their last line and what the
# harness printed. Set $name (the script's name in its messages) first.

# summary PASSED FAILED: the closing "N passed, M failed" line; exits 0 only
# when nothing failed and something passed.
summary() {
    echo "$1 passed, $2 failed"
    [ "$2" -eq 0 ] && [ "$1" -gt 0 ]
    exit $?
}

say() { echo "$name: $*"; }

# harness_count LOG [show]: sets $passed and $failed from LOG's [ok] and
# [err] / [exception] lines; with "show", prints each test's line and, when
# the harness did not finish, its last lines. The harness repeats each [err]
# line in its closing list, so counting stops there; a harness that stopped
# early (crash, exception, timeout) counts as a failure.
harness_count() {
    plain=$(sed 's/\x1b\[[0-9;]*m//g; /The following tests failed/q' "$1")
    [ "${2:-}" = show ] && printf '%s\n' "$plain" | grep -E '^\[(ok|err|exception|ignore|skip)' | cut -c1-240
    passed=$(printf '%s\n' "$plain" | grep -c '^\[ok\]: ')
    failed=$(printf '%s\n' "$plain" | grep -c '^\[\(err\|exception\)\]: ')
    if ! printf '%s\n' "$plain" | grep -q 'All tests passed without errors!'; then
        [ "${2:-}" = show ] && tail -20 "$1" | cut -c1-240
        [ "$failed" -gt 0 ] || failed=1
    fi
}
