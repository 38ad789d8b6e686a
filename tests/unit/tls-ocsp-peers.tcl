# tls-ocsp-verify-peers: a server checks the OCSP staples of the servers it
# connects to (replication, cluster bus, MIGRATE) in the TLS handshake, and
# refuses a peer whose staple is revoked, fails verification, has expired or
# is about another certificate (and, with "yes", a peer that staples nothing
# or whose status is unknown). Every refusal is counted in INFO tls and
# logged once a minute per peer and reason.
#
# Real peers are stapling servers of the PKI (server, server2, server3, all
# with the responder's AIA URL); hostile ones are openssl s_server stapling
# whatever file it is given. Every case runs its own servers; everything
# listens on 127.0.0.1 only.

source tests/support/ocsp.tcl
source tests/support/ocsp-peers.tcl

if {$::tls} {
tags {tls ocsp repl} {
    ocsp_setup
    ocsp_peers_issue server3
    ocsp_reset

    # Three primaries: good (server), good then revoked (server2), stapling
    # nothing (server, tls-ocsp-stapling no); a replica with POLICY moves from
    # one to the next. CLIENT_CERT: what the replica presents (see
    # ocsp_peers_options): "server" uses the server context for outgoing
    # connections, "client" the separate client context.
    foreach {policy client_cert} {yes server yes client optional client no server} {
        test "OCSP peers: a replica with tls-ocsp-verify-peers $policy ($client_cert context) and good, revoked, unstapled primaries" {
            ocsp_reset
            start_server [list overrides [ocsp_server_config server]] {
            start_server [list overrides [ocsp_server_config server2]] {
            start_server [list overrides [ocsp_server_config server {tls-ocsp-stapling no}]] {
            start_server [ocsp_peers_options server3 $policy $client_cert] {
                set good_port [srv -3 port]
                set revoked_port [srv -2 port]
                set bare_port [srv -1 port]
                ocsp_wait_status good -3
                ocsp_wait_status good -2
                assert_equal disabled [ocsp_info status -1]
                assert_equal $policy [lindex [r config get tls-ocsp-verify-peers] 1]

                # A primary stapling good: replicates under every policy.
                ocsp_peers_replicate 0 -3
                [srv -3 client] set probe good
                wait_for_condition 50 100 {[r get probe] eq "good"} else {
                    fail "the write did not replicate"
                }
                if {$policy eq "no"} {
                    assert_equal {0 0 none} [ocsp_peers_counters]
                } else {
                    assert_morethan_equal [ocsp_info peer_checks_ok] 1
                    assert_equal 0 [ocsp_info peer_checks_failed]
                    assert_equal none [ocsp_info peer_last_failure]
                }

                # A primary whose certificate the CA revokes while the replica
                # is linked: the link stays up until it is re-established.
                ocsp_peers_replicate 0 -2
                set failed [ocsp_info peer_checks_failed]
                set syncs [expr {[status [srv -2 client] sync_full] + [status [srv -2 client] sync_partial_ok]}]
                try {
                    ocsp_peers_revoke -2 server2
                    assert_equal up [ocsp_peers_link 0]
                    set loglines [count_log_lines 0]
                    ocsp_peers_kill_replica_link 0 -2
                    if {$policy eq "no"} {
                        wait_for_condition 100 100 {
                            [status [srv -2 client] sync_full] + [status [srv -2 client] sync_partial_ok] > $syncs &&
                            [ocsp_peers_link 0] eq "up"
                        } else {
                            fail "the replica did not reconnect to the revoked primary"
                        }
                    } else {
                        ocsp_peers_wait_refused 0 revoked $revoked_port $failed
                        # It keeps trying, and keeps being refused.
                        set failed [ocsp_info peer_checks_failed]
                        wait_for_condition 50 100 {[ocsp_info peer_checks_failed] > $failed} else {
                            fail "the replica stopped retrying"
                        }
                        assert_equal down [ocsp_peers_link 0]
                        assert_match "revoked 127.0.0.1:$revoked_port" [ocsp_info peer_last_failure]
                        ocsp_peers_wait_log 0 revoked $revoked_port
                        verify_log_message 0 "*OCSP: refusing the TLS connection to 127.0.0.1:$revoked_port: revoked (revoked at *, reason: keyCompromise)*" $loglines
                        verify_log_message 0 "*Error condition on socket for SYNC:*invalid status response*" $loglines
                        # Once a minute per peer and reason, however often it is refused.
                        assert_equal 1 [count_log_message 0 "refusing the TLS connection to 127.0.0.1:$revoked_port: revoked"]
                    }
                } finally {
                    ocsp_set_cert_state server2 V
                }

                # A primary that staples nothing.
                set failed [ocsp_info peer_checks_failed]
                r replicaof 127.0.0.1 $bare_port
                if {$policy eq "yes"} {
                    ocsp_peers_wait_refused 0 no_staple $bare_port $failed
                    assert_equal down [ocsp_peers_link 0]
                    ocsp_peers_wait_log 0 no_staple $bare_port
                } else {
                    wait_for_condition 100 100 {[ocsp_peers_link 0] eq "up"} else {
                        fail "the replica did not sync with the primary that staples nothing ([ocsp_peers_counters])"
                    }
                    assert_equal $failed [ocsp_info peer_checks_failed]
                }
                if {$policy eq "no"} {
                    assert_equal {0 0 none} [ocsp_peers_counters]
                }
                r replicaof no one
                assert_equal PONG [r ping]
            }
            }
            }
            }
        }
    }

    # Hostile or broken staples, from a fake primary (openssl s_server
    # stapling a prepared file). Each row: the certificate s_server presents,
    # the staple, and what a replica with "optional" and with "yes" makes of
    # it (ok: the handshake passes; then the sync fails, s_server is no
    # primary, and the replica retries).
    set staples [list \
        server [ocsp_make_response server [ocsp_file peers-good.der]] ok ok \
        server [ocsp_make_response server [ocsp_file peers-by-ca.der] -signer ca] ok ok \
        server [ocsp_make_response other [ocsp_file peers-other.der]] wrong_certificate wrong_certificate \
        server [ocsp_make_response server [ocsp_file peers-expired.der] -this-offset -7200 -next-offset -3600] stale stale \
        server [ocsp_make_response server [ocsp_file peers-future.der] -this-offset 3600 -next-offset 7200] not_yet_valid not_yet_valid \
        server [ocsp_make_response server [ocsp_file peers-rogue.der] -signer rogue] bad_signature bad_signature \
        server [ocsp_make_response server [ocsp_file peers-nosign.der] -signer nosign] bad_signature bad_signature \
        server [ocsp_peers_error_response [ocsp_file peers-trylater.der] 3] responder_error responder_error \
        server-unknown [ocsp_make_response server-unknown [ocsp_file peers-unknown.der]] ok unknown \
    ]
    foreach policy {optional yes} {
        test "OCSP peers: a replica with tls-ocsp-verify-peers $policy refuses bad staples from a fake primary" {
            ocsp_reset
            start_server [ocsp_peers_options server3 $policy] {
                foreach {cert staple optional_outcome yes_outcome} $staples {
                    set outcome [expr {$policy eq "yes" ? $yes_outcome : $optional_outcome}]
                    lassign [ocsp_peers_counters] ok failed last
                    set s [ocsp_peers_s_server_start $staple $cert]
                    set port [lindex $s 1]
                    try {
                        r replicaof 127.0.0.1 $port
                        if {$outcome eq "ok"} {
                            wait_for_condition 100 100 {[ocsp_info peer_checks_ok] > $ok} else {
                                fail "[file tail $staple]: no handshake passed the check ([ocsp_peers_counters])"
                            }
                            assert_equal [list $failed $last] [lrange [ocsp_peers_counters] 1 2] "[file tail $staple]"
                        } else {
                            ocsp_peers_wait_refused 0 $outcome $port $failed
                            ocsp_peers_wait_log 0 $outcome $port
                            assert_equal $ok [ocsp_info peer_checks_ok] "[file tail $staple]"
                        }
                        assert_equal down [ocsp_peers_link 0]
                        r replicaof no one
                    } finally {
                        ocsp_peers_s_server_stop $s
                    }
                }
                assert_equal PONG [r ping]
            }
        }
    }

    test "OCSP peers: with io-threads on both sides, a good primary is accepted and a revoked one refused" {
        ocsp_reset
        set threads {io-threads 2 io-threads-always-active yes}
        start_server [list overrides [ocsp_server_config server $threads]] {
        start_server [list overrides [ocsp_server_config server2 $threads]] {
        start_server [ocsp_peers_options server3 yes client $threads] {
            set revoked_port [srv -1 port]
            ocsp_wait_status good -2
            ocsp_wait_status good -1
            assert_equal 2 [lindex [r config get io-threads] 1]
            ocsp_peers_replicate 0 -2
            [srv -2 client] set probe threads
            wait_for_condition 50 100 {[r get probe] eq "threads"} else {
                fail "the write did not replicate"
            }
            assert_morethan_equal [ocsp_info peer_checks_ok] 1
            assert_equal 0 [ocsp_info peer_checks_failed]
            set failed [ocsp_info peer_checks_failed]
            try {
                ocsp_peers_revoke -1 server2
                r replicaof 127.0.0.1 $revoked_port
                ocsp_peers_wait_refused 0 revoked $revoked_port $failed
                assert_equal down [ocsp_peers_link 0]
                ocsp_peers_wait_log 0 revoked $revoked_port
            } finally {
                ocsp_set_cert_state server2 V
            }
            # Back to the good primary.
            ocsp_peers_replicate 0 -2
            assert_equal threads [r get probe]
        }
        }
        }
    }
}
}
