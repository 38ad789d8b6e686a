# tls-crl-file: a client certificate (tls-auth-clients) or the certificate
# of a peer we connect to is refused when a loaded CRL from its issuer lists
# it; a connection already open is closed when a newly loaded CRL lists its
# certificate; a file that fails verification is refused and the CRLs loaded
# before stay in force; at startup such a file stops the server. At the
# end, the same check in valkey-cli and valkey-benchmark (--tls-crl FILE).
#
# The CRLs are real ones, made by `openssl ca -gencrl` in a throw-away CA
# (tests/helpers/crl-pki.sh). The harness CA joins tls-ca-cert-file, so the
# harness clients (whose issuer has no CRL) keep working. Every case runs
# its own servers (external:skip); everything listens on 127.0.0.1 only.

source tests/support/crl.tcl

if {$::tls} {
tags {tls crl external:skip} {
    crl_setup

    test {CRL: a listed client certificate is refused, an unlisted one accepted} {
        set path [file join $::crl_dir watched-1.pem]
        crl_install crl-alice.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            assert_equal 1 [crl_info count]
            assert_equal 1 [crl_info entries]
            assert_match {*error*} [crl_ping alice]
            assert_equal PONG [crl_ping bob]
            assert_equal PONG [crl_ping carol]
            # The harness client's issuer has no CRL: not affected.
            assert_equal PONG [r PING]
            assert_morethan_equal [crl_info handshakes_refused] 1
            verify_log_message 0 "*CRL: refused the certificate of*Alice*revoked by CRL 1 of $path*" 0
        }
    }

    test {CRL: a connected client is closed when a new CRL file lists it (rename)} {
        set path [file join $::crl_dir watched-2.pem]
        crl_install crl-alice.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            set bob [crl_client bob]
            set carol [crl_client carol]
            assert_equal PONG [$bob PING]
            assert_equal PONG [$carol PING]
            set clients [s connected_clients]

            crl_install crl-alice-bob.pem $path
            crl_wait_loads 2 0
            assert_equal 2 [crl_info entries]
            wait_for_condition 50 20 {[s connected_clients] == $clients - 1} else {
                fail "bob's connection was not closed"
            }
            assert_error {*I/O error*} {$bob PING}
            assert_equal PONG [$carol PING]
            assert_equal 1 [crl_info connections_closed]
            verify_log_message 0 "*CRL: closing client id=* its certificate (serial *) is revoked by CRL 1 of $path*" 0
            assert_match {*error*} [crl_ping bob]
            $carol close
            catch {$bob close}
        }
    }

    # Since 9.0 a client certificate alone logs in as an ACL user: the CRL
    # closes such a session as any other, and refuses the next one.
    ocsp_test_needs_config tls-auth-clients-user {CRL: a client logged in by its certificate (tls-auth-clients-user CN) is closed when a new CRL lists it} {
        set path [file join $::crl_dir watched-user.pem]
        crl_install crl-alice.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            r config set tls-auth-clients-user CN
            r acl setuser Bob on nopass +@all ~*
            set bob [crl_client bob]
            assert_equal Bob [$bob ACL WHOAMI]

            crl_install crl-alice-bob.pem $path
            crl_wait_loads 2 0
            wait_for_condition 50 20 {[crl_info connections_closed] == 1} else {
                fail "Bob's session was not closed"
            }
            assert_error {*I/O error*} {$bob PING}
            verify_log_message 0 "*CRL: closing client id=* user=Bob: its certificate (serial *) is revoked*" 0
            assert_match {*error*} [crl_ping bob]
            catch {$bob close}
        }
    }

    test {CRL: a CRL of another CA, garbage, a truncated file, an older CRL are refused; the CRLs before stay} {
        set path [file join $::crl_dir watched-3.pem]
        crl_install crl-alice.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            set failed 0
            foreach {bad reason} {
                crl-rogue.pem {*not signed by a CA*}
                crl-garbage.pem {*neither PEM nor a single DER*}
                crl-truncated.pem {*cannot be parsed*}
                crl-backwards.pem {*nextUpdate before its thisUpdate*}
                crl-older.pem {*older (thisUpdate) than the one in force*}
            } {
                if {![file exists [crl_file $bad]]} continue
                crl_install $bad $path
                crl_wait_loads 1 [incr failed]
                assert_match $reason [crl_info last_error]
                verify_log_message 0 "*CRL: refusing tls-crl-file $path: *the CRLs loaded before stay in force*" 0
                # Alice is still refused, bob and carol (listed by the rogue
                # CRL) still accepted.
                assert_equal 1 [crl_info count]
                assert_match {*error*} [crl_ping alice]
                assert_equal PONG [crl_ping bob]
            }
            # A good file again: loaded, and the error is cleared.
            crl_install crl-alice-bob.pem $path
            crl_wait_loads 2 $failed
            assert_equal {} [crl_info last_error]
            assert_match {*error*} [crl_ping bob]
        }
    }

    test {CRL: a single DER CRL, and two CRLs of the same CA in one PEM file} {
        set path [file join $::crl_dir watched-4.crl]
        crl_install crl-alice.der $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            assert_equal {1 1} [list [crl_info count] [crl_info entries]]
            assert_match {*error*} [crl_ping alice]
            crl_install crl-two.pem $path
            crl_wait_loads 2 0
            assert_equal {2 1} [list [crl_info count] [crl_info entries]]
            assert_match {*error*} [crl_ping alice]
            assert_equal PONG [crl_ping bob]
        }
    }

    test {CRL: the file rewritten in place and swapped by symlink is picked up} {
        set path [file join $::crl_dir watched-5.pem]
        file delete $path
        file link -symbolic $path [crl_file crl-none.pem]
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            assert_equal 0 [crl_info entries]
            assert_equal PONG [crl_ping alice]
            # Symlink swap.
            file delete $path.new
            file link -symbolic $path.new [crl_file crl-alice.pem]
            file rename -force $path.new $path
            crl_wait_loads 2 0
            assert_equal 1 [crl_info entries]
            assert_match {*error*} [crl_ping alice]
            # Rewritten in place.
            file delete $path
            ocsp_write_file $path [ocsp_read_file [crl_file crl-alice-bob.pem]]
            crl_wait_loads 3 0
            assert_equal 2 [crl_info entries]
            assert_match {*error*} [crl_ping bob]
        }
    }

    test {CRL: CONFIG SET, GET and REWRITE tls-crl-file} {
        set path [file join $::crl_dir watched-6.pem]
        crl_install crl-alice.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            assert_equal [list tls-crl-file $path] [r config get tls-crl-file]
            assert_error {*cannot access the file*} {r config set tls-crl-file [file join $::crl_dir missing.pem]}
            assert_equal [list tls-crl-file $path] [r config get tls-crl-file]

            r config set tls-crl-file [crl_file crl-alice-bob.pem]
            crl_wait_loads 2 0
            assert_match {*error*} [crl_ping bob]
            r config rewrite
            assert_match "*tls-crl-file*crl-alice-bob.pem*" [exec grep tls-crl-file [srv 0 config_file]]

            # No file: no CRL in force.
            r config set tls-crl-file ""
            assert_equal {0 0} [list [crl_info count] [crl_info entries]]
            assert_equal PONG [crl_ping alice]
        }
    }

    test {CRL: INFO tls fields} {
        set path [file join $::crl_dir watched-7.pem]
        crl_install crl-alice-bob.pem $path
        start_server [list overrides [crl_config $path]] {
            crl_wait_loads 1 0
            set info [r info tls]
            foreach field {count entries next_update loaded_time loads_ok loads_failed last_error
                           handshakes_refused connections_closed} {
                assert_match "*tls_crl_$field:*" $info
            }
            assert_equal 2 [crl_info entries]
            set next [exec openssl crl -in [crl_file crl-alice-bob.pem] -noout -nextupdate]
            set next [clock scan [string range $next [string first = $next]+1 end] -format {%b %d %H:%M:%S %Y GMT} -gmt 1]
            assert_equal $next [crl_info next_update]
            assert_range [crl_info loaded_time] [expr {[clock seconds] - 60}] [clock seconds]
            assert_equal {0 0} [list [crl_info handshakes_refused] [crl_info connections_closed]]
        }
    }

    test {CRL: a replica refuses a primary whose certificate is listed} {
        set path [file join $::crl_dir watched-8.pem]
        crl_install crl-alice-bob-server2.pem $path
        start_server [list overrides [crl_config $path server2]] {
        start_server [list overrides [crl_config $path]] {
            set refused [crl_info handshakes_refused]
            r replicaof [srv -1 host] [srv -1 port]
            wait_for_condition 50 100 {[crl_info handshakes_refused] > $refused} else {
                fail "the replica's handshake with the listed primary was not refused"
            }
            assert_match {*down*} [status r master_link_status]
            r replicaof no one
        }
        }
    }

    test {CRL: a bad file at startup stops the server (fail closed)} {
        set port [find_available_port $::baseport $::portcount]
        set args [list --port 0 --tls-port $port --bind 127.0.0.1 --save "" \
            --tls-cert-file [crl_file server-chain.pem] --tls-key-file [crl_file server.key] \
            --tls-ca-cert-file [crl_file ca-bundle.crt] --tls-crl-file [crl_file crl-rogue.pem]]
        foreach {name value} [ocsp_tls_module_config] { lappend args --$name $value }
        catch {exec timeout 20 src/valkey-server {*}$args 2>@1} out
        assert_match {*CRL: refusing tls-crl-file*not signed by a CA*the server does not start (fail closed)*} $out
        assert_equal 1 [lindex $::errorCode 2]
    }

    # valkey-cli and valkey-benchmark --tls-crl FILE: the server's certificate
    # against the CRLs of FILE, each verified with --cacert. The server is
    # server2, which crl-alice-bob-server2.pem lists and crl-alice-bob.pem does
    # not. Returns {exit-status output}; 124: still running after 20 s.
    proc crl_tool {tool port cacert crl args} {
        set status 0
        if {[catch {exec timeout 20 src/$tool -h 127.0.0.1 -p $port --tls --cacert $cacert \
            --cert $::tlsdir/client.crt --key $::tlsdir/client.key --tls-crl $crl {*}$args 2>@1} out]} {
            set status [expr {[lindex $::errorCode 0] eq "CHILDSTATUS" ? [lindex $::errorCode 2] : -1}]
        }
        return [list $status $out]
    }

    test {CRL: valkey-cli --tls-crl refuses a listed server, accepts an unlisted one, errors on a bad file} {
        start_server [list overrides [list tls-cert-file [crl_file server2-chain.pem] \
            tls-key-file [crl_file server2.key] tls-ca-cert-file [crl_file ca-bundle.crt]]] {
            set port [srv 0 port]
            set ca [crl_file ca.crt]
            set serial [string trimleft [exec openssl x509 -in [crl_file server2.crt] -noout -serial] serial=]

            lassign [crl_tool valkey-cli $port $ca [crl_file crl-alice-bob-server2.pem] ping] rc out
            assert_equal 1 $rc
            assert_match "*CRL: the server certificate (serial $serial, subject */CN=Server Two) is revoked since *, by the CRL of */CN=CRL Test CA in *crl-alice-bob-server2.pem*" $out
            assert_no_match "*PONG*" $out

            # Not listed: PEM (one CRL, or two), and DER.
            foreach name {crl-alice-bob.pem crl-two.pem crl-alice.der} {
                assert_equal {0 PONG} [crl_tool valkey-cli $port $ca [crl_file $name] ping]
            }

            # A file that fails is an error, and nothing is sent.
            foreach {name why} {
                crl-garbage.pem {neither PEM nor a single DER X509 CRL*}
                crl-truncated.pem {CRL 1 cannot be parsed*}
                crl-rogue.pem {CRL 1 (issuer */CN=CRL Test CA) is not signed by a CA of --cacert / --cacertdir*}
                no-such-file.pem {cannot open it: No such file or directory*}
            } {
                lassign [crl_tool valkey-cli $port $ca [crl_file $name] ping] rc out
                assert_equal 1 $rc
                assert_match "*--tls-crl *$name: $why" $out
                assert_no_match "*PONG*" $out
            }
            if {[file exists [crl_file crl-backwards.pem]]} {
                lassign [crl_tool valkey-cli $port $ca [crl_file crl-backwards.pem] ping] rc out
                assert_equal 1 $rc
                assert_match "*nextUpdate before its thisUpdate*" $out
            }
            # A CRL past its nextUpdate (-crl_nextupdate needs OpenSSL 3.0).
            set expired [crl_file crl-expired.pem]
            if {![catch {exec openssl ca -config [crl_file db-ca/ca.cnf] -gencrl -crl_lastupdate 20200101000000Z \
                    -crl_nextupdate 20200102000000Z -out $expired -batch 2>@1}]} {
                lassign [crl_tool valkey-cli $port $ca $expired ping] rc out
                assert_equal 1 $rc
                assert_match "*CRL: the server certificate (serial $serial, *) cannot be checked: the CRL of its issuer * in *crl-expired.pem: CRL has expired*" $out
            }
            # --insecure would accept whatever the check finds: refused.
            lassign [crl_tool valkey-cli $port $ca [crl_file crl-alice.pem] --insecure ping] rc out
            assert_equal 1 $rc
            assert_match "*--tls-crl *: the server certificate is not verified (--insecure)*" $out
            # Without the option, nothing is checked.
            assert_equal 0 [catch {exec src/valkey-cli -h 127.0.0.1 -p $port --tls --cacert $ca \
                --cert $::tlsdir/client.crt --key $::tlsdir/client.key ping} out] $out
            assert_equal PONG $out
        }
        # A server whose issuer has no CRL in the file (the harness's) cannot be
        # checked: refused.
        start_server {} {
            lassign [crl_tool valkey-cli [srv 0 port] [crl_file ca-bundle.crt] [crl_file crl-alice-bob.pem] ping] rc out
            assert_equal 1 $rc
            assert_match "*CRL: the server certificate (serial *) cannot be checked: no CRL of its issuer * in *crl-alice-bob.pem*" $out
        }
        catch {exec src/valkey-cli --help 2>@1} help
        assert_match "*--tls-crl <file>*" $help
    }

    test {CRL: valkey-benchmark --tls-crl refuses a listed server, accepts an unlisted one, errors on a bad file} {
        start_server [list overrides [list tls-cert-file [crl_file server2-chain.pem] \
            tls-key-file [crl_file server2.key] tls-ca-cert-file [crl_file ca-bundle.crt]]] {
            set port [srv 0 port]
            set ca [crl_file ca.crt]
            lassign [crl_tool valkey-benchmark $port $ca [crl_file crl-alice-bob.pem] -n 20 -c 2 -t ping -q] rc out
            assert_equal 0 $rc $out
            assert_match "*PING*requests per second*" $out

            lassign [crl_tool valkey-benchmark $port $ca [crl_file crl-alice-bob-server2.pem] -n 20 -c 2 -t ping -q] rc out
            assert_not_equal 124 $rc "valkey-benchmark did not exit by itself: $out"
            assert_not_equal 0 $rc $out
            assert_match "*CRL: the server certificate (serial *) is revoked since *" $out
            assert_no_match "*requests per second*" $out

            lassign [crl_tool valkey-benchmark $port $ca [crl_file crl-garbage.pem] -n 20 -c 2 -t ping -q] rc out
            assert_not_equal 124 $rc "valkey-benchmark did not exit by itself: $out"
            assert_not_equal 0 $rc $out
            assert_match "*--tls-crl *crl-garbage.pem: neither PEM nor a single DER X509 CRL*" $out
            assert_no_match "*requests per second*" $out
        }
        catch {exec src/valkey-benchmark --help 2>@1} help
        assert_match "*--tls-crl <file>*" $help
    }
}
}
