# The loop of utils/fuzz-ocsp.sh: make a stapling server fetch COUNT times
# from the test responder (in its fuzz mode) and tally the outcomes.
#
#   tclsh utils/fuzz-ocsp.tcl PORT RESPONDER_PORT COUNT OUTCOMES_FILE
#
# PORT is the server's plain (non-TLS) port on 127.0.0.1, used for control
# only. Each round sets tls-ocsp-responder to the other of
# http://127.0.0.1:RESPONDER_PORT/ and http://localhost:RESPONDER_PORT/ (a
# change fetches at once) and polls INFO tls until tls_ocsp_fetches_ok +
# tls_ocsp_fetches_failed has grown; a fetch that grew fetches_ok counts as
# "accepted", one that grew fetches_failed as its tls_ocsp_last_error. One
# outcome per fetch, in order, goes to OUTCOMES_FILE. Progress lines go to
# stdout. Exit status 1 if the server went away (or stopped answering), 2 if
# fetches stopped ending.

lassign $argv port rport count outfile
set timeout_ms 15000

set sock [socket 127.0.0.1 $port]
fconfigure $sock -translation binary -buffering full

source [file join [file dirname [info script]] fuzz-resp.tcl]

# {fetches_ok fetches_failed last_error}
proc stats {} {
    set info [cmd INFO tls]
    set ok 0; set failed 0; set err {}
    regexp -line {^tls_ocsp_fetches_ok:(\d+)} $info - ok
    regexp -line {^tls_ocsp_fetches_failed:(\d+)} $info - failed
    regexp -line {^tls_ocsp_last_error:([^\r\n]*)} $info - err
    return [list $ok $failed $err]
}

set urls [list "http://127.0.0.1:$rport/" "http://localhost:$rport/"]
set out [open $outfile w]
set status 0
set start [clock milliseconds]
set last_report $start
set polls 0
set fetches 0
if {[catch {
    lassign [stats] ok failed err
    set round 0
    while {$fetches < $count} {
        set before [expr {$ok + $failed}]
        cmd CONFIG SET tls-ocsp-responder [lindex $urls [expr {$round & 1}]]
        incr round
        set t0 [clock milliseconds]
        while 1 {
            incr polls
            lassign [stats] ok2 failed2 err
            if {$ok2 + $failed2 > $before} break
            if {[clock milliseconds] - $t0 > $timeout_ms} {
                puts "fuzz: no fetch ended within [expr {$timeout_ms / 1000}] s of a responder change (round $round)"
                set status 2
                break
            }
            after 1
        }
        if {$status} break
        for {set i $ok} {$i < $ok2} {incr i} { puts $out accepted }
        for {set i $failed} {$i < $failed2} {incr i} { puts $out [expr {$err eq {} ? {failed} : $err}] }
        incr fetches [expr {$ok2 + $failed2 - $before}]
        set ok $ok2
        set failed $failed2
        set now [clock milliseconds]
        if {$now - $last_report >= 30000} {
            set last_report $now
            puts [format "fuzz: %d fetches in %.0f s (%.0f/s)" $fetches [expr {($now - $start) / 1000.0}] \
                [expr {$fetches * 1000.0 / max(1, $now - $start)}]]
            flush stdout
        }
    }
} err]} {
    puts "fuzz: $err"
    set status 1
}
close $out
set ms [expr {max(1, [clock milliseconds] - $start)}]
puts [format "fuzz: %d fetches in %.1f s: %.0f fetches/s, %.1f INFO polls a fetch" $fetches [expr {$ms / 1000.0}] \
    [expr {$fetches * 1000.0 / $ms}] [expr {$polls / double(max(1, $fetches))}]]
exit $status
