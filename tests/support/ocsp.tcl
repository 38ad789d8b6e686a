# Helpers for the OCSP stapling tests: a per-run PKI, the test responder
# (tests/helpers/ocsp-responder.tcl, started and stopped by PID), clients
# that report what a TLS client receives, and a hermetic name resolver.
#
# The core tests need only the harness, tclsh and the openssl CLI. redis-py
# and gnutls-cli are used when present; their tests are skipped otherwise.

source tests/helpers/ocsp-der.tcl

# Make the PKI, with the responder's port in the certificates' AIA. The
# harness CA joins the bundle so that the harness clients still authenticate.
proc ocsp_setup {} {
    set ::ocsp_port [find_available_port $::baseport $::portcount]
    set ::ocsp_dir [file normalize [tmpdir ocsp-pki]]
    exec sh tests/helpers/ocsp-pki.sh $::ocsp_dir $::ocsp_port [file normalize $::tlsdir/ca.crt] 2>@1
    set ::ocsp_url "http://127.0.0.1:$::ocsp_port/"
    set ::ocsp_responder_pid 0
}

proc ocsp_file {name} {
    file join $::ocsp_dir $name
}

proc ocsp_read_file {path} {
    set fd [open $path rb]
    set data [read $fd]
    close $fd
    return $data
}

proc ocsp_write_file {path data} {
    set fd [open $path wb]
    puts -nonewline $fd $data
    close $fd
}

# Server overrides for a stapling server presenting certificate NAME.
proc ocsp_server_config {{name server} {extra {}}} {
    return [concat [list \
        tls-cert-file [ocsp_file $name-chain.pem] \
        tls-key-file [ocsp_file $name.key] \
        tls-ca-cert-file [ocsp_file ca-bundle.crt] \
        tls-ocsp-stapling yes \
        tls-ocsp-retry-delay 1 \
        tls-ocsp-response-timeout 2] $extra]
}

proc ocsp_mode {mode} {
    ocsp_write_file [ocsp_file responder.mode] "$mode\n"
}

proc ocsp_responder_requests {} {
    if {![file exists [ocsp_file responder.log]]} { return 0 }
    set n [llength [split [string trim [ocsp_read_file [ocsp_file responder.log]]] "\n"]]
    return $n
}

proc ocsp_port_open {port {host 127.0.0.1}} {
    if {[catch {close [socket $host $port]}]} { return 0 }
    return 1
}

# Start a responder on PORT at ADDRESSES (sharing the PKI, mode and log);
# returns its PID. It exits by itself if this test process dies.
proc ocsp_responder_spawn {port {addresses 127.0.0.1}} {
    set pid [exec tclsh tests/helpers/ocsp-responder.tcl $port $::ocsp_dir [pid] {*}$addresses \
        >> [ocsp_file responder.out] 2>@1 &]
    wait_for_condition 100 50 {[ocsp_port_open $port [lindex $addresses 0]]} else {
        catch {exec kill $pid}
        fail "OCSP test responder did not start on $addresses port $port"
    }
    return $pid
}

proc ocsp_responder_kill {pid port {address 127.0.0.1}} {
    catch {exec kill $pid}
    wait_for_condition 100 50 {![ocsp_port_open $port $address]} else {
        fail "OCSP test responder did not stop"
    }
}

# The shared responder on $::ocsp_port (the certificates' AIA URL).
proc ocsp_responder_start {} {
    if {$::ocsp_responder_pid} return
    set ::ocsp_responder_pid [ocsp_responder_spawn $::ocsp_port]
}

proc ocsp_responder_stop {} {
    if {!$::ocsp_responder_pid} return
    ocsp_responder_kill $::ocsp_responder_pid $::ocsp_port
    set ::ocsp_responder_pid 0
}

# A running responder giving real answers, whatever an earlier test left.
proc ocsp_reset {} {
    ocsp_mode openssl
    ocsp_responder_start
}

# Mark certificate NAME revoked (R) or valid (V) in the responder's index.
proc ocsp_set_cert_state {name state} {
    set serial [string trim [lindex [split [exec openssl x509 -in [ocsp_file $name.crt] -noout -serial] =] 1]]
    set lines [split [string trimright [ocsp_read_file [ocsp_file index.txt]] "\n"] "\n"]
    set out {}
    foreach line $lines {
        set f [split $line "\t"]
        if {[lindex $f 3] eq $serial} {
            if {$state eq "R"} {
                set revoked [clock format [expr {[clock seconds] - 60}] -format %y%m%d%H%M%SZ -gmt 1],keyCompromise
            } else {
                set revoked {}
            }
            set f [lreplace $f 0 0 $state]
            set f [lreplace $f 2 2 $revoked]
            set line [join $f "\t"]
        }
        lappend out $line
    }
    ocsp_write_file [ocsp_file index.txt] "[join $out "\n"]\n"
}

# Make the server ask its responder again now: a responder change fetches at
# once. The two spellings alternate; "localhost" also exercises resolution in
# the resolver thread (/etc/hosts, no DNS).
proc ocsp_refetch {{r_cmd r}} {
    set current [lindex [$r_cmd config get tls-ocsp-responder] 1]
    if {$current eq "http://localhost:$::ocsp_port/"} {
        $r_cmd config set tls-ocsp-responder $::ocsp_url
    } else {
        $r_cmd config set tls-ocsp-responder "http://localhost:$::ocsp_port/"
    }
}

# Fetches finished so far, successful or not.
proc ocsp_fetches_done {{level 0}} {
    expr {[ocsp_info fetches_ok $level] + [ocsp_info fetches_failed $level]}
}

# Switch the responder to MODE and make the server fetch once from it;
# returns once the responder has the request.
proc ocsp_fetch_from_mode {mode} {
    ocsp_mode $mode
    set requests [ocsp_responder_requests]
    ocsp_refetch
    wait_for_condition 100 20 {[ocsp_responder_requests] > $requests} else {
        fail "the server did not query the responder"
    }
}

# Leave the server with a fetch stuck on a silent responder for up to
# TIMEOUT seconds; returns once the responder has the request.
proc ocsp_start_hung_fetch {timeout} {
    r config set tls-ocsp-response-timeout $timeout
    ocsp_fetch_from_mode hang
}

# ---------------------------------------------------------------------------
# Whether a server answers, without ever waiting longer than asked.

# Send a command on the plain (non-TLS) PORT and wait at most MS for the
# first line of the reply: "+OK", "-ERR ...", or why there is none. Never
# blocks longer, whatever the server does.
proc ocsp_command_within {port ms args} {
    if {[catch {socket 127.0.0.1 $port} fd]} { return "cannot connect: $fd" }
    fconfigure $fd -translation binary -blocking 0
    set cmd "*[llength $args]\r\n"
    foreach arg $args { append cmd "\$[string length $arg]\r\n$arg\r\n" }
    puts -nonewline $fd $cmd
    flush $fd
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[clock milliseconds] < $deadline} {
        if {[gets $fd line] >= 0} {
            close $fd
            return [string trimright $line "\r"]
        }
        if {[eof $fd]} {
            close $fd
            return "connection closed"
        }
        after 10
    }
    catch {close $fd}
    return "no reply within $ms ms"
}

# ---------------------------------------------------------------------------
# What openssl s_client sees when it asks for status, with EXTRA options
# (-tls1_2, -tls1_3 ...): a dict with stapled (0/1), response_status,
# cert_status, der (the stapled DER taken from the handshake messages that
# -msg prints: CertificateStatus in TLS 1.2, the status_request extension of
# the first Certificate entry in TLS 1.3; {} without a staple), exit (the
# exit status), fatal (1 if a fatal alert or an error was printed) and the
# raw output. Fails unless the client connected at all.
proc ocsp_client_view {port args} {
    set rc [catch {exec timeout 10 openssl s_client -connect 127.0.0.1:$port -status -msg {*}$args \
        -CAfile [ocsp_file ca.crt] -cert [ocsp_file client.crt] -key [ocsp_file client.key] \
        < /dev/null 2>@1} out]
    set view [dict create stapled 0 response_status {} cert_status {} der {} exit $rc fatal 0 raw $out]
    if {[regexp {OCSP Response Status: (\S+)} $out -> rs]} {
        dict set view stapled 1
        dict set view response_status $rs
    }
    if {[regexp {Cert Status: (\S+)} $out -> cs]} {
        dict set view cert_status $cs
    }
    if {[regexp {Alert \[length [0-9a-f]+\], fatal|:error:|excessive message size} $out]} {
        dict set view fatal 1
    }
    if {![string match "*CONNECTED*" $out]} {
        error "s_client did not connect: $out"
    }
    dict set view der [ocsp_staple_from_msg $out]
    return $view
}

# The handshake messages the server sent, from s_client -msg output: a list
# of {protocol name bytes}.
proc ocsp_msg_handshakes {out} {
    set msgs {}
    set cur {}
    foreach line [split $out "\n"] {
        if {[regexp {^<<< (TLS [0-9.]+), Handshake \[length [0-9a-f]+\], (\S+)} $line -> proto name]} {
            if {$cur ne {}} { lappend msgs $cur }
            set cur [list $proto $name {}]
        } elseif {$cur ne {} && [regexp {^\s+([0-9a-f]{2}( [0-9a-f]{2})*)\s*$} $line -> hex]} {
            lset cur 2 "[lindex $cur 2][binary decode hex [string map {" " ""} $hex]]"
        } elseif {$cur ne {}} {
            lappend msgs $cur
            set cur {}
        }
    }
    if {$cur ne {}} { lappend msgs $cur }
    return $msgs
}

proc ocsp_u24 {data pos} {
    binary scan $data @${pos}cucucu a b c
    expr {($a << 16) | ($b << 8) | $c}
}

# The stapled DER OCSPResponse in s_client -msg output, or {}.
proc ocsp_staple_from_msg {out} {
    foreach m [ocsp_msg_handshakes $out] {
        lassign $m proto name data
        if {$name eq "CertificateStatus"} {
            # type(1) length(3) status_type(1) length(3) response
            set len [ocsp_u24 $data 5]
            return [string range $data 8 [expr {8 + $len - 1}]]
        }
        if {$name eq "Certificate" && $proto eq "TLS 1.3"} {
            # type(1) length(3) context(1+n) list_length(3), then the first
            # entry: cert_data(3+n) extensions(2+n).
            binary scan $data @4cu ctx
            set pos [expr {4 + 1 + $ctx + 3}]
            set pos [expr {$pos + 3 + [ocsp_u24 $data $pos]}]
            binary scan $data @${pos}Su extlen
            set pos [expr {$pos + 2}]
            set end [expr {$pos + $extlen}]
            while {$pos + 4 <= $end} {
                binary scan $data @${pos}SuSu type len
                if {$type == 5} {
                    set rlen [ocsp_u24 $data [expr {$pos + 5}]]
                    return [string range $data [expr {$pos + 8}] [expr {$pos + 8 + $rlen - 1}]]
                }
                set pos [expr {$pos + 4 + $len}]
            }
        }
    }
    return {}
}

proc ocsp_client_cert_status {port args} {
    set view [ocsp_client_view $port {*}$args]
    if {![dict get $view stapled]} { return none }
    return [dict get $view cert_status]
}

# Check DER with `openssl ocsp -respin` against the CA for certificate NAME.
# Returns the status openssl prints ("good"), or why not.
proc ocsp_der_check {der name} {
    set path [ocsp_file staple-[clock clicks].der]
    ocsp_write_file $path $der
    catch {exec openssl ocsp -respin $path -issuer [ocsp_file ca.crt] -cert [ocsp_file $name.crt] \
        -CAfile [ocsp_file ca.crt] -no_nonce 2>@1} out
    file delete $path
    if {![string match "*Response verify OK*" $out]} { return "unverified: $out" }
    if {[string match "*No Status found*" $out]} { return "no status for $name" }
    if {[regexp -line "^\\S+: (\\S+)" $out -> status]} { return $status }
    return "no status for $name: $out"
}

# The stapled DER as an openssl client received it (s_client -msg, with
# EXTRA options), checked by `openssl ocsp -respin` against the CA for
# certificate NAME. Returns the status ("good"), or "none" without a staple.
proc ocsp_staple_check {port name args} {
    set der [dict get [ocsp_client_view $port {*}$args] der]
    if {$der eq {}} { return none }
    return [ocsp_der_check $der $name]
}

proc ocsp_info {field {level 0}} {
    getInfoProperty [[srv $level client] info tls] tls_ocsp_$field
}

# The same for a client handle (servers started by hand).
proc ocsp_cinfo {client field} {
    getInfoProperty [$client info tls] tls_ocsp_$field
}

proc ocsp_wait_status {status {level 0}} {
    wait_for_condition 100 100 {[ocsp_info status $level] eq $status} else {
        fail "tls_ocsp_status is [ocsp_info status $level], expected $status (last_error [ocsp_info last_error $level])"
    }
}

proc ocsp_wait_failures {count {level 0}} {
    wait_for_condition 100 100 {[ocsp_info fetches_failed $level] >= $count} else {
        fail "expected $count failed fetches, got [ocsp_info fetches_failed $level]"
    }
}

# Make a DER response for certificate NAME, as the responder would answer in
# MODE ("openssl ?OPTIONS?" or "padded SIZE ..."; plain OPTIONS mean openssl).
proc ocsp_make_response {name file args} {
    set req [ocsp_file req-$name.der]
    exec openssl ocsp -issuer [ocsp_file ca.crt] -cert [ocsp_file $name.crt] -no_nonce -reqout $req 2>@1
    exec tclsh tests/helpers/ocsp-responder.tcl answer $::ocsp_dir $req $file {*}$args 2>@1
    return $file
}

# A DER OCSPResponse carrying only a non-successful responseStatus
# (RFC 6960: 3 = tryLater, 6 = unauthorized).
proc ocsp_make_error_response {file status} {
    ocsp_write_file $file [binary format c5 [list 0x30 3 0x0a 1 $status]]
    return $file
}

# ---------------------------------------------------------------------------
# Optional clients.

# A python3 that can import redis-py with its OCSP extras, or {}.
proc ocsp_redis_py_python {} {
    if {![info exists ::ocsp_python]} {
        set ::ocsp_python {}
        foreach py [concat /usr/bin/python3 [auto_execok python3]] {
            if {[file executable $py] && ![catch {exec $py -c "import OpenSSL; from redis import Redis" 2>@1}]} {
                set ::ocsp_python $py
                break
            }
        }
    }
    return $::ocsp_python
}

proc ocsp_need_redis_py {} {
    if {[ocsp_redis_py_python] eq {}} {
        skip "redis-py (python3 with redis and OpenSSL) not available"
    }
}

# redis-py with ssl_validate_ocsp_stapled=True: "PONG", or "refused: ...".
proc ocsp_redis_py {port} {
    catch {exec [ocsp_redis_py_python] tests/helpers/ocsp-redis-py.py $port $::ocsp_dir 2>@1} out
    return [string trim $out]
}

proc ocsp_need_gnutls {} {
    if {[auto_execok gnutls-cli] eq {}} {
        skip "gnutls-cli not available"
    }
}

# ---------------------------------------------------------------------------
# A hermetic resolver: valkey-server started by hand inside a mount namespace
# (unshare -m) whose /etc/resolv.conf names only a fake DNS server
# (tests/helpers/ocsp-dns.tcl) on a loopback address, over TCP (use-vc). So
# the server's lookups never reach the machine's real resolvers. Needs root
# (port 53, mount); skips the test otherwise.

# Start the fake DNS server and the server; returns a dict (pid, port,
# tls_port, dir, dns_pid, dns_log, client) for ocsp_hermetic_stop. RESPONDER
# is the server's tls-ocsp-responder.
proc ocsp_hermetic_start {responder {extra {}}} {
    if {[auto_execok unshare] eq {} || [auto_execok mount] eq {}} {
        skip "unshare or mount not available"
    }
    set dir [file normalize [tmpdir ocsp-dns]]
    set h [dict create dir $dir dns_log $dir/dns.log dns_pid 0 pid 0 client {}]
    # A loopback address of our own, so that nothing else answers there.
    set dns_pid 0
    foreach i {0 1 2 3 4} {
        set addr 127.0.53.[expr {(([pid] + $i * 37) % 200) + 20}]
        file delete $dir/dns.out
        set dns_pid [exec tclsh tests/helpers/ocsp-dns.tcl $addr $dir/dns.log [pid] > $dir/dns.out 2>@1 &]
        wait_for_condition 50 20 {
            [file exists $dir/dns.out] && [string match "ocsp-dns:*" [ocsp_read_file $dir/dns.out]]
        } else {
            catch {exec kill $dns_pid}
            skip "the fake DNS server did not start"
        }
        if {[string match "*listening*" [ocsp_read_file $dir/dns.out]]} break
        catch {exec kill $dns_pid}
        set dns_pid 0
    }
    if {!$dns_pid} {
        skip "cannot listen on port 53 of a loopback address: [ocsp_read_file $dir/dns.out]"
    }
    dict set h dns_pid $dns_pid
    ocsp_write_file $dir/resolv.conf "nameserver $addr\noptions use-vc timeout:30 attempts:1\n"
    # Host lookups go to files and DNS only (no nss-resolve, no mDNS).
    set nsswitch "hosts: files dns\n"
    if {[file exists /etc/nsswitch.conf]} {
        foreach line [split [ocsp_read_file /etc/nsswitch.conf] "\n"] {
            if {![regexp {^\s*hosts\s*:} $line]} { append nsswitch "$line\n" }
        }
    }
    ocsp_write_file $dir/nsswitch.conf $nsswitch
    # The namespace must really see our files, or no server is started.
    set files /etc/resolv.conf
    set expect "*nameserver $addr*"
    if {[file exists /etc/nsswitch.conf]} {
        lappend files /etc/nsswitch.conf
        append expect "hosts: files dns*"
    }
    set check [ocsp_namespace_script $dir "cat $files"]
    if {[catch {exec unshare -m sh -c $check 2>@1} seen] || ![string match $expect $seen]} {
        catch {exec kill $dns_pid}
        skip "cannot bind-mount /etc/resolv.conf in a mount namespace: $seen"
    }
    set port [find_available_port $::baseport $::portcount]
    set tls_port [find_available_port $::baseport $::portcount]
    set conf [list \
        port $port bind 127.0.0.1 tls-port $tls_port dir $dir save {""} \
        tls-cert-file [ocsp_file server-chain.pem] tls-key-file [ocsp_file server.key] \
        tls-ca-cert-file [ocsp_file ca-bundle.crt] \
        tls-ocsp-stapling yes tls-ocsp-retry-delay 1 tls-ocsp-response-timeout 2 \
        enable-protected-configs yes tls-ocsp-responder $responder {*}$extra]
    set fd [open $dir/valkey.conf w]
    foreach {k v} [concat [ocsp_tls_module_config] $conf] { puts $fd "$k $v" }
    close $fd
    set server [file normalize src/valkey-server]
    set pid [exec unshare -m sh -c [ocsp_namespace_script $dir "$server $dir/valkey.conf"] \
        > $dir/stdout 2> $dir/stderr &]
    dict set h pid $pid
    dict set h port $port
    dict set h tls_port $tls_port
    wait_for_condition 100 50 {[ocsp_port_open $port]} else {
        ocsp_hermetic_stop $h
        fail "the server in the mount namespace did not start: [ocsp_read_file $dir/stdout]"
    }
    dict set h client [valkey 127.0.0.1 $port 0 0]
    return $h
}

# The shell script run by unshare -m: our resolv.conf and nsswitch.conf over
# the system's, nscd's socket hidden (it would resolve outside), then exec
# COMMAND. Any failure stops it before COMMAND runs.
proc ocsp_namespace_script {dir command} {
    return [join [list \
        "set -e" \
        "mount --bind $dir/resolv.conf /etc/resolv.conf" \
        "if \[ -e /etc/nsswitch.conf \]; then mount --bind $dir/nsswitch.conf /etc/nsswitch.conf; fi" \
        "for d in /run/nscd /var/run/nscd; do if \[ -d \$d \]; then mount -t tmpfs tmpfs \$d; fi; done" \
        "exec $command"] "\n"]
}

proc ocsp_hermetic_stop {h} {
    if {[dict get $h client] ne {}} { catch {[dict get $h client] close} }
    set pid [dict get $h pid]
    if {$pid} {
        catch {exec kill $pid}
        wait_for_condition 100 50 {![is_alive $pid]} else {
            catch {exec kill -9 $pid}
        }
    }
    if {[dict get $h dns_pid]} { catch {exec kill [dict get $h dns_pid]} }
}

# Queries the fake DNS server received for NAME.
proc ocsp_dns_queries {h name} {
    if {![file exists [dict get $h dns_log]]} { return 0 }
    set n 0
    foreach line [split [ocsp_read_file [dict get $h dns_log]] "\n"] {
        if {[lindex $line 1] eq $name} { incr n }
    }
    return $n
}

proc ocsp_proc_count {pid what} {
    llength [glob -nocomplain -directory /proc/$pid/$what *]
}

# The names (comm) of the threads of process PID matching PATTERN, sorted.
proc ocsp_threads {pid {pattern *}} {
    set names {}
    foreach task [glob -nocomplain -directory /proc/$pid/task *] {
        if {![catch {ocsp_read_file $task/comm} name] && [string match $pattern [string trim $name]]} {
            lappend names [string trim $name]
        }
    }
    return [lsort $names]
}

# ---------------------------------------------------------------------------
# Schedule and tools.

# thisUpdate and nextUpdate (Unix times) of the DER response in FILE, as
# `openssl ocsp -resp_text` prints them.
proc ocsp_der_times {file} {
    catch {exec openssl ocsp -respin $file -resp_text -noverify 2>@1} out
    set times {}
    foreach field {{This Update} {Next Update}} {
        if {![regexp "$field: (\[^\n\]+)" $out -> when]} {
            error "no $field in the response $file: $out"
        }
        regsub -all {\s+} [string trim $when] " " when
        lappend times [clock scan $when -format {%b %d %H:%M:%S %Y GMT} -gmt 1]
    }
    return $times
}

# Run SCRIPT in the caller's frame with COUNT more servers started by nested
# start_server calls, each with the start_server OPTIONS: inside SCRIPT they
# are levels 0, -1, ... -(COUNT - 1). Every one of them is stopped when
# SCRIPT returns or fails.
proc ocsp_with_servers {count options script {level {}}} {
    if {$level eq {}} { set level #[expr {[info level] - 1}] }
    if {$count == 0} { return [uplevel $level $script] }
    start_server $options {
        ocsp_with_servers [expr {$count - 1}] $options $script $level
    }
}

# valkey-benchmark --tls -n 10 -c 1 -t ping against PORT, trusting the CA
# file CACERT and presenting the OCSP PKI's client certificate, with EXTRA
# options, bounded by `timeout 20` (exit status 124 if it was still running
# then): {exit_status output}.
proc ocsp_benchmark {port cacert args} {
    set status 0
    if {[catch {exec timeout 20 src/valkey-benchmark -h 127.0.0.1 -p $port --tls --cacert $cacert \
        --cert [ocsp_file client.crt] --key [ocsp_file client.key] -n 10 -c 1 -t ping -q {*}$args 2>@1} out]} {
        set status [expr {[lindex $::errorCode 0] eq "CHILDSTATUS" ? [lindex $::errorCode 2] : -1}]
        regsub {\n?child process exited abnormally$} $out {} out
    }
    return [list $status $out]
}

# Directives a server started by hand needs for TLS: with --tls-module
# (BUILD_TLS=module) the loadmodule of valkey-tls.so that start_server adds.
proc ocsp_tls_module_config {} {
    if {$::tls_module} { return [list loadmodule $::VALKEY_TLS_MODULE] }
    return {}
}

# Whether the server under test knows the directive NAME (Valkey 8.1, which
# VALKEY_VERSION=8.1.1 builds, has no tls-auto-reload-interval): a directive's
# name is a string in the server binary, so no server needs to start.
proc ocsp_server_has_config {name} {
    if {![info exists ::ocsp_has_string($name)]} {
        set f [open src/valkey-server rb]
        set ::ocsp_has_string($name) [expr {[string first "\0$name\0" [read $f]] >= 0}]
        close $f
    }
    return $::ocsp_has_string($name)
}

# The OCSP threads a server runs once it has stapled: the resolver, and on
# Valkey 8.1 (no TLS-reload bio worker to share) the bio_tls_ocsp worker its
# first file job started.
proc ocsp_expected_threads {} {
    if {[ocsp_server_has_config bio_tls_ocsp]} { return {bio_tls_ocsp ocsp_resolver} }
    return ocsp_resolver
}

# A test of a directive only newer releases have: where the server does not
# know it, the test is reported as skipped ([skip], saying why) instead of
# run. Valkey 8.1's harness has no skip, so this is decided before the test.
#   ocsp_test_needs_config tls-auto-reload-interval {name} {body} ?tags?
# Upstream runs tls-auto-reload-interval's reloads only with TLS built in
# (its bio job panics in a BUILD_TLS=module server), so with --tls-module
# those tests are skipped too.
proc ocsp_test_needs_config {config name code args} {
    set why {}
    if {![ocsp_server_has_config $config]} {
        set why "this server (src/valkey-server --version: [exec src/valkey-server --version]) has no $config"
    } elseif {$config eq "tls-auto-reload-interval" && $::tls_module} {
        set why "Valkey reloads certificates in the background only with TLS built in, not as a module"
    }
    if {$why ne {}} {
        incr ::num_skipped
        send_data_packet $::test_server_fd skip "$name: $why"
        return
    }
    uplevel 1 [list test $name $code {*}$args]
}

# Overrides for a server whose connections go through I/O threads: with
# io-threads-always-active (a debug directive) they do from the first
# client; Valkey 8.1 has no such directive, and there its I/O threads run
# only under load.
proc ocsp_io_threads_config {} {
    if {[ocsp_server_has_config io-threads-always-active]} {
        return {io-threads 2 io-threads-always-active yes}
    }
    return {io-threads 2}
}

# Valkey 8.1's harness lacks two helpers the 9.x one has.
if {[info commands is_ipv6_available] eq {}} {
    proc is_ipv6_available {} {
        if {[catch {
            set listener [socket -server {apply {{fd addr port} {close $fd}}} -myaddr ::1 0]
            set client [socket ::1 [lindex [chan configure $listener -sockname] 2]]
            close $client
            close $listener
        }]} {
            return 0
        }
        return 1
    }
}
# 8.1's test proc knows no skipped test: a test that cannot run there fails
# saying so (never passes silently). Tests of a missing directive use
# ocsp_test_needs_config instead, which 8.1 reports as skipped.
if {[info commands skip] eq {}} {
    proc skip {msg} {
        error "assertion:cannot run here (this harness has no skip): $msg"
    }
}
