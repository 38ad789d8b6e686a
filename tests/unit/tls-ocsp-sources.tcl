# OCSP stapling (src/tls_ocsp.c): where the staple comes from and how it is
# asked for. The cache file (tls-ocsp-cache-file) across restarts and when
# it is bad or cannot be written; tls-ocsp-response-file replaced by rename,
# rewritten, swapped through symlinks as Kubernetes does, broken, removed and
# expiring; fetches through an HTTP proxy (tls-ocsp-proxy) with and without
# credentials; GET and the fallback to POST; OCSP REFRESH; short-lived
# responses; responses issued slightly in the future; no nonce in requests.
# Also: the proxy password across refused CONFIG SETs, CONFIG REWRITE and the
# redacted value CONFIG GET shows; FIFOs given as the response or cache file
# (refused, never blocking); resets that read the response file again;
# leftover temporary cache files; protected configs.
#
# Every case asserts what clients receive (openssl s_client -status) as well
# as INFO tls and the log. Needs only the harness, tclsh, the openssl CLI and
# coreutils (ln, mv -T, mkfifo). Everything listens on 127.0.0.1; the proxy
# tests use a responder name under .invalid that only the proxy (which never
# resolves names) can reach. Every test runs its own server(s) with the PKI's
# certificates, hence external:skip for the whole file.

source tests/support/ocsp.tcl
source tests/support/ocsp-sources.tcl

if {$::tls} {
tags {tls ocsp external:skip} {
    ocsp_setup
    ocsp_responder_start

    # ---------------------------------------------------------------------
    # The cache file.

    foreach {variant extra} [ocsps_variants] {
        test "OCSP: after a restart with the responder down, the cached response is stapled from the first handshake$variant" {
            ocsp_reset
            start_server [list overrides [ocsp_server_config server $extra]] {
                set port [srv 0 port]
                set cache [file join [lindex [r config get dir] 1] ocsp-response.der]
                ocsp_wait_status good
                # The verified response is written in the server's dir.
                wait_for_condition 50 100 {[file exists $cache]} else {
                    fail "no cache file $cache"
                }
                assert_equal good [ocsp_der_check [ocsp_read_file $cache] server]
                assert_equal 0 [ocsp_info cache_write_failures]
                assert_equal responder [ocsp_info source]
                set this_update [ocsp_info this_update]

                ocsp_responder_stop
                try {
                    restart_server 0 true false
                    set requests [ocsp_responder_requests]
                    # The first handshake that asks gets the cached response.
                    assert_equal 0 [ocsp_info staples_sent]
                    assert_equal good [ocsp_client_cert_status $port]
                    assert_equal 1 [ocsp_info staples_sent]
                    assert_equal good [ocsp_info status]
                    assert_equal cache [ocsp_info source]
                    assert_equal $this_update [ocsp_info this_update]
                    assert_equal 0 [ocsp_info fetches_ok]
                    assert_equal 0 [ocsp_info fetches_failed]
                    assert_equal none [ocsp_info last_error]
                    # No fetch until the margin rule says so (60-minute
                    # responses, 10% margin: thisUpdate + 54 min).
                    assert_morethan [ocsp_info next_refresh_in_seconds] 3000
                    verify_log_message 0 "*OCSP: stapling a good response from the cache file $cache: *next refresh in *" 0
                    assert_equal good [ocsp_client_cert_status $port -tls1_2]

                    # With the responder back, still no request: a restarted
                    # fleet does not stampede it. (A fetch would be due at
                    # once and take milliseconds; give it a second.)
                    ocsp_responder_start
                    after 1000
                    assert_equal $requests [ocsp_responder_requests]
                    assert_equal 0 [ocsp_info fetches_ok]
                    assert_equal 0 [ocsp_info fetches_failed]
                    assert_equal cache [ocsp_info source]

                    # A fetch replaces it as usual.
                    assert_equal OK [r ocsp refresh]
                    wait_for_condition 50 100 {[ocsp_info fetches_ok] == 1} else {
                        fail "no fetch after OCSP REFRESH (last_error [ocsp_info last_error])"
                    }
                    assert_equal responder [ocsp_info source]
                    assert_equal good [ocsp_client_cert_status $port]
                } finally {
                    ocsp_responder_start
                }
            }
        }
    }

    # Bad or unusable cache files, all made before the server starts; with
    # the responder down the server has nothing else to staple, and its
    # fetch at once fails.
    set cdir [file normalize [tmpdir ocsp-cache]]
    set good [ocsps_response server $cdir/good.der]
    ocsp_write_file $cdir/tampered.der [ocsps_tamper_signature $good]
    ocsps_response server2 $cdir/other.der
    ocsps_response server $cdir/expired.der -this-offset -600 -next-offset -540
    ocsp_write_file $cdir/garbage.der [string repeat "not an OCSP response\n" 20]
    ocsp_write_file $cdir/empty.der {}
    file mkdir $cdir/adir
    assert_match "unverified*" [ocsp_der_check [ocsp_read_file $cdir/tampered.der] server]
    foreach {file said} {
        tampered.der {ignoring the cache file %s: bad_signature (*}
        other.der {ignoring the cache file %s: wrong_certificate (*}
        expired.der {ignoring the cache file %s: stale (*}
        garbage.der {ignoring the cache file %s: malformed (*}
        empty.der {ignoring the cache file %s: malformed (*}
        missing.der {no cached response to staple from %s (No such file or directory)*}
        adir {no cached response to staple from %s (*}
    } {
        test "OCSP: a cache file $file is reported, nothing is stapled, and a fetched response replaces it" {
            set path $cdir/$file
            set bytes [expr {[file isfile $path] ? [ocsp_read_file $path] : {}}]
            ocsp_reset
            ocsp_responder_stop
            try {
                start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
                    set port [srv 0 port]
                    wait_for_log_messages 0 [list "*OCSP: [format $said $path]"] 0 50 100
                    assert_equal 0 [count_log_message 0 "OCSP: stapling .* from the cache file"]
                    assert_equal none [ocsp_client_cert_status $port]
                    assert_equal none [ocsp_info status]
                    assert_equal none [ocsp_info source]
                    assert_equal 0 [ocsp_info response_bytes]
                    assert_equal 0 [ocsp_info this_update]
                    ocsp_wait_failures 1
                    assert_equal connect_failed [ocsp_info last_error]
                    assert_equal none [ocsp_info status]
                    assert_equal none [ocsp_client_cert_status $port]
                    if {[file isfile $path]} { assert_equal $bytes [ocsp_read_file $path] }

                    # Once the responder is back, a good response replaces it
                    # (in the file too, unless it is a directory).
                    ocsp_responder_start
                    r ocsp refresh
                    ocsp_wait_status good
                    assert_equal good [ocsp_client_cert_status $port]
                    if {![file isdirectory $path]} {
                        wait_for_condition 50 100 {[file isfile $path] && [ocsp_read_file $path] ne $bytes} else {
                            fail "the cache file was not rewritten"
                        }
                        assert_equal good [ocsp_der_check [ocsp_read_file $path] server]
                    }
                }
            } finally {
                ocsp_responder_start
            }
        }
    }

    test {OCSP: a cache file that cannot be written is a warning; stapling is unaffected} {
        ocsp_reset
        # A path under a regular file: ENOTDIR, even for root.
        set base [file normalize [tmpdir ocsp-cache-ro]]
        ocsp_write_file $base/afile "a file, not a directory\n"
        set path $base/afile/x.der
        start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
            set port [srv 0 port]
            ocsp_wait_status good
            wait_for_condition 50 100 {[ocsp_info cache_write_failures] >= 1} else {
                fail "cache_write_failures is [ocsp_info cache_write_failures]"
            }
            wait_for_log_messages 0 [list "*OCSP: cannot write the cache file $path: Not a directory; stapling is unaffected*"] 0 50 100
            assert_equal good [ocsp_info status]
            assert_equal responder [ocsp_info source]
            assert_equal none [ocsp_info last_error]
            assert_equal 0 [ocsp_info fetches_failed]
            assert_equal good [ocsp_client_cert_status $port]
            # Every fetch tries again.
            set failures [ocsp_info cache_write_failures]
            r ocsp refresh
            wait_for_condition 50 100 {[ocsp_info cache_write_failures] > $failures} else {
                fail "the second write was not tried"
            }
            assert_equal 2 [ocsp_info fetches_ok]
            assert_equal good [ocsp_client_cert_status $port]
            # No stray temporary file next to it either.
            assert_equal {} [glob -nocomplain -directory $base *.tmp*]
        }
    }

    test {OCSP: tls-ocsp-cache-file "" writes no cache file} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {tls-ocsp-cache-file {""}}]] {
            set dir [lindex [r config get dir] 1]
            ocsp_wait_status good
            r ocsp refresh
            wait_for_condition 50 100 {[ocsp_info fetches_ok] == 2} else {
                fail "no second fetch"
            }
            assert_equal {} [glob -nocomplain -directory $dir *.der*]
            assert_equal 0 [ocsp_info cache_write_failures]
            assert_equal 0 [count_log_message 0 "OCSP: no cached response"]
        }
    }

    test {OCSP: tls-ocsp-cache-file, tls-ocsp-response-file, tls-ocsp-responder and tls-ocsp-proxy are protected configs} {
        ocsp_reset
        # Set in the configuration file they work; CONFIG SET refuses them
        # (the harness's default configuration enables protected configs).
        set overrides [list enable-protected-configs no tls-ocsp-responder $::ocsp_url]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            ocsp_wait_status good
            assert_equal $::ocsp_url [ocsp_info responder]
            foreach {name value} [list tls-ocsp-cache-file [ocsp_file x.der] tls-ocsp-response-file [ocsp_file x.der] \
                                      tls-ocsp-responder http://127.0.0.1:1/ tls-ocsp-proxy http://127.0.0.1:1] {
                assert_error "*protected config*" {r config set $name $value}
            }
            assert_equal {tls-ocsp-cache-file ocsp-response.der} [r config get tls-ocsp-cache-file]
            assert_equal {tls-ocsp-response-file {}} [r config get tls-ocsp-response-file]
            assert_equal "tls-ocsp-responder $::ocsp_url" [r config get tls-ocsp-responder]
            assert_equal {tls-ocsp-proxy {}} [r config get tls-ocsp-proxy]
            assert_equal $::ocsp_url [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
        start_server [list overrides [ocsp_server_config server {enable-protected-configs yes}]] {
            set dir [lindex [r config get dir] 1]
            ocsp_wait_status good
            # The next write goes to the new path, relative to dir.
            r config set tls-ocsp-cache-file renamed.der
            r ocsp refresh
            wait_for_condition 50 100 {[file exists $dir/renamed.der]} else {
                fail "no cache file at the new path"
            }
            assert_equal good [ocsp_der_check [ocsp_read_file $dir/renamed.der] server]
        }
    }

    # ---------------------------------------------------------------------
    # tls-ocsp-response-file.

    test {OCSP: tls-ocsp-response-file: read, replaced, rewritten, read again when stapling is turned on, refused, removed and expired} {
        ocsp_reset
        set rdir [file normalize [tmpdir ocsp-response-file]]
        set path $rdir/staple.der
        set good1 [ocsps_response server $rdir/good1.der]
        try {
            ocsp_set_cert_state server R
            set revoked [ocsps_response server $rdir/revoked.der]
        } finally {
            ocsp_set_cert_state server V
        }
        set good2 [ocsps_response server $rdir/good2.der]
        set other [ocsps_response server2 $rdir/other.der]
        set stale [ocsps_response server $rdir/stale.der -this-offset -600 -next-offset -540]
        ocsp_write_file $path $good1
        set requests [ocsp_responder_requests]
        start_server [list overrides [ocsp_server_config server [list tls-ocsp-response-file $path]]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal file [ocsp_info source]
            assert_equal 1 [ocsp_info fetches_ok]
            assert_equal none [ocsp_info last_error]
            assert_equal -1 [ocsp_info next_refresh_in_seconds]
            assert_equal good [ocsp_client_cert_status $port]
            verify_log_message 0 "*OCSP: read a good response from tls-ocsp-response-file $path: *" 0

            # OCSP REFRESH reads it again, unchanged.
            assert_equal OK [r ocsp refresh]
            wait_for_condition 25 100 {[ocsp_info fetches_ok] == 2} else {
                fail "OCSP REFRESH did not read the file again"
            }

            # Replaced by rename: noticed within 2 seconds.
            ocsps_replace $path $revoked
            wait_for_condition 25 100 {[ocsp_info status] eq "revoked"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal revoked [ocsp_client_cert_status $port]
            assert_equal file [ocsp_info source]
            verify_log_message 0 "*OCSP: the server certificate is REVOKED *says tls-ocsp-response-file $path*" 0

            # Rewritten in place (same inode).
            set ok [ocsp_info fetches_ok]
            set fd [open $path r+b]
            chan truncate $fd 0
            puts -nonewline $fd $good2
            close $fd
            wait_for_condition 25 100 {[ocsp_info status] eq "good"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal good [ocsp_client_cert_status $port]

            # Stapling off, then on: the file is read again at once (no
            # OCSP REFRESH needed).
            r config set tls-ocsp-stapling no
            assert_equal disabled [ocsp_info status]
            assert_equal none [ocsp_client_cert_status $port]
            r config set tls-ocsp-stapling yes
            wait_for_condition 50 100 {[ocsp_info status] eq "good"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal file [ocsp_info source]
            assert_equal good [ocsp_client_cert_status $port]
            set this_update [ocsp_info this_update]
            set ok [ocsp_info fetches_ok]

            # Refused files leave the good response stapled.
            foreach {data reason} [list \
                [string repeat "garbage " 100] malformed \
                $other wrong_certificate \
                [ocsps_tamper_signature $good2] bad_signature \
                $stale stale \
            ] {
                set failed [ocsp_info fetches_failed]
                ocsps_replace $path $data
                wait_for_condition 25 100 {[ocsp_info fetches_failed] > $failed} else {
                    fail "the $reason file was not read"
                }
                assert_equal $reason [ocsp_info last_error]
                assert_equal good [ocsp_info status]
                assert_equal file [ocsp_info source]
                assert_equal $this_update [ocsp_info this_update]
                assert_equal $ok [ocsp_info fetches_ok]
                assert_equal good [ocsp_client_cert_status $port]
                verify_log_message 0 "*OCSP: tls-ocsp-response-file $path refused: $reason (*); the cached response stays stapled until it expires*" 0
            }

            # Removed: said once; the response read last stays.
            file delete $path
            wait_for_condition 25 100 {[ocsp_info last_error] eq "file_unreadable"} else {
                fail "last_error is [ocsp_info last_error]"
            }
            assert_equal good [ocsp_info status]
            assert_equal good [ocsp_client_cert_status $port]
            # Let the worker look at the missing file again.
            after 1200
            assert_equal 1 [count_log_message 0 "OCSP: cannot read tls-ocsp-response-file $path: No such file or directory; the cached response stays stapled until it expires"]

            # Back, with a response that expires in 6 s (within its margin
            # at once: one warning), then stapling stops.
            set short [ocsps_response server $rdir/short.der -this-offset -54 -next-offset 6]
            ocsps_replace $path $short
            wait_for_condition 25 100 {[ocsp_info fetches_ok] > $ok} else {
                fail "the file was not read once back (last_error [ocsp_info last_error])"
            }
            assert_equal none [ocsp_info last_error]
            assert_equal good [ocsp_info status]
            assert_lessthan_equal [ocsp_info expires_in_seconds] 6
            wait_for_log_messages 0 [list "*OCSP: the response in tls-ocsp-response-file $path is within its refresh margin and expires at *; supply a fresh one*"] 0 30 100
            wait_for_condition 100 100 {[ocsp_info status] eq "expired"} else {
                fail "status is [ocsp_info status]"
            }
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal 0 [ocsp_info response_bytes]
            assert_equal none [ocsp_info source]
            assert_equal 1 [count_log_message 0 "OCSP: the response in tls-ocsp-response-file .* is within its refresh margin"]
            assert_equal 1 [count_log_message 0 "OCSP: the cached response expired at .*stapling stopped"]

            # A file never asks the responder.
            assert_equal $requests [ocsp_responder_requests]
        }
    }

    test {OCSP: a missing tls-ocsp-response-file at start: nothing stapled until it appears} {
        ocsp_reset
        set path [file normalize [tmpdir ocsp-response-late]]/staple.der
        set good [ocsps_response server [ocsp_file late.der]]
        start_server [list overrides [ocsp_server_config server [list tls-ocsp-response-file $path]]] {
            wait_for_condition 25 100 {[ocsp_info last_error] eq "file_unreadable"} else {
                fail "last_error is [ocsp_info last_error]"
            }
            assert_equal none [ocsp_info status]
            assert_equal none [ocsp_client_cert_status [srv 0 port]]
            verify_log_message 0 "*OCSP: cannot read tls-ocsp-response-file $path: No such file or directory; nothing is stapled*" 0
            ocsps_replace $path $good
            wait_for_condition 25 100 {[ocsp_info status] eq "good"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal none [ocsp_info last_error]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
    }

    foreach {variant extra} [ocsps_variants] {
        test "OCSP: tls-ocsp-response-file in a Kubernetes secret volume follows its symlink swaps, also when the certificate follows its response$variant" {
            ocsp_reset
            set kdir [file normalize [tmpdir ocsp-k8s]]
            set good1 [ocsps_response server [ocsp_file k8s-good1.der]]
            try {
                ocsp_set_cert_state server R
                set revoked [ocsps_response server [ocsp_file k8s-revoked.der]]
            } finally {
                ocsp_set_cert_state server V
            }
            set good2 [ocsps_response server [ocsp_file k8s-good2.der]]
            set other [ocsps_response server2 [ocsp_file k8s-server2.der]]
            set path [ocsps_k8s_publish $kdir $good1]
            set requests [ocsp_responder_requests]
            start_server [list overrides [ocsp_server_config server [concat [list tls-ocsp-response-file $path] $extra]]] {
                set port [srv 0 port]
                ocsp_wait_status good
                assert_equal file [ocsp_info source]
                assert_equal good [ocsp_client_cert_status $port]

                ocsps_k8s_publish $kdir $revoked
                wait_for_condition 25 100 {[ocsp_info status] eq "revoked"} else {
                    fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
                }
                assert_equal revoked [ocsp_client_cert_status $port]

                ocsps_k8s_publish $kdir $good2
                wait_for_condition 25 100 {[ocsp_info status] eq "good"} else {
                    fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
                }
                assert_equal good [ocsp_client_cert_status $port]
                assert_equal 3 [ocsp_info fetches_ok]
                assert_equal 0 [ocsp_info fetches_failed]

                # The secret is updated for another certificate: the new
                # response lands first (refused, the old one stays) ...
                ocsps_k8s_publish $kdir $other
                wait_for_condition 50 100 {[ocsp_info fetches_failed] == 1} else {
                    fail "the response for the next certificate was not read"
                }
                assert_equal wrong_certificate [ocsp_info last_error]
                assert_equal good [ocsp_staple_check $port server]
                # ... then the certificate follows, and gets it stapled.
                r config set tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]
                wait_for_condition 50 100 {[ocsp_info status] eq "good"} else {
                    fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
                }
                assert_equal file [ocsp_info source]
                assert_equal good [ocsp_staple_check $port server2]
                assert_equal $requests [ocsp_responder_requests]
            }
        }
    }

    # ---------------------------------------------------------------------
    # Through an HTTP proxy. The responder is named ocsp.invalid (RFC 6761:
    # never resolves); only the proxy, which connects to 127.0.0.1 itself,
    # can reach it, and the server must not try to resolve it.

    ocsp_reset
    set proxy [ocsps_proxy_start]
    set via_url http://ocsp.invalid:$::ocsp_port/
    try {
        set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://127.0.0.1:[dict get $proxy port]]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            test {OCSP: through tls-ocsp-proxy the request goes to the proxy with the absolute URL} {
                ocsp_wait_status good
                assert_equal 0 [ocsp_info fetches_failed]
                assert_equal $via_url [ocsp_info responder]
                assert_equal good [ocsp_client_cert_status [srv 0 port]]
                set reqs [ocsps_proxy_requests $proxy]
                assert_equal 1 [llength $reqs]
                set req [lindex $reqs 0]
                assert_match "GET ${via_url}* HTTP/1.0" [dict get $req request]
                assert_equal "ocsp.invalid:$::ocsp_port" [ocsps_header $req Host]
                assert_equal {} [ocsps_header $req Proxy-Authorization]
                assert_equal forwarded [dict get $req end]
                verify_log_message 0 "*OCSP: querying $via_url for the server certificate (GET, through http://127.0.0.1:[dict get $proxy port])*" 0
                assert_equal "tls-ocsp-proxy http://127.0.0.1:[dict get $proxy port]" [r config get tls-ocsp-proxy]
            }

            test {OCSP: requests carry no nonce, by GET and by POST, through the proxy} {
                # The GET request, decoded from the URL the proxy saw.
                set get [lindex [ocsps_proxy_requests $proxy] 0]
                set der [ocsps_get_request_der [dict get $get request]]
                set text [ocsps_request_text $der]
                assert_match "*Certificate ID:*Serial Number: [ocsps_cert_serial server]*" $text
                assert_no_match "*Nonce*" $text
                assert_no_match "*Request Extensions*" $text
                assert_equal 1 [regexp -all {Certificate ID:} $text]

                # A responder refusing GET: the same request, POSTed, also
                # in absolute form.
                set n [llength [ocsps_proxy_requests $proxy]]
                set ok [ocsp_info fetches_ok]
                ocsp_mode noget
                try {
                    r ocsp refresh
                    wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                        fail "no fetch (last_error [ocsp_info last_error])"
                    }
                } finally {
                    ocsp_mode openssl
                }
                set reqs [lrange [ocsps_proxy_requests $proxy] $n end]
                assert_equal 2 [llength $reqs]
                assert_match "GET ${via_url}* HTTP/1.0" [dict get [lindex $reqs 0] request]
                set post [lindex $reqs 1]
                assert_equal "POST $via_url HTTP/1.0" [dict get $post request]
                assert_equal application/ocsp-request [ocsps_header $post Content-Type]
                assert_equal "ocsp.invalid:$::ocsp_port" [ocsps_header $post Host]
                assert_equal $der [dict get $post body]
                assert_equal $der [ocsps_get_request_der [dict get [lindex $reqs 0] request]]
                assert_equal good [ocsp_info status]
            }
        }
    } finally {
        ocsps_proxy_stop $proxy
    }

    # Proxy credentials go in Proxy-Authorization; CONFIG GET shows the
    # password as ***, nothing else shows it, CONFIG REWRITE writes it. The
    # password in force survives refused CONFIG SETs and a CONFIG SET of the
    # value CONFIG GET shows: each OCSP REFRESH shows, at the proxy, which
    # password is in force.
    test {OCSP: proxy credentials go in Proxy-Authorization, are shown nowhere, and survive refused CONFIG SETs, the redacted value, CONFIG REWRITE and a restart} {
        ocsp_reset
        set proxy [ocsps_proxy_start user:s3cret]
        set pport [dict get $proxy port]
        set shown "tls-ocsp-proxy http://user:***@127.0.0.1:$pport"
        try {
            # Without credentials at first: the proxy refuses (407).
            set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://127.0.0.1:$pport \
                slowlog-log-slower-than 0]
            start_server [list overrides [ocsp_server_config server $overrides]] {
                set port [srv 0 port]
                ocsp_wait_failures 1
                assert_equal http_status [ocsp_info last_error]
                assert_equal none [ocsp_info status]
                assert_equal 407 [dict get [lindex [ocsps_proxy_requests $proxy] 0] end]

                r config set tls-ocsp-proxy http://user:s3cret@127.0.0.1:$pport
                ocsp_wait_status good
                assert_equal good [ocsp_client_cert_status $port]
                # The last request (a retry without credentials may come
                # before it): the successful one.
                set req [lindex [ocsps_proxy_requests $proxy] end]
                assert_match "GET ${via_url}* HTTP/1.0" [dict get $req request]
                assert_equal "Basic dXNlcjpzM2NyZXQ=" [ocsps_header $req Proxy-Authorization]
                assert_equal forwarded [dict get $req end]

                # The password is shown nowhere.
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_no_match "*s3cret*" [r config get *]
                assert_no_match "*s3cret*" [r info everything]
                assert_no_match "*s3cret*" [r slowlog get 1000]
                assert_no_match "*s3cret*" [r client list]
                verify_log_message 0 "*through http://user:***@127.0.0.1:$pport)*" 0

                # The redacted password for another proxy (port, user, host)
                # is refused.
                foreach other [list "http://user:***@127.0.0.1:9" "http://bob:***@127.0.0.1:$pport" \
                                   "http://user:***@localhost:$pport"] {
                    assert_error "*redacted*" {r config set tls-ocsp-proxy $other}
                }
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal user:s3cret [ocsps_refresh_credentials $proxy]

                # Refused: a proxy URL has no path; two parameters, the
                # second out of range (both are undone).
                assert_error "*tls-ocsp-proxy*" {r config set tls-ocsp-proxy http://user:Other@127.0.0.1:$pport/x}
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal user:s3cret [ocsps_refresh_credentials $proxy]
                assert_error "*tls-ocsp-retry-delay*" {
                    r config set tls-ocsp-proxy http://bob:Pw2@127.0.0.1:$pport tls-ocsp-retry-delay 0
                }
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal {tls-ocsp-retry-delay 1} [r config get tls-ocsp-retry-delay]
                assert_equal user:s3cret [ocsps_refresh_credentials $proxy]
                # The refused value is kept only for that command's rollback:
                # its shown form means nothing afterwards.
                wait_for_condition 50 100 {
                    [catch {r config set tls-ocsp-proxy http://bob:***@127.0.0.1:$pport} err] &&
                    [string match "*redacted*" $err]
                } else {
                    fail "http://bob:***@... still stands for the refused password: $err"
                }
                assert_equal $shown [r config get tls-ocsp-proxy]

                # An operator copying CONFIG GET back: accepted, the real
                # password kept.
                set failed [ocsp_info fetches_failed]
                set ok [ocsp_info fetches_ok]
                set since [llength [ocsps_proxy_requests $proxy]]
                assert_equal OK [r config set tls-ocsp-proxy [lindex [r config get tls-ocsp-proxy] 1]]
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal user:s3cret [ocsps_refresh_credentials $proxy $since]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "the fetch through the proxy failed (last_error [ocsp_info last_error])"
                }
                assert_equal $failed [ocsp_info fetches_failed]

                # CONFIG REWRITE writes the real password, and a restart uses it.
                r config rewrite
                set conf [ocsp_read_file [srv 0 config_file]]
                assert_match "*tls-ocsp-proxy \"http://user:s3cret@127.0.0.1:$pport\"*" $conf
                assert_no_match {*user:\*\*\*@*} $conf
                restart_server 0 true false
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal cache [ocsp_info source]
                set n [llength [ocsps_proxy_requests $proxy]]
                assert_equal user:s3cret [ocsps_refresh_credentials $proxy]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] >= 1} else {
                    fail "no fetch through the proxy after the restart (last_error [ocsp_info last_error])"
                }
                assert_equal good [ocsp_info status]
                assert_equal responder [ocsp_info source]
                assert_equal 1 [llength [lrange [ocsps_proxy_requests $proxy] $n end]]
                assert_equal 0 [count_log_message 0 s3cret]
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    # Userinfo is %-decoded for the proxy. First row: the user holds a
    # space, the password @, / and % (only the last @ in the URL ends them).
    # Second row: a %-encoded colon in the user name; Basic authentication
    # ends the user id at the first decoded colon, so CONFIG GET shows the
    # user "us" and the password "er:S3cretPW2" appears nowhere.
    test {OCSP: %-escapes in proxy credentials are decoded for the proxy, and the password is shown nowhere} {
        ocsp_reset
        set rows [list \
            {us er:p@ss/w%rd} us%20er:p@ss%2Fw%25rd us%20er {p@ss ss%2F} \
            us:er:S3cretPW2 us%3Aer:S3cretPW2 us {S3cretPW2 er:S3} \
        ]
        set proxies {}
        try {
            foreach {credentials userinfo user secrets} $rows {
                lappend proxies [ocsps_proxy_start $credentials]
            }
            set first "http://[lindex $rows 1]@127.0.0.1:[dict get [lindex $proxies 0] port]"
            set overrides [list tls-ocsp-responder $via_url loglevel verbose tls-ocsp-proxy $first]
            start_server [list overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                foreach {credentials userinfo user secrets} $rows proxy $proxies {
                    set pport [dict get $proxy port]
                    r config set tls-ocsp-proxy "http://$userinfo@127.0.0.1:$pport"
                    set ok [ocsp_info fetches_ok]
                    r ocsp refresh
                    wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                        fail "no fetch through the proxy for '$credentials' (last_error [ocsp_info last_error])"
                    }
                    set req [lindex [ocsps_proxy_requests $proxy] end]
                    assert_equal forwarded [dict get $req end]
                    assert_equal $credentials [ocsps_proxy_credentials $req]
                    set shown "http://$user:***@127.0.0.1:$pport"
                    assert_equal "tls-ocsp-proxy $shown" [r config get tls-ocsp-proxy]
                    verify_log_message 0 "*through $shown)*" 0
                    foreach secret $secrets {
                        assert_no_match "*$secret*" [r config get *]
                        assert_equal 0 [count_log_message 0 $secret] "log lines with $secret"
                    }
                }
                # Refused, and the value in force is kept: a bad escape, a
                # raw / in the password (it would end the host part), a path.
                foreach bad [list "http://u:%zz@127.0.0.1:$pport" "http://u:pw%4@127.0.0.1:$pport" \
                             "http://u:p/w@127.0.0.1:$pport" "http://127.0.0.1:$pport/path"] {
                    assert_error "*tls-ocsp-proxy*" {r config set tls-ocsp-proxy $bad}
                }
                assert_equal "tls-ocsp-proxy $shown" [r config get tls-ocsp-proxy]
            }
        } finally {
            foreach proxy $proxies { ocsps_proxy_stop $proxy }
        }
    }

    # ---------------------------------------------------------------------
    # GET, and POST when GET is refused.

    foreach {variant extra} [ocsps_variants] {
        test "OCSP: GET by default; a responder refusing GET gets POST in the same fetch and from then on$variant" {
            ocsp_reset
            set skip [ocsp_responder_requests]
            start_server [list overrides [ocsp_server_config server $extra]] {
                set port [srv 0 port]
                ocsp_wait_status good
                assert_equal {{openssl GET}} [ocsps_responder_log_since $skip]
                assert_equal good [ocsp_client_cert_status $port]

                ocsp_mode noget
                try {
                    set skip [ocsp_responder_requests]
                    r ocsp refresh
                    wait_for_condition 50 100 {[ocsp_info fetches_ok] == 2} else {
                        fail "no fetch (last_error [ocsp_info last_error])"
                    }
                    assert_equal {{noget GET} {noget POST}} [ocsps_responder_log_since $skip]
                    assert_equal 0 [ocsp_info fetches_failed]
                    assert_equal none [ocsp_info last_error]
                    verify_log_message 0 "*OCSP: $::ocsp_url refused GET (GET answered 'HTTP/1.0 405 Method Not Allowed'); asking with POST from now on*" 0
                    assert_equal good [ocsp_client_cert_status $port]

                    # Later fetches go straight to POST.
                    set skip [ocsp_responder_requests]
                    r ocsp refresh
                    wait_for_condition 50 100 {[ocsp_info fetches_ok] == 3} else {
                        fail "no fetch (last_error [ocsp_info last_error])"
                    }
                    assert_equal {{noget POST}} [ocsps_responder_log_since $skip]
                    assert_equal 1 [count_log_message 0 "refused GET"]
                } finally {
                    ocsp_mode openssl
                }

                # Another responder is asked with GET again.
                set skip [ocsp_responder_requests]
                r config set tls-ocsp-responder http://127.0.0.1:$::ocsp_port
                wait_for_condition 50 100 {[ocsp_info fetches_ok] == 4} else {
                    fail "no fetch (last_error [ocsp_info last_error])"
                }
                assert_equal {{openssl GET}} [ocsps_responder_log_since $skip]
                assert_equal good [ocsp_client_cert_status $port]
            }
        }
    }

    # ---------------------------------------------------------------------
    # OCSP REFRESH.

    test {OCSP: OCSP REFRESH fetches at once and says why when it cannot; OCSP HELP, COMMAND DOCS and the ACL categories} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            ocsp_wait_status good
            set help [r ocsp help]
            assert_match "*REFRESH*" $help
            assert_match "*HELP*" $help

            set docs [r command docs ocsp]
            assert_equal ocsp [lindex $docs 0]
            set doc [lindex $docs 1]
            assert_match "*OCSP*" [dict get $doc summary]
            set subs [dict get $doc subcommands]
            assert {[dict exists $subs ocsp|refresh]}
            assert {[dict exists $subs ocsp|help]}
            assert_match "*OCSP*" [dict get [dict get $subs ocsp|refresh] summary]

            set info [lindex [r command info ocsp|refresh] 0]
            assert_equal ocsp|refresh [lindex $info 0]
            assert_equal 2 [lindex $info 1]
            foreach flag {admin noscript} { assert {$flag in [lindex $info 2]} }
            foreach cat {@admin @dangerous @slow} { assert {$cat in [lindex $info 6]} }
            assert {"ocsp|refresh" in [r acl cat admin]}
            assert {"ocsp|refresh" in [r acl cat dangerous]}
            assert {"ocsp|help" ni [r acl cat admin]}

            # A user without @admin may ask for HELP, not REFRESH.
            r acl setuser ocspuser on >pw +@all -@admin
            set c [valkey_client]
            try {
                $c auth ocspuser pw
                assert_match "*REFRESH*" [$c ocsp help]
                catch {$c ocsp refresh} err
                assert_match "*NOPERM*" $err
            } finally {
                $c close
            }
            assert_equal 1 [ocsp_info fetches_ok]

            set requests [ocsp_responder_requests]
            assert_morethan [ocsp_info next_refresh_in_seconds] 3000
            assert_equal OK [r ocsp refresh]
            wait_for_condition 50 100 {[ocsp_info fetches_ok] == 2} else {
                fail "no fetch after OCSP REFRESH (last_error [ocsp_info last_error])"
            }
            assert_equal [expr {$requests + 1}] [ocsp_responder_requests]
            assert_morethan [ocsp_info next_refresh_in_seconds] 3000
            assert_equal OK [r OCSP Refresh]
            wait_for_condition 50 100 {[ocsp_info fetches_ok] == 3} else {
                fail "no fetch after OCSP REFRESH"
            }

            # Two at once: one fetch (the second finds it in flight).
            ocsp_mode hang
            try {
                set requests [ocsp_responder_requests]
                # No retry after the timeout to blur the count.
                r config set tls-ocsp-response-timeout 1 tls-ocsp-retry-delay 60
                assert_equal OK [r ocsp refresh]
                assert_equal OK [r ocsp refresh]
                wait_for_condition 50 100 {[ocsp_info fetches_failed] == 1} else {
                    fail "the hung fetch did not time out"
                }
                assert_equal timeout [ocsp_info last_error]
                assert_equal [expr {$requests + 1}] [ocsp_responder_requests]
                assert_equal good [ocsp_info status]
            } finally {
                ocsp_mode openssl
            }

            catch {r ocsp refresh now} err
            assert_match "*wrong number of arguments*" $err
            catch {r ocsp nosuch} err
            assert_match "*unknown subcommand*" $err
            catch {r ocsp} err
            assert_match "*wrong number of arguments*" $err

            r config set tls-ocsp-stapling no
            catch {r ocsp refresh} err
            assert_match "*OCSP stapling is disabled*" $err
        }
        start_server [list overrides [ocsp_server_config server-noaia]] {
            wait_for_condition 50 100 {[ocsp_info status] eq "no_responder"} else {
                fail "status is [ocsp_info status]"
            }
            catch {r ocsp refresh} err
            assert_match "*no OCSP responder*" $err
        }
    }

    # ---------------------------------------------------------------------
    # Response lifetimes.

    test {OCSP: one-minute responses refreshed at a 90% margin: every fetch succeeds and the staple stays good} {
        ocsp_reset
        ocsp_mode {openssl -nmin 1}
        try {
            # The margin puts the refresh 6 to 33 s after thisUpdate (a random
            # point of its first half); the 8 s interval bound keeps this test short.
            start_server [list overrides [ocsp_server_config server {tls-ocsp-refresh-margin 90% tls-ocsp-max-refresh-interval 8}]] {
                set port [srv 0 port]
                ocsp_wait_status good
                assert_equal 60 [expr {[ocsp_info next_update] - [ocsp_info this_update]}]
                assert_range [ocsp_info next_refresh_in_seconds] 5 8
                set deadline [expr {[clock seconds] + 25}]
                set checks 0
                while {[ocsp_info fetches_ok] < 3} {
                    if {[clock seconds] > $deadline} {
                        fail "only [ocsp_info fetches_ok] fetches in 25 s (last_error [ocsp_info last_error])"
                    }
                    assert_equal good [ocsp_info status]
                    assert_equal good [ocsp_client_cert_status $port]
                    assert_morethan [ocsp_info expires_in_seconds] 40
                    incr checks
                    after 500
                }
                assert_morethan $checks 5
                assert_equal 0 [ocsp_info fetches_failed]
                assert_equal good [ocsp_client_cert_status $port]
                # Each refresh was scheduled, not retried.
                assert_range [ocsp_info next_refresh_in_seconds] 5 8
            }
        } finally {
            ocsp_mode openssl
        }
    }

    # The server staples a response no earlier than its thisUpdate: every
    # sample taken before the new response's thisUpdate (as INFO shows it
    # once stapled) must show the earlier response, and at least one of them
    # must come after the fetch, so the response was held.
    test {OCSP: a response issued a few seconds in the future waits for its thisUpdate while one is stapled} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set this_update [ocsp_info this_update]
            ocsp_mode {openssl -this-offset 6 -next-offset 3606}
            try {
                set asked [clock seconds]
                r ocsp refresh
                # {time fetches_ok this_update}, the time read after INFO.
                set samples {}
                set deadline [expr {$asked + 20}]
                while 1 {
                    set info [r info tls]
                    set now [clock seconds]
                    lappend samples [list $now [getInfoProperty $info tls_ocsp_fetches_ok] \
                        [getInfoProperty $info tls_ocsp_this_update]]
                    if {[lindex $samples end 2] != $this_update} break
                    if {$now > $deadline} { fail "the held response was never stapled: $samples" }
                    after 100
                }
            } finally {
                ocsp_mode openssl
            }
            set stapled [ocsp_info this_update]
            assert_range $stapled [expr {$asked + 6}] [expr {$asked + 12}]
            assert_morethan_equal [lindex $samples end 0] $stapled
            set held 0
            foreach sample $samples {
                lassign $sample now ok seen
                if {$now < $stapled} {
                    assert_equal $this_update $seen "stapled before its thisUpdate $stapled: $samples"
                    if {$ok == 2} { incr held }
                }
            }
            assert_morethan $held 0 "the response was fetched only at its thisUpdate $stapled, nothing was held: $samples"
            assert_equal 2 [ocsp_info fetches_ok]
            assert_equal good [ocsp_client_cert_status $port]
        }
        # With nothing stapled, it is stapled at once.
        ocsp_mode {openssl -this-offset 30 -next-offset 3630}
        try {
            start_server [list overrides [ocsp_server_config]] {
                ocsp_wait_status good
                assert_morethan [ocsp_info this_update] [expr {[clock seconds] + 20}]
                assert_equal good [ocsp_client_cert_status [srv 0 port]]
            }
        } finally {
            ocsp_mode openssl
        }
    }

    # ---------------------------------------------------------------------
    # FIFOs: opening one for reading blocks until a writer comes, and none
    # ever does here.

    test {OCSP: a FIFO as tls-ocsp-response-file is refused once without wedging the server; a file replacing it is stapled} {
        ocsp_reset
        set rdir [file normalize [tmpdir ocsp-fifo-response]]
        set fifo $rdir/staple.der
        try {
            ocsp_set_cert_state server R
            ocsps_response server $rdir/revoked.der
        } finally {
            ocsp_set_cert_state server V
        }
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal 0 [ocsp_info fetches_failed]
            set keep [ocsps_mkfifo $fifo]
            try {
                r config set tls-ocsp-response-file $fifo
                wait_for_log_messages 0 [list "*$fifo*not a regular file*" "*not a regular file*$fifo*"] 0 50 100
                wait_for_condition 20 100 {[ocsp_info fetches_failed] >= 1} else {
                    fail "the refusal was not counted as a failed fetch"
                }
                assert_equal file_unreadable [ocsp_info last_error]
                assert_equal 1 [ocsp_info fetches_failed]
                # Counted once, not once per look at the file.
                set until [expr {[clock milliseconds] + 3000}]
                while {[clock milliseconds] < $until} {
                    assert_equal 1 [ocsp_info fetches_failed]
                    assert_equal PONG [r ping]
                    after 200
                }
                assert_equal file_unreadable [ocsp_info last_error]

                # A real file in its place is read.
                file rename -force $rdir/revoked.der $fifo
                wait_for_condition 50 100 {[ocsp_info status] eq "revoked"} else {
                    fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
                }
                assert_equal file [ocsp_info source]
                assert_equal revoked [ocsp_client_cert_status $port]
            } finally {
                ocsps_fifo_release $fifo $keep
            }
        }
    }

    test {OCSP: a FIFO as tls-ocsp-cache-file at start: the server starts, says so, fetches and staples} {
        ocsp_reset
        set dir [file normalize [tmpdir ocsp-fifo-cache-start]]
        set fifo $dir/ocsp-response.der
        set keep [ocsps_mkfifo $fifo]
        set h {}
        try {
            set h [ocsps_hand_start $dir [ocsp_server_config server [list tls-ocsp-cache-file $fifo]]]
            set port [dict get $h port]
            wait_for_condition 50 100 {[ocsp_command_within $port 500 PING] eq "+PONG"} else {
                fail "the server does not answer PING: [ocsp_command_within $port 500 PING]"
            }
            wait_for_condition 50 100 {
                [ocsps_file_has_line [dict get $h stdout] [list "*$fifo*not a regular file*" "*not a regular file*$fifo*"]]
            } else {
                fail "no log line says that the cache file $fifo is not a regular file"
            }
            set c [valkey 127.0.0.1 $port 0 0]
            dict set h client $c
            wait_for_condition 100 100 {[ocsp_cinfo $c status] eq "good"} else {
                fail "tls_ocsp_status is [ocsp_cinfo $c status] (last_error [ocsp_cinfo $c last_error])"
            }
            assert_equal responder [ocsp_cinfo $c source]
            assert_equal good [ocsp_client_cert_status [dict get $h tls_port]]
        } finally {
            ocsps_fifo_release $fifo $keep
            if {$h ne {}} { ocsps_hand_stop $h }
        }
    }

    test {OCSP: a FIFO as tls-ocsp-cache-file when the certificate changes never blocks the server} {
        ocsp_reset
        set cdir [file normalize [tmpdir ocsp-fifo-cache-change]]
        set path $cdir/cache.der
        start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
            set pport [srv 0 pport]
            ocsp_wait_status good
            wait_for_condition 50 100 {[file exists $path]} else {
                fail "no cache file $path"
            }
            file delete $path
            set keep [ocsps_mkfifo $path]
            try {
                # Another certificate: its cached response is looked for.
                assert_equal +OK [ocsp_command_within $pport 5000 config set \
                    tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]]
                assert_equal +PONG [ocsp_command_within $pport 2000 PING]
                ocsp_wait_status good
                assert_equal good [ocsp_staple_check [srv 0 port] server2]
                assert_equal +PONG [ocsp_command_within $pport 2000 PING]
            } finally {
                ocsps_fifo_release $path $keep
            }
        }
    }

    test {OCSP: leftover temporary cache files are removed at start and never written through} {
        ocsp_reset
        set cdir [file normalize [tmpdir ocsp-cache-leftovers]]
        set cache $cdir/ocsp-response.der
        ocsp_write_file $cdir/victim.txt "not an OCSP response\n"
        ocsp_write_file $cache.tmp-12345 "left over\n"
        ocsp_write_file $cache.tmp-AbC123 "left over\n"
        file link -hard $cache.tmp-[expr {[pid] % 100000}] $cdir/victim.txt
        assert_equal 3 [llength [glob -directory $cdir ocsp-response.der.tmp-*]]
        start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $cache]]] {
            ocsp_wait_status good
            wait_for_condition 50 100 {[file exists $cache]} else {
                fail "no cache file $cache"
            }
            assert_equal good [ocsp_der_check [ocsp_read_file $cache] server]
            assert_equal {} [glob -nocomplain -directory $cdir ocsp-response.der.tmp-*]
            assert_equal "not an OCSP response\n" [ocsp_read_file $cdir/victim.txt]
            assert_equal 0 [ocsp_info cache_write_failures]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
    }

    ocsp_responder_stop
}
}
