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
