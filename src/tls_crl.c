/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The CRL set of tls-crl-file and tls-crl-urls: loading, fetching and
 * verifying the CRLs, the cache files, the immutable snapshot handshakes
 * read, the verify callback that refuses a listed certificate, closing the
 * connections a new CRL lists, the stale policy and INFO. Linked where tls.c's
 * OpenSSL code is: the server, or valkey-tls.so (tls_crl.h); the server side
 * (tls_crl_hooks.c) reaches it through the table tlsCrlInit() registers.
 *
 * Sources: the file (tls-crl-file) and each URL (tls-crl-urls) is a source
 * with the CRLs it last gave; the published snapshot is all of them.
 *
 *   watch   serverCron -> tlsOcspCron -> tlsCrlCron -> crlCron(): once a
 *           second a stat of the file; a new stamp (rename, symlink swap,
 *           rewrite) queues a load. CONFIG SET tls-crl-file queues one at
 *           once.
 *   fetch   a URL's CRL is fetched over HTTP with the OCSP client
 *           (tls_ocsp_fetch.c: tls-ocsp-proxy, tls-ocsp-response-timeout,
 *           never blocking), at most tls-crl-max-bytes, and refreshed on the
 *           OCSP schedule (tls-ocsp-refresh-margin of its thisUpdate ..
 *           nextUpdate window, at most tls-ocsp-max-refresh-interval apart,
 *           tls-ocsp-retry-delay doubled per failure). A verified one is kept
 *           in a cache file in dir, read (and verified) first after a restart.
 *   load    crlJobRun() in the background worker of the OCSP jobs
 *           (ocspWorkerRunTask, tls_ocsp_worker.c), one job at a time:
 *           reads the file (PEM, one or more CRLs, or a single DER CRL) or
 *           takes the fetched bytes, loads the CA certificates of
 *           tls-ca-cert-file / tls-ca-cert-dir, verifies each CRL (signed
 *           by one of them, nextUpdate not before thisUpdate) and builds the
 *           source's lists: per CRL its issuer and its serials, sorted.
 *   swap    crlJobDone() on the main thread: a source's new CRLs must not go
 *           backwards (crlSetGoesBackwards); they replace its old ones in a
 *           new snapshot, published, or the reason is logged and the old
 *           ones stay (at startup, a refused tls-crl-file stops the server:
 *           fail closed). Then the clients, replication and cluster bus
 *           links whose certificate the new CRLs list are closed.
 *   check   crlVerifyCallback(), set on every context tls.c creates, in the
 *           handshake: a certificate of the chain whose issuer has a loaded
 *           CRL listing its serial fails the handshake; so does every
 *           certificate while a source has no CRLs yet, and, under
 *           tls-crl-stale refuse, every certificate of an issuer whose CRLs
 *           are all past their nextUpdate.
 *
 * Threads: the worker runs crlJobRun() on a job of its own (nothing shared
 * but the immutable lists). The verify callback runs in whichever thread
 * does the handshake (the main thread or an I/O thread): it takes a
 * reference to the published snapshot under a mutex held for a pointer copy,
 * as tls_ocsp.c does for the staple, so the main thread may swap it at any
 * time; its counters and settings are atomics. Everything else runs on the
 * main thread.
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this file only where OpenSSL is. */

#include "cluster.h"
#include "cluster_legacy.h"
#include "tls_crl_check.h"
#include "tls_ocsp_fetch.h"
#include "tls_ocsp_worker.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* A CRL entry's serial longer than this refuses its CRL (RFC 5280: at most
 * 20 octets; leading zero octets are not counted). */
#define CRL_MAX_SERIAL 32
#define CRL_CHECK_INTERVAL_MS 1000
#define CRL_LOG_INTERVAL_MS 1000
#define CRL_ERROR_LEN 256
/* Refresh and retry bound when tls-ocsp-max-refresh-interval is 0 (none). */
#define CRL_DEFAULT_INTERVAL_MS (3600 * 1000LL)

typedef struct crlSerial {
    unsigned char neg, len;
    unsigned char bytes[CRL_MAX_SERIAL];
} crlSerial;

/* One CRL: immutable once built, shared by every snapshot that holds it. */
typedef struct crlList {
    atomic_int refs;
    sds source; /* The file or URL it came from. */
    int index;  /* 1-based, in its source. */
    X509_NAME *issuer;
    char issuer_text[128];
    long long this_update, next_update; /* Unix seconds; next_update 0: none. */
    size_t count;
    crlSerial *serials; /* Sorted by crlSerialCompare(). */
    bool stale_logged;  /* Main thread only: its passing nextUpdate was logged. */
} crlList;

/* A set of CRLs: what one source gave, or the published snapshot of all of
 * them. Immutable once built, freed by its last reader. */
typedef struct crlSet {
    atomic_int refs;
    int count;
    crlList **lists;
    size_t entries;
    long long next_update; /* The earliest, 0: none. */
    int missing;           /* Sources configured that have no CRLs yet. */
} crlSet;

static pthread_mutex_t set_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(crlSet *) published_set = NULL;
/* A source is configured: until a snapshot without missing sources is
 * published, every certificate is refused. */
static atomic_bool crl_required = false;
static atomic_int stale_policy = TLS_CRL_STALE_KEEP;
static atomic_llong handshakes_refused = 0;
static atomic_llong last_refusal_log_ms = 0;

/* A source: the file, or one URL. Main thread only. */
typedef struct crlSource {
    unsigned long long id; /* Jobs name their source by it: sources come and go. */
    bool is_url;
    sds name;       /* The path or the URL. */
    crlSet *lists;  /* Its CRLs in force, or NULL. */
    bool inherited; /* lists are the previous path's, until its own load. */
    bool busy;      /* A job or a fetch of it is under way. */
    bool due;       /* Load again once that is done. */
    bool started;   /* The file: its first load was queued. */
    /* The file. */
    ocspFileStamp seen; /* Of the file last loaded or refused. */
    bool seen_valid;
    int stat_errno; /* Of the last stat that failed, logged once. */
    /* A URL. */
    ocspUrl url;
    sds cache_path;          /* Absolute. */
    bool cache_read;         /* The cache file was read (or tried). */
    ocspHttpFetch *fetch;    /* In flight, or NULL. */
    long long next_fetch_ms; /* Monotonic. */
    int failures;            /* In a row. */
} crlSource;

/* Work for the background worker, one job at a time, in order. */
typedef enum crlJobKind {
    CRL_JOB_READ_FILE,   /* tls-crl-file */
    CRL_JOB_READ_CACHE,  /* A URL's cache file, after a restart. */
    CRL_JOB_PARSE,       /* A URL's fetched bytes. */
    CRL_JOB_WRITE_CACHE, /* A URL's accepted bytes, to its cache file. */
} crlJobKind;

typedef struct crlJob {
    crlJobKind kind;
    unsigned long long source_id;
    sds name; /* The source's, for the lists. */
    sds path; /* What to read or write. */
    sds data; /* Bytes fetched (PARSE) or to write (WRITE_CACHE). */
    sds ca_file, ca_dir;
    crlSet *set; /* The outcome, or NULL and error. */
    char error[CRL_ERROR_LEN];
    int read_errno;      /* Why a read failed. */
    ocspFileStamp stamp; /* Of the file read. */
    bool read;           /* stamp is valid. */
} crlJob;

/* Main thread only. */
static struct {
    crlSource *file;
    crlSource *urls[TLS_CRL_MAX_URLS];
    int url_count;
    unsigned long long last_source_id;
    bool configured;   /* The sources of the config file were set up. */
    bool startup_done; /* The startup load of the file succeeded, or CONFIG SET came first. */
    list *jobs;        /* Waiting, oldest first. */
    bool job_running;
    long long last_check_ms;
    long long loads_ok, loads_failed, fetches_ok, fetches_failed, connections_closed, cache_writes_failed;
    long long loaded_time; /* Unix seconds. */
    char last_error[4 * CRL_ERROR_LEN];
} crl;

/* ------------------------------------------------------------------------- */
/* The snapshot. */

static void crlListRelease(crlList *l) {
    if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1) return;
    X509_NAME_free(l->issuer);
    zfree(l->serials);
    sdsfree(l->source);
    zfree(l);
}

static void crlSetFree(crlSet *set) {
    if (!set) return;
    for (int i = 0; i < set->count; i++) crlListRelease(set->lists[i]);
    zfree(set->lists);
    zfree(set);
}

static void crlSetRelease(crlSet *set) {
    if (!set) return;
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1) return;
    crlSetFree(set);
}

static crlSet *crlSetNew(void) {
    crlSet *set = zcalloc(sizeof(*set));
    atomic_init(&set->refs, 1);
    return set;
}

/* Add a reference to l to the set. */
static void crlSetAdd(crlSet *set, crlList *l) {
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    set->lists = zrealloc(set->lists, (set->count + 1) * sizeof(crlList *));
    set->lists[set->count++] = l;
    set->entries += l->count;
    if (l->next_update && (!set->next_update || l->next_update < set->next_update)) set->next_update = l->next_update;
}

/* Any thread: a reference to the published set, or NULL. */
static crlSet *crlSetAcquire(void) {
    if (!atomic_load_explicit(&published_set, memory_order_relaxed)) return NULL;
    pthread_mutex_lock(&set_mutex);
    crlSet *set = atomic_load_explicit(&published_set, memory_order_relaxed);
    if (set) atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&set_mutex);
    return set;
}

/* Main thread only: replace the published set (NULL: none). */
static void crlSetPublish(crlSet *set) {
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

static void crlJobFail(crlJob *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    va_end(ap);
    ERR_clear_error();
}

/* Check one CRL and add it to the set. Returns 0 with job->error set. */
static int crlAdd(crlJob *job, crlSet *set, X509_STORE *store, X509_CRL *x) {
    int index = set->count + 1;
    char issuer[128];
    X509_NAME_oneline(X509_CRL_get_issuer(x), issuer, sizeof(issuer));
    if (!tlsCrlSignedByCa(store, x)) {
        crlJobFail(job, "CRL %d (issuer %s) is not signed by a CA of tls-ca-cert-file / tls-ca-cert-dir", index,
                   issuer);
        return 0;
    }
    const ASN1_TIME *this_update = X509_CRL_get0_lastUpdate(x);
    const ASN1_TIME *next_update = X509_CRL_get0_nextUpdate(x);
    long long this_unix = asn1TimeToUnix(this_update);
    long long next_unix = next_update ? asn1TimeToUnix(next_update) : 0;
    if (!this_update || !this_unix || (next_update && !next_unix)) {
        crlJobFail(job, "CRL %d (issuer %s) has an unreadable thisUpdate or nextUpdate", index, issuer);
        return 0;
    }
    if (next_update && next_unix < this_unix) {
        crlJobFail(job, "CRL %d (issuer %s) has its nextUpdate before its thisUpdate", index, issuer);
        return 0;
    }
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(x);
    size_t count = revoked ? (size_t)sk_X509_REVOKED_num(revoked) : 0;
    crlSerial *serials = count ? zmalloc(count * sizeof(crlSerial)) : NULL;
    for (size_t i = 0; i < count; i++) {
        if (!crlSerialFrom(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i)), &serials[i])) {
            zfree(serials);
            crlJobFail(job, "CRL %d (issuer %s) lists a serial longer than %d octets", index, issuer, CRL_MAX_SERIAL);
            return 0;
        }
    }
    if (count) qsort(serials, count, sizeof(crlSerial), crlSerialCompare);

    crlList *l = zcalloc(sizeof(*l));
    atomic_init(&l->refs, 0);
    l->source = sdsdup(job->name);
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
static int crlParse(crlJob *job, crlSet *set, X509_STORE *store, const char *data, size_t len) {
    if (len == 0) {
        crlJobFail(job, "it is empty");
        return 0;
    }
    if (memmem(data, len, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (!bio) {
            crlJobFail(job, "out of memory");
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
                    crlJobFail(job, "CRL %d cannot be parsed (truncated or not a PEM X509 CRL)", set->count + 1);
                    ok = 0;
                } else if (set->count == 0) {
                    crlJobFail(job, "no PEM X509 CRL in it");
                    ok = 0;
                }
                break;
            }
            ok = crlAdd(job, set, store, x);
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
        crlJobFail(job, "neither PEM nor a single DER X509 CRL (garbage or truncated)");
        return 0;
    }
    int ok = crlAdd(job, set, store, x);
    X509_CRL_free(x);
    return ok;
}

/* The worker: read, verify and build, or write; nothing here is shared. */
static void crlJobRun(void *arg) {
    crlJob *job = arg;
    if (job->kind == CRL_JOB_WRITE_CACHE) {
        ocspRemoveLeftoverTemporaryFiles(job->path);
        if (!ocspWriteFileAtomically(job->path, (unsigned char *)job->data, sdslen(job->data))) {
            crlJobFail(job, "%s", errno == ENOTSUP ? "it exists and is not a regular file" : strerror(errno));
        }
        return;
    }
    sds data = job->data;
    if (job->kind != CRL_JOB_PARSE) {
        data = ocspReadSmallFile(job->path, TLS_CRL_MAX_FILE_BYTES, &job->stamp, &job->read_errno);
        if (!data) {
            crlJobFail(job, "cannot read it: %s",
                       job->read_errno == EFBIG ? "larger than 64 MiB" : ocspFileErrorText(job->read_errno));
            return;
        }
        job->read = true;
    }
    X509_STORE *store = X509_STORE_new();
    if (!job->ca_file && !job->ca_dir) {
        crlJobFail(job, "no CA to verify it with: tls-ca-cert-file and tls-ca-cert-dir are not set");
    } else if (!store || X509_STORE_load_locations(store, job->ca_file, job->ca_dir) != 1) {
        crlJobFail(job, "cannot load the CA certificates of tls-ca-cert-file / tls-ca-cert-dir");
    } else {
        crlSet *set = crlSetNew();
        if (crlParse(job, set, store, data, sdslen(data)))
            job->set = set;
        else
            crlSetFree(set);
    }
    X509_STORE_free(store);
    if (data != job->data) sdsfree(data);
    ERR_clear_error();
}

static void crlJobFree(void *arg) {
    crlJob *job = arg;
    if (!job) return;
    sdsfree(job->name);
    sdsfree(job->path);
    sdsfree(job->data);
    sdsfree(job->ca_file);
    sdsfree(job->ca_dir);
    crlSetFree(job->set);
    zfree(job);
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
    crl.connections_closed++;
}

/* Close the clients (replicas and the primary link included), the
 * replication handshake and the cluster bus links whose certificate set
 * lists. A client is freed as the server frees any; a cluster bus link has
 * its socket shut down, so that the cluster code tears it down (and
 * reconnects, which the handshake then refuses). */
static void crlCloseRevoked(const crlSet *set) {
    char serial[2 * CRL_MAX_SERIAL + 2];
    const crlList *l;
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
        shutdown(server.repl_transfer_s->fd, SHUT_RDWR);
    }
    if (!server.cluster_enabled || !server.cluster) return;
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
            shutdown(links[i]->conn->fd, SHUT_RDWR);
        }
    }
    dictReleaseIterator(di);
}

/* ------------------------------------------------------------------------- */
/* Sources and the published snapshot (main thread). */

static int crlSourceCount(void) {
    return (crl.file ? 1 : 0) + crl.url_count;
}

static crlSource *crlSourceAt(int i) {
    if (crl.file) {
        if (i == 0) return crl.file;
        i--;
    }
    return crl.urls[i];
}

static crlSource *crlSourceById(unsigned long long id) {
    for (int i = 0; i < crlSourceCount(); i++)
        if (crlSourceAt(i)->id == id) return crlSourceAt(i);
    return NULL;
}

static crlSource *crlSourceNew(const char *name, bool is_url) {
    crlSource *s = zcalloc(sizeof(*s));
    s->id = ++crl.last_source_id;
    s->is_url = is_url;
    s->name = sdsnew(name);
    return s;
}

static void crlSourceFree(crlSource *s) {
    if (!s) return;
    ocspHttpFetchCancel(s->fetch);
    crlSetRelease(s->lists);
    ocspUrlClear(&s->url);
    sdsfree(s->cache_path);
    sdsfree(s->name);
    zfree(s);
}

/* Publish every source's CRLs as one snapshot. */
static void crlPublishSources(void) {
    int sources = crlSourceCount();
    atomic_store(&crl_required, sources > 0);
    if (sources == 0) {
        crlSetPublish(NULL);
        return;
    }
    crlSet *set = crlSetNew();
    for (int i = 0; i < sources; i++) {
        crlSource *s = crlSourceAt(i);
        if (!s->lists) {
            set->missing++;
            continue;
        }
        for (int j = 0; j < s->lists->count; j++) crlSetAdd(set, s->lists->lists[j]);
    }
    crlSetPublish(set);
}

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
static int crlSetGoesBackwards(const crlSet *in_force, const crlSet *set, char *err, size_t size) {
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

/* Make set the CRLs of s, if they do not go backwards (else err says why),
 * publish, and close the connections they list. Takes set. */
static int crlSourceAccept(crlSource *s, crlSet *set, char *err, size_t size) {
    if (s->lists && !s->inherited && crlSetGoesBackwards(s->lists, set, err, size)) {
        crlSetFree(set);
        return 0;
    }
    crlSetRelease(s->lists);
    s->lists = set;
    s->inherited = false;
    crl.loaded_time = time(NULL);
    crlPublishSources();
    crlCloseRevoked(set);
    return 1;
}

static void crlNoteError(const crlSource *s, const char *error) {
    snprintf(crl.last_error, sizeof(crl.last_error), "%s: %s", s->name, error);
}

/* ------------------------------------------------------------------------- */
/* The job queue (main thread). */

static void crlJobDone(void *arg);

static void crlJobNext(void) {
    if (crl.job_running || !crl.jobs || listLength(crl.jobs) == 0) return;
    listNode *ln = listFirst(crl.jobs);
    crlJob *job = listNodeValue(ln);
    listDelNode(crl.jobs, ln);
    unsigned long long source_id = job->source_id;
    crl.job_running = true;
    if (!ocspWorkerRunTask(job, crlJobRun, crlJobDone, crlJobFree)) {
        /* The job is freed: its source is no longer busy. */
        crl.job_running = false;
        crlSource *s = crlSourceById(source_id);
        if (s) s->busy = false;
        serverLog(LL_WARNING, "CRL: cannot reach the background worker");
    }
}

static void crlJobQueue(crlSource *s, crlJobKind kind, const char *path, sds data) {
    crlJob *job = zcalloc(sizeof(*job));
    job->kind = kind;
    job->source_id = s->id;
    job->name = sdsdup(s->name);
    job->path = path ? sdsnew(path) : NULL;
    job->data = data;
    serverTLSContextConfig *tls = &server.tls_ctx_config;
    job->ca_file = tls->ca_cert_file && tls->ca_cert_file[0] ? sdsnew(tls->ca_cert_file) : NULL;
    job->ca_dir = tls->ca_cert_dir && tls->ca_cert_dir[0] ? sdsnew(tls->ca_cert_dir) : NULL;
    if (kind != CRL_JOB_WRITE_CACHE) s->busy = true;
    if (!crl.jobs) crl.jobs = listCreate();
    listAddNodeTail(crl.jobs, job);
    crlJobNext();
}

/* ------------------------------------------------------------------------- */
/* The file. */

static void crlFileLoad(void) {
    crlSource *s = crl.file;
    if (s->busy) {
        s->due = true;
        return;
    }
    s->due = false;
    s->started = true;
    crlJobQueue(s, CRL_JOB_READ_FILE, s->name, NULL);
}

static void crlFileLoaded(crlSource *s, crlJob *job) {
    if (job->read) {
        s->seen = job->stamp;
        s->seen_valid = true;
    }
    crlSet *set = job->set;
    job->set = NULL;
    if (set && crlSourceAccept(s, set, job->error, sizeof(job->error))) {
        crl.loads_ok++;
        crl.startup_done = true;
        crl.last_error[0] = '\0';
        serverLog(LL_NOTICE, "CRL: loaded %d CRL%s with %zu revoked certificate%s from %s", s->lists->count,
                  s->lists->count == 1 ? "" : "s", s->lists->entries, s->lists->entries == 1 ? "" : "s", s->name);
    } else {
        crl.loads_failed++;
        crlNoteError(s, job->error);
        if (!crl.startup_done) {
            serverLog(LL_WARNING,
                      "CRL: refusing tls-crl-file %s: %s; without its CRLs the server does not start (fail closed)",
                      s->name, job->error);
            exit(1);
        }
        serverLog(LL_WARNING, "CRL: refusing tls-crl-file %s: %s; the CRLs loaded before stay in force", s->name,
                  job->error);
    }
    if (s->due) crlFileLoad();
}

static int crlStampEqual(const ocspFileStamp *a, const ocspFileStamp *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns;
}

static void crlStampOf(const struct stat *st, ocspFileStamp *stamp) {
    memset(stamp, 0, sizeof(*stamp));
    stamp->dev = st->st_dev;
    stamp->ino = st->st_ino;
    stamp->size = st->st_size;
    stamp->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    stamp->ctime_ns = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

/* Once a second: a file with a new stamp is loaded. The stamp is taken as
 * seen before the load, so that a file that cannot be read is not read
 * again until it changes. */
static void crlFileWatch(crlSource *s) {
    if (s->busy) return;
    struct stat st;
    if (stat(s->name, &st) == -1) {
        if (!s->started) {
            crlFileLoad(); /* At startup: the load says why, and stops the server. */
            return;
        }
        if (s->stat_errno != errno) {
            s->stat_errno = errno;
            crl.loads_failed++;
            char error[CRL_ERROR_LEN];
            snprintf(error, sizeof(error), "cannot read it: %s", strerror(errno));
            crlNoteError(s, error);
            serverLog(LL_WARNING, "CRL: cannot read tls-crl-file %s: %s; the CRLs loaded before stay in force", s->name,
                      strerror(errno));
        }
        return;
    }
    s->stat_errno = 0;
    ocspFileStamp now_stamp;
    crlStampOf(&st, &now_stamp);
    if (s->started && s->seen_valid && crlStampEqual(&now_stamp, &s->seen)) return;
    s->seen = now_stamp;
    s->seen_valid = true;
    crlFileLoad();
}

/* ------------------------------------------------------------------------- */
/* The URLs. */

static long long crlMonotonicMs(void) {
    return (long long)(getMonotonicUs() / 1000);
}

static long long crlRandomMs(long long range) {
    return range > 0 ? (long long)(range * ((double)rand() / RAND_MAX)) : 0;
}

static long long crlIntervalMs(void) {
    int interval = server.tls_ocsp_config.max_refresh_interval;
    return interval > 0 ? interval * 1000LL : CRL_DEFAULT_INTERVAL_MS;
}

/* After a verified CRL, as for the staple (tls_ocsp.c): at a random point
 * of the later half of the refresh margin of the earliest nextUpdate among
 * the source's CRLs, at most the max refresh interval away (less up to a
 * tenth, at random), at least the retry delay. */
static void crlScheduleAfterSuccess(crlSource *s) {
    long long now = mstime(), at = 0;
    const crlList *first = NULL;
    for (int i = 0; i < s->lists->count; i++) {
        const crlList *l = s->lists->lists[i];
        if (l->next_update && (!first || l->next_update < first->next_update)) first = l;
    }
    long long interval = crlIntervalMs();
    if (first) {
        int percent = server.tls_ocsp_config.refresh_margin;
        if (percent < 0) percent = -percent;
        long long margin = (first->next_update - first->this_update) * 1000 * percent / 100;
        at = first->next_update * 1000 - margin + crlRandomMs(margin / 2);
    }
    if (!first || at > now + interval) at = now + interval - crlRandomMs(interval / 10);
    long long floor = server.tls_ocsp_config.retry_delay * 1000LL;
    if (at < now + floor) at = now + floor;
    s->next_fetch_ms = crlMonotonicMs() + (at - now);
}

/* After a failure: the retry delay doubled per failure in a row, at most the
 * max refresh interval, +-10% so that servers started together spread out. */
static long long crlDelayAfterFailure(const crlSource *s) {
    long long cap = crlIntervalMs(), delay = server.tls_ocsp_config.retry_delay * 1000LL;
    for (int i = 1; i < s->failures && delay < cap; i++) delay = delay > cap / 2 ? cap : delay * 2;
    if (delay > cap) delay = cap;
    delay = delay * 9 / 10 + crlRandomMs(delay / 5);
    return delay < 1000 ? 1000 : delay;
}

static void crlUrlFailed(crlSource *s, const char *error) {
    s->busy = false;
    s->failures++;
    crl.fetches_failed++;
    crlNoteError(s, error);
    long long delay = crlDelayAfterFailure(s);
    s->next_fetch_ms = crlMonotonicMs() + delay;
    serverLog(LL_WARNING, "CRL: %s: %s; %s; retrying in %lld s (failure %d in a row)", s->name, error,
              s->lists ? "the CRLs loaded before stay in force" : "no CRL of it is in force yet", (delay + 999) / 1000,
              s->failures);
}

static void crlFetchDone(void *privdata, const ocspHttpResult *result) {
    crlSource *s = privdata;
    s->fetch = NULL;
    if (result->err != OCSP_ERR_NONE) {
        char error[2 * CRL_ERROR_LEN];
        snprintf(error, sizeof(error), "fetch failed: %s (%s)", ocsp_error_names[result->err],
                 result->detail ? result->detail : "");
        crlUrlFailed(s, error);
        return;
    }
    crlJobQueue(s, CRL_JOB_PARSE, NULL, sdsnewlen(result->body, result->body_len));
}

static void crlFetchStart(crlSource *s) {
    const char *proxy_config = server.tls_ocsp_config.proxy, *err, *detail = "cannot build the request";
    ocspUrl proxy = {0};
    bool via_proxy = proxy_config && ocspUrlParse(proxy_config, &proxy, 1, &err);
    ocspHttpRequest request = {
        .name = s->name,
        .target = &s->url,
        .proxy = via_proxy ? &proxy : NULL,
        .response_type = "application/pkix-crl",
        .any_response_type = true,
        .max_body = server.tls_crl_config.max_bytes,
        .timeout_ms = server.tls_ocsp_config.response_timeout * 1000,
    };
    s->fetch = ocspHttpFetchStart(&request, crlFetchDone, s, &detail);
    ocspUrlClear(&proxy);
    if (s->fetch) {
        s->busy = true;
        return;
    }
    char error[2 * CRL_ERROR_LEN];
    snprintf(error, sizeof(error), "cannot fetch: %s", detail);
    crlUrlFailed(s, error);
}

static void crlUrlFetched(crlSource *s, crlJob *job) {
    crlSet *set = job->set;
    job->set = NULL;
    if (!set) {
        char error[2 * CRL_ERROR_LEN];
        snprintf(error, sizeof(error), "refusing what it answered: %s", job->error);
        crlUrlFailed(s, error);
        return;
    }
    if (!crlSourceAccept(s, set, job->error, sizeof(job->error))) {
        char error[2 * CRL_ERROR_LEN];
        snprintf(error, sizeof(error), "refusing what it answered: %s", job->error);
        crlUrlFailed(s, error);
        return;
    }
    s->busy = false;
    s->failures = 0;
    crl.fetches_ok++;
    crl.last_error[0] = '\0';
    crlScheduleAfterSuccess(s);
    serverLog(LL_NOTICE, "CRL: fetched %d CRL%s with %zu revoked certificate%s from %s; next fetch in %lld s",
              s->lists->count, s->lists->count == 1 ? "" : "s", s->lists->entries, s->lists->entries == 1 ? "" : "s",
              s->name, (s->next_fetch_ms - crlMonotonicMs() + 999) / 1000);
    /* Keep it for a restart while the CRL server is down. */
    crlJobQueue(s, CRL_JOB_WRITE_CACHE, s->cache_path, job->data);
    job->data = NULL;
}

static void crlCacheRead(crlSource *s, crlJob *job) {
    s->busy = false;
    s->cache_read = true;
    crlSet *set = job->set;
    job->set = NULL;
    /* What the cache holds may be old: fetched right away either way. */
    if (set && crlSourceAccept(s, set, job->error, sizeof(job->error))) {
        serverLog(LL_NOTICE,
                  "CRL: loaded %d CRL%s with %zu revoked certificate%s of %s from its cache file %s; fetching it now",
                  s->lists->count, s->lists->count == 1 ? "" : "s", s->lists->entries,
                  s->lists->entries == 1 ? "" : "s", s->name, s->cache_path);
    } else if (!(job->read_errno == ENOENT && !job->read))
        serverLog(LL_WARNING, "CRL: ignoring the cache file %s of %s: %s", s->cache_path, s->name, job->error);
    s->next_fetch_ms = 0;
}

/* The cache file of a URL: in dir, named after a hash of the URL. */
static sds crlCachePath(const char *url) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)url, strlen(url), digest);
    sds name = sdsnew("crl-cache-");
    for (int i = 0; i < 8; i++) name = sdscatprintf(name, "%02x", digest[i]);
    name = sdscat(name, ".crl");
    sds path = getAbsolutePath(name);
    if (!path) path = sdsdup(name);
    sdsfree(name);
    return path;
}

static void crlUrlsCron(void) {
    long long now = crlMonotonicMs();
    for (int i = 0; i < crl.url_count; i++) {
        crlSource *s = crl.urls[i];
        if (s->busy) continue;
        if (!s->cache_read)
            crlJobQueue(s, CRL_JOB_READ_CACHE, s->cache_path, NULL);
        else if (now >= s->next_fetch_ms)
            crlFetchStart(s);
    }
}

/* ------------------------------------------------------------------------- */
/* Jobs done, the cron, settings (main thread). */

static void crlJobDone(void *arg) {
    crlJob *job = arg;
    crl.job_running = false;
    crlSource *s = crlSourceById(job->source_id);
    if (!s) {
        /* Its source went away meanwhile (CONFIG SET): of no use. */
    } else if (job->kind == CRL_JOB_WRITE_CACHE) {
        if (job->error[0]) {
            crl.cache_writes_failed++;
            serverLog(LL_WARNING, "CRL: cannot write the cache file %s of %s: %s; the CRLs in force are unaffected",
                      job->path, s->name, job->error);
        }
    } else {
        s->busy = false;
        if (job->kind == CRL_JOB_READ_FILE)
            crlFileLoaded(s, job);
        else if (job->kind == CRL_JOB_READ_CACHE)
            crlCacheRead(s, job);
        else
            crlUrlFetched(s, job);
    }
    crlJobFree(job);
    crlJobNext();
}

/* Log, once each, the CRLs that passed their nextUpdate. */
static void crlCheckStale(void) {
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

static int crlUrlsChanged(const char **err);

static void crlCron(void) {
    long long now = mstime();
    if (now - crl.last_check_ms < CRL_CHECK_INTERVAL_MS) return;
    crl.last_check_ms = now;
    if (!crl.configured) {
        /* The sources of the config file: every certificate is refused
         * until their CRLs are in force, so nothing waits for them. */
        crl.configured = true;
        if (server.tls_crl_config.file) crl.file = crlSourceNew(server.tls_crl_config.file, false);
        const char *unused;
        crlUrlsChanged(&unused);
    }
    if (crl.file) crlFileWatch(crl.file);
    crlUrlsCron();
    crlCheckStale();
}

/* CONFIG SET tls-crl-file: a new path is loaded at once (a path that does
 * not exist is refused); none drops its CRLs. */
static int crlFileChanged(const char **err) {
    const char *path = server.tls_crl_config.file;
    if (!crl.configured) return 1; /* Before the first cron: it sets up what the config says. */
    /* CONFIG SET of the same path, or the old value restored after a
     * failed CONFIG SET: nothing changed (the watch sees file changes). */
    if ((!path && !crl.file) || (path && crl.file && !strcmp(path, crl.file->name))) return 1;
    struct stat st;
    if (path && stat(path, &st) == -1) {
        *err = "tls-crl-file: cannot access the file";
        return 0;
    }
    crlSource *old = crl.file;
    crl.file = path ? crlSourceNew(path, false) : NULL;
    if (crl.file && old && old->lists) {
        /* A new path keeps the CRLs in force until its own are loaded; a
         * file it cannot load never stops the server (only one at startup
         * does). */
        crl.file->lists = old->lists;
        crl.file->inherited = true;
        old->lists = NULL;
    }
    crlSourceFree(old);
    crl.startup_done = true;
    if (!path) serverLog(LL_NOTICE, "CRL: tls-crl-file unset; its CRLs are no longer in force");
    crlPublishSources();
    if (crl.file) crlFileLoad();
    return 1;
}

/* CONFIG SET tls-crl-urls: URLs kept keep their CRLs and schedule; new ones
 * read their cache file, then fetch; dropped ones drop their CRLs. */
static int crlUrlsChanged(const char **err) {
    UNUSED(err);
    if (!crl.configured) return 1; /* Before the first cron: it sets up what the config says. */
    int count = 0;
    sds *urls = server.tls_crl_config.urls ? sdssplitargs(server.tls_crl_config.urls, &count) : NULL;
    crlSource *kept[TLS_CRL_MAX_URLS] = {0};
    int kept_count = 0;
    for (int i = 0; i < count && kept_count < TLS_CRL_MAX_URLS; i++) {
        crlSource *s = NULL;
        for (int j = 0; j < crl.url_count; j++) {
            if (crl.urls[j] && !strcmp(crl.urls[j]->name, urls[i])) {
                s = crl.urls[j];
                crl.urls[j] = NULL;
            }
        }
        if (!s) {
            const char *parse_err;
            s = crlSourceNew(urls[i], true);
            if (!ocspUrlParse(urls[i], &s->url, 0, &parse_err)) { /* Validated before: not expected. */
                crlSourceFree(s);
                continue;
            }
            s->cache_path = crlCachePath(urls[i]);
        }
        kept[kept_count++] = s;
    }
    sdsfreesplitres(urls, count);
    for (int j = 0; j < crl.url_count; j++) {
        if (crl.urls[j]) serverLog(LL_NOTICE, "CRL: %s is no longer in tls-crl-urls; its CRLs are no longer in force", crl.urls[j]->name);
        crlSourceFree(crl.urls[j]);
    }
    memcpy(crl.urls, kept, sizeof(kept));
    crl.url_count = kept_count;
    crlPublishSources();
    crlUrlsCron();
    return 1;
}

static void crlStaleChanged(void) {
    atomic_store(&stale_policy, server.tls_crl_config.stale);
}

/* Each URL waiting for its next fetch: timed again by the new settings, as
 * after its last success or failure. */
static void crlScheduleChanged(void) {
    for (int i = 0; i < crl.url_count; i++) {
        crlSource *s = crl.urls[i];
        if (s->busy || !s->cache_read) continue;
        if (s->lists && s->failures == 0) {
            crlScheduleAfterSuccess(s);
        } else {
            long long retry_at = crlMonotonicMs() + crlDelayAfterFailure(s);
            if (retry_at < s->next_fetch_ms) s->next_fetch_ms = retry_at;
        }
    }
}

/* OCSP REFRESH: the file read again, every URL fetched now. */
static int crlRefresh(void) {
    if (crl.file) crlFileLoad();
    for (int i = 0; i < crl.url_count; i++) {
        crlSource *s = crl.urls[i];
        s->next_fetch_ms = 0;
        if (!s->busy && s->cache_read) crlFetchStart(s);
    }
    return crlSourceCount() > 0;
}

static sds crlInfo(sds info) {
    crlSet *set = crlSetAcquire();
    long long now = time(NULL), next_fetch = -1, mono = crlMonotonicMs();
    int stale = 0;
    for (int i = 0; set && i < set->count; i++)
        if (set->lists[i]->next_update && set->lists[i]->next_update < now) stale++;
    for (int i = 0; i < crl.url_count; i++) {
        const crlSource *s = crl.urls[i];
        if (s->busy) continue;
        long long in = s->next_fetch_ms > mono ? (s->next_fetch_ms - mono + 999) / 1000 : 0;
        if (next_fetch < 0 || in < next_fetch) next_fetch = in;
    }
    sds error = sdsnew(crl.last_error);
    sdsmapchars(error, "\r\n", "  ", 2);
    info = sdscatprintf(info,
                        "tls_crl_sources:%d\r\n"
                        "tls_crl_sources_missing:%d\r\n"
                        "tls_crl_count:%d\r\n"
                        "tls_crl_entries:%zu\r\n"
                        "tls_crl_next_update:%lld\r\n"
                        "tls_crl_stale:%d\r\n"
                        "tls_crl_stale_policy:%s\r\n"
                        "tls_crl_loaded_time:%lld\r\n"
                        "tls_crl_loads_ok:%lld\r\n"
                        "tls_crl_loads_failed:%lld\r\n"
                        "tls_crl_fetches_ok:%lld\r\n"
                        "tls_crl_fetches_failed:%lld\r\n"
                        "tls_crl_next_fetch_in_seconds:%lld\r\n"
                        "tls_crl_cache_write_failures:%lld\r\n"
                        "tls_crl_last_error:%s\r\n"
                        "tls_crl_handshakes_refused:%lld\r\n"
                        "tls_crl_connections_closed:%lld\r\n",
                        crlSourceCount(), set ? set->missing : crlSourceCount(), set ? set->count : 0,
                        set ? set->entries : 0, set ? set->next_update : 0, stale,
                        atomic_load(&stale_policy) == TLS_CRL_STALE_REFUSE ? "refuse" : "keep", crl.loaded_time,
                        crl.loads_ok, crl.loads_failed, crl.fetches_ok, crl.fetches_failed, next_fetch,
                        crl.cache_writes_failed, error, atomic_load_explicit(&handshakes_refused, memory_order_relaxed),
                        crl.connections_closed);
    sdsfree(error);
    crlSetRelease(set);
    return info;
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
            snprintf(why, sizeof(why), "the CRLs of %d source%s (tls-crl-file, tls-crl-urls) are not loaded yet",
                     set ? set->missing : crlSourceCount(), set && set->missing == 1 ? "" : "s");
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

static const tlsCrlChecker checker = {
    .file_changed = crlFileChanged,
    .urls_changed = crlUrlsChanged,
    .stale_changed = crlStaleChanged,
    .schedule_changed = crlScheduleChanged,
    .refresh = crlRefresh,
    .cron = crlCron,
    .info = crlInfo,
};

void tlsCrlInit(void) {
    tlsCrlRegisterChecker(&checker);
}

#endif
