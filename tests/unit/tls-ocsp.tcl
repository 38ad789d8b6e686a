# OCSP stapling (src/tls_ocsp.c): fetch, verify, cache, refresh and staple.
# Every case asserts what clients receive (openssl s_client -status, and the
# stapled DER saved by gnutls-cli and checked with openssl ocsp -respin) and
# what INFO tls says, against a real responder (openssl ocsp, behind
# tests/helpers/ocsp-responder.tcl) and against deliberately broken ones.

source tests/support/ocsp.tcl

proc ocsp_redis_py {port} {
    set rc [catch {exec /usr/bin/python3 tests/helpers/ocsp-redis-py.py $port $::ocsp_dir 2>@1} out]
    return [string trim $out]
}

if {$::tls} {
    ocsp_setup
    ocsp_responder_start

    start_server [list tags {tls ocsp} overrides [ocsp_server_config]] {
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
            verify_log_message 0 "*OCSP: fetched a good response from $::ocsp_url*" 0
        }

        test {OCSP: the staple is the CA's signed answer for our certificate} {
            assert_equal good [ocsp_staple_check $port server]
            # It names our certificate, not another one from the same CA.
            assert_match {no status for server2*} [ocsp_staple_check $port server2]
        }

        test {OCSP: a client that does not ask for status gets no staple} {
            set before [ocsp_info staples_sent]
            set out [exec timeout 10 openssl s_client -connect 127.0.0.1:$port -CAfile [ocsp_file ca.crt] \
                -cert [ocsp_file client.crt] -key [ocsp_file client.key] < /dev/null 2>@1]
            assert_match "*CONNECTED*" $out
            assert_no_match "*OCSP Response Status*" $out
            assert_equal $before [ocsp_info staples_sent]
        }

        test {OCSP: refresh time follows the margin rule and the max refresh interval} {
            # 60-minute responses, margin 10%: refresh at nextUpdate - 6 min.
            set this_update [ocsp_info this_update]
            set due [expr {$this_update + 3240}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due - [clock seconds] + 1}]

            r config set tls-ocsp-refresh-margin 50%
            set due [expr {$this_update + 1800}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due - [clock seconds] + 1}]

            # The bound wins when it comes first; it counts from the last fetch.
            r config set tls-ocsp-max-refresh-interval 600
            set last [ocsp_info last_success_time]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$last + 600 - [clock seconds] - 2}] [expr {$last + 600 - [clock seconds] + 1}]

            r config set tls-ocsp-max-refresh-interval 0
            r config set tls-ocsp-refresh-margin 10
            set due [expr {$this_update + 3240}]
            assert_range [ocsp_info next_refresh_in_seconds] [expr {$due - [clock seconds] - 2}] [expr {$due - [clock seconds] + 1}]
            r config set tls-ocsp-max-refresh-interval 3600
        }

        test {OCSP: revoked is stapled as revoked once the CA revokes and the server refreshes} {
            assert_equal PONG [ocsp_redis_py $port]
            ocsp_set_cert_state server R
            # Refresh every second, as a short bound would.
            r config set tls-ocsp-max-refresh-interval 1
            ocsp_wait_status revoked
            assert_equal revoked [ocsp_client_cert_status $port]
            assert_equal revoked [ocsp_staple_check $port server]
            verify_log_message 0 "*OCSP: the server certificate is REVOKED*" 0
            # redis-py with ssl_validate_ocsp_stapled refuses the server.
            assert_match {refused:*REVOKED*} [ocsp_redis_py $port]

            ocsp_set_cert_state server V
            ocsp_wait_status good
            assert_equal good [ocsp_client_cert_status $port]
            assert_equal PONG [ocsp_redis_py $port]
            r config set tls-ocsp-max-refresh-interval 3600
        }

        test {OCSP: a response without nextUpdate is valid for the max refresh interval (1 hour if 0)} {
            foreach {interval validity} {1800 1800 0 3600} {
                r config set tls-ocsp-max-refresh-interval $interval
                ocsp_mode {openssl -nmin none}
                set ok [ocsp_info fetches_ok]
                ocsp_refetch
                wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                    fail "no successful fetch (last_error [ocsp_info last_error])"
                }
                assert_equal good [ocsp_info status]
                assert_equal 0 [ocsp_info next_update]
                set this_update [ocsp_info this_update]
                set left [expr {$this_update + $validity - [clock seconds]}]
                assert_range [ocsp_info expires_in_seconds] [expr {$left - 2}] [expr {$left + 1}]
                assert_equal good [ocsp_client_cert_status $port]
            }
            ocsp_mode openssl
            r config set tls-ocsp-max-refresh-interval 3600
            ocsp_refetch
            wait_for_condition 100 100 {[ocsp_info next_update] > 0} else {
                fail "no response with nextUpdate"
            }
        }

        # Each broken answer is refused, counted with its reason, never
        # stapled, and the earlier good response stays stapled.
        set other_response [ocsp_make_response other [ocsp_file other-response.der]]
        set unauthorized [ocsp_make_error_response [ocsp_file unauthorized.der] 6]
        foreach {mode reason} [list \
            garbage malformed \
            http500 http_status \
            {openssl -type text/html} content_type \
            oversized too_large \
            truncated truncated \
            hang timeout \
            "file $other_response" wrong_certificate \
            "file $unauthorized" responder_error \
            {openssl -signer rogue} bad_signature \
            {openssl -signer nosign} bad_signature \
            {openssl -nmin 1 -faketime -10m} stale \
            {openssl -faketime +1h} not_yet_valid \
        ] {
            test "OCSP: a responder answering '$mode' is refused as $reason and the good staple stays" {
                ocsp_wait_status good
                set this_update [ocsp_info this_update]
                set failed [ocsp_info fetches_failed]
                set ok [ocsp_info fetches_ok]
                ocsp_mode $mode
                ocsp_refetch
                ocsp_wait_failures [expr {$failed + 1}]
                assert_equal $reason [ocsp_info last_error]
                assert_equal $ok [ocsp_info fetches_ok]
                assert_equal good [ocsp_info status]
                assert_equal $this_update [ocsp_info this_update]
                assert_equal good [ocsp_client_cert_status $port]
                verify_log_message 0 "*OCSP: fetch from * failed: $reason (*" 0
                ocsp_mode openssl
            }
        }

        test {OCSP: a good answer after failures clears the error} {
            set failures [ocsp_info consecutive_failures]
            assert_morethan $failures 0
            set ok [ocsp_info fetches_ok]
            ocsp_refetch
            wait_for_condition 100 100 {[ocsp_info fetches_ok] > $ok} else {
                fail "no successful fetch"
            }
            assert_equal none [ocsp_info last_error]
            assert_equal 0 [ocsp_info consecutive_failures]
        }

        test {OCSP: the server answers promptly while the responder hangs} {
            ocsp_start_hung_fetch 5
            # A fetch is in flight for the whole measurement.
            assert_equal 0 [ocsp_info next_refresh_in_seconds]
            set worst 0
            set deadline [expr {[clock milliseconds] + 2000}]
            while {[clock milliseconds] < $deadline} {
                set start [clock microseconds]
                r ping
                set rtt [expr {[clock microseconds] - $start}]
                if {$rtt > $worst} { set worst $rtt }
            }
            assert_equal 0 [ocsp_info next_refresh_in_seconds]
            assert_lessthan $worst 50000
            ocsp_mode openssl
            r config set tls-ocsp-response-timeout 2
            ocsp_refetch
            ocsp_wait_status good
        }

        test {OCSP: name resolution never stalls the server} {
            # A name no resolver knows: the lookup runs in its own thread and
            # the fetch ends as resolve_failed (or timeout if DNS is slow).
            set failed [ocsp_info fetches_failed]
            r config set tls-ocsp-responder http://ocsp-test.invalid/
            set worst 0
            while {[ocsp_info fetches_failed] == $failed} {
                set start [clock microseconds]
                r ping
                set rtt [expr {[clock microseconds] - $start}]
                if {$rtt > $worst} { set worst $rtt }
            }
            assert_lessthan $worst 50000
            assert {[ocsp_info last_error] in {resolve_failed timeout}}
            assert_equal good [ocsp_client_cert_status $port]
            r config set tls-ocsp-responder $::ocsp_url
            wait_for_condition 100 100 {[ocsp_info last_error] eq "none"} else {
                fail "no successful fetch after the responder came back"
            }
        }

        test {OCSP: an unreachable responder address fails as connect_failed} {
            set failed [ocsp_info fetches_failed]
            set closed [find_available_port $::baseport $::portcount]
            r config set tls-ocsp-responder "http://127.0.0.1:$closed/"
            ocsp_wait_failures [expr {$failed + 1}]
            assert_equal connect_failed [ocsp_info last_error]
            assert_equal "http://127.0.0.1:$closed/" [ocsp_info responder]
            assert_equal good [ocsp_client_cert_status $port]
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

        test {OCSP: CONFIG SET tls-ocsp-stapling no stops stapling at once, yes fetches at once} {
            r config set tls-ocsp-stapling no
            assert_equal disabled [ocsp_info stapling]
            assert_equal disabled [ocsp_info status]
            assert_equal 0 [ocsp_info response_bytes]
            assert_equal -1 [ocsp_info next_refresh_in_seconds]
            assert_equal none [ocsp_client_cert_status $port]

            set ok [ocsp_info fetches_ok]
            r config set tls-ocsp-stapling yes
            ocsp_wait_status good
            assert_equal [expr {$ok + 1}] [ocsp_info fetches_ok]
            assert_equal good [ocsp_client_cert_status $port]
        }

        test {OCSP: directives refuse bad values and keep good ones} {
            foreach {name value} {
                tls-ocsp-refresh-margin 101
                tls-ocsp-refresh-margin -1
                tls-ocsp-refresh-margin 10%%
                tls-ocsp-refresh-margin abc
                tls-ocsp-retry-delay 0
                tls-ocsp-response-timeout 0
                tls-ocsp-response-timeout 61
                tls-ocsp-max-refresh-interval -1
                tls-ocsp-responder https://127.0.0.1/
                tls-ocsp-responder ftp://127.0.0.1/
                tls-ocsp-stapling maybe
            } {
                catch {r config set $name $value} err
                assert_match "*$name*" $err
            }
            catch {r config set tls-ocsp-response-timeout 61} err
            assert_match {*between 1 and 60*} $err
            catch {r config set tls-ocsp-refresh-margin 101} err
            assert_match {*between 0 and 100*} $err

            r config set tls-ocsp-refresh-margin 25
            assert_equal {tls-ocsp-refresh-margin 25%} [r config get tls-ocsp-refresh-margin]
            r config set tls-ocsp-refresh-margin 30%
            assert_equal {tls-ocsp-refresh-margin 30%} [r config get tls-ocsp-refresh-margin]
            assert_equal {tls-ocsp-retry-delay 1} [r config get tls-ocsp-retry-delay]
            assert_equal good [ocsp_info status]
        }

        test {OCSP: CONFIG REWRITE keeps the directives} {
            r config set tls-ocsp-max-refresh-interval 1800
            r config set tls-ocsp-responder $::ocsp_url
            r config rewrite
            set fd [open [srv 0 config_file]]
            set conf [read $fd]
            close $fd
            assert_match "*tls-ocsp-stapling yes*" $conf
            assert_match "*tls-ocsp-refresh-margin 30%*" $conf
            assert_match "*tls-ocsp-retry-delay 1\n*" $conf
            assert_match "*tls-ocsp-response-timeout 2\n*" $conf
            assert_match "*tls-ocsp-max-refresh-interval 1800*" $conf
            assert_match "*tls-ocsp-responder \"$::ocsp_url\"*" $conf
            restart_server 0 true false
            assert_equal {tls-ocsp-refresh-margin 30%} [r config get tls-ocsp-refresh-margin]
            assert_equal {tls-ocsp-max-refresh-interval 1800} [r config get tls-ocsp-max-refresh-interval]
            ocsp_wait_status good
        }
    }

    test {OCSP: responder down at start: the server starts, staples nothing, then staples once it is back} {
        ocsp_reset
        ocsp_responder_stop
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
    }

    test {OCSP: an unknown certificate is stapled as unknown} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server-unknown]] {
            ocsp_wait_status unknown
            assert_equal unknown [ocsp_client_cert_status [srv 0 port]]
            assert_equal unknown [ocsp_staple_check [srv 0 port] server-unknown]
        }
    }

    test {OCSP: a certificate without an OCSP URL: TLS works, no staple, INFO says why} {
        start_server [list overrides [ocsp_server_config server-noaia]] {
            set port [srv 0 port]
            wait_for_condition 100 100 {[ocsp_info status] eq "no_responder"} else {
                fail "status is [ocsp_info status]"
            }
            assert_equal {} [ocsp_info responder]
            assert_equal -1 [ocsp_info next_refresh_in_seconds]
            assert_equal PONG [r ping]
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal 1 [count_log_message 0 "OCSP stapling: the server certificate names no http:// OCSP responder"]

            # tls-ocsp-responder supplies the URL the certificate lacks.
            r config set tls-ocsp-responder $::ocsp_url
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server-noaia]
        }
    }

    test {OCSP: the issuer may come from tls-ca-cert-file instead of tls-cert-file} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server [list tls-cert-file [ocsp_file server.crt]]]] {
            ocsp_wait_status good
            assert_equal good [ocsp_client_cert_status [srv 0 port]]
        }
    }

    test {OCSP: without the issuer anywhere the server serves TLS and says why there is no staple} {
        ocsp_reset
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

    test {OCSP: a certificate reloaded by tls-auto-reload-interval drops the old response} {
        ocsp_reset
        set dir [file normalize [tmpdir ocsp-reload]]
        file copy -force [ocsp_file server-chain.pem] $dir/cert.pem
        file copy -force [ocsp_file server.key] $dir/key.pem
        set overrides [list tls-cert-file $dir/cert.pem tls-key-file $dir/key.pem tls-auto-reload-interval 1]
        start_server [list overrides [ocsp_server_config server $overrides]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server]
            ocsp_mode hang
            file copy -force [ocsp_file server2-chain.pem] $dir/cert.pem
            file copy -force [ocsp_file server2.key] $dir/key.pem
            wait_for_log_messages 0 {"*TLS materials reloaded successfully*"} 0 100 100
            # The new certificate has no response yet, and the old one's is gone.
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal none [ocsp_info status]
            ocsp_mode openssl
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server2]
        }
    }

    test {OCSP: stapling enabled without TLS configured is accepted and idle} {
        set plain_port [find_available_port $::baseport $::portcount]
        set dir [tmpdir ocsp-no-tls]
        set pid [exec src/valkey-server --port $plain_port --bind 127.0.0.1 --dir $dir --save {} \
            --tls-ocsp-stapling yes > $dir/stdout 2>@1 &]
        wait_for_condition 100 50 {[ocsp_port_open $plain_port]} else {
            exec kill $pid
            fail "a server without TLS did not start with tls-ocsp-stapling yes"
        }
        set c [valkey 127.0.0.1 $plain_port 0 0]
        assert_equal PONG [$c ping]
        set info [$c info tls]
        assert_match "*tls_ocsp_stapling:enabled*" $info
        assert_match "*tls_ocsp_status:none*" $info
        assert_match "*tls_ocsp_fetches_failed:0*" $info
        $c close
        exec kill $pid
        wait_for_condition 100 50 {![is_alive $pid]} else {
            fail "server did not stop"
        }
    }

    test {OCSP: a response valid for a minute stays stapled until nextUpdate, then stapling stops} {
        # Made 50 s in the past with -nmin 1: nextUpdate is 10 s from now.
        ocsp_mode {openssl -nmin 1 -faketime -50}
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set next_update [ocsp_info next_update]
            assert_range [expr {$next_update - [clock seconds]}] 1 12
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

            ocsp_mode openssl
            ocsp_responder_start
            ocsp_refetch
            ocsp_wait_status good
        }
    }

    test {OCSP: CONFIG SET tls-cert-file never staples the old certificate's response} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            set port [srv 0 port]
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server]
            # The responder hangs, so the new certificate has no response yet.
            ocsp_mode hang
            r config set tls-cert-file [ocsp_file server2-chain.pem] tls-key-file [ocsp_file server2.key]
            assert_equal none [ocsp_client_cert_status $port]
            assert_equal 0 [ocsp_info response_bytes]
            assert_match {none} [ocsp_info status]
            verify_log_message 0 "*OCSP: the server certificate changed*" 0

            ocsp_mode openssl
            ocsp_wait_status good
            assert_equal good [ocsp_staple_check $port server2]
        }
    }

    test {OCSP: with io-threads the staple is the same} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server {io-threads 2 io-threads-always-active yes}]] {
            set port [srv 0 port]
            ocsp_wait_status good
            set sent [ocsp_info staples_sent]
            for {set i 0} {$i < 5} {incr i} {
                assert_equal good [ocsp_client_cert_status $port]
            }
            assert_equal [expr {$sent + 5}] [ocsp_info staples_sent]
            assert_equal good [ocsp_staple_check $port server]
        }
    }

    test {OCSP: the cluster bus staples too} {
        ocsp_reset
        start_server [list tags {singledb} overrides [ocsp_server_config server {cluster-enabled yes}]] {
            ocsp_wait_status good
            set bus_port [expr {[srv 0 port] + 10000}]
            assert_equal good [ocsp_client_cert_status $bus_port]
        }
    }

    test {OCSP: shutdown with a fetch in flight} {
        ocsp_reset
        start_server [list overrides [ocsp_server_config]] {
            ocsp_wait_status good
            ocsp_start_hung_fetch 30
            set pid [srv 0 pid]
            catch {r shutdown nosave}
            wait_for_condition 100 50 {![is_alive $pid]} else {
                fail "server did not exit"
            }
            verify_log_message 0 "*ready to exit, bye bye*" 0
            ocsp_mode openssl
        }
    }

    ocsp_responder_stop
}
