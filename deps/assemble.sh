#!/bin/sh
# Assemble the Valkey tree in build/valkey: pristine upstream + patches/series
# + links to this repository's own src/ and tests/ files. With VALKEY_VERSION
# set to another pinned release (deps/upstream-<version>.mk), its tree
# build/valkey-<version> from its own series (patches/8.1/series for 8.1.1).
#
#   deps/assemble.sh            assemble when needed, then refresh the links
#   deps/assemble.sh links      only refresh the links
#   deps/assemble.sh pristine DIR  unpack pristine upstream into DIR
#
# The tree carries a stamp naming its source and patch set. It is written only
# after every patch applied, so a failed or interrupted assembly never looks
# finished. When only the patches changed, the new result is synced into the
# existing tree file by file, so make rebuilds just what the change touched.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
# The selected release (VALKEY_VERSION): $conf, $patches_dir, $release_tree.
. "$top/deps/release.sh"
# VALKEY_TREE: another tree to assemble the same way (the sanitizer builds).
tree="${VALKEY_TREE:-$release_tree}"
stamp_name=.ocsp-patchset-stamp
topdir=$(pin VALKEY_TOPDIR)

say() { echo "assemble: $*" >&2; }

series() { grep -v '^[[:space:]]*\(#.*\)\{0,1\}$' "$patches_dir/series"; }

# What the tree is made of; VALKEY_TARBALL is verified, so it is the pin too.
patchset_id() {
    {
        if [ -n "${VALKEY_SRC:-}" ]; then echo "dir $(cd "$VALKEY_SRC" && pwd)"; else pin VALKEY_TARBALL_SHA256; fi
        for p in $(series); do
            echo "$p"
            cat "$patches_dir/$p"
        done
    } | sha256sum | cut -d' ' -f1
}

# unpack_pristine DIR: DIR holds pristine upstream and nothing else.
unpack_pristine() {
    src=$("$top/deps/fetch-upstream.sh")
    rm -rf "$1"
    mkdir -p "$1"
    case "$src" in
    "tarball "*)
        tar -xf "${src#tarball }" -C "$1" --strip-components=1 "$topdir/" ;;
    "dir "*)
        (cd "${src#dir }" && tar --exclude=.git -cf - .) | tar -xf - -C "$1" ;;
    esac
}

# unpack_and_patch DIR: DIR gets pristine upstream with the series applied.
unpack_and_patch() {
    dest=$1
    unpack_pristine "$dest"
    for p in $(series); do
        if ! patch -d "$dest" -p1 --batch --forward --quiet --no-backup-if-mismatch -i "$patches_dir/$p" >&2; then
            say "patch $p FAILED to apply (${patches_dir#"$top"/}/series order); nothing was assembled"
            return 1
        fi
    done
}

# Link every file of ours into the tree (relative links: an edit needs no
# re-assembly), and drop links whose file we removed.
refresh_links() {
    [ -d "$tree" ] || return 0
    for dir in src tests; do
        (cd "$top" && find "$dir" -type f \( -name '*.c' -o -name '*.h' -o -path 'tests/*' \) \
            ! -path 'tests/tmp/*' ! -path 'tests/tls/*') |
            while read -r rel; do
                link="$tree/$rel"
                mkdir -p "$(dirname "$link")"
                want=$(realpath -s --relative-to="$(dirname "$link")" "$top/$rel")
                [ "$(readlink "$link" 2>/dev/null)" = "$want" ] || ln -sfn "$want" "$link"
            done
    done
    find "$tree/src" "$tree/tests" -type l ! -exec test -e {} \; -lname '*../src/*' -delete 2> /dev/null || true
    find "$tree/tests" -type l ! -exec test -e {} \; -lname '*../tests/*' -delete 2> /dev/null || true
}

# sync_into NEW: make the existing tree's upstream files equal to NEW's,
# touching only the files that differ. Both carry a .ocsp-manifest.
sync_into() {
    new=$1
    diff -rq "$new" "$tree" 2> /dev/null | while read -r line; do
        case "$line" in
        "Files $new/"*" differ")
            rel=${line#Files "$new"/}
            rel=${rel%% and *}
            # Our own files are links in the tree; never overwrite them.
            [ -L "$tree/$rel" ] || { cp "$new/$rel" "$tree/$rel"; say "updated $rel"; } ;;
        "Only in $new"*)
            d=${line#Only in "$new"}
            d=${d%%: *}
            f=${line##*: }
            mkdir -p "$tree$d"
            cp -R "$new$d/$f" "$tree$d/$f"
            say "added ${d#/}/$f" ;;
        esac
    done
    # Files a previous patch set added and this one does not.
    comm -23 "$tree/.ocsp-manifest" "$new/.ocsp-manifest" | while read -r rel; do
        [ -L "$tree/$rel" ] || rm -f "$tree/$rel"
    done
}

case "${1:-}" in
links)
    refresh_links
    exit 0 ;;
pristine)
    unpack_pristine "$2"
    exit 0 ;;
esac

want=$(patchset_id)
if [ -n "${VALKEY_TARBALL:-}" ]; then
    # A tarball given by hand is always checked, even for an assembled tree.
    "$top/deps/fetch-upstream.sh" > /dev/null
fi
if [ -f "$tree/$stamp_name" ] && [ "$(cat "$tree/$stamp_name")" = "$want" ]; then
    refresh_links
    exit 0
fi

mkdir -p "$top/build"
tmp="$tree.assembling"
trap 'rm -rf "$tmp"' EXIT INT TERM
unpack_and_patch "$tmp"
(cd "$tmp" && find . -type f | sort) > "$tmp/.ocsp-manifest"

if [ -d "$tree" ] && [ -f "$tree/.ocsp-manifest" ]; then
    say "patch set changed: syncing ${tree#"$top"/}"
    sync_into "$tmp"
    cp "$tmp/.ocsp-manifest" "$tree/.ocsp-manifest"
else
    rm -rf "$tree"
    mv "$tmp" "$tree"
    say "assembled ${tree#"$top"/} ($(series | wc -l) patches)"
fi
# Upstream's mkreleasehdr.sh runs `git diff -- ../src ../deps` on every make;
# outside any repository git compares those two folders instead, whose
# output changes with every build, so each make would relink. An empty
# repository answers with nothing, every time (`make tree` fills it).
[ -e "$tree/.git" ] || git init -q "$tree"
echo "$want" > "$tree/$stamp_name"
refresh_links
