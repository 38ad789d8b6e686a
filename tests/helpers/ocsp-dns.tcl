# A fake DNS server over TCP, for the name resolution tests: the server under
# test runs in a mount namespace whose /etc/resolv.conf names only ADDRESS,
# with "options use-vc", so its lookups come here and never reach the
# machine's real resolvers.
#
#   tclsh ocsp-dns.tcl ADDRESS LOGFILE ?PARENT_PID?
#
# Listens on ADDRESS port 53 (TCP; root needed). A query for a name with a
# label "hang" (ocsp.hang.test) is read and never answered, the connection
# kept open; any other name gets NXDOMAIN at once. Each query is appended to
# LOGFILE as "<unix time> <name> <qtype> hang|nxdomain". Prints
# "ocsp-dns: listening ..." once ready, or exits 1 if it cannot listen. With
# PARENT_PID it exits once that process is gone.

lassign $argv address logfile parent

proc log_query {name qtype what} {
    set fd [open $::logfile a]
    puts $fd "[clock seconds] $name $qtype $what"
    close $fd
}

proc accept {chan addr port} {
    fconfigure $chan -translation binary -blocking 0 -buffering full
    set ::buf($chan) {}
    fileevent $chan readable [list on_data $chan]
}

proc drop {chan} {
    unset -nocomplain ::buf($chan)
    catch {close $chan}
}

# The query name and type of a DNS message (after its 12-byte header).
proc question {msg} {
    set pos 12
    set labels {}
    while {$pos < [string length $msg]} {
        binary scan $msg @${pos}cu n
        incr pos
        if {$n == 0 || $n >= 0xc0} break
        lappend labels [string range $msg $pos [expr {$pos + $n - 1}]]
        incr pos $n
    }
    set qtype ?
    binary scan $msg @${pos}Su qtype
    return [list [string tolower [join $labels .]] $qtype [expr {$pos + 4}]]
}

proc on_data {chan} {
    if {[catch {read $chan} data]} { drop $chan; return }
    append ::buf($chan) $data
    # Messages are framed by a two-byte length (RFC 1035, 4.2.2).
    while {[string length $::buf($chan)] >= 2} {
        binary scan $::buf($chan) Su len
        if {[string length $::buf($chan)] < $len + 2} break
        set msg [string range $::buf($chan) 2 [expr {$len + 1}]]
        set ::buf($chan) [string range $::buf($chan) [expr {$len + 2}] end]
        if {[string length $msg] < 12} { drop $chan; return }
        lassign [question $msg] name qtype qend
        if {"hang" in [split $name .]} {
            log_query $name $qtype hang
            continue
        }
        log_query $name $qtype nxdomain
        # Same ID and question; QR, RD as asked, RA, RCODE 3 (NXDOMAIN).
        binary scan $msg @2Su flags
        set flags [expr {0x8000 | ($flags & 0x7900) | 0x0080 | 3}]
        set reply [string range $msg 0 1][binary format SuSuSuSuSu $flags 1 0 0 0][string range $msg 12 [expr {$qend - 1}]]
        if {[catch {puts -nonewline $chan [binary format Su [string length $reply]]$reply; flush $chan}]} {
            drop $chan
            return
        }
    }
    if {[eof $chan]} { drop $chan }
}

if {[catch {socket -server accept -myaddr $address 53} err]} {
    puts "ocsp-dns: cannot listen on $address:53: $err"
    exit 1
}
proc watch_parent {} {
    if {[catch {exec kill -0 $::parent}]} { exit 0 }
    after 1000 watch_parent
}
if {$parent ne {} && $parent ne 0} { watch_parent }
puts "ocsp-dns: listening on $address:53"
flush stdout
vwait forever
