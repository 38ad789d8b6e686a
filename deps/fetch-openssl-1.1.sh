#!/bin/sh
# OpenSSL 1.1.1 to build and test against (make test-openssl-1.1), from
# Debian 11's packages libssl1.1 and libssl-dev as pinned in
# deps/openssl-1.1.mk, never installed: the .debs are extracted under
# build/openssl-1.1/ with dpkg-deb -x.
#
#   deps/fetch-openssl-1.1.sh        fetch (when needed) and extract; prints one
#                                    line on stdout, "prefix <dir>": <dir>/include
#                                    and <dir>/lib, as upstream's OPENSSL_PREFIX wants
#   deps/fetch-openssl-1.1.sh pins   print deps/openssl-1.1.mk's lines for the
#                                    build the suite holds now (to update the pin)
#
# Each .deb comes from, in order (and is checked against its pinned SHA-256):
#   OPENSSL11_DEB_DIR=<dir>  a directory holding the pinned .debs, supplied by hand
#   deps/<file>.deb          a download cached by an earlier run
#   apt-get download         through a private sources list (in build/apt-openssl-1.1)
#                            for the security mirror this machine already uses
#                            (deps/debian-mirror.sh security); the system's apt
#                            configuration and package state are not touched
# Everything but the result goes to stderr.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
conf="$top/deps/openssl-1.1.mk"
pin() { sed -n "s/^$1 = //p" "$conf"; }
suite=$(pin OPENSSL11_SUITE)
version=$(pin OPENSSL11_VERSION)
arch=$(pin OPENSSL11_ARCH)
dest="$top/build/openssl-1.1"
work="$top/build/apt-openssl-1.1"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "openssl-1.1: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# A private apt configuration: only $suite of the security mirror, no system state.
apt_private() {
    command -v apt-get > /dev/null 2>&1 || die "apt-get is not installed"
    mirror=$("$top/deps/debian-mirror.sh" security) || die "no Debian security mirror found in the apt configuration"
    mkdir -p "$work/lists/partial" "$work/parts" "$work/cache/archives/partial"
    echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/sources.list"
    set -- -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts" \
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null \
        -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)"
    say "reading the $suite index from $mirror"
    apt-get -q "$@" update > "$work/update.log" 2>&1 ||
        die "apt-get update of a private list for $mirror $suite failed (see ${work#"$top"/}/update.log)"
    apt_args=$*
}

if [ "${1:-}" = pins ]; then
    apt_private
    # shellcheck disable=SC2086 # the options, split as set
    apt-cache $apt_args show libssl1.1 libssl-dev 2> /dev/null | awk -v suite="$suite" '
        function flush() { if (pkg == "") return; key = (pkg == "libssl1.1") ? "LIBSSL" : "DEV";
            if (!(key in seen)) { seen[key] = 1; out[key] = sprintf("OPENSSL11_%s_DEB = %s\nOPENSSL11_%s_SHA256 = %s\nOPENSSL11_%s_SIZE = %s\n", key, file, key, sha, key, size) }
            if (key == "LIBSSL" && ver == "") ver = v; pkg = "" }
        /^Package: / { flush(); pkg = $2 }
        /^Version: / { v = $2 }
        /^Architecture: / { a = $2 }
        /^Filename: / { file = $2; sub(".*/", "", file) }
        /^SHA256: / { sha = $2 }
        /^Size: / { size = $2 }
        END { flush(); printf "OPENSSL11_SUITE = %s\nOPENSSL11_VERSION = %s\nOPENSSL11_ARCH = %s\n%s%s", suite, ver, a, out["LIBSSL"], out["DEV"] }'
    exit 0
fi

have_arch=$(dpkg --print-architecture 2> /dev/null || echo unknown)
[ "$have_arch" = "$arch" ] ||
    die "deps/openssl-1.1.mk pins the $arch packages; this machine is $have_arch (update the pin: deps/fetch-openssl-1.1.sh pins)"
command -v dpkg-deb > /dev/null 2>&1 || die "dpkg-deb is not installed"

# verify FILE KEY: true when FILE is the pinned .deb KEY (LIBSSL, DEV).
verify() {
    if [ ! -f "$1" ]; then
        why="no such file"
        return 1
    fi
    got_sha=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got_sha" != "$(pin "OPENSSL11_$2_SHA256")" ]; then
        why="checksum mismatch: sha256 $got_sha, $(wc -c < "$1" | tr -d ' ') bytes (want $(pin "OPENSSL11_$2_SHA256"), $(pin "OPENSSL11_$2_SIZE") bytes)"
        return 1
    fi
}

# fetch KEY PACKAGE: got= the verified .deb in deps/ (or OPENSSL11_DEB_DIR).
fetch() {
    name=$(pin "OPENSSL11_$1_DEB")
    if [ -n "${OPENSSL11_DEB_DIR:-}" ]; then
        verify "$OPENSSL11_DEB_DIR/$name" "$1" || die "OPENSSL11_DEB_DIR=$OPENSSL11_DEB_DIR: $name: $why"
        got="$OPENSSL11_DEB_DIR/$name"
        return 0
    fi
    cache="$top/deps/$name"
    if verify "$cache" "$1"; then
        got=$cache
        return 0
    fi
    [ -f "$cache" ] && { say "discarding the cached $cache: $why"; rm -f "$cache"; }
    [ -n "${apt_args:-}" ] || apt_private
    rm -rf "$work/download"
    mkdir -p "$work/download"
    say "downloading $2=$version ($suite)"
    # shellcheck disable=SC2086 # the options, split as set
    if ! (cd "$work/download" && apt-get -q $apt_args download "$2=$version") > "$work/download.log" 2>&1; then
        say "apt-get download $2=$version failed (see ${work#"$top"/}/download.log):"
        tail -n 3 "$work/download.log" >&2
        die "the security archive keeps only its newest build: if $version was replaced, update deps/openssl-1.1.mk (deps/fetch-openssl-1.1.sh pins), or supply the pinned .debs with OPENSSL11_DEB_DIR=<dir>"
    fi
    verify "$work/download/$name" "$1" || die "downloaded $name: $why"
    mv "$work/download/$name" "$cache"
    say "downloaded and verified ${cache#"$top"/}"
    got=$cache
}

stamp=$(sed -n 's/^OPENSSL11_.*_SHA256 = //p' "$conf" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dest/.stamp" 2> /dev/null)" != "$stamp" ]; then
    fetch LIBSSL libssl1.1
    libssl=$got
    fetch DEV libssl-dev
    dev=$got
    rm -rf "$dest" "$work"
    mkdir -p "$dest/root"
    dpkg-deb -x "$libssl" "$dest/root"
    dpkg-deb -x "$dev" "$dest/root"
    # The layout OPENSSL_PREFIX wants: include/openssl/ (Debian keeps
    # opensslconf.h in a multiarch directory) and lib/ (the extracted library
    # directory itself, so the rpath and ldd name it).
    so=$(find "$dest/root/usr/lib" -name libssl.so.1.1 | head -n 1)
    [ -n "$so" ] || die "no libssl.so.1.1 in $libssl"
    libdir=$(dirname "$so")
    multiarch=$(basename "$libdir")
    mkdir -p "$dest/include/openssl"
    cp -p "$dest/root/usr/include/openssl/"*.h "$dest/include/openssl/"
    cp -p "$dest/root/usr/include/$multiarch/openssl/"*.h "$dest/include/openssl/"
    ln -s "root/usr/lib/$multiarch" "$dest/lib"
    echo "$stamp" > "$dest/.stamp"
    say "extracted OpenSSL $version into ${dest#"$top"/} (libraries in ${libdir#"$top"/})"
fi
echo "prefix $dest"
