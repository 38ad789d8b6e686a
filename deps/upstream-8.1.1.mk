# A second supported release, selected with VALKEY_VERSION=8.1.1 (make,
# make test, make check-patches, make dist ...; the tree is
# build/valkey-8.1.1). Same keys as deps/upstream.mk, the default pin.
#
# Debian 13's orig tarball, a +dfsg repack of upstream's 8.1.1 (every bundled
# library is still in deps/, jemalloc included, so the build is upstream's
# default: jemalloc, BUILD_TLS=yes). Its Debian revision's source package is
# no longer in unstable/testing, so apt-get source cannot fetch it:
# deps/fetch-upstream.sh downloads the tarball itself from VALKEY_POOL_DIR
# of the machine's Debian mirror (deps/debian-mirror.sh).
VALKEY_VERSION = 8.1.1
VALKEY_DEBIAN_VERSION = 8.1.1+dfsg1
VALKEY_TARBALL_NAME = valkey_8.1.1+dfsg1.orig.tar.xz
VALKEY_TARBALL_SHA256 = d9bbd82eecb82f359e649a0007ad3dc1b47cc15afa626348ca86b73c4ae2c7ee
VALKEY_TARBALL_SIZE = 2726128
VALKEY_TOPDIR = valkey-8.1.1
VALKEY_POOL_DIR = pool/main/v/valkey
# The hook patches for this release: patches/8.1/series and its files.
VALKEY_PATCHES = patches/8.1
