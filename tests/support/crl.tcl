# Helpers for the CRL tests (unit/tls-crl, unit/tls-crl-urls): a throw-away
# CA with real CRLs (tests/helpers/crl-pki.sh), servers checking client
# certificates against them, clients presenting the CA's certificates, and
# the test HTTP server (tests/helpers/ocsp-responder.tcl, its "file" mode)
# serving CRLs to tls-crl-urls.

source tests/support/ocsp.tcl

proc crl_setup {} {
    set ::crl_dir [file normalize [tmpdir crl-pki]]
    exec sh tests/helpers/crl-pki.sh $::crl_dir [file normalize $::tlsdir/ca.crt] 2>@1
}

proc crl_file {name} {
    file join $::crl_dir $name
}

# Put CRL file NAME at PATH the way an operator's job would: a new file
# renamed over the old one.
proc crl_install {name path} {
    file copy -force [crl_file $name] $path.new
    file rename -force $path.new $path
}

# Overrides for a server presenting certificate NAME, with CA bundle and
# protected configs; EXTRA adds directives (tls-crl-file, tls-crl-urls ...).
proc crl_base_config {{name server} {extra {}}} {
    return [concat [list \
        tls-cert-file [crl_file $name-chain.pem] \
        tls-key-file [crl_file $name.key] \
        tls-ca-cert-file [crl_file ca-bundle.crt] \
        enable-protected-configs yes] $extra]
}

proc crl_config {path {name server} {extra {}}} {
    crl_base_config $name [concat [list tls-crl-file $path] $extra]
}

proc crl_info {field {level 0}} {
    getInfoProperty [[srv $level client] info tls] tls_crl_$field
}

# A client of the server at LEVEL presenting the certificate NAME.
proc crl_client {name {level 0}} {
    set s [valkey [srv $level host] [srv $level port]]
    ::tls::import [$s channel] -cafile [crl_file ca.crt] \
        -certfile [crl_file $name.crt] -keyfile [crl_file $name.key]
    return $s
}

# PING as NAME: PONG, or the error.
proc crl_ping {name {level 0}} {
    set s [crl_client $name $level]
    catch {$s PING} e
    catch {$s close}
    return $e
}

proc crl_wait_loads {ok failed {level 0}} {
    wait_for_condition 50 100 {
        [crl_info loads_ok $level] == $ok && [crl_info loads_failed $level] == $failed
    } else {
        fail "tls_crl_loads_ok [crl_info loads_ok $level], tls_crl_loads_failed [crl_info loads_failed $level]\
              (expected $ok, $failed), last error: [crl_info last_error $level]"
    }
}

# Whether the log of the server at LEVEL has a line matching PATTERN after
# line FROM.
proc crl_log_has {pattern {from 0} {level 0}} {
    string match $pattern [exec tail -n +[expr {$from + 1}] < [srv $level stdout]]
}

# Refuse NAME's certificate until the log says why (the refusal line is
# written at most once a second): PATTERN matches the line.
proc crl_wait_refusal_logged {name pattern {from 0} {level 0}} {
    wait_for_condition 30 100 {
        [string match {*error*} [crl_ping $name $level]] && [crl_log_has $pattern $from $level]
    } else {
        fail "no log line $pattern for the refusal of $name"
    }
}

# ---------------------------------------------------------------------------
# CRLs over HTTP (tls-crl-urls).

# Start the test HTTP server on a port of its own, answering from the mode
# in the PKI directory (crl_serve); it exits by itself if this test process
# dies. PORT: a given port (to restart it where a server expects it).
proc crl_http_start {{port {}}} {
    if {$port eq {}} { set port [find_available_port $::baseport $::portcount] }
    set pid [exec tclsh tests/helpers/ocsp-responder.tcl $port $::crl_dir [pid] \
        >> [crl_file responder.out] 2>@1 &]
    wait_for_condition 100 50 {[ocsp_port_open $port]} else {
        catch {exec kill $pid}
        fail "the test HTTP server did not start on port $port"
    }
    return [dict create pid $pid port $port]
}

proc crl_http_stop {h} {
    ocsp_responder_kill [dict get $h pid] [dict get $h port]
}

# Run SCRIPT in the caller's frame with a test HTTP server in its variable
# VAR (crl_http_start); the server is stopped when SCRIPT ends, fails or
# has stopped and restarted it itself (the variable's last value).
proc crl_with_http {var script} {
    upvar 1 $var h
    set h [crl_http_start]
    try {
        uplevel 1 $script
    } finally {
        catch {crl_http_stop $h}
    }
}

# The URL of PATH on the test HTTP server H.
proc crl_url {h {path crl}} {
    return "http://127.0.0.1:[dict get $h port]/$path"
}

# What the test HTTP server answers from now on: a file of the PKI directory
# (a name ending in .pem, .der or .crl, or an absolute path), or a mode of
# ocsp-responder.tcl (http500, hang, endless-headers ...).
proc crl_serve {what} {
    if {[regexp {\.(pem|der|crl)$} $what]} {
        if {[file pathtype $what] ne "absolute"} { set what [crl_file $what] }
        set what "file $what"
    }
    ocsp_write_file [crl_file responder.mode] "$what\n"
}

# Requests the test HTTP server received so far (all of them, any port).
proc crl_http_requests {} {
    if {![file exists [crl_file responder.log]]} { return 0 }
    llength [split [string trim [ocsp_read_file [crl_file responder.log]]] "\n"]
}

# Overrides for a server checking client certificates against the CRLs of
# URLS, retrying failed fetches after RETRY seconds.
proc crl_urls_config {urls {retry 1} {extra {}}} {
    crl_base_config server [concat [list tls-auth-clients yes tls-crl-urls $urls \
        tls-ocsp-retry-delay $retry tls-ocsp-response-timeout 2] $extra]
}

proc crl_wait_fetches {ok {level 0}} {
    wait_for_condition 100 100 {[crl_info fetches_ok $level] >= $ok} else {
        fail "tls_crl_fetches_ok [crl_info fetches_ok $level] (expected $ok), tls_crl_fetches_failed\
              [crl_info fetches_failed $level], last error: [crl_info last_error $level]"
    }
}

# Wait for a failed fetch beyond FAILED whose error matches PATTERN.
proc crl_wait_failure {failed pattern {level 0}} {
    wait_for_condition 100 100 {
        [crl_info fetches_failed $level] > $failed && [string match $pattern [crl_info last_error $level]]
    } else {
        fail "tls_crl_fetches_failed [crl_info fetches_failed $level] (expected more than $failed),\
              tls_crl_last_error '[crl_info last_error $level]' (expected $pattern)"
    }
}

# The cache files in the server's dir.
proc crl_cache_files {{level 0}} {
    set dir [lindex [[srv $level client] config get dir] 1]
    lsort [glob -nocomplain -directory $dir crl-cache-*.crl]
}

# Whether the server under test is built with a sanitizer or run under
# valgrind: timing assertions are then skipped (slower by design).
proc crl_slow_build {} {
    if {$::valgrind} { return 1 }
    foreach marker {__asan_init __tsan_init} {
        if {[ocsp_server_has_config $marker]} { return 1 }
    }
    return 0
}
