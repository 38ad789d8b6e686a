#!/bin/sh
# `make test`: our tests plus upstream's tests of what our patches touch, all in TLS
# mode, through ./runtest. Ends with one plain line "N passed, M failed"
# counted from the harness's own [ok] / [err] / [exception] lines.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
# The selected release (VALKEY_VERSION): its tree $release_tree.
. "$top/deps/release.sh"
log="$top/build/test.log"
[ "$release_tree" = "$top/build/valkey" ] || log="$top/build/test-$version.log"
# Ours, then upstream's tests of the files our patches touch: TLS, CONFIG,
# INFO, valkey-cli / valkey-benchmark (cli_common.c), replication and the
# cluster bus over TLS (tls.c's outgoing connections).
tests="unit/tls-ocsp unit/tls-ocsp-sources unit/tls-ocsp-peers unit/tls-crl unit/tls-crl-links unit/tls-crl-urls unit/tls unit/introspection unit/info
integration/valkey-cli integration/valkey-benchmark integration/replication-4 unit/cluster/links"
args=""
for t in $tests; do
    [ -f "$top/tests/$t.tcl" ] || [ -f "$release_tree/tests/$t.tcl" ] && args="$args --single $t"
done
# shellcheck disable=SC2086
"$top/runtest" --tls --clients "${TEST_CLIENTS:-4}" $args "$@" 2>&1 | tee "$log"
name=run-tests
. "$top/utils/test-lib.sh"
harness_count "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
