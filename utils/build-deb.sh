#!/bin/sh
# Debian packages of Valkey 9.1.2 with OCSP stapling (make deb), built from
# Debian's own packaging of 9.1.2 (valkey_9.1.2-1.dsc, pinned in
# deps/upstream.mk) with dpkg-buildpackage on this machine.
#
#   utils/build-deb.sh              ours, 9.1.2-1+ocsp1: build/deb/, then
#                                   dist/valkey-{server,tools,sentinel}_*.deb
#   utils/build-deb.sh debian-own   Debian's own 9.1.2-1, unpatched but for the
#                                   Debian 12 sysusers fix (make deb-debian-own):
#                                   build/deb-debian-own/, then dist/debian-own/
#                                   (Debian 12 has no valkey: the package test
#                                   installs ours over these)
#
# What we add to Debian's packaging (packaging/):
#   - packaging/changelog: the 9.1.2-1+ocsp1 entry, on top of Debian's;
#   - patches/series (our hook patches) and one generated patch adding our
#     files (src/tls_ocsp*.c and .h, our tests and their helpers), appended
#     to Debian's quilt series as debian/patches/ocsp/ (dpkg-buildpackage
#     applies the series, Debian's patches first);
#   - packaging/debian/*.patch, applied here to debian/ itself, since quilt
#     patches may not touch it: 0001 the sysusers fix (debian-own gets it
#     too), 0002 debian/rules running our tests in override_dh_auto_test.
#
# DEB_BUILD_OPTIONS is passed on: nocheck (no tests), ocsp-tests-only (only
# our tests, not upstream's half-hour suites); parallel=2 unless it says
# otherwise. Build dependencies: utils/install-deps.sh --deb (as root).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/deps/release.sh"
mode=${1:-ours}
case $mode in
ours)
    work=$top/build/deb
    out=$top/dist ;;
debian-own)
    work=$top/build/deb-debian-own
    out=$top/dist/debian-own ;;
*)
    echo "usage: $0 [debian-own]" >&2
    exit 2 ;;
esac

say() { echo "deb: $*" >&2; }
die() {
    say "$*"
    exit 1
}

for tool in dpkg-source dpkg-buildpackage dpkg-checkbuilddeps dh fakeroot; do
    command -v "$tool" > /dev/null 2>&1 ||
        die "$tool is missing: install the packaging tools and build dependencies first (as root: utils/install-deps.sh --deb)"
done

# Debian's packaging is of the default pin only.
[ "$version" = "$default_version" ] ||
    die "VALKEY_VERSION=$version: make deb packages $default_version only (Debian's valkey_$(pin VALKEY_DEBIAN_VERSION))"

# Debian's packaging is of the default pin only.
[ "$version" = "$default_version" ] ||
    die "VALKEY_VERSION=$version: make deb packages $default_version only (Debian's valkey_$(pin VALKEY_DEBIAN_VERSION))"

start=$(date +%s)
# Debian's .dsc and debian tarball, and the orig tarball it names (ours).
fetched=$("$top/deps/fetch-upstream.sh" debian) || die "cannot fetch Debian's packaging of $version"
dsc=$(printf '%s\n' "$fetched" | sed -n 's/^dsc //p')
debian_tar=$(printf '%s\n' "$fetched" | sed -n 's/^debian //p')
src=$("$top/deps/fetch-upstream.sh") || die "cannot fetch the $version orig tarball"
case $src in
"tarball "*) orig=${src#tarball } ;;
*) die "make deb needs the pinned orig tarball, not $src (unset VALKEY_SRC)" ;;
esac
debver=$(sed -n 's/^Version: //p' "$dsc")

rm -rf "$work"
mkdir -p "$work"
for f in "$dsc" "$debian_tar" "$orig"; do ln -s "$f" "$work/$(basename "$f")"; done
pkgdir=$work/valkey-$version
# The .dsc's checksums of both tarballs are checked here (its OpenPGP
# signature is not: the .dsc itself is pinned by SHA-256).
dpkg-source --no-copy -x "$work/$(basename "$dsc")" "$pkgdir" > "$work/extract.log" 2>&1 ||
    { cat "$work/extract.log" >&2; die "dpkg-source -x failed"; }
say "extracted Debian's valkey $debver into ${pkgdir#"$top"/}"

# apply_debian PATCH: one of packaging/debian/ to the debian/ directory.
apply_debian() {
    patch -d "$pkgdir" -p1 --batch --forward --quiet --no-backup-if-mismatch -i "$top/packaging/debian/$1" ||
        die "packaging/debian/$1 does not apply to Debian's $debver"
    say "applied packaging/debian/$1"
}
apply_debian 0001-sysusers-u-for-debian-12.patch

if [ "$mode" = ours ]; then
    apply_debian 0002-rules-run-the-ocsp-tests.patch
    # Our changelog entry on top: the packages' version, 9.1.2-1+ocsp1.
    cat "$top/packaging/changelog" "$pkgdir/debian/changelog" > "$pkgdir/debian/changelog.new"
    mv "$pkgdir/debian/changelog.new" "$pkgdir/debian/changelog"
    # The hook patches, then one patch adding our files, after Debian's.
    qdir=$pkgdir/debian/patches/ocsp
    mkdir -p "$qdir"
    n=0
    for p in $(grep -v '^[[:space:]]*\(#.*\)\{0,1\}$' "$patches_dir/series"); do
        cp "$patches_dir/$p" "$qdir/$p"
        echo "ocsp/$p" >> "$pkgdir/debian/patches/series"
        n=$((n + 1))
    done
    files_patch=$(printf '%04d-add-the-ocsp-stapling-sources-and-tests.patch' $((n + 1)))
    {
        echo "Description: OCSP stapling: the new source files and their tests"
        echo " src/tls_ocsp*.c and .h (the hook patches before this one build them"
        echo " into valkey-server), tests/unit/tls-ocsp*.tcl with their support and"
        echo " helper files. Generated by utils/build-deb.sh from the valkey-ocsp"
        echo " repository at $(git -C "$top" describe --always --dirty 2> /dev/null || echo unknown)."
        echo "Forwarded: not-needed"
        echo "---"
        (cd "$top" && git ls-files src tests) | while read -r f; do
            (cd "$top" && git diff --no-index --no-color --no-ext-diff /dev/null "$f") |
                sed '/^index [0-9a-f]\{7,\}\.\.[0-9a-f]\{7,\}/d' || true
        done
    } > "$qdir/$files_patch"
    echo "ocsp/$files_patch" >> "$pkgdir/debian/patches/series"
    say "added ocsp/ to Debian's quilt series: $n hook patches and $files_patch"
fi

case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}${DEB_BUILD_OPTIONS:+ }parallel=2" ;;
esac
export DEB_BUILD_OPTIONS
(cd "$pkgdir" && dpkg-checkbuilddeps) 2> "$work/builddeps.log" || {
    cat "$work/builddeps.log" >&2
    die "missing build dependencies (as root: utils/install-deps.sh --deb)"
}
say "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS; log: ${work#"$top"/}/build.log)"
built_start=$(date +%s)
# The tests' servers must not find this repository's git (mkreleasehdr.sh).
if ! (cd "$pkgdir" && GIT_CEILING_DIRECTORIES=$work dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "dpkg-buildpackage failed after $(($(date +%s) - built_start)) s (log: ${work#"$top"/}/build.log)"
fi
end=$(date +%s)

# What our tests said (the last runtest of the log: Debian's rules run
# upstream's suites first and ignore their failures).
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$work/build.log")
ours=$(printf '%s\n' "$plain" | sed -n '/^\.\/runtest .*unit\/tls-ocsp/,$p')
if [ -n "$ours" ]; then
    say "our OCSP tests in the build: $(printf '%s\n' "$ours" | grep -c '^\[ok\]: ') passed, $(printf '%s\n' "$ours" | grep -c '^\[\(err\|exception\)\]: ') failed"
fi

mkdir -p "$out"
rm -f "$out"/valkey-server_*.deb "$out"/valkey-tools_*.deb "$out"/valkey-sentinel_*.deb
for p in valkey-server valkey-tools valkey-sentinel; do
    deb=$(ls "$work"/${p}_*.deb 2> /dev/null | head -n 1)
    [ -n "$deb" ] || die "dpkg-buildpackage made no ${p}_*.deb"
    cp "$deb" "$out/"
    say "${out#"$top"/}/$(basename "$deb")"
done

if [ "$mode" = ours ]; then
    # The packaged configuration must document our directives.
    conf=$(dpkg-deb --fsys-tarfile "$out"/valkey-server_*.deb | tar -xOf - ./etc/valkey/valkey.conf)
    count=$(printf '%s\n' "$conf" | grep -c '^# *tls-ocsp-[a-z-]* ' || true)
    [ "$count" -gt 0 ] || die "the packaged /etc/valkey/valkey.conf does not document tls-ocsp-*"
    say "the packaged /etc/valkey/valkey.conf documents $(printf '%s\n' "$conf" | grep -o '^# *tls-ocsp-[a-z-]*' | sed 's/^# *//' | sort -u | tr '\n' ' ')"
fi
say "done: build $((end - built_start)) s, $((end - start)) s in all"
