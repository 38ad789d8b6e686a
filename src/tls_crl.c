/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The CRL set of tls-crl-file and tls-crl-urls: what a set of CRLs is,
 * loading and verifying one, the immutable snapshot handshakes read, the
 * verify callback that refuses a listed certificate, the stale policy, and
 * closing the connections a new set lists. Where the CRLs come from (the
 * watched file, the URLs, their schedule and cache files, INFO) is
 * tls_crl_sources.c. Linked where tls.c's OpenSSL code is: the server, or
 * valkey-tls.so (tls_crl.h).
 *
 *   load    crlSetLoad(), in the background worker (a job of
 *           tls_crl_sources.c): parses the bytes (PEM, one or more CRLs, or
 *           a single DER CRL), loads the CA certificates of tls-ca-cert-file
 *           / tls-ca-cert-dir, verifies each CRL (signed by one of them,
 *           nextUpdate not before thisUpdate) and builds the lists: per CRL
 *           its issuer and its serials, sorted.
 *   swap    crlSetPublish() on the main thread, after crlSetGoesBackwards()
 *           found the new CRLs no older than those in force; then
 *           crlSetCloseRevoked() closes the clients, replication and cluster
 *           bus links whose certificate they list.
 *   check   crlVerifyCallback(), set on every context tls.c creates, in the
 *           handshake: a certificate of the chain whose issuer has a loaded
 *           CRL listing its serial fails the handshake; so does every
 *           certificate while a source has no CRLs yet, and, under
 *           tls-crl-stale refuse, every certificate of an issuer whose CRLs
 *           are all past their nextUpdate.
 *
 * Threads: crlSetLoad() runs in the worker on a set of its own. The verify
 * callback runs in whichever thread does the handshake (the main thread or
 * an I/O thread): it takes a reference to the published snapshot under a
 * mutex held for a pointer copy, as tls_ocsp.c does for the staple, so the
 * main thread may swap it at any time; its counters and settings are
 * atomics. Everything else runs on the main thread.
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this file only where OpenSSL is. */

#include "cluster.h"
#include "cluster_legacy.h"
#include "tls_crl_check.h"
#include "tls_crl_set.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <sys/socket.h>

#define CRL_LOG_INTERVAL_MS 1000

static pthread_mutex_t set_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(crlSet *) published_set = NULL;
/* A source is configured: until a snapshot without missing sources is
 * published, every certificate is refused. */
static atomic_bool crl_required = false;
static atomic_int stale_policy = TLS_CRL_STALE_KEEP;
static atomic_llong handshakes_refused = 0;
static atomic_llong last_refusal_log_ms = 0;

/* ------------------------------------------------------------------------- */
/* The snapshot. */

static void crlListRelease(crlList *l) {
    if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1) return;
    X509_NAME_free(l->issuer);
    zfree(l->serials);
    sdsfree(l->source);
    zfree(l);
}

void crlSetFree(crlSet *set) {
    if (!set) return;
    for (int i = 0; i < set->count; i++) crlListRelease(set->lists[i]);
    zfree(set->lists);
    zfree(set);
}

void crlSetRelease(crlSet *set) {
    if (!set) return;
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1) return;
    crlSetFree(set);
}

crlSet *crlSetNew(void) {
    crlSet *set = zcalloc(sizeof(*set));
    atomic_init(&set->refs, 1);
    return set;
}

/* Add a reference to l to the set. */
void crlSetAdd(crlSet *set, crlList *l) {
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    set->lists = zrealloc(set->lists, (set->count + 1) * sizeof(crlList *));
    set->lists[set->count++] = l;
    set->entries += l->count;
    if (l->next_update && (!set->next_update || l->next_update < set->next_update)) set->next_update = l->next_update;
}

/* Any thread: a reference to the published set, or NULL. */
crlSet *crlSetAcquire(void) {
    if (!atomic_load_explicit(&published_set, memory_order_relaxed)) return NULL;
    pthread_mutex_lock(&set_mutex);
    crlSet *set = atomic_load_explicit(&published_set, memory_order_relaxed);
    if (set) atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&set_mutex);
    return set;
}

/* Main thread only: replace the published set (NULL: none). With required,
 * a certificate is refused unless the set has every source's CRLs. */
void crlSetPublish(crlSet *set, bool required) {
    atomic_store(&crl_required, required);
    pthread_mutex_lock(&set_mutex);
    crlSet *old = atomic_load_explicit(&published_set, memory_order_relaxed);
    atomic_store_explicit(&published_set, set, memory_order_relaxed);
    pthread_mutex_unlock(&set_mutex);
    crlSetRelease(old);
}

static int crlSerialCompare(const void *a_, const void *b_) {
    const crlSerial *a = a_, *b = b_;
    if (a->neg != b->neg) return a->neg ? -1 : 1;
    int sign = a->neg ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -sign : sign;
    int cmp = memcmp(a->bytes, b->bytes, a->len);
    return cmp < 0 ? -sign : (cmp > 0 ? sign : 0);
}

/* The key of a serial: its magnitude without leading zero octets. Returns 0
 * if it is longer than CRL_MAX_SERIAL. */
static int crlSerialFrom(const ASN1_INTEGER *serial, crlSerial *key) {
    const unsigned char *bytes = ASN1_STRING_get0_data(serial);
    int len = ASN1_STRING_length(serial);
    while (len > 0 && *bytes == 0) {
        bytes++;
        len--;
    }
    if (len > CRL_MAX_SERIAL) return 0;
    memset(key, 0, sizeof(*key));
    key->neg = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER && len > 0;
    key->len = (unsigned char)len;
    memcpy(key->bytes, bytes, len);
    return 1;
}

static void crlSerialText(const crlSerial *key, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    if (key->neg && size > 1) buf[used++] = '-';
    for (int i = 0; i < key->len && used + 3 <= size; i++) used += snprintf(buf + used, size - used, "%02X", key->bytes[i]);
    if (key->len == 0 && used + 2 <= size) snprintf(buf + used, size - used, "00");
}

/* The CRL of set that lists cert, or NULL. When none does, *stale is set to
 * a CRL of cert's issuer if every CRL of that issuer is past its nextUpdate
 * at now (Unix seconds), else to NULL. */
static const crlList *crlSetLookupSerial(const crlSet *set,
                                         const X509_NAME *issuer,
                                         const ASN1_INTEGER *serial,
                                         crlSerial *key,
                                         long long now,
                                         const crlList **stale) {
    *stale = NULL;
    if (!crlSerialFrom(serial, key)) return NULL;
    const crlList *past = NULL;
    bool fresh = false;
    for (int i = 0; i < set->count; i++) {
        const crlList *l = set->lists[i];
        if (X509_NAME_cmp(l->issuer, issuer) != 0) continue;
        if (l->count && bsearch(key, l->serials, l->count, sizeof(crlSerial), crlSerialCompare)) return l;
        if (l->next_update && l->next_update < now)
            past = l;
        else
            fresh = true;
    }
    if (!fresh) *stale = past;
    return NULL;
}

static const crlList *crlSetLookup(const crlSet *set, X509 *cert, crlSerial *key, long long now, const crlList **stale) {
    return crlSetLookupSerial(set, X509_get_issuer_name(cert), X509_get0_serialNumber(cert), key, now, stale);
}

/* ------------------------------------------------------------------------- */
/* Loading, in the worker. */

static long long asn1TimeToUnix(const ASN1_TIME *t) {
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm);
}

/* Where a load says what went wrong. */
typedef struct crlLoad {
    const char *source;
    char *err;
    size_t err_size;
} crlLoad;

static void crlLoadFail(crlLoad *load, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(load->err, load->err_size, fmt, ap);
    va_end(ap);
    ERR_clear_error();
}

/* Check one CRL and add it to the set. Returns 0 with load->err set. */
static int crlAdd(crlLoad *load, crlSet *set, X509_STORE *store, X509_CRL *x) {
    int index = set->count + 1;
    char issuer[128];
    X509_NAME_oneline(X509_CRL_get_issuer(x), issuer, sizeof(issuer));
    if (!tlsCrlSignedByCa(store, x)) {
        crlLoadFail(load, "CRL %d (issuer %s) is not signed by a CA of tls-ca-cert-file / tls-ca-cert-dir", index,
                    issuer);
        return 0;
    }
    const ASN1_TIME *this_update = X509_CRL_get0_lastUpdate(x);
    const ASN1_TIME *next_update = X509_CRL_get0_nextUpdate(x);
    long long this_unix = asn1TimeToUnix(this_update);
    long long next_unix = next_update ? asn1TimeToUnix(next_update) : 0;
    if (!this_update || !this_unix || (next_update && !next_unix)) {
        crlLoadFail(load, "CRL %d (issuer %s) has an unreadable thisUpdate or nextUpdate", index, issuer);
        return 0;
    }
    if (next_update && next_unix < this_unix) {
        crlLoadFail(load, "CRL %d (issuer %s) has its nextUpdate before its thisUpdate", index, issuer);
        return 0;
    }
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(x);
    size_t count = revoked ? (size_t)sk_X509_REVOKED_num(revoked) : 0;
    crlSerial *serials = count ? zmalloc(count * sizeof(crlSerial)) : NULL;
    for (size_t i = 0; i < count; i++) {
        if (!crlSerialFrom(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i)), &serials[i])) {
            zfree(serials);
            crlLoadFail(load, "CRL %d (issuer %s) lists a serial longer than %d octets", index, issuer, CRL_MAX_SERIAL);
            return 0;
        }
    }
    if (count) qsort(serials, count, sizeof(crlSerial), crlSerialCompare);

    crlList *l = zcalloc(sizeof(*l));
    atomic_init(&l->refs, 0);
    l->source = sdsnew(load->source);
    l->index = index;
    l->issuer = X509_NAME_dup(X509_CRL_get_issuer(x));
    memcpy(l->issuer_text, issuer, sizeof(issuer));
    l->this_update = this_unix;
    l->next_update = next_unix;
    l->count = count;
    l->serials = serials;
    crlSetAdd(set, l);
    return 1;
}

/* Parse bytes into the set: PEM (one CRL or more, nothing else) or a single
 * DER CRL. */
static int crlParse(crlLoad *load, crlSet *set, X509_STORE *store, const char *data, size_t len) {
    if (len == 0) {
        crlLoadFail(load, "it is empty");
        return 0;
    }
    if (memmem(data, len, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (!bio) {
            crlLoadFail(load, "out of memory");
            return 0;
        }
        int ok = 1;
        while (ok) {
            ERR_clear_error();
            X509_CRL *x = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
            if (!x) {
                unsigned long e = ERR_peek_last_error();
                bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
                if (!at_end) {
                    crlLoadFail(load, "CRL %d cannot be parsed (truncated or not a PEM X509 CRL)", set->count + 1);
                    ok = 0;
                } else if (set->count == 0) {
                    crlLoadFail(load, "no PEM X509 CRL in it");
                    ok = 0;
                }
                break;
            }
            ok = crlAdd(load, set, store, x);
            X509_CRL_free(x);
        }
        BIO_free(bio);
        ERR_clear_error();
        return ok;
    }
    const unsigned char *p = (const unsigned char *)data;
    X509_CRL *x = d2i_X509_CRL(NULL, &p, (long)len);
    if (!x || p != (const unsigned char *)data + len) {
        X509_CRL_free(x);
        crlLoadFail(load, "neither PEM nor a single DER X509 CRL (garbage or truncated)");
        return 0;
    }
    int ok = crlAdd(load, set, store, x);
    X509_CRL_free(x);
    return ok;
}

/* In the worker: the CRLs of data (from source, named in their log lines),
 * each verified against the CA certificates of ca_file / ca_dir. Returns the
 * set, or NULL with err saying why. */
crlSet *crlSetLoad(const char *source,
                   const char *data,
                   size_t len,
                   const char *ca_file,
                   const char *ca_dir,
                   char *err,
                   size_t err_size) {
    crlLoad load = {.source = source, .err = err, .err_size = err_size};
    crlSet *set = NULL;
    X509_STORE *store = X509_STORE_new();
    if (!ca_file && !ca_dir) {
        crlLoadFail(&load, "no CA to verify it with: tls-ca-cert-file and tls-ca-cert-dir are not set");
    } else if (!store || X509_STORE_load_locations(store, ca_file, ca_dir) != 1) {
        crlLoadFail(&load, "cannot load the CA certificates of tls-ca-cert-file / tls-ca-cert-dir");
    } else {
        set = crlSetNew();
        if (!crlParse(&load, set, store, data, len)) {
            crlSetFree(set);
            set = NULL;
        }
    }
    X509_STORE_free(store);
    ERR_clear_error();
    return set;
}

/* ------------------------------------------------------------------------- */
/* A new set against the one in force (main thread). */

/* The latest thisUpdate among the set's CRLs from ISSUER, 0 if it has none. */
static long long crlLatestFrom(const crlSet *set, X509_NAME *issuer) {
    long long latest = 0;
    for (int i = 0; i < set->count; i++)
        if (X509_NAME_cmp(set->lists[i]->issuer, issuer) == 0 && set->lists[i]->this_update > latest)
            latest = set->lists[i]->this_update;
    return latest;
}

/* A source's new CRLs must not un-revoke by going backwards: every issuer
 * with a CRL in force keeps one, no older than the one in force (a stale
 * copy restored by a backup or a deploy job, or an old CRL replayed by
 * whoever sits on the plain HTTP path, is refused). Changing the path or the
 * URLs (CONFIG SET) is the operator's explicit way to start over. */
int crlSetGoesBackwards(const crlSet *in_force, const crlSet *set, char *err, size_t size) {
    for (int i = 0; i < in_force->count; i++) {
        const crlList *old = in_force->lists[i];
        long long latest = crlLatestFrom(set, old->issuer);
        if (latest == 0) {
            snprintf(err, size, "it has no CRL of issuer %s, whose CRL is in force", old->issuer_text);
            return 1;
        }
        if (latest < crlLatestFrom(in_force, old->issuer)) {
            snprintf(err, size, "its CRL of issuer %s is older (thisUpdate) than the one in force", old->issuer_text);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Connections already open. */

/* The issuer and serial of a DER certificate, read from its tbsCertificate
 * without parsing the rest: d2i_X509() decodes the public key too, which
 * with OpenSSL 3.0 costs ~0.6 ms, too much per open connection on the main
 * thread. Returns 0 if der is not a certificate. */
static int crlCertificateIdentity(const unsigned char *der, long len, X509_NAME **issuer, ASN1_INTEGER **serial) {
    const unsigned char *p = der, *end = der + len;
    long content;
    int tag, class;
    *issuer = NULL;
    *serial = NULL;
    /* Certificate, then tbsCertificate: SEQUENCEs entered. */
    for (int i = 0; i < 2; i++) {
        if (ASN1_get_object(&p, &content, &tag, &class, end - p) != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE ||
            class != V_ASN1_UNIVERSAL)
            return 0;
        end = p + content;
    }
    /* version [0] EXPLICIT, when present: skipped. */
    const unsigned char *q = p;
    if (ASN1_get_object(&q, &content, &tag, &class, end - p) == V_ASN1_CONSTRUCTED && tag == 0 &&
        class == V_ASN1_CONTEXT_SPECIFIC) {
        if (content > end - q) return 0;
        p = q + content;
    }
    if (!(*serial = d2i_ASN1_INTEGER(NULL, &p, end - p))) return 0;
    /* signature AlgorithmIdentifier: skipped. */
    if (ASN1_get_object(&p, &content, &tag, &class, end - p) != V_ASN1_CONSTRUCTED || content > end - p) return 0;
    p += content;
    return (*issuer = d2i_X509_NAME(NULL, &p, end - p)) != NULL;
}

/* The DER of the first certificate in pem, or NULL. PEM_read_bio() would do,
 * at a few times the cost (it reads line by line through a BIO). */
static unsigned char *crlPemToDer(const char *pem, size_t pem_len, int *der_len) {
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    const char *body = memmem(pem, pem_len, begin, sizeof(begin) - 1);
    if (!body) return NULL;
    body += sizeof(begin) - 1;
    const char *stop = memmem(body, pem_len - (body - pem), end, sizeof(end) - 1);
    if (!stop || stop - body > INT_MAX / 2) return NULL;
    int len = 0, last = 0;
    unsigned char *der = zmalloc((stop - body) * 3 / 4 + 3);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (!ctx) {
        zfree(der);
        return NULL;
    }
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, der, &len, (const unsigned char *)body, (int)(stop - body)) < 0 ||
        EVP_DecodeFinal(ctx, der + len, &last) != 1) {
        zfree(der);
        der = NULL;
    }
    EVP_ENCODE_CTX_free(ctx);
    *der_len = len + last;
    return der;
}

/* Is the certificate of conn listed by set? */
static const crlList *crlConnectionRevoked(const crlSet *set, connection *conn, char *serial, size_t size) {
    if (!conn || !connIsTLS(conn)) return NULL;
    sds pem = connGetPeerCert(conn);
    if (!pem) return NULL;
    const crlList *l = NULL, *stale;
    int len = 0;
    unsigned char *der = crlPemToDer(pem, sdslen(pem), &len);
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *number = NULL;
    crlSerial key;
    if (der && crlCertificateIdentity(der, len, &issuer, &number))
        l = crlSetLookupSerial(set, issuer, number, &key, 0, &stale);
    if (l) crlSerialText(&key, serial, size);
    X509_NAME_free(issuer);
    ASN1_INTEGER_free(number);
    zfree(der);
    sdsfree(pem);
    ERR_clear_error();
    return l;
}

static void crlLogClosed(const crlList *l, const char *who, const char *serial) {
    serverLog(LL_WARNING, "CRL: closing %s: its certificate (serial %s) is revoked by CRL %d of %s (issuer %s)", who,
              serial, l->index, l->source, l->issuer_text);
}

/* Close the clients (replicas and the primary link included), the
 * replication handshake and the cluster bus links whose certificate set
 * lists. A client is freed as the server frees any; a cluster bus link has
 * its socket shut down, so that the cluster code tears it down (and
 * reconnects, which the handshake then refuses). Returns how many were. */
int crlSetCloseRevoked(const crlSet *set) {
    char serial[2 * CRL_MAX_SERIAL + 2];
    const crlList *l;
    int closed = 0;
    listIter li;
    listNode *ln;
    listRewind(server.clients, &li);
    while ((ln = listNext(&li)) != NULL) {
        client *c = listNodeValue(ln);
        if (!(l = crlConnectionRevoked(set, c->conn, serial, sizeof(serial)))) continue;
        char who[256];
        snprintf(who, sizeof(who), "%s id=%llu addr=%s user=%s", c == server.primary ? "the primary link" : "client",
                 (unsigned long long)c->id, getClientPeerId(c), c->user ? c->user->name : "");
        crlLogClosed(l, who, serial);
        closed++;
        freeClientAsync(c);
    }
    /* repl_transfer_s is ours only from the connect to the end of the
     * transfer: upstream leaves it pointing at the connection it handed to
     * the primary client (closed above) and, once that client is gone, at a
     * freed connection until the next connect. */
    bool transfer = server.repl_state >= REPL_STATE_CONNECTING && server.repl_state <= REPL_STATE_TRANSFER;
    if (transfer && server.repl_transfer_s && (!server.primary || server.primary->conn != server.repl_transfer_s) &&
        (l = crlConnectionRevoked(set, server.repl_transfer_s, serial, sizeof(serial)))) {
        crlLogClosed(l, "the replication link to the primary", serial);
        closed++;
        shutdown(server.repl_transfer_s->fd, SHUT_RDWR);
    }
    if (!server.cluster_enabled || !server.cluster) return closed;
    dictIterator *di = dictGetSafeIterator(server.cluster->nodes);
    dictEntry *de;
    while ((de = dictNext(di)) != NULL) {
        clusterNode *node = dictGetVal(de);
        clusterLink *links[2] = {node->link, node->inbound_link};
        for (int i = 0; i < 2; i++) {
            if (!links[i] || !(l = crlConnectionRevoked(set, links[i]->conn, serial, sizeof(serial)))) continue;
            char who[256];
            snprintf(who, sizeof(who), "the cluster bus link %s node %.40s (%s:%d)", i == 0 ? "to" : "from",
                     node->name, node->ip, node->tls_port ? node->tls_port : node->tcp_port);
            crlLogClosed(l, who, serial);
            closed++;
            shutdown(links[i]->conn->fd, SHUT_RDWR);
        }
    }
    dictReleaseIterator(di);
    return closed;
}

/* ------------------------------------------------------------------------- */
/* Stale CRLs. */

/* tls-crl-stale, as the verify callback reads it. */
void crlSetStalePolicy(int policy) {
    atomic_store(&stale_policy, policy);
}

int crlStalePolicy(void) {
    return atomic_load(&stale_policy);
}

long long crlHandshakesRefused(void) {
    return atomic_load_explicit(&handshakes_refused, memory_order_relaxed);
}

/* Log, once each, the CRLs that passed their nextUpdate. */
void crlSetLogStale(void) {
    crlSet *set = crlSetAcquire();
    if (!set) return;
    long long now = time(NULL);
    for (int i = 0; i < set->count; i++) {
        crlList *l = set->lists[i];
        if (!l->next_update || l->next_update >= now || l->stale_logged) continue;
        l->stale_logged = true;
        if (atomic_load(&stale_policy) == TLS_CRL_STALE_REFUSE)
            serverLog(LL_WARNING,
                      "CRL: CRL %d of %s (issuer %s) is past its nextUpdate and no fresh one could be had: every "
                      "certificate of that issuer is refused until one is (tls-crl-stale refuse)",
                      l->index, l->source, l->issuer_text);
        else
            serverLog(LL_WARNING,
                      "CRL: CRL %d of %s (issuer %s) is past its nextUpdate and no fresh one could be had: it stays in "
                      "force (tls-crl-stale keep)",
                      l->index, l->source, l->issuer_text);
    }
    crlSetRelease(set);
}

/* ------------------------------------------------------------------------- */
/* The handshake. */

/* The verify callback set before ours (tls_ocsp_peer.c's), called after ours. */
static SSL_verify_cb chained_callback = NULL;

static void crlLogRefusal(X509 *cert, const char *why) {
    long long now = mstime();
    long long last = atomic_load_explicit(&last_refusal_log_ms, memory_order_relaxed);
    if (now - last < CRL_LOG_INTERVAL_MS || !atomic_compare_exchange_strong(&last_refusal_log_ms, &last, now)) return;
    char subject[128];
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    serverLog(LL_WARNING, "CRL: refused the certificate of %s: %s (at most one such line a second)", subject, why);
}

/* A self-signed certificate above the one verified is the trust anchor the
 * chain ends in (a CA of tls-ca-cert-file): no CRL applies to it (RFC 5280,
 * 6.1), and refusing it would name the CA, not the peer, in the log. */
static bool crlIsTrustAnchor(X509_STORE_CTX *store, X509 *cert) {
    return X509_STORE_CTX_get_error_depth(store) > 0 && (X509_get_extension_flags(cert) & EXFLAG_SS);
}

static int crlVerifyCallback(int preverify_ok, X509_STORE_CTX *store) {
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (preverify_ok && cert && atomic_load_explicit(&crl_required, memory_order_relaxed) &&
        !crlIsTrustAnchor(store, cert)) {
        crlSet *set = crlSetAcquire();
        char why[256];
        int error = 0;
        if (!set || set->missing) {
            error = X509_V_ERR_UNABLE_TO_GET_CRL;
            if (set)
                snprintf(why, sizeof(why), "the CRLs of %d source%s (tls-crl-file, tls-crl-urls) are not loaded yet",
                         set->missing, set->missing == 1 ? "" : "s");
            else /* Before the first cron sets the sources up. */
                snprintf(why, sizeof(why), "the CRLs of tls-crl-file / tls-crl-urls are not loaded yet");
        } else {
            crlSerial key;
            const crlList *stale;
            const crlList *l = crlSetLookup(set, cert, &key, time(NULL), &stale);
            if (l) {
                char serial[2 * CRL_MAX_SERIAL + 2];
                crlSerialText(&key, serial, sizeof(serial));
                error = X509_V_ERR_CERT_REVOKED;
                snprintf(why, sizeof(why), "serial %s is revoked by CRL %d of %s (issuer %s)", serial, l->index,
                         l->source, l->issuer_text);
            } else if (stale && atomic_load_explicit(&stale_policy, memory_order_relaxed) == TLS_CRL_STALE_REFUSE) {
                error = X509_V_ERR_CRL_HAS_EXPIRED;
                snprintf(why, sizeof(why), "CRL %d of %s (issuer %s) is past its nextUpdate (tls-crl-stale refuse)",
                         stale->index, stale->source, stale->issuer_text);
            }
        }
        crlSetRelease(set);
        if (error) {
            X509_STORE_CTX_set_error(store, error);
            atomic_fetch_add_explicit(&handshakes_refused, 1, memory_order_relaxed);
            crlLogRefusal(cert, why);
            return 0;
        }
    }
    return chained_callback ? chained_callback(preverify_ok, store) : preverify_ok;
}

/* For every context tls.c creates, after the configuration is read (at
 * startup, CONFIG SET tls-*, or a background reload). A configured source
 * makes every certificate refused from the first handshake until its CRLs
 * are loaded. */
void tlsCrlSetupContext(struct ssl_ctx_st *ctx) {
    atomic_store(&stale_policy, server.tls_crl_config.stale);
    if (server.tls_crl_config.file || server.tls_crl_config.urls) atomic_store(&crl_required, true);
    SSL_verify_cb previous = SSL_CTX_get_verify_callback(ctx);
    if (previous == crlVerifyCallback) return;
    chained_callback = previous;
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), crlVerifyCallback);
}

#endif
