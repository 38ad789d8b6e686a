# tls-ocsp-verify-peers: a server checks the OCSP staples of the servers it
# connects to (replication, cluster bus, MIGRATE) in the TLS handshake, and
# refuses a peer whose staple is revoked, fails verification, has expired or
# is about another certificate (and, with "yes", a peer that staples nothing
# or whose status is unknown). Every refusal is counted in INFO tls and
# logged once a minute per peer and reason.
#
# Real peers are stapling servers of the PKI (server, server2, server3, all
# with the responder's AIA URL); hostile ones are openssl s_server stapling
# whatever file it is given. Every case runs its own servers (hence
# external:skip for the whole file); everything listens on 127.0.0.1 only.

source tests/support/ocsp.tcl
source tests/support/ocsp-peers.tcl

if {$::tls} {
tags {tls ocsp repl external:skip} {
    ocsp_setup
    ocsp_peers_issue server3
    ocsp_reset

    # Three primaries: good (server), good then revoked (server2), stapling
    # nothing (server, tls-ocsp-stapling no); a replica with POLICY moves from
    # one to the next. CLIENT_CERT: what the replica presents (see
    # ocsp_peers_options): "server" uses the server context for outgoing
    # connections, "client" the separate client context. EXTRA: more
    # overrides for all four (io-threads on both sides).
    set threads [ocsp_io_threads_config]
    foreach {policy client_cert extra} [list yes server {} yes client $threads optional client {} no server {}] {
        set variant [expr {$extra eq {} ? "$client_cert context" : "$client_cert context, io-threads"}]
        test "OCSP peers: a replica with tls-ocsp-verify-peers $policy ($variant) and good, revoked, unstapled primaries" {
            ocsp_reset
            start_server [list overrides [ocsp_server_config server $extra]] {
            start_server [list overrides [ocsp_server_config server2 $extra]] {
            start_server [list overrides [ocsp_server_config server [concat {tls-ocsp-stapling no} $extra]]] {
            start_server [ocsp_peers_options server3 $policy $client_cert $extra] {
                set good_port [srv -3 port]
                set revoked_port [srv -2 port]
                set bare_port [srv -1 port]
                ocsp_wait_status good -3
                ocsp_wait_status good -2
                assert_equal disabled [ocsp_info status -1]
                assert_equal $policy [lindex [r config get tls-ocsp-verify-peers] 1]
                if {$extra ne {}} { assert_equal 2 [lindex [r config get io-threads] 1] }

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
                    [srv -2 client] client kill type replica
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
                        assert_equal "revoked 127.0.0.1:$revoked_port" [ocsp_info peer_last_failure]
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
    # primary, and the replica retries). thisUpdate may be up to 5 minutes
    # ahead; nextUpdate gets no grace; without nextUpdate a response is
    # valid for an hour from thisUpdate.
    set staples [list \
        server [ocsp_make_response server [ocsp_file peers-good.der]] ok ok \
        server [ocsp_make_response server [ocsp_file peers-by-ca.der] -signer ca] ok ok \
        server [ocsp_make_response other [ocsp_file peers-other.der]] wrong_certificate wrong_certificate \
        server [ocsp_make_response server [ocsp_file peers-expired.der] -this-offset -7200 -next-offset -3600] stale stale \
        server [ocsp_make_response server [ocsp_file peers-just-expired.der] -this-offset -3600 -next-offset -60] stale stale \
        server [ocsp_make_response server [ocsp_file peers-skew.der] -this-offset 120 -next-offset 3600] ok ok \
        server [ocsp_make_response server [ocsp_file peers-no-next.der] -nmin none] ok ok \
        server [ocsp_make_response server [ocsp_file peers-old-no-next.der] -this-offset -7200 -next-offset none] stale stale \
        server [ocsp_make_response server [ocsp_file peers-future.der] -this-offset 3600 -next-offset 7200] not_yet_valid not_yet_valid \
        server [ocsp_make_response server [ocsp_file peers-rogue.der] -signer rogue] bad_signature bad_signature \
        server [ocsp_make_response server [ocsp_file peers-nosign.der] -signer nosign] bad_signature bad_signature \
        server [ocsp_make_error_response [ocsp_file peers-trylater.der] 3] responder_error responder_error \
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

    # Cluster bus: three nodes (start_cluster) stapling and checking their
    # peers with "yes"; R 1 and R 2 serve the slots, R 0 none, so the cluster
    # stays ok without it. start_cluster gives every node the same options,
    # so R 0 is switched to its own certificate (server3) with CONFIG SET;
    # then the CA revokes it. The healthy nodes cannot link to it, and its
    # own links to them are refused too (they learnt from its staple that its
    # certificate is revoked, and a bus link always presents the node's
    # certificate), so its pings stop and they flag it PFAIL, then FAIL.
    proc ocsp_peers_slots {masters replicas} {
        R 1 cluster addslotsrange 0 8191
        R 2 cluster addslotsrange 8192 16383
    }
    ocsp_reset
    start_cluster 3 0 [concat {tags {needs:debug}} [ocsp_peers_options server yes]] {
        test "OCSP peers: cluster nodes refuse bus links to and from a node whose certificate is revoked, mark it failed, and take it back once good" {
            R 0 config set tls-cert-file [ocsp_file server3-chain.pem] tls-key-file [ocsp_file server3.key]
            wait_for_condition 100 100 {[ocsp_der_check [dict get [ocsp_client_view [srv 0 port]] der] server3] eq "good"} else {
                fail "R 0 does not staple a good response for server3 (status [ocsp_info status 0])"
            }
            set ids {}
            for {set i 0} {$i < 3} {incr i} {
                lappend ids [R $i cluster myid]
                assert_morethan_equal [ocsp_info peer_checks_ok -$i] 2
                assert_equal 0 [ocsp_info peer_checks_failed -$i]
                assert_equal none [ocsp_info peer_last_failure -$i]
            }
            lassign $ids revoked_id id1 id2
            set revoked_bus [expr {[srv 0 port] + 10000}]
            try {
                ocsp_peers_revoke 0 server3
                set failed1 [ocsp_info peer_checks_failed -1]
                set failed2 [ocsp_info peer_checks_failed -2]
                # Links up before the revocation stay up: drop them. Once
                # each healthy node has seen the revoked staple, drop them
                # again: a link the revoked node made before that was let in.
                foreach i {1 2} {
                    R $i debug clusterlink kill all $revoked_id
                }
                # The last failure may as well be a link from the revoked
                # node refused on the way in; the log names the outgoing one.
                foreach i {1 2} {
                    wait_for_condition 100 100 {
                        [ocsp_info peer_checks_failed -$i] > [set failed$i]
                    } else {
                        fail "node $i refused nothing (last failure '[ocsp_info peer_last_failure -$i]')"
                    }
                    ocsp_peers_wait_log -$i revoked $revoked_bus
                    R $i debug clusterlink kill all $revoked_id
                }
                # They keep trying and keep refusing, logged once a minute.
                foreach i {1 2} {
                    set failed [ocsp_info peer_checks_failed -$i]
                    wait_for_condition 50 100 {[ocsp_info peer_checks_failed -$i] > $failed + 3} else {
                        fail "node $i stopped trying to link to the revoked node"
                    }
                    assert_equal 1 [count_log_message -$i "refusing the TLS connection to 127.0.0.1:$revoked_bus: revoked"]
                }
                # cluster-node-timeout is 3 s: PFAIL, then FAIL by both
                # slot-serving primaries.
                foreach i {1 2} {
                    wait_node_marked_fail $i $revoked_id
                    # Its own links were refused as it made them.
                    wait_for_condition 50 100 {
                        [count_log_message -$i "refusing the TLS connection from 127.0.0.1:\[0-9\]*: revoked"] >= 1
                    } else {
                        fail "node $i logged no refused incoming link from the revoked node"
                    }
                }
                # Meanwhile the healthy nodes keep each other linked and the
                # cluster ok; the revoked node has refused nothing.
                foreach {i id} [list 1 $id2 2 $id1] {
                    set node [cluster_get_node_by_id $i $id]
                    assert_equal {master connected} [list [dict get $node flags] [dict get $node linkstate]]
                    assert_equal ok [CI $i cluster_state]
                }
                assert_equal 0 [ocsp_info peer_checks_failed 0]
                assert_equal PONG [R 0 ping]
            } finally {
                ocsp_set_cert_state server3 V
            }
            # Good again: linked both ways, and the failure cleared.
            set ok1 [ocsp_info peer_checks_ok -1]
            set ok2 [ocsp_info peer_checks_ok -2]
            assert_equal OK [R 0 ocsp refresh]
            ocsp_wait_status good 0
            foreach i {1 2} {
                wait_for_condition 150 100 {
                    [dict get [cluster_get_node_by_id $i $revoked_id] flags] eq "master" &&
                    [dict get [cluster_get_node_by_id $i $revoked_id] linkstate] eq "connected" &&
                    [ocsp_info peer_checks_ok -$i] > [set ok$i]
                } else {
                    fail "node $i does not see the node stapling good again as a connected master: [cluster_get_node_by_id $i $revoked_id]"
                }
            }
            set failed [list [ocsp_info peer_checks_failed -1] [ocsp_info peer_checks_failed -2]]
            wait_for_cluster_state ok
            after 500
            assert_equal $failed [list [ocsp_info peer_checks_failed -1] [ocsp_info peer_checks_failed -2]] "refusals after it was good again"
        }
    } ocsp_peers_slots

    # valkey-cli and valkey-benchmark --tls-ocsp-verify: the same check on
    # the command line, against a server stapling good, then revoked, and
    # one stapling nothing. Returns {exit-status output}; the status is 124
    # when the tool was still running after 20 seconds.
    proc ocsp_tool {tool port args} {
        set status 0
        if {[catch {exec timeout 20 src/$tool -h 127.0.0.1 -p $port --tls \
            --cacert [ocsp_file ca.crt] --cert [ocsp_file client.crt] --key [ocsp_file client.key] \
            {*}$args 2>@1} out]} {
            set status [expr {[lindex $::errorCode 0] eq "CHILDSTATUS" ? [lindex $::errorCode 2] : -1}]
        }
        return [list $status $out]
    }

    test "OCSP peers: valkey-cli and valkey-benchmark --tls-ocsp-verify accept good, refuse revoked and (yes) missing staples" {
        ocsp_reset
        start_server [list overrides [ocsp_server_config server]] {
        start_server [list overrides [ocsp_server_config server {tls-ocsp-stapling no}]] {
            set unstapled [srv 0 port]
            set port [srv -1 port]
            ocsp_wait_status good -1

            foreach policy {optional yes} {
                assert_equal {0 PONG} [ocsp_tool valkey-cli $port --tls-ocsp-verify $policy ping]
            }
            lassign [ocsp_tool valkey-cli $port --tls-ocsp-verify yes --verbose ping] rc out
            assert_equal 0 $rc
            assert_match "*OCSP: stapled status good (thisUpdate *Z, nextUpdate *Z)*PONG*" $out
            lassign [ocsp_tool valkey-benchmark $port --tls-ocsp-verify yes -n 20 -c 2 -t ping -q] rc out
            assert_equal 0 $rc
            assert_match "*PING*requests per second*" $out

            # Nothing stapled: refused with yes only.
            lassign [ocsp_tool valkey-cli $unstapled --tls-ocsp-verify yes ping] rc out
            assert_equal 1 $rc
            assert_match "*OCSP: no stapled response*" $out
            assert_no_match "*PONG*" $out
            assert_equal {0 PONG} [ocsp_tool valkey-cli $unstapled --tls-ocsp-verify optional ping]
            # Without the option, nothing is asked for or checked.
            assert_equal {0 PONG} [ocsp_tool valkey-cli $unstapled ping]

            # Revoked: refused with both, by both tools.
            try {
                ocsp_set_cert_state server R
                assert_equal OK [[srv -1 client] ocsp refresh]
                ocsp_wait_status revoked -1
                foreach policy {optional yes} {
                    lassign [ocsp_tool valkey-cli $port --tls-ocsp-verify $policy ping] rc out
                    assert_equal 1 $rc
                    assert_match "*OCSP: server certificate revoked at *Z, reason: keyCompromise*" $out
                    assert_no_match "*PONG*" $out
                }
                # valkey-benchmark reports the refusal and exits by itself.
                lassign [ocsp_tool valkey-benchmark $port --tls-ocsp-verify yes -n 20 -c 2 -t ping -q] rc out
                assert_not_equal 124 $rc "valkey-benchmark did not exit by itself: $out"
                assert_not_equal 0 $rc $out
                assert_match "*OCSP: server certificate revoked at *" $out
                assert_no_match "*requests per second*" $out
                assert_equal {0 PONG} [ocsp_tool valkey-cli $port ping]
            } finally {
                ocsp_set_cert_state server V
            }
            catch {exec src/valkey-cli --tls-ocsp-verify maybe ping 2>@1} out
            assert_match "*Invalid --tls-ocsp-verify: maybe (optional or yes)*" $out
        }
        }
    }

    # CONFIG SET of tls-ocsp-verify-peers and tls-ca-cert-file (the same file:
    # every TLS context is rebuilt) while new outgoing connections keep being
    # made: the replica switching primaries and being kicked off, and MIGRATE
    # from a primary to one that staples nothing. IO threads on the replica.
    test "OCSP peers: CONFIG SET of the policy and the CA file during a stream of outgoing connections" {
        ocsp_reset
        set threads [ocsp_io_threads_config]
        start_server [list overrides [ocsp_server_config server]] {
        start_server [list overrides [ocsp_server_config server2 {tls-ocsp-stapling no}]] {
        start_server [ocsp_peers_options server3 optional client $threads] {
            set p1 [srv -2 client]
            set p2 [srv -1 client]
            set p1_port [srv -2 port]
            set p2_port [srv -1 port]
            ocsp_wait_status good -2
            ocsp_wait_status good 0
            set ca [lindex [r config get tls-ca-cert-file] 1]
            set policies {no optional yes}
            set i 0
            set migrate_errors 0
            # At least 30 rounds and 3 seconds (at most 20 seconds on a slow host).
            set start [clock milliseconds]
            while {($i < 30 || [clock milliseconds] - $start < 3000) && [clock milliseconds] - $start < 20000} {
                set policy [lindex $policies [expr {$i % 3}]]
                r config set tls-ocsp-verify-peers $policy
                r config set tls-ca-cert-file $ca
                r replicaof 127.0.0.1 [expr {$i % 2 ? $p2_port : $p1_port}]
                $p1 client kill type replica
                $p2 client kill type replica
                $p1 config set tls-ocsp-verify-peers [lindex $policies [expr {($i + 1) % 3}]]
                if {$i % 4 == 0} { $p1 config set tls-ca-cert-file $ca }
                $p1 set churn $i
                # MIGRATE caches its connection: drop it, so that the next
                # MIGRATE makes a new one.
                $p2 client kill type normal skipme yes
                if {[catch {$p1 migrate 127.0.0.1 $p2_port churn 0 1000 COPY REPLACE} err]} {
                    assert_match {*IOERR*} $err
                    incr migrate_errors
                }
                if {$i % 5 == 0} {
                    set info [r info tls]
                    assert_match {*tls_ocsp_peer_checks_ok:*} $info
                }
                incr i
                after 20
            }
            assert_morethan_equal $i 10
            foreach level {0 -1 -2} {
                assert_equal PONG [[srv $level client] ping]
                assert {[process_is_alive [srv $level pid]]}
                verify_no_log_message $level "*crashed by signal*" 0
                verify_no_log_message $level "*ASSERTION FAILED*" 0
                foreach field {peer_checks_ok peer_checks_failed} {
                    assert {[string is integer -strict [ocsp_info $field $level]]}
                }
            }
            # Every policy took effect for some connections.
            assert_morethan [ocsp_info peer_checks_ok] 0
            assert_morethan [ocsp_info peer_checks_failed -2] 0
            assert_morethan $migrate_errors 0
            # The setting applies to new connections: a link made under "no"
            # stays up after "yes", until it is made again.
            r config set tls-ocsp-verify-peers no
            ocsp_peers_replicate 0 -1
            r config set tls-ocsp-verify-peers yes
            r config set tls-ca-cert-file $ca
            $p2 set after-config 1
            wait_for_condition 50 100 {[r get after-config] eq "1"} else {
                fail "the link made under 'no' did not stay up"
            }
            assert_equal up [ocsp_peers_link 0]
            set failed [ocsp_info peer_checks_failed]
            $p2 client kill type replica
            ocsp_peers_wait_refused 0 no_staple $p2_port $failed
            assert_equal down [ocsp_peers_link 0]
            ocsp_peers_replicate 0 -2
            r replicaof no one
            # Refused values, CONFIG GET and CONFIG REWRITE.
            catch {r config set tls-ocsp-verify-peers maybe} err
            assert_match {*tls-ocsp-verify-peers*} $err
            assert_equal {tls-ocsp-verify-peers yes} [r config get tls-ocsp-verify-peers]
            r config set tls-ocsp-verify-peers optional
            r config rewrite
            assert_match "*\ntls-ocsp-verify-peers optional\n*" [ocsp_read_file [srv 0 config_file]]
        }
        }
        }
    }

    # Sticky revocation: a certificate whose own staple said revoked (seen
    # when connecting to its server) is refused both ways, also once its
    # server stops stapling or staples "unknown", until a valid staple for it
    # says good. While refused because remembered, the reason reads
    # "revoked (remembered)". The replica presents the PKI's client
    # certificate; clients presenting server2's certificate reach it with
    # valkey-cli.
    foreach policy {optional yes} {
        test "OCSP peers: under $policy, a revoked primary stays refused when it stops stapling, in both directions, until a good staple lets it back" {
            ocsp_reset
            set unknown [ocsp_peers_unknown_response server2 [ocsp_file peers-server2-unknown.der]]
            start_server [list overrides [ocsp_server_config server2]] {
            start_server [ocsp_peers_options server3 $policy client {tls-auth-clients yes}] {
                set primary [srv -1 client]
                set primary_port [srv -1 port]
                set replica_port [srv 0 port]
                ocsp_wait_status good -1
                ocsp_wait_status good 0
                assert_equal 0 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"
                ocsp_peers_replicate 0 -1
                assert_equal PONG [ocsp_peers_ping_as server2 $replica_port]
                try {
                    # The primary staples revoked: refused, and remembered.
                    ocsp_peers_revoke -1 server2
                    set failed [ocsp_info peer_checks_failed]
                    $primary client kill type replica
                    ocsp_peers_wait_refused 0 revoked $primary_port $failed
                    ocsp_peers_wait_log 0 revoked $primary_port
                    assert_equal down [ocsp_peers_link 0]
                    assert_equal 1 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"

                    # It stops stapling: still refused, as remembered, on
                    # every retry; logged once.
                    $primary config set tls-ocsp-stapling no
                    assert_equal disabled [ocsp_info status -1]
                    set failed [ocsp_info peer_checks_failed]
                    set loglines [count_log_lines 0]
                    $primary client kill type replica
                    ocsp_peers_wait_stays_refused 0 "revoked (remembered)" $primary_port $failed
                    ocsp_peers_wait_log 0 "revoked (remembered)" $primary_port
                    verify_log_message 0 "*OCSP: refusing the TLS connection to 127.0.0.1:$primary_port: revoked (remembered) (*" $loglines
                    assert_equal 1 [count_log_message 0 "refusing the TLS connection to 127.0.0.1:$primary_port: revoked (remembered)"]
                    assert_equal 1 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"

                    # Its certificate is refused on the way in too.
                    r replicaof no one
                    set failed [ocsp_info peer_checks_failed]
                    assert_match "refused: *" [ocsp_peers_ping_as server2 $replica_port]
                    wait_for_condition 50 100 {
                        [ocsp_info peer_checks_failed] > $failed &&
                        [string match "revoked (remembered) 127.0.0.1:* (incoming)" [ocsp_info peer_last_failure]]
                    } else {
                        fail "no incoming refusal as remembered (last failure '[ocsp_info peer_last_failure]')"
                    }
                    wait_for_log_messages 0 [list "*OCSP: refusing the TLS connection from 127.0.0.1:*: revoked (remembered) (*"] 0 100 100
                    # Other clients are not.
                    assert_equal PONG [ocsp_peers_ping_as client $replica_port]

                    # A server presenting the certificate with a staple whose
                    # status is unknown: refused, still remembered.
                    set s [ocsp_peers_s_server_start $unknown server2]
                    set fake_port [lindex $s 1]
                    try {
                        set failed [ocsp_info peer_checks_failed]
                        set ok [ocsp_info peer_checks_ok]
                        r replicaof 127.0.0.1 $fake_port
                        if {$policy eq "optional"} {
                            ocsp_peers_wait_refused 0 "revoked (remembered)" $fake_port $failed
                        } else {
                            # Refused either way; which reason is named is not specified.
                            wait_for_condition 100 100 {
                                [ocsp_info peer_checks_failed] > $failed &&
                                [ocsp_info peer_last_failure] in [list "revoked (remembered) 127.0.0.1:$fake_port" "unknown 127.0.0.1:$fake_port"]
                            } else {
                                fail "the unknown staple was not refused (last failure '[ocsp_info peer_last_failure]')"
                            }
                        }
                        assert_equal $ok [ocsp_info peer_checks_ok]
                        r replicaof no one
                    } finally {
                        ocsp_peers_s_server_stop $s
                    }
                    assert_equal 1 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"
                    assert_match "refused: *" [ocsp_peers_ping_as server2 $replica_port]
                } finally {
                    ocsp_set_cert_state server2 V
                }

                # The CA lifts the revocation and the primary staples good
                # again: linked, and its certificate let in again.
                $primary config set tls-ocsp-stapling yes
                assert_equal OK [$primary ocsp refresh]
                ocsp_wait_status good -1
                ocsp_peers_replicate 0 -1
                assert_equal 0 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"
                assert_equal PONG [ocsp_peers_ping_as server2 $replica_port]
                $primary set probe back
                wait_for_condition 50 100 {[r get probe] eq "back"} else {
                    fail "the write did not replicate"
                }
                r replicaof no one
            }
            }
        }
    }

    # The remembered revocations are not a ring: after 70 more revoked peers
    # (fake primaries, one certificate each) the first is still refused.
    # tls-ocsp-verify-peers no forgets them all.
    test "OCSP peers: 70 more revoked peers do not evict the first remembered one" {
        ocsp_reset
        set names {}
        for {set i 0} {$i <= 70} {incr i} { lappend names peers-revoked-$i }
        ocsp_peers_issue $names R
        set staples {}
        foreach name $names {
            lappend staples [ocsp_make_response $name [ocsp_file $name.der]]
        }
        start_server [ocsp_peers_options server3 optional client {tls-auth-clients yes}] {
            set replica_port [srv 0 port]
            ocsp_wait_status good 0
            set first [lindex $names 0]
            assert_equal PONG [ocsp_peers_ping_as $first $replica_port]
            set n 0
            foreach name $names staple $staples {
                set failed [ocsp_info peer_checks_failed]
                set s [ocsp_peers_s_server_start $staple $name]
                set port [lindex $s 1]
                try {
                    r replicaof 127.0.0.1 $port
                    wait_for_condition 200 50 {
                        [ocsp_info peer_checks_failed] > $failed &&
                        [ocsp_info peer_last_failure] eq "revoked 127.0.0.1:$port"
                    } else {
                        fail "$name was not refused as revoked (last failure '[ocsp_info peer_last_failure]')"
                    }
                    r replicaof no one
                } finally {
                    ocsp_peers_s_server_stop $s
                }
                incr n
            }
            assert_equal 71 $n
            assert_equal 0 [ocsp_info peer_checks_ok]
            # The first is still refused on the way in.
            assert_match "refused: *" [ocsp_peers_ping_as $first $replica_port] "the first revoked certificate after 70 more"
            wait_for_condition 50 100 {
                [string match "revoked (remembered) 127.0.0.1:* (incoming)" [ocsp_info peer_last_failure]]
            } else {
                fail "no incoming refusal as remembered (last failure '[ocsp_info peer_last_failure]')"
            }
            assert_match "refused: *" [ocsp_peers_ping_as [lindex $names end] $replica_port]
            assert_equal 71 [ocsp_info peers_revoked_remembered] "tls_ocsp_peers_revoked_remembered"
            # tls-ocsp-verify-peers no forgets them.
            r config set tls-ocsp-verify-peers no
            wait_for_condition 50 100 {[ocsp_info peers_revoked_remembered] eq 0} else {
                fail "[ocsp_info peers_revoked_remembered] still remembered after tls-ocsp-verify-peers no"
            }
            assert_equal PONG [ocsp_peers_ping_as $first $replica_port]
            r config set tls-ocsp-verify-peers optional
            assert_equal PONG [ocsp_peers_ping_as $first $replica_port]
        }
    }

    ocsp_responder_stop
}
}
