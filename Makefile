# OCSP stapling for Valkey: a patch set on pinned upstream Valkey.
#
#   make                build upstream + patches/ + src/ with BUILD_TLS=yes
#   make BUILD_TLS=module  the same with TLS as a module (valkey-tls.so) in
#                       build/valkey-tls-module
#   make demo           build, then show a stapled OCSP response end to end
#   make run            the demo, kept running in the foreground
#   make install        install the patched server, valkey-cli, valkey-benchmark and
#                       upstream's links into $(DESTDIR)$(PREFIX)/bin (PREFIX=/usr/local)
#   make test           our tests and upstream's TLS/CONFIG/INFO tests, in TLS mode
#   make test-sanitizers our tests under AddressSanitizer + UBSan (build/valkey-asan)
#   make test-tsan      our tests under ThreadSanitizer with io-threads (build/valkey-tsan)
#   make test-openssl-1.1 our OCSP tests against OpenSSL 1.1.1 (Debian 11's, extracted
#                       under build/; build/valkey-openssl-1.1)
#   make test-tls-module our OCSP tests with TLS built as a module (BUILD_TLS=module:
#                       valkey-tls.so; build/valkey-tls-module)
#   make fuzz           mutated responses through an ASan + UBSan server (FUZZ_COUNT=50000;
#                       also: make fuzz-ocsp)
#   make deps           install the Debian packages the build and tests need
#   make deb            Debian packages 9.1.2-1+ocsp1 from Debian's own packaging of
#                       9.1.2 plus ours (packaging/; build/deb): dist/valkey-*.deb
#                       (DEB_BUILD_OPTIONS=nocheck or ocsp-tests-only: faster)
#   make deb-debian-own Debian's own 9.1.2-1 packages (only the Debian 12 sysusers
#                       fix; build/deb-debian-own): dist/debian-own/
#   make package-test   as root, not in CI: install dist/'s packages over nothing and
#                       over Debian's own, check that the packaged server staples, purge
#   make tree           turn build/valkey into a git repository, one commit a patch
#   make patches        regenerate patches/ from the commits of `make tree`
#   make check-patches  apply the series to pristine upstream and build after each patch
#   make dist           write dist/valkey-<version>-ocsp-stapling.patch
#
# Upstream source: see deps/fetch-upstream.sh (VALKEY_SRC=, VALKEY_TARBALL=).
#
# Releases: deps/upstream.mk pins the default one (build/valkey, patches/series);
# VALKEY_VERSION=8.1.1 selects another pinned one, deps/upstream-8.1.1.mk, for
# every target above (its tree build/valkey-8.1.1, its series patches/8.1/series).
# Without VALKEY_VERSION, make check-patches and make dist cover every pinned
# release, one patch each in dist/.

VALKEY_DEFAULT_VERSION := $(shell sed -n 's/^VALKEY_VERSION = //p' deps/upstream.mk)
VALKEY_RELEASES := $(VALKEY_DEFAULT_VERSION) $(patsubst deps/upstream-%.mk,%,$(wildcard deps/upstream-*.mk))
# The scripts read it from the environment (deps/release.sh).
VALKEY_VERSION ?= $(VALKEY_DEFAULT_VERSION)
export VALKEY_VERSION
ifeq ($(VALKEY_VERSION),$(VALKEY_DEFAULT_VERSION))
TREE := build/valkey
PIN := deps/upstream.mk
else
TREE := build/valkey-$(VALKEY_VERSION)
PIN := deps/upstream-$(VALKEY_VERSION).mk
ifeq ($(wildcard $(PIN)),)
$(error VALKEY_VERSION=$(VALKEY_VERSION): no pin $(PIN); pinned: $(VALKEY_RELEASES))
endif
endif
PATCHES := $(shell sed -n 's/^VALKEY_PATCHES = //p' $(PIN))
# Given on the command line (or in the environment), one release; else all.
ifeq ($(origin VALKEY_VERSION),file)
SELECTED_RELEASES := $(VALKEY_RELEASES)
else
SELECTED_RELEASES := $(VALKEY_VERSION)
endif

# BUILD_TLS=module: TLS as a module (valkey-tls.so) in a tree of its own,
# build/valkey-tls-module (make test-tls-module tests it).
BUILD_TLS ?= yes
ifeq ($(BUILD_TLS),module)
TREE := $(TREE)-tls-module
export VALKEY_TREE := $(CURDIR)/$(TREE)
else ifneq ($(BUILD_TLS),yes)
$(error BUILD_TLS=$(BUILD_TLS): yes (the default) or module)
endif

BINARIES := valkey-server valkey-cli valkey-benchmark
DIST := dist/valkey-$(VALKEY_VERSION)-ocsp-stapling.patch
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PREFIX ?= /usr/local
# mkreleasehdr.sh asks git for a SHA: keep it from finding this repository.
UPSTREAM_MAKE = GIT_CEILING_DIRECTORIES=$(CURDIR)/build $(MAKE) -C $(TREE) BUILD_TLS=$(BUILD_TLS)

.PHONY: all build deps deb-deps deb deb-debian-own package-test assemble demo run install test test-sanitizers test-tsan test-openssl-1.1 test-tls-module fuzz fuzz-ocsp tree patches check-patches dist clean distclean

all: build

deps:
	@utils/install-deps.sh

deb-deps:
	@utils/install-deps.sh --deb

# Debian's build runs upstream's make and tests itself, in build/deb.
deb: deb-deps
	@utils/build-deb.sh

deb-debian-own: deb-deps
	@utils/build-deb.sh debian-own

package-test:
	@utils/package-test.sh

assemble: deps
	@deps/assemble.sh

# Upstream's own make decides what to rebuild; our files are links in the tree.
# Without -j from the caller, use every core.
build: assemble
	+@case "$$MAKEFLAGS" in *j*) j="";; *) j="-j$(JOBS)";; esac; $(UPSTREAM_MAKE) $$j
	@[ "$(TREE)" != build/valkey ] || for b in $(BINARIES); do [ -L src/$$b ] || ln -sfn ../$(TREE)/src/$$b src/$$b; done

demo: build
	@utils/demo.sh

run: build
	@utils/demo.sh --foreground

# Upstream's own install (its files, its links); it knows no DESTDIR, so
# DESTDIR goes in front of its PREFIX.
install: build
	+@$(UPSTREAM_MAKE) install PREFIX="$(DESTDIR)$(PREFIX)"

test: build
	@utils/run-tests.sh

test-sanitizers: deps
	@utils/test-sanitizers.sh address

test-tsan: deps
	@utils/test-sanitizers.sh thread

test-openssl-1.1: deps
	@utils/test-openssl-1.1.sh

test-tls-module: deps
	@utils/test-tls-module.sh

fuzz: deps
	@utils/fuzz-ocsp.sh

fuzz-ocsp: fuzz

tree: assemble
	@utils/patchset.sh tree

patches:
	@utils/patchset.sh patches

check-patches: deps
	+@for v in $(SELECTED_RELEASES); do VALKEY_VERSION=$$v utils/patchset.sh check || exit 1; done

dist: $(foreach v,$(SELECTED_RELEASES),dist/valkey-$(v)-ocsp-stapling.patch)

dist/valkey-%-ocsp-stapling.patch: $(wildcard patches/series patches/*.patch patches/*/series patches/*/*.patch) $(shell git ls-files src tests 2>/dev/null) utils/patchset.sh
	@VALKEY_VERSION=$* utils/patchset.sh dist $@

clean:
	-@[ -d $(TREE) ] && $(UPSTREAM_MAKE) clean > /dev/null || true
	rm -f $(addprefix src/,$(BINARIES))

distclean:
	rm -rf build dist $(addprefix src/,$(BINARIES))
