# A tiny HTTP forward proxy for the OCSP tests, on 127.0.0.1 only.
#
#   tclsh ocsp-proxy.tcl PORT LOG UPSTREAM_PORT ?PARENT_PID? ?AUTH?
#
# Accepts requests in proxy form ("GET http://host:port/path HTTP/1.0",
# absolute URL), logs each one to LOG and forwards it to 127.0.0.1 at
# UPSTREAM_PORT, whatever host the URL names: the proxy never resolves a
# name, so tests may use names that must not resolve. The request line is
# rewritten to origin form ("GET /path HTTP/1.0"), Proxy-Authorization is
# dropped, everything else (headers, body) is passed on as is, and the
# upstream answer is relayed unchanged until the upstream closes.
#
# A request line that is not in absolute form gets "400 Bad Request". With
# AUTH (the expected base64 of "user:password"), a request without
# "Proxy-Authorization: Basic AUTH" gets "407 Proxy Authentication Required".
#
# LOG gets, per request, one line "REQUEST <request line>", one line
# "HEADER <header line>" per header, "BODY <hex>" when there is a body, then
# "END <status>" (forwarded, 400 or 407). With PARENT_PID (0: none) the
# proxy exits once that process is gone. It prints "ocsp-proxy: listening
# on 127.0.0.1 port PORT" once ready.

lassign $argv port log upstream_port parent auth

proc log_lines {lines} {
    set fd [open $::log a]
    fconfigure $fd -translation lf
    foreach line $lines { puts $fd $line }
    close $fd
}

proc drop {args} {
    foreach chan $args { catch {close $chan} }
}

proc accept {chan addr cport} {
    fconfigure $chan -translation binary -blocking 0
    set ::inbuf($chan) {}
    fileevent $chan readable [list on_data $chan]
}

proc reply {chan status} {
    puts -nonewline $chan "HTTP/1.0 $status\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    flush $chan
    drop $chan
}

proc on_data {chan} {
    if {[catch {read $chan} data]} { unset ::inbuf($chan); drop $chan; return }
    append ::inbuf($chan) $data
    set buf $::inbuf($chan)
    set hend [string first "\r\n\r\n" $buf]
    if {$hend < 0} {
        if {[eof $chan] || [string length $buf] > 65536} { unset ::inbuf($chan); drop $chan }
        return
    }
    set head [split [string range $buf 0 [expr {$hend - 1}]] "\n"]
    set headers {}
    set length 0
    foreach line [lrange $head 1 end] {
        set line [string trimright $line "\r"]
        lappend headers $line
        if {[regexp -nocase {^content-length:\s*(\d+)} $line -> n]} { set length $n }
    }
    set body [string range $buf [expr {$hend + 4}] end]
    if {[string length $body] < $length} {
        if {[eof $chan]} { unset ::inbuf($chan); drop $chan }
        return
    }
    fileevent $chan readable {}
    unset ::inbuf($chan)
    set body [string range $body 0 [expr {$length - 1}]]
    set request_line [string trimright [lindex $head 0] "\r"]

    set lines [list "REQUEST $request_line"]
    foreach h $headers { lappend lines "HEADER $h" }
    if {$body ne {}} { lappend lines "BODY [binary encode hex $body]" }

    # Origin form for the upstream: METHOD /path HTTP/1.0.
    if {![regexp {^(\S+) http://[^/\s]+(/\S*)? (HTTP/1\.[01])$} $request_line -> method path version]} {
        lappend lines "END 400"
        log_lines $lines
        reply $chan "400 Bad Request"
        return
    }
    if {$path eq {}} { set path / }
    if {$::auth ne {}} {
        set ok 0
        foreach h $headers {
            if {[regexp -nocase {^proxy-authorization:\s*Basic\s+(\S+)\s*$} $h -> given] && $given eq $::auth} {
                set ok 1
            }
        }
        if {!$ok} {
            lappend lines "END 407"
            log_lines $lines
            reply $chan "407 Proxy Authentication Required"
            return
        }
    }
    lappend lines "END forwarded"
    log_lines $lines

    set out "$method $path $version\r\n"
    foreach h $headers {
        if {![regexp -nocase {^proxy-authorization:} $h]} { append out "$h\r\n" }
    }
    append out "\r\n$body"
    if {[catch {socket 127.0.0.1 $::upstream_port} up]} {
        reply $chan "502 Bad Gateway"
        return
    }
    fconfigure $up -translation binary -blocking 0
    puts -nonewline $up $out
    flush $up
    fconfigure $chan -blocking 1
    fcopy $up $chan -command [list relayed $up $chan]
}

proc relayed {up chan args} {
    drop $up $chan
}

proc watch_parent {} {
    if {[catch {exec kill -0 $::parent}]} { exit 0 }
    after 1000 watch_parent
}
if {$parent ne {} && $parent ne 0} { watch_parent }

socket -server accept -myaddr 127.0.0.1 $port
puts "ocsp-proxy: listening on 127.0.0.1 port $port"
flush stdout
vwait forever
