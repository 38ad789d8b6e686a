# The CRL loop of utils/fuzz-ocsp.sh: mutated DER CRLs through a server's
# tls-crl-urls and tls-crl-file, and the CRL in force checked after each
# batch.
#
#   tclsh utils/fuzz-crl.tcl PORT TLS_PORT RESPONDER_PORT COUNT OUTCOMES_FILE \
#         PKI_DIR CRL_DIR WORK_DIR CLI SEED
#
# PORT is the server's plain port on 127.0.0.1 (control); TLS_PORT its TLS
# port, which the clients alice (listed by every base CRL) and bob (listed
# by none) of CRL_DIR (tests/helpers/crl-pki.sh) connect to with CLI.
# PKI_DIR is the responder's (responder.mode). Four phases of COUNT / 4
# rounds, one base CRL each (WORK_DIR/crl-alice.der: one entry;
# WORK_DIR/crl-many.der: a few hundred):
#
#   url   tls-crl-urls http://127.0.0.1:RESPONDER_PORT/crl-N, the responder
#         in its fuzz mode on the base; a round is OCSP REFRESH (with
#         stapling off it refreshes the CRLs alone) and one fetch, counted
#         by tls_crl_fetches_ok / _failed.
#   file  tls-crl-file WORK_DIR/crl-file-N.der; a round fetches a mutant from
#         the responder, renames it over the file and sends OCSP REFRESH (the
#         file is read again), counted by tls_crl_loads_ok / _failed. The
#         last round of each batch leaves it to the file watcher (a stat a
#         second) instead.
#
# Each phase starts from the real base (responder mode "file"), which must
# be fetched or loaded; after every batch of BATCH rounds the server must
# answer PING, refuse alice and accept bob: a mutant never replaces the CRL
# in force with a broken one. One outcome a round ("accepted", or
# tls_crl_last_error without its source, issuer names and numbers) goes to
# OUTCOMES_FILE, in the order of the responder's mutants. Exit status 1 if the server went away or a check failed, 2
# if rounds stopped ending.

lassign $argv port tls_port rport count outfile pki crl work cli seed
set timeout_ms 15000
set batch 100

set sock [socket 127.0.0.1 $port]
fconfigure $sock -translation binary -buffering full

source [file join [file dirname [info script]] fuzz-resp.tcl]

# {ok failed last_error} of the URLs (fetches) or the file (loads).
proc stats {kind} {
    set info [cmd INFO tls]
    set ok 0; set failed 0; set err {}
    set what [expr {$kind eq "url" ? "fetches" : "loads"}]
    regexp -line "^tls_crl_${what}_ok:(\\d+)" $info - ok
    regexp -line "^tls_crl_${what}_failed:(\\d+)" $info - failed
    regexp -line {^tls_crl_last_error:([^\r\n]*)} $info - err
    return [list $ok $failed $err]
}

# The reason, without its source, names or numbers: one word for the tally.
proc reason {err} {
    set i [string first ": " $err]
    if {$i >= 0} { set err [string range $err [expr {$i + 2}] end] }
    regsub {^refusing what it answered: } $err {} err
    regsub -all {\(issuer [^)]*\)} $err {} err
    regsub -all {\([^)]*\)} $err {} err
    regsub -all {\m[0-9]+\M} $err N err
    regsub -all {[^A-Za-z0-9]+} [string trim $err] _ err
    if {$err eq {}} { set err failed }
    return [string range $err 0 79]
}

proc set_mode {line} {
    set fd [open [file join $::pki responder.mode.new] w]
    puts $fd $line
    close $fd
    file rename -force [file join $::pki responder.mode.new] [file join $::pki responder.mode]
}

# A mutant from the responder in its fuzz mode (it logs which).
proc fetch_mutant {} {
    set s [socket 127.0.0.1 $::rport]
    fconfigure $s -translation binary -buffering full
    puts -nonewline $s "GET /crl HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    flush $s
    set data [read $s]
    close $s
    set i [string first "\r\n\r\n" $data]
    if {$i < 0} { error "no HTTP answer from the responder" }
    return [string range $data [expr {$i + 4}] end]
}

proc install {path data} {
    set fd [open $path.new wb]
    puts -nonewline $fd $data
    close $fd
    file rename -force $path.new $path
}

# PING over TLS as NAME: PONG, or what the client said.
proc client_ping {name} {
    catch {exec env ASAN_OPTIONS=detect_leaks=0 $::cli -h 127.0.0.1 -p $::tls_port --tls \
        --cacert [file join $::pki ca.crt] --cert [file join $::crl $name.crt] \
        --key [file join $::crl $name.key] ping 2>@1} out
    return [string trim $out]
}

proc check {where} {
    incr ::checks
    if {[set r [cmd PING]] ne "PONG"} { error "$where: PING answered $r" }
    if {[set r [client_ping bob]] ne "PONG"} { error "$where: bob (listed by no CRL) was refused: $r" }
    if {[set r [client_ping alice]] eq "PONG"} { error "$where: alice (listed by the CRL in force) was accepted" }
}

# Wait for a round to end: ok + failed above before. Returns the new stats.
proc wait_round {kind before t0} {
    while 1 {
        incr ::polls
        set s [stats $kind]
        lassign $s ok failed
        if {$ok + $failed > $before} { return $s }
        if {[clock milliseconds] - $t0 > $::timeout_ms} {
            set ::stalled 1
            error "no [expr {$kind eq "url" ? "fetch" : "load"}] ended within [expr {$::timeout_ms / 1000}] s"
        }
        after 1
    }
}

# One outcome a round, so that rounds pair with the responder's mutants. A
# file round may see two loads: when the watcher's stat (once a second)
# falls between the rename and OCSP REFRESH, both load (the same file);
# counted apart, as extra loads.
proc record {old new} {
    lassign $old ok failed
    lassign $new ok2 failed2 err
    puts $::out [expr {$ok2 > $ok ? "accepted" : [reason $err]}]
    incr ::rounds_ended
    incr ::extra_loads [expr {$ok2 + $failed2 - $ok - $failed - 1}]
}

proc phase {n kind base rounds} {
    set t0 [clock milliseconds]
    set_mode "file $base"
    set s [stats $kind]
    set before [expr {[lindex $s 0] + [lindex $s 1]}]
    if {$kind eq "url"} {
        cmd CONFIG SET tls-crl-urls "http://127.0.0.1:$::rport/crl-$n"
        cmd CONFIG SET tls-crl-file ""
    } else {
        set path [file join $::work crl-file-$n.der]
        file copy -force $base $path
        cmd CONFIG SET tls-crl-file $path
        cmd CONFIG SET tls-crl-urls ""
    }
    set ok_before [lindex $s 0]
    set s [wait_round $kind $before [clock milliseconds]]
    if {[lindex $s 0] <= $ok_before} {
        error "phase $n ($kind): the real base [file tail $base] was not accepted: [lindex $s 2]"
    }
    check "phase $n ($kind) start"
    set_mode "fuzz $base [expr {$::seed + $n}]"
    for {set i 1} {$i <= $rounds} {incr i} {
        set before_stats $s
        set before [expr {[lindex $s 0] + [lindex $s 1]}]
        set watched [expr {$kind eq "file" && $i % $::batch == 0}]
        if {$kind eq "file"} { install $path [fetch_mutant] }
        if {$watched} {
            incr ::watched
        } else {
            cmd OCSP REFRESH
        }
        set s [wait_round $kind $before [clock milliseconds]]
        if {$kind eq "file"} {
            # The second load of a round that had two starts as the first
            # ends: give it a moment, so that it counts here, not in the
            # next round.
            after 10
            set s [stats $kind]
        }
        record $before_stats $s
        if {$i % $::batch == 0 || $i == $rounds} { check "phase $n ($kind), round $i" }
    }
    puts [format "fuzz-crl: phase %d (%s, %s): %d rounds in %.1f s" $n $kind [file tail $base] $rounds \
        [expr {([clock milliseconds] - $t0) / 1000.0}]]
    flush stdout
}

set out [open $outfile w]
set status 0
set start [clock milliseconds]
set polls 0
set checks 0
set watched 0
set rounds_ended 0
set extra_loads 0
set stalled 0
if {[catch {
    cmd CONFIG SET tls-ocsp-stapling no
    set quarter [expr {$count / 4}]
    set n 0
    foreach {kind base} [list url [file join $work crl-alice.der] url [file join $work crl-many.der] \
                              file [file join $work crl-alice.der] file [file join $work crl-many.der]] {
        incr n
        set rounds [expr {$n < 4 ? $quarter : $count - 3 * $quarter}]
        if {$rounds > 0} { phase $n $kind $base $rounds }
    }
} err]} {
    puts "fuzz-crl: $err"
    set status [expr {$stalled ? 2 : 1}]
}
close $out
set ms [expr {max(1, [clock milliseconds] - $start)}]
puts [format "fuzz-crl: %d rounds in %.1f s: %.0f rounds/s, %.1f INFO polls a round, %d checks of the CRL in force, %d file rounds left to the watcher, %d extra loads" \
    $rounds_ended [expr {$ms / 1000.0}] [expr {$rounds_ended * 1000.0 / $ms}] \
    [expr {$polls / double(max(1, $rounds_ended))}] $checks $watched $extra_loads]
exit $status
