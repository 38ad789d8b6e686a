#!/bin/sh
# Print the Debian mirror this machine already uses, read from its own apt
# configuration (one-line .list files and deb822 .sources files), so that no
# script of ours names a mirror itself.
#
#   deps/debian-mirror.sh            the mirror of Debian itself (fetch-upstream.sh)
#   deps/debian-mirror.sh security   the mirror of security updates (*-security
#                                    suites; fetch-openssl-1.1.sh). Without one
#                                    in the configuration, derived from the first
#                                    as Debian lays its archives out: <mirror>-security
#
# Prints one URL on stdout, or nothing and exits 1 (with the reason on stderr).
set -eu

# Every "URI SUITE" pair of the enabled deb and deb-src entries, in the order apt reads them.
apt_entries() {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^[[:space:]]*deb\(-src\)\{0,1\}[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\)[[:space:]]\{1,\}\([^[:space:]]*\).*/\3 \4/p' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() { if (enabled && uris != "") { n = split(uris, u, " "); m = split(suites, s, " ");
                for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j] } uris = ""; suites = ""; enabled = 1 }
            BEGIN { enabled = 1 }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "uris:" { $1 = ""; uris = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "enabled:" { enabled = (tolower($2) != "no") }
            END { flush() }' "$f"
    done
}

codenames='sid|unstable|testing|stable|oldstable|oldoldstable|buster|bullseye|bookworm|trixie|forky|duke'

# The first entry whose suite is a Debian release (or its -updates, -backports).
main_mirror() {
    apt_entries | awk -v re="^($codenames)(-updates|-backports)?\$" '$2 ~ re { print $1; exit }'
}

case "${1:-main}" in
main)
    mirror=$(main_mirror)
    [ -n "$mirror" ] || {
        echo "debian-mirror: no Debian mirror in /etc/apt/sources.list{,.d/}" >&2
        exit 1
    }
    ;;
security)
    # A *-security suite (or the old <codename>/updates) names the mirror outright.
    mirror=$(apt_entries | awk -v re="^($codenames)(-security|/updates)\$" '$2 ~ re { print $1; exit }')
    if [ -z "$mirror" ]; then
        main=$(main_mirror)
        [ -n "$main" ] || {
            echo "debian-mirror: no Debian mirror, nor a security one, in /etc/apt/sources.list{,.d/}" >&2
            exit 1
        }
        mirror="${main%/}-security"
        echo "debian-mirror: no *-security suite configured; deriving $mirror from $main" >&2
    fi
    ;;
*)
    echo "usage: $0 [main|security]" >&2
    exit 2
    ;;
esac
echo "${mirror%/}"
