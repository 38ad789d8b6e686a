# tls-crl-urls: CRLs fetched over HTTP in the background, verified, kept in
# a cache file in dir (read first after a restart, so a restart while the
# CRL server is down still refuses revoked certificates), refreshed on the
# OCSP schedule and at once by OCSP REFRESH; a bad answer keeps the CRLs in
# force; tls-crl-stale says what a CRL past its nextUpdate does when no
# fresh one can be had; the directives through CONFIG.
#
# The CRLs are real ones, made by `openssl ca -gencrl` in a throw-away CA
# (tests/helpers/crl-pki.sh), served by the test HTTP server
# (tests/helpers/ocsp-responder.tcl, which serves a file or misbehaves as
# told). The harness CA joins tls-ca-cert-file, so the harness clients
# (whose issuer has no CRL) keep working once the CRLs are in force. Every
# case runs its own servers and HTTP server (external:skip) and stops them;
# everything listens on 127.0.0.1 only.

source tests/support/crl.tcl

# A CRL of the CA listing alice alone, made now, valid SECONDS (default: the
# CA's 7 days): its thisUpdate is now, newer than every CRL made before.
proc urls_make_crl {name {seconds {}}} {
    set path [crl_file $name]
    set validity [expr {$seconds eq {} ? {} : [list -crlsec $seconds]}]
    exec openssl ca -config [crl_file db-alice/ca.cnf] -gencrl {*}$validity -out $path -batch 2>@1
    return $path
}

# The cache file name of URL: crl-cache-<16 hex of SHA-256 of the URL>.crl.
proc urls_cache_name {url} {
    set digest [lindex [exec openssl dgst -sha256 << $url] end]
    return crl-cache-[string range $digest 0 15].crl
}

# The plain (non-TLS) port of the server at LEVEL (Valkey 8.1's harness
# keeps no pport).
proc urls_plain_port {{level 0}} {
    lindex [[srv $level client] config get port] 1
}

# A plain client of the server at LEVEL on PORT: it works while every
# certificate is refused.
proc urls_plain_client {port {level 0}} {
    valkey [srv $level host] $port 0 0
}

proc urls_pinfo {client field} {
    getInfoProperty [$client info tls] tls_crl_$field
}

if {$::tls} {
tags {tls crl external:skip} {
    crl_setup

    test {CRL URLs: the CRL of a URL is fetched; a listed client certificate is refused, another accepted} {
        crl_with_http h {
            crl_serve crl-alice.pem
            set url [crl_url $h]
            start_server [list overrides [crl_urls_config $url]] {
                crl_wait_fetches 1
                assert_equal {1 0 1 1} [list [crl_info sources] [crl_info sources_missing] [crl_info count] [crl_info entries]]
                assert_equal 0 [crl_info fetches_failed]
                assert_equal {} [crl_info last_error]
                assert_match {*error*} [crl_ping alice]
                assert_equal PONG [crl_ping bob]
                assert_equal PONG [crl_ping carol]
                # The harness client's issuer has no CRL: not affected.
                assert_equal PONG [r PING]
                assert_morethan_equal [crl_info handshakes_refused] 1
                verify_log_message 0 "*CRL: fetched 1 CRL with 1 revoked certificate from $url; next fetch in * s*" 0
                crl_wait_refusal_logged alice "*CRL: refused the certificate of*Alice*: serial * is revoked by CRL 1 of $url*"
                # A 7-day CRL: its refresh margin is days away, so the next fetch
                # is the max refresh interval (3600 s) less up to a tenth.
                assert_range [crl_info next_fetch_in_seconds] 3200 3600
                # The schedule follows CONFIG SET of the OCSP schedule: a
                # shorter max refresh interval brings the next fetch closer.
                r config set tls-ocsp-max-refresh-interval 60
                assert_range [crl_info next_fetch_in_seconds] 50 60
                r config set tls-ocsp-max-refresh-interval 2
                crl_wait_fetches 2
                assert_equal 0 [crl_info fetches_failed]
                set next [exec openssl crl -in [crl_file crl-alice.pem] -noout -nextupdate]
                set next [clock scan [string range $next [string first = $next]+1 end] -format {%b %d %H:%M:%S %Y GMT} -gmt 1]
                assert_equal $next [crl_info next_update]
                assert_match "* file GET*" [ocsp_read_file [crl_file responder.log]]
            }
        }
    }

    test {CRL URLs: OCSP REFRESH fetches now; a connected client a new CRL lists is closed} {
        crl_with_http h {
            crl_serve crl-alice.pem
            set url [crl_url $h]
            start_server [list overrides [crl_urls_config $url]] {
                crl_wait_fetches 1
                set bob [crl_client bob]
                set carol [crl_client carol]
                assert_equal PONG [$bob PING]
                assert_equal PONG [$carol PING]
                set clients [s connected_clients]
                set closed [crl_info connections_closed]

                crl_serve crl-alice-bob.pem
                assert_equal OK [r ocsp refresh]
                crl_wait_fetches 2
                assert_equal 2 [crl_info entries]
                wait_for_condition 50 20 {[s connected_clients] == $clients - 1} else {
                    fail "bob's connection was not closed"
                }
                assert_error {*I/O error*} {$bob PING}
                assert_equal PONG [$carol PING]
                assert_equal [expr {$closed + 1}] [crl_info connections_closed]
                verify_log_message 0 "*CRL: closing client id=* its certificate (serial *) is revoked by CRL 1 of $url*" 0
                assert_match {*error*} [crl_ping bob]
                assert_match {*error*} [crl_ping alice]
                assert_equal PONG [crl_ping carol]
                $carol close
                catch {$bob close}
            }
        }
    }

    test {CRL URLs: after a restart with the CRL server down, the cache file refuses from the first handshake; a bad one fails closed} {
        crl_with_http h {
            set port [dict get $h port]
            crl_serve crl-alice.pem
            set url [crl_url $h]
            start_server [list overrides [crl_urls_config $url]] {
                crl_wait_fetches 1
                set cache [file join [lindex [r config get dir] 1] [urls_cache_name $url]]
                wait_for_condition 50 100 {
                    [file exists $cache] && [ocsp_read_file $cache] eq [ocsp_read_file [crl_file crl-alice.pem]]
                } else {
                    fail "no cache file $cache with the fetched CRL: [crl_cache_files]"
                }
                assert_equal [list $cache] [crl_cache_files]

                # The CRL server goes down, the server restarts: the cached CRL
                # is in force, alice refused from the very first handshake.
                crl_http_stop $h
                set from [count_log_lines 0]
                restart_server 0 true false 0
                assert_match {*error*} [crl_ping alice]
                wait_for_condition 50 100 {[crl_ping bob] eq "PONG"} else {
                    fail "bob is not accepted after the restart"
                }
                assert_match {*error*} [crl_ping alice]
                reconnect
                # Then fetched at once, which fails; the cached CRL stays in force.
                verify_log_message 0 "*CRL: loaded 1 CRL with 1 revoked certificate of $url from its cache file $cache; fetching it now*" $from
                crl_wait_failure 0 "$url: fetch failed: connect_failed*"
                verify_log_message 0 "*CRL: $url: fetch failed: connect_failed*the CRLs loaded before stay in force; retrying in * s (failure 1 in a row)*" $from
                assert_equal {0 0 1 1} [list [crl_info fetches_ok] [crl_info sources_missing] [crl_info count] [crl_info entries]]
                assert_match {*error*} [crl_ping alice]
                assert_equal PONG [crl_ping bob]

                # A cache file overwritten with garbage: refused at load, and
                # until a fetch succeeds every certificate is refused (fail
                # closed), the harness CA's too.
                ocsp_write_file $cache "this is not a certificate revocation list\n"
                set pport [urls_plain_port]
                set from [count_log_lines 0]
                restart_server 0 true false 0
                set p [urls_plain_client $pport]
                wait_for_condition 50 100 {[urls_pinfo $p fetches_failed] >= 1} else {
                    fail "no failed fetch after the restart: [urls_pinfo $p last_error]"
                }
                verify_log_message 0 "*CRL: ignoring the cache file $cache of $url: neither PEM nor a single DER X509 CRL*" $from
                verify_log_message 0 "*CRL: $url: fetch failed: connect_failed*no CRL of it is in force yet*" $from
                assert_equal {1 1 0} [list [urls_pinfo $p sources] [urls_pinfo $p sources_missing] [urls_pinfo $p count]]
                set refused [urls_pinfo $p handshakes_refused]
                assert_match {*error*} [crl_ping alice]
                assert_match {*error*} [crl_ping bob]
                assert_match {*error*} [crl_ping carol]
                assert_equal 0 [ping_server [srv 0 host] [srv 0 port]]
                assert_morethan_equal [urls_pinfo $p handshakes_refused] [expr {$refused + 3}]
                crl_wait_refusal_logged bob "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Bob: the CRLs of 1 source (tls-crl-file, tls-crl-urls) are not loaded yet*" $from

                # The CRL server is back: the next fetch restores the CRL and
                # rewrites the cache file.
                set h [crl_http_start $port]
                assert_equal OK [$p ocsp refresh]
                wait_for_condition 100 100 {[urls_pinfo $p fetches_ok] >= 1} else {
                    fail "no fetch succeeded: [urls_pinfo $p last_error]"
                }
                assert_equal 0 [urls_pinfo $p sources_missing]
                assert_match {*error*} [crl_ping alice]
                assert_equal PONG [crl_ping bob]
                wait_for_condition 50 100 {[ocsp_read_file $cache] eq [ocsp_read_file [crl_file crl-alice.pem]]} else {
                    fail "the cache file was not rewritten"
                }
                $p close
                reconnect
                assert_equal PONG [r PING]
            }
        }
    }

    test {CRL URLs: bad answers are refused and the CRLs in force stay; the server answers meanwhile} {
        # A CRL larger than tls-crl-max-bytes 64kb (copies of a real one).
        set big [crl_file crl-big.pem]
        ocsp_write_file $big [string repeat [ocsp_read_file [crl_file crl-alice-bob.pem]] 120]
        assert_morethan [file size $big] 65536
        crl_with_http h {
            crl_serve crl-alice.pem
            set url [crl_url $h]
            # A long retry delay: only OCSP REFRESH fetches.
            start_server [list overrides [crl_urls_config $url 60]] {
                crl_wait_fetches 1
                r config set tls-crl-max-bytes 64kb
                set pport [urls_plain_port]
                foreach {what reason} {
                    crl-rogue.pem {*refusing what it answered: CRL 1 (issuer *) is not signed by a CA*}
                    crl-garbage.pem {*refusing what it answered: neither PEM nor a single DER X509 CRL*}
                    crl-truncated.pem {*refusing what it answered: CRL 1 cannot be parsed*}
                    crl-older.pem {*refusing what it answered: its CRL of issuer * is older (thisUpdate) than the one in force*}
                    crl-big.pem {*fetch failed: too_large (Content-Length * exceeds 65536 bytes)*}
                    http500 {*fetch failed: http_status (GET answered 'HTTP/1.0 500 *')*}
                    garbage {*fetch failed: malformed (not an HTTP response)*}
                    hang {*fetch failed: timeout (no complete answer within 2 s)*}
                    endless-headers {*fetch failed: too_large (headers exceed * bytes)*}
                } {
                    set failed [crl_info fetches_failed]
                    set requests [crl_http_requests]
                    crl_serve $what
                    assert_equal OK [r ocsp refresh]
                    if {$what eq "hang"} {
                        # The fetch waits for an answer that never comes (up to
                        # tls-ocsp-response-timeout, 2 s): commands are answered
                        # meanwhile, promptly.
                        wait_for_condition 100 20 {[crl_http_requests] > $requests} else {
                            fail "the server did not ask the CRL server"
                        }
                        set slowest 0
                        for {set i 0} {$i < 10} {incr i} {
                            set start [clock milliseconds]
                            assert_equal +PONG [ocsp_command_within $pport 5000 PING]
                            set slowest [expr {max($slowest, [clock milliseconds] - $start)}]
                            after 50
                        }
                        assert_equal $failed [crl_info fetches_failed]
                        if {![crl_slow_build]} {
                            assert_lessthan $slowest 250
                        }
                    }
                    crl_wait_failure $failed "$url: $reason"
                    assert_morethan [crl_http_requests] $requests
                    verify_log_message 0 "*CRL: $url: *; the CRLs loaded before stay in force; retrying in * s*" 0
                    assert_equal {1 1} [list [crl_info count] [crl_info entries]]
                    assert_equal 1 [crl_info fetches_ok]
                    assert_match {*error*} [crl_ping alice]
                    assert_equal PONG [crl_ping bob]
                }
                # A good answer again: in force, the error cleared.
                crl_serve crl-alice-bob.pem
                assert_equal OK [r ocsp refresh]
                crl_wait_fetches 2
                assert_equal {} [crl_info last_error]
                assert_match {*error*} [crl_ping bob]
            }
        }
    }

    test {CRL URLs: tls-crl-stale keep keeps a CRL past its nextUpdate, refuse refuses its issuer's certificates} {
        crl_with_http h {
            crl_serve crl-alice.pem
            set url [crl_url $h]
            start_server [list overrides [crl_urls_config $url]] {
                crl_wait_fetches 1
                assert_equal {0 keep} [list [crl_info stale] [crl_info stale_policy]]
                # A CRL good for 3 s, then no fresh one to be had.
                set short [urls_make_crl crl-short.pem 3]
                crl_serve $short
                assert_equal OK [r ocsp refresh]
                crl_wait_fetches 2
                crl_serve http500
                set next [exec openssl crl -in $short -noout -nextupdate]
                set next [clock scan [string range $next [string first = $next]+1 end] -format {%b %d %H:%M:%S %Y GMT} -gmt 1]
                assert_equal $next [crl_info next_update]
                wait_for_condition 100 100 {[crl_info stale] == 1} else {
                    fail "the CRL is not stale: nextUpdate [crl_info next_update], now [clock seconds]"
                }
                assert_morethan [clock seconds] $next
                assert_morethan_equal [crl_info fetches_failed] 1
                wait_for_log_messages 0 [list "*CRL: CRL 1 of $url (issuer *) is past its nextUpdate and no fresh one could be had: it stays in force (tls-crl-stale keep)*"] 0 50 100
                # keep: still in force.
                assert_equal PONG [crl_ping bob]
                assert_match {*error*} [crl_ping alice]

                # refuse: every certificate of its issuer is refused; the harness
                # client's issuer has no CRL.
                r config set tls-crl-stale refuse
                assert_equal {tls-crl-stale refuse} [r config get tls-crl-stale]
                assert_equal refuse [crl_info stale_policy]
                set refused [crl_info handshakes_refused]
                assert_match {*error*} [crl_ping bob]
                assert_match {*error*} [crl_ping carol]
                assert_match {*error*} [crl_ping alice]
                assert_equal [expr {$refused + 3}] [crl_info handshakes_refused]
                assert_equal PONG [r PING]
                crl_wait_refusal_logged bob "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Bob: CRL 1 of $url (issuer *) is past its nextUpdate (tls-crl-stale refuse)*"

                # A fresh CRL: bob is accepted again.
                crl_serve [urls_make_crl crl-fresh.pem]
                set ok [crl_info fetches_ok]
                assert_equal OK [r ocsp refresh]
                crl_wait_fetches [expr {$ok + 1}]
                assert_equal 0 [crl_info stale]
                assert_equal PONG [crl_ping bob]
                assert_match {*error*} [crl_ping alice]
            }
        }
    }

    test {CRL URLs: CONFIG SET, GET and REWRITE of tls-crl-urls, tls-crl-max-bytes and tls-crl-stale} {
        crl_with_http h {
            crl_serve crl-alice.pem
            set url [crl_url $h]
            set url2 [crl_url $h second]
            start_server [list overrides [crl_urls_config $url]] {
                crl_wait_fetches 1
                assert_equal [list tls-crl-urls $url] [r config get tls-crl-urls]
                # Refused: not http://, a URL twice, more than 16, user information.
                set many {}
                for {set i 0} {$i < 17} {incr i} { lappend many [crl_url $h crl$i] }
                foreach {bad error} [list \
                    "https://127.0.0.1:[dict get $h port]/crl" {*https:// is not supported*} \
                    "ftp://127.0.0.1/crl" {*must begin with http://*} \
                    "$url $url" {*a URL is given twice*} \
                    [join $many " "] {*at most 16 URLs*} \
                    "http://user:secret@127.0.0.1:[dict get $h port]/crl" {*user information*is not supported*} \
                ] {
                    assert_error "*tls-crl-urls*$error" {r config set tls-crl-urls $bad}
                    assert_equal [list tls-crl-urls $url] [r config get tls-crl-urls]
                }
                assert_equal 1 [crl_info sources]

                # A second URL: fetched; the first keeps its CRL (not fetched
                # again).
                set requests [crl_http_requests]
                r config set tls-crl-urls "$url $url2"
                assert_equal [list tls-crl-urls "$url $url2"] [r config get tls-crl-urls]
                crl_wait_fetches 2
                assert_equal {2 0 2 2} [list [crl_info sources] [crl_info sources_missing] [crl_info count] [crl_info entries]]
                assert_equal [expr {$requests + 1}] [crl_http_requests]
                # Each URL has its cache file (written after the fetch).
                wait_for_condition 50 100 {[llength [crl_cache_files]] == 2} else {
                    fail "expected 2 cache files, got [crl_cache_files]"
                }
                r config rewrite
                assert_match "*tls-crl-urls*$url $url2*" [exec grep tls-crl-urls [srv 0 config_file]]

                # The first dropped: its CRL goes, the second's stays.
                r config set tls-crl-urls $url2
                verify_log_message 0 "*CRL: $url is no longer in tls-crl-urls; its CRLs are no longer in force*" 0
                assert_equal {1 1} [list [crl_info sources] [crl_info count]]
                assert_match {*error*} [crl_ping alice]
                # None: no CRL in force.
                r config set tls-crl-urls ""
                assert_equal {tls-crl-urls {}} [r config get tls-crl-urls]
                assert_equal {0 0 0} [list [crl_info sources] [crl_info count] [crl_info entries]]
                assert_equal PONG [crl_ping alice]

                # tls-crl-max-bytes: 64kb to 256mb.
                assert_equal [list tls-crl-max-bytes [expr {16 * 1024 * 1024}]] [r config get tls-crl-max-bytes]
                r config set tls-crl-max-bytes 64kb
                assert_equal {tls-crl-max-bytes 65536} [r config get tls-crl-max-bytes]
                r config set tls-crl-max-bytes 256mb
                assert_equal [list tls-crl-max-bytes [expr {256 * 1024 * 1024}]] [r config get tls-crl-max-bytes]
                assert_error {*argument must be between*} {r config set tls-crl-max-bytes 65535}
                assert_error {*argument must be between*} {r config set tls-crl-max-bytes [expr {256 * 1024 * 1024 + 1}]}
                assert_equal [list tls-crl-max-bytes [expr {256 * 1024 * 1024}]] [r config get tls-crl-max-bytes]

                # tls-crl-stale: keep or refuse.
                assert_equal {tls-crl-stale keep} [r config get tls-crl-stale]
                r config set tls-crl-stale refuse
                assert_equal {tls-crl-stale refuse} [r config get tls-crl-stale]
                assert_error {*argument(s) must be one of the following*} {r config set tls-crl-stale sometimes}
                assert_equal {tls-crl-stale refuse} [r config get tls-crl-stale]
                r config rewrite
                assert_match "*tls-crl-stale refuse*" [exec grep tls-crl-stale [srv 0 config_file]]
                assert_match "*tls-crl-max-bytes*" [exec grep tls-crl-max-bytes [srv 0 config_file]]
            }
            # Protected: without enable-protected-configs, CONFIG SET is refused.
            start_server [list overrides [list enable-protected-configs no]] {
                assert_error {*protected*} {r config set tls-crl-urls $url}
                assert_equal {tls-crl-urls {}} [r config get tls-crl-urls]
            }
        }
    }
}
}
