# An OCSP responder for tests, on 127.0.0.1 only.
#
#   tclsh ocsp-responder.tcl PORT PKI_DIR ?PARENT_PID?
#   tclsh ocsp-responder.tcl answer PKI_DIR REQUEST_FILE RESPONSE_FILE ?OPTIONS?
#
# The second form answers one DER request file, as the "openssl" mode below
# would with OPTIONS, and exits: tests use it to prepare responses.
#
# With PARENT_PID it exits by itself once that process is gone, so a test
# run that dies on an exception leaves no responder behind.
#
# Real answers come from OpenSSL's own responder, `openssl ocsp` run on each
# request against PKI_DIR/index.txt (its -port mode would listen on every
# interface, so the HTTP side is ours). How to answer is read from
# PKI_DIR/responder.mode before every request, so a test switches behaviour
# by writing that file; no file means "openssl". Modes, one line:
#
#   openssl ?-signer NAME? ?-nmin N? ?-faketime SPEC? ?-type CT?
#                   a real response, signed by NAME.crt/.key (default signer),
#                   valid N minutes (default 60; "none": no nextUpdate at
#                   all), made at faketime's SPEC
#                   (for example -50s: thisUpdate lies in the past), sent with
#                   Content-Type CT (default application/ocsp-response)
#   file PATH       the bytes of PATH as a proper OCSP HTTP response
#   garbage         random bytes, no HTTP at all
#   http500         HTTP 500 with a text body
#   oversized       HTTP 200 with a 100 KiB body
#   truncated       a real response cut in half, with the full Content-Length
#   hang            read the request, then never answer
#   noget           HTTP 405 to a GET, a real answer to a POST
#
# Every request is appended to PKI_DIR/responder.log as
# "<unix time> <mode> <method>".

set dir [lindex $argv 1]
set ::hung {}

proc read_file {path} {
    set fd [open $path rb]
    set data [read $fd]
    close $fd
    return $data
}

proc mode_line {} {
    set path [file join $::dir responder.mode]
    if {![file exists $path]} { return openssl }
    set line [string trim [read_file $path]]
    if {$line eq {}} { return openssl }
    return $line
}

proc log_request {mode method} {
    set fd [open [file join $::dir responder.log] a]
    puts $fd "[clock seconds] [lindex $mode 0] $method"
    close $fd
}

# The DER request of a GET (RFC 5019): the URL-encoded base64 after the
# last slash of the path.
proc get_request_body {target} {
    set encoded [lindex [split $target /] end]
    foreach {from to} {%2B + %2F / %3D = %2b + %2f / %3d =} {
        set encoded [string map [list $from $to] $encoded]
    }
    if {[catch {binary decode base64 $encoded} der]} { return {} }
    return $der
}

# Run openssl ocsp on the request body; returns the DER response.
proc openssl_answer {body opts} {
    set signer signer
    set nmin 60
    set faketime {}
    foreach {k v} $opts {
        switch -- $k {
            -signer { set signer $v }
            -nmin { set nmin $v }
            -faketime { set faketime $v }
        }
    }
    set tag [pid].[clock clicks]
    set req [file join $::dir req.$tag.der]
    set resp [file join $::dir resp.$tag.der]
    set fd [open $req wb]
    puts -nonewline $fd $body
    close $fd
    set cmd [list openssl ocsp -index [file join $::dir index.txt] -CA [file join $::dir ca.crt] \
        -rsigner [file join $::dir $signer.crt] -rkey [file join $::dir $signer.key] \
        -reqin $req -respout $resp]
    if {$nmin ne "none"} { lappend cmd -nmin $nmin }
    if {$faketime ne {}} { set cmd [linsert $cmd 0 faketime -f $faketime] }
    exec {*}$cmd >/dev/null 2>@1
    set der [read_file $resp]
    file delete $req $resp
    return $der
}

proc reply {chan status ctype body {length {}}} {
    if {$length eq {}} { set length [string length $body] }
    puts -nonewline $chan "HTTP/1.0 $status\r\nContent-Type: $ctype\r\nContent-Length: $length\r\nConnection: close\r\n\r\n"
    puts -nonewline $chan $body
}

proc serve {chan addr port} {
    if {[catch {
        fconfigure $chan -translation binary -blocking 1 -buffering full
        set length 0
        set request_line {}
        while {[gets $chan line] >= 0} {
            set line [string trimright $line "\r"]
            if {$line eq {}} break
            if {$request_line eq {}} { set request_line $line }
            if {[regexp -nocase {^content-length:\s*(\d+)} $line -> n]} { set length $n }
        }
        set method [lindex $request_line 0]
        if {$method eq "GET"} {
            set body [get_request_body [lindex $request_line 1]]
        } else {
            set body [read $chan $length]
        }
        set mode [mode_line]
        log_request $mode $method
        set opts [lrange $mode 1 end]
        if {[lindex $mode 0] eq "noget"} {
            if {$method eq "GET"} {
                set mode {http405}
            } else {
                set mode {openssl}
            }
        }
        switch -- [lindex $mode 0] {
            openssl {
                set ctype application/ocsp-response
                if {[dict exists $opts -type]} { set ctype [dict get $opts -type] }
                reply $chan "200 OK" $ctype [openssl_answer $body $opts]
            }
            file {
                reply $chan "200 OK" application/ocsp-response [read_file [lindex $opts 0]]
            }
            garbage {
                set junk {}
                for {set i 0} {$i < 20000} {incr i} { append junk [format %c [expr {int(rand() * 256)}]] }
                puts -nonewline $chan $junk
            }
            http405 {
                reply $chan "405 Method Not Allowed" text/plain "use POST\n"
            }
            http500 {
                reply $chan "500 Internal Server Error" text/plain "responder is broken\n"
            }
            oversized {
                reply $chan "200 OK" application/ocsp-response [string repeat "\x30" [expr {100 * 1024}]]
            }
            truncated {
                set der [openssl_answer $body {}]
                set half [string range $der 0 [expr {[string length $der] / 2}]]
                reply $chan "200 OK" application/ocsp-response $half [string length $der]
            }
            hang {
                # Keep the connection open and silent until we are killed.
                lappend ::hung $chan
                set chan {}
            }
        }
    } err]} {
        puts stderr "ocsp-responder: $err"
    }
    if {$chan ne {}} { catch {close $chan} }
}

if {[lindex $argv 0] eq "answer"} {
    lassign $argv - - request response
    set fd [open $response wb]
    puts -nonewline $fd [openssl_answer [read_file $request] [lrange $argv 4 end]]
    close $fd
    exit 0
}

set port [lindex $argv 0]
set parent [lindex $argv 2]
proc watch_parent {} {
    if {[catch {exec kill -0 $::parent}]} { exit 0 }
    after 1000 watch_parent
}
if {$parent ne {}} { watch_parent }

socket -server serve -myaddr 127.0.0.1 $port
puts "ocsp-responder: listening on 127.0.0.1:$port"
flush stdout
vwait forever
