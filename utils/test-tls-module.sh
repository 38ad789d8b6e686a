#!/bin/sh
# `make test-tls-module`: our OCSP test files against Valkey built with TLS as
# a module (BUILD_TLS=module, as Alpine and the Fedora/EL packages build it),
# in a tree of its own.
#
#   utils/test-tls-module.sh         build build/valkey-tls-module, run our three OCSP files
#   utils/test-tls-module.sh ARGS    ARGS go to the harness (e.g. --only PATTERN)
#
# The tree is assembled like build/valkey (deps/assemble.sh with VALKEY_TREE)
# and built with BUILD_TLS=module: valkey-server without OpenSSL, and
# valkey-tls.so holding tls.c and the OpenSSL side of OCSP stapling
# (tls_ocsp.h says which files). The harness runs with --tls-module, so every
# server it starts loads valkey-tls.so; the servers our tests start by hand
# load it too (ocsp_tls_module_config), and one server without it shows what
# happens then. First, ldd must show that valkey-server loads no libssl or
# libcrypto, and that valkey-tls.so and the tools do.
#
# Ends with one line "N passed, M failed" (the harness's tests plus the ldd
# check); exit status 0 only when M is 0 and N is not.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tree="$top/build/valkey-tls-module"
jobs=$(nproc 2> /dev/null || echo 1)
log="$tree.test.log"

name=test-tls-module
. "$top/utils/test-lib.sh"

start=$(date +%s)
VALKEY_TREE=$tree "$top/deps/assemble.sh" || summary 0 1
GIT_CEILING_DIRECTORIES="$top/build" make -C "$tree" -j"$jobs" BUILD_TLS=module > "$tree.build.log" 2>&1 || {
    tail -40 "$tree.build.log"
    say "the BUILD_TLS=module build failed (log: ${tree#"$top"/}.build.log)"
    summary 0 1
}
built=$(date +%s)
say "BUILD_TLS=module build ready in $((built - start)) s (log: ${tree#"$top"/}.build.log)"

# links FILE: the libssl / libcrypto FILE loads, one word each, or nothing.
links() { ldd "$1" 2>&1 | sed -n 's/^[[:space:]]*\(libssl\|libcrypto\)\.so.*/\1/p' | sort -u | tr '\n' ' '; }
ldd_ok=yes
server_links=$(links "$tree/src/valkey-server")
say "ldd src/valkey-server: ${server_links:-no libssl, no libcrypto}"
[ -z "$server_links" ] || ldd_ok=no
for f in valkey-tls.so valkey-cli valkey-benchmark; do
    got=$(links "$tree/src/$f")
    say "ldd src/$f: $got"
    [ "$got" = "libcrypto libssl " ] || ldd_ok=no
done
if [ "$ldd_ok" = yes ]; then
    echo "[ok]: valkey-server loads no OpenSSL; valkey-tls.so, valkey-cli and valkey-benchmark load libssl and libcrypto"
else
    # A module build whose server still links OpenSSL proves nothing.
    echo "[err]: the module build's binaries do not link OpenSSL as they should"
    summary 0 1
fi

run_ocsp_files --tls-module 24079 "$@"
