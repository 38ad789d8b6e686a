#!/bin/sh
# Check an installation made by `make install`: the files upstream's install
# lays out, and the installed server, started with TLS and
# tls-ocsp-stapling yes, staples a verified "good" response.
#
#   utils/install-test.sh PREFIX   check what `make install PREFIX=PREFIX` installed
#   utils/install-test.sh          install into build/install-test/prefix with
#                                  `make install` first, then check it
#
# The stapling check is utils/demo.sh run on PREFIX/bin (--bin), in
# build/install-test/demo: a throw-away PKI (tests/helpers/ocsp-pki.sh), the
# test OCSP responder (tests/helpers/ocsp-responder.tcl) and the installed
# valkey-server on 127.0.0.1, then `openssl s_client -status`; the demo stops
# everything it started. Ends with "1 passed, 0 failed" or "0 passed, 1 failed".
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
work=$top/build/install-test

say() { printf 'install-test: %s\n' "$*"; }
result() {
    if [ "$1" = ok ]; then
        echo "[ok]: the installed valkey-server staples a verified good OCSP response"
        echo "1 passed, 0 failed"
        exit 0
    fi
    echo "[err]: the installation at $prefix: $2"
    echo "0 passed, 1 failed"
    exit 1
}

mkdir -p "$work"
case $# in
0)
    prefix=$work/prefix
    rm -rf "$prefix"
    say "make install PREFIX=${prefix#"$top"/}"
    make -C "$top" --no-print-directory install PREFIX="$prefix" > "$work/install.log" 2>&1 || {
        tail -n 20 "$work/install.log"
        result fail "make install failed (log: ${work#"$top"/}/install.log)"
    }
    ;;
1)
    prefix=$(cd "$1" 2> /dev/null && pwd) || { prefix=$1; result fail "no such directory"; }
    ;;
*)
    echo "usage: $0 [PREFIX]" >&2
    exit 2
    ;;
esac

# What upstream's install makes: three programs, three links to the server,
# and the redis-* compatibility links (USE_REDIS_SYMLINKS=yes, its default).
bin=$prefix/bin
for f in valkey-server valkey-cli valkey-benchmark; do
    if [ ! -f "$bin/$f" ] || [ -L "$bin/$f" ] || [ ! -x "$bin/$f" ]; then
        result fail "$f is not installed in $bin"
    fi
done
for f in valkey-sentinel valkey-check-aof valkey-check-rdb; do
    [ "$(readlink "$bin/$f" 2> /dev/null)" = valkey-server ] || result fail "$f is not a link to valkey-server in $bin"
done
redis=""
for f in server cli benchmark sentinel check-aof check-rdb; do
    [ -L "$bin/redis-$f" ] && redis="$redis redis-$f"
done
say "installed in $bin: valkey-server valkey-cli valkey-benchmark, links valkey-sentinel valkey-check-aof valkey-check-rdb${redis:+,$redis}"

# From $work, so that the demo names every path in full.
if (cd "$work" && "$top/utils/demo.sh" --bin "$bin" --dir "$work/demo") > "$work/demo.log" 2>&1; then
    rc=0
else
    rc=$?
fi
grep -E '^  (binary|server|OCSP Response Status|Cert Status)' "$work/demo.log" || true
if [ "$rc" -ne 0 ]; then
    tail -n 20 "$work/demo.log"
    result fail "the stapling check failed (exit $rc; log: ${work#"$top"/}/demo.log)"
fi
grep -q "^  binary      $bin/valkey-server\$" "$work/demo.log" ||
    result fail "the check did not run $bin/valkey-server (log: ${work#"$top"/}/demo.log)"
grep -q '^  Cert Status: good$' "$work/demo.log" ||
    result fail "openssl s_client -status saw no \"Cert Status: good\" (log: ${work#"$top"/}/demo.log)"
result ok
