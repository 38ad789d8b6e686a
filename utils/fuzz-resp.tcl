# The control connection of the fuzz loops (utils/fuzz-ocsp.tcl,
# utils/fuzz-crl.tcl): RESP over the plain socket in ::sock, opened by the
# caller. `cmd` sends one command and returns its reply; an error reply
# raises an error, a closed connection too.

proc reply {} {
    set line [gets $::sock]
    if {[eof $::sock]} { error "the server closed the connection" }
    set line [string trimright $line "\r"]
    set v [string range $line 1 end]
    switch -- [string index $line 0] {
        + - : { return $v }
        - { error "server error: $v" }
        $ {
            if {$v < 0} { return {} }
            return [string range [read $::sock [expr {$v + 2}]] 0 end-2]
        }
        * {
            set l {}
            for {set i 0} {$i < $v} {incr i} { lappend l [reply] }
            return $l
        }
        default { error "bad reply: $line" }
    }
}

proc cmd {args} {
    set out "*[llength $args]\r\n"
    foreach a $args { append out "\$[string length $a]\r\n$a\r\n" }
    puts -nonewline $::sock $out
    flush $::sock
    return [reply]
}
