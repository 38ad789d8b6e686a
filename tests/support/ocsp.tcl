# Helpers for the OCSP stapling tests: a per-run PKI, the test responder
# (tests/helpers/ocsp-responder.tcl, started and stopped by PID), and clients
# that report what a TLS client receives.

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
    set fd [open [ocsp_file responder.mode] w]
    puts $fd $mode
    close $fd
}

proc ocsp_responder_requests {} {
    if {![file exists [ocsp_file responder.log]]} { return 0 }
    set fd [open [ocsp_file responder.log]]
    set n [llength [split [string trim [read $fd]] "\n"]]
    close $fd
    return $n
}

proc ocsp_port_open {port} {
    if {[catch {close [socket 127.0.0.1 $port]}]} { return 0 }
    return 1
}

proc ocsp_responder_start {} {
    if {$::ocsp_responder_pid} return
    set ::ocsp_responder_pid [exec tclsh tests/helpers/ocsp-responder.tcl $::ocsp_port $::ocsp_dir [pid] \
        >> [ocsp_file responder.out] 2>@1 &]
    wait_for_condition 100 50 {[ocsp_port_open $::ocsp_port]} else {
        fail "OCSP test responder did not start"
    }
}

proc ocsp_responder_stop {} {
    if {!$::ocsp_responder_pid} return
    catch {exec kill $::ocsp_responder_pid}
    wait_for_condition 100 50 {![ocsp_port_open $::ocsp_port]} else {
        fail "OCSP test responder did not stop"
    }
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
    set fd [open [ocsp_file index.txt]]
    set lines [split [string trimright [read $fd] "\n"] "\n"]
    close $fd
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
    set fd [open [ocsp_file index.txt] w]
    puts $fd [join $out "\n"]
    close $fd
}

# Make the server ask its responder again now: a responder change fetches at
# once. The two spellings alternate; "localhost" also exercises resolution in
# the resolver thread and trying each address (::1 refuses, 127.0.0.1 answers).
proc ocsp_refetch {{r_cmd r}} {
    set current [lindex [$r_cmd config get tls-ocsp-responder] 1]
    if {$current eq "http://localhost:$::ocsp_port/"} {
        $r_cmd config set tls-ocsp-responder $::ocsp_url
    } else {
        $r_cmd config set tls-ocsp-responder "http://localhost:$::ocsp_port/"
    }
}

# Leave the server with a fetch stuck on a silent responder for up to
# TIMEOUT seconds; returns once the responder has the request.
proc ocsp_start_hung_fetch {timeout} {
    ocsp_mode hang
    r config set tls-ocsp-response-timeout $timeout
    set requests [ocsp_responder_requests]
    ocsp_refetch
    wait_for_condition 100 20 {[ocsp_responder_requests] > $requests} else {
        fail "the server did not query the responder"
    }
}

# What openssl s_client sees when it asks for status: a dict with
# stapled (0/1), response_status, cert_status and the raw output.
proc ocsp_client_view {port} {
    set out [exec timeout 10 openssl s_client -connect 127.0.0.1:$port -status \
        -CAfile [ocsp_file ca.crt] -cert [ocsp_file client.crt] -key [ocsp_file client.key] \
        < /dev/null 2>@1]
    set view [dict create stapled 0 response_status {} cert_status {} raw $out]
    if {[regexp {OCSP Response Status: (\S+)} $out -> rs]} {
        dict set view stapled 1
        dict set view response_status $rs
    }
    if {[regexp {Cert Status: (\S+)} $out -> cs]} {
        dict set view cert_status $cs
    }
    if {![string match "*CONNECTED*" $out]} {
        error "s_client did not connect: $out"
    }
    return $view
}

proc ocsp_client_cert_status {port} {
    set view [ocsp_client_view $port]
    if {![dict get $view stapled]} { return none }
    return [dict get $view cert_status]
}

# The stapled DER as a second client (gnutls-cli) saves it, checked by
# `openssl ocsp -respin` against the CA for certificate NAME. Returns the
# status line openssl prints ("<file>: good"), or "none" without a staple.
proc ocsp_staple_check {port name} {
    set der [ocsp_file staple.der]
    file delete $der
    catch {exec timeout 10 gnutls-cli --port $port --x509cafile [ocsp_file ca.crt] \
        --x509certfile [ocsp_file client.crt] --x509keyfile [ocsp_file client.key] \
        --save-ocsp=$der 127.0.0.1 < /dev/null}
    if {![file exists $der] || [file size $der] == 0} { return none }
    catch {exec openssl ocsp -respin $der -issuer [ocsp_file ca.crt] -cert [ocsp_file $name.crt] \
        -CAfile [ocsp_file ca.crt] -no_nonce 2>@1} out
    if {![string match "*Response verify OK*" $out]} { return "unverified: $out" }
    if {[string match "*No Status found*" $out]} { return "no status for $name" }
    if {[regexp -line "^[ocsp_file $name.crt]: (\\S+)" $out -> status]} { return $status }
    return "no status for $name: $out"
}

proc ocsp_info {field {level 0}} {
    getInfoProperty [[srv $level client] info tls] tls_ocsp_$field
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

# Make a DER response for certificate NAME, as the responder's "openssl"
# mode would answer with OPTIONS (-signer, -nmin, -faketime).
proc ocsp_make_response {name file args} {
    set req [ocsp_file req-$name.der]
    exec openssl ocsp -issuer [ocsp_file ca.crt] -cert [ocsp_file $name.crt] -no_nonce -reqout $req 2>@1
    exec tclsh tests/helpers/ocsp-responder.tcl answer $::ocsp_dir $req $file {*}$args 2>@1
    return $file
}

# A DER OCSPResponse carrying only a non-successful responseStatus
# (RFC 6960: 3 = tryLater, 6 = unauthorized).
proc ocsp_make_error_response {file status} {
    set fd [open $file wb]
    puts -nonewline $fd [binary format c5 [list 0x30 3 0x0a 1 $status]]
    close $fd
    return $file
}
