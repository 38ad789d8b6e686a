#!/bin/sh
# Patch-set maintenance.
#   utils/patchset.sh tree        build/valkey becomes a git repository: upstream
#                                 as the first commit, then one commit a patch
#   utils/patchset.sh patches     regenerate patches/ and series from those commits
#   utils/patchset.sh check       apply the series to pristine upstream, build after
#                                 each patch, and check the combined patch applies
#   utils/patchset.sh dist FILE   write the combined patch (hooks + our files)
# Each works on the release VALKEY_VERSION selects (deps/release.sh): by
# default deps/upstream.mk's, with patches/series and build/valkey; for
# another pin deps/upstream-<version>.mk, its VALKEY_PATCHES directory
# (patches/8.1 for 8.1.1) and build/valkey-<version>.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/deps/release.sh"
tree="$release_tree"
tree_name=${tree#"$top"/}
patches_name=${patches_dir#"$top"/}
jobs=$(nproc 2> /dev/null || echo 1)

say() { echo "patchset: $*" >&2; }
die() { say "$*"; exit 1; }
pristine() { "$top/deps/assemble.sh" pristine "$1"; }
series() { grep -v '^[[:space:]]*\(#.*\)\{0,1\}$' "$patches_dir/series"; }

# Fixed identity and dates: commits, and so exports, are the same every time.
tree_git() {
    GIT_AUTHOR_NAME="valkey-ocsp" GIT_AUTHOR_EMAIL="patches@valkey-ocsp.invalid" \
        GIT_COMMITTER_NAME="valkey-ocsp" GIT_COMMITTER_EMAIL="patches@valkey-ocsp.invalid" \
        GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
        GIT_CEILING_DIRECTORIES="$top/build" git -C "$tree" "$@"
}

# The why-header of a patch: everything before its first diff.
patch_header() { sed -n '/^diff --git /q;p' "$1" | sed '${/^---$/d}'; }

# Drop the "index <blob>..<blob>" lines: hashes a reviewer does not need.
strip_index() { sed '/^index [0-9a-f]\{7,\}\.\.[0-9a-f]\{7,\}/d'; }

cmd_tree() {
    if tree_git rev-parse -q --verify upstream > /dev/null 2>&1; then
        say "$tree_name is already a git tree"
        return
    fi
    rm -rf "$tree/.git" # the empty repository assemble.sh leaves
    work="$top/build/tree.tmp"
    # Pristine upstream first, then each patch: commits on a scratch tree whose
    # .git then moves into the tree, which already holds the same files.
    pristine "$work"
    GIT_CEILING_DIRECTORIES="$top/build" git -C "$work" init -q
    git -C "$work" config status.showUntrackedFiles no
    tree_w() { tree="$work" tree_git "$@"; }
    tree_w add -A
    tree_w commit -q -m "Valkey $version (pristine upstream)"
    tree_w tag upstream
    for p in $(series); do
        patch -d "$work" -p1 --batch --forward --quiet --no-backup-if-mismatch -i "$patches_dir/$p" ||
            die "patch $p failed to apply"
        tree_w add -A
        patch_header "$patches_dir/$p" | tree_w commit -q -F -
    done
    mv "$work/.git" "$tree/.git"
    rm -rf "$work"
    tree_git reset -q
    say "$tree_name is a git tree: tag 'upstream' + $(series | wc -l) patch commits."
    say "Edit and commit (or rebase) there, then run: make patches${VALKEY_VERSION:+ VALKEY_VERSION=$VALKEY_VERSION}"
}

# A file name from a subject: lower case words, cut at a word under 50 chars.
slug() {
    s=$(tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
    if [ ${#s} -gt 50 ]; then
        s=$(printf '%s' "$s" | cut -c1-51)
        s=${s%-*}
    fi
    printf '%s\n' "$s"
}

cmd_patches() {
    tree_git rev-parse -q --verify upstream > /dev/null 2>&1 || die "$tree_name is not a git tree: run make tree first"
    [ -z "$(tree_git status --porcelain)" ] || die "$tree_name has uncommitted changes: commit them first"
    new="$top/build/patches.tmp"
    rm -rf "$new"
    mkdir -p "$new"
    n=0
    echo "# Hook patches into upstream Valkey, applied in this order (make patches)." > "$new/series"
    for c in $(tree_git rev-list --reverse upstream..HEAD); do
        n=$((n + 1))
        name=$(printf '%04d-%s.patch' "$n" "$(tree_git log -1 --format=%s "$c" | slug)")
        {
            tree_git log -1 --format=%B "$c" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
            echo "---"
            tree_git diff --no-color --no-ext-diff --no-renames -U3 "$c^" "$c" | strip_index
        } > "$new/$name"
        echo "$name" >> "$new/series"
    done
    mkdir -p "$patches_dir"
    if [ -f "$patches_dir/series" ]; then for p in $(series); do rm -f "$patches_dir/$p"; done; fi
    mv "$new"/* "$patches_dir/"
    rm -rf "$new"
    say "wrote $n patches to $patches_name/ (see git diff $patches_name/)"
}

cmd_dist() {
    out=$1
    mkdir -p "$(dirname "$out")"
    tmp="$out.tmp"
    {
        echo "OCSP stapling for Valkey $version: the hook patches of $patches_name/series,"
        echo "then the new files. Apply in a pristine Valkey $version tree with patch -p1"
        echo "(or git apply), then build with: make BUILD_TLS=yes"
        echo
        for p in $(series); do
            echo "Patch $p:"
            cat "$patches_dir/$p"
            echo
        done
        (cd "$top" && git ls-files src tests) | while read -r f; do
            (cd "$top" && git diff --no-index --no-color --no-ext-diff /dev/null "$f") | strip_index || true
        done
    } > "$tmp"
    mv "$tmp" "$out"
    say "wrote $out"
}

# check_dist FILE DIR: FILE applies to the pristine tree DIR with patch and git.
check_dist() {
    patch -d "$2" -p1 --dry-run --batch --quiet < "$1" > /dev/null || die "$1 does not apply with patch -p1"
    (cd "$2" && git apply --check "$1") || die "$1 does not apply with git apply"
    say "$(basename "$1") applies to pristine upstream (patch -p1 and git apply)"
}

cmd_check() {
    work="$top/build/check-$version"
    pristine "$work"
    cp -R "$work" "$work.pristine"
    # Our new files first (the first hook compiles them), then patch by patch.
    (cd "$top" && git ls-files src tests) | while read -r f; do
        mkdir -p "$work/$(dirname "$f")"
        cp "$top/$f" "$work/$f"
    done
    for p in $(series); do
        patch -d "$work" -p1 --batch --forward --quiet --no-backup-if-mismatch -i "$patches_dir/$p" ||
            die "$p does not apply"
        say "$p applies; building"
        GIT_CEILING_DIRECTORIES="$top/build" make -C "$work" -j"$jobs" BUILD_TLS=yes > "$work.log" 2>&1 ||
            { tail -n 30 "$work.log" >&2; die "the tree does not build after $p (log: $work.log)"; }
    done
    cmd_dist "$work.dist.patch"
    check_dist "$work.dist.patch" "$work.pristine"
    # Applied for real, the combined patch must give the very sources that
    # just built, so a tree patched with it builds with make BUILD_TLS=yes too.
    patch -d "$work.pristine" -p1 --batch --quiet < "$work.dist.patch" > /dev/null
    sed -n 's|^+++ b/||p' "$work.dist.patch" | while read -r f; do
        cmp -s "$work.pristine/$f" "$work/$f" || die "the combined patch and the series differ on $f"
    done
    say "the combined patch gives the same sources as the series that built"
    rm -rf "$work" "$work.pristine" "$work.dist.patch" "$work.log"
    say "OK: $(series | wc -l) patches apply to pristine Valkey $version and the tree builds after each"
}

case "${1:-}" in
tree) cmd_tree ;;
patches) cmd_patches ;;
check) cmd_check ;;
dist)
    cmd_dist "$2"
    check_tmp="$top/build/dist-check-$version"
    pristine "$check_tmp"
    check_dist "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")" "$check_tmp"
    rm -rf "$check_tmp"
    ;;
*) die "usage: $0 tree|patches|check|dist FILE" ;;
esac
