# Minimal DER reading and writing for the OCSP tests, in plain Tcl: enough to
# take a real response made by `openssl ocsp` apart, change its times or its
# unsigned certs field, put it back together (re-encoding every enclosing
# length) and re-sign it with `openssl dgst -sign`. Sourced by
# ocsp-responder.tcl (and usable from the test suite).
#
# A node is a list {TAG CONSTRUCTED VALUE}: TAG the identifier byte, VALUE the
# content bytes of a primitive node or the list of child nodes of a
# constructed one. Only single-byte tags and definite lengths (DER) are read.

# The header at POS of DATA: {tag content_start content_length}.
proc der_header {data pos} {
    set total [string length $data]
    if {$pos + 2 > $total} { error "DER: truncated header at $pos" }
    binary scan $data @${pos}cucu tag b
    if {($tag & 0x1f) == 0x1f} { error "DER: multi-byte tag at $pos" }
    set cstart [expr {$pos + 2}]
    if {$b < 0x80} {
        set len $b
    } else {
        set n [expr {$b & 0x7f}]
        if {$n == 0 || $n > 4} { error "DER: unsupported length form 0x[format %02x $b] at $pos" }
        if {$cstart + $n > $total} { error "DER: truncated length at $pos" }
        set len 0
        for {set i 0} {$i < $n} {incr i} {
            binary scan $data @[expr {$cstart + $i}]cu byte
            set len [expr {($len << 8) | $byte}]
        }
        incr cstart $n
    }
    if {$cstart + $len > $total} { error "DER: content at $pos overruns the data" }
    return [list $tag $cstart $len]
}

# Every TLV of DATA between START and END (exclusive): a list of nodes.
proc der_decode {data {start 0} {end {}}} {
    if {$end eq {}} { set end [string length $data] }
    set nodes {}
    set pos $start
    while {$pos < $end} {
        lassign [der_header $data $pos] tag cstart len
        set cend [expr {$cstart + $len}]
        if {$cend > $end} { error "DER: TLV at $pos overruns its parent" }
        if {$tag & 0x20} {
            lappend nodes [list $tag 1 [der_decode $data $cstart $cend]]
        } else {
            lappend nodes [list $tag 0 [string range $data $cstart [expr {$cend - 1}]]]
        }
        set pos $cend
    }
    return $nodes
}

# The one TLV making up DATA.
proc der_decode1 {data} {
    set nodes [der_decode $data]
    if {[llength $nodes] != 1} { error "DER: expected one TLV, found [llength $nodes]" }
    return [lindex $nodes 0]
}

proc der_length {len} {
    if {$len < 0x80} { return [binary format cu $len] }
    set bytes {}
    while {$len > 0} {
        set bytes [binary format cu [expr {$len & 0xff}]]$bytes
        set len [expr {$len >> 8}]
    }
    return [binary format cu [expr {0x80 | [string length $bytes]}]]$bytes
}

# One TLV from a tag and its content bytes.
proc der_tlv {tag content} {
    return [binary format cu $tag][der_length [string length $content]]$content
}

proc der_encode_node {node} {
    lassign $node tag constructed value
    if {!$constructed} { return [der_tlv $tag $value] }
    set content {}
    foreach child $value { append content [der_encode_node $child] }
    return [der_tlv $tag $content]
}

proc der_encode {nodes} {
    set out {}
    foreach node $nodes { append out [der_encode_node $node] }
    return $out
}

proc der_node {tag value} {
    return [list $tag [expr {($tag & 0x20) != 0}] $value]
}

# ---------------------------------------------------------------------------
# OCSP responses (RFC 6960):
#
#   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
#       responseBytes [0] EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } }
#   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
#       signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
#       certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
#   ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID,
#       producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse, ... }
#   SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate GeneralizedTime,
#       nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }

# The BasicOCSPResponse node inside the DER OCSPResponse RESP.
proc ocsp_der_basic {resp} {
    set outer [der_decode1 $resp]
    set bytes [lindex $outer 2 1 2 0]
    if {[lindex $bytes 0] != 0x30 || [lindex $bytes 2 1 0] != 0x04} {
        error "OCSP: no BasicOCSPResponse in the response"
    }
    return [der_decode1 [lindex $bytes 2 1 2]]
}

# RESP with its BasicOCSPResponse replaced by the node BASIC.
proc ocsp_der_with_basic {resp basic} {
    set outer [der_decode1 $resp]
    lset outer 2 1 2 0 2 1 [list 0x04 0 [der_encode_node $basic]]
    return [der_encode_node $outer]
}

# A GeneralizedTime node for Unix time T.
proc der_gentime {t} {
    return [list 0x18 0 [clock format $t -format %Y%m%d%H%M%SZ -gmt 1]]
}

# The digest openssl dgst needs for a signatureAlgorithm node (RSA PKCS#1 v1.5).
proc ocsp_der_sig_digest {alg} {
    binary scan [lindex $alg 2 0 2] H* oid
    switch -- $oid {
        2a864886f70d010105 { return sha1 }
        2a864886f70d01010b { return sha256 }
        2a864886f70d01010c { return sha384 }
        2a864886f70d01010d { return sha512 }
    }
    error "OCSP: unsupported signature algorithm (OID bytes $oid)"
}

# An OBJECT IDENTIFIER node for dotted DOTTED.
proc der_oid {dotted} {
    set arcs [split $dotted .]
    set out [binary format cu [expr {40 * [lindex $arcs 0] + [lindex $arcs 1]}]]
    foreach arc [lrange $arcs 2 end] {
        set bytes [binary format cu [expr {$arc & 0x7f}]]
        set arc [expr {$arc >> 7}]
        while {$arc > 0} {
            set bytes [binary format cu [expr {0x80 | ($arc & 0x7f)}]]$bytes
            set arc [expr {$arc >> 7}]
        }
        append out $bytes
    }
    return [list 0x06 0 $out]
}

# RESP with producedAt, and thisUpdate / nextUpdate of every SingleResponse,
# set to the Unix times given ({} leaves a time as it is; NEXT "none" removes
# nextUpdate), re-signed with KEYFILE (the signer's PEM key). TMPDIR holds
# the scratch files openssl needs. With PAD > 0, a non-critical response
# extension (a private OID) carrying PAD zero bytes is added to the signed
# data, making a response that no trimming can shrink.
proc ocsp_der_retime {resp this next produced keyfile tmpdir {pad 0}} {
    set basic [ocsp_der_basic $resp]
    set parts [lindex $basic 2]
    set tbs [lindex $parts 0]
    set fields [lindex $tbs 2]
    # producedAt: the first GeneralizedTime directly in ResponseData.
    for {set i 0} {$i < [llength $fields]} {incr i} {
        if {[lindex $fields $i 0] == 0x18} break
    }
    if {$i == [llength $fields]} { error "OCSP: no producedAt" }
    if {$produced ne {}} { lset fields $i [der_gentime $produced] }
    set responses [lindex $fields [expr {$i + 1}]]
    set singles {}
    foreach single [lindex $responses 2] {
        set out {}
        set had_next 0
        foreach f [lindex $single 2] {
            set tag [lindex $f 0]
            if {$tag == 0x18} {
                if {$this ne {}} { set f [der_gentime $this] }
                lappend out $f
                # nextUpdate follows thisUpdate; add one if asked and absent.
                continue
            }
            if {$tag == 0xa0} {
                set had_next 1
                if {$next eq "none"} continue
                if {$next ne {}} { set f [list 0xa0 1 [list [der_gentime $next]]] }
            }
            lappend out $f
        }
        if {!$had_next && $next ne {} && $next ne "none"} {
            # Insert nextUpdate right after thisUpdate.
            for {set j 0} {[lindex $out $j 0] != 0x18} {incr j} {}
            set out [linsert $out [expr {$j + 1}] [list 0xa0 1 [list [der_gentime $next]]]]
        }
        lappend singles [lreplace $single 2 2 $out]
    }
    lset fields [expr {$i + 1}] [lreplace $responses 2 2 $singles]
    if {$pad > 0} {
        set ext [list 0x30 1 [list [der_oid 1.3.6.1.4.1.55555.1.1] \
            [list 0x04 0 [der_tlv 0x04 [string repeat "\x00" $pad]]]]]
        set last [expr {[llength $fields] - 1}]
        if {[lindex $fields $last 0] == 0xa1} {
            set exts [lindex $fields $last 2 0]
            lset fields $last 2 0 [list 0x30 1 [concat [lindex $exts 2] [list $ext]]]
        } else {
            lappend fields [list 0xa1 1 [list [list 0x30 1 [list $ext]]]]
        }
    }
    set tbs [lreplace $tbs 2 2 $fields]
    set tbs_der [der_encode_node $tbs]

    set digest [ocsp_der_sig_digest [lindex $parts 1]]
    set tag [pid].[clock clicks]
    set tbs_file [file join $tmpdir tbs.$tag.der]
    set sig_file [file join $tmpdir sig.$tag.bin]
    set fd [open $tbs_file wb]
    puts -nonewline $fd $tbs_der
    close $fd
    exec openssl dgst -$digest -sign $keyfile -out $sig_file $tbs_file 2>@1
    set fd [open $sig_file rb]
    set sig [read $fd]
    close $fd
    file delete $tbs_file $sig_file

    set parts [lreplace $parts 0 0 $tbs]
    set parts [lreplace $parts 2 2 [list 0x03 0 "\x00$sig"]]
    return [ocsp_der_with_basic $resp [lreplace $basic 2 2 $parts]]
}

# The DER certificates of the certs field of RESP (a list, maybe empty).
proc ocsp_der_certs {resp} {
    set parts [lindex [ocsp_der_basic $resp] 2]
    set certs {}
    if {[llength $parts] > 3} {
        foreach c [lindex $parts 3 2 0 2] { lappend certs [der_encode_node $c] }
    }
    return $certs
}

# RESP with its certs field set to the DER certificates CERTS (a list; an
# empty list drops the field). The signature does not cover certs.
proc ocsp_der_with_certs {resp certs} {
    set basic [ocsp_der_basic $resp]
    set parts [lrange [lindex $basic 2] 0 2]
    if {[llength $certs]} {
        set nodes {}
        foreach c $certs { lappend nodes [der_decode1 $c] }
        lappend parts [list 0xa0 1 [list [list 0x30 1 $nodes]]]
    }
    return [ocsp_der_with_basic $resp [lreplace $basic 2 2 $parts]]
}

# A PEM certificate file as DER.
proc der_from_pem_file {path} {
    set fd [open $path]
    set pem [read $fd]
    close $fd
    if {![regexp {\-+BEGIN CERTIFICATE\-+(.*?)\-+END CERTIFICATE\-+} $pem -> b64]} {
        error "no certificate in $path"
    }
    return [binary decode base64 [string map {"\n" "" "\r" ""} $b64]]
}
