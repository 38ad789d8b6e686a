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

# run_ocsp_files TLS_OPTION PORT [harness arguments]: the last step of the
# scripts that test another build of ours ($tree, built between $start and
# $built; its log $log), after one check of their own passed: our three OCSP
# files, unit/tls-crl, unit/tls-crl-links and unit/tls-crl-urls with
# TLS_OPTION (--tls or --tls-module), the harness on PORT and its servers
# from PORT + 32, ports of their own below the ephemeral range so that no
# other run or outgoing connection holds them. Exits via summary.
run_ocsp_files() {
    tls_option=$1
    port=$2
    shift 2
    cd "$tree" || summary 1 1
    if [ ! -f tests/tls/valkey.dh ]; then
        ./utils/gen-test-certs.sh > tests/tls-gen.log 2>&1 || summary 1 1
    fi
    args=""
    for t in unit/tls-ocsp unit/tls-ocsp-sources unit/tls-ocsp-peers unit/tls-crl unit/tls-crl-links unit/tls-crl-urls; do
        [ -f "tests/$t.tcl" ] && args="$args --single $t"
    done
    say "running$args with $tls_option (log: ${log#"$top"/})"
    # shellcheck disable=SC2086
    ./runtest "$tls_option" --clients 2 --port "$port" --baseport $((port + 32)) $args "$@" > "$log" 2>&1
    harness_count "$log" show
    say "build $((built - start)) s, tests $(($(date +%s) - built)) s, $(($(date +%s) - start)) s in all"
    summary $((passed + 1)) "$failed"
}
