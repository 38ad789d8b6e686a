# Helpers for tests/unit/tls-ocsp-sources.tcl: where the staple comes from
# (the cache file, tls-ocsp-response-file, the responder through an HTTP
# proxy) and how it is asked for (GET, POST). Used together with
# tests/support/ocsp.tcl (ocsp_setup, ocsp_file, the responder and the client
# views); everything here is prefixed ocsps_ so that the two files never
# clash.

# Replace PATH atomically (a new file, then rename), as careful writers do.
proc ocsps_replace {path data} {
    set tmp $path.tmp.[pid]
    ocsp_write_file $tmp $data
    file rename -force $tmp $path
}

# DER with one bit flipped in the middle of its signature (the BIT STRING
# of the BasicOCSPResponse; tests/helpers/ocsp-der.tcl takes it apart).
proc ocsps_tamper_signature {der} {
    set basic [ocsp_der_basic $der]
    set sig [lindex $basic 2 2 2]
    set p [expr {[string length $sig] / 2}]
    binary scan $sig @${p}cu b
    lset basic 2 2 2 [string replace $sig $p $p [binary format cu [expr {$b ^ 0x01}]]]
    return [ocsp_der_with_basic $der $basic]
}

# ---------------------------------------------------------------------------
# The test responder's log: "<time> <mode> <method>" per request.

# "mode method" of each request after the first SKIP ones.
proc ocsps_responder_log_since {skip} {
    set path [ocsp_file responder.log]
    if {![file exists $path]} { return {} }
    set out {}
    foreach line [lrange [split [string trim [ocsp_read_file $path]] "\n"] $skip end] {
        lappend out [lrange $line 1 2]
    }
    return $out
}

# ---------------------------------------------------------------------------
# The HTTP proxy (tests/helpers/ocsp-proxy.tcl), forwarding to the test
# responder on 127.0.0.1. CREDENTIALS ("user:password"): the proxy requires
# them (407 otherwise). Returns a dict: pid port log auth.

proc ocsps_proxy_start {{credentials {}}} {
    set port [find_available_port $::baseport $::portcount]
    set log [ocsp_file proxy-$port.log]
    file delete $log
    set auth {}
    if {$credentials ne {}} { set auth [binary encode base64 $credentials] }
    set pid [exec tclsh tests/helpers/ocsp-proxy.tcl $port $log $::ocsp_port [pid] $auth \
        >> [ocsp_file proxy.out] 2>@1 &]
    wait_for_condition 100 50 {[ocsp_port_open $port]} else {
        catch {exec kill $pid}
        fail "the test proxy did not start on port $port"
    }
    return [dict create pid $pid port $port log $log auth $auth]
}

proc ocsps_proxy_stop {proxy} {
    catch {exec kill [dict get $proxy pid]}
    wait_for_condition 100 50 {![ocsp_port_open [dict get $proxy port]]} else {
        fail "the test proxy did not stop"
    }
}

# The requests the proxy received: a list of dicts with request (the request
# line), headers (list of lines), body (bytes) and end (forwarded, 400, 407).
proc ocsps_proxy_requests {proxy} {
    set path [dict get $proxy log]
    if {![file exists $path]} { return {} }
    set out {}
    set cur {}
    foreach line [split [ocsp_read_file $path] "\n"] {
        set rest [string range $line [expr {[string first " " $line] + 1}] end]
        switch -- [lindex [split $line " "] 0] {
            REQUEST { set cur [dict create request $rest headers {} body {} end {}] }
            HEADER { dict lappend cur headers $rest }
            BODY { dict set cur body [binary decode hex $rest] }
            END {
                dict set cur end $rest
                lappend out $cur
                set cur {}
            }
        }
    }
    return $out
}

# The value of header NAME (any case) in a logged request, or {}.
proc ocsps_header {request name} {
    foreach h [dict get $request headers] {
        if {[regexp -nocase "^[string map {- \\-} $name]:\\s*(.*?)\\s*\$" $h -> value]} { return $value }
    }
    return {}
}

# The DER OCSP request of a GET request line (RFC 5019: URL-encoded base64
# after the last slash of the path).
proc ocsps_get_request_der {request_line} {
    set target [lindex [split $request_line " "] 1]
    set encoded [lindex [split $target /] end]
    set encoded [string map -nocase {%2B + %2F / %3D =} $encoded]
    return [binary decode base64 -strict $encoded]
}

# `openssl ocsp -reqin -req_text` of a DER request.
proc ocsps_request_text {der} {
    set path [ocsp_file ocsps-req-[clock clicks].der]
    ocsp_write_file $path $der
    set rc [catch {exec openssl ocsp -reqin $path -req_text 2>@1} out]
    file delete $path
    if {$rc} { error "openssl cannot read the OCSP request: $out" }
    return $out
}

proc ocsps_cert_serial {name} {
    string trim [lindex [split [exec openssl x509 -in [ocsp_file $name.crt] -noout -serial] =] 1]
}

# ---------------------------------------------------------------------------
# A Kubernetes-style secret volume in DIR: DIR/..<timestamp>/tls.ocsp-staple
# holds the data, DIR/..data is a symlink to the current timestamped
# directory, and DIR/tls.ocsp-staple a symlink to ..data/tls.ocsp-staple.
# Each publish writes a new timestamped directory, points a new symlink at it
# and renames that over ..data (one atomic rename(2), as the kubelet's
# atomic writer does), then removes the old directory.
proc ocsps_k8s_publish {dir data} {
    set ts ..[clock format [clock seconds] -format %Y_%m_%d_%H_%M_%S].[incr ::ocsps_k8s_seq]
    file mkdir $dir/$ts
    ocsp_write_file $dir/$ts/tls.ocsp-staple $data
    set old {}
    catch {set old [file readlink $dir/..data]}
    file delete $dir/..data_tmp
    exec ln -s $ts $dir/..data_tmp
    exec mv -T $dir/..data_tmp $dir/..data
    if {[catch {file readlink $dir/tls.ocsp-staple}]} {
        exec ln -s ..data/tls.ocsp-staple $dir/tls.ocsp-staple
    }
    if {$old ne {}} { file delete -force $dir/$old }
    return $dir/tls.ocsp-staple
}

# A response file PATH for certificate NAME made now, as the responder would
# answer in mode "openssl ARGS"; returns its bytes.
proc ocsps_response {name path args} {
    ocsp_make_response $name $path {*}$args
    return [ocsp_read_file $path]
}

# The io-threads variants: {suffix overrides} pairs.
proc ocsps_variants {} {
    return [list {} {} { (io-threads)} [ocsp_io_threads_config]]
}

# ---------------------------------------------------------------------------
# Proxy credentials as the proxy received them.

# The decoded Basic credentials ("user:password") of a logged proxy request,
# or why there are none.
proc ocsps_proxy_credentials {request} {
    set auth [ocsps_header $request Proxy-Authorization]
    if {![regexp {^Basic (\S+)$} $auth -> encoded]} { return "(no Basic credentials: '$auth')" }
    if {[catch {binary decode base64 -strict $encoded} decoded]} { return "(not base64: $encoded)" }
    return $decoded
}

# OCSP REFRESH, then the decoded credentials of the first request the proxy
# received after its first SINCE requests (default: the requests so far).
# Returns once that fetch is over, so that the next OCSP REFRESH fetches again.
proc ocsps_refresh_credentials {proxy {since {}}} {
    if {$since eq {}} { set since [llength [ocsps_proxy_requests $proxy]] }
    set done [ocsp_fetches_done]
    assert_equal OK [r ocsp refresh]
    wait_for_condition 50 100 {[llength [ocsps_proxy_requests $proxy]] > $since && [ocsp_fetches_done] > $done} else {
        fail "no fetch through the proxy after OCSP REFRESH (last_error [ocsp_info last_error])"
    }
    return [ocsps_proxy_credentials [lindex [ocsps_proxy_requests $proxy] $since]]
}

# ---------------------------------------------------------------------------
# FIFOs where files are expected. A reader blocked in open(2) of a FIFO
# waits for a writer; the tests keep a hard link to each FIFO so that they
# can always release such a reader, even after the name was replaced.

# Make a FIFO at PATH; returns the name of the hard link kept to it.
proc ocsps_mkfifo {path} {
    exec mkfifo $path
    set keep $path.fifo-keep
    file delete $keep
    exec ln $path $keep
    return $keep
}

# Remove the FIFO at PATH (if PATH still is one), then let any reader blocked
# in open(2) on it go: open the kept link for writing without blocking (no
# reader: ENXIO, nothing to do) and close it, so the reader reads EOF.
proc ocsps_fifo_release {path keep} {
    if {![catch {file type $path} type] && $type eq "fifo"} { file delete $path }
    catch {close [open $keep {WRONLY NONBLOCK}]}
    file delete $keep
}

# Whether a line of FILE matches one of the glob PATTERNS.
proc ocsps_file_has_line {file patterns} {
    if {![file exists $file]} { return 0 }
    foreach line [split [ocsp_read_file $file] "\n"] {
        foreach pattern $patterns {
            if {[string match $pattern $line]} { return 1 }
        }
    }
    return 0
}

# ---------------------------------------------------------------------------
# A server started by hand, for what start_server cannot do (it waits up to
# two minutes for a server that never gets ready). DIR gets valkey.conf,
# stdout and stderr; CONFIG is a list of directives added to a plain port,
# a TLS port, 127.0.0.1 and DIR. Returns a dict (pid port tls_port dir
# stdout stderr client) for ocsps_hand_stop; the server is registered with
# the test server like any other. Does not wait for it.
proc ocsps_hand_start {dir config} {
    set port [find_available_port $::baseport $::portcount]
    set tls_port [find_available_port $::baseport $::portcount]
    set fd [open $dir/valkey.conf w]
    foreach {k v} [concat [ocsp_tls_module_config] [list port $port tls-port $tls_port bind 127.0.0.1 dir $dir save {""}] $config] {
        puts $fd "$k $v"
    }
    close $fd
    set pid [spawn_server [file normalize src/valkey-server] $dir/valkey.conf $dir/stdout $dir/stderr {}]
    return [dict create pid $pid port $port tls_port $tls_port dir $dir \
        stdout $dir/stdout stderr $dir/stderr client {}]
}

proc ocsps_hand_stop {h} {
    if {[dict get $h client] ne {}} { catch {[dict get $h client] close} }
    kill_server [dict create pid [dict get $h pid] stdout [dict get $h stdout] \
        stderr [dict get $h stderr] skipleaks 1]
}
