# tls-crl-file and the links between servers (issue 16): a replica refuses a
# primary whose certificate a loaded CRL lists, and closes its link when a
# new CRL lists it; a primary with tls-auth-clients refuses and drops such a
# replica; in a TLS cluster, the nodes cut off a node a new CRL lists in both
# directions (the bus links they made to it and the ones it made to them),
# keep refusing its handshakes, and mark it FAIL.
#
# Real CRLs of a throw-away CA (tests/helpers/crl-pki.sh), replaced the way
# an operator's job would (a new file renamed over the old one). Every server
# has a certificate of that CA (server, server2, server3, server4), which it
# presents as a server and as a client (tls-client-cert-file). The harness CA
# joins tls-ca-cert-file, so the harness clients (whose issuer has no CRL)
# keep working. Every case runs its own servers (external:skip); everything
# listens on 127.0.0.1 only.

source tests/support/crl.tcl

# Overrides for a server presenting certificate NAME both as a server and as
# a client, checking certificates against the CRL file PATH (none if empty).
proc links_config {name {path {}} {extra {}}} {
    set config [list \
        tls-client-cert-file [crl_file $name.crt] \
        tls-client-key-file [crl_file $name.key]]
    if {$path ne {}} { lappend config tls-crl-file $path }
    crl_base_config $name [concat $config $extra]
}

# The serial of certificate NAME as the CRL log lines print it.
proc links_serial {name} {
    string trim [lindex [split [exec openssl x509 -in [crl_file $name.crt] -noout -serial] =] 1]
}

proc links_link {level} {
    status [srv $level client] master_link_status
}

proc links_wait_link_up {level} {
    wait_for_condition 100 100 {[links_link $level] eq "up"} else {
        fail "replica $level did not sync (handshakes refused: [crl_info handshakes_refused $level])"
    }
}

# The replica at REPLICA keeps retrying its primary and stays down: wait until
# the server at REFUSER has refused at least 3 handshakes more than REFUSED,
# with the replica's link down at every sample (the replica retries once a
# second).
proc links_wait_stays_down {replica refuser refused} {
    set deadline [expr {[clock milliseconds] + 20000}]
    while {[crl_info handshakes_refused $refuser] < $refused + 3 && [clock milliseconds] < $deadline} {
        assert_equal down [links_link $replica] "master_link_status while its handshakes are refused"
        after 100
    }
    assert_morethan_equal [crl_info handshakes_refused $refuser] [expr {$refused + 3}] "handshakes refused while the replica retries"
    assert_equal down [links_link $replica]
}

# The cluster bus links of node LEVEL with the node NODE_ID: the directions
# ("to", "from") of those CLUSTER LINKS lists.
proc links_bus {level node_id} {
    set dirs {}
    foreach link [R $level cluster links] {
        if {[dict get $link node] eq $node_id} { lappend dirs [dict get $link direction] }
    }
    lsort $dirs
}

proc links_pong_recv {level node_id} {
    dict get [cluster_get_node_by_id $level $node_id] pong_recv
}

if {$::tls} {
crl_setup

tags {tls crl repl external:skip} {
    test {CRL links: a replica refuses a primary whose certificate is listed, and keeps refusing} {
        set path [crl_file replica-1.pem]
        crl_install crl-alice-bob-server2.pem $path
        start_server [list overrides [links_config server2]] {
        start_server [list overrides [links_config server $path]] {
            crl_wait_loads 1 0
            set lines [count_log_lines 0]
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_stays_down 0 0 0
            verify_log_message 0 "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Server Two: serial [links_serial server2] is revoked by CRL 1 of $path*" $lines
            assert_equal 0 [crl_info connections_closed]
            assert_equal 0 [status [srv -1 client] connected_slaves]
            r replicaof no one
        }
        }
    }

    test {CRL links: a replica closes its link to a primary a new CRL lists, and stays down} {
        set path [crl_file replica-2.pem]
        crl_install crl-alice-bob.pem $path
        start_server [list overrides [links_config server2]] {
        start_server [list overrides [links_config server $path]] {
            crl_wait_loads 1 0
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_link_up 0
            [srv -1 client] set probe before
            wait_for_condition 50 100 {[r get probe] eq "before"} else {
                fail "the write did not replicate"
            }
            assert_equal {0 0} [list [crl_info handshakes_refused] [crl_info connections_closed]]

            set lines [count_log_lines 0]
            crl_install crl-alice-bob-server2.pem $path
            crl_wait_loads 2 0
            wait_for_condition 50 100 {[crl_info connections_closed] == 1} else {
                fail "the primary link was not closed (tls_crl_connections_closed [crl_info connections_closed])"
            }
            verify_log_message 0 "*CRL: closing the primary link id=* addr=127.0.0.1:[srv -1 port] *: its certificate (serial [links_serial server2]) is revoked by CRL 1 of $path*" $lines
            # It reconnects, and each handshake is refused.
            links_wait_stays_down 0 0 0
            verify_log_message 0 "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Server Two: serial [links_serial server2] is revoked*" $lines
            wait_for_condition 50 100 {[status [srv -1 client] connected_slaves] == 0} else {
                fail "the primary still has its replica"
            }
            [srv -1 client] set probe after
            assert_equal before [r get probe]
            assert_equal 1 [crl_info connections_closed]
            r replicaof no one
        }
        }
    }

    # Upstream leaves server.repl_transfer_s pointing at the primary's
    # connection once the sync is done, and at a freed one after REPLICAOF NO
    # ONE: a CRL loaded then must look at neither.
    test {CRL links: a CRL loaded after REPLICAOF NO ONE closes nothing, and the old primary is refused} {
        set path [crl_file replica-3.pem]
        crl_install crl-alice-bob.pem $path
        start_server [list overrides [links_config server2]] {
        start_server [list overrides [links_config server $path]] {
            crl_wait_loads 1 0
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_link_up 0
            r replicaof no one
            wait_for_condition 50 100 {[status [srv -1 client] connected_slaves] == 0} else {
                fail "the primary still has its replica"
            }
            set lines [count_log_lines 0]
            set clients [s connected_clients]
            crl_install crl-alice-bob-server2.pem $path
            crl_wait_loads 2 0
            assert_equal PONG [r ping]
            assert_equal {0 0} [list [crl_info handshakes_refused] [crl_info connections_closed]]
            verify_no_log_message 0 "*CRL: closing*" $lines
            assert_equal $clients [s connected_clients]
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_stays_down 0 0 0
            r replicaof no one
        }
        }
    }

    test {CRL links: a primary with tls-auth-clients yes refuses a replica whose certificate is listed} {
        set path [crl_file primary-1.pem]
        crl_install crl-alice-bob-server2.pem $path
        start_server [list overrides [links_config server $path {tls-auth-clients yes}]] {
        start_server [list overrides [links_config server2]] {
            crl_wait_loads 1 0 -1
            set lines [count_log_lines -1]
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_stays_down 0 -1 0
            verify_log_message -1 "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Server Two: serial [links_serial server2] is revoked by CRL 1 of $path*" $lines
            assert_equal 0 [status [srv -1 client] connected_slaves]
            assert_equal 0 [crl_info connections_closed -1]
            # The replica itself has no CRL: it refused nothing.
            assert_equal {0 0} [list [crl_info loads_ok] [crl_info handshakes_refused]]
            r replicaof no one
        }
        }
    }

    test {CRL links: a primary with tls-auth-clients yes drops a replica a new CRL lists, and refuses it again} {
        set path [crl_file primary-2.pem]
        crl_install crl-alice-bob.pem $path
        start_server [list overrides [links_config server $path {tls-auth-clients yes}]] {
        start_server [list overrides [links_config server2]] {
            crl_wait_loads 1 0 -1
            r replicaof [srv -1 host] [srv -1 port]
            links_wait_link_up 0
            wait_for_condition 50 100 {[status [srv -1 client] connected_slaves] == 1} else {
                fail "the primary does not list its replica"
            }

            set lines [count_log_lines -1]
            crl_install crl-alice-bob-server2.pem $path
            crl_wait_loads 2 0 -1
            wait_for_condition 50 100 {[crl_info connections_closed -1] == 1} else {
                fail "the replica's connection was not closed (tls_crl_connections_closed [crl_info connections_closed -1])"
            }
            verify_log_message -1 "*CRL: closing client id=* addr=127.0.0.1:* user=default: its certificate (serial [links_serial server2]) is revoked by CRL 1 of $path*" $lines
            links_wait_stays_down 0 -1 0
            verify_log_message -1 "*CRL: refused the certificate of /O=Valkey CRL Test/CN=Server Two: serial [links_serial server2] is revoked*" $lines
            assert_equal 0 [status [srv -1 client] connected_slaves]
            assert_equal 1 [crl_info connections_closed -1]
            r replicaof no one
        }
        }
    }
}

# A 3-node TLS cluster, every node with its own certificate (R 0: server3,
# R 1: server4, R 2: server) and the same watched CRL file. R 1 and R 2 serve
# the slots, so the cluster stays ok without R 0. A new CRL listing server3:
# R 1 and R 2 close their bus links to and from R 0, refuse its handshakes
# both ways from then on, and mark it FAIL.
tags {tls crl cluster external:skip} {
    test {CRL links: in a 3-node TLS cluster a node a new CRL lists is cut off in both directions and marked FAIL} {
        set path [crl_file cluster.pem]
        crl_install crl-alice-bob-server2.pem $path
        # What start_cluster gives its nodes; tls-auth-clients yes: inbound
        # bus links present the node's certificate.
        set cluster {cluster-enabled yes cluster-node-timeout 3000 tls-auth-clients yes}
        if {[ocsp_server_has_config cluster-ping-interval]} { lappend cluster cluster-ping-interval 100 }
        # Cluster mode has database 0 only (as in start_cluster).
        set old_singledb $::singledb
        set ::singledb 1
        try {
            start_server [list overrides [links_config server $path $cluster]] {
            start_server [list overrides [links_config server4 $path $cluster]] {
            start_server [list overrides [links_config server3 $path $cluster]] {
                for {set i 0} {$i < 3} {incr i} { crl_wait_loads 1 0 -$i }
                R 0 cluster set-config-epoch 1
                R 1 cluster set-config-epoch 2
                R 2 cluster set-config-epoch 3
                R 0 cluster meet [srv -1 host] [srv -1 port]
                R 0 cluster meet [srv -2 host] [srv -2 port]
                R 1 cluster addslotsrange 0 8191
                R 2 cluster addslotsrange 8192 16383
                wait_for_cluster_propagation
                wait_for_cluster_state ok

                set listed [R 0 cluster myid]
                set id1 [R 1 cluster myid]
                set id2 [R 2 cluster myid]
                # Every node is linked to R 0 both ways.
                foreach i {1 2} {
                    wait_for_condition 100 100 {[links_bus $i $listed] eq {from to}} else {
                        fail "node $i's bus links with R 0: [links_bus $i $listed]"
                    }
                    assert_equal {0 0} [list [crl_info handshakes_refused -$i] [crl_info connections_closed -$i]]
                    set lines$i [count_log_lines -$i]
                }

                crl_install crl-alice-bob-server2-server3.pem $path
                for {set i 0} {$i < 3} {incr i} { crl_wait_loads 2 0 -$i }
                set serial [links_serial server3]
                foreach i {1 2} {
                    wait_for_condition 50 100 {[crl_info connections_closed -$i] >= 2} else {
                        fail "node $i closed [crl_info connections_closed -$i] bus links with R 0 (expected 2)"
                    }
                    foreach dir {to from} {
                        verify_log_message -$i "*CRL: closing the cluster bus link $dir node $listed (127.0.0.1:*): its certificate (serial $serial) is revoked by CRL 1 of $path*" [set lines$i]
                    }
                }
                # cluster-node-timeout is 3 s: PFAIL, then FAIL by both
                # slot-serving primaries.
                foreach i {1 2} {
                    wait_node_marked_fail $i $listed
                }
                # The links do not come back: R 1 and R 2 keep trying and keep
                # refusing R 0's certificate, in their handshakes with it and in
                # its handshakes with them; no packet of R 0 reaches them (no
                # PONG, no link from it), nor one of theirs R 0.
                set refused1 [crl_info handshakes_refused -1]
                set refused2 [crl_info handshakes_refused -2]
                set pong1 [links_pong_recv 1 $listed]
                set pong2 [links_pong_recv 2 $listed]
                set pong_of_1 [links_pong_recv 0 $id1]
                set pong_of_2 [links_pong_recv 0 $id2]
                set deadline [expr {[clock milliseconds] + 30000}]
                while {([crl_info handshakes_refused -1] < $refused1 + 4 || [crl_info handshakes_refused -2] < $refused2 + 4) &&
                       [clock milliseconds] < $deadline} {
                    foreach i {1 2} {
                        assert_equal {} [lsearch -inline [links_bus $i $listed] from] "node $i has a link from R 0"
                    }
                    after 100
                }
                foreach i {1 2} {
                    assert_morethan_equal [crl_info handshakes_refused -$i] [expr {[set refused$i] + 4}] "node $i's refused handshakes with R 0"
                    assert_equal [set pong$i] [links_pong_recv $i $listed] "node $i got a PONG from R 0"
                    assert_equal [set pong_of_$i] [links_pong_recv 0 [set id$i]] "R 0 got a PONG from node $i"
                    assert {[check_cluster_node_mark fail $i $listed]}
                    # Nothing more to close: the handshakes refused them all.
                    assert_equal 2 [crl_info connections_closed -$i]
                    # Meanwhile the two keep each other linked and the cluster ok.
                    set other [expr {$i == 1 ? $id2 : $id1}]
                    set node [cluster_get_node_by_id $i $other]
                    assert_equal {master connected} [list [dict get $node flags] [dict get $node linkstate]]
                    assert_equal ok [CI $i cluster_state]
                }
                # R 0 refused nothing and closed nothing: its peers are not listed.
                assert_equal {0 0} [list [crl_info handshakes_refused 0] [crl_info connections_closed 0]]
                assert_equal PONG [R 0 ping]
            }
            }
            }
        } finally {
            set ::singledb $old_singledb
        }
    }
}
}
