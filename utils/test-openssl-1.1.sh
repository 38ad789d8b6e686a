#!/bin/sh
# `make test-openssl-1.1`: our OCSP test files against a server built with
# OpenSSL 1.1.1 (the oldest OpenSSL our code keeps paths for), in a tree of
# its own.
#
#   utils/test-openssl-1.1.sh         build build/valkey-openssl-1.1, run our three OCSP files
#   utils/test-openssl-1.1.sh ARGS    ARGS go to the harness (e.g. --only PATTERN)
#
# OpenSSL 1.1.1 is Debian 11's libssl1.1 + libssl-dev, pinned in
# deps/openssl-1.1.mk and extracted under build/openssl-1.1 by
# deps/fetch-openssl-1.1.sh, never installed. The tree is assembled like
# build/valkey (deps/assemble.sh with VALKEY_TREE: pristine upstream,
# patches/series, links to our live src/ and tests/ files, so a second run
# rebuilds only what changed) and built with BUILD_TLS=yes against it:
# upstream's OPENSSL_PREFIX for headers and libraries, and an rpath to the
# extracted library directory so the binaries load that libssl, not the
# system's; ldd shows it (checked). The test clients (openssl, Tcl) keep the
# system's OpenSSL.
#
# Ends with one line "N passed, M failed" (the harness's tests plus the ldd
# check); exit status 0 only when M is 0 and N is not.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tree="$top/build/valkey-openssl-1.1"
jobs=$(nproc 2> /dev/null || echo 1)
log="$tree.test.log"

name=test-openssl-1.1
. "$top/utils/test-lib.sh"

start=$(date +%s)
prefix=$("$top/deps/fetch-openssl-1.1.sh") || summary 0 1
prefix=${prefix#prefix }
libdir=$(readlink -f "$prefix/lib")
VALKEY_TREE=$tree "$top/deps/assemble.sh" || summary 0 1
# --disable-new-dtags: an RPATH, which also serves libssl's own need of
# libcrypto (a RUNPATH serves only the binary's direct needs).
GIT_CEILING_DIRECTORIES="$top/build" make -C "$tree" -j"$jobs" BUILD_TLS=yes \
    OPENSSL_PREFIX="$prefix" SERVER_LDFLAGS="-Wl,-rpath,$libdir -Wl,--disable-new-dtags" \
    > "$tree.build.log" 2>&1 || {
    tail -40 "$tree.build.log"
    say "the build against OpenSSL 1.1.1 failed (log: ${tree#"$top"/}.build.log)"
    summary 0 1
}
built=$(date +%s)
say "build against OpenSSL $(sed -n 's/^OPENSSL11_VERSION = //p' "$top/deps/openssl-1.1.mk") ready in $((built - start)) s (log: ${tree#"$top"/}.build.log)"

# Each binary must load libssl and libcrypto 1.1 from the extracted directory.
ldd_ok=yes
for b in valkey-server valkey-cli valkey-benchmark; do
    out=$(ldd "$tree/src/$b" 2>&1)
    for lib in libssl libcrypto; do
        line=$(printf '%s\n' "$out" | grep "^[[:space:]]*$lib\.so" | sed 's/^[[:space:]]*//; s/ (0x[0-9a-f]*)$//')
        [ "$b" = valkey-server ] && say "ldd src/$b: $line"
        [ "$line" = "$lib.so.1.1 => $libdir/$lib.so.1.1" ] || {
            say "src/$b does not load $lib.so.1.1 from ${libdir#"$top"/}: ${line:-no $lib at all}"
            ldd_ok=no
        }
    done
done
if [ "$ldd_ok" = yes ]; then
    echo "[ok]: valkey-server, valkey-cli and valkey-benchmark load libssl.so.1.1 and libcrypto.so.1.1 from ${libdir#"$top"/}"
else
    # Testing another OpenSSL than meant to proves nothing.
    echo "[err]: the binaries do not load OpenSSL 1.1.1 from ${libdir#"$top"/}"
    summary 0 1
fi

run_ocsp_files --tls 23079 "$@"
