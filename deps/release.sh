# Sourced by the scripts (with $top set): the upstream release they work on.
# VALKEY_VERSION selects it (`make VALKEY_VERSION=8.1.1 ...` passes it on);
# unset, or equal to deps/upstream.mk's, it is the default pin. Sets:
#   version       the release, e.g. 9.1.2
#   conf          its pin: deps/upstream.mk, or deps/upstream-<version>.mk
#   patches_dir   its hook patches: the directory of its series (VALKEY_PATCHES)
#   release_tree  its assembled tree: build/valkey, or build/valkey-<version>
# and pin KEY, which prints a key of the pin.
default_version=$(sed -n 's/^VALKEY_VERSION = //p' "$top/deps/upstream.mk")
version=${VALKEY_VERSION:-$default_version}
if [ "$version" = "$default_version" ]; then
    conf=$top/deps/upstream.mk
    release_tree=$top/build/valkey
else
    conf=$top/deps/upstream-$version.mk
    release_tree=$top/build/valkey-$version
    if [ ! -f "$conf" ]; then
        echo "VALKEY_VERSION=$version: no such pin (deps/upstream-$version.mk); supported: $default_version" \
            $(cd "$top/deps" && ls upstream-*.mk 2> /dev/null | sed 's/^upstream-//; s/\.mk$//') >&2
        exit 1
    fi
fi
pin() { sed -n "s/^$1 = //p" "$conf"; }
patches_dir=$top/$(pin VALKEY_PATCHES)
