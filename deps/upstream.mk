# The pinned upstream release this patch set applies to. Shared by the
# Makefile and the scripts in deps/ (which read it with a plain grep).
VALKEY_VERSION = 9.1.2
VALKEY_DEBIAN_VERSION = 9.1.2-1
VALKEY_TARBALL_NAME = valkey_9.1.2.orig.tar.gz
VALKEY_TARBALL_SHA256 = 8e8557da7426a51b4e0fb514a65ef6241dc7c85cb408243af389070abf379cec
VALKEY_TARBALL_SIZE = 4418246
VALKEY_TOPDIR = valkey-io-valkey-7f1dffe
# The hook patches for this release: patches/series and the files it names.
VALKEY_PATCHES = patches
# Debian's packaging of this release (make deb): its source package's .dsc
# and debian.tar.xz, downloaded by deps/fetch-upstream.sh debian from
# VALKEY_DEBIAN_POOL_DIR of the machine's Debian mirror; the .dsc names the
# orig tarball pinned above.
VALKEY_DEBIAN_POOL_DIR = pool/main/v/valkey
VALKEY_DEBIAN_DSC = valkey_9.1.2-1.dsc
VALKEY_DEBIAN_DSC_SHA256 = 637995b2db343b75ae655fdb458b1f14f9b9b6f913f6144bdb9764b51b2ce2b2
VALKEY_DEBIAN_DSC_SIZE = 2251
VALKEY_DEBIAN_TARBALL = valkey_9.1.2-1.debian.tar.xz
VALKEY_DEBIAN_TARBALL_SHA256 = e83701e1f5140721fe85cbe11bfdbf9b4bb841b6d423644977fbfd2ee417a629
VALKEY_DEBIAN_TARBALL_SIZE = 17752
