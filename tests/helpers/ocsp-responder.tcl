# An OCSP responder for tests, listening on 127.0.0.1 (and/or ::1) only.
#
#   tclsh ocsp-responder.tcl PORT PKI_DIR ?PARENT_PID? ?ADDRESS ...?
#   tclsh ocsp-responder.tcl answer PKI_DIR REQUEST_FILE RESPONSE_FILE ?MODE?
#
# The first form serves HTTP on PORT at each ADDRESS (default 127.0.0.1;
# give "127.0.0.1 ::1" for both). With PARENT_PID (0: none) it exits by
# itself once that process is gone, so a test run that dies on an exception
# leaves no responder behind. It prints "ocsp-responder: listening ..." once
# ready. The second form answers one DER request file as MODE (default
# "openssl"; "openssl ..." options or "padded ...") would, writes the DER
# response and exits: tests use it to prepare responses.
#
# Real answers come from OpenSSL's own responder, `openssl ocsp` run on each
# request against PKI_DIR/index.txt (its -port mode would listen on every
# interface, so the HTTP side is ours). How to answer is read from
# PKI_DIR/responder.mode before every request, so a test switches behaviour
# by writing that file; no file means "openssl". Modes, one line:
#
#   openssl ?-signer NAME? ?-nmin N? ?-this-offset S? ?-next-offset S? ?-type CT?
#                   a real response, signed by NAME.crt/.key (default signer;
#                   "ca" signs with the CA itself), valid N minutes (default
#                   60; "none": no nextUpdate at all), sent with Content-Type
#                   CT (default application/ocsp-response). With -this-offset
#                   and/or -next-offset the response is then retimed: its
#                   thisUpdate (and producedAt) set to now + S seconds, its
#                   nextUpdate to now + S seconds ("none" drops it), and
#                   re-signed with the signer's key (tests/helpers/ocsp-der.tcl).
#                   -pad-signed N adds a non-critical response extension of N
#                   bytes to the signed data (and re-signs): a response that
#                   stays large whatever is trimmed.
#   padded SIZE ?-signer NAME?
#                   a real response whose unsigned certs field is padded
#                   (copies of the CA certificate and one filler certificate
#                   of tuned size) so that the whole OCSPResponse is exactly
#                   SIZE bytes (SIZE at least ~3000 more than the plain answer)
#   file PATH       the bytes of PATH as a proper OCSP HTTP response
#   fuzz PATH ?SEED?
#                   a mutated copy of the DER in PATH as a proper OCSP HTTP
#                   response: one mutation per request (byte flips,
#                   truncation, insertion, deletion, TLV length or tag edits,
#                   or none), chosen by a generator seeded with SEED (default:
#                   the clock) when the mode line is first seen; no process
#                   is run per request. The mutation is logged (with
#                   ",unchanged" when the bytes came out as they were).
#   garbage         random bytes, no HTTP at all
#   http500         HTTP 500 with a text body
#   oversized       HTTP 200 with a 100 KiB body
#   truncated       a real response cut in half, with the full Content-Length
#   hang            read the request, then never answer
#   noget           HTTP 405 to a GET, a real answer to a POST
#   endless-headers "HTTP/1.0 200 OK", then ~100-byte header lines as fast as
#                   the peer reads them, never the blank line, for up to 30 s
#   slow-header     "HTTP/1.0 200 OK", then one header line sent one byte a
#                   second, never ending (for up to 120 s)
#
# The responder is event driven (non-blocking reads and writes), so one
# endless or hanging connection never delays the others.
#
# Fuzzing a server, for example:
#   tclsh ocsp-responder.tcl answer PKI_DIR req.der base.der      (a good base)
#   tclsh ocsp-responder.tcl 8888 PKI_DIR 0 &
#   echo "fuzz $PWD/base.der 42" > PKI_DIR/responder.mode
# then make the server fetch again and again (OCSP REFRESH, or alternate
# tls-ocsp-responder); PKI_DIR/responder.log says which mutation each fetch
# got. The same SEED and request order give the same mutations.
#
# Every request is appended to PKI_DIR/responder.log as
# "<unix time> <mode> <method>", followed by " <mutation>" in fuzz mode.

set helpers_dir [file dirname [file normalize [info script]]]
source [file join $helpers_dir ocsp-der.tcl]

set dir [lindex $argv 1]

proc read_file {path} {
    set fd [open $path rb]
    set data [read $fd]
    close $fd
    return $data
}

proc write_file {path data} {
    set fd [open $path wb]
    puts -nonewline $fd $data
    close $fd
}

proc mode_line {} {
    set path [file join $::dir responder.mode]
    if {![file exists $path]} { return openssl }
    set line [string trim [read_file $path]]
    if {$line eq {}} { return openssl }
    return $line
}

proc log_request {mode method {detail {}}} {
    set fd [open [file join $::dir responder.log] a]
    set line "[clock seconds] [lindex $mode 0] $method"
    if {$detail ne {}} { append line " $detail" }
    puts $fd $line
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

proc scratch_name {what} {
    return [file join $::dir $what.[pid].[clock clicks]]
}

# Run openssl ocsp on the request body; returns the DER response.
proc openssl_answer {body opts} {
    set signer signer
    set nmin 60
    set this_offset {}
    set next_offset {}
    set pad 0
    foreach {k v} $opts {
        switch -- $k {
            -signer { set signer $v }
            -nmin { set nmin $v }
            -this-offset { set this_offset $v }
            -next-offset { set next_offset $v }
            -pad-signed { set pad $v }
            -type {}
            default { error "unknown openssl mode option $k" }
        }
    }
    set req [scratch_name req].der
    set resp [scratch_name resp].der
    write_file $req $body
    set cmd [list openssl ocsp -index [file join $::dir index.txt] -CA [file join $::dir ca.crt] \
        -rsigner [file join $::dir $signer.crt] -rkey [file join $::dir $signer.key] \
        -reqin $req -respout $resp]
    if {$nmin ne "none"} { lappend cmd -nmin $nmin }
    exec {*}$cmd >/dev/null 2>@1
    set der [read_file $resp]
    file delete $req $resp
    if {$this_offset ne {} || $next_offset ne {} || $pad > 0} {
        set now [clock seconds]
        set this {}
        set next {}
        if {$this_offset ne {}} { set this [expr {$now + $this_offset}] }
        if {$next_offset eq "none"} {
            set next none
        } elseif {$next_offset ne {}} {
            set next [expr {$now + $next_offset}]
        }
        set der [ocsp_der_retime $der $this $next $this [file join $::dir $signer.key] $::dir $pad]
    }
    return $der
}

# ---------------------------------------------------------------------------
# padded SIZE: the real answer with its certs field grown to make SIZE bytes.

# The DER length of RESP with CERTS_LEN bytes of certificates in its certs
# field (placeholder bytes: lengths are all that matters).
proc padded_total {resp certs_len} {
    set basic [ocsp_der_basic $resp]
    set parts [lrange [lindex $basic 2] 0 2]
    set filler [string repeat "\x00" $certs_len]
    set content [der_encode $parts][der_tlv 0xa0 [der_tlv 0x30 $filler]]
    # OCSPResponse { status, [0] { SEQ { OID, OCTET STRING { BasicOCSPResponse } } } }
    set outer [der_decode1 $resp]
    set oid [der_encode_node [lindex $outer 2 1 2 0 2 0]]
    set octets [der_tlv 0x04 [der_tlv 0x30 $content]]
    return [string length [der_tlv 0x30 [der_encode_node [lindex $outer 2 0]][der_tlv 0xa0 [der_tlv 0x30 $oid$octets]]]]
}

# A self-signed filler certificate of exactly SIZE DER bytes (its nsComment
# extension is tuned to the length); cached in PKI_DIR.
proc filler_cert {size} {
    set path [file join $::dir filler-$size.der]
    if {[file exists $path]} { return [read_file $path] }
    set key [file join $::dir filler.key]
    if {![file exists $key]} {
        exec openssl genrsa -out $key.tmp 2048 2>/dev/null
        file rename -force $key.tmp $key
    }
    # Beyond 300 bytes of comment every enclosing length has the same form,
    # so the certificate grows byte for byte with the comment.
    set comment [expr {$size - 900}]
    for {set try 0} {$try < 6} {incr try} {
        if {$comment < 300} { error "filler certificate of $size bytes is too small" }
        set out [scratch_name filler].der
        exec openssl req -x509 -new -key $key -subj "/O=Valkey OCSP Test/CN=Filler $size" -days 30 \
            -addext "nsComment=[string repeat x $comment]" -outform DER -out $out 2>@1
        set der [read_file $out]
        file delete $out
        set got [string length $der]
        if {$got == $size} {
            write_file $path.tmp $der
            file rename -force $path.tmp $path
            return $der
        }
        incr comment [expr {$size - $got}]
    }
    error "could not make a filler certificate of $size bytes"
}

proc padded_answer {body opts} {
    set size [lindex $opts 0]
    set resp [openssl_answer $body [lrange $opts 1 end]]
    set certs [ocsp_der_certs $resp]
    set have 0
    foreach c $certs { incr have [string length $c] }
    # The certificate bytes that make the whole response SIZE bytes long.
    set want [expr {$have + $size - [padded_total $resp $have]}]
    for {set i 0} {$i < 8} {incr i} {
        set total [padded_total $resp $want]
        if {$total == $size} break
        incr want [expr {$size - $total}]
    }
    if {$total != $size} { error "cannot pad the response to exactly $size bytes" }
    set room [expr {$want - $have}]
    # Copies of the CA certificate, then one filler of 2000 to ~3000 bytes.
    set ca [der_from_pem_file [file join $::dir ca.crt]]
    while {$room - [string length $ca] >= 2000} {
        lappend certs $ca
        incr room -[string length $ca]
    }
    lappend certs [filler_cert $room]
    set padded [ocsp_der_with_certs $resp $certs]
    if {[string length $padded] != $size} {
        error "padded response is [string length $padded] bytes, not $size"
    }
    return $padded
}

# ---------------------------------------------------------------------------
# fuzz PATH ?SEED?: mutated copies of one DER response.

set ::fuzz_key {}

proc fuzz_rand {n} {
    return [expr {int(rand() * $n)}]
}

proc fuzz_bytes {n} {
    set out {}
    for {set i 0} {$i < $n} {incr i} { append out [binary format cu [fuzz_rand 256]] }
    return $out
}

# Header positions of every TLV of DATA (recursing into constructed ones and
# into OCTET STRINGs that hold DER): a list of {tag_pos len_pos len_bytes}.
proc fuzz_tlvs {data start end} {
    set out {}
    set pos $start
    while {$pos < $end} {
        if {[catch {der_header $data $pos} h]} break
        lassign $h tag cstart len
        set lenpos [expr {$pos + 1}]
        lappend out [list $pos $lenpos [expr {$cstart - $lenpos}]]
        set cend [expr {$cstart + $len}]
        if {($tag & 0x20) || $tag == 0x04} {
            lappend out {*}[fuzz_tlvs $data $cstart $cend]
        }
        set pos $cend
    }
    return $out
}

proc fuzz_setup {path seed} {
    set key [list $path $seed [file mtime $path]]
    if {$key eq $::fuzz_key} return
    set ::fuzz_key $key
    set ::fuzz_base [read_file $path]
    set ::fuzz_tlv [fuzz_tlvs $::fuzz_base 0 [string length $::fuzz_base]]
    if {$seed eq {}} { set seed [expr {[clock clicks] & 0x7fffffff}] }
    expr {srand($seed)}
}

# One mutation of the base: {bytes description}.
proc fuzz_mutate {} {
    set d $::fuzz_base
    set n [string length $d]
    switch -- [fuzz_rand 9] {
        0 {
            return [list $d none]
        }
        1 {
            set k [expr {1 + [fuzz_rand 4]}]
            set what {}
            for {set i 0} {$i < $k} {incr i} {
                set p [fuzz_rand $n]
                binary scan $d @${p}cu b
                set b [expr {$b ^ (1 << [fuzz_rand 8])}]
                set d [string replace $d $p $p [binary format cu $b]]
                lappend what $p
            }
            return [list $d flip@[join $what ,]]
        }
        2 {
            set p [fuzz_rand $n]
            set v [fuzz_bytes 1]
            binary scan $v cu b
            return [list [string replace $d $p $p $v] set@$p=[format %02x $b]]
        }
        3 {
            set p [fuzz_rand $n]
            return [list [string range $d 0 [expr {$p - 1}]] truncate@$p]
        }
        4 {
            set p [fuzz_rand [expr {$n + 1}]]
            set k [expr {1 + [fuzz_rand 16]}]
            return [list [string range $d 0 [expr {$p - 1}]][fuzz_bytes $k][string range $d $p end] insert@$p+$k]
        }
        5 {
            set p [fuzz_rand $n]
            set k [expr {1 + [fuzz_rand 16]}]
            return [list [string replace $d $p [expr {$p + $k - 1}]] delete@$p+$k]
        }
        6 - 7 {
            # A length field of a random TLV: off by a little, or any byte,
            # or an over-long / indefinite / huge long form.
            lassign [lindex $::fuzz_tlv [fuzz_rand [llength $::fuzz_tlv]]] tagpos lenpos lenbytes
            set last [expr {$lenpos + $lenbytes - 1}]
            set old [string range $d $lenpos $last]
            switch -- [fuzz_rand 5] {
                0 {
                    binary scan $d @${last}cu b
                    set b [expr {($b + (([fuzz_rand 2]) ? 1 : 255)) & 0xff}]
                    set new [string range $old 0 end-1][binary format cu $b]
                    set how lastbyte
                }
                1 { set new [fuzz_bytes 1]; set how byte }
                2 { set new "\x80"; set how indefinite }
                3 { set new "\x84\xff\xff\xff[fuzz_bytes 1]"; set how huge }
                4 {
                    # The same length in a longer (non-DER) form.
                    lassign [der_header $d $tagpos] - cstart len
                    set new "\x83[binary format cu [expr {$len >> 16}]][binary format S [expr {$len & 0xffff}]]"
                    set how overlong
                }
            }
            return [list [string replace $d $lenpos $last $new] length@$lenpos:$how]
        }
        8 {
            lassign [lindex $::fuzz_tlv [fuzz_rand [llength $::fuzz_tlv]]] tagpos
            set v [fuzz_bytes 1]
            binary scan $v cu b
            return [list [string replace $d $tagpos $tagpos $v] tag@$tagpos=[format %02x $b]]
        }
    }
}

# ---------------------------------------------------------------------------
# The HTTP side: non-blocking, one state per connection.

proc http_reply {chan status ctype body {length {}}} {
    if {$length eq {}} { set length [string length $body] }
    puts -nonewline $chan "HTTP/1.0 $status\r\nContent-Type: $ctype\r\nContent-Length: $length\r\nConnection: close\r\n\r\n"
    puts -nonewline $chan $body
}

proc drop {chan} {
    foreach var {::inbuf ::endless ::slow} {
        if {[info exists ${var}($chan)]} { unset ${var}($chan) }
    }
    catch {close $chan}
}

proc accept {chan addr port} {
    fconfigure $chan -translation binary -blocking 0 -buffering full
    set ::inbuf($chan) {}
    fileevent $chan readable [list on_request_data $chan]
}

proc on_request_data {chan} {
    if {[catch {read $chan} data]} { drop $chan; return }
    append ::inbuf($chan) $data
    set buf $::inbuf($chan)
    set hend [string first "\r\n\r\n" $buf]
    if {$hend < 0} {
        if {[eof $chan] || [string length $buf] > 65536} { drop $chan }
        return
    }
    set head [split [string range $buf 0 [expr {$hend - 1}]] "\n"]
    set request_line [string trimright [lindex $head 0] "\r"]
    set length 0
    foreach line [lrange $head 1 end] {
        if {[regexp -nocase {^content-length:\s*(\d+)} $line -> n]} { set length $n }
    }
    set body [string range $buf [expr {$hend + 4}] end]
    if {[string length $body] < $length} {
        if {[eof $chan]} { drop $chan }
        return
    }
    fileevent $chan readable {}
    unset ::inbuf($chan)
    set method [lindex $request_line 0]
    if {$method eq "GET"} {
        set body [get_request_body [lindex $request_line 1]]
    } else {
        set body [string range $body 0 [expr {$length - 1}]]
    }
    if {[catch {answer_request $chan $method $body} err]} {
        puts stderr "ocsp-responder: $err"
        drop $chan
    }
}

# Close CHAN once the peer closes it (or sends anything more).
proc watch_peer {chan} {
    fileevent $chan readable [list peer_event $chan]
}

proc peer_event {chan} {
    if {[catch {read $chan} data] || [eof $chan]} { drop $chan }
}

proc answer_request {chan method body} {
    set mode [mode_line]
    set opts [lrange $mode 1 end]
    set name [lindex $mode 0]
    if {$name eq "noget"} {
        set name [expr {$method eq "GET" ? "http405" : "openssl"}]
        set opts {}
    }
    if {$name eq "fuzz"} {
        fuzz_setup [lindex $opts 0] [lindex $opts 1]
        lassign [fuzz_mutate] der what
        # A mutation that left the bytes as they were (a byte set to its own
        # value) says so: its acceptance is no finding.
        if {$what ne "none" && $der eq $::fuzz_base} { append what ",unchanged" }
        log_request $mode $method $what
        http_reply $chan "200 OK" application/ocsp-response $der
        close $chan
        return
    }
    log_request $mode $method
    switch -- $name {
        openssl {
            set ctype application/ocsp-response
            if {[dict exists $opts -type]} { set ctype [dict get $opts -type] }
            http_reply $chan "200 OK" $ctype [openssl_answer $body $opts]
        }
        padded {
            http_reply $chan "200 OK" application/ocsp-response [padded_answer $body $opts]
        }
        file {
            http_reply $chan "200 OK" application/ocsp-response [read_file [lindex $opts 0]]
        }
        garbage {
            puts -nonewline $chan [fuzz_bytes 20000]
        }
        http405 {
            http_reply $chan "405 Method Not Allowed" text/plain "use POST\n"
        }
        http500 {
            http_reply $chan "500 Internal Server Error" text/plain "responder is broken\n"
        }
        oversized {
            http_reply $chan "200 OK" application/ocsp-response [string repeat "\x30" [expr {100 * 1024}]]
        }
        truncated {
            set der [openssl_answer $body {}]
            set half [string range $der 0 [expr {[string length $der] / 2}]]
            http_reply $chan "200 OK" application/ocsp-response $half [string length $der]
        }
        hang {
            # Keep the connection open and silent until the peer closes it.
            watch_peer $chan
            return
        }
        endless-headers {
            puts -nonewline $chan "HTTP/1.0 200 OK\r\n"
            set ::endless($chan) [clock milliseconds]
            fconfigure $chan -buffersize 1048576
            watch_peer $chan
            fileevent $chan writable [list endless_more $chan]
            return
        }
        slow-header {
            puts -nonewline $chan "HTTP/1.0 200 OK\r\nX-Slow: "
            flush $chan
            set ::slow($chan) 0
            watch_peer $chan
            after 1000 [list slow_more $chan]
            return
        }
        default {
            error "unknown mode $mode"
        }
    }
    # A non-blocking close sends what is buffered in the background.
    close $chan
}

# About 1 MiB of header lines, built once: written whole whenever the
# channel's own buffer runs low, so that the peer always has more to read.
proc endless_block {} {
    if {![info exists ::endless_block]} {
        set ::endless_block {}
        for {set i 1} {$i <= 10000} {incr i} {
            append ::endless_block "X-Pad-$i: [string repeat p 90]\r\n"
        }
    }
    return $::endless_block
}

proc endless_more {chan} {
    if {![info exists ::endless($chan)]} return
    if {[clock milliseconds] - $::endless($chan) > 30000} { drop $chan; return }
    if {[chan pending output $chan] > 262144} return
    if {[catch {puts -nonewline $chan [endless_block]; flush $chan}]} { drop $chan }
}

proc slow_more {chan} {
    if {![info exists ::slow($chan)]} return
    if {[incr ::slow($chan)] > 120 || [catch {puts -nonewline $chan a; flush $chan}]} {
        drop $chan
        return
    }
    after 1000 [list slow_more $chan]
}

# ---------------------------------------------------------------------------

if {[lindex $argv 0] eq "answer"} {
    lassign $argv - - request response
    set mode [lrange $argv 4 end]
    if {[lindex $mode 0] eq "padded"} {
        set der [padded_answer [read_file $request] [lrange $mode 1 end]]
    } else {
        if {[lindex $mode 0] eq "openssl"} { set mode [lrange $mode 1 end] }
        set der [openssl_answer [read_file $request] $mode]
    }
    write_file $response $der
    exit 0
}

set port [lindex $argv 0]
set parent [lindex $argv 2]
set addresses [lrange $argv 3 end]
if {![llength $addresses]} { set addresses 127.0.0.1 }
proc watch_parent {} {
    if {[catch {exec kill -0 $::parent}]} { exit 0 }
    after 1000 watch_parent
}
if {$parent ne {} && $parent ne 0} { watch_parent }

foreach address $addresses {
    socket -server accept -myaddr $address $port
}
puts "ocsp-responder: listening on [join $addresses {, }] port $port"
flush stdout
vwait forever
