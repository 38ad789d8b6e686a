/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The CRL set of tls-crl-file: loading and verifying the CRLs, the
 * immutable snapshot handshakes read, the verify callback that refuses a
 * listed certificate, closing the connections a new CRL lists, and INFO.
 * Linked where tls.c's OpenSSL code is: the server, or valkey-tls.so
 * (tls_crl.h); the server side (tls_crl_hooks.c) reaches it through the
 * table tlsCrlInit() registers.
 *
 *   watch   serverCron -> tlsOcspCron -> tlsCrlCron -> crlCron(): once a
 *           second a stat of the file; a new stamp (rename, symlink swap,
 *           rewrite) starts a load. CONFIG SET tls-crl-file starts one at
 *           once.
 *   load    crlLoadRun() in the background worker of the OCSP jobs
 *           (ocspWorkerRunTask, tls_ocsp_worker.c): reads the file (PEM, one
 *           or more CRLs, or a single DER CRL), loads the CA certificates of
 *           tls-ca-cert-file / tls-ca-cert-dir, verifies each CRL (signed by
 *           one of them, nextUpdate not before thisUpdate) and builds the
 *           snapshot: per CRL its issuer and its serials, sorted.
 *   swap    crlLoadDone() on the main thread publishes the snapshot, or
 *           logs why the file was refused and keeps the previous one (at
 *           startup, a refused file stops the server: fail closed; until
 *           that first load is done every certificate is refused, so the
 *           main thread never waits for it), then
 *           closes the clients, replication and cluster bus links whose
 *           certificate the new set lists.
 *   check   crlVerifyCallback(), set on every context tls.c creates, in the
 *           handshake: a certificate of the chain whose issuer has a loaded
 *           CRL listing its serial fails the handshake. Until the first load
 *           is done every certificate is refused.
 *
 * Threads: the worker runs crlLoadRun() on a load of its own (nothing
 * shared). The verify callback runs in whichever thread does the handshake
 * (the main thread or an I/O thread): it takes a reference to the published
 * snapshot under a mutex held for a pointer copy, as tls_ocsp.c does for the
 * staple, so the main thread may swap it at any time; its counters are
 * atomics. Everything else runs on the main thread.
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this file only where OpenSSL is. */

#include "cluster.h"
#include "cluster_legacy.h"
#include "tls_ocsp_worker.h"

#include <openssl/err.h>
#include <openssl/pem.h>
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

typedef struct crlSerial {
    unsigned char neg, len;
    unsigned char bytes[CRL_MAX_SERIAL];
} crlSerial;

/* One CRL of the file. */
typedef struct crlList {
    int index;         /* 1-based, in the file. */
    X509_NAME *issuer; /* Immutable once published. */
    char issuer_text[128];
    long long this_update, next_update; /* Unix seconds; next_update 0: none. */
    size_t count;
    crlSerial *serials; /* Sorted by crlSerialCompare(). */
} crlList;

/* The published CRL set: immutable once published, freed by its last reader. */
typedef struct crlSet {
    atomic_int refs;
    sds path;
    int count;
    crlList *lists;
    size_t entries;
    long long next_update; /* The earliest, 0: none. */
} crlSet;

static pthread_mutex_t set_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(crlSet *) published_set = NULL;
/* A path is configured: until a set is published, every certificate is refused. */
static atomic_bool crl_required = false;
static atomic_llong handshakes_refused = 0;
static atomic_llong last_refusal_log_ms = 0;

/* A load handed to the worker, and back. */
typedef struct crlLoad {
    sds path, ca_file, ca_dir;
    unsigned long long generation;
    crlSet *set; /* The outcome, or NULL and error. */
    char error[CRL_ERROR_LEN];
    ocspFileStamp stamp; /* Of the file read. */
    bool read;           /* stamp is valid. */
} crlLoad;

/* Main thread only. */
static struct {
    bool started;                  /* The first load was submitted. */
    bool startup_done;             /* The startup load succeeded, or CONFIG SET came first. */
    bool loading;                  /* A load is in the worker. */
    bool load_due;                 /* Load again once the one in the worker is done. */
    unsigned long long generation; /* Bumped when the path changes. */
    sds path;                      /* The path loads are for (tls-crl-file). */
    ocspFileStamp seen;            /* Of the file last loaded or refused. */
    bool seen_valid;
    int stat_errno; /* Of the last stat that failed, logged once. */
    long long last_check_ms;
    long long loads_ok, loads_failed, connections_closed;
    long long loaded_time; /* Unix seconds. */
    char last_error[CRL_ERROR_LEN];
} crl;

/* ------------------------------------------------------------------------- */
/* The snapshot. */

static void crlSetFree(crlSet *set) {
    if (!set) return;
    for (int i = 0; i < set->count; i++) {
        X509_NAME_free(set->lists[i].issuer);
        zfree(set->lists[i].serials);
    }
    zfree(set->lists);
    sdsfree(set->path);
    zfree(set);
}

static void crlSetRelease(crlSet *set) {
    if (!set) return;
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1) return;
    crlSetFree(set);
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

/* The CRL of set that lists cert, or NULL. */
static const crlList *crlSetLookup(const crlSet *set, X509 *cert, crlSerial *key) {
    if (!crlSerialFrom(X509_get0_serialNumber(cert), key)) return NULL;
    const X509_NAME *issuer = X509_get_issuer_name(cert);
    for (int i = 0; i < set->count; i++) {
        const crlList *list = &set->lists[i];
        if (X509_NAME_cmp(list->issuer, issuer) != 0) continue;
        if (list->count && bsearch(key, list->serials, list->count, sizeof(crlSerial), crlSerialCompare)) return list;
    }
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Loading, in the worker. */

static long long asn1TimeToUnix(const ASN1_TIME *t) {
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm);
}

static void crlLoadFail(crlLoad *load, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(load->error, sizeof(load->error), fmt, ap);
    va_end(ap);
    ERR_clear_error();
}

/* Is one of the CA certificates for the CRL's issuer its signer? */
static int crlSignedByCa(X509_STORE *store, X509_CRL *x) {
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    if (!sctx || X509_STORE_CTX_init(sctx, store, NULL, NULL) != 1) {
        X509_STORE_CTX_free(sctx);
        return 0;
    }
    int ok = 0;
    STACK_OF(X509) *cas = X509_STORE_CTX_get1_certs(sctx, X509_CRL_get_issuer(x));
    for (int i = 0; !ok && cas && i < sk_X509_num(cas); i++) {
        X509 *ca = sk_X509_value(cas, i);
        if ((X509_get_extension_flags(ca) & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca) & KU_CRL_SIGN)) continue;
        EVP_PKEY *key = X509_get0_pubkey(ca);
        ok = key && X509_CRL_verify(x, key) == 1;
    }
    sk_X509_pop_free(cas, X509_free);
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return ok;
}

/* Check one CRL and add it to the set. Returns 0 with load->error set. */
static int crlAdd(crlLoad *load, crlSet *set, X509_STORE *store, X509_CRL *x) {
    int index = set->count + 1;
    char issuer[128];
    X509_NAME_oneline(X509_CRL_get_issuer(x), issuer, sizeof(issuer));
    if (!crlSignedByCa(store, x)) {
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
            crlLoadFail(load, "CRL %d (issuer %s) lists a serial longer than %d octets", index, issuer,
                        CRL_MAX_SERIAL);
            return 0;
        }
    }
    if (count) qsort(serials, count, sizeof(crlSerial), crlSerialCompare);

    set->lists = zrealloc(set->lists, (set->count + 1) * sizeof(crlList));
    crlList *list = &set->lists[set->count++];
    memset(list, 0, sizeof(*list));
    list->index = index;
    list->issuer = X509_NAME_dup(X509_CRL_get_issuer(x));
    memcpy(list->issuer_text, issuer, sizeof(issuer));
    list->this_update = this_unix;
    list->next_update = next_unix;
    list->count = count;
    list->serials = serials;
    set->entries += count;
    if (next_unix && (!set->next_update || next_unix < set->next_update)) set->next_update = next_unix;
    return 1;
}

/* Parse the file's bytes into the set: PEM (one CRL or more, nothing else)
 * or a single DER CRL. */
static int crlParse(crlLoad *load, crlSet *set, X509_STORE *store, const char *data, size_t len) {
    if (len == 0) {
        crlLoadFail(load, "the file is empty");
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
                    crlLoadFail(load, "no PEM X509 CRL in the file");
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

/* The worker: read, verify and build; nothing here is shared. */
static void crlLoadRun(void *arg) {
    crlLoad *load = arg;
    int error = 0;
    sds data = ocspReadSmallFile(load->path, TLS_CRL_MAX_FILE_BYTES, &load->stamp, &error);
    if (!data) {
        crlLoadFail(load, "cannot read it: %s",
                    error == EFBIG ? "larger than 64 MiB" : ocspFileErrorText(error));
        return;
    }
    load->read = true;
    X509_STORE *store = X509_STORE_new();
    if (!load->ca_file && !load->ca_dir) {
        crlLoadFail(load, "no CA to verify it with: tls-ca-cert-file and tls-ca-cert-dir are not set");
    } else if (!store || X509_STORE_load_locations(store, load->ca_file, load->ca_dir) != 1) {
        crlLoadFail(load, "cannot load the CA certificates of tls-ca-cert-file / tls-ca-cert-dir");
    } else {
        crlSet *set = zcalloc(sizeof(*set));
        atomic_init(&set->refs, 1);
        set->path = sdsdup(load->path);
        if (crlParse(load, set, store, data, sdslen(data)))
            load->set = set;
        else
            crlSetFree(set);
    }
    X509_STORE_free(store);
    sdsfree(data);
    ERR_clear_error();
}

static void crlLoadFree(void *arg) {
    crlLoad *load = arg;
    if (!load) return;
    sdsfree(load->path);
    sdsfree(load->ca_file);
    sdsfree(load->ca_dir);
    crlSetFree(load->set);
    zfree(load);
}

/* ------------------------------------------------------------------------- */
/* Connections already open. */

/* Is the certificate of conn listed by set? */
static const crlList *crlConnectionRevoked(const crlSet *set, connection *conn, char *serial, size_t size) {
    if (!conn || !connIsTLS(conn)) return NULL;
    sds pem = connGetPeerCert(conn);
    if (!pem) return NULL;
    const crlList *list = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)sdslen(pem));
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    crlSerial key;
    if (cert) list = crlSetLookup(set, cert, &key);
    if (list) crlSerialText(&key, serial, size);
    X509_free(cert);
    BIO_free(bio);
    sdsfree(pem);
    ERR_clear_error();
    return list;
}

static void crlLogClosed(const crlSet *set, const crlList *list, const char *who, const char *serial) {
    serverLog(LL_WARNING, "CRL: closing %s: its certificate (serial %s) is revoked by CRL %d of %s (issuer %s)", who,
              serial, list->index, set->path, list->issuer_text);
    crl.connections_closed++;
}

/* Close the clients (replicas and the primary link included), the
 * replication handshake and the cluster bus links whose certificate set
 * lists. A client is freed as the server frees any; a cluster bus link has
 * its socket shut down, so that the cluster code tears it down (and
 * reconnects, which the handshake then refuses). */
static void crlCloseRevoked(const crlSet *set) {
    char serial[2 * CRL_MAX_SERIAL + 2];
    const crlList *list;
    listIter li;
    listNode *ln;
    listRewind(server.clients, &li);
    while ((ln = listNext(&li)) != NULL) {
        client *c = listNodeValue(ln);
        if (!(list = crlConnectionRevoked(set, c->conn, serial, sizeof(serial)))) continue;
        char who[256];
        snprintf(who, sizeof(who), "%s id=%llu addr=%s user=%s",
                 c == server.primary ? "the primary link" : "client", (unsigned long long)c->id,
                 getClientPeerId(c), c->user ? c->user->name : "");
        crlLogClosed(set, list, who, serial);
        freeClientAsync(c);
    }
    if (server.repl_transfer_s && (list = crlConnectionRevoked(set, server.repl_transfer_s, serial, sizeof(serial)))) {
        crlLogClosed(set, list, "the replication link to the primary", serial);
        shutdown(server.repl_transfer_s->fd, SHUT_RDWR);
    }
    if (!server.cluster_enabled || !server.cluster) return;
    dictIterator *di = dictGetSafeIterator(server.cluster->nodes);
    dictEntry *de;
    while ((de = dictNext(di)) != NULL) {
        clusterNode *node = dictGetVal(de);
        clusterLink *links[2] = {node->link, node->inbound_link};
        for (int i = 0; i < 2; i++) {
            if (!links[i] || !(list = crlConnectionRevoked(set, links[i]->conn, serial, sizeof(serial)))) continue;
            char who[256];
            snprintf(who, sizeof(who), "the cluster bus link %s node %.40s (%s:%d)", i == 0 ? "to" : "from",
                     node->name, node->ip, node->tls_port ? node->tls_port : node->tcp_port);
            crlLogClosed(set, list, who, serial);
            shutdown(links[i]->conn->fd, SHUT_RDWR);
        }
    }
    dictReleaseIterator(di);
}

/* ------------------------------------------------------------------------- */
/* The main thread: watch, load, swap. */

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

static void crlLoadDone(void *arg);

static void crlLoadStart(void) {
    if (crl.loading) {
        crl.load_due = true;
        return;
    }
    crlLoad *load = zcalloc(sizeof(*load));
    load->path = sdsnew(server.tls_crl_file);
    serverTLSContextConfig *tls = &server.tls_ctx_config;
    load->ca_file = tls->ca_cert_file && tls->ca_cert_file[0] ? sdsnew(tls->ca_cert_file) : NULL;
    load->ca_dir = tls->ca_cert_dir && tls->ca_cert_dir[0] ? sdsnew(tls->ca_cert_dir) : NULL;
    load->generation = crl.generation;
    atomic_store(&crl_required, true);
    crl.load_due = false;
    crl.started = true;
    if (!ocspWorkerRunTask(load, crlLoadRun, crlLoadDone, crlLoadFree)) {
        serverLog(LL_WARNING, "CRL: cannot reach the background worker to load %s", server.tls_crl_file);
        return;
    }
    crl.loading = true;
}

/* The latest thisUpdate among the set's CRLs from ISSUER, 0 if it has none. */
static long long crlLatestFrom(const crlSet *set, X509_NAME *issuer) {
    long long latest = 0;
    for (int i = 0; i < set->count; i++)
        if (X509_NAME_cmp(set->lists[i].issuer, issuer) == 0 && set->lists[i].this_update > latest)
            latest = set->lists[i].this_update;
    return latest;
}

/* A new file at the same path must not un-revoke by going backwards: every
 * issuer with a CRL in force keeps one, no older than the one in force (a
 * stale copy restored by a backup or a deploy job is refused). Changing the
 * path (CONFIG SET) is the operator's explicit way to start over. */
static int crlSetGoesBackwards(const crlSet *in_force, const crlSet *set, char *err, size_t size) {
    for (int i = 0; i < in_force->count; i++) {
        const crlList *old = &in_force->lists[i];
        long long latest = crlLatestFrom(set, old->issuer);
        if (latest == 0) {
            snprintf(err, size, "it has no CRL of issuer %s, whose CRL is in force", old->issuer_text);
            return 1;
        }
        if (latest < crlLatestFrom(in_force, old->issuer)) {
            snprintf(err, size, "its CRL of issuer %s is older (thisUpdate) than the one in force",
                     old->issuer_text);
            return 1;
        }
    }
    return 0;
}

static void crlLoadDone(void *arg) {
    crlLoad *load = arg;
    crl.loading = false;
    if (load->generation != crl.generation || !server.tls_crl_file) {
        /* The path changed meanwhile: this load is of no use. */
        crlLoadFree(load);
        if (server.tls_crl_file) crlLoadStart();
        return;
    }
    if (load->read) {
        crl.seen = load->stamp;
        crl.seen_valid = true;
    }
    crlSet *in_force = crlSetAcquire();
    if (load->set && in_force && !strcmp(in_force->path, load->path) &&
        crlSetGoesBackwards(in_force, load->set, load->error, sizeof(load->error))) {
        crlSetFree(load->set);
        load->set = NULL;
    }
    crlSetRelease(in_force);
    if (!load->set) {
        crl.loads_failed++;
        snprintf(crl.last_error, sizeof(crl.last_error), "%s", load->error);
        if (!crl.startup_done) {
            serverLog(LL_WARNING, "CRL: refusing tls-crl-file %s: %s; without its CRLs the server does not start (fail closed)",
                      load->path, load->error);
            exit(1);
        }
        serverLog(LL_WARNING, "CRL: refusing tls-crl-file %s: %s; the CRLs loaded before stay in force", load->path,
                  load->error);
    } else {
        crlSet *set = load->set;
        load->set = NULL;
        crl.loads_ok++;
        crl.startup_done = true;
        crl.loaded_time = time(NULL);
        crl.last_error[0] = '\0';
        serverLog(LL_NOTICE, "CRL: loaded %d CRL%s with %zu revoked certificate%s from %s", set->count,
                  set->count == 1 ? "" : "s", set->entries, set->entries == 1 ? "" : "s", set->path);
        crlSetPublish(set);
        atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
        crlCloseRevoked(set);
        crlSetRelease(set);
    }
    crlLoadFree(load);
    if (crl.load_due) crlLoadStart();
}

/* Once a second: a file with a new stamp is loaded. */
static void crlCron(void) {
    if (!server.tls_crl_file) return;
    long long now = mstime();
    if (crl.started && now - crl.last_check_ms < CRL_CHECK_INTERVAL_MS) return;
    crl.last_check_ms = now;
    if (!crl.started) {
        crl.path = sdsnew(server.tls_crl_file);
        /* The first load, at startup: no certificate is accepted until it
         * is in force (crlVerifyCallback), so nothing waits for it. A file
         * that fails stops the server. */
        crlLoadStart();
        return;
    }
    if (crl.loading) return;
    struct stat st;
    if (stat(server.tls_crl_file, &st) == -1) {
        if (crl.stat_errno != errno) {
            crl.stat_errno = errno;
            crl.loads_failed++;
            snprintf(crl.last_error, sizeof(crl.last_error), "cannot read it: %s", strerror(errno));
            serverLog(LL_WARNING, "CRL: cannot read tls-crl-file %s: %s; the CRLs loaded before stay in force",
                      server.tls_crl_file, strerror(errno));
        }
        return;
    }
    crl.stat_errno = 0;
    ocspFileStamp now_stamp;
    crlStampOf(&st, &now_stamp);
    if (crl.seen_valid && crlStampEqual(&now_stamp, &crl.seen)) return;
    crlLoadStart();
}

/* CONFIG SET tls-crl-file: a new path is loaded at once (a path that does
 * not exist is refused); none drops every CRL. */
static int crlFileChanged(const char **err) {
    const char *path = server.tls_crl_file;
    /* CONFIG SET of the same path, or the old value restored after a
     * failed CONFIG SET: nothing changed (the watch sees file changes). */
    if ((!path && !crl.path) || (path && crl.path && !strcmp(path, crl.path))) return 1;
    struct stat st;
    if (path && stat(path, &st) == -1) {
        *err = "tls-crl-file: cannot access the file";
        return 0;
    }
    sdsfree(crl.path);
    crl.path = path ? sdsnew(path) : NULL;
    crl.generation++;
    crl.seen_valid = false;
    crl.stat_errno = 0;
    if (!path) {
        atomic_store(&crl_required, false);
        if (atomic_load_explicit(&published_set, memory_order_relaxed))
            serverLog(LL_NOTICE, "CRL: tls-crl-file unset; no CRL is in force");
        crlSetPublish(NULL);
        return 1;
    }
    /* A new path keeps the CRLs in force until its own are loaded; a file
     * it cannot load never stops the server (only one at startup does). */
    atomic_store(&crl_required, true);
    crl.startup_done = true;
    crlLoadStart();
    return 1;
}

static sds crlInfo(sds info) {
    crlSet *set = crlSetAcquire();
    sds error = sdsnew(crl.last_error);
    sdsmapchars(error, "\r\n", "  ", 2);
    info = sdscatprintf(info,
                        "tls_crl_count:%d\r\n"
                        "tls_crl_entries:%zu\r\n"
                        "tls_crl_next_update:%lld\r\n"
                        "tls_crl_loaded_time:%lld\r\n"
                        "tls_crl_loads_ok:%lld\r\n"
                        "tls_crl_loads_failed:%lld\r\n"
                        "tls_crl_last_error:%s\r\n"
                        "tls_crl_handshakes_refused:%lld\r\n"
                        "tls_crl_connections_closed:%lld\r\n",
                        set ? set->count : 0, set ? set->entries : 0, set ? set->next_update : 0, crl.loaded_time,
                        crl.loads_ok, crl.loads_failed, error,
                        atomic_load_explicit(&handshakes_refused, memory_order_relaxed), crl.connections_closed);
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
    if (now - last < CRL_LOG_INTERVAL_MS ||
        !atomic_compare_exchange_strong(&last_refusal_log_ms, &last, now))
        return;
    char subject[128];
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    serverLog(LL_WARNING, "CRL: refused the certificate of %s: %s (at most one such line a second)", subject, why);
}

static int crlVerifyCallback(int preverify_ok, X509_STORE_CTX *store) {
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (preverify_ok && cert && atomic_load_explicit(&crl_required, memory_order_relaxed)) {
        crlSet *set = crlSetAcquire();
        char why[256];
        bool refused = false;
        if (!set) {
            refused = true;
            snprintf(why, sizeof(why), "tls-crl-file is not loaded yet");
        } else {
            crlSerial key;
            const crlList *list = crlSetLookup(set, cert, &key);
            if (list) {
                char serial[2 * CRL_MAX_SERIAL + 2];
                crlSerialText(&key, serial, sizeof(serial));
                refused = true;
                snprintf(why, sizeof(why), "serial %s is revoked by CRL %d of %s (issuer %s)", serial, list->index,
                         set->path, list->issuer_text);
            }
        }
        crlSetRelease(set);
        if (refused) {
            X509_STORE_CTX_set_error(store, set ? X509_V_ERR_CERT_REVOKED : X509_V_ERR_UNABLE_TO_GET_CRL);
            atomic_fetch_add_explicit(&handshakes_refused, 1, memory_order_relaxed);
            crlLogRefusal(cert, why);
            return 0;
        }
    }
    return chained_callback ? chained_callback(preverify_ok, store) : preverify_ok;
}

/* For every context tls.c creates, after the configuration is read (at
 * startup, CONFIG SET tls-*, or a background reload). A configured
 * tls-crl-file makes every certificate refused from the first handshake
 * until its CRLs are loaded. */
void tlsCrlSetupContext(struct ssl_ctx_st *ctx) {
    if (server.tls_crl_file) atomic_store(&crl_required, true);
    SSL_verify_cb previous = SSL_CTX_get_verify_callback(ctx);
    if (previous == crlVerifyCallback) return;
    chained_callback = previous;
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), crlVerifyCallback);
}

static const tlsCrlChecker checker = {
    .file_changed = crlFileChanged,
    .cron = crlCron,
    .info = crlInfo,
};

void tlsCrlInit(void) {
    tlsCrlRegisterChecker(&checker);
}

#endif
