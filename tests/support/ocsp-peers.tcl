# Helpers for tests/unit/tls-ocsp-peers.tcl: servers that check the OCSP
# staples of the servers they connect to (tls-ocsp-verify-peers). Built on
# tests/support/ocsp.tcl (the PKI, the responder, ocsp_info ...), which must
# be sourced first.

# Issue server certificates NAMES (EC keys: quick to make) from the PKI's CA,
# with the responder's AIA URL, and add them to the responder's index, valid
# (STATE V) or revoked (R: keyCompromise, a minute ago); also NAME-chain.pem
# for tls-cert-file. Names already issued are left as they are.
proc ocsp_peers_issue {names {state V}} {
    set dir [file dirname [ocsp_file ca.crt]]
    if {![info exists ::ocsp_peers_serial]} { set ::ocsp_peers_serial 8192 }
    set revoked {}
    if {$state eq "R"} {
        set revoked [clock format [expr {[clock seconds] - 60}] -format %y%m%d%H%M%SZ -gmt 1],keyCompromise
    }
    set lines {}
    foreach name $names {
        if {[file exists $dir/$name.crt]} continue
        incr ::ocsp_peers_serial
        exec openssl ecparam -name prime256v1 -genkey -noout -out $dir/$name.key 2>@1
        exec openssl req -new -key $dir/$name.key -subj "/O=Valkey OCSP Test/CN=Peer $name" -out $dir/$name.csr 2>@1
        exec openssl x509 -req -in $dir/$name.csr -CA $dir/ca.crt -CAkey $dir/ca.key \
            -set_serial $::ocsp_peers_serial -days 30 -sha256 -extfile $dir/ext.cnf \
            -extensions server_aia -out $dir/$name.crt 2>/dev/null
        file delete $dir/$name.csr
        ocsp_write_file $dir/$name-chain.pem "[ocsp_read_file $dir/$name.crt][ocsp_read_file $dir/ca.crt]"
        # index.txt: status, expiry, revocation, serial (hex), file, subject.
        set serial [lindex [split [exec openssl x509 -in $dir/$name.crt -noout -serial] =] 1]
        set enddate [lindex [split [exec openssl x509 -in $dir/$name.crt -noout -enddate] =] 1]
        set expiry [exec date -u -d $enddate +%y%m%d%H%M%SZ]
        lappend lines [join [list $state $expiry $revoked $serial unknown "/O=Valkey OCSP Test/CN=Peer $name"] "\t"]
    }
    if {$lines ne {}} {
        set fd [open $dir/index.txt a]
        puts $fd [join $lines "\n"]
        close $fd
    }
}

# start_server options for a stapling server presenting certificate NAME
# that checks its peers with POLICY (no, optional, yes). CLIENT_CERT says
# what its outgoing connections present: "server" (no tls-client-cert-file:
# the server context and NAME's certificate are used), "client" (the PKI's
# client.crt: the separate client context) or "harness" (the harness's own
# client certificate, as start_server sets it).
proc ocsp_peers_options {name policy {client_cert server} {extra {}}} {
    set overrides [ocsp_server_config $name [concat [list tls-ocsp-verify-peers $policy] $extra]]
    set options {}
    switch -- $client_cert {
        server {
            lappend options omit {tls-client-cert-file tls-client-key-file}
        }
        client {
            lappend overrides tls-client-cert-file [ocsp_file client.crt] \
                tls-client-key-file [ocsp_file client.key]
        }
        harness {}
        default { error "unknown client certificate choice $client_cert" }
    }
    return [concat [list overrides $overrides] $options]
}

# The peer check counters of server LEVEL, as a list {ok failed last_failure}.
proc ocsp_peers_counters {{level 0}} {
    list [ocsp_info peer_checks_ok $level] [ocsp_info peer_checks_failed $level] \
        [ocsp_info peer_last_failure $level]
}

# Wait until server LEVEL has refused more than FAILED handshakes and its last
# refusal is REASON for 127.0.0.1:PORT.
proc ocsp_peers_wait_refused {level reason port failed} {
    wait_for_condition 100 100 {
        [ocsp_info peer_checks_failed $level] > $failed &&
        [ocsp_info peer_last_failure $level] eq "$reason 127.0.0.1:$port"
    } else {
        fail "no refusal '$reason 127.0.0.1:$port' (master_link_status [ocsp_peers_link $level], checks ok [ocsp_info peer_checks_ok $level], failed [ocsp_info peer_checks_failed $level], last failure '[ocsp_info peer_last_failure $level]')"
    }
}

# The WARNING that names a refusal of 127.0.0.1:PORT for REASON, in the log
# of server LEVEL.
proc ocsp_peers_wait_log {level reason port} {
    wait_for_log_messages $level [list "*OCSP: refusing the TLS connection to 127.0.0.1:$port: $reason (*"] 0 100 100
}

proc ocsp_peers_link {level} {
    status [srv $level client] master_link_status
}

# Make server LEVEL (presenting certificate NAME) staple a revoked status:
# revoke NAME at the responder, then fetch at once.
proc ocsp_peers_revoke {level name} {
    ocsp_set_cert_state $name R
    assert_equal OK [[srv $level client] ocsp refresh]
    ocsp_wait_status revoked $level
}

# Replica LEVEL replicates from PRIMARY_LEVEL: wait for the link to be up.
proc ocsp_peers_replicate {level primary_level} {
    [srv $level client] replicaof 127.0.0.1 [srv $primary_level port]
    wait_for_condition 100 100 {[ocsp_peers_link $level] eq "up"} else {
        fail "replica did not sync with the primary on port [srv $primary_level port] (peer checks [ocsp_peers_counters $level])"
    }
}

# ---------------------------------------------------------------------------
# A fake primary: openssl s_server on 127.0.0.1 presenting server.crt and
# stapling the DER in STATUS_FILE whatever it says (or certificate CERT).
# It echoes lines reversed (-rev, which never reads stdin), so a replica that
# accepts the staple gets a nonsense reply at once, fails to sync and
# retries. Returns {pid port}.
proc ocsp_peers_s_server_start {status_file {cert server}} {
    set port [find_available_port $::baseport $::portcount]
    set log [ocsp_file s_server-$port.log]
    set pid [exec openssl s_server -accept 127.0.0.1:$port -rev \
        -cert [ocsp_file $cert.crt] -key [ocsp_file $cert.key] \
        -CAfile [ocsp_file ca-bundle.crt] -Verify 1 -status_file $status_file \
        < /dev/null > $log 2>@1 &]
    wait_for_condition 100 50 {[ocsp_port_open $port]} else {
        catch {exec kill $pid}
        fail "openssl s_server did not start: [ocsp_read_file $log]"
    }
    return [list $pid $port]
}

proc ocsp_peers_s_server_stop {s} {
    lassign $s pid port
    catch {exec kill $pid}
    wait_for_condition 100 50 {![process_is_alive $pid]} else {
        catch {exec kill -9 $pid}
    }
}

# ---------------------------------------------------------------------------
# Remembered revocations.

# valkey-cli PING to 127.0.0.1:PORT presenting certificate NAME (NAME.crt,
# NAME.key of the PKI): "PONG", or "refused: <what valkey-cli printed>".
proc ocsp_peers_ping_as {name port} {
    set rc [catch {exec timeout 10 src/valkey-cli -h 127.0.0.1 -p $port --tls \
        --cacert [ocsp_file ca.crt] --cert [ocsp_file $name.crt] --key [ocsp_file $name.key] \
        ping 2>@1} out]
    set out [string trim $out]
    if {!$rc && $out eq "PONG"} { return PONG }
    return "refused: $out"
}

# A response for certificate NAME saying "unknown" (the responder answers
# from an index without NAME), written to FILE. The index is restored.
proc ocsp_peers_unknown_response {name file} {
    set index [ocsp_file index.txt]
    set saved [ocsp_read_file $index]
    set serial [string trim [lindex [split [exec openssl x509 -in [ocsp_file $name.crt] -noout -serial] =] 1]]
    set kept {}
    foreach line [split [string trimright $saved "\n"] "\n"] {
        if {[lindex [split $line "\t"] 3] ne $serial} { lappend kept $line }
    }
    try {
        ocsp_write_file $index "[join $kept "\n"]\n"
        ocsp_make_response $name $file
    } finally {
        ocsp_write_file $index $saved
    }
    return $file
}

# Wait until server LEVEL has refused its outgoing connection to
# 127.0.0.1:PORT again, for REASON, after FAILED refusals; then watch it for
# at least 2 more refusals (it keeps retrying) with its primary link down at
# every sample.
proc ocsp_peers_wait_stays_refused {level reason port failed} {
    ocsp_peers_wait_refused $level $reason $port $failed
    set failed [ocsp_info peer_checks_failed $level]
    set deadline [expr {[clock milliseconds] + 10000}]
    while {[ocsp_info peer_checks_failed $level] < $failed + 2 && [clock milliseconds] < $deadline} {
        assert_equal down [ocsp_peers_link $level] "master_link_status (last failure '[ocsp_info peer_last_failure $level]')"
        after 100
    }
    assert_morethan_equal [ocsp_info peer_checks_failed $level] [expr {$failed + 2}] "refusals while retrying"
    assert_equal down [ocsp_peers_link $level]
    assert_equal "$reason 127.0.0.1:$port" [ocsp_info peer_last_failure $level]
}
