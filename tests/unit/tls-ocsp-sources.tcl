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
# URL checks; leftover temporary cache files; protected configs.
#
# Every case asserts what clients receive (openssl s_client -status) as well
# as INFO tls and the log. Needs only the harness, tclsh, the openssl CLI and
# coreutils (ln, mv -T, mkfifo). Everything listens on 127.0.0.1; the proxy
# tests use a responder name under .invalid that only the proxy (which never
# resolves names) can reach. Every test that changes configuration, responder
# behaviour, files or certificate state runs its own server.

source tests/support/ocsp.tcl
source tests/support/ocsp-sources.tcl

if {$::tls} {
tags {tls ocsp} {
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
                assert_equal good [ocsps_der_status [ocsps_read $cache] server]
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

    # Bad cache files, all made before the server starts; with the responder
    # down the server has nothing else to staple.
    set cdir [file normalize [tmpdir ocsp-cache]]
    set good [ocsps_response server $cdir/good.der]
    ocsps_write $cdir/tampered.der [ocsps_tamper_signature $good]
    ocsps_response server2 $cdir/other.der
    ocsps_response server $cdir/expired.der -this-offset -600 -next-offset -540
    ocsps_write $cdir/garbage.der [string repeat "not an OCSP response\n" 20]
    ocsps_write $cdir/empty.der {}
    file mkdir $cdir/adir
    assert_match "unverified*" [ocsps_der_status [ocsps_read $cdir/tampered.der] server]
    foreach {file reason} {
        tampered.der bad_signature
        other.der wrong_certificate
        expired.der stale
        garbage.der malformed
        empty.der malformed
    } {
        test "OCSP: a cache file $file is ignored as $reason and nothing is stapled" {
            set path $cdir/$file
            set bytes [ocsps_read $path]
            ocsp_reset
            ocsp_responder_stop
            try {
                start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
                    set port [srv 0 port]
                    wait_for_log_messages 0 [list "*OCSP: ignoring the cache file $path: $reason (*"] 0 50 100
                    assert_equal 0 [ocsps_log_count "OCSP: stapling .* from the cache file"]
                    assert_equal none [ocsp_client_cert_status $port]
                    assert_equal none [ocsp_info status]
                    assert_equal none [ocsp_info source]
                    assert_equal 0 [ocsp_info response_bytes]
                    assert_equal 0 [ocsp_info this_update]
                    # The server fetches at once instead, and fails.
                    ocsp_wait_failures 1
                    assert_equal connect_failed [ocsp_info last_error]
                    assert_equal none [ocsp_info status]
                    assert_equal none [ocsp_client_cert_status $port]
                    assert_equal $bytes [ocsps_read $path]

                    # Once the responder is back, a good response replaces it.
                    ocsp_responder_start
                    r ocsp refresh
                    ocsp_wait_status good
                    assert_equal good [ocsp_client_cert_status $port]
                    wait_for_condition 50 100 {[ocsps_read $path] ne $bytes} else {
                        fail "the cache file was not rewritten"
                    }
                    assert_equal good [ocsps_der_status [ocsps_read $path] server]
                }
            } finally {
                ocsp_responder_start
            }
        }
    }

    foreach {what path error} [list \
        missing $cdir/missing.der {No such file or directory} \
        {a directory} $cdir/adir {*} \
    ] {
        test "OCSP: a cache file that is $what is reported and nothing is stapled" {
            ocsp_reset
            ocsp_responder_stop
            try {
                start_server [list overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
                    wait_for_log_messages 0 [list "*OCSP: no cached response to staple from $path ($error)*"] 0 50 100
                    ocsp_wait_failures 1
                    assert_equal none [ocsp_info status]
                    assert_equal none [ocsp_client_cert_status [srv 0 port]]
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
        ocsps_write $base/afile "a file, not a directory\n"
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
            assert_equal 0 [ocsps_log_count "OCSP: no cached response"]
        }
    }

    test {OCSP: tls-ocsp-cache-file and tls-ocsp-response-file are protected configs} {
        ocsp_reset
        # The harness's default configuration enables protected configs.
        start_server [list overrides [ocsp_server_config server {enable-protected-configs no}]] {
            ocsp_wait_status good
            foreach name {tls-ocsp-cache-file tls-ocsp-response-file} {
                catch {r config set $name [ocsp_file x.der]} err
                assert_match "*protected config*" $err
            }
            assert_equal {tls-ocsp-cache-file ocsp-response.der} [r config get tls-ocsp-cache-file]
            assert_equal {tls-ocsp-response-file {}} [r config get tls-ocsp-response-file]
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
            assert_equal good [ocsps_der_status [ocsps_read $dir/renamed.der] server]
        }
    }

    test {OCSP: tls-ocsp-responder and tls-ocsp-proxy are protected configs too} {
        ocsp_reset
        # Set in the configuration file they work; CONFIG SET refuses them.
        set overrides [list enable-protected-configs no tls-ocsp-responder $::ocsp_url]
        start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
            ocsp_wait_status good
            assert_equal $::ocsp_url [ocsp_info responder]
            assert_error "*protected*" {r config set tls-ocsp-responder http://127.0.0.1:1/}
            assert_error "*protected*" {r config set tls-ocsp-proxy http://127.0.0.1:1}
            assert_equal "tls-ocsp-responder $::ocsp_url" [r config get tls-ocsp-responder]
            assert_equal {tls-ocsp-proxy {}} [r config get tls-ocsp-proxy]
            assert_equal $::ocsp_url [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
    }

    # ---------------------------------------------------------------------
    # tls-ocsp-response-file.

    test {OCSP: tls-ocsp-response-file: read, replaced, rewritten, refused, removed and expired} {
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
        ocsps_write $path $good1
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
            assert_equal 1 [ocsps_log_count "OCSP: cannot read tls-ocsp-response-file $path: No such file or directory; the cached response stays stapled until it expires"]

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
            assert_equal 1 [ocsps_log_count "OCSP: the response in tls-ocsp-response-file .* is within its refresh margin"]
            assert_equal 1 [ocsps_log_count "OCSP: the cached response expired at .*stapling stopped"]

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
        test "OCSP: tls-ocsp-response-file in a Kubernetes secret volume follows its symlink swaps$variant" {
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

    test {OCSP: proxy credentials go in Proxy-Authorization and are shown nowhere but in the rewritten config} {
        ocsp_reset
        set proxy [ocsps_proxy_start user:s3cret]
        set pport [dict get $proxy port]
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
                assert_equal "Basic [binary encode base64 user:s3cret]" [ocsps_header $req Proxy-Authorization]
                assert_equal "Basic dXNlcjpzM2NyZXQ=" [ocsps_header $req Proxy-Authorization]
                assert_equal forwarded [dict get $req end]

                # The password is shown nowhere.
                assert_equal "tls-ocsp-proxy http://user:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                assert_no_match "*s3cret*" [r config get *]
                assert_no_match "*s3cret*" [r info everything]
                assert_no_match "*s3cret*" [r slowlog get 1000]
                assert_no_match "*s3cret*" [r client list]
                verify_log_message 0 "*through http://user:***@127.0.0.1:$pport)*" 0
                assert_equal 0 [ocsps_log_count s3cret]

                # CONFIG REWRITE keeps the real value, and it works after a restart.
                r config rewrite
                set conf [ocsps_read [srv 0 config_file]]
                assert_match "*tls-ocsp-proxy \"http://user:s3cret@127.0.0.1:$pport\"*" $conf
                restart_server 0 true false
                assert_equal "tls-ocsp-proxy http://user:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                assert_equal cache [ocsp_info source]
                set n [llength [ocsps_proxy_requests $proxy]]
                r ocsp refresh
                wait_for_condition 50 100 {[ocsp_info fetches_ok] >= 1} else {
                    fail "no fetch through the proxy after the restart (last_error [ocsp_info last_error])"
                }
                assert_equal good [ocsp_info status]
                assert_equal responder [ocsp_info source]
                set reqs [lrange [ocsps_proxy_requests $proxy] $n end]
                assert_equal 1 [llength $reqs]
                assert_equal "Basic dXNlcjpzM2NyZXQ=" [ocsps_header [lindex $reqs 0] Proxy-Authorization]
                assert_equal 0 [ocsps_log_count s3cret]
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    test {OCSP: a proxy password may hold @ and %-escapes; it is decoded for the proxy and shown nowhere} {
        ocsp_reset
        # The decoded credentials hold a space, @, / and %; only the last @
        # in the URL ends them.
        set credentials {us er:p@ss/w%rd}
        set proxy [ocsps_proxy_start $credentials]
        set pport [dict get $proxy port]
        try {
            set overrides [list tls-ocsp-responder $via_url \
                tls-ocsp-proxy "http://us%20er:p@ss%2Fw%25rd@127.0.0.1:$pport"]
            start_server [list overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                set req [lindex [ocsps_proxy_requests $proxy] end]
                assert_equal forwarded [dict get $req end]
                assert_equal "Basic [binary encode base64 $credentials]" [ocsps_header $req Proxy-Authorization]
                assert_equal "tls-ocsp-proxy http://us%20er:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                assert_no_match "*ss*rd*" [r config get tls-ocsp-proxy]
                assert_equal 0 [ocsps_log_count {p@ss}]
                assert_equal 0 [ocsps_log_count {ss%2F}]

                # Refused, and the value in force is kept: a bad escape, a
                # raw / in the password (it would end the host part), a path.
                foreach bad [list "http://u:%zz@127.0.0.1:$pport" "http://u:pw%4@127.0.0.1:$pport" \
                             "http://u:p/w@127.0.0.1:$pport" "http://127.0.0.1:$pport/path"] {
                    assert_error "*tls-ocsp-proxy*" {r config set tls-ocsp-proxy $bad}
                }
                assert_equal "tls-ocsp-proxy http://us%20er:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
            }
        } finally {
            ocsps_proxy_stop $proxy
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
                    assert_equal 1 [ocsps_log_count "refused GET"]
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

    test {OCSP: OCSP REFRESH fetches at once, and says why when it cannot} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            ocsp_wait_status good
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

    test {OCSP: OCSP HELP, COMMAND DOCS and the ACL categories of OCSP REFRESH} {
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

    test {OCSP: a response issued a few seconds in the future waits for its thisUpdate while one is stapled} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set this_update [ocsp_info this_update]
            ocsp_mode {openssl -this-offset 5 -next-offset 3605}
            try {
                set asked [clock seconds]
                r ocsp refresh
                wait_for_condition 50 100 {[ocsp_info fetches_ok] == 2} else {
                    fail "no fetch (last_error [ocsp_info last_error])"
                }
            } finally {
                ocsp_mode openssl
            }
            # Held: the earlier response is still the one stapled.
            if {[clock seconds] < $asked + 4} {
                assert_equal $this_update [ocsp_info this_update]
                assert_equal good [ocsp_client_cert_status $port]
            }
            wait_for_condition 100 100 {[ocsp_info this_update] > $this_update} else {
                fail "the held response was never stapled"
            }
            assert_morethan_equal [clock seconds] [ocsp_info this_update]
            assert_range [ocsp_info this_update] [expr {$asked + 4}] [expr {$asked + 10}]
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
    # The proxy password survives whatever CONFIG SET does with the value
    # CONFIG GET shows (http://user:***@host:port). The responder is
    # $via_url, reachable only through the proxy, and the proxy demands
    # alice:Tr0ub4dor: each fetch shows which password is in force.

    test {OCSP: a refused CONFIG SET tls-ocsp-proxy keeps the password in force, in CONFIG REWRITE and after a restart} {
        ocsp_reset
        set proxy [ocsps_proxy_start alice:Tr0ub4dor]
        set pport [dict get $proxy port]
        set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://alice:Tr0ub4dor@127.0.0.1:$pport]
        set shown "tls-ocsp-proxy http://alice:***@127.0.0.1:$pport"
        try {
            start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                assert_equal alice:Tr0ub4dor [ocsps_proxy_credentials [lindex [ocsps_proxy_requests $proxy] end]]

                # Refused: a proxy URL has no path.
                assert_error "*tls-ocsp-proxy*" {r config set tls-ocsp-proxy http://alice:Other@127.0.0.1:$pport/x}
                assert_equal $shown [r config get tls-ocsp-proxy]
                set ok [ocsp_info fetches_ok]
                assert_equal alice:Tr0ub4dor [ocsps_refresh_credentials $proxy]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "the fetch through the proxy failed (last_error [ocsp_info last_error])"
                }

                # CONFIG REWRITE writes the real password, and a restart uses it.
                r config rewrite
                set conf [ocsps_read [srv 0 config_file]]
                assert_match "*tls-ocsp-proxy \"http://alice:Tr0ub4dor@127.0.0.1:$pport\"*" $conf
                assert_no_match {*alice:\*\*\*@*} $conf
                restart_server 0 true false
                assert_equal $shown [r config get tls-ocsp-proxy]
                assert_equal alice:Tr0ub4dor [ocsps_refresh_credentials $proxy]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] >= 1} else {
                    fail "no fetch through the proxy after the restart (last_error [ocsp_info last_error])"
                }
                assert_equal responder [ocsp_info source]
                assert_equal good [ocsp_client_cert_status [srv 0 port]]
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    test {OCSP: a refused multi-parameter CONFIG SET keeps the proxy password in force} {
        ocsp_reset
        set proxy [ocsps_proxy_start alice:Tr0ub4dor]
        set pport [dict get $proxy port]
        set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://alice:Tr0ub4dor@127.0.0.1:$pport]
        try {
            start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                # The proxy is set first, then 0 is out of range: both are undone.
                assert_error "*tls-ocsp-retry-delay*" {
                    r config set tls-ocsp-proxy http://bob:Pw2@127.0.0.1:$pport tls-ocsp-retry-delay 0
                }
                assert_equal "tls-ocsp-proxy http://alice:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                assert_equal {tls-ocsp-retry-delay 1} [r config get tls-ocsp-retry-delay]
                set ok [ocsp_info fetches_ok]
                assert_equal alice:Tr0ub4dor [ocsps_refresh_credentials $proxy]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "the fetch through the proxy failed (last_error [ocsp_info last_error])"
                }
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    test {OCSP: CONFIG SET tls-ocsp-proxy with the value CONFIG GET shows keeps the real password} {
        ocsp_reset
        set proxy [ocsps_proxy_start alice:Tr0ub4dor]
        set pport [dict get $proxy port]
        set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://alice:Tr0ub4dor@127.0.0.1:$pport]
        try {
            start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                set shown [lindex [r config get tls-ocsp-proxy] 1]
                assert_equal "http://alice:***@127.0.0.1:$pport" $shown
                set since [llength [ocsps_proxy_requests $proxy]]
                set ok [ocsp_info fetches_ok]
                assert_equal OK [r config set tls-ocsp-proxy $shown]
                assert_equal "tls-ocsp-proxy $shown" [r config get tls-ocsp-proxy]
                assert_equal alice:Tr0ub4dor [ocsps_refresh_credentials $proxy $since]
                wait_for_condition 50 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "the fetch through the proxy failed (last_error [ocsp_info last_error])"
                }
                assert_equal 0 [ocsp_info fetches_failed]
                r config rewrite
                assert_match "*tls-ocsp-proxy \"http://alice:Tr0ub4dor@127.0.0.1:$pport\"*" [ocsps_read [srv 0 config_file]]
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    test {OCSP: a redacted proxy password (***) for another proxy is refused} {
        ocsp_reset
        set proxy [ocsps_proxy_start alice:Tr0ub4dor]
        set pport [dict get $proxy port]
        set overrides [list tls-ocsp-responder $via_url tls-ocsp-proxy http://alice:Tr0ub4dor@127.0.0.1:$pport]
        try {
            start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                # Another port, another user, another host.
                foreach other [list "http://alice:***@127.0.0.1:9" "http://bob:***@127.0.0.1:$pport" \
                                   "http://alice:***@localhost:$pport"] {
                    assert_error "*redacted*" {r config set tls-ocsp-proxy $other}
                }
                assert_equal "tls-ocsp-proxy http://alice:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                assert_equal alice:Tr0ub4dor [ocsps_refresh_credentials $proxy]
            }
        } finally {
            ocsps_proxy_stop $proxy
        }
    }

    test {OCSP: a %-encoded colon in the proxy user name never reveals the password} {
        ocsp_reset
        # Basic authentication: the user id ends at the first (decoded)
        # colon, so the user is "us" and the password "er:S3cretPW2".
        set proxy [ocsps_proxy_start us:er:S3cretPW2]
        set pport [dict get $proxy port]
        try {
            set overrides [list tls-ocsp-responder $via_url loglevel verbose \
                tls-ocsp-proxy "http://us%3Aer:S3cretPW2@127.0.0.1:$pport"]
            start_server [list tags {external:skip} overrides [ocsp_server_config server $overrides]] {
                ocsp_wait_status good
                set req [lindex [ocsps_proxy_requests $proxy] end]
                assert_equal forwarded [dict get $req end]
                assert_equal us:er:S3cretPW2 [ocsps_proxy_credentials $req]
                assert_no_match "*S3cretPW2*" [r config get *]
                assert_no_match "*er:S3*" [r config get *]
                assert_equal 0 [ocsps_log_count S3cretPW2]
                assert_equal 0 [ocsps_log_count er:S3]
                assert_equal "tls-ocsp-proxy http://us:***@127.0.0.1:$pport" [r config get tls-ocsp-proxy]
                verify_log_message 0 "*through http://us:***@127.0.0.1:$pport)*" 0
            }
        } finally {
            ocsps_proxy_stop $proxy
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
        start_server [list tags {external:skip} overrides [ocsp_server_config]] {
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
            wait_for_condition 50 100 {[ocsps_command_within $port 500 PING] eq "+PONG"} else {
                fail "the server does not answer PING: [ocsps_command_within $port 500 PING]"
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
    } {} {external:skip}

    test {OCSP: a FIFO as tls-ocsp-cache-file when the certificate changes never blocks the server} {
        ocsp_reset
        set cdir [file normalize [tmpdir ocsp-fifo-cache-change]]
        set path $cdir/cache.der
        start_server [list tags {external:skip} overrides [ocsp_server_config server [list tls-ocsp-cache-file $path]]] {
            set pport [srv 0 pport]
            ocsp_wait_status good
            wait_for_condition 50 100 {[file exists $path]} else {
                fail "no cache file $path"
            }
            file delete $path
            set keep [ocsps_mkfifo $path]
            try {
                # Another certificate: its cached response is looked for.
                assert_equal +OK [ocsps_command_within $pport 5000 config set \
                    tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]]
                assert_equal +PONG [ocsps_command_within $pport 2000 PING]
                ocsp_wait_status good
                assert_equal good [ocsp_staple_check [srv 0 port] server2]
                assert_equal +PONG [ocsps_command_within $pport 2000 PING]
            } finally {
                ocsps_fifo_release $path $keep
            }
        }
    }

    # ---------------------------------------------------------------------
    # Resets read tls-ocsp-response-file again.

    test {OCSP: tls-ocsp-stapling no then yes staples from tls-ocsp-response-file again} {
        ocsp_reset
        set rdir [file normalize [tmpdir ocsp-response-reset]]
        set path [ocsp_make_response server $rdir/staple.der]
        start_server [list tags {external:skip} overrides [ocsp_server_config server [list tls-ocsp-response-file $path]]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_client_cert_status $port]
            r config set tls-ocsp-stapling no
            assert_equal disabled [ocsp_info status]
            assert_equal none [ocsp_client_cert_status $port]
            # No OCSP REFRESH: turning stapling on is enough.
            r config set tls-ocsp-stapling yes
            wait_for_condition 50 100 {[ocsp_info status] eq "good"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal file [ocsp_info source]
            assert_equal good [ocsp_client_cert_status $port]
        }
    }

    test {OCSP: a certificate switched after its response landed in tls-ocsp-response-file gets it stapled (Kubernetes order)} {
        ocsp_reset
        set kdir [file normalize [tmpdir ocsp-k8s-switch]]
        set response_a [ocsps_response server [ocsp_file k8s-switch-a.der]]
        set response_b [ocsps_response server2 [ocsp_file k8s-switch-b.der]]
        set path [ocsps_k8s_publish $kdir $response_a]
        start_server [list tags {external:skip} overrides [ocsp_server_config server [list tls-ocsp-response-file $path]]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server]
            # The secret is updated: the new response lands first ...
            set failed [ocsp_info fetches_failed]
            ocsps_k8s_publish $kdir $response_b
            wait_for_condition 50 100 {[ocsp_info fetches_failed] > $failed} else {
                fail "the response for the next certificate was not read"
            }
            assert_equal wrong_certificate [ocsp_info last_error]
            assert_equal good [ocsp_staple_check $port server]
            # ... then the certificate follows.
            r config set tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]
            wait_for_condition 50 100 {[ocsp_info status] eq "good"} else {
                fail "status is [ocsp_info status] (last_error [ocsp_info last_error])"
            }
            assert_equal file [ocsp_info source]
            assert_equal good [ocsp_staple_check $port server2]
        }
    }

    # ---------------------------------------------------------------------
    # URL checks.

    test {OCSP: a tls-ocsp-responder URL with a fragment is refused} {
        ocsp_reset
        start_server [list tags {external:skip} overrides [ocsp_server_config]] {
            ocsp_wait_status good
            assert_error "*fragment*" {r config set tls-ocsp-responder "http://127.0.0.1:1/a#frag"}
            assert_equal {tls-ocsp-responder {}} [r config get tls-ocsp-responder]
            assert_equal $::ocsp_url [ocsp_info responder]
        }
    }

    test {OCSP: responder and proxy URLs longer than 1024 bytes are refused} {
        ocsp_reset
        start_server [list tags {external:skip} overrides [ocsp_server_config]] {
            ocsp_wait_status good
            # 19 + 1006 = 1025 bytes; the proxy: 9 + 1004 + 12.
            set responder "http://127.0.0.1:1/[string repeat a 1006]"
            set proxy "http://u:[string repeat p 1004]@127.0.0.1:1"
            assert_equal 1025 [string length $responder]
            assert_equal 1025 [string length $proxy]
            assert_error "*long*" {r config set tls-ocsp-responder $responder}
            assert_error "*long*" {r config set tls-ocsp-proxy $proxy}
            assert_equal {tls-ocsp-responder {}} [r config get tls-ocsp-responder]
            assert_equal {tls-ocsp-proxy {}} [r config get tls-ocsp-proxy]
            # 1024 bytes are fine.
            assert_equal OK [r config set tls-ocsp-responder [string range $responder 0 end-1]]
            assert_equal OK [r config set tls-ocsp-proxy "http://u:[string repeat p 1003]@127.0.0.1:1"]
            assert_equal 1024 [string length [lindex [r config get tls-ocsp-responder] 1]]
        }
    }

    test {OCSP: leftover temporary cache files are removed at start and never written through} {
        ocsp_reset
        set cdir [file normalize [tmpdir ocsp-cache-leftovers]]
        set cache $cdir/ocsp-response.der
        ocsps_write $cdir/victim.txt "not an OCSP response\n"
        ocsps_write $cache.tmp-12345 "left over\n"
        ocsps_write $cache.tmp-AbC123 "left over\n"
        file link -hard $cache.tmp-[expr {[pid] % 100000}] $cdir/victim.txt
        assert_equal 3 [llength [glob -directory $cdir ocsp-response.der.tmp-*]]
        start_server [list tags {external:skip} overrides [ocsp_server_config server [list tls-ocsp-cache-file $cache]]] {
            ocsp_wait_status good
            wait_for_condition 50 100 {[file exists $cache]} else {
                fail "no cache file $cache"
            }
            assert_equal good [ocsps_der_status [ocsps_read $cache] server]
            assert_equal {} [glob -nocomplain -directory $cdir ocsp-response.der.tmp-*]
            assert_equal "not an OCSP response\n" [ocsps_read $cdir/victim.txt]
            assert_equal 0 [ocsp_info cache_write_failures]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
    }

    ocsp_responder_stop
}
}
