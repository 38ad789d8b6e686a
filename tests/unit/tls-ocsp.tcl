# OCSP stapling (src/tls_ocsp.c): fetch, verify, cache, refresh and staple.
# Every case asserts what clients receive (openssl s_client -status, and the
# stapled DER taken from its -msg dump and checked with openssl ocsp -respin)
# and what INFO tls says, against a real responder (openssl ocsp, behind
# tests/helpers/ocsp-responder.tcl) and against deliberately broken or
# hostile ones.
#
# Needs only the harness, tclsh and the openssl CLI. Tests that use redis-py
# or gnutls-cli are skipped when those are missing; the hermetic DNS test
# needs root (unshare -m, port 53) and is skipped otherwise. Latency is
# measured by bench/latency-hung-fetch, not here: these tests assert what
# happens (a PING is answered while a fetch is in flight), never how fast.
# Every test runs its own server(s) with the PKI's certificates, hence
# external:skip for the whole file.

source tests/support/ocsp.tcl

if {$::tls} {
tags {tls ocsp external:skip} {
    ocsp_setup
    ocsp_responder_start

    # Read-only checks share one server.
    start_server [list overrides [ocsp_server_config]] {
        set port [srv 0 port]

        test {OCSP: good status stapled to the first client that asks, with the INFO fields} {
            ocsp_wait_status good
            assert_equal 0 [ocsp_info staples_sent]
            set view [ocsp_client_view $port]
            assert_equal 1 [dict get $view stapled]
            assert_equal successful [dict get $view response_status]
            assert_equal good [dict get $view cert_status]
            assert_equal 1 [ocsp_info staples_sent]

            assert_equal enabled [ocsp_info stapling]
            assert_equal $::ocsp_url [ocsp_info responder]
            set this_update [ocsp_info this_update]
            set next_update [ocsp_info next_update]
            assert_range $this_update [expr {[clock seconds] - 60}] [clock seconds]
            assert_equal 3600 [expr {$next_update - $this_update}]
            assert_range [ocsp_info expires_in_seconds] 3500 3600
            assert_range [ocsp_info last_success_time] $this_update [clock seconds]
            assert_equal 1 [ocsp_info fetches_ok]
            assert_equal 0 [ocsp_info fetches_failed]
            assert_equal 0 [ocsp_info consecutive_failures]
            assert_equal none [ocsp_info last_error]
            assert_morethan [ocsp_info response_bytes] 500
            assert_equal responder [ocsp_info source]
            verify_log_message 0 "*OCSP: fetched a good response from $::ocsp_url*" 0
        }

        test {OCSP: the staple is the CA's signed answer for our certificate, in TLS 1.2 and 1.3} {
            foreach proto {-tls1_2 -tls1_3} {
                assert_equal good [ocsp_staple_check $port server $proto]
                set der [dict get [ocsp_client_view $port $proto] der]
                assert_equal [ocsp_info response_bytes] [string length $der]
            }
            # It names our certificate, not another one from the same CA.
            assert_match {no status for server2*} [ocsp_staple_check $port server2]
        }

        test {OCSP: staples_sent counts a staple attached to a handshake that then fails, and nothing for a client that does not ask} {
            set before [ocsp_info staples_sent]
            set out [exec timeout 10 openssl s_client -connect 127.0.0.1:$port -CAfile [ocsp_file ca.crt] \
                -cert [ocsp_file client.crt] -key [ocsp_file client.key] < /dev/null 2>@1]
            assert_match "*CONNECTED*" $out
            assert_no_match "*OCSP Response Status*" $out
            assert_equal $before [ocsp_info staples_sent]
            # The client does not trust our CA, so it aborts after the staple.
            catch {exec timeout 10 openssl s_client -connect 127.0.0.1:$port -status -verify_return_error \
                -CAfile [ocsp_file rogue-ca.crt] -cert [ocsp_file client.crt] -key [ocsp_file client.key] \
                < /dev/null 2>@1} out
            assert_match "*CONNECTED*" $out
            assert_match "*verify error*" $out
            assert_equal [expr {$before + 1}] [ocsp_info staples_sent]
        }

        test {OCSP: gnutls-cli, a second TLS stack, receives the staple and accepts it} {
            ocsp_need_gnutls
            set der [ocsp_file gnutls-staple.der]
            file delete $der
            catch {exec timeout 10 gnutls-cli --port $port --x509cafile [ocsp_file ca.crt] \
                --x509certfile [ocsp_file client.crt] --x509keyfile [ocsp_file client.key] \
                --ocsp --save-ocsp=$der 127.0.0.1 < /dev/null 2>@1} out
            assert_match "*Handshake was completed*" $out
            assert {[file exists $der] && [file size $der] > 0}
            assert_equal good [ocsp_der_check [ocsp_read_file $der] server]
        }
    }

    test {OCSP: refresh time follows the margin rule and the max refresh interval, which also bounds a response without nextUpdate (1 hour if 0)} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            # 60-minute responses, margin 10%: refresh in the later half of
            # the margin, between nextUpdate - 6 min and nextUpdate - 3 min
            # (a random point, so that servers holding the same response do
            # not refresh together).
            set this_update [ocsp_info this_update]
            set due [expr {$this_update + 3240}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due + 180 - [clock seconds] + 1}]

            r config set tls-ocsp-refresh-margin 50%
            set due [expr {$this_update + 1800}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due + 900 - [clock seconds] + 1}]

            # The bound wins when it comes first; it counts from the last
            # fetch, less up to a tenth of it at random (the same spreading).
            r config set tls-ocsp-max-refresh-interval 600
            set last [ocsp_info last_success_time]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$last + 540 - [clock seconds] - 2}] [expr {$last + 600 - [clock seconds] + 1}]

            r config set tls-ocsp-max-refresh-interval 0
            r config set tls-ocsp-refresh-margin 10
            set due [expr {$this_update + 3240}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due + 180 - [clock seconds] + 1}]

            # Without nextUpdate a response is valid for the bound.
            ocsp_mode {openssl -nmin none}
            foreach {interval validity} {1800 1800 0 3600} {
                r config set tls-ocsp-max-refresh-interval $interval
                set ok [ocsp_info fetches_ok]
                ocsp_refetch
                wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "no successful fetch (last_error [ocsp_info last_error])"
                }
                assert_equal good [ocsp_info status]
                assert_equal 0 [ocsp_info next_update]
                set left [expr {[ocsp_info this_update] + $validity - [clock seconds]}]
                assert_range [ocsp_info expires_in_seconds] [expr {$left - 2}] [expr {$left + 1}]
                assert_equal good [ocsp_client_cert_status $port]
            }
            ocsp_mode openssl
        }
    }

    test {OCSP: revoked is stapled as revoked once the CA revokes and the server refreshes} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            try {
                ocsp_set_cert_state server R
                # Refresh every second, as a short bound would.
                r config set tls-ocsp-max-refresh-interval 1
                ocsp_wait_status revoked
                assert_equal revoked [ocsp_client_cert_status $port]
                assert_equal revoked [ocsp_staple_check $port server]
                verify_log_message 0 "*OCSP: the server certificate is REVOKED*" 0
            } finally {
                ocsp_set_cert_state server V
            }
            ocsp_wait_status good
            assert_equal good [ocsp_client_cert_status $port]
        }
    }

    test {OCSP: redis-py with ssl_validate_ocsp_stapled accepts the good staple and refuses the revoked one} {
        ocsp_need_redis_py
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {tls-ocsp-max-refresh-interval 1}]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal PONG [ocsp_redis_py $port]
            try {
                ocsp_set_cert_state server R
                ocsp_wait_status revoked
                assert_match {refused:*REVOKED*} [ocsp_redis_py $port]
            } finally {
                ocsp_set_cert_state server V
            }
            ocsp_wait_status good
            assert_equal PONG [ocsp_redis_py $port]
        }
    }

    # Each broken answer is refused, counted with its reason, never stapled,
    # and the earlier good response stays stapled; the next good answer
    # clears the error. Times in the past or the future are made by retiming
    # a real response and re-signing it: the signature is checked before the
    # times, so a refusal as stale or not_yet_valid, naming the bound that
    # failed, also shows that the re-signed response verified.
    test {OCSP: broken answers are refused with their reason, the good staple stays, and a good answer clears the error} {
        ocsp_reset
        set other_response [ocsp_make_response other [ocsp_file other-response.der]]
        set unauthorized [ocsp_make_error_response [ocsp_file unauthorized.der] 6]
        # No retry of its own between the fetches the test asks for.
        start_server [list overrides [ocsp_server_config server {tls-ocsp-retry-delay 60}]] {
            set port [srv 0 port]
            ocsp_wait_status good
            try {
                foreach {mode reasons detail} [list \
                    garbage malformed * \
                    http500 http_status * \
                    {openssl -type text/html} content_type * \
                    oversized too_large * \
                    endless-headers {too_large timeout} * \
                    truncated truncated * \
                    hang timeout * \
                    "file $other_response" wrong_certificate * \
                    "file $unauthorized" responder_error * \
                    {openssl -signer rogue} bad_signature * \
                    {openssl -signer nosign} bad_signature * \
                    {openssl -this-offset -600 -next-offset -540} stale {nextUpdate * has passed} \
                    {openssl -this-offset 3600 -next-offset 7200} not_yet_valid {thisUpdate * is in the future} \
                    {openssl -this-offset 0 -next-offset -3600} malformed {nextUpdate*before*thisUpdate*} \
                    {openssl -this-offset -1800 -next-offset -3600} malformed {nextUpdate*before*thisUpdate*} \
                    {openssl -pad-signed 20000} too_large * \
                ] {
                    set this_update [ocsp_info this_update]
                    set failed [ocsp_info fetches_failed]
                    set ok [ocsp_info fetches_ok]
                    set from [count_log_lines 0]
                    ocsp_fetch_from_mode $mode
                    # endless-headers would go on for 30 s, hang for ever.
                    wait_for_condition 100 100 {[ocsp_info fetches_failed] > $failed} else {
                        fail "'$mode': the fetch did not fail (last_error [ocsp_info last_error])"
                    }
                    set reason [ocsp_info last_error]
                    if {$reason ni $reasons} {
                        fail "'$mode' was refused as $reason, expected [join $reasons { or }]"
                    }
                    assert_equal $ok [ocsp_info fetches_ok] $mode
                    assert_equal good [ocsp_info status] $mode
                    assert_equal $this_update [ocsp_info this_update] $mode
                    assert_morethan [ocsp_info consecutive_failures] 0 $mode
                    assert_equal good [ocsp_client_cert_status $port] $mode
                    verify_log_message 0 "*OCSP: fetch from * failed: $reason ($detail*" $from

                    ocsp_mode openssl
                    ocsp_refetch
                    wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                        fail "no good fetch after '$mode' (last_error [ocsp_info last_error])"
                    }
                    assert_equal none [ocsp_info last_error] $mode
                    assert_equal 0 [ocsp_info consecutive_failures] $mode
                }
            } finally {
                ocsp_mode openssl
            }
        }
    }

    # A fetch that hangs (the responder says nothing) or trickles (one header
    # byte a second, for 2 minutes) is abandoned at tls-ocsp-response-timeout
    # however the bytes come. A PING is answered while it is in flight, and a
    # shutdown does not wait for it.
    test {OCSP: while a fetch hangs or trickles the server answers; the fetch fails at its timeout; shutdown does not wait for it} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {tls-ocsp-retry-delay 60 tls-ocsp-response-timeout 5}]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set this_update [ocsp_info this_update]
            foreach mode {hang slow-header} {
                set failed [ocsp_info fetches_failed]
                ocsp_fetch_from_mode $mode
                # In flight before and after the PING and a handshake.
                assert_equal 0 [ocsp_info next_refresh_in_seconds] $mode
                assert_equal PONG [r ping]
                assert_equal good [ocsp_client_cert_status $port]
                assert_equal $failed [ocsp_info fetches_failed] "$mode: the fetch ended before the PING was answered"
                assert_equal 0 [ocsp_info next_refresh_in_seconds] $mode
                wait_for_condition 150 100 {[ocsp_info fetches_failed] > $failed} else {
                    fail "$mode: the fetch did not end at its timeout"
                }
                assert_equal timeout [ocsp_info last_error] $mode
                assert_equal good [ocsp_info status]
                assert_equal $this_update [ocsp_info this_update]
            }
            # A fetch in flight for up to a minute does not hold up a shutdown.
            ocsp_start_hung_fetch 60
            set pid [srv 0 pid]
            catch {r shutdown nosave}
            wait_for_condition 100 50 {![is_alive $pid]} else {
                fail "server did not exit"
            }
            verify_log_message 0 "*ready to exit, bye bye*" 0
            ocsp_mode openssl
        }
    }

    # A response padded in its unsigned certs field: the server keeps only
    # what a client needs (the delegated signer's certificate, or nothing
    # when the CA signed), so TLS 1.2 clients, which refuse a
    # CertificateStatus over 16384 bytes, and TLS 1.3 clients both take it.
    test {OCSP: responses padded to 20000 and 65530 bytes are stapled trimmed to TLS 1.2 and 1.3 clients} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {tls-ocsp-retry-delay 60}]] {
            set port [srv 0 port]
            ocsp_wait_status good
            try {
                foreach {size signer} {20000 signer 65530 signer 20000 ca 65530 ca} {
                    set what "$size bytes, signed by $signer"
                    set sample [ocsp_make_response server [ocsp_file padded-sample.der] padded $size -signer $signer]
                    assert_equal $size [file size $sample]
                    assert_equal good [ocsp_der_check [ocsp_read_file $sample] server]
                    set ok [ocsp_info fetches_ok]
                    ocsp_fetch_from_mode "padded $size -signer $signer"
                    wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                        fail "$what: not accepted (last_error [ocsp_info last_error])"
                    }
                    assert_equal good [ocsp_info status] $what
                    set bytes [ocsp_info response_bytes]
                    assert_lessthan_equal $bytes 16380 $what
                    foreach proto {-tls1_2 -tls1_3} {
                        set view [ocsp_client_view $port $proto]
                        assert_equal 0 [dict get $view fatal] "$what, $proto: [dict get $view raw]"
                        assert_equal 0 [dict get $view exit] "$what, $proto: [dict get $view raw]"
                        assert_equal successful [dict get $view response_status]
                        assert_equal good [dict get $view cert_status]
                        set der [dict get $view der]
                        assert_equal $bytes [string length $der] "$what, $proto"
                        assert_equal good [ocsp_der_check $der server]
                        set certs [ocsp_der_certs $der]
                        if {$signer eq "ca"} {
                            assert_equal 0 [llength $certs] "$what, $proto"
                        } else {
                            assert_equal 1 [llength $certs] "$what, $proto"
                            assert_equal [der_from_pem_file [ocsp_file signer.crt]] [lindex $certs 0]
                        }
                    }
                }
            } finally {
                ocsp_mode openssl
            }
        }
    }

    test {OCSP: mutated responses (fuzz mode) never crash the server nor replace the good staple} {
        ocsp_reset
        set base [ocsp_make_response server [ocsp_file fuzz-base.der]]
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set requests [ocsp_responder_requests]
            ocsp_mode "fuzz $base 20260601"
            for {set i 0} {$i < 40} {incr i} {
                set done [ocsp_fetches_done]
                ocsp_refetch
                wait_for_condition 100 50 {[ocsp_fetches_done] > $done} else {
                    fail "fetch $i did not end"
                }
                assert_equal PONG [r ping]
            }
            ocsp_mode openssl
            assert_equal good [ocsp_info status]
            assert_equal good [ocsp_staple_check $port server]
            assert_morethan_equal [ocsp_responder_requests] [expr {$requests + 40}]
            set log [ocsp_read_file [ocsp_file responder.log]]
            assert_match "* fuzz *" $log
        }
    }

    test {OCSP: a responder at an IPv6 literal is fetched from, and INFO shows the URL as set} {
        if {![is_ipv6_available]} { skip "IPv6 (::1) not available" }
        ocsp_reset
        set port6 [find_available_port $::baseport $::portcount]
        set pid6 [ocsp_responder_spawn $port6 ::1]
        try {
            # No AIA URL: the only way to a staple is the IPv6 responder.
            start_server [list overrides [ocsp_server_config server-noaia]] {
                set url "http://\[::1\]:$port6/"
                r config set tls-ocsp-responder $url
                ocsp_wait_status good
                assert_equal none [ocsp_info last_error]
                assert_equal $url [ocsp_info responder]
                assert_equal $url [lindex [r config get tls-ocsp-responder] 1]
                assert_equal good [ocsp_staple_check [srv 0 port] server-noaia]
            }
        } finally {
            ocsp_responder_kill $pid6 $port6 ::1
        }
    }

    # Names are looked up in the resolver thread, against a fake DNS server
    # (ocsp_hermetic_start): one that does not resolve fails the fetch;
    # lookups that never answer (the resolver waits 30 s) neither hold up
    # commands nor pile up threads or descriptors.
    test {OCSP: name lookups: a name that does not resolve fails as resolve_failed; lookups that never answer stall nothing and cost no threads or descriptors} {
        ocsp_reset
        set h [ocsp_hermetic_start $::ocsp_url]
        try {
            set c [dict get $h client]
            set pid [dict get $h pid]
            set port [dict get $h port]
            wait_for_condition 100 100 {[ocsp_cinfo $c status] eq "good"} else {
                fail "status is [ocsp_cinfo $c status] ([ocsp_cinfo $c last_error])"
            }
            set failed [ocsp_cinfo $c fetches_failed]
            $c config set tls-ocsp-responder http://ocsp.nxdomain.test:$::ocsp_port/
            wait_for_condition 100 100 {[ocsp_cinfo $c fetches_failed] > $failed} else {
                fail "the fetch from a name that does not resolve did not fail"
            }
            assert_equal resolve_failed [ocsp_cinfo $c last_error]
            assert_morethan [ocsp_dns_queries $h ocsp.nxdomain.test] 0
            assert_equal good [ocsp_cinfo $c status]
            assert_equal good [ocsp_client_cert_status [dict get $h tls_port]]

            set failed [ocsp_cinfo $c fetches_failed]
            $c config set tls-ocsp-responder http://ocsp.hang.test:$::ocsp_port/
            wait_for_condition 100 50 {[ocsp_dns_queries $h ocsp.hang.test] > 0} else {
                fail "the lookup never reached the fake DNS server"
            }
            assert_equal +PONG [ocsp_command_within $port 5000 PING]
            wait_for_condition 100 100 {[ocsp_cinfo $c fetches_failed] > $failed} else {
                fail "the fetch waiting for the lookup never ended"
            }
            assert_equal timeout [ocsp_cinfo $c last_error]
            set threads [ocsp_proc_count $pid task]
            set fds [ocsp_proc_count $pid fd]
            # A new lookup for each change, each answered by nobody; every
            # command gets its reply meanwhile.
            for {set i 0} {$i < 30} {incr i} {
                set host [expr {$i % 2 ? "ocsp2.hang.test" : "ocsp.hang.test"}]
                assert_equal +OK [ocsp_command_within $port 5000 config set tls-ocsp-responder http://$host:$::ocsp_port/]
                assert_equal +PONG [ocsp_command_within $port 5000 PING]
                after 20
            }
            # Watch for a while as the abandoned fetches time out.
            set max_threads 0
            set max_fds 0
            set deadline [expr {[clock milliseconds] + 3000}]
            while {[clock milliseconds] < $deadline} {
                assert_equal +PONG [ocsp_command_within $port 5000 PING]
                set n [ocsp_proc_count $pid task]
                if {$n > $max_threads} { set max_threads $n }
                set n [ocsp_proc_count $pid fd]
                if {$n > $max_fds} { set max_fds $n }
                after 50
            }
            assert_lessthan_equal $max_threads [expr {$threads + 3}] "threads: $threads before, up to $max_threads after"
            assert_lessthan_equal $max_fds [expr {$fds + 3}] "descriptors: $fds before, up to $max_fds after"
            assert_equal http://ocsp2.hang.test:$::ocsp_port/ [ocsp_cinfo $c responder]
            assert_equal good [ocsp_cinfo $c status]

            $c config set tls-ocsp-responder $::ocsp_url
            wait_for_condition 100 100 {[ocsp_cinfo $c last_error] eq "none"} else {
                fail "no successful fetch after the responder came back"
            }
        } finally {
            ocsp_hermetic_stop $h
        }
    }

    test {OCSP: an unreachable responder address fails as connect_failed} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            ocsp_wait_status good
            set failed [ocsp_info fetches_failed]
            set closed [find_available_port $::baseport $::portcount]
            r config set tls-ocsp-responder "http://127.0.0.1:$closed/"
            ocsp_wait_failures [expr {$failed + 1}]
            assert_equal connect_failed [ocsp_info last_error]
            assert_equal "http://127.0.0.1:$closed/" [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
            # The next try follows tls-ocsp-retry-delay, +-10% jitter.
            r config set tls-ocsp-retry-delay 100
            assert_range [ocsp_info next_refresh_in_seconds] 88 111
            r config set tls-ocsp-retry-delay 1
            assert_lessthan_equal [ocsp_info next_refresh_in_seconds] 2
            r config set tls-ocsp-responder ""
            wait_for_condition 100 100 {[ocsp_info last_error] eq "none"} else {
                fail "no successful fetch from the AIA responder"
            }
            assert_equal $::ocsp_url [ocsp_info responder]
        }
    }

    # The OCSP code runs no thread of its own until a responder's name must
    # be looked up; then the resolver thread (named ocsp_resolver) starts,
    # once, and serves every later lookup.
    test {OCSP: no OCSP thread without TLS or with stapling off; stapling turned on and off again stops at once, fetches at once and starts the resolver thread only once} {
        # Stapling asked for on a server without TLS: accepted and idle.
        set plain_port [find_available_port $::baseport $::portcount]
        set dir [tmpdir ocsp-no-tls]
        set pid [exec src/valkey-server --port $plain_port --bind 127.0.0.1 --dir $dir --save {} \
            --tls-ocsp-stapling yes > $dir/stdout 2>@1 &]
        try {
            wait_for_condition 100 50 {[ocsp_port_open $plain_port]} else {
                fail "a server without TLS did not start with tls-ocsp-stapling yes"
            }
            set c [valkey 127.0.0.1 $plain_port 0 0]
            assert_equal PONG [$c ping]
            set info [$c info tls]
            assert_match "*tls_ocsp_stapling:enabled*" $info
            if {$::tls_module} {
                # BUILD_TLS=module without loadmodule: the directive is kept,
                # does nothing, and the log, INFO, CONFIG SET and the command
                # say why.
                set why "OCSP stapling needs the TLS module: load valkey-tls.so at startup (loadmodule)"
                assert_match "*tls_ocsp_status:unavailable*" $info
                wait_for_condition 50 100 {
                    [string first "tls-ocsp-stapling yes has no effect: $why" [ocsp_read_file $dir/stdout]] >= 0
                } else {
                    fail "no startup warning: [ocsp_read_file $dir/stdout]"
                }
                assert_error "*$why*" {$c ocsp refresh}
                assert_equal OK [$c config set tls-ocsp-stapling no]
                assert_error "*$why*" {$c config set tls-ocsp-stapling yes}
                assert_equal {tls-ocsp-stapling no} [$c config get tls-ocsp-stapling]
            } else {
                assert_match "*tls_ocsp_status:none*" $info
                assert_match "*tls_ocsp_fetches_failed:0*" $info
            }
            $c close
            assert_equal {} [ocsp_threads $pid *ocsp*] "threads of the server without TLS: [ocsp_threads $pid]"
        } finally {
            catch {exec kill $pid}
            wait_for_condition 100 50 {![is_alive $pid]} else {
                fail "server did not stop"
            }
        }

        ocsp_reset
        # A responder named, not an address: each fetch looks it up.
        set overrides [list tls-ocsp-stapling no tls-ocsp-responder http://localhost:$::ocsp_port/]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            set port [srv 0 port]
            set pid [srv 0 pid]
            assert_equal disabled [ocsp_info status]
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal {} [ocsp_threads $pid *ocsp*] "threads with stapling off: [ocsp_threads $pid]"
            for {set round 1} {$round <= 3} {incr round} {
                set ok [ocsp_info fetches_ok]
                r config set tls-ocsp-stapling yes
                ocsp_wait_status good
                assert_equal [expr {$ok + 1}] [ocsp_info fetches_ok]
                assert_equal good [ocsp_client_cert_status $port]

                r config set tls-ocsp-stapling no
                assert_equal disabled [ocsp_info stapling]
                assert_equal disabled [ocsp_info status]
                assert_equal 0 [ocsp_info response_bytes]
                assert_equal -1 [ocsp_info next_refresh_in_seconds]
                assert_equal none [ocsp_client_cert_status $port]

                # jemalloc starts its background threads (jemalloc_bg_thd)
                # as arenas come into use: not ours to count.
                set threads [lsearch -all -inline -not [ocsp_threads $pid] jemalloc_bg_thd]
                assert_equal [ocsp_expected_threads] [ocsp_threads $pid *ocsp*] "OCSP threads after round $round (all threads: $threads)"
                if {$round == 1} {
                    set first $threads
                } else {
                    assert_equal [llength $first] [llength $threads] \
                        "thread count: after round 1: $first; after round $round: $threads"
                }
            }
        }
    }

    # Every directive refuses what it cannot use, says why and keeps its
    # value; nothing is fetched for a refused value.
    test {OCSP: CONFIG SET refuses bad values of the OCSP directives and says why; good values are kept, also by CONFIG REWRITE} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server-noaia [list tls-ocsp-responder $::ocsp_url]]] {
            ocsp_wait_status good
            set ok [ocsp_info fetches_ok]
            set p $::ocsp_port
            # 1025 bytes each; 1024 are accepted below.
            set long_url "http://127.0.0.1:1/[string repeat a 1006]"
            set long_proxy "http://u:[string repeat p 1004]@127.0.0.1:1"
            foreach {name value word} [list \
                tls-ocsp-refresh-margin 101 {between -100 and 100} \
                tls-ocsp-refresh-margin -1 {} \
                tls-ocsp-refresh-margin 10%% {} \
                tls-ocsp-refresh-margin abc {} \
                tls-ocsp-retry-delay 0 {} \
                tls-ocsp-response-timeout 0 {} \
                tls-ocsp-response-timeout 61 {between 1 and 60} \
                tls-ocsp-max-refresh-interval -1 {} \
                tls-ocsp-stapling maybe {} \
                tls-ocsp-responder http://127.0.0.1:0/ port \
                tls-ocsp-responder http://127.0.0.1:65536/ port \
                tls-ocsp-responder http://127.0.0.1:-1/ port \
                tls-ocsp-responder http://127.0.0.1:99999999999/ port \
                tls-ocsp-responder "http://127.0.0.1:$p/a\x01b" control \
                tls-ocsp-responder "http://127.0.0.1:$p/a\x0bb" control \
                tls-ocsp-responder "http://127.0.0.1:$p/a\x7fb" control \
                tls-ocsp-responder "http://127.0.0.1:$p/a b" {} \
                tls-ocsp-responder http:// {} \
                tls-ocsp-responder "http://\[::1/" {} \
                tls-ocsp-responder https://127.0.0.1/ {} \
                tls-ocsp-responder ftp://127.0.0.1/ {} \
                tls-ocsp-responder http://127.0.0.1:1/a#frag fragment \
                tls-ocsp-responder $long_url long \
                tls-ocsp-proxy $long_proxy long \
            ] {
                set shown [string range [string map {\x01 \\x01 \x0b \\x0b \x7f \\x7f} $value] 0 60]
                if {![catch {r config set $name $value} err]} {
                    fail "CONFIG SET $name accepted $shown"
                }
                assert_match "*$name*" $err
                if {![string match -nocase "*$word*" $err]} {
                    fail "CONFIG SET $name $shown: the error does not say '$word': $err"
                }
            }
            # Nothing changed: no setting, no fetch.
            assert_equal [list tls-ocsp-responder $::ocsp_url] [r config get tls-ocsp-responder]
            assert_equal {tls-ocsp-proxy {}} [r config get tls-ocsp-proxy]
            assert_equal {tls-ocsp-refresh-margin 10} [r config get tls-ocsp-refresh-margin]
            assert_equal {tls-ocsp-retry-delay 1} [r config get tls-ocsp-retry-delay]
            assert_equal $::ocsp_url [ocsp_info responder]
            assert_equal $ok [ocsp_info fetches_ok]
            assert_equal good [ocsp_info status]

            # Good values: 1024-byte URLs, a percentage with or without %,
            # and an upper-case HTTP:// URL, fetched from (the certificate
            # names no responder).
            assert_equal OK [r config set tls-ocsp-responder [string range $long_url 0 end-1]]
            assert_equal 1024 [string length [lindex [r config get tls-ocsp-responder] 1]]
            assert_equal OK [r config set tls-ocsp-proxy "http://u:[string repeat p 1003]@127.0.0.1:1"]
            r config set tls-ocsp-refresh-margin 25
            assert_equal {tls-ocsp-refresh-margin 25} [r config get tls-ocsp-refresh-margin]
            r config set tls-ocsp-refresh-margin 30%
            assert_equal {tls-ocsp-refresh-margin 30%} [r config get tls-ocsp-refresh-margin]
            r config set tls-ocsp-max-refresh-interval 1800
            set url HTTP://127.0.0.1:$::ocsp_port/
            set ok [ocsp_info fetches_ok]
            r config set tls-ocsp-proxy "" tls-ocsp-responder $url
            wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                fail "no fetch from $url (last_error [ocsp_info last_error])"
            }
            assert_equal none [ocsp_info last_error]
            assert_equal $url [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status [srv 0 port]]

            r config rewrite
            set conf [ocsp_read_file [srv 0 config_file]]
            assert_match "*tls-ocsp-stapling yes*" $conf
            assert_match "*tls-ocsp-refresh-margin 30%*" $conf
            assert_match "*tls-ocsp-retry-delay 1\n*" $conf
            assert_match "*tls-ocsp-response-timeout 2\n*" $conf
            assert_match "*tls-ocsp-max-refresh-interval 1800*" $conf
            assert_match "*tls-ocsp-responder \"$url\"*" $conf
            restart_server 0 true false
            assert_equal {tls-ocsp-refresh-margin 30%} [r config get tls-ocsp-refresh-margin]
            assert_equal {tls-ocsp-max-refresh-interval 1800} [r config get tls-ocsp-max-refresh-interval]
            assert_equal [list tls-ocsp-responder $url] [r config get tls-ocsp-responder]
            ocsp_wait_status good
        }
    }

    test {OCSP: responder down at start: the server starts, staples nothing, then staples once it is back} {
        ocsp_reset
        ocsp_responder_stop
        try {
            start_server [list overrides [ocsp_server_config]] {
                set port [srv 0 port]
                ocsp_wait_failures 2
                assert_equal none [ocsp_info status]
                assert_equal connect_failed [ocsp_info last_error]
                assert_morethan_equal [ocsp_info consecutive_failures] 2
                assert_equal none [ocsp_client_cert_status $port]
                assert_equal PONG [r ping]
                verify_log_message 0 "*OCSP: fetch from $::ocsp_url failed: connect_failed*nothing is stapled*" 0

                # Retries double from 1 s (+-10%): the next one is due soon.
                assert_lessthan_equal [ocsp_info next_refresh_in_seconds] 5
                ocsp_responder_start
                wait_for_condition 100 100 {[ocsp_info status] eq "good"} else {
                    fail "no staple after the responder came back"
                }
                assert_equal good [ocsp_client_cert_status $port]
            }
        } finally {
            ocsp_responder_start
        }
    }

    test {OCSP: an unknown certificate is stapled as unknown} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server-unknown]] {
            ocsp_wait_status unknown
            assert_equal unknown [ocsp_client_cert_status [srv 0 port]]
            assert_equal unknown [ocsp_staple_check [srv 0 port] server-unknown]
        }
    }

    test {OCSP: a certificate without an OCSP URL: no staple and INFO says why; tls-ocsp-responder supplies one; once removed, the valid response stays stapled} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server-noaia]] {
            set port [srv 0 port]
            wait_for_condition 100 100 {[ocsp_info status] eq "no_responder"} else {
                fail "status is [ocsp_info status]"
            }
            assert_equal no_responder [ocsp_info last_error]
            assert_equal {} [ocsp_info responder]
            assert_equal -1 [ocsp_info next_refresh_in_seconds]
            assert_equal PONG [r ping]
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal 1 [count_log_message 0 "OCSP stapling: the server certificate names no http:// OCSP responder"]

            r config set tls-ocsp-responder $::ocsp_url
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server-noaia]

            r config set tls-ocsp-responder ""
            wait_for_condition 100 100 {[ocsp_info last_error] eq "no_responder"} else {
                fail "last_error is [ocsp_info last_error]"
            }
            # Honest: the status is what is stapled, and the staple is valid.
            assert_equal good [ocsp_info status]
            assert_morethan [ocsp_info response_bytes] 0
            assert_morethan [ocsp_info expires_in_seconds] 3000
            assert_equal {} [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status $port]
            assert_equal good [ocsp_staple_check $port server-noaia]
        }
    }

    test {OCSP: the issuer may come from tls-ca-cert-file; without it anywhere the server serves TLS and says why there is no staple} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server [list tls-cert-file [ocsp_file server.crt]]]] {
            ocsp_wait_status good
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
        set overrides [list tls-cert-file [ocsp_file server.crt] tls-ca-cert-file [file normalize $::tlsdir/ca.crt]]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            wait_for_condition 100 100 {[ocsp_info last_error] eq "no_issuer"} else {
                fail "last_error is [ocsp_info last_error]"
            }
            assert_equal none [ocsp_info status]
            assert_equal PONG [r ping]
            assert_equal 1 [count_log_message 0 "OCSP stapling: the issuer of the server certificate is neither"]
        }
    }

    # The responder hangs while the certificate changes, so the new one has
    # no response yet: nothing may be stapled until its own is fetched.
    test {OCSP: a certificate changed by CONFIG SET tls-cert-file never gets the old one's response} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server]
            try {
                ocsp_mode hang
                r config set tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]
                assert_equal none [ocsp_client_cert_status $port]
                assert_equal 0 [ocsp_info response_bytes]
                assert_equal none [ocsp_info status]
                verify_log_message 0 "*OCSP: the server certificate changed*" 0
                ocsp_mode openssl
                ocsp_wait_status good
                assert_equal good [ocsp_staple_check $port server2]
            } finally {
                ocsp_mode openssl
            }
        }
    }

    # The same when the files change under the server (tls-auto-reload-interval
    # reloads them in the background; Valkey 8.1 has no such directive).
    ocsp_test_needs_config tls-auto-reload-interval {OCSP: a certificate reloaded by tls-auto-reload-interval never gets the old one's response} {
        ocsp_reset
        set dir [file normalize [tmpdir ocsp-reload]]
        foreach {to from} {cert.pem server-chain.pem key.pem server.key} {
            file copy -force [ocsp_file $from] $dir/$to
        }
        set overrides [list tls-cert-file $dir/cert.pem tls-key-file $dir/key.pem tls-auto-reload-interval 1]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server]
            try {
                # The files change under it: reloaded, the old response gone.
                ocsp_mode hang
                set from [count_log_lines 0]
                file copy -force [ocsp_file server2-chain.pem] $dir/cert.pem
                file copy -force [ocsp_file server2.key] $dir/key.pem
                wait_for_log_messages 0 {"*TLS materials reloaded successfully*"} $from 100 100
                assert_equal none [ocsp_client_cert_status $port]
                assert_equal none [ocsp_info status]
                ocsp_mode openssl
                ocsp_wait_status good
                assert_equal good [ocsp_staple_check $port server2]
            } finally {
                ocsp_mode openssl
            }
        }
    }

    test {OCSP: a response valid for a minute stays stapled until nextUpdate, then stapling stops} {
        # thisUpdate 50 s ago, nextUpdate 10 s from now.
        ocsp_reset
        ocsp_mode {openssl -this-offset -50 -next-offset 10}
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            try {
                ocsp_wait_status good
                set next_update [ocsp_info next_update]
                assert_range [expr {$next_update - [clock seconds]}] 1 12
                assert_equal 60 [expr {$next_update - [ocsp_info this_update]}]
                ocsp_responder_stop
                assert_equal good [ocsp_client_cert_status $port]
                # The margin rule tries a refresh before nextUpdate; it fails.
                wait_for_condition 150 100 {[ocsp_info status] eq "expired"} else {
                    fail "status is [ocsp_info status]"
                }
                assert_morethan_equal [clock seconds] $next_update
                assert_morethan [ocsp_info fetches_failed] 0
                assert_equal 0 [ocsp_info expires_in_seconds]
                assert_equal 0 [ocsp_info response_bytes]
                assert_equal none [ocsp_client_cert_status $port]
                assert_equal 1 [count_log_message 0 "OCSP: the cached response expired at .*stapling stopped"]
            } finally {
                ocsp_mode openssl
                ocsp_responder_start
            }
            ocsp_refetch
            ocsp_wait_status good
        }
    }

    test {OCSP: with io-threads the staple is the same, and the cluster bus staples too} {
        ocsp_reset
        set overrides [concat [ocsp_io_threads_config] {cluster-enabled yes}]
        # A cluster node has only database 0: the singledb tag (9.x harness),
        # or ::singledb itself (Valkey 8.1's, which knows no such tag).
        set singledb $::singledb
        set ::singledb 1
        try {
            start_server [list tags {singledb} overrides [ocsp_server_config server $overrides]] {
                set port [srv 0 port]
                ocsp_wait_status good
                set sent [ocsp_info staples_sent]
                for {set i 0} {$i < 5} {incr i} {
                    assert_equal good [ocsp_client_cert_status $port]
                }
                assert_equal [expr {$sent + 5}] [ocsp_info staples_sent]
                assert_equal good [ocsp_staple_check $port server]
                assert_equal good [ocsp_staple_check [expr {$port + 10000}] server]
            }
        } finally {
            set ::singledb $singledb
        }
    }

    # ---------------------------------------------------------------------
    # Refresh schedule.

    test {OCSP: started with a cached response about to expire, the server refreshes it in time: the staple never lapses} {
        # The cached response (thisUpdate 55 s ago, nextUpdate 6 s from now)
        # is already within its refresh margin, and the default retry delay
        # (10 s) is longer than it has left: the refresh must still come
        # before it expires.
        ocsp_reset
        set dir [file normalize [tmpdir ocsp-near-expiry]]
        set cache $dir/ocsp-response.der
        ocsp_make_response server $cache -this-offset -55 -next-offset 6
        lassign [ocsp_der_times $cache] cached_this cached_next
        set start [clock milliseconds]
        set overrides [list tls-ocsp-retry-delay 10 tls-ocsp-cache-file $cache]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            set port [srv 0 port]
            wait_for_log_messages 0 [list "*OCSP: stapling a good response from the cache file $cache*"] 0 50 100
            # Sample what INFO says and what a client gets until well past
            # the cached response's nextUpdate.
            set until [expr {max($start + 9000, ($cached_next + 2) * 1000)}]
            set transitions {}
            set last {}
            set seen_good 0
            set lapses 0
            while {[clock milliseconds] < $until} {
                set t [expr {[clock milliseconds] - $start}]
                set state "[ocsp_info status]/[ocsp_client_cert_status $port]"
                if {$state ne $last} {
                    lappend transitions "+${t}ms $state"
                    set last $state
                }
                if {$state eq "good/good"} {
                    set seen_good 1
                } elseif {$seen_good || [string match expired/* $state]} {
                    incr lapses
                }
                after 150
            }
            set what "cached nextUpdate at +[expr {$cached_next * 1000 - $start}]ms; INFO status/client saw: $transitions"
            if {!$seen_good} { fail "never good/good: $what" }
            if {$lapses} { fail "the staple lapsed in $lapses samples: $what" }
            assert_equal good [ocsp_info status]
            assert_equal responder [ocsp_info source]
            assert_morethan [ocsp_info this_update] $cached_this
            assert_equal good [ocsp_staple_check $port server]
        }
    }

    test {OCSP: servers holding the same response spread their refreshes over the later half of the margin} {
        # One pre-signed 1-hour response served to all; with a 50% margin
        # each refreshes at a random point between 30 and 15 minutes before
        # its nextUpdate, not all at the same second.
        ocsp_reset
        set shared [ocsp_make_response server [ocsp_file shared-response.der]]
        lassign [ocsp_der_times $shared] shared_this shared_next
        set count 20
        set dues {}
        ocsp_mode "file $shared"
        try {
            set options [list overrides [ocsp_server_config server {tls-ocsp-refresh-margin 50%}]]
            ocsp_with_servers $count $options {
                for {set i 0} {$i < $count} {incr i} {
                    set level [expr {-$i}]
                    ocsp_wait_status good $level
                    assert_equal $shared_this [ocsp_info this_update $level]
                    assert_equal $shared_next [ocsp_info next_update $level]
                    assert_equal responder [ocsp_info source $level]
                }
                # The refresh times, as absolute times (INFO rounds up to
                # whole seconds).
                for {set i 0} {$i < $count} {incr i} {
                    set now [clock seconds]
                    lappend dues [expr {$now + [ocsp_info next_refresh_in_seconds [expr {-$i}]]}]
                }
            }
        } finally {
            ocsp_mode openssl
        }
        assert_equal $count [llength $dues]
        foreach due $dues {
            assert_range $due [expr {$shared_next - 1800 - 2}] [expr {$shared_next - 900 + 2}] \
                "refresh times, relative to nextUpdate: [lmap d $dues {expr {$d - $shared_next}}]"
        }
        set dues [lsort -integer $dues]
        set spread [expr {[lindex $dues end] - [lindex $dues 0]}]
        assert_morethan_equal $spread 2 \
            "$count servers refresh within $spread s of each other (relative to nextUpdate: [lmap d $dues {expr {$d - $shared_next}}])"
    }

    # ---------------------------------------------------------------------
    # valkey-benchmark.

    test {OCSP: valkey-benchmark exits with an error after a failed TLS handshake} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {tls-ocsp-stapling no}]] {
            set port [srv 0 port]
            # With the right CA and no OCSP check it runs.
            lassign [ocsp_benchmark $port [ocsp_file ca.crt]] status out
            assert_equal 0 $status $out
            assert_match "*PING*requests per second*" $out
            foreach {what cacert extra error} [list \
                "a CA that did not sign the server's certificate" [file normalize $::tlsdir/ca.crt] {} \
                    {certificate verify failed|Could not negotiate a TLS connection} \
                "--tls-ocsp-verify yes and no staple" [ocsp_file ca.crt] {--tls-ocsp-verify yes} \
                    {OCSP: no stapled response} \
            ] {
                lassign [ocsp_benchmark $port $cacert {*}$extra] status out
                set detail "$what: exit status $status, output: $out"
                # 124: still running when `timeout` stopped it.
                assert_not_equal 124 $status "$detail (it did not exit by itself)"
                assert_morethan $status 0 $detail
                assert_equal 1 [regexp -- $error $out] $detail
                assert_no_match "*requests per second*" $out
            }
            assert_equal PONG [r ping]
        }
    }

    ocsp_responder_stop
}
}
