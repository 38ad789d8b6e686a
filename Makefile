# OCSP stapling for Valkey: a patch set on pinned upstream Valkey.
#
#   make                build upstream + patches/ + src/ with BUILD_TLS=yes
#   make demo           build, then show a stapled OCSP response end to end
#   make run            the demo, kept running in the foreground
#   make install        install the patched server, valkey-cli, valkey-benchmark and
#                       upstream's links into $(DESTDIR)$(PREFIX)/bin (PREFIX=/usr/local)
#   make test           our tests and upstream's TLS/CONFIG/INFO tests, in TLS mode
#   make test-sanitizers our tests under AddressSanitizer + UBSan (build/valkey-asan)
#   make test-tsan      our tests under ThreadSanitizer with io-threads (build/valkey-tsan)
#   make test-openssl-1.1 our OCSP tests against OpenSSL 1.1.1 (Debian 11's, extracted
#                       under build/; build/valkey-openssl-1.1)
#   make fuzz           mutated responses through an ASan + UBSan server (FUZZ_COUNT=50000;
#                       also: make fuzz-ocsp)
#   make deps           install the Debian packages the build and tests need
#   make tree           turn build/valkey into a git repository, one commit a patch
#   make patches        regenerate patches/ from the commits of `make tree`
#   make check-patches  apply the series to pristine upstream and build after each patch
#   make dist           write dist/valkey-<version>-ocsp-stapling.patch
#
# Upstream source: see deps/fetch-upstream.sh (VALKEY_SRC=, VALKEY_TARBALL=).

include deps/upstream.mk

TREE := build/valkey
BINARIES := valkey-server valkey-cli valkey-benchmark
DIST := dist/valkey-$(VALKEY_VERSION)-ocsp-stapling.patch
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PREFIX ?= /usr/local
# mkreleasehdr.sh asks git for a SHA: keep it from finding this repository.
UPSTREAM_MAKE = GIT_CEILING_DIRECTORIES=$(CURDIR)/build $(MAKE) -C $(TREE) BUILD_TLS=yes

.PHONY: all build deps assemble demo run install test test-sanitizers test-tsan test-openssl-1.1 fuzz fuzz-ocsp tree patches check-patches dist clean distclean

all: build

deps:
	@utils/install-deps.sh

assemble: deps
	@deps/assemble.sh

# Upstream's own make decides what to rebuild; our files are links in the tree.
# Without -j from the caller, use every core.
build: assemble
	+@case "$$MAKEFLAGS" in *j*) j="";; *) j="-j$(JOBS)";; esac; $(UPSTREAM_MAKE) $$j
	@for b in $(BINARIES); do [ -L src/$$b ] || ln -sfn ../$(TREE)/src/$$b src/$$b; done

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

fuzz: deps
	@utils/fuzz-ocsp.sh

fuzz-ocsp: fuzz

tree: assemble
	@utils/patchset.sh tree

patches:
	@utils/patchset.sh patches

check-patches: deps
	+@utils/patchset.sh check

dist: $(DIST)

$(DIST): patches/series $(wildcard patches/*.patch) $(shell git ls-files src tests 2>/dev/null) utils/patchset.sh
	@utils/patchset.sh dist $@

clean:
	-@[ -d $(TREE) ] && $(UPSTREAM_MAKE) clean > /dev/null || true
	rm -f $(addprefix src/,$(BINARIES))

distclean:
	rm -rf build dist $(addprefix src/,$(BINARIES))
