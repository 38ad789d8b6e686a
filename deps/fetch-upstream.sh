#!/bin/sh
# Find the pinned upstream Valkey source and print where it is, as one line on
# stdout: "tarball <file>" (checksum verified) or "dir <directory>".
# Everything else goes to stderr. Sources, in order:
#   VALKEY_SRC=<dir>       an upstream tree (not verified: for rebasing work)
#   VALKEY_TARBALL=<file>  a tarball supplied by hand (verified)
#   deps/<tarball>         a download cached by an earlier run (verified)
#   the Debian pool        the tarball itself from the pin's VALKEY_POOL_DIR on
#                          this machine's own mirror (a release whose source
#                          package apt-get can no longer fetch)
#   apt-get source         Debian's source package, through a private sources
#                          list built from this machine's own mirror
#   ../shared/upstream/    an offline copy, as a last resort (loudly)
#
#   deps/fetch-upstream.sh debian   Debian's packaging of the pinned release
#                          instead (make deb): prints "dsc <file>" and "debian
#                          <file>" (its .debian.tar.xz), each SHA-256-verified,
#                          from VALKEY_DEBIAN_DIR=<dir> (by hand), deps/ (an
#                          earlier download) or VALKEY_DEBIAN_POOL_DIR of the
#                          machine's own Debian mirror
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
# The selected release (VALKEY_VERSION): $conf, pin KEY.
. "$top/deps/release.sh"
name=$(pin VALKEY_TARBALL_NAME)
sha=$(pin VALKEY_TARBALL_SHA256)
size=$(pin VALKEY_TARBALL_SIZE)
debver=$(pin VALKEY_DEBIAN_VERSION)
cache="$top/deps/$name"
shared=${VALKEY_SHARED_UPSTREAM:-$top/../shared/upstream}/$name
tried=""

say() { echo "upstream: $*" >&2; }
note_tried() { tried="$tried
  - $*"; }

# verify FILE: true when FILE is the pinned tarball; says why not otherwise.
verify() {
    if [ ! -f "$1" ]; then
        why="no such file"
        return 1
    fi
    got_size=$(wc -c < "$1" | tr -d ' ')
    got_sha=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got_sha" != "$sha" ]; then
        why="checksum mismatch: sha256 $got_sha, $got_size bytes (want $sha, $size bytes)"
        return 1
    fi
    return 0
}

# mirror_get POOL_PATH: download POOL_PATH of the machine's own Debian mirror
# into deps/ (its base name) and verify it against $sha and $size.
mirror_get() {
    mirror=$("$top/deps/debian-mirror.sh" 2> /dev/null || true)
    if [ -z "$mirror" ]; then
        note_tried "Debian pool: no Debian mirror found in /etc/apt/sources.list{,.d/}"
        return 1
    fi
    url="$mirror/$1"
    mkdir -p "$top/build"
    part="$top/build/${1##*/}.part"
    say "downloading $url"
    if command -v curl > /dev/null 2>&1; then
        curl -fsSL --retry 2 --max-time 600 -o "$part" "$url" || { note_tried "curl $url: failed"; rm -f "$part"; return 1; }
    elif command -v wget > /dev/null 2>&1; then
        wget -q -T 60 -O "$part" "$url" || { note_tried "wget $url: failed"; rm -f "$part"; return 1; }
    else
        note_tried "Debian pool: neither curl nor wget is installed"
        return 1
    fi
    if ! verify "$part"; then
        note_tried "$url: $why"
        rm -f "$part"
        return 1
    fi
    mv "$part" "$top/deps/${1##*/}"
}

# Debian's packaging of the pinned release (make deb): KEY is DSC or TARBALL
# (VALKEY_DEBIAN_<KEY> in the pin); sets got= the verified file.
debian_file() {
    file=$(pin "VALKEY_DEBIAN_$1")
    [ -n "$file" ] || { say "$conf pins no Debian packaging (VALKEY_DEBIAN_$1)"; exit 1; }
    sha=$(pin "VALKEY_DEBIAN_$1_SHA256")
    size=$(pin "VALKEY_DEBIAN_$1_SIZE")
    if [ -n "${VALKEY_DEBIAN_DIR:-}" ]; then
        verify "$VALKEY_DEBIAN_DIR/$file" || { say "VALKEY_DEBIAN_DIR=$VALKEY_DEBIAN_DIR: $file: $why"; exit 1; }
        got="$(cd "$VALKEY_DEBIAN_DIR" && pwd)/$file"
        return 0
    fi
    got="$top/deps/$file"
    verify "$got" && return 0
    [ -f "$got" ] && { say "discarding the cached $got: $why"; rm -f "$got"; }
    if ! mirror_get "$(pin VALKEY_DEBIAN_POOL_DIR)/$file"; then
        say "cannot fetch Debian's $file:$tried"
        say "supply it by hand: VALKEY_DEBIAN_DIR=/dir/holding/it (sha256 $sha)"
        exit 1
    fi
    say "downloaded and verified $got"
}

if [ "${1:-}" = debian ]; then
    debian_file DSC
    dsc=$got
    debian_file TARBALL
    echo "dsc $dsc"
    echo "debian $got"
    exit 0
fi

if [ -n "${VALKEY_SRC:-}" ]; then
    if [ -f "$VALKEY_SRC/src/server.c" ] && [ -f "$VALKEY_SRC/src/tls.c" ]; then
        say "using the upstream tree VALKEY_SRC=$VALKEY_SRC (not checksum-verified)"
        echo "dir $(cd "$VALKEY_SRC" && pwd)"
        exit 0
    fi
    say "VALKEY_SRC=$VALKEY_SRC is not a Valkey source tree (no src/server.c, src/tls.c)"
    exit 1
fi

if [ -n "${VALKEY_TARBALL:-}" ]; then
    if verify "$VALKEY_TARBALL"; then
        say "using VALKEY_TARBALL=$VALKEY_TARBALL (sha256 verified)"
        echo "tarball $(cd "$(dirname "$VALKEY_TARBALL")" && pwd)/$(basename "$VALKEY_TARBALL")"
        exit 0
    fi
    say "VALKEY_TARBALL=$VALKEY_TARBALL is not the pinned Valkey $(pin VALKEY_VERSION) tarball: $why"
    say "supply the right file (Debian's $name, sha256 $sha) or unset VALKEY_TARBALL"
    exit 1
fi

if verify "$cache"; then
    say "using the cached download $cache (sha256 verified)"
    echo "tarball $cache"
    exit 0
fi
[ -f "$cache" ] && { say "discarding the cached $cache: $why"; rm -f "$cache"; }
note_tried "cached download $cache: $why"

apt_source() {
    # The mirror this machine already uses, from its own apt configuration.
    mirror=$("$top/deps/debian-mirror.sh" 2> /dev/null || true)
    if [ -z "$mirror" ]; then
        note_tried "apt-get source: no Debian mirror found in /etc/apt/sources.list{,.d/}"
        return 1
    fi
    if ! command -v apt-get > /dev/null 2>&1; then
        note_tried "apt-get source: apt-get is not installed"
        return 1
    fi
    work="$top/build/apt"
    rm -rf "$work"
    mkdir -p "$work/lists/partial" "$work/parts" "$work/download"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    for suite in unstable testing; do
        echo "deb-src [signed-by=$keyring] $mirror $suite main"
    done > "$work/sources.list"
    set -- -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts" \
        -o "Dir::State::Lists=$work/lists" -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)"
    say "fetching Debian's source package valkey=$debver from $mirror (unstable, testing)"
    if ! apt-get -q "$@" update > "$work/update.log" 2>&1; then
        note_tried "apt-get update of a private deb-src list for $mirror: failed (see $work/update.log)"
        return 1
    fi
    if ! (cd "$work/download" && apt-get -q "$@" source --download-only "valkey=$debver") > "$work/source.log" 2>&1; then
        note_tried "apt-get source --download-only valkey=$debver from $mirror: failed (see $work/source.log)"
        return 1
    fi
    if ! verify "$work/download/$name"; then
        note_tried "apt-get source valkey=$debver: $why"
        return 1
    fi
    mv "$work/download/$name" "$cache"
    rm -rf "$work"
    return 0
}

# The tarball itself, from the Debian pool of the machine's mirror.
pool_download() {
    pool=$(pin VALKEY_POOL_DIR)
    [ -n "$pool" ] || return 1
    mirror_get "$pool/$name"
}

if pool_download; then
    say "downloaded and verified $cache"
    echo "tarball $cache"
    exit 0
fi

if [ -z "$(pin VALKEY_POOL_DIR)" ] && apt_source; then
    say "downloaded and verified $cache"
    echo "tarball $cache"
    exit 0
fi

if verify "$shared"; then
    {
        echo "****************************************************************"
        echo "* upstream: FALLBACK: using the offline copy $shared"
        echo "* because no other source worked:$tried"
        echo "****************************************************************"
    } >&2
    echo "tarball $shared"
    exit 0
fi
note_tried "offline copy $shared: $why"

cat >&2 <<EOF
upstream: cannot find the pinned Valkey $(pin VALKEY_VERSION) source. Tried:$tried
Supply it by hand, then run make again, with one of:
  make VALKEY_TARBALL=/path/to/$name   (sha256 $sha)
  cp /path/to/$name $top/deps/
  make VALKEY_SRC=/path/to/valkey-source-tree
EOF
exit 1
