#!/bin/sh
# Install the Debian packages the build and the tests need (as root), or print
# the apt-get line to run (otherwise). Quiet and quick when nothing is missing.
#   utils/install-deps.sh          build + test packages
#   utils/install-deps.sh --dev    also the developer tools (clang-format-19)
set -eu

# build: compiler, pkg-config, OpenSSL headers, patch; tests: the Tcl harness
# with TLS and the openssl CLI (all the core tests need), plus gnutls-cli as a
# second client and redis-py with its OCSP extras (tests using them skip
# without them); git for `make tree`; xz-utils and curl for the 8.1.1 pin
# (deps/upstream-8.1.1.mk: a .tar.xz, downloaded from the Debian pool).
packages="gcc make libc6-dev pkg-config libssl-dev patch openssl tcl tcl-tls
gnutls-bin python3 python3-redis python3-requests python3-openssl procps git
xz-utils curl"
[ "${1:-}" = "--dev" ] && packages="$packages clang-format-19"

missing=""
for p in $packages; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2> /dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $p"
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
