#!/bin/sh
# Install the Debian packages the build and the tests need (as root), or print
# the apt-get line to run (otherwise). Quiet and quick when nothing is missing.
#   utils/install-deps.sh          build + test packages
#   utils/install-deps.sh --dev    also the developer tools (clang-format-19)
#   utils/install-deps.sh --deb    also what make deb needs: the packaging tools
#                                  and the Build-Depends of Debian's valkey .dsc
#                                  (deps/upstream.mk), fetched if need be
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

# build: compiler, pkg-config, OpenSSL headers, patch; tests: the Tcl harness
# with TLS and the openssl CLI (all the core tests need), plus gnutls-cli as a
# second client and redis-py with its OCSP extras (tests using them skip
# without them); git for `make tree`; xz-utils and curl for the 8.1.1 pin
# (deps/upstream-8.1.1.mk: a .tar.xz, downloaded from the Debian pool).
packages="gcc make libc6-dev pkg-config libssl-dev patch openssl tcl tcl-tls
gnutls-bin python3 python3-redis python3-requests python3-openssl procps git
xz-utils curl"
[ "${1:-}" = "--dev" ] && packages="$packages clang-format-19"
if [ "${1:-}" = "--deb" ]; then
    # The packaging tools, then the .dsc's Build-Depends (no version
    # constraints or [arch] qualifiers among them but debhelper-compat's and
    # jemalloc's, which bookworm's debhelper and linux-any meet; the
    # <!nocheck> ones are the test tools, wanted too). dh-sequence-* and
    # debhelper-compat are virtual: debhelper provides them.
    dsc=$("$top/deps/fetch-upstream.sh" debian | sed -n 's/^dsc //p')
    packages="$packages dpkg-dev debhelper devscripts quilt fakeroot
$(sed -n 's/^Build-Depends: //p' "$dsc" | tr ',' '\n' |
        sed 's/([^)]*)//g; s/\[[^]]*\]//g; s/<[^>]*>//g; s/[[:space:]]//g' |
        grep -v '^\(debhelper-compat\|dh-sequence-.*\)\{0,1\}$')"
fi

# What installed packages provide (liblua5.1-dev is liblua5.1-0-dev's).
provided=$(dpkg-query -W -f='${db:Status-Status} ${Provides}\n' 2> /dev/null |
    awk '$1 == "installed" { $1 = ""; n = split($0, p, ","); for (i = 1; i <= n; i++) { sub(/^ */, "", p[i]); sub(/ .*/, "", p[i]); print p[i] } }')
missing=""
for p in $packages; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2> /dev/null || true)
    [ "$status" = "installed" ] || printf '%s\n' "$provided" | grep -qxF "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q > /dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing > /dev/null
