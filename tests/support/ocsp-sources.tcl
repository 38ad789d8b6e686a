# Helpers for tests/unit/tls-ocsp-sources.tcl: where the staple comes from
# (the cache file, tls-ocsp-response-file, the responder through an HTTP
# proxy) and how it is asked for (GET, POST). Used together with
# tests/support/ocsp.tcl (ocsp_setup, ocsp_file, the responder and the client
# views); everything here is prefixed ocsps_ so that the two files never
# clash.

proc ocsps_read {path} {
    set fd [open $path rb]
    set data [read $fd]
    close $fd
    return $data
}

proc ocsps_write {path data} {
    set fd [open $path wb]
    puts -nonewline $fd $data
    close $fd
}

# Replace PATH atomically (a new file, then rename), as careful writers do.
proc ocsps_replace {path data} {
    set tmp $path.tmp.[pid]
    ocsps_write $tmp $data
    file rename -force $tmp $path
}

proc ocsps_port_open {port} {
    if {[catch {close [socket 127.0.0.1 $port]}]} { return 0 }
    return 1
}

# `openssl ocsp -respin` on DER for certificate NAME: the status it prints
# ("good", "revoked"), or why not.
proc ocsps_der_status {der name} {
    set path [ocsp_file ocsps-check-[clock clicks].der]
    ocsps_write $path $der
    catch {exec openssl ocsp -respin $path -issuer [ocsp_file ca.crt] -cert [ocsp_file $name.crt] \
        -CAfile [ocsp_file ca.crt] -no_nonce 2>@1} out
    file delete $path
    if {![string match "*Response verify OK*" $out]} { return "unverified: $out" }
    if {[regexp -line "^\\S+: (good|revoked|unknown)" $out -> status]} { return $status }
    return "no status for $name: $out"
}

# ---------------------------------------------------------------------------
# A little DER, enough to find the signature of an OCSPResponse.

# The TLV at POS of DATA: {tag content_start content_length}.
proc ocsps_der_tlv {data pos} {
    binary scan $data @${pos}cucu tag len
    set start [expr {$pos + 2}]
    if {$len & 0x80} {
        set n [expr {$len & 0x7f}]
        set len 0
        for {set i 0} {$i < $n} {incr i} {
            binary scan $data @[expr {$start + $i}]cu b
            set len [expr {($len << 8) | $b}]
        }
        incr start $n
    }
    return [list $tag $start $len]
}

# The TLVs directly inside the constructed TLV at POS.
proc ocsps_der_children {data pos} {
    lassign [ocsps_der_tlv $data $pos] tag start len
    set end [expr {$start + $len}]
    set out {}
    set p $start
    while {$p < $end} {
        set child [ocsps_der_tlv $data $p]
        lappend out [list $p {*}$child]
        set p [expr {[lindex $child 1] + [lindex $child 2]}]
    }
    return $out
}

# The response's signature: {content_start length} of the BIT STRING in
# OCSPResponse.responseBytes.response (BasicOCSPResponse).
proc ocsps_signature_span {der} {
    # OCSPResponse { status, [0] { ResponseBytes { type, OCTET STRING } } }
    set explicit [lindex [ocsps_der_children $der 0] 1]
    set rbytes [lindex [ocsps_der_children $der [lindex $explicit 0]] 0]
    set octets [lindex [ocsps_der_children $der [lindex $rbytes 0]] 1]
    # BasicOCSPResponse { tbsResponseData, signatureAlgorithm, signature, [0] certs }
    set basic_pos [lindex $octets 2]
    set sig [lindex [ocsps_der_children $der $basic_pos] 2]
    lassign $sig pos tag start len
    if {$tag != 0x03} { error "no signature BIT STRING where expected (tag $tag)" }
    return [list $start $len]
}

# DER with one bit flipped in the middle of its signature.
proc ocsps_tamper_signature {der} {
    lassign [ocsps_signature_span $der] start len
    set p [expr {$start + $len / 2}]
    binary scan $der @${p}cu b
    return [string replace $der $p $p [binary format cu [expr {$b ^ 0x01}]]]
}

# ---------------------------------------------------------------------------
# The test responder's log: "<time> <mode> <method>" per request.

# "mode method" of each request after the first SKIP ones.
proc ocsps_responder_log_since {skip} {
    set path [ocsp_file responder.log]
    if {![file exists $path]} { return {} }
    set out {}
    foreach line [lrange [split [string trim [ocsps_read $path]] "\n"] $skip end] {
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
    wait_for_condition 100 50 {[ocsps_port_open $port]} else {
        catch {exec kill $pid}
        fail "the test proxy did not start on port $port"
    }
    return [dict create pid $pid port $port log $log auth $auth]
}

proc ocsps_proxy_stop {proxy} {
    catch {exec kill [dict get $proxy pid]}
    wait_for_condition 100 50 {![ocsps_port_open [dict get $proxy port]]} else {
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
    foreach line [split [ocsps_read $path] "\n"] {
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
    ocsps_write $path $der
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
    ocsps_write $dir/$ts/tls.ocsp-staple $data
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
    return [ocsps_read $path]
}

# Count of server log lines matching the grep (basic) regular expression.
proc ocsps_log_count {pattern} {
    count_log_message 0 $pattern
}

# The io-threads variants: {suffix overrides} pairs.
proc ocsps_variants {} {
    return [list {} {} { (io-threads)} {io-threads 2 io-threads-always-active yes}]
}
