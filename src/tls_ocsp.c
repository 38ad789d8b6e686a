/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * OCSP stapling for the TLS server side.
 *
 * The main thread keeps one verified OCSP response for the server certificate.
 * It comes from one of three sources (ocspSource):
 *
 *   responder  serverCron -> tlsOcspCron() -> fetchStart() when due. A fetch
 *              (ocspFetch, one context per fetch) goes through ocspFetchPhase:
 *                STARTING   begun from the event loop
 *                RESOLVING  host names are looked up by the BIO_TLS_OCSP
 *                           worker, one lookup at a time; numeric addresses
 *                           skip this
 *                CONNECTING non-blocking connect, each address in turn (to the
 *                           proxy when tls-ocsp-proxy is set)
 *                SENDING    the HTTP/1.0 GET (or POST)
 *                RECEIVING  the answer, one bounded read per event, into a
 *                           fixed buffer
 *              and always ends in fetchFinish(), which frees it and records
 *              the outcome. One timer bounds the whole fetch, and no callback
 *              does more than one read or write.
 *   cache      tls-ocsp-cache-file, written by the worker after each fetch,
 *              read by cacheLoad() at start and after a certificate change.
 *   file       tls-ocsp-response-file, looked at by the worker once a second;
 *              responseFileChecked() takes what changed.
 *
 * Every response is checked by verifyResponse() (signature, certificate ID,
 * validity: tls_ocsp_check.c) and trimmed to what a handshake can carry
 * before publishResponse() makes it the staple. Why anything failed is an
 * ocspError; their names, for INFO, the log and the tests, are the table
 * ocsp_error_names in tls_ocsp_check.c.
 *
 * The status callback runs in whichever thread does the handshake (the main
 * thread or an I/O thread). Server side, it takes a reference to the
 * published staple under a mutex held for a pointer copy, so the main thread
 * may swap or drop the staple at any time without a reader ever seeing freed
 * memory. Client side (tls-ocsp-verify-peers), it checks the peer's staple.
 */

#include "server.h"

#include <ctype.h>

/* ------------------------------------------------------------------------- */
/* Responder URLs, shared by every build (config validation needs them).     */

/* Longer URLs are refused: they would only bloat requests, INFO and logs. */
#define OCSP_MAX_URL_BYTES 1024

typedef struct ocspUrl {
    sds host;     /* Without the brackets of an IPv6 literal. */
    sds port;     /* "80" when the URL names none. */
    sds path;     /* "/" when the URL names none; includes a query. */
    sds userinfo; /* "user:password" before an @, or NULL. */
} ocspUrl;

static void ocspUrlClear(ocspUrl *url) {
    sdsfree(url->host);
    sdsfree(url->port);
    sdsfree(url->path);
    sdsfree(url->userinfo);
    url->host = url->port = url->path = url->userinfo = NULL;
}

/* RFC 3986 percent-decoding of user information; NULL if an escape is not
 * two hex digits. */
static sds ocspPercentDecode(const char *text, size_t len) {
    sds decoded = sdsempty();
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '%') {
            decoded = sdscatlen(decoded, text + i, 1);
            continue;
        }
        char hex[3] = {0};
        if (i + 2 >= len || !isxdigit((unsigned char)text[i + 1]) || !isxdigit((unsigned char)text[i + 2])) {
            sdsfree(decoded);
            return NULL;
        }
        memcpy(hex, text + i + 1, 2);
        char byte = (char)strtol(hex, NULL, 16);
        decoded = sdscatlen(decoded, &byte, 1);
        i += 2;
    }
    return decoded;
}

/* Split an http:// URL (scheme in any case); user information is accepted
 * only with allow_userinfo (a proxy's credentials). Returns 1, or 0 with
 * *err set to why it is unusable; *url is filled only on success. */
static int ocspUrlParse(const char *text, ocspUrl *url, int allow_userinfo, const char **err) {
    if (strlen(text) > OCSP_MAX_URL_BYTES) {
        *err = "the URL is too long (over 1024 bytes)";
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f) {
            *err = "the URL contains a space, a control character or a non-ASCII byte";
            return 0;
        }
    }
    if (strchr(text, '#')) {
        *err = "the URL has a fragment (#)";
        return 0;
    }
    if (strncasecmp(text, "https://", 8) == 0) {
        *err = "https:// is not supported: the responder must be an http:// URL";
        return 0;
    }
    if (strncasecmp(text, "http://", 7) != 0) {
        *err = "the responder must be an http:// URL";
        return 0;
    }
    const char *authority = text + 7;
    const char *path = authority + strcspn(authority, "/?#");
    const char *host = authority, *host_end, *port = NULL;
    /* The last @ ends the user information: a password may contain @. */
    const char *at = NULL;
    for (const char *p = authority; p < path; p++)
        if (*p == '@') at = p;
    if (at && !allow_userinfo) {
        *err = "user information (user@host) is not supported in the URL";
        return 0;
    }
    if (at) host = at + 1;
    if (*host == '[') {
        host++;
        host_end = memchr(host, ']', path - host);
        if (!host_end) {
            *err = "the URL has an unterminated [IPv6 address]";
            return 0;
        }
        if (host_end == host || strspn(host, "0123456789abcdefABCDEF:.") != (size_t)(host_end - host)) {
            *err = "the URL has an invalid [IPv6 address]";
            return 0;
        }
        if (host_end + 1 < path) {
            if (host_end[1] != ':') {
                *err = "the URL has characters after its [IPv6 address]";
                return 0;
            }
            port = host_end + 2;
        }
    } else {
        host_end = memchr(host, ':', path - host);
        if (host_end) {
            port = host_end + 1;
        } else {
            host_end = path;
        }
        if (port && memchr(port, ':', path - port)) {
            *err = "an IPv6 address in the URL must be in brackets";
            return 0;
        }
    }
    if (host_end == host) {
        *err = "the URL has no host";
        return 0;
    }
    long port_number = 80;
    if (port) {
        size_t digits = strspn(port, "0123456789");
        port_number = 0;
        if (port + digits == path && digits > 0 && digits <= 5) port_number = strtol(port, NULL, 10);
        if (port_number < 1 || port_number > 65535) {
            *err = "the port in the URL must be a number from 1 to 65535";
            return 0;
        }
    }
    sds userinfo = NULL;
    if (at && !(userinfo = ocspPercentDecode(authority, at - authority))) {
        *err = "the user information in the URL has an invalid %-escape";
        return 0;
    }
    url->userinfo = userinfo;
    url->host = sdsnewlen(host, host_end - host);
    url->port = sdsfromlonglong(port_number);
    url->path = *path == '/' ? sdsnew(path) : sdscat(sdsnew("/"), path);
    return 1;
}

/* tls-ocsp-proxy: http://host:port, optionally http://user:password@host:port
 * for Basic authentication. The password is never shown: CONFIG GET and the
 * log show it as ***; CONFIG REWRITE writes the real value. CONFIG SET of the
 * shown form (what CONFIG SET's rollback does with the getter's value, and
 * what an operator copying CONFIG GET does) means the value it was shown for. */

/* The value tls-ocsp-proxy held before the last change, for a rollback. */
static char *proxy_replaced = NULL;

/* Where the user information of an http:// URL ends (its last @), or NULL. */
static const char *proxyUserinfoEnd(const char *proxy) {
    const char *authority = proxy + 7, *at = NULL;
    for (const char *p = authority; *p && !strchr("/?#", *p); p++)
        if (*p == '@') at = p;
    return at;
}

/* The proxy as shown. Basic authentication takes the user name up to the
 * first colon of the decoded user information (RFC 7617), so everything after
 * that colon, however it was encoded, is the password. */
static sds proxyRedacted(const char *proxy) {
    if (!proxy) return sdsempty();
    const char *at = proxyUserinfoEnd(proxy);
    sds userinfo = at ? ocspPercentDecode(proxy + 7, at - (proxy + 7)) : NULL;
    if (!userinfo) return sdsnew(at ? "http://***" : proxy);
    char *colon = strchr(userinfo, ':');
    size_t user_len = colon ? (size_t)(colon - userinfo) : sdslen(userinfo);
    sds shown = sdsnewlen(proxy, 7);
    for (size_t i = 0; i < user_len; i++) {
        unsigned char ch = userinfo[i];
        if (isalnum(ch) || strchr("-._~!$&'()*+,;=", ch))
            shown = sdscatlen(shown, &ch, 1);
        else
            shown = sdscatprintf(shown, "%%%02X", ch);
    }
    if (colon) shown = sdscat(shown, ":***");
    shown = sdscat(shown, at);
    sdsfree(userinfo);
    return shown;
}

static int proxyShownAs(const char *proxy, const char *shown) {
    sds redacted = proxyRedacted(proxy);
    int same = !strcmp(redacted, shown);
    sdsfree(redacted);
    return same;
}

/* Whether the password of the URL is the placeholder *** itself. */
static int proxyHasPlaceholder(const char *proxy) {
    const char *at = proxyUserinfoEnd(proxy);
    const char *colon = at ? memchr(proxy + 7, ':', at - (proxy + 7)) : NULL;
    return colon && at - colon - 1 == 3 && !strncmp(colon + 1, "***", 3);
}

int tlsOcspSetProxy(struct standardConfig *config, sds *argv, int argc, const char **err) {
    UNUSED(config);
    if (argc != 1) {
        *err = "wrong number of arguments";
        return 0;
    }
    char **proxy = &server.tls_ocsp_config.proxy;
    const char *value = argv[0][0] ? argv[0] : NULL;
    if (value) {
        ocspUrl url = {0};
        if (!ocspUrlParse(value, &url, 1, err)) return 0;
        int has_path = strcmp(url.path, "/") != 0;
        ocspUrlClear(&url);
        if (has_path) {
            *err = "the proxy URL must be http://[user:password@]host:port, without a path";
            return 0;
        }
        if (proxyHasPlaceholder(value)) {
            if (*proxy && proxyShownAs(*proxy, value)) {
                value = *proxy;
            } else if (proxy_replaced && proxyShownAs(proxy_replaced, value)) {
                value = proxy_replaced;
            } else {
                *err = "the password *** is how CONFIG GET shows a password (redacted), and no proxy set before "
                       "is shown so: give the real password (a literal *** is written %2A%2A%2A)";
                return 0;
            }
        }
    }
    if ((!value && !*proxy) || (value && *proxy && !strcmp(value, *proxy))) return 2;
    char *replaced = *proxy;
    *proxy = value ? zstrdup(value) : NULL;
    zfree(proxy_replaced);
    proxy_replaced = replaced;
    return 1;
}

sds tlsOcspGetProxy(struct standardConfig *config) {
    UNUSED(config);
    return proxyRedacted(server.tls_ocsp_config.proxy);
}

#if defined(USE_OPENSSL) && USE_OPENSSL == 1 /* BUILD_YES */

#include "anet.h"
#include "bio.h"
#include "tls_ocsp_check.h"

#include <openssl/ssl.h>
#include <openssl/ocsp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>

#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Longest retry delay while no valid response is cached. */
#define OCSP_RETRY_CAP_WITHOUT_RESPONSE_MS (300 * 1000LL)
/* What one fetch may read: the status line and headers, then the body. */
#define OCSP_MAX_HEADER_BYTES (16 * 1024)
#define OCSP_MAX_BODY_BYTES (64 * 1024)
/* The largest response we staple. TLS 1.2 sends it in a CertificateStatus
 * handshake message, which OpenSSL clients (and others) refuse above 16384
 * bytes, one record's plaintext ("excessive message size"); the message
 * holds a 1-byte status type and a 3-byte length before the response. TLS
 * 1.3 carries it in a certificate extension with room to spare. */
#define OCSP_MAX_STAPLE_BYTES (16384 - 4)

/* ------------------------------------------------------------------------- */
/* The published staple: immutable once published, freed by its last reader. */

typedef struct ocspStaple {
    atomic_int refs;
    X509 *cert;       /* The certificate the response is about (reference held). */
    mstime_t expires; /* Never staple at or after this time. */
    size_t len;
    unsigned char der[];
} ocspStaple;

static pthread_mutex_t staple_mutex = PTHREAD_MUTEX_INITIALIZER;
static ocspStaple *published_staple = NULL;
/* Staples attached to a handshake, including handshakes that then fail. */
static atomic_llong staples_sent = 0;

static ocspStaple *stapleCreate(X509 *cert, mstime_t expires, const unsigned char *der, size_t len) {
    ocspStaple *staple = zmalloc(sizeof(*staple) + len);
    atomic_init(&staple->refs, 1);
    X509_up_ref(cert);
    staple->cert = cert;
    staple->expires = expires;
    staple->len = len;
    memcpy(staple->der, der, len);
    return staple;
}

static void stapleRelease(ocspStaple *staple) {
    if (atomic_fetch_sub_explicit(&staple->refs, 1, memory_order_acq_rel) != 1) return;
    X509_free(staple->cert);
    zfree(staple);
}

static ocspStaple *stapleAcquire(void) {
    pthread_mutex_lock(&staple_mutex);
    ocspStaple *staple = published_staple;
    if (staple) atomic_fetch_add_explicit(&staple->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&staple_mutex);
    return staple;
}

/* Replace the published staple (NULL: staple nothing). Main thread only. */
static void staplePublish(ocspStaple *staple) {
    pthread_mutex_lock(&staple_mutex);
    ocspStaple *old = published_staple;
    published_staple = staple;
    pthread_mutex_unlock(&staple_mutex);
    if (old) stapleRelease(old);
}

static int peerStatusCallback(SSL *ssl);

/* SSL_CTX status callback, server side: staple when the client asked for
 * status (OpenSSL calls us only then), the response is about the certificate
 * this handshake presents, and it has not expired. It may run in an I/O
 * thread: the clock is ocspClockMs(), as mstime() caches in statics. */
static int ocspStatusCallback(SSL *ssl, void *arg) {
    UNUSED(arg);
    /* The server context also makes outgoing connections when no client
     * certificate is configured. */
    if (!SSL_is_server(ssl)) return peerStatusCallback(ssl);

    ocspStaple *staple = stapleAcquire();
    if (!staple) return SSL_TLSEXT_ERR_NOACK;

    int stapled = 0;
    X509 *cert = SSL_get_certificate(ssl);
    if (cert && (cert == staple->cert || X509_cmp(cert, staple->cert) == 0) && ocspClockMs() < staple->expires) {
        unsigned char *copy = OPENSSL_malloc(staple->len);
        if (copy) {
            memcpy(copy, staple->der, staple->len);
            if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)staple->len) == 1) {
                stapled = 1;
            } else {
                OPENSSL_free(copy);
            }
        }
    }
    stapleRelease(staple);
    if (!stapled) return SSL_TLSEXT_ERR_NOACK;
    atomic_fetch_add_explicit(&staples_sent, 1, memory_order_relaxed);
    return SSL_TLSEXT_ERR_OK;
}

/* ------------------------------------------------------------------------- */
/* The subject: the certificate we staple for, where to ask about it and whom */
/* to trust for the answer. Rebuilt when the context or the responder change. */

typedef struct ocspSubject {
    X509 *cert;             /* Leaf of tls-cert-file. */
    X509 *issuer;           /* Its issuer: the trust anchor for responses. */
    STACK_OF(X509) * chain; /* The rest of tls-cert-file: untrusted helpers. */
    X509_STORE *store;      /* Just the issuer, as a partial-chain anchor. */
    OCSP_CERTID *certid;    /* SHA-1 certificate ID (RFC 5019). */
    sds url;                /* Responder URL as configured or in the AIA; NULL: none. */
    ocspUrl responder;      /* url, split; empty when url is NULL. */
    bool post_only;         /* The responder refused a GET: ask it with POST. */
} ocspSubject;

static void subjectFree(ocspSubject *s) {
    if (!s) return;
    X509_free(s->cert);
    X509_free(s->issuer);
    sk_X509_pop_free(s->chain, X509_free);
    X509_STORE_free(s->store);
    OCSP_CERTID_free(s->certid);
    sdsfree(s->url);
    ocspUrlClear(&s->responder);
    zfree(s);
}

/* The first usable http:// OCSP URL in the certificate's AIA extension. */
static void subjectFindResponder(ocspSubject *s, const char *configured) {
    const char *err;
    if (configured) {
        if (ocspUrlParse(configured, &s->responder, 0, &err)) s->url = sdsnew(configured);
        return;
    }
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(s->cert);
    for (int i = 0; i < sk_OPENSSL_STRING_num(urls) && !s->url; i++) {
        const char *candidate = sk_OPENSSL_STRING_value(urls, i);
        if (ocspUrlParse(candidate, &s->responder, 0, &err)) s->url = sdsnew(candidate);
    }
    X509_email_free(urls);
}

/* The issuer of cert: the next certificate of tls-cert-file, else one from
 * tls-ca-cert-file / tls-ca-cert-dir (the context's trust store). */
static X509 *findIssuer(SSL_CTX *ctx, X509 *cert, STACK_OF(X509) * chain) {
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *candidate = sk_X509_value(chain, i);
        if (X509_check_issued(candidate, cert) == X509_V_OK) {
            X509_up_ref(candidate);
            return candidate;
        }
    }
    X509 *issuer = NULL;
    X509_STORE_CTX *store_ctx = X509_STORE_CTX_new();
    if (store_ctx && X509_STORE_CTX_init(store_ctx, SSL_CTX_get_cert_store(ctx), cert, NULL) == 1) {
        if (X509_STORE_CTX_get1_issuer(&issuer, store_ctx, cert) != 1) issuer = NULL;
    }
    X509_STORE_CTX_free(store_ctx);
    ERR_clear_error();
    return issuer;
}

/* Build the subject of the context's certificate, or NULL with *err set. */
static ocspSubject *subjectCreate(SSL_CTX *ctx, const char *configured_responder, ocspError *err) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) {
        *err = OCSP_ERR_NO_CERTIFICATE;
        return NULL;
    }
    ocspSubject *s = zcalloc(sizeof(*s));
    X509_up_ref(cert);
    s->cert = cert;

    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    s->chain = chain ? X509_chain_up_ref(chain) : sk_X509_new_null();
    subjectFindResponder(s, configured_responder);

    s->issuer = findIssuer(ctx, cert, s->chain);
    if (!s->issuer) {
        *err = OCSP_ERR_NO_ISSUER;
        subjectFree(s);
        return NULL;
    }
    s->store = X509_STORE_new();
    s->certid = OCSP_cert_to_id(NULL, cert, s->issuer);
    if (!s->chain || !s->store || !s->certid || X509_STORE_add_cert(s->store, s->issuer) != 1) {
        ERR_clear_error();
        *err = OCSP_ERR_INTERNAL;
        subjectFree(s);
        return NULL;
    }
    /* Our issuer is trusted because it issued our certificate; it need not
     * chain to any root configured for client verification. */
    X509_STORE_set_flags(s->store, X509_V_FLAG_PARTIAL_CHAIN);
    return s;
}

/* ------------------------------------------------------------------------- */
/* Main-thread state.                                                         */

/* A fetch: one context, driven by ae events, ended by fetchFinish(). */
typedef enum ocspFetchPhase {
    OCSP_FETCH_STARTING,   /* Waiting for the event loop to begin it. */
    OCSP_FETCH_RESOLVING,  /* The worker looks the host up. */
    OCSP_FETCH_CONNECTING, /* A non-blocking connect is under way. */
    OCSP_FETCH_SENDING,    /* Writing the request. */
    OCSP_FETCH_RECEIVING,  /* Reading the answer. */
} ocspFetchPhase;

struct ocspFetch {
    ocspFetchPhase phase;
    long long start_timer; /* Begins the fetch from the event loop. */
    long long timeout_timer;
    char *host, *port;
    unsigned long long lookup_id; /* Our lookup with the worker; 0: none. */
    struct addrinfo *addresses, *next_address;
    int connect_errno;
    int fd;
    int watched_mask;
    const char *method; /* Of request: "GET" or "POST". */
    sds request;
    sds post_fallback; /* With a GET: the POST to send if it is refused. */
    size_t request_sent;
    char *buf; /* The answer: headers, then the body. */
    size_t received;
    size_t body_start;        /* Offset of the body; 0 until the headers ended. */
    long long content_length; /* -1: not given, read until the peer closes. */
};
typedef struct ocspFetch ocspFetch;

/* Enough of a stat to see a file replaced (rename, symlink swap) or
 * rewritten in place. */
typedef struct ocspFileStamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    long long mtime_ns, ctime_ns;
} ocspFileStamp;

/* What we hold for clients. */
typedef enum ocspCacheState {
    OCSP_CACHE_EMPTY,   /* No verified response (yet, or since a reset). */
    OCSP_CACHE_STAPLED, /* A verified response, published and current. */
    OCSP_CACHE_EXPIRED, /* It expired and nothing replaced it: nothing is stapled. */
} ocspCacheState;

/* Where the stapled response came from. */
typedef enum ocspSource {
    OCSP_SOURCE_NONE,
    OCSP_SOURCE_RESPONDER, /* A fetch. */
    OCSP_SOURCE_CACHE,     /* tls-ocsp-cache-file, read at start or after a certificate change. */
    OCSP_SOURCE_FILE,      /* tls-ocsp-response-file. */
} ocspSource;

static const char *const ocsp_source_names[] = {
    [OCSP_SOURCE_NONE] = "none",
    [OCSP_SOURCE_RESPONDER] = "responder",
    [OCSP_SOURCE_CACHE] = "cache",
    [OCSP_SOURCE_FILE] = "file",
};

/* A verified response whose thisUpdate is still ahead of our clock (within
 * the allowed skew), held back while a valid one is stapled. */
typedef struct ocspHeldResponse {
    ocspResponseInfo info;
    ocspSource source;
    unsigned char der[];
} ocspHeldResponse;

/* What the last fetch came to: the schedule is computed from it. */
typedef enum ocspOutcome {
    OCSP_OUTCOME_NONE,      /* Nothing tried since the last reset: fetch at once. */
    OCSP_OUTCOME_SUCCEEDED, /* At last_attempt_at. */
    OCSP_OUTCOME_FAILED,    /* At last_attempt_at, consecutive_failures in a row. */
} ocspOutcome;

static struct {
    SSL_CTX *server_ctx;        /* Current server context (reference held). */
    ocspSubject *subject;       /* Built while stapling is enabled. */
    ocspError subject_error;    /* Why it could not be built; waits for a change. */
    ocspFetch *fetch;           /* At most one in flight. */
    bool fetch_scheduled;       /* Whether next_fetch_at holds a time. */
    mstime_t next_fetch_at;     /* Monotonic ms (monotonicMs). */
    ocspCacheState cache_state; /* And cached, valid unless EMPTY. */
    ocspResponseInfo cached;
    ocspSource source;                         /* Of the cached response. */
    bool cache_load_due;                       /* The certificate is new: try the cache file. */
    unsigned long long certificate_generation; /* Counts forgetAll(): which certificate a cache read is for. */
    bool running;                              /* The cron has run: the event loop and the bio workers exist. */
    ocspHeldResponse *held;                    /* Newer than cached, stapled from its thisUpdate. */
    bool margin_warned;                        /* The response file's response is within its margin. */
    ocspOutcome last_outcome;
    mstime_t last_attempt_at; /* Monotonic ms. */
    mstime_t last_success_at; /* Unix ms, for INFO. */
    int consecutive_failures;
    long long fetches_ok, fetches_failed;
    ocspError last_error;
    /* tls-ocsp-response-file: what was read last, and the next look. */
    ocspFileStamp file_seen;
    bool file_check_in_flight;
    bool file_unreadable_logged;
    mstime_t next_file_check_at; /* Monotonic ms. */
} ocsp;

static const char *certStatusName(int status) {
    switch (status) {
    case V_OCSP_CERTSTATUS_GOOD: return "good";
    case V_OCSP_CERTSTATUS_REVOKED: return "revoked";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------- */
/* Schedule.                                                                  */

static mstime_t secondsToMs(long long s) {
    return s * 1000;
}

/* The schedule (next fetch, backoff, response file checks) runs on the
 * monotonic clock, so that a step of the wall clock neither delays a refresh
 * past expiry nor fetches early; validity (thisUpdate, nextUpdate, expiry)
 * is wall-clock time, as the responder signs it. */
static mstime_t monotonicMs(void) {
    return (mstime_t)(getMonotonicUs() / 1000);
}

static void scheduleFetchAt(mstime_t at) {
    ocsp.fetch_scheduled = true;
    ocsp.next_fetch_at = at;
}

/* Whole seconds from now until the next fetch, rounded up. */
static long long secondsUntilNextFetch(void) {
    return (ocsp.next_fetch_at - monotonicMs() + 999) / 1000;
}

/* A random delay in [0, range] ms. */
static mstime_t randomMs(mstime_t range) {
    return range > 0 ? (mstime_t)(range * ((double)rand() / RAND_MAX)) : 0;
}

/* How long before a response runs out its refresh must have started. */
static mstime_t expirySafetyMs(void) {
    return secondsToMs(server.tls_ocsp_config.response_timeout + 1);
}

/* After a verified response, at wall time now: how long until the next
 * fetch. At a random point of the later half of the refresh margin (so that
 * servers holding the same response, as a CA's pre-signed ones are, do not
 * ask together), at most the max refresh interval (less up to a tenth of it,
 * at random, for the same reason), at least the retry delay; but never later
 * than the stapled response runs out, less the time a fetch may take. */
static mstime_t delayAfterSuccess(mstime_t now) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    const ocspResponseInfo *newest = ocsp.held ? &ocsp.held->info : &ocsp.cached;
    mstime_t margin = (newest->expires - newest->this_update) * cfg->refresh_margin / 100;
    mstime_t at = newest->expires - margin + randomMs(margin / 2);
    mstime_t interval = secondsToMs(cfg->max_refresh_interval);
    if (interval > 0 && at > now + interval) at = now + interval - randomMs(interval / 10);
    if (at < now + secondsToMs(cfg->retry_delay)) at = now + secondsToMs(cfg->retry_delay);
    mstime_t runs_out = ocsp.cache_state == OCSP_CACHE_STAPLED ? ocsp.cached.expires : newest->expires;
    if (at > runs_out - expirySafetyMs()) at = runs_out - expirySafetyMs();
    return at > now ? at - now : 0;
}

/* After a failure, at wall time now: the retry delay doubled per consecutive
 * failure, capped at 5 minutes while nothing valid is cached and at the max
 * refresh interval otherwise, with +-10% jitter (kept under the cap) so that
 * servers started together spread out, and never after the cached response
 * expires. */
static mstime_t delayAfterFailure(mstime_t now) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    bool stapled = ocsp.cache_state == OCSP_CACHE_STAPLED;
    mstime_t base = secondsToMs(cfg->retry_delay);
    mstime_t cap = OCSP_RETRY_CAP_WITHOUT_RESPONSE_MS;
    if (stapled) cap = cfg->max_refresh_interval > 0 ? secondsToMs(cfg->max_refresh_interval) : ocsp.cached.expires - now;
    if (cap < base) cap = base;

    mstime_t delay = base;
    for (int i = 1; i < ocsp.consecutive_failures && delay < cap; i++) delay = delay > cap / 2 ? cap : delay * 2;
    delay = delay * 9 / 10 + randomMs(delay / 5);
    if (delay > cap) delay = 2 * cap - delay;
    if (delay < 1000) delay = 1000;
    if (stapled && now + delay > ocsp.cached.expires) delay = ocsp.cached.expires > now ? ocsp.cached.expires - now : 0;
    return delay;
}

/* Record the outcome of an attempt made now and schedule the next one. */
static void recordAttempt(ocspOutcome outcome) {
    ocsp.last_outcome = outcome;
    ocsp.last_attempt_at = monotonicMs();
    mstime_t now = mstime();
    scheduleFetchAt(ocsp.last_attempt_at + (outcome == OCSP_OUTCOME_SUCCEEDED ? delayAfterSuccess(now)
                                                                              : delayAfterFailure(now)));
}

/* The next fetch as if the last outcome had happened under the current
 * settings. */
static void reschedule(void) {
    if (ocsp.last_outcome == OCSP_OUTCOME_NONE) return; /* The first fetch is due already. */
    mstime_t attempted = mstime() - (monotonicMs() - ocsp.last_attempt_at);
    mstime_t delay =
        ocsp.last_outcome == OCSP_OUTCOME_SUCCEEDED ? delayAfterSuccess(attempted) : delayAfterFailure(attempted);
    scheduleFetchAt(ocsp.last_attempt_at + delay);
}

/* ------------------------------------------------------------------------- */
/* Background work.                                                           */
/*                                                                            */
/* What the main thread must not do runs elsewhere, one slot per kind of      */
/* work, a newer item replacing one of its kind still waiting:                */
/*   - files (a cache file write with its fsyncs, a response file check, a    */
/*     cache file read after a certificate change, removing temporary files   */
/*     a killed server left) in the bio worker that reloads TLS certificates  */
/*     (BIO_TLS_OCSP jobs). A file is looked at before it is opened, opened   */
/*     non-blocking and read only if regular, and written only through a      */
/*     fresh name of our own, so no file can hang that worker;                */
/*   - name lookups (getaddrinfo blocks as long as DNS does) in a resolver    */
/*     thread of ours, started by the first lookup, so that a DNS server that */
/*     never answers delays nothing else. A lookup nobody waits for any more  */
/*     has its result dropped.                                                */
/* Both wake the main thread through one pipe that lives as long as the      */
/* process.                                                                   */

typedef struct ocspLookup {
    unsigned long long id;
    char *host, *port;
    struct addrinfo *result;
    int gai_error;
} ocspLookup;

typedef struct ocspCacheWrite {
    sds path; /* Absolute: the main thread may change dir meanwhile. */
    size_t len;
    unsigned char der[];
} ocspCacheWrite;

/* Why a file was not read: an errno value, or this. EFBIG: over the bound. */
#define OCSP_FILE_NOT_REGULAR (-1)

typedef enum ocspFileReadResult {
    OCSP_FILE_UNCHANGED,  /* Same stamp as seen. */
    OCSP_FILE_CHANGED,    /* data holds the new bytes. */
    OCSP_FILE_UNREADABLE, /* error says why. */
} ocspFileReadResult;

/* A file to read if it changed: the response file (seen: what the main
 * thread read last) or the cache file (seen: nothing, read it). */
typedef struct ocspFileRead {
    sds path;
    ocspFileStamp seen;
    unsigned long long generation; /* Cache file: the certificate it is read for. */
    ocspFileReadResult result;
    ocspFileStamp stamp;
    sds data;
    int error;
} ocspFileRead;

static struct {
    pthread_mutex_t lock;
    ocspCacheWrite *write_waiting;
    ocspFileRead *check_waiting, *check_done; /* tls-ocsp-response-file */
    ocspFileRead *load_waiting, *load_done;   /* tls-ocsp-cache-file */
    sds clean_waiting;                        /* A cache file whose leftovers to remove. */
    sds cleaned;                              /* Worker only: the last one cleaned for. */
    int wake_fds[2];                          /* Worker and resolver -> main thread. */
} worker = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_fds = {-1, -1}};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    bool started;
    ocspLookup *waiting, *done;
    unsigned long long wanted; /* The lookup the main thread waits for; 0: none. */
    unsigned long long last_id;
} resolver = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static atomic_llong cache_write_failures = 0;

static void fetchResolved(ocspFetch *f, int gai_error, struct addrinfo *result);
static void responseFileChecked(ocspFileRead *check);
static void cacheFileLoaded(ocspFileRead *load);

static void lookupFree(ocspLookup *lookup) {
    if (!lookup) return;
    if (lookup->result) freeaddrinfo(lookup->result);
    zfree(lookup->host);
    zfree(lookup->port);
    zfree(lookup);
}

static void cacheWriteFree(ocspCacheWrite *write) {
    if (!write) return;
    sdsfree(write->path);
    zfree(write);
}

static void fileReadFree(ocspFileRead *read) {
    if (!read) return;
    sdsfree(read->path);
    sdsfree(read->data);
    zfree(read);
}

static const char *fileErrorText(int error) {
    if (error == OCSP_FILE_NOT_REGULAR) return "not a regular file";
    if (error == EFBIG) return "larger than 64 KiB";
    return strerror(error);
}

static void fileStampOf(const struct stat *st, ocspFileStamp *stamp) {
    memset(stamp, 0, sizeof(*stamp));
    stamp->dev = st->st_dev;
    stamp->ino = st->st_ino;
    stamp->size = st->st_size;
    stamp->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    stamp->ctime_ns = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

static int fileStampEqual(const ocspFileStamp *a, const ocspFileStamp *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns;
}

/* Read a regular file of at most max bytes. Returns the bytes, or NULL with
 * *error set; *stamp describes what was read. Opening a FIFO or a device may
 * block or act, so the file is looked at first, opened non-blocking, and
 * looked at again once open (the name may have been replaced meanwhile). */
static sds readSmallFile(const char *path, size_t max, ocspFileStamp *stamp, int *error) {
    struct stat st;
    if (stat(path, &st) == -1) {
        *error = errno;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *error = OCSP_FILE_NOT_REGULAR;
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) {
        *error = errno;
        return NULL;
    }
    sds data = NULL;
    *error = 0;
    if (fstat(fd, &st) == -1) {
        *error = errno;
    } else if (!S_ISREG(st.st_mode)) {
        *error = OCSP_FILE_NOT_REGULAR;
    } else if ((size_t)st.st_size > max) {
        *error = EFBIG;
    } else {
        data = sdsnewlen(SDS_NOINIT, st.st_size);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, data + got, st.st_size - got);
            if (n == -1 && errno == EINTR) continue;
            if (n == -1) *error = errno;
            if (n <= 0) break;
            got += n;
        }
        sdssetlen(data, got);
        if (*error) {
            sdsfree(data);
            data = NULL;
        }
    }
    close(fd);
    if (data && stamp) fileStampOf(&st, stamp);
    return data;
}

/* The temporary files of a cache file: its name, ".tmp-" and a suffix of
 * letters and digits (mkostemp's, or an earlier version's process ID). */
static sds cacheTemporaryPrefix(const char *path) {
    const char *slash = strrchr(path, '/');
    return sdscat(sdsnew(slash ? slash + 1 : path), ".tmp-");
}

/* Remove the temporary files a server killed while writing left behind.
 * Worker only: no write of ours is under way meanwhile. */
static void removeLeftoverTemporaryFiles(const char *path) {
    if (worker.cleaned && !strcmp(worker.cleaned, path)) return;
    sdsfree(worker.cleaned);
    worker.cleaned = sdsnew(path);
    const char *slash = strrchr(path, '/');
    sds dir = slash == path ? sdsnew("/") : sdsnewlen(path, slash - path);
    sds prefix = cacheTemporaryPrefix(path);
    DIR *d = opendir(dir);
    struct dirent *entry;
    while (d && (entry = readdir(d)) != NULL) {
        const char *suffix = entry->d_name + sdslen(prefix);
        size_t len = strlen(entry->d_name) - sdslen(prefix);
        if (strncmp(entry->d_name, prefix, sdslen(prefix)) != 0 || len == 0 || len > 16) continue;
        size_t alnum = 0;
        while (alnum < len && isalnum((unsigned char)suffix[alnum])) alnum++;
        if (alnum != len) continue;
        if (unlinkat(dirfd(d), entry->d_name, 0) == 0)
            serverLog(LL_NOTICE, "OCSP: removed %s/%s, left by a server stopped while writing its cache file", dir,
                      entry->d_name);
    }
    if (d) closedir(d);
    sdsfree(prefix);
    sdsfree(dir);
}

/* Write a file the way a crash cannot leave half written: a temporary file
 * in the same directory, fsync, rename, fsync of the directory. The
 * temporary name is new (mkostemp opens it O_EXCL), so nothing planted at a
 * predictable name (a symlink, a hard link, a FIFO) is written through. */
static int writeFileAtomically(const char *path, const unsigned char *data, size_t len) {
    sds tmp = sdscat(sdsnew(path), ".tmp-XXXXXX");
    int fd = mkostemp(tmp, O_CLOEXEC);
    int ok = fd != -1 && fchmod(fd, 0644) == 0;
    for (size_t done = 0; ok && done < len;) {
        ssize_t n = write(fd, data + done, len - done);
        if (n == -1 && errno == EINTR) continue;
        if (n <= 0)
            ok = 0;
        else
            done += n;
    }
    ok = ok && valkey_fsync(fd) == 0;
    int saved = errno;
    if (fd != -1 && close(fd) == -1 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp, path) == -1) {
        ok = 0;
        saved = errno;
    }
    if (!ok && fd != -1) unlink(tmp);
    if (ok && fsyncFileDir(path) == -1) {
        ok = 0;
        saved = errno;
    }
    sdsfree(tmp);
    errno = saved;
    return ok;
}

static void wakeMainThread(void) {
    ssize_t written = write(worker.wake_fds[1], "w", 1);
    UNUSED(written); /* A full pipe already holds a wake-up. */
}

static void workerReadFile(ocspFileRead *read) {
    struct stat st;
    ocspFileStamp now;
    if (stat(read->path, &st) == 0) {
        fileStampOf(&st, &now);
        if (fileStampEqual(&now, &read->seen)) {
            read->result = OCSP_FILE_UNCHANGED;
            return;
        }
    }
    read->data = readSmallFile(read->path, OCSP_MAX_BODY_BYTES, &read->stamp, &read->error);
    read->result = read->data ? OCSP_FILE_CHANGED : OCSP_FILE_UNREADABLE;
}

/* Runs in the bio worker, once per job, for whatever waits. */
void tlsOcspBackgroundJob(void) {
    pthread_mutex_lock(&worker.lock);
    ocspCacheWrite *write = worker.write_waiting;
    ocspFileRead *check = worker.check_waiting, *load = worker.load_waiting;
    sds clean = worker.clean_waiting;
    worker.write_waiting = NULL;
    worker.check_waiting = worker.load_waiting = NULL;
    worker.clean_waiting = NULL;
    pthread_mutex_unlock(&worker.lock);

    if (clean) removeLeftoverTemporaryFiles(clean);
    sdsfree(clean);
    if (write) {
        removeLeftoverTemporaryFiles(write->path);
        if (!writeFileAtomically(write->path, write->der, write->len)) {
            atomic_fetch_add_explicit(&cache_write_failures, 1, memory_order_relaxed);
            serverLog(LL_WARNING, "OCSP: cannot write the cache file %s: %s; stapling is unaffected", write->path,
                      strerror(errno));
        }
        cacheWriteFree(write);
    }
    if (check) workerReadFile(check);
    if (load) workerReadFile(load);
    if (!check && !load) return;

    pthread_mutex_lock(&worker.lock);
    if (check) {
        fileReadFree(worker.check_done);
        worker.check_done = check;
    }
    if (load) {
        fileReadFree(worker.load_done);
        worker.load_done = load;
    }
    pthread_mutex_unlock(&worker.lock);
    wakeMainThread();
}

/* The resolver thread: one lookup at a time, for as long as it takes. */
static void *resolverMain(void *arg) {
    UNUSED(arg);
    valkey_set_thread_title("ocsp_resolver");
    pthread_mutex_lock(&resolver.lock);
    while (1) {
        while (!resolver.waiting) pthread_cond_wait(&resolver.work, &resolver.lock);
        ocspLookup *lookup = resolver.waiting;
        resolver.waiting = NULL;
        pthread_mutex_unlock(&resolver.lock);

        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        lookup->gai_error = getaddrinfo(lookup->host, lookup->port, &hints, &lookup->result);

        pthread_mutex_lock(&resolver.lock);
        bool wanted = lookup->id == resolver.wanted;
        if (wanted) {
            lookupFree(resolver.done);
            resolver.done = lookup;
            wakeMainThread();
        } else {
            lookupFree(lookup); /* Nobody waits for it any more. */
        }
    }
    return NULL;
}

/* The first lookup starts the resolver thread, with every signal blocked
 * (they are the main thread's to handle). */
static int resolverStarted(void) {
    if (resolver.started) return 1;
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    pthread_t thread;
    resolver.started = pthread_create(&thread, NULL, resolverMain, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (!resolver.started) {
        serverLog(LL_WARNING, "OCSP: cannot start the resolver thread: %s", strerror(errno));
        return 0;
    }
    pthread_detach(thread);
    return 1;
}

/* The worker or the resolver finished something: hand it to whoever waits. */
static void backgroundDoneProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(client_data);
    UNUSED(mask);
    char drain[64];
    while (read(fd, drain, sizeof(drain)) > 0);

    pthread_mutex_lock(&resolver.lock);
    ocspLookup *lookup = resolver.done;
    resolver.done = NULL;
    pthread_mutex_unlock(&resolver.lock);
    pthread_mutex_lock(&worker.lock);
    ocspFileRead *check = worker.check_done, *load = worker.load_done;
    worker.check_done = worker.load_done = NULL;
    pthread_mutex_unlock(&worker.lock);

    if (lookup && ocsp.fetch && ocsp.fetch->lookup_id == lookup->id) {
        fetchResolved(ocsp.fetch, lookup->gai_error, lookup->result);
        lookup->result = NULL;
    }
    lookupFree(lookup);
    if (check) responseFileChecked(check);
    if (load) cacheFileLoaded(load);
}

static int wakePipeReady(void) {
    if (worker.wake_fds[0] != -1) return 1;
    if (anetPipe(worker.wake_fds, O_CLOEXEC | O_NONBLOCK, O_CLOEXEC | O_NONBLOCK) == -1) return 0;
    if (aeCreateFileEvent(server.el, worker.wake_fds[0], AE_READABLE, backgroundDoneProc, NULL) == AE_ERR) {
        close(worker.wake_fds[0]);
        close(worker.wake_fds[1]);
        worker.wake_fds[0] = worker.wake_fds[1] = -1;
        return 0;
    }
    return 1;
}

/* Put work in its worker slot, replacing work of the same kind still
 * waiting, and queue a job for it. A job is queued whenever work waits, so
 * only an empty slot needs a new one. Returns 0 if the worker cannot be
 * reached (the work is then freed by free_work). */
static int workerSubmit(void **slot, void *work, void (*free_work)(void *)) {
    if (!wakePipeReady()) {
        free_work(work);
        return 0;
    }
    pthread_mutex_lock(&worker.lock);
    void *replaced = *slot;
    *slot = work;
    pthread_mutex_unlock(&worker.lock);
    if (replaced)
        free_work(replaced);
    else
        bioCreateTlsOcspJob();
    return 1;
}

static void cacheWriteFreeVoid(void *work) {
    cacheWriteFree(work);
}

static void fileReadFreeVoid(void *work) {
    fileReadFree(work);
}

/* Ask the resolver to look host:port up. Returns the lookup's id, 0 on
 * failure. */
static unsigned long long lookupSubmit(const char *host, const char *port) {
    if (!wakePipeReady() || !resolverStarted()) return 0;
    ocspLookup *lookup = zcalloc(sizeof(*lookup));
    lookup->host = zstrdup(host);
    lookup->port = zstrdup(port);
    pthread_mutex_lock(&resolver.lock);
    lookup->id = ++resolver.last_id;
    resolver.wanted = lookup->id;
    ocspLookup *replaced = resolver.waiting;
    resolver.waiting = lookup;
    pthread_cond_signal(&resolver.work);
    pthread_mutex_unlock(&resolver.lock);
    lookupFree(replaced);
    return lookup->id;
}

/* Nobody waits for a lookup any more (the fetch ended). */
static void lookupCancel(void) {
    pthread_mutex_lock(&resolver.lock);
    ocspLookup *waiting = resolver.waiting, *done = resolver.done;
    resolver.waiting = resolver.done = NULL;
    resolver.wanted = 0;
    pthread_mutex_unlock(&resolver.lock);
    lookupFree(waiting);
    lookupFree(done);
}

static void cacheWriteSubmit(sds path, const unsigned char *der, size_t len) {
    ocspCacheWrite *write = zmalloc(sizeof(*write) + len);
    write->path = path;
    write->len = len;
    memcpy(write->der, der, len);
    workerSubmit((void **)&worker.write_waiting, write, cacheWriteFreeVoid);
}

/* Read path in the worker if its stamp is not seen (NULL: read it anyway). */
static int fileReadSubmit(ocspFileRead **slot, const char *path, const ocspFileStamp *seen, unsigned long long generation) {
    ocspFileRead *read = zcalloc(sizeof(*read));
    read->path = sdsnew(path);
    if (seen) read->seen = *seen;
    read->generation = generation;
    return workerSubmit((void **)slot, read, fileReadFreeVoid);
}

/* ------------------------------------------------------------------------- */
/* Fetch: connect, send and receive over ae events.                           */

static void fetchFinish(ocspFetch *f, ocspError err, const char *detail);
static void fetchConnectNext(ocspFetch *f);
static void fetchRetryWithPost(ocspFetch *f, const char *refusal);

static void fetchUnwatch(ocspFetch *f) {
    if (f->fd != -1 && f->watched_mask) aeDeleteFileEvent(server.el, f->fd, f->watched_mask);
    f->watched_mask = 0;
}

static int fetchWatch(ocspFetch *f, int mask, aeFileProc *proc) {
    fetchUnwatch(f);
    if (aeCreateFileEvent(server.el, f->fd, mask, proc, f) == AE_ERR) return 0;
    f->watched_mask = mask;
    return 1;
}

/* The one teardown: everything a fetch holds, whatever phase it is in. */
static void fetchFree(ocspFetch *f) {
    if (f->start_timer != AE_ERR) aeDeleteTimeEvent(server.el, f->start_timer);
    if (f->timeout_timer != AE_ERR) aeDeleteTimeEvent(server.el, f->timeout_timer);
    if (f->lookup_id) lookupCancel();
    if (f->addresses) freeaddrinfo(f->addresses);
    fetchUnwatch(f);
    if (f->fd != -1) close(f->fd);
    zfree(f->host);
    zfree(f->port);
    sdsfree(f->request);
    sdsfree(f->post_fallback);
    zfree(f->buf);
    zfree(f);
}

/* Stop the fetch in flight, if any, without counting it. */
static void forgetFetch(void) {
    if (!ocsp.fetch) return;
    fetchFree(ocsp.fetch);
    ocsp.fetch = NULL;
}

static long long fetchTimeoutProc(struct aeEventLoop *el, long long id, void *client_data) {
    UNUSED(el);
    UNUSED(id);
    ocspFetch *f = client_data;
    f->timeout_timer = AE_ERR; /* ae deletes it as we return AE_NOMORE. */
    char detail[64];
    snprintf(detail, sizeof(detail), "no complete answer within %d s", server.tls_ocsp_config.response_timeout);
    fetchFinish(f, OCSP_ERR_TIMEOUT, detail);
    return AE_NOMORE;
}

/* The value of header NAME in the header block, or NULL; *len its length. */
static const char *headerValue(const char *headers, size_t headers_len, const char *name, size_t *len) {
    size_t name_len = strlen(name);
    const char *end = headers + headers_len;
    for (const char *line = headers; line < end;) {
        const char *eol = memchr(line, '\n', end - line);
        if (!eol) eol = end;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' && strncasecmp(line, name, name_len) == 0) {
            const char *value = line + name_len + 1, *value_end = eol;
            while (value < value_end && (*value == ' ' || *value == '\t')) value++;
            while (value_end > value && isspace((unsigned char)value_end[-1])) value_end--;
            *len = value_end - value;
            return value;
        }
        line = eol + 1;
    }
    return NULL;
}

/* The header block is complete: check the status line and the headers that
 * matter. Returns OCSP_ERR_NONE to go on reading the body. */
static ocspError fetchCheckHeaders(ocspFetch *f, char *detail, size_t detail_len) {
    const char *status_line = f->buf;
    const char *line_end = memchr(status_line, '\n', f->body_start);
    int status_len = (int)(line_end - status_line);
    while (status_len > 0 && isspace((unsigned char)status_line[status_len - 1])) status_len--;
    if (status_len > 80) status_len = 80;
    /* "HTTP/1.x NNN ..." */
    if (status_len < 12 || strncmp(status_line, "HTTP/1.", 7) != 0 || status_line[8] != ' ' ||
        !isdigit((unsigned char)status_line[9]) || !isdigit((unsigned char)status_line[10]) ||
        !isdigit((unsigned char)status_line[11])) {
        snprintf(detail, detail_len, "not an HTTP status line");
        return OCSP_ERR_MALFORMED;
    }
    if (strncmp(status_line + 9, "200", 3) != 0) {
        snprintf(detail, detail_len, "%s answered '%.*s'", f->method, status_len, status_line);
        return OCSP_ERR_HTTP_STATUS;
    }

    const char *headers = line_end + 1;
    size_t headers_len = f->body_start - (headers - f->buf);
    size_t len;
    const char *value = headerValue(headers, headers_len, "Content-Type", &len);
    const char *expected = "application/ocsp-response";
    size_t type_len = 0;
    while (value && type_len < len && value[type_len] != ';' && value[type_len] != ' ' && value[type_len] != '\t')
        type_len++;
    if (!value || type_len != strlen(expected) || strncasecmp(value, expected, type_len) != 0) {
        snprintf(detail, detail_len, "Content-Type '%.*s'", value ? (int)(len > 64 ? 64 : len) : 0, value ? value : "");
        return OCSP_ERR_CONTENT_TYPE;
    }
    value = headerValue(headers, headers_len, "Transfer-Encoding", &len);
    if (value && !(len == 8 && strncasecmp(value, "identity", 8) == 0)) {
        snprintf(detail, detail_len, "Transfer-Encoding '%.*s' in an HTTP/1.0 exchange", (int)(len > 32 ? 32 : len),
                 value);
        return OCSP_ERR_MALFORMED;
    }
    f->content_length = -1;
    value = headerValue(headers, headers_len, "Content-Length", &len);
    if (value) {
        long long n;
        if (!string2ll(value, len, &n) || n < 0) {
            snprintf(detail, detail_len, "bad Content-Length");
            return OCSP_ERR_MALFORMED;
        }
        if (n > OCSP_MAX_BODY_BYTES) {
            snprintf(detail, detail_len, "Content-Length %lld exceeds %d bytes", n, OCSP_MAX_BODY_BYTES);
            return OCSP_ERR_TOO_LARGE;
        }
        f->content_length = n;
    }
    return OCSP_ERR_NONE;
}

/* One read, as the socket allows and the bounds leave room for. */
static void fetchReadProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    char detail[OCSP_DETAIL_LEN];
    /* Headers fill at most OCSP_MAX_HEADER_BYTES. A body of unknown length
     * gets room for one byte past its bound, so that a peer sending more than
     * it may is caught by the read that carries the extra byte. */
    size_t limit = OCSP_MAX_HEADER_BYTES;
    if (f->body_start)
        limit = f->body_start + (f->content_length >= 0 ? (size_t)f->content_length : OCSP_MAX_BODY_BYTES + 1);
    ssize_t n = read(fd, f->buf + f->received, limit - f->received);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n == -1) {
        snprintf(detail, sizeof(detail), "reading: %s", strerror(errno));
        fetchFinish(f, OCSP_ERR_TRUNCATED, detail);
        return;
    }
    size_t scan_from = f->received > 3 ? f->received - 3 : 0;
    f->received += n;

    if (!f->body_start && n > 0) {
        size_t prefix = f->received < 5 ? f->received : 5;
        if (memcmp(f->buf, "HTTP/", prefix) != 0) {
            fetchFinish(f, OCSP_ERR_MALFORMED, "not an HTTP response");
            return;
        }
        char *end = memmem(f->buf + scan_from, f->received - scan_from, "\r\n\r\n", 4);
        if (!end && f->received >= OCSP_MAX_HEADER_BYTES) {
            snprintf(detail, sizeof(detail), "headers exceed %d bytes", OCSP_MAX_HEADER_BYTES);
            fetchFinish(f, OCSP_ERR_TOO_LARGE, detail);
            return;
        }
        if (!end) return;
        f->body_start = end + 4 - f->buf;
        ocspError err = fetchCheckHeaders(f, detail, sizeof(detail));
        if (err == OCSP_ERR_HTTP_STATUS && f->post_fallback) {
            fetchRetryWithPost(f, detail);
            return;
        }
        if (err != OCSP_ERR_NONE) {
            fetchFinish(f, err, detail);
            return;
        }
    }
    if (!f->body_start) {
        fetchFinish(f, OCSP_ERR_TRUNCATED, "the connection closed before the end of the headers");
        return;
    }
    size_t body_len = f->received - f->body_start;
    if (body_len > OCSP_MAX_BODY_BYTES) {
        snprintf(detail, sizeof(detail), "the body exceeds %d bytes", OCSP_MAX_BODY_BYTES);
        fetchFinish(f, OCSP_ERR_TOO_LARGE, detail);
        return;
    }
    if (f->content_length >= 0 && body_len >= (size_t)f->content_length) {
        f->received = f->body_start + f->content_length; /* Ignore what follows. */
        fetchFinish(f, OCSP_ERR_NONE, NULL);
    } else if (n == 0 && f->content_length >= 0) {
        snprintf(detail, sizeof(detail), "the connection closed after %zu of %lld body bytes", body_len,
                 f->content_length);
        fetchFinish(f, OCSP_ERR_TRUNCATED, detail);
    } else if (n == 0) {
        fetchFinish(f, OCSP_ERR_NONE, NULL); /* No Content-Length: the close ends the body. */
    }
}

/* One write of what is left of the request. */
static void fetchWriteProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    ssize_t n = write(fd, f->request + f->request_sent, sdslen(f->request) - f->request_sent);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n == -1) {
        char detail[OCSP_DETAIL_LEN];
        snprintf(detail, sizeof(detail), "sending the request: %s", strerror(errno));
        fetchFinish(f, OCSP_ERR_CONNECT_FAILED, detail);
        return;
    }
    f->request_sent += n;
    if (f->request_sent < sdslen(f->request)) return;
    f->phase = OCSP_FETCH_RECEIVING;
    f->buf = zmalloc(OCSP_MAX_HEADER_BYTES + OCSP_MAX_BODY_BYTES + 1);
    if (!fetchWatch(f, AE_READABLE, fetchReadProc)) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
}

/* The DER OCSP request for our certificate (no nonce: responders such as
 * Microsoft ADCS refuse nonces by default). */
static int encodeRequest(const ocspSubject *s, unsigned char **der) {
    OCSP_REQUEST *request = OCSP_REQUEST_new();
    OCSP_CERTID *certid = request ? OCSP_CERTID_dup(s->certid) : NULL;
    if (certid && !OCSP_request_add0_id(request, certid)) {
        OCSP_CERTID_free(certid);
        certid = NULL;
    }
    int len = certid ? i2d_OCSP_REQUEST(request, der) : -1;
    OCSP_REQUEST_free(request);
    return len;
}

static sds base64(const unsigned char *data, size_t len) {
    sds out = sdsnewlen(SDS_NOINIT, 4 * ((len + 2) / 3));
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    sdssetlen(out, n);
    return out;
}

/* The HTTP/1.0 request: a GET when the URL-encoded base64 of the request
 * fits in 255 bytes (RFC 5019 section 5: caches in front of responders
 * answer it), else (or when get is false) a POST; NULL when a GET cannot be
 * made. Through a proxy, the target is the absolute URL, and the proxy's
 * credentials go in Proxy-Authorization. */
static sds buildRequest(const ocspSubject *s, const ocspUrl *proxy, const unsigned char *der, int der_len, bool get) {
    const ocspUrl *url = &s->responder;
    sds host = strchr(url->host, ':') ? sdscatfmt(sdsempty(), "[%S]", url->host) : sdsdup(url->host);
    if (strcmp(url->port, "80") != 0) host = sdscatfmt(host, ":%S", url->port);
    sds target = proxy ? sdscatfmt(sdsempty(), "http://%S%S", host, url->path) : sdsdup(url->path);
    if (get) {
        sds encoded = base64(der, der_len), escaped = sdsempty();
        for (size_t i = 0; i < sdslen(encoded); i++) {
            char ch = encoded[i];
            escaped = ch == '+'   ? sdscat(escaped, "%2B")
                      : ch == '/' ? sdscat(escaped, "%2F")
                      : ch == '=' ? sdscat(escaped, "%3D")
                                  : sdscatlen(escaped, &ch, 1);
        }
        sdsfree(encoded);
        if (sdslen(escaped) > 255) {
            sdsfree(escaped);
            sdsfree(target);
            sdsfree(host);
            return NULL;
        }
        if (target[sdslen(target) - 1] != '/') target = sdscat(target, "/");
        target = sdscatsds(target, escaped);
        sdsfree(escaped);
    }
    sds req = sdscatfmt(sdsempty(), "%s %S HTTP/1.0\r\nHost: %S\r\n", get ? "GET" : "POST", target, host);
    if (proxy && proxy->userinfo) {
        sds credentials = base64((unsigned char *)proxy->userinfo, sdslen(proxy->userinfo));
        req = sdscatfmt(req, "Proxy-Authorization: Basic %S\r\n", credentials);
        sdsfree(credentials);
    }
    if (get) {
        req = sdscat(req, "Accept: application/ocsp-response\r\nConnection: close\r\n\r\n");
    } else {
        req = sdscatfmt(req,
                        "Content-Type: application/ocsp-request\r\n"
                        "Accept: application/ocsp-response\r\n"
                        "Content-Length: %i\r\n"
                        "Connection: close\r\n"
                        "\r\n",
                        der_len);
        req = sdscatlen(req, der, der_len);
    }
    sdsfree(target);
    sdsfree(host);
    return req;
}

/* The responder refused our GET: the same fetch asks again with POST, over
 * a new connection, and so do later fetches to this responder. */
static void fetchRetryWithPost(ocspFetch *f, const char *refusal) {
    serverLog(LL_NOTICE, "OCSP: %s refused GET (%s); asking with POST from now on", ocsp.subject->url, refusal);
    ocsp.subject->post_only = true;
    fetchUnwatch(f);
    close(f->fd);
    f->fd = -1;
    sdsfree(f->request);
    f->request = f->post_fallback;
    f->post_fallback = NULL;
    f->method = "POST";
    f->request_sent = 0;
    zfree(f->buf);
    f->buf = NULL;
    f->received = f->body_start = 0;
    f->next_address = f->addresses;
    f->connect_errno = 0;
    fetchConnectNext(f);
}

static void fetchConnectedProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    int err = anetGetError(fd);
    if (err) {
        fetchUnwatch(f);
        close(f->fd);
        f->fd = -1;
        f->connect_errno = err;
        fetchConnectNext(f);
        return;
    }
    f->phase = OCSP_FETCH_SENDING;
    if (!fetchWatch(f, AE_WRITABLE, fetchWriteProc)) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
}

/* Try the resolved addresses in order until a connect gets under way. */
static void fetchConnectNext(ocspFetch *f) {
    f->phase = OCSP_FETCH_CONNECTING;
    while (f->next_address) {
        struct addrinfo *ai = f->next_address;
        f->next_address = ai->ai_next;
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd == -1) {
            f->connect_errno = errno;
            continue;
        }
        if (anetNonBlock(NULL, fd) != ANET_OK || anetCloexec(fd) == -1 ||
            (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 && errno != EINPROGRESS)) {
            f->connect_errno = errno;
            close(fd);
            continue;
        }
        f->fd = fd;
        if (!fetchWatch(f, AE_WRITABLE, fetchConnectedProc))
            fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
        return;
    }
    fetchFinish(f, OCSP_ERR_CONNECT_FAILED, f->connect_errno ? strerror(f->connect_errno) : "no address to connect to");
}

static void fetchResolved(ocspFetch *f, int gai_error, struct addrinfo *result) {
    f->lookup_id = 0;
    if (gai_error) {
        if (result) freeaddrinfo(result);
        fetchFinish(f, OCSP_ERR_RESOLVE_FAILED, gai_strerror(gai_error));
        return;
    }
    f->addresses = f->next_address = result;
    fetchConnectNext(f);
}

/* Begins from the event loop, so that no fetch does I/O inside a CONFIG SET
 * or before the bio workers exist at startup. */
static long long fetchBeginProc(struct aeEventLoop *el, long long id, void *client_data) {
    UNUSED(el);
    UNUSED(id);
    ocspFetch *f = client_data;
    f->start_timer = AE_ERR;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *numeric = NULL;
    if (getaddrinfo(f->host, f->port, &hints, &numeric) == 0) {
        fetchResolved(f, 0, numeric);
        return AE_NOMORE;
    }
    f->phase = OCSP_FETCH_RESOLVING;
    f->lookup_id = lookupSubmit(f->host, f->port);
    if (!f->lookup_id) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot reach the background worker");
    return AE_NOMORE;
}

static void fetchStart(void) {
    ocspSubject *s = ocsp.subject;
    const char *proxy_config = server.tls_ocsp_config.proxy, *err;
    ocspUrl proxy = {0};
    bool via_proxy = proxy_config && ocspUrlParse(proxy_config, &proxy, 1, &err);
    ocspFetch *f = zcalloc(sizeof(*f));
    f->phase = OCSP_FETCH_STARTING;
    f->fd = -1;
    f->start_timer = f->timeout_timer = AE_ERR;
    f->host = zstrdup(via_proxy ? proxy.host : s->responder.host);
    f->port = zstrdup(via_proxy ? proxy.port : s->responder.port);
    ocsp.fetch = f;
    ocsp.fetch_scheduled = false;

    unsigned char *der = NULL;
    int der_len = encodeRequest(s, &der);
    if (der_len > 0) {
        /* A GET appends to the path: not after a query string. */
        bool can_get = !s->post_only && !strchr(s->responder.path, '?');
        sds get = can_get ? buildRequest(s, via_proxy ? &proxy : NULL, der, der_len, true) : NULL;
        sds post = buildRequest(s, via_proxy ? &proxy : NULL, der, der_len, false);
        f->method = get ? "GET" : "POST";
        f->request = get ? get : post;
        f->post_fallback = get ? post : NULL;
    }
    OPENSSL_free(der);
    if (via_proxy) {
        sds shown = proxyRedacted(proxy_config);
        serverLog(LL_VERBOSE, "OCSP: querying %s for the server certificate (%s, through %s)", s->url, f->method,
                  shown);
        sdsfree(shown);
    } else if (f->request) {
        serverLog(LL_VERBOSE, "OCSP: querying %s for the server certificate (%s)", s->url, f->method);
    }
    ocspUrlClear(&proxy);
    if (!f->request) {
        fetchFinish(f, OCSP_ERR_INTERNAL, "cannot build the OCSP request");
        return;
    }
    f->timeout_timer = aeCreateTimeEvent(server.el, secondsToMs(server.tls_ocsp_config.response_timeout),
                                         fetchTimeoutProc, f, NULL);
    f->start_timer = aeCreateTimeEvent(server.el, 0, fetchBeginProc, f, NULL);
    if (f->timeout_timer == AE_ERR || f->start_timer == AE_ERR)
        fetchFinish(f, OCSP_ERR_INTERNAL, "cannot create the fetch timers");
}

/* ------------------------------------------------------------------------- */
/* Verification: what may be stapled.                                         */

/* The validity we give our own responses without nextUpdate. */
static mstime_t noNextUpdateValidity(void) {
    int bound = server.tls_ocsp_config.max_refresh_interval;
    return bound ? secondsToMs(bound) : OCSP_NO_NEXT_UPDATE_VALIDITY_MS;
}

/* Keep in the unsigned certs field only what a client needs to check the
 * signature: nothing when the issuer signed, else the delegated signer. */
static int trimCertificates(const ocspSubject *s, OCSP_BASICRESP *basic) {
    X509 *signer = NULL;
    if (OCSP_resp_get0_signer(basic, &signer, s->chain) != 1) return 0;
    bool delegated = X509_cmp(signer, s->issuer) != 0;
    X509_up_ref(signer);
    /* The response owns its certs stack and OpenSSL has no setter for it;
     * it lies outside the signed data, so emptying it keeps the signature. */
    STACK_OF(X509) *certs = (STACK_OF(X509) *)OCSP_resp_get0_certs(basic);
    while (sk_X509_num(certs) > 0) X509_free(sk_X509_pop(certs));
    int ok = !delegated || OCSP_basic_add1_cert(basic, signer);
    X509_free(signer);
    return ok;
}

/* Decode, check and trim an answer. On OCSP_ERR_NONE *staple_der holds what
 * to staple (OPENSSL_free it) and info describes it. */
static ocspError verifyResponse(const ocspSubject *s,
                                const unsigned char *der,
                                size_t der_len,
                                ocspResponseInfo *info,
                                unsigned char **staple_der,
                                char *detail,
                                size_t detail_len) {
    const unsigned char *p = der;
    OCSP_RESPONSE *response = d2i_OCSP_RESPONSE(NULL, &p, (long)der_len);
    OCSP_BASICRESP *basic = NULL;
    ocspError err = OCSP_ERR_NONE;
    int len = 0;
    *staple_der = NULL;
    if (!response || p != der + der_len) {
        snprintf(detail, detail_len, response ? "bytes after the response" : "not a DER OCSP response");
        err = OCSP_ERR_MALFORMED;
    } else if (OCSP_response_status(response) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(detail, detail_len, "responder answered '%s'", OCSP_response_status_str(OCSP_response_status(response)));
        err = OCSP_ERR_RESPONDER_ERROR;
    } else if (!(basic = OCSP_response_get1_basic(response))) {
        snprintf(detail, detail_len, "no basic response inside");
        err = OCSP_ERR_MALFORMED;
    } else if ((err = ocspCheckBasicResponse(basic, s->chain, s->store, s->certid, noNextUpdateValidity(), info, detail,
                                             detail_len)) != OCSP_ERR_NONE) {
        /* detail says why */
    } else if (!trimCertificates(s, basic)) {
        snprintf(detail, detail_len, "cannot trim the certificates of the response");
        err = OCSP_ERR_INTERNAL;
    } else {
        OCSP_RESPONSE *trimmed = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
        len = trimmed ? i2d_OCSP_RESPONSE(trimmed, staple_der) : -1;
        OCSP_RESPONSE_free(trimmed);
        if (len <= 0) {
            snprintf(detail, detail_len, "cannot encode the response");
            err = OCSP_ERR_INTERNAL;
        } else if (len > OCSP_MAX_STAPLE_BYTES) {
            snprintf(detail, detail_len, "%d bytes after trimming, more than the %d a TLS 1.2 handshake can carry",
                     len, OCSP_MAX_STAPLE_BYTES);
            err = OCSP_ERR_TOO_LARGE;
        }
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(response);
    ERR_clear_error();
    if (err != OCSP_ERR_NONE) {
        OPENSSL_free(*staple_der);
        *staple_der = NULL;
        return err;
    }
    info->bytes = (size_t)len;
    return OCSP_ERR_NONE;
}

/* ------------------------------------------------------------------------- */
/* Peer verification: the staples of the servers we connect to (replication, */
/* cluster bus, Sentinel, MIGRATE). Runs in whichever thread does the         */
/* handshake, on the handshake's own objects; shared are only the counters   */
/* and the log limiter, under a mutex held for a few stores.                  */

#define OCSP_PEER_LOG_INTERVAL_MS (60 * 1000LL)
#define OCSP_PEER_LOG_SLOTS 64

/* SSL ex_data index holding the policy a connection was created with, so a
 * CONFIG SET meanwhile never changes a handshake under way. */
static int peer_policy_index = -1;

static atomic_llong peer_checks_ok = 0, peer_checks_failed = 0;
static pthread_mutex_t peer_mutex = PTHREAD_MUTEX_INITIALIZER;
static char peer_last_failure[NET_IP_STR_LEN + 96] = "none";
/* When each recent (peer, reason) was last logged. */
static struct {
    char key[NET_IP_STR_LEN + 72];
    mstime_t logged_at;
} peer_logged[OCSP_PEER_LOG_SLOTS];

static void peerAddress(SSL *ssl, char *buf, size_t len) {
    char ip[NET_IP_STR_LEN];
    int port, fd = SSL_get_fd(ssl);
    if (fd < 0 || anetFdToString(fd, ip, sizeof(ip), &port, 1) == -1) {
        snprintf(buf, len, "an unknown peer");
        return;
    }
    snprintf(buf, len, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Count a refused peer; log it at most once a minute per peer and reason.
 * An incoming peer is one address whatever port it comes from. */
static void peerCheckFailed(SSL *ssl, ocspError err, bool remembered, const char *detail) {
    char peer[NET_IP_STR_LEN + 8], key[sizeof(peer_logged[0].key)], reason[64];
    bool incoming = SSL_is_server(ssl);
    peerAddress(ssl, peer, sizeof(peer));
    snprintf(reason, sizeof(reason), "%s%s", ocsp_error_names[err], remembered ? " (remembered)" : "");
    const char *port = strrchr(peer, ':');
    size_t key_len = incoming && port ? (size_t)(port - peer) : strlen(peer);
    snprintf(key, sizeof(key), "%s%.*s %s", incoming ? "from " : "", (int)key_len, peer, reason);
    mstime_t now = ocspClockMs(); /* An I/O thread may run this. */
    bool log = true;
    int slot = 0;
    atomic_fetch_add_explicit(&peer_checks_failed, 1, memory_order_relaxed);
    pthread_mutex_lock(&peer_mutex);
    snprintf(peer_last_failure, sizeof(peer_last_failure), "%s %s%s", reason, peer, incoming ? " (incoming)" : "");
    for (int i = 0; i < OCSP_PEER_LOG_SLOTS; i++) {
        if (!strcmp(peer_logged[i].key, key)) {
            slot = i;
            log = now - peer_logged[i].logged_at >= OCSP_PEER_LOG_INTERVAL_MS;
            break;
        }
        if (peer_logged[i].logged_at < peer_logged[slot].logged_at) slot = i;
    }
    if (log) {
        memcpy(peer_logged[slot].key, key, sizeof(key));
        peer_logged[slot].logged_at = now;
    }
    pthread_mutex_unlock(&peer_mutex);
    if (log)
        serverLog(LL_WARNING, "OCSP: refusing the TLS connection %s %s: %s (%s)", incoming ? "from" : "to", peer,
                  reason, detail);
}

/* Certificates whose own staple said revoked when we connected to their
 * server. Revocation sticks: such a certificate is refused on outgoing
 * connections under either policy and on incoming ones (a cluster node's bus
 * link always presents one, so a revoked node is cut off both ways and its
 * pings stop), whether or not its server staples later, until a valid staple
 * for it says good (a certificateHold lifted) or tls-ocsp-verify-peers is set
 * to no. A handshake without a staple never changes the set.
 *
 * Nothing is ever evicted: an entry costs 32 bytes, and adding one takes a
 * certificate our CA issued, its key, and a response our CA signed saying it
 * is revoked, so the set grows only as the CA revokes. Sorted SHA-256
 * fingerprints under peer_mutex; revoked_peers_count lets handshakes skip the
 * lookup while the set is empty. */
static unsigned char (*revoked_peers)[SHA256_DIGEST_LENGTH] = NULL;
static size_t revoked_peers_used = 0, revoked_peers_size = 0;
static atomic_size_t revoked_peers_count = 0;

static bool certFingerprint(X509 *cert, unsigned char *fingerprint) {
    unsigned int len = 0;
    return cert && X509_digest(cert, EVP_sha256(), fingerprint, &len) == 1 && len == SHA256_DIGEST_LENGTH;
}

/* Where the fingerprint is, or would be inserted, in the sorted set; *found
 * says which. peer_mutex held. */
static size_t revokedPeerSlot(const unsigned char *fingerprint, bool *found) {
    size_t low = 0, high = revoked_peers_used;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int cmp = memcmp(revoked_peers[mid], fingerprint, SHA256_DIGEST_LENGTH);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            low = mid + 1;
        else
            high = mid;
    }
    *found = false;
    return low;
}

static void revokedPeerRemember(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!certFingerprint(cert, fingerprint)) return;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    size_t slot = revokedPeerSlot(fingerprint, &found);
    if (!found) {
        if (revoked_peers_used == revoked_peers_size) {
            revoked_peers_size = revoked_peers_size ? revoked_peers_size * 2 : 16;
            revoked_peers = zrealloc(revoked_peers, revoked_peers_size * SHA256_DIGEST_LENGTH);
        }
        memmove(revoked_peers[slot + 1], revoked_peers[slot], (revoked_peers_used - slot) * SHA256_DIGEST_LENGTH);
        memcpy(revoked_peers[slot], fingerprint, SHA256_DIGEST_LENGTH);
        atomic_store(&revoked_peers_count, ++revoked_peers_used);
    }
    pthread_mutex_unlock(&peer_mutex);
}

static void revokedPeerForget(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!atomic_load(&revoked_peers_count) || !certFingerprint(cert, fingerprint)) return;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    size_t slot = revokedPeerSlot(fingerprint, &found);
    if (found) {
        memmove(revoked_peers[slot], revoked_peers[slot + 1], (revoked_peers_used - slot - 1) * SHA256_DIGEST_LENGTH);
        atomic_store(&revoked_peers_count, --revoked_peers_used);
    }
    pthread_mutex_unlock(&peer_mutex);
}

static bool revokedPeerKnown(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!atomic_load(&revoked_peers_count) || !certFingerprint(cert, fingerprint)) return false;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    revokedPeerSlot(fingerprint, &found);
    pthread_mutex_unlock(&peer_mutex);
    return found;
}

static void revokedPeersClear(void) {
    if (!atomic_load(&revoked_peers_count)) return;
    pthread_mutex_lock(&peer_mutex);
    zfree(revoked_peers);
    revoked_peers = NULL;
    revoked_peers_used = revoked_peers_size = 0;
    atomic_store(&revoked_peers_count, 0);
    pthread_mutex_unlock(&peer_mutex);
}

#define OCSP_REMEMBERED_DETAIL "its certificate's own staple said revoked when we connected to it"

/* Verify callback of every context: an incoming connection presenting a
 * certificate known to be revoked fails its handshake. */
static int incomingVerifyCallback(int preverify_ok, X509_STORE_CTX *store) {
    if (!preverify_ok || X509_STORE_CTX_get_error_depth(store) != 0) return preverify_ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (!ssl || !SSL_is_server(ssl) || !cert || !revokedPeerKnown(cert)) return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
    peerCheckFailed(ssl, OCSP_ERR_REVOKED, true, OCSP_REMEMBERED_DETAIL);
    return 0;
}

/* Client side of the status callback: the handshake goes on only when the
 * peer's staple meets the connection's policy, and its certificate is not
 * remembered as revoked unless this very staple is valid and says good. */
static int peerStatusCallback(SSL *ssl) {
    int policy = (int)(intptr_t)SSL_get_ex_data(ssl, peer_policy_index);
    if (policy == TLS_OCSP_VERIFY_PEERS_NO) return 1;
    char detail[OCSP_DETAIL_LEN] = "";
    ocspResponseInfo info = {0};
    X509 *cert = ocspPeerCertificate(ssl);
    ocspError err = ocspCheckPeerStaple(ssl, policy, &info, detail, sizeof(detail));
    bool stapled_good = err == OCSP_ERR_NONE && info.bytes > 0 && info.cert_status == V_OCSP_CERTSTATUS_GOOD;
    if (stapled_good) {
        revokedPeerForget(cert);
        atomic_fetch_add_explicit(&peer_checks_ok, 1, memory_order_relaxed);
        return 1;
    }
    if (err == OCSP_ERR_REVOKED) {
        revokedPeerRemember(cert);
    } else if (revokedPeerKnown(cert)) {
        peerCheckFailed(ssl, OCSP_ERR_REVOKED, true, OCSP_REMEMBERED_DETAIL);
        return 0;
    }
    if (err == OCSP_ERR_NONE) {
        atomic_fetch_add_explicit(&peer_checks_ok, 1, memory_order_relaxed);
        return 1;
    }
    peerCheckFailed(ssl, err, false, detail);
    return 0;
}

static void ensurePeerPolicyIndex(void) {
    if (peer_policy_index == -1) peer_policy_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------- */
/* Outcomes: a verified response is published, a failure counted.            */

static bool responseFileMode(void) {
    return server.tls_ocsp_config.response_file != NULL;
}

/* name, relative to dir (the working directory) unless absolute. */
static sds absolutePath(const char *name) {
    if (name[0] == '/') return sdsnew(name);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) return NULL;
    return sdscatfmt(sdsnew(cwd), "/%s", name);
}

static sds cacheFilePath(void) {
    const char *name = server.tls_ocsp_config.cache_file;
    return name && name[0] ? absolutePath(name) : NULL;
}

static void forgetHeld(void) {
    zfree(ocsp.held);
    ocsp.held = NULL;
}

/* Make a verified response the one clients get. A response issued "in the
 * future" by a responder whose clock runs ahead (within the allowed skew)
 * waits for its thisUpdate while a valid one is stapled, so that clients
 * with strict clocks never get it early. */
static void publishResponse(const ocspResponseInfo *info, const unsigned char *der, ocspSource source) {
    forgetHeld();
    if (info->this_update > mstime() && ocsp.cache_state == OCSP_CACHE_STAPLED) {
        ocsp.held = zmalloc(sizeof(*ocsp.held) + info->bytes);
        ocsp.held->info = *info;
        ocsp.held->source = source;
        memcpy(ocsp.held->der, der, info->bytes);
        return;
    }
    staplePublish(stapleCreate(ocsp.subject->cert, info->expires, der, info->bytes));
    ocsp.cache_state = OCSP_CACHE_STAPLED;
    ocsp.cached = *info;
    ocsp.source = source;
    ocsp.margin_warned = false;
}

/* The held response's time has come. */
static void publishHeldIfDue(void) {
    if (!ocsp.held || mstime() < ocsp.held->info.this_update) return;
    ocspHeldResponse *held = ocsp.held;
    ocsp.held = NULL;
    publishResponse(&held->info, held->der, held->source);
    zfree(held);
}

static void recordFailure(ocspError err, const char *detail, ocspSource source) {
    const char *cached = ocsp.cache_state == OCSP_CACHE_STAPLED ? "the cached response stays stapled until it expires"
                                                                : "nothing is stapled";
    ocsp.fetches_failed++;
    ocsp.consecutive_failures++;
    ocsp.last_error = err;
    if (source == OCSP_SOURCE_FILE) {
        serverLog(LL_WARNING, "OCSP: tls-ocsp-response-file %s refused: %s (%s); %s",
                  server.tls_ocsp_config.response_file, ocsp_error_names[err], detail, cached);
        return;
    }
    recordAttempt(OCSP_OUTCOME_FAILED);
    serverLog(LL_WARNING, "OCSP: fetch from %s failed: %s (%s); %s; retrying in %lld s (failure %d in a row)",
              ocsp.subject->url, ocsp_error_names[err], detail, cached, secondsUntilNextFetch(),
              ocsp.consecutive_failures);
}

/* One log line for a verified response from the responder or the file. */
static void logResponse(const ocspResponseInfo *info, const char *verb, const char *origin, const char *next) {
    char this_update[32], next_update[32] = "none";
    ocspFormatTime(info->this_update, this_update, sizeof(this_update));
    if (info->next_update) ocspFormatTime(info->next_update, next_update, sizeof(next_update));
    if (info->cert_status == V_OCSP_CERTSTATUS_REVOKED) {
        char revoked_at[32];
        ocspFormatTime(info->revoked_at, revoked_at, sizeof(revoked_at));
        serverLog(LL_WARNING,
                  "OCSP: the server certificate is REVOKED (at %s, reason: %s), says %s; stapling the revoked "
                  "status. Replace the certificate. thisUpdate %s, nextUpdate %s%s",
                  revoked_at, OCSP_crl_reason_str(info->revocation_reason), origin, this_update, next_update, next);
    } else {
        serverLog(LL_NOTICE, "OCSP: %s a %s response from %s: thisUpdate %s, nextUpdate %s%s", verb,
                  certStatusName(info->cert_status), origin, this_update, next_update, next);
    }
}

static void recordSuccess(const ocspResponseInfo *info, const unsigned char *der, ocspSource source) {
    publishResponse(info, der, source);
    ocsp.last_success_at = mstime();
    ocsp.fetches_ok++;
    ocsp.consecutive_failures = 0;
    ocsp.last_error = OCSP_ERR_NONE;
    if (source == OCSP_SOURCE_FILE) {
        sds origin = sdscatfmt(sdsempty(), "tls-ocsp-response-file %s", server.tls_ocsp_config.response_file);
        logResponse(info, "read", origin, "");
        sdsfree(origin);
        return;
    }
    recordAttempt(OCSP_OUTCOME_SUCCEEDED);
    sds path = cacheFilePath();
    if (path) cacheWriteSubmit(path, der, info->bytes);
    char next[64];
    snprintf(next, sizeof(next), ", next refresh in %lld s", secondsUntilNextFetch());
    logResponse(info, "fetched", ocsp.subject->url, next);
}

/* Every fetch ends here, exactly once: the context goes, then the answer (if
 * the exchange completed) is verified and the outcome recorded. */
static void fetchFinish(ocspFetch *f, ocspError err, const char *detail) {
    serverAssert(f == ocsp.fetch);
    char verify_detail[OCSP_DETAIL_LEN] = "";
    ocspResponseInfo info = {0};
    unsigned char *staple_der = NULL;
    if (err == OCSP_ERR_NONE) {
        err = verifyResponse(ocsp.subject, (unsigned char *)f->buf + f->body_start, f->received - f->body_start, &info,
                             &staple_der, verify_detail, sizeof(verify_detail));
        detail = verify_detail;
    }
    /* The detail may point into the fetch: log before freeing it. */
    if (err != OCSP_ERR_NONE) recordFailure(err, detail, OCSP_SOURCE_RESPONDER);
    forgetFetch();
    if (err == OCSP_ERR_NONE) recordSuccess(&info, staple_der, OCSP_SOURCE_RESPONDER);
    OPENSSL_free(staple_der);
}

/* Staple a response read from the cache file if it is still valid for our
 * certificate, and let the margin rule, not the restart, decide when to
 * fetch. */
static void cacheLoadBytes(const char *path, const unsigned char *der, size_t len) {
    char detail[OCSP_DETAIL_LEN] = "";
    ocspResponseInfo info = {0};
    unsigned char *staple_der = NULL;
    ocspError err = verifyResponse(ocsp.subject, der, len, &info, &staple_der, detail, sizeof(detail));
    if (err != OCSP_ERR_NONE) {
        serverLog(LL_NOTICE, "OCSP: ignoring the cache file %s: %s (%s)", path, ocsp_error_names[err], detail);
    } else {
        publishResponse(&info, staple_der, OCSP_SOURCE_CACHE);
        recordAttempt(OCSP_OUTCOME_SUCCEEDED);
        char next[64];
        snprintf(next, sizeof(next), ", next refresh in %lld s", secondsUntilNextFetch());
        sds origin = sdscatfmt(sdsempty(), "the cache file %s", path);
        logResponse(&info, "stapling", origin, next);
        sdsfree(origin);
    }
    OPENSSL_free(staple_der);
}

static void logNoCacheFile(const char *path, int error) {
    serverLog(LL_NOTICE, "OCSP: no cached response to staple from %s (%s)", path, fileErrorText(error));
}

/* At start and after a certificate change: the response cached by an
 * earlier run. At start, before the event loop runs, it is read at once (a
 * small regular file, read like the certificate files: the first handshake
 * gets it); later, in the worker, and cacheFileLoaded() takes it. */
static void cacheLoad(void) {
    sds path = cacheFilePath();
    if (!path) return;
    if (ocsp.running) {
        fileReadSubmit(&worker.load_waiting, path, NULL, ocsp.certificate_generation);
    } else {
        int error;
        sds der = readSmallFile(path, OCSP_MAX_BODY_BYTES, NULL, &error);
        if (der)
            cacheLoadBytes(path, (unsigned char *)der, sdslen(der));
        else
            logNoCacheFile(path, error);
        sdsfree(der);
    }
    sdsfree(path);
}

/* The worker read the cache file: staple it unless the certificate changed,
 * or a response came meanwhile. */
static void cacheFileLoaded(ocspFileRead *load) {
    if (load->generation == ocsp.certificate_generation && ocsp.subject && server.tls_ocsp_config.enabled &&
        ocsp.cache_state == OCSP_CACHE_EMPTY && !responseFileMode()) {
        if (load->result == OCSP_FILE_CHANGED)
            cacheLoadBytes(load->path, (unsigned char *)load->data, sdslen(load->data));
        else
            logNoCacheFile(load->path, load->error);
    }
    fileReadFree(load);
}

/* Look at tls-ocsp-response-file about once a second, in the worker. */
static void maybeCheckResponseFile(void) {
    mstime_t now = monotonicMs();
    if (ocsp.file_check_in_flight || now < ocsp.next_file_check_at) return;
    sds path = absolutePath(server.tls_ocsp_config.response_file);
    if (path && fileReadSubmit(&worker.check_waiting, path, &ocsp.file_seen, 0)) ocsp.file_check_in_flight = true;
    ocsp.next_file_check_at = now + 1000;
    sdsfree(path);
}

/* The worker looked at the response file. */
static void responseFileChecked(ocspFileRead *check) {
    ocsp.file_check_in_flight = false;
    sds path = responseFileMode() ? absolutePath(server.tls_ocsp_config.response_file) : NULL;
    bool current = path && ocsp.subject && server.tls_ocsp_config.enabled && !strcmp(path, check->path);
    sdsfree(path);
    if (!current || check->result == OCSP_FILE_UNCHANGED) {
        fileReadFree(check);
        return;
    }
    if (check->result == OCSP_FILE_UNREADABLE) {
        memset(&ocsp.file_seen, 0, sizeof(ocsp.file_seen)); /* Read it again once it is back. */
        if (!ocsp.file_unreadable_logged) {
            /* Counted and logged once until it can be read again. */
            serverLog(LL_WARNING, "OCSP: cannot read tls-ocsp-response-file %s: %s; %s",
                      server.tls_ocsp_config.response_file, fileErrorText(check->error),
                      ocsp.cache_state == OCSP_CACHE_STAPLED ? "the cached response stays stapled until it expires"
                                                             : "nothing is stapled");
            ocsp.file_unreadable_logged = true;
            ocsp.fetches_failed++;
            ocsp.last_error = OCSP_ERR_FILE_UNREADABLE;
        }
        fileReadFree(check);
        return;
    }
    ocsp.file_seen = check->stamp;
    ocsp.file_unreadable_logged = false;
    char detail[OCSP_DETAIL_LEN] = "";
    ocspResponseInfo info = {0};
    unsigned char *staple_der = NULL;
    ocspError err = verifyResponse(ocsp.subject, (unsigned char *)check->data, sdslen(check->data), &info,
                                   &staple_der, detail, sizeof(detail));
    if (err != OCSP_ERR_NONE) {
        recordFailure(err, detail, OCSP_SOURCE_FILE);
    } else {
        recordSuccess(&info, staple_der, OCSP_SOURCE_FILE);
    }
    OPENSSL_free(staple_der);
    fileReadFree(check);
}

/* A response from a file cannot refresh itself: say once when it is within
 * its refresh margin, so that whoever supplies it knows. */
static void warnIfResponseFileDue(void) {
    if (!responseFileMode() || ocsp.cache_state != OCSP_CACHE_STAPLED || ocsp.margin_warned) return;
    mstime_t window = ocsp.cached.expires - ocsp.cached.this_update;
    mstime_t due = ocsp.cached.expires - window * server.tls_ocsp_config.refresh_margin / 100;
    if (mstime() < due) return;
    char when[32];
    ocspFormatTime(ocsp.cached.expires, when, sizeof(when));
    serverLog(LL_WARNING,
              "OCSP: the response in tls-ocsp-response-file %s is within its refresh margin and expires at %s; "
              "supply a fresh one",
              server.tls_ocsp_config.response_file, when);
    ocsp.margin_warned = true;
}

/* ------------------------------------------------------------------------- */
/* Resets, one per meaning.                                                   */

/* Forget the cached response (certificate change, stapling off). */
static void forgetResponse(void) {
    staplePublish(NULL);
    forgetHeld();
    ocsp.cache_state = OCSP_CACHE_EMPTY;
    ocsp.source = OCSP_SOURCE_NONE;
    memset(&ocsp.cached, 0, sizeof(ocsp.cached));
}

/* Forget whom we ask and how it went (responder or trust change): the fetch
 * in flight goes and the next one is due as soon as the subject is rebuilt.
 * The cached response stays: it is still about our certificate. */
static void forgetSubject(void) {
    forgetFetch();
    subjectFree(ocsp.subject);
    ocsp.subject = NULL;
    ocsp.subject_error = OCSP_ERR_NONE;
    ocsp.fetch_scheduled = false;
    ocsp.consecutive_failures = 0;
    ocsp.last_outcome = OCSP_OUTCOME_NONE;
}

/* Forget what was read from the response file, so that it is read again. */
static void forgetResponseFile(void) {
    memset(&ocsp.file_seen, 0, sizeof(ocsp.file_seen));
    ocsp.file_unreadable_logged = false;
    ocsp.next_file_check_at = 0;
}

/* Everything but the counters (another certificate, stapling on or off),
 * including what was seen of the response file, so that it is read again. */
static void forgetAll(void) {
    forgetSubject();
    forgetResponse();
    forgetResponseFile();
    ocsp.certificate_generation++;
}

/* ------------------------------------------------------------------------- */
/* Driving it all.                                                            */

/* Build the subject when stapling is on and a server context exists. */
static void ensureSubject(void) {
    /* After a failure, wait for a change (context, responder, on/off) that
     * clears subject_error rather than re-reading files every cron tick. */
    if (ocsp.subject || ocsp.subject_error || !ocsp.server_ctx || !server.tls_ocsp_config.enabled) return;
    ocspError err = OCSP_ERR_NONE;
    ocsp.subject = subjectCreate(ocsp.server_ctx, server.tls_ocsp_config.responder, &err);
    if (!ocsp.subject) {
        serverLog(LL_WARNING, "OCSP stapling: %s; not stapling",
                  err == OCSP_ERR_NO_ISSUER ? "the issuer of the server certificate is neither in tls-cert-file "
                                              "nor in tls-ca-cert-file / tls-ca-cert-dir"
                                            : "cannot set up the server certificate for OCSP");
        ocsp.subject_error = err;
        ocsp.last_error = err;
        return;
    }
    if (responseFileMode()) return; /* No fetches: the file is read. */
    if (ocsp.cache_load_due && ocsp.cache_state == OCSP_CACHE_EMPTY) cacheLoad();
    ocsp.cache_load_due = false;
    if (!ocsp.subject->url) {
        serverLog(LL_NOTICE, "OCSP stapling: %s; %s",
                  server.tls_ocsp_config.responder ? "tls-ocsp-responder is not a usable http:// URL"
                                                   : "the server certificate names no http:// OCSP responder in its "
                                                     "AIA extension and tls-ocsp-responder is not set",
                  ocsp.cache_state == OCSP_CACHE_STAPLED ? "the cached response stays stapled until it expires"
                                                         : "not stapling");
        ocsp.last_error = OCSP_ERR_NO_RESPONDER;
        return;
    }
    if (ocsp.last_outcome == OCSP_OUTCOME_NONE) scheduleFetchAt(monotonicMs());
}

static void maybeFetchNow(void) {
    ensureSubject();
    if (!server.tls_ocsp_config.enabled || !ocsp.subject) return;
    if (responseFileMode()) return; /* tlsOcspCron looks at the file. */
    if (ocsp.fetch || !ocsp.subject->url) return;
    if (!ocsp.fetch_scheduled || monotonicMs() < ocsp.next_fetch_at || !server.el) return;
    fetchStart();
}

/* Once, when the event loop first runs: the temporary files a server killed
 * while writing its cache file left behind go. */
static void startRunning(void) {
    ocsp.running = true;
    sds path = server.tls_ocsp_config.enabled ? cacheFilePath() : NULL;
    if (path) workerSubmit((void **)&worker.clean_waiting, path, sdsfreeVoid);
}

void tlsOcspCron(void) {
    if (server.tls_ocsp_config.verify_peers == TLS_OCSP_VERIFY_PEERS_NO) revokedPeersClear();
    if (!ocsp.running) startRunning();
    if (!server.tls_ocsp_config.enabled) return;
    if (ocsp.cache_state == OCSP_CACHE_STAPLED && mstime() >= ocsp.cached.expires) {
        char when[32];
        ocspFormatTime(ocsp.cached.expires, when, sizeof(when));
        serverLog(LL_WARNING,
                  "OCSP: the cached response expired at %s and no fresh one could be fetched; stapling stopped",
                  when);
        staplePublish(NULL);
        ocsp.cache_state = OCSP_CACHE_EXPIRED;
    }
    publishHeldIfDue();
    warnIfResponseFileDue();
    maybeFetchNow();
    /* From the cron only: the bio workers exist once the event loop runs,
     * not yet when TLS is first configured. */
    if (responseFileMode() && ocsp.subject) maybeCheckResponseFile();
}

void tlsOcspSetupServerContext(struct ssl_ctx_st *ctx) {
    ensurePeerPolicyIndex();
    SSL_CTX_set_tlsext_status_cb(ctx, ocspStatusCallback);
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), incomingVerifyCallback);
}

/* The context for outgoing connections when tls-client-cert-file is set. */
void tlsOcspSetupClientContext(struct ssl_ctx_st *ctx) {
    tlsOcspSetupServerContext(ctx);
}

/* An outgoing connection asks for its peer's status unless
 * tls-ocsp-verify-peers is no, and keeps the policy it was created with. */
void tlsOcspSetupClientConnection(struct ssl_st *ssl) {
    int policy = server.tls_ocsp_config.verify_peers;
    if (policy == TLS_OCSP_VERIFY_PEERS_NO) return;
    ensurePeerPolicyIndex();
    SSL_set_ex_data(ssl, peer_policy_index, (void *)(intptr_t)policy);
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
}

/* tls.c swapped in a new server context: if the certificate changed, its
 * response goes at once (the status callback never staples a response for
 * another certificate anyway) and a fetch for the new one starts. */
void tlsOcspServerContextChanged(struct ssl_ctx_st *ctx) {
    if (ctx == ocsp.server_ctx) return;
    if (ocsp.server_ctx) SSL_CTX_free(ocsp.server_ctx);
    SSL_CTX_up_ref(ctx);
    ocsp.server_ctx = ctx;

    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (ocsp.subject && cert && X509_cmp(cert, ocsp.subject->cert) == 0) {
        /* Same certificate: keep the response, the schedule and a fetch in
         * flight; rebuild the rest, as the CA files may have changed. */
        ocspError err;
        ocspSubject *s = subjectCreate(ctx, server.tls_ocsp_config.responder, &err);
        if (s) {
            s->post_only = ocsp.subject->post_only;
            subjectFree(ocsp.subject);
            ocsp.subject = s;
            return;
        }
    }
    if (ocsp.subject || ocsp.cache_state != OCSP_CACHE_EMPTY)
        serverLog(LL_NOTICE, "OCSP: the server certificate changed; dropping its response and fetching anew");
    forgetAll();
    ocsp.cache_load_due = true;
    maybeFetchNow();
}

void tlsOcspShutdown(void) {
    forgetAll();
    lookupCancel();
    if (ocsp.server_ctx) SSL_CTX_free(ocsp.server_ctx);
    ocsp.server_ctx = NULL;
}

/* CONFIG SET tls-ocsp-stapling: on fetches at once, off forgets everything. */
int tlsOcspApplyStapling(const char **err) {
    UNUSED(err);
    forgetAll();
    serverLog(LL_NOTICE, "OCSP stapling %s", server.tls_ocsp_config.enabled ? "enabled" : "disabled");
    maybeFetchNow();
    return 1;
}

/* CONFIG SET tls-ocsp-responder: the cached response stays valid (it is about
 * our certificate), but the question goes to the new responder at once. */
int tlsOcspApplyResponder(const char **err) {
    UNUSED(err);
    forgetSubject();
    maybeFetchNow();
    return 1;
}

/* CONFIG SET tls-ocsp-response-file or tls-ocsp-proxy: where responses come
 * from changed. The cached response stays (it is about our certificate);
 * the new source is asked at once. */
int tlsOcspApplySource(const char **err) {
    UNUSED(err);
    forgetSubject();
    forgetResponseFile();
    maybeFetchNow();
    return 1;
}

/* CONFIG SET of the margin, delay, timeout or interval: the next fetch moves
 * as if the last outcome had happened under the new values. */
int tlsOcspApplySchedule(const char **err) {
    UNUSED(err);
    if (server.tls_ocsp_config.enabled && !ocsp.fetch && ocsp.fetch_scheduled) reschedule();
    return 1;
}

/* What INFO calls tls_ocsp_status. */
static const char *stapleStatusName(void) {
    if (!server.tls_ocsp_config.enabled) return "disabled";
    if (ocsp.cache_state == OCSP_CACHE_STAPLED) return certStatusName(ocsp.cached.cert_status);
    if (!responseFileMode() && ocsp.subject && !ocsp.subject->url) return "no_responder";
    if (ocsp.cache_state == OCSP_CACHE_EXPIRED) return "expired";
    return "none";
}

sds tlsOcspInfo(sds info) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    mstime_t now = mstime();
    long long expires_in = -1, refresh_in = -1;
    size_t revoked_remembered = atomic_load(&revoked_peers_count);
    if (ocsp.cache_state != OCSP_CACHE_EMPTY)
        expires_in = ocsp.cached.expires > now ? (ocsp.cached.expires - now) / 1000 : 0;
    if (ocsp.fetch) {
        refresh_in = 0;
    } else if (cfg->enabled && ocsp.fetch_scheduled) {
        refresh_in = secondsUntilNextFetch();
        if (refresh_in < 0) refresh_in = 0;
    }
    const char *responder = ocsp.subject && ocsp.subject->url ? ocsp.subject->url : "";
    char last_failure[sizeof(peer_last_failure)];
    pthread_mutex_lock(&peer_mutex);
    memcpy(last_failure, peer_last_failure, sizeof(last_failure));
    pthread_mutex_unlock(&peer_mutex);
    return sdscatprintf(info,
                        "tls_ocsp_stapling:%s\r\n"
                        "tls_ocsp_status:%s\r\n"
                        "tls_ocsp_responder:%s\r\n"
                        "tls_ocsp_this_update:%lld\r\n"
                        "tls_ocsp_next_update:%lld\r\n"
                        "tls_ocsp_expires_in_seconds:%lld\r\n"
                        "tls_ocsp_next_refresh_in_seconds:%lld\r\n"
                        "tls_ocsp_last_success_time:%lld\r\n"
                        "tls_ocsp_fetches_ok:%lld\r\n"
                        "tls_ocsp_fetches_failed:%lld\r\n"
                        "tls_ocsp_consecutive_failures:%d\r\n"
                        "tls_ocsp_last_error:%s\r\n"
                        "tls_ocsp_staples_sent:%lld\r\n"
                        "tls_ocsp_response_bytes:%zu\r\n"
                        "tls_ocsp_source:%s\r\n"
                        "tls_ocsp_cache_write_failures:%lld\r\n"
                        "tls_ocsp_peer_checks_ok:%lld\r\n"
                        "tls_ocsp_peer_checks_failed:%lld\r\n"
                        "tls_ocsp_peer_last_failure:%s\r\n"
                        "tls_ocsp_peers_revoked_remembered:%zu\r\n",
                        cfg->enabled ? "enabled" : "disabled", stapleStatusName(), responder,
                        ocsp.cached.this_update / 1000, ocsp.cached.next_update / 1000, expires_in, refresh_in,
                        ocsp.last_success_at / 1000, ocsp.fetches_ok, ocsp.fetches_failed, ocsp.consecutive_failures,
                        ocsp_error_names[ocsp.last_error], atomic_load_explicit(&staples_sent, memory_order_relaxed),
                        ocsp.cache_state == OCSP_CACHE_STAPLED ? ocsp.cached.bytes : 0,
                        ocsp_source_names[ocsp.cache_state == OCSP_CACHE_STAPLED ? ocsp.source : OCSP_SOURCE_NONE],
                        atomic_load_explicit(&cache_write_failures, memory_order_relaxed),
                        atomic_load_explicit(&peer_checks_ok, memory_order_relaxed),
                        atomic_load_explicit(&peer_checks_failed, memory_order_relaxed), last_failure,
                        revoked_remembered);
}

/* OCSP REFRESH: fetch now (or read the response file again), unless a fetch
 * is in flight; the outcome shows in INFO and the log as for any fetch. */
static void ocspRefreshCommand(client *c) {
    if (!server.tls_ocsp_config.enabled) {
        addReplyError(c, "OCSP stapling is disabled (tls-ocsp-stapling no)");
        return;
    }
    ensureSubject();
    if (!ocsp.subject) {
        addReplyErrorFormat(c, "OCSP stapling is not set up: %s",
                            ocsp.server_ctx ? ocsp_error_names[ocsp.subject_error] : "TLS is not configured");
        return;
    }
    if (responseFileMode()) {
        forgetResponseFile();
    } else if (!ocsp.subject->url) {
        addReplyError(c, "no OCSP responder: the certificate names no http:// OCSP URL and tls-ocsp-responder is "
                         "not set");
        return;
    } else if (!ocsp.fetch) {
        scheduleFetchAt(monotonicMs());
    }
    maybeFetchNow();
    addReply(c, shared.ok);
}

#else /* Built without TLS, or with TLS as a module: stapling is unavailable. */

static void ocspRefreshCommand(client *c) {
    addReplyError(c, "OCSP stapling needs a server built with BUILD_TLS=yes");
}

int tlsOcspApplySource(const char **err) {
    UNUSED(err);
    return 1;
}

int tlsOcspApplyStapling(const char **err) {
    if (!server.tls_ocsp_config.enabled) return 1;
    *err = "OCSP stapling needs a server built with BUILD_TLS=yes";
    return 0;
}

int tlsOcspApplyResponder(const char **err) {
    UNUSED(err);
    return 1;
}

int tlsOcspApplySchedule(const char **err) {
    UNUSED(err);
    return 1;
}

void tlsOcspSetupServerContext(struct ssl_ctx_st *ctx) {
    UNUSED(ctx);
}

void tlsOcspServerContextChanged(struct ssl_ctx_st *ctx) {
    UNUSED(ctx);
}

void tlsOcspSetupClientContext(struct ssl_ctx_st *ctx) {
    UNUSED(ctx);
}

void tlsOcspSetupClientConnection(struct ssl_st *ssl) {
    UNUSED(ssl);
}

void tlsOcspCron(void) {
}

void tlsOcspShutdown(void) {
}

void tlsOcspBackgroundJob(void) {
}

sds tlsOcspInfo(sds info) {
    return info;
}

#endif

/* ------------------------------------------------------------------------- */
/* Directive parsing, shared by every build.                                  */

void tlsOcspInitConfig(void) {
    server.tls_ocsp_config.refresh_margin = TLS_OCSP_DEFAULT_REFRESH_MARGIN;
}

void ocspCommand(client *c) {
    if (c->argc == 2 && !strcasecmp(objectGetVal(c->argv[1]), "help")) {
        const char *help[] = {
            "REFRESH",
            "    Fetch the OCSP response for the server certificate now (or read tls-ocsp-response-file",
            "    again). Replies at once; the outcome shows in INFO tls and the log.",
            NULL};
        addReplyHelp(c, help);
    } else if (c->argc == 2 && !strcasecmp(objectGetVal(c->argv[1]), "refresh")) {
        ocspRefreshCommand(c);
    } else {
        addReplySubcommandSyntaxError(c);
    }
}

void tlsOcspRewriteProxy(struct standardConfig *config, const char *name, struct rewriteConfigState *state) {
    UNUSED(config);
    const char *proxy = server.tls_ocsp_config.proxy;
    if (!proxy) {
        rewriteConfigMarkAsProcessed(state, name);
        return;
    }
    sds line = sdscatfmt(sdsempty(), "%s ", name);
    line = sdscatrepr(line, proxy, strlen(proxy));
    rewriteConfigRewriteLine(state, name, line, 1);
}

int tlsOcspIsValidResponder(char *val, const char **err) {
    if (val == NULL || val[0] == '\0') return 1;
    ocspUrl url = {0};
    if (!ocspUrlParse(val, &url, 0, err)) return 0;
    ocspUrlClear(&url);
    return 1;
}

/* tls-ocsp-refresh-margin takes "10%" or "10". */
int tlsOcspSetRefreshMargin(struct standardConfig *config, sds *argv, int argc, const char **err) {
    UNUSED(config);
    long long value;
    size_t len = sdslen(argv[0]);
    if (argc != 1) {
        *err = "wrong number of arguments";
        return 0;
    }
    if (len > 0 && argv[0][len - 1] == '%') len--;
    if (len == 0 || !string2ll(argv[0], len, &value) || value < 0 || value > 100) {
        *err = "argument must be a percentage between 0 and 100 inclusive (10% or 10)";
        return 0;
    }
    if (server.tls_ocsp_config.refresh_margin == value) return 2;
    server.tls_ocsp_config.refresh_margin = (int)value;
    return 1;
}

sds tlsOcspGetRefreshMargin(struct standardConfig *config) {
    UNUSED(config);
    return sdscatfmt(sdsempty(), "%i%%", server.tls_ocsp_config.refresh_margin);
}

void tlsOcspRewriteRefreshMargin(struct standardConfig *config, const char *name, struct rewriteConfigState *state) {
    UNUSED(config);
    int value = server.tls_ocsp_config.refresh_margin;
    sds line = sdscatfmt(sdsempty(), "%s %i%%", name, value);
    rewriteConfigRewriteLine(state, name, line, value != TLS_OCSP_DEFAULT_REFRESH_MARGIN);
}
