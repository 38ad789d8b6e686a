/*
 * OCSP stapling for the TLS server side.
 *
 * The main thread keeps one verified OCSP response for the server certificate:
 *
 *   serverCron -> tlsOcspCron() -> fetch when due
 *   fetch: name resolution in a short-lived thread (getaddrinfo blocks), then a
 *          non-blocking connect and an HTTP POST driven by ae file events through
 *          OpenSSL's own HTTP client, the whole exchange bounded by one timer
 *   verify: responder status, signature (OCSP_basic_verify, with the
 *          certificate's issuer as trust anchor), our certificate ID, validity
 *   cache:  the DER is published as an immutable, reference-counted staple
 *
 * The status callback runs in whichever thread does the handshake (the main
 * thread or an I/O thread). It takes a reference to the published staple under
 * a mutex held for a pointer copy, so the main thread may swap or drop the
 * staple at any time without a reader ever seeing freed memory.
 */

#include "server.h"

#if defined(USE_OPENSSL) && USE_OPENSSL == 1 /* BUILD_YES */

#include "anet.h"

#include <openssl/ssl.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/http.h>
#include <openssl/httperr.h>
#endif

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* Accepted clock difference between the responder and us (RFC 6960 practice). */
#define OCSP_CLOCK_SKEW_SECONDS 300
/* Validity given to a response without nextUpdate when the bound is off. */
#define OCSP_NO_NEXT_UPDATE_VALIDITY 3600
/* Longest retry delay while no valid response is cached. */
#define OCSP_RETRY_CAP_WITHOUT_RESPONSE_MS (300 * 1000LL)
#define OCSP_MAX_RESPONSE_BYTES (64 * 1024)

/* ------------------------------------------------------------------------- */
/* The published staple: immutable once published, freed by its last reader. */

typedef struct ocspStaple {
    atomic_int refs;
    X509 *cert;     /* The certificate the response is about (reference held). */
    time_t expires; /* Never staple at or after this time. */
    size_t len;
    unsigned char der[];
} ocspStaple;

static pthread_mutex_t staple_mutex = PTHREAD_MUTEX_INITIALIZER;
static ocspStaple *published_staple = NULL;
static atomic_llong staples_sent = 0;

static ocspStaple *stapleCreate(X509 *cert, time_t expires, const unsigned char *der, size_t len) {
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

/* SSL_CTX status callback, server side: staple when the client asked for
 * status (OpenSSL calls us only then), the response is about the certificate
 * this handshake presents, and it has not expired. */
static int ocspStatusCallback(SSL *ssl, void *arg) {
    UNUSED(arg);
    /* The server context also makes outgoing connections when no client
     * certificate is configured; we never request status there. */
    if (!SSL_is_server(ssl)) return 1;

    ocspStaple *staple = stapleAcquire();
    if (!staple) return SSL_TLSEXT_ERR_NOACK;

    int stapled = 0;
    X509 *cert = SSL_get_certificate(ssl);
    if (cert && (cert == staple->cert || X509_cmp(cert, staple->cert) == 0) && time(NULL) < staple->expires) {
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
/* Identity: what we ask about, where, and whom we trust for the answer.      */

typedef struct ocspIdentity {
    X509 *cert;             /* Leaf of tls-cert-file. */
    X509 *issuer;           /* Its issuer: the trust anchor for responses. */
    STACK_OF(X509) * chain; /* The rest of tls-cert-file: untrusted helpers. */
    X509_STORE *store;      /* Just the issuer, as a partial-chain anchor. */
    OCSP_CERTID *certid;    /* SHA-1 certificate ID (RFC 5019). */
    sds url;                /* Responder URL, NULL when there is none. */
    char *host, *port, *path;
} ocspIdentity;

static void identityFree(ocspIdentity *id) {
    if (!id) return;
    X509_free(id->cert);
    X509_free(id->issuer);
    sk_X509_pop_free(id->chain, X509_free);
    X509_STORE_free(id->store);
    OCSP_CERTID_free(id->certid);
    sdsfree(id->url);
    OPENSSL_free(id->host);
    OPENSSL_free(id->port);
    OPENSSL_free(id->path);
    zfree(id);
}

/* Split an http:// URL. Returns 0 for anything else (https, garbage). */
static int parseResponderUrl(const char *url, char **host, char **port, char **path) {
    int use_ssl = 0;
    *host = *port = *path = NULL;
    if (strncasecmp(url, "http://", 7) != 0) return 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (!OSSL_HTTP_parse_url(url, &use_ssl, NULL, host, port, NULL, path, NULL, NULL)) return 0;
#else
    if (!OCSP_parse_url(url, host, port, path, &use_ssl)) return 0;
#endif
    if (use_ssl || **host == '\0') {
        OPENSSL_free(*host);
        OPENSSL_free(*port);
        OPENSSL_free(*path);
        *host = *port = *path = NULL;
        return 0;
    }
    return 1;
}

/* The first http:// OCSP URL in the certificate's AIA extension, or NULL. */
static sds certificateOcspUrl(X509 *cert) {
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
    sds url = NULL;
    for (int i = 0; i < sk_OPENSSL_STRING_num(urls) && !url; i++) {
        const char *candidate = sk_OPENSSL_STRING_value(urls, i);
        if (strncasecmp(candidate, "http://", 7) == 0) url = sdsnew(candidate);
    }
    X509_email_free(urls);
    return url;
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

/* Build the identity of the context's certificate. On failure returns NULL
 * and sets *why to a short reason for INFO and the log. */
static ocspIdentity *identityCreate(SSL_CTX *ctx, const char *responder, const char **why) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) {
        *why = "no_certificate";
        return NULL;
    }
    ocspIdentity *id = zcalloc(sizeof(*id));
    X509_up_ref(cert);
    id->cert = cert;

    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    id->chain = chain ? X509_chain_up_ref(chain) : sk_X509_new_null();

    id->url = responder ? sdsnew(responder) : certificateOcspUrl(cert);
    if (id->url && !parseResponderUrl(id->url, &id->host, &id->port, &id->path)) {
        sdsfree(id->url);
        id->url = NULL;
    }

    id->issuer = findIssuer(ctx, cert, id->chain);
    if (!id->issuer) {
        *why = "no_issuer";
        identityFree(id);
        return NULL;
    }
    id->store = X509_STORE_new();
    id->certid = OCSP_cert_to_id(NULL, cert, id->issuer);
    if (!id->store || !id->certid || X509_STORE_add_cert(id->store, id->issuer) != 1) {
        *why = "internal_error";
        identityFree(id);
        return NULL;
    }
    /* Our issuer is trusted because it issued our certificate; it need not
     * chain to any root configured for client verification. */
    X509_STORE_set_flags(id->store, X509_V_FLAG_PARTIAL_CHAIN);
    return id;
}

/* ------------------------------------------------------------------------- */
/* Main-thread state.                                                         */

typedef struct ocspFetch ocspFetch;

static struct {
    SSL_CTX *server_ctx;    /* Current server context (reference held). */
    ocspIdentity *identity; /* Built lazily while stapling is enabled. */
    const char *identity_error;
    ocspFetch *fetch;        /* At most one in flight. */
    long long next_fetch_ms; /* -1: nothing scheduled. */

    /* The last verified response, as INFO reports it. */
    int have_response;
    int expired; /* It expired and nothing replaced it. */
    int cert_status;
    time_t this_update, next_update, expires;
    size_t response_bytes;
    long long last_success;

    /* What the schedule is computed from. */
    long long last_attempt_ms;
    int last_attempt_ok;
    int consecutive_failures;
    long long fetches_ok, fetches_failed;
    const char *last_error;
} ocsp = {.next_fetch_ms = -1, .last_error = "none"};

static int responseIsValid(void) {
    return ocsp.have_response && !ocsp.expired;
}

static const char *certStatusName(int status) {
    switch (status) {
    case V_OCSP_CERTSTATUS_GOOD: return "good";
    case V_OCSP_CERTSTATUS_REVOKED: return "revoked";
    default: return "unknown";
    }
}

static void formatTime(time_t t, char *buf, size_t len) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Forget the cached response (certificate change, stapling off). */
static void dropResponse(void) {
    staplePublish(NULL);
    ocsp.have_response = 0;
    ocsp.expired = 0;
    ocsp.this_update = ocsp.next_update = ocsp.expires = 0;
    ocsp.response_bytes = 0;
}

/* ------------------------------------------------------------------------- */
/* Schedule.                                                                  */

static long long secondsToMs(long long s) {
    return s * 1000;
}

/* Whole seconds from now_ms until the next fetch, rounded up. */
static long long secondsUntilNextFetch(long long now_ms) {
    return (ocsp.next_fetch_ms - now_ms + 999) / 1000;
}

/* After a verified response: refresh when the margin of its validity window
 * is left, within [now + retry delay, now + max refresh interval]. */
static long long nextFetchAfterSuccess(long long now_ms) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    long long window_ms = secondsToMs(ocsp.expires - ocsp.this_update);
    long long at = secondsToMs(ocsp.expires) - window_ms * cfg->refresh_margin / 100;
    if (cfg->max_refresh_interval > 0 && at > now_ms + secondsToMs(cfg->max_refresh_interval))
        at = now_ms + secondsToMs(cfg->max_refresh_interval);
    if (at < now_ms + secondsToMs(cfg->retry_delay)) at = now_ms + secondsToMs(cfg->retry_delay);
    return at;
}

/* After a failure: the retry delay doubled per consecutive failure, capped at
 * 5 minutes while nothing valid is cached and at the max refresh interval
 * otherwise, with +-10% jitter (kept under the cap) so that servers started
 * together spread out, and never after the cached response expires. */
static long long nextFetchAfterFailure(long long now_ms) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    long long base_ms = secondsToMs(cfg->retry_delay);
    long long cap_ms = OCSP_RETRY_CAP_WITHOUT_RESPONSE_MS;
    if (responseIsValid()) {
        long long until_expiry_ms = secondsToMs(ocsp.expires) - now_ms;
        cap_ms = cfg->max_refresh_interval > 0 ? secondsToMs(cfg->max_refresh_interval) : until_expiry_ms;
    }
    if (cap_ms < base_ms) cap_ms = base_ms;

    long long delay_ms = base_ms;
    for (int i = 1; i < ocsp.consecutive_failures && delay_ms < cap_ms; i++)
        delay_ms = delay_ms > cap_ms / 2 ? cap_ms : delay_ms * 2;
    delay_ms = (long long)(delay_ms * (0.9 + 0.2 * ((double)rand() / RAND_MAX)));
    if (delay_ms > cap_ms) delay_ms = 2 * cap_ms - delay_ms;
    if (delay_ms < 1000) delay_ms = 1000;

    long long at = now_ms + delay_ms;
    if (responseIsValid() && at > secondsToMs(ocsp.expires)) at = secondsToMs(ocsp.expires);
    return at;
}

static void reschedule(void) {
    if (!ocsp.last_attempt_ms) return; /* The first fetch is already due. */
    ocsp.next_fetch_ms =
        ocsp.last_attempt_ok ? nextFetchAfterSuccess(ocsp.last_attempt_ms) : nextFetchAfterFailure(ocsp.last_attempt_ms);
}

/* ------------------------------------------------------------------------- */
/* Fetch: resolve in a thread, then connect, send and receive over ae.        */

/* A name resolution job, shared by the thread and the main thread; the last
 * one to let go frees it, so a cancelled fetch never waits for getaddrinfo. */
typedef struct ocspResolveJob {
    atomic_int refs;
    char *host, *port;
    struct addrinfo *result;
    int gai_error;
    int notify_fd; /* Write end of the pipe the main thread watches. */
} ocspResolveJob;

struct ocspFetch {
    long long timeout_timer;
    ocspResolveJob *resolve;
    int resolve_fd; /* Read end of the resolver's pipe, or -1. */
    struct addrinfo *addresses, *next_address;
    int connect_errno;
    int fd;
    int watched_mask;
    BIO *bio;
    OCSP_REQUEST *request;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    OSSL_HTTP_REQ_CTX *http;
#else
    OCSP_REQ_CTX *http;
#endif
};

static void fetchFailed(const char *reason, const char *detail);
static void fetchSucceeded(OCSP_RESPONSE *response);
static void fetchConnectNext(void);

static void resolveJobRelease(ocspResolveJob *job) {
    if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1) return;
    if (job->result) freeaddrinfo(job->result);
    if (job->notify_fd != -1) close(job->notify_fd);
    zfree(job->host);
    zfree(job->port);
    zfree(job);
}

static void *resolveThreadMain(void *arg) {
    ocspResolveJob *job = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    job->gai_error = getaddrinfo(job->host, job->port, &hints, &job->result);
    /* The byte publishes the result; a cancelled fetch closed the other end. */
    ssize_t written = write(job->notify_fd, "r", 1);
    UNUSED(written);
    close(job->notify_fd);
    job->notify_fd = -1;
    resolveJobRelease(job);
    return NULL;
}

static void fetchUnwatch(ocspFetch *f) {
    if (f->fd != -1 && f->watched_mask) aeDeleteFileEvent(server.el, f->fd, f->watched_mask);
    f->watched_mask = 0;
}

static void fetchFree(ocspFetch *f) {
    if (f->timeout_timer != AE_ERR) aeDeleteTimeEvent(server.el, f->timeout_timer);
    if (f->resolve_fd != -1) {
        aeDeleteFileEvent(server.el, f->resolve_fd, AE_READABLE);
        close(f->resolve_fd);
    }
    if (f->resolve) resolveJobRelease(f->resolve);
    if (f->addresses) freeaddrinfo(f->addresses);
    fetchUnwatch(f);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    OSSL_HTTP_REQ_CTX_free(f->http);
#else
    OCSP_REQ_CTX_free(f->http);
#endif
    BIO_free(f->bio);
    if (f->fd != -1) close(f->fd);
    OCSP_REQUEST_free(f->request);
    zfree(f);
}

/* Stop the fetch in flight, if any, without counting it. */
static void fetchCancel(void) {
    if (!ocsp.fetch) return;
    fetchFree(ocsp.fetch);
    ocsp.fetch = NULL;
}

static long long fetchTimeoutProc(struct aeEventLoop *el, long long id, void *client_data) {
    UNUSED(el);
    UNUSED(id);
    UNUSED(client_data);
    ocsp.fetch->timeout_timer = AE_ERR; /* ae deletes it as we return AE_NOMORE. */
    char detail[64];
    snprintf(detail, sizeof(detail), "no complete answer within %d s", server.tls_ocsp_config.response_timeout);
    fetchFailed("timeout", detail);
    return AE_NOMORE;
}

/* The OpenSSL error behind a failed HTTP exchange, as a short reason. */
static const char *httpFailureReason(unsigned long err) {
    if (ERR_GET_LIB(err) == ERR_LIB_ASN1) return "malformed";
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (ERR_GET_LIB(err) != ERR_LIB_HTTP) return "malformed";
    switch (ERR_GET_REASON(err)) {
    case HTTP_R_RECEIVED_ERROR:
    case HTTP_R_STATUS_CODE_UNSUPPORTED:
    case HTTP_R_REDIRECTION_NOT_ENABLED:
    case HTTP_R_MISSING_REDIRECT_LOCATION: return "http_status";
    case HTTP_R_UNEXPECTED_CONTENT_TYPE:
    case HTTP_R_MISSING_CONTENT_TYPE: return "content_type";
    case HTTP_R_MAX_RESP_LEN_EXCEEDED:
    case HTTP_R_ASN1_LEN_EXCEEDS_MAX_RESP_LEN: return "too_large";
    case HTTP_R_FAILED_READING_DATA:
    case HTTP_R_ERROR_RECEIVING:
    case HTTP_R_SERVER_CANCELED_CONNECTION:
    case HTTP_R_INCONSISTENT_CONTENT_LENGTH: return "truncated";
    case HTTP_R_ERROR_SENDING: return "connect_failed";
    default: return "malformed";
    }
#else
    if (ERR_GET_LIB(err) == ERR_LIB_OCSP && ERR_GET_REASON(err) == OCSP_R_SERVER_RESPONSE_ERROR) return "http_status";
    return "malformed";
#endif
}

static void fetchWatch(int mask);

/* Advance the HTTP exchange as far as the socket allows. */
static void fetchExchange(void) {
    ocspFetch *f = ocsp.fetch;
    OCSP_RESPONSE *response = NULL;
    ERR_clear_error();
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    int rc = OSSL_HTTP_REQ_CTX_nbio_d2i(f->http, (ASN1_VALUE **)&response, ASN1_ITEM_rptr(OCSP_RESPONSE));
#else
    int rc = OCSP_sendreq_nbio(&response, f->http);
#endif
    if (rc == -1) {
        fetchWatch(BIO_should_write(f->bio) ? AE_WRITABLE : AE_READABLE);
        return;
    }
    if (rc != 1 || !response) {
        unsigned long err = ERR_peek_last_error();
        char detail[256] = "connection closed or unparseable reply";
        if (err) ERR_error_string_n(err, detail, sizeof(detail));
        OCSP_RESPONSE_free(response);
        fetchFailed(err ? httpFailureReason(err) : "malformed", detail);
        return;
    }
    fetchSucceeded(response);
}

static void fetchIoProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(fd);
    UNUSED(client_data);
    UNUSED(mask);
    fetchExchange();
}

static void fetchWatch(int mask) {
    ocspFetch *f = ocsp.fetch;
    if (f->watched_mask == mask) return;
    fetchUnwatch(f);
    if (aeCreateFileEvent(server.el, f->fd, mask, fetchIoProc, NULL) == AE_ERR) {
        fetchFailed("internal_error", "cannot watch the responder socket");
        return;
    }
    f->watched_mask = mask;
}

/* Connected: hand the socket to OpenSSL's HTTP client and start the POST. */
static void fetchStartExchange(void) {
    ocspFetch *f = ocsp.fetch;
    ocspIdentity *id = ocsp.identity;
    sds host_header = strchr(id->host, ':') ? sdscatfmt(sdsempty(), "[%s]", id->host) : sdsnew(id->host);
    if (strcmp(id->port, "80") != 0) host_header = sdscatfmt(host_header, ":%s", id->port);

    f->bio = BIO_new_socket(f->fd, BIO_NOCLOSE);
    int ok = f->bio != NULL;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    ok = ok && (f->http = OSSL_HTTP_REQ_CTX_new(f->bio, f->bio, 0)) != NULL;
    ok = ok && OSSL_HTTP_REQ_CTX_set_request_line(f->http, 1, NULL, NULL, id->path);
    ok = ok && OSSL_HTTP_REQ_CTX_add1_header(f->http, "Host", host_header);
    ok = ok && OSSL_HTTP_REQ_CTX_set_expected(f->http, "application/ocsp-response", 1, 0, 0);
    ok = ok && OSSL_HTTP_REQ_CTX_set1_req(f->http, "application/ocsp-response", ASN1_ITEM_rptr(OCSP_REQUEST),
                                          (const ASN1_VALUE *)f->request);
    if (ok) OSSL_HTTP_REQ_CTX_set_max_response_length(f->http, OCSP_MAX_RESPONSE_BYTES);
#else
    /* OpenSSL 1.1.1 checks the status line but not the Content-Type. */
    ok = ok && (f->http = OCSP_sendreq_new(f->bio, id->path, NULL, -1)) != NULL;
    ok = ok && OCSP_REQ_CTX_add1_header(f->http, "Host", host_header);
    ok = ok && OCSP_REQ_CTX_set1_req(f->http, f->request);
    if (ok) OCSP_set_max_response_length(f->http, OCSP_MAX_RESPONSE_BYTES);
#endif
    sdsfree(host_header);
    if (!ok) {
        fetchFailed("internal_error", "cannot set up the HTTP request");
        return;
    }
    fetchExchange();
}

static void fetchConnectedProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(client_data);
    UNUSED(mask);
    ocspFetch *f = ocsp.fetch;
    int err = anetGetError(fd);
    fetchUnwatch(f);
    if (err) {
        f->connect_errno = err;
        close(f->fd);
        f->fd = -1;
        fetchConnectNext();
        return;
    }
    fetchStartExchange();
}

/* Try the resolved addresses in order until a connect gets under way. */
static void fetchConnectNext(void) {
    ocspFetch *f = ocsp.fetch;
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
        if (aeCreateFileEvent(server.el, fd, AE_WRITABLE, fetchConnectedProc, NULL) == AE_ERR) {
            fetchFailed("internal_error", "cannot watch the responder socket");
            return;
        }
        f->watched_mask = AE_WRITABLE;
        return;
    }
    fetchFailed("connect_failed", f->connect_errno ? strerror(f->connect_errno) : "no address to connect to");
}

static void fetchResolvedProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(client_data);
    UNUSED(mask);
    ocspFetch *f = ocsp.fetch;
    char byte;
    if (read(fd, &byte, 1) != 1) return; /* Spurious wakeup; wait for the byte. */
    aeDeleteFileEvent(server.el, fd, AE_READABLE);
    close(fd);
    f->resolve_fd = -1;

    ocspResolveJob *job = f->resolve;
    f->resolve = NULL;
    int gai_error = job->gai_error;
    f->addresses = job->result;
    job->result = NULL;
    resolveJobRelease(job);
    if (gai_error) {
        fetchFailed("resolve_failed", gai_strerror(gai_error));
        return;
    }
    f->next_address = f->addresses;
    fetchConnectNext();
}

/* Resolve the responder's host: numeric addresses at once, names in a thread
 * of their own so that a slow DNS server never stalls the event loop. */
static void fetchResolve(void) {
    ocspFetch *f = ocsp.fetch;
    ocspIdentity *id = ocsp.identity;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    if (getaddrinfo(id->host, id->port, &hints, &f->addresses) == 0) {
        f->next_address = f->addresses;
        fetchConnectNext();
        return;
    }
    f->addresses = NULL;

    int fds[2];
    if (anetPipe(fds, O_CLOEXEC | O_NONBLOCK, O_CLOEXEC) == -1) {
        fetchFailed("resolve_failed", strerror(errno));
        return;
    }
    ocspResolveJob *job = zcalloc(sizeof(*job));
    atomic_init(&job->refs, 2);
    job->host = zstrdup(id->host);
    job->port = zstrdup(id->port);
    job->notify_fd = fds[1];
    f->resolve = job;
    f->resolve_fd = fds[0];
    if (aeCreateFileEvent(server.el, fds[0], AE_READABLE, fetchResolvedProc, NULL) == AE_ERR) {
        atomic_fetch_sub(&job->refs, 1); /* The thread never starts. */
        fetchFailed("internal_error", "cannot watch the resolver pipe");
        return;
    }
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&thread, &attr, resolveThreadMain, job);
    pthread_attr_destroy(&attr);
    if (err) {
        atomic_fetch_sub(&job->refs, 1);
        fetchFailed("resolve_failed", strerror(err));
    }
}

static void fetchStart(void) {
    ocspIdentity *id = ocsp.identity;
    ocspFetch *f = zcalloc(sizeof(*f));
    f->fd = -1;
    f->resolve_fd = -1;
    f->request = OCSP_REQUEST_new();
    ocsp.fetch = f;
    ocsp.next_fetch_ms = -1;
    f->timeout_timer = aeCreateTimeEvent(server.el, secondsToMs(server.tls_ocsp_config.response_timeout),
                                         fetchTimeoutProc, NULL, NULL);
    OCSP_CERTID *certid = f->request ? OCSP_CERTID_dup(id->certid) : NULL;
    if (certid && !OCSP_request_add0_id(f->request, certid)) {
        OCSP_CERTID_free(certid);
        certid = NULL;
    }
    if (f->timeout_timer == AE_ERR || !certid) {
        fetchFailed("internal_error", "cannot build the OCSP request");
        return;
    }
    serverLog(LL_VERBOSE, "OCSP: querying %s for the server certificate", id->url);
    fetchResolve();
}

/* ------------------------------------------------------------------------- */
/* Verification and outcome.                                                  */

static time_t asn1TimeToUnix(const ASN1_GENERALIZEDTIME *t) {
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return timegm(&tm);
}

typedef struct ocspVerdict {
    int cert_status;
    int revocation_reason;
    time_t revoked_at, this_update, next_update, expires;
} ocspVerdict;

/* Check a response fully before it may be cached. Returns NULL when it is
 * good to staple, else a short reason, with details in detail. */
static const char *verifyResponse(OCSP_RESPONSE *response, ocspVerdict *v, char *detail, size_t len) {
    ocspIdentity *id = ocsp.identity;
    int status = OCSP_response_status(response);
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(detail, len, "responder answered '%s'", OCSP_response_status_str(status));
        return "responder_error";
    }
    OCSP_BASICRESP *basic = OCSP_response_get1_basic(response);
    if (!basic) {
        snprintf(detail, len, "no basic response inside");
        return "malformed";
    }
    const char *reason = NULL;
    ASN1_GENERALIZEDTIME *revtime = NULL, *thisupd = NULL, *nextupd = NULL;
    if (OCSP_basic_verify(basic, id->chain, id->store, 0) <= 0) {
        ERR_error_string_n(ERR_peek_last_error(), detail, len);
        reason = "bad_signature";
    } else if (OCSP_resp_find_status(basic, id->certid, &v->cert_status, &v->revocation_reason, &revtime, &thisupd,
                                     &nextupd) != 1) {
        snprintf(detail, len, "no status for our certificate in the response");
        reason = "wrong_certificate";
    } else {
        time_t now = time(NULL);
        v->this_update = asn1TimeToUnix(thisupd);
        v->next_update = nextupd ? asn1TimeToUnix(nextupd) : 0;
        v->revoked_at = revtime ? asn1TimeToUnix(revtime) : 0;
        int bound = server.tls_ocsp_config.max_refresh_interval;
        v->expires = nextupd ? v->next_update : v->this_update + (bound ? bound : OCSP_NO_NEXT_UPDATE_VALIDITY);
        if (!OCSP_check_validity(thisupd, nextupd, OCSP_CLOCK_SKEW_SECONDS, -1) || v->expires <= now) {
            char when[32];
            if (v->this_update > now + OCSP_CLOCK_SKEW_SECONDS) {
                formatTime(v->this_update, when, sizeof(when));
                snprintf(detail, len, "thisUpdate %s is in the future", when);
                reason = "not_yet_valid";
            } else {
                formatTime(v->expires, when, sizeof(when));
                snprintf(detail, len, "%s %s has passed", nextupd ? "nextUpdate" : "thisUpdate + validity", when);
                reason = "stale";
            }
        }
    }
    OCSP_BASICRESP_free(basic);
    ERR_clear_error();
    return reason;
}

static void fetchSucceeded(OCSP_RESPONSE *response) {
    char detail[256] = "";
    ocspVerdict v = {0};
    const char *reason = verifyResponse(response, &v, detail, sizeof(detail));
    unsigned char *der = NULL;
    int der_len = reason ? 0 : i2d_OCSP_RESPONSE(response, &der);
    OCSP_RESPONSE_free(response);
    if (reason || der_len <= 0) {
        fetchFailed(reason ? reason : "internal_error", reason ? detail : "cannot encode the response");
        return;
    }

    long long now_ms = mstime();
    fetchCancel();
    staplePublish(stapleCreate(ocsp.identity->cert, v.expires, der, (size_t)der_len));
    OPENSSL_free(der);
    ocsp.have_response = 1;
    ocsp.expired = 0;
    ocsp.cert_status = v.cert_status;
    ocsp.this_update = v.this_update;
    ocsp.next_update = v.next_update;
    ocsp.expires = v.expires;
    ocsp.response_bytes = (size_t)der_len;
    ocsp.last_success = now_ms / 1000;
    ocsp.fetches_ok++;
    ocsp.consecutive_failures = 0;
    ocsp.last_error = "none";
    ocsp.last_attempt_ms = now_ms;
    ocsp.last_attempt_ok = 1;
    ocsp.next_fetch_ms = nextFetchAfterSuccess(now_ms);

    char this_update[32], next_update[32] = "none";
    formatTime(v.this_update, this_update, sizeof(this_update));
    if (v.next_update) formatTime(v.next_update, next_update, sizeof(next_update));
    long long refresh_in = secondsUntilNextFetch(now_ms);
    if (v.cert_status == V_OCSP_CERTSTATUS_REVOKED) {
        char revoked_at[32];
        formatTime(v.revoked_at, revoked_at, sizeof(revoked_at));
        serverLog(LL_WARNING,
                  "OCSP: the server certificate is REVOKED (at %s, reason: %s), says %s; stapling the revoked "
                  "status. Replace the certificate. thisUpdate %s, nextUpdate %s, next refresh in %lld s",
                  revoked_at, OCSP_crl_reason_str(v.revocation_reason), ocsp.identity->url, this_update,
                  next_update, refresh_in);
    } else {
        serverLog(LL_NOTICE, "OCSP: fetched a %s response from %s: thisUpdate %s, nextUpdate %s, next refresh in %lld s",
                  certStatusName(v.cert_status), ocsp.identity->url, this_update, next_update, refresh_in);
    }
}

static void fetchFailed(const char *reason, const char *detail) {
    long long now_ms = mstime();
    fetchCancel();
    ocsp.fetches_failed++;
    ocsp.consecutive_failures++;
    ocsp.last_error = reason;
    ocsp.last_attempt_ms = now_ms;
    ocsp.last_attempt_ok = 0;
    ocsp.next_fetch_ms = nextFetchAfterFailure(now_ms);
    serverLog(LL_WARNING, "OCSP: fetch from %s failed: %s (%s); %s; retrying in %lld s (failure %d in a row)",
              ocsp.identity->url, reason, detail,
              responseIsValid() ? "the cached response stays stapled until it expires" : "nothing is stapled",
              secondsUntilNextFetch(now_ms), ocsp.consecutive_failures);
}

/* ------------------------------------------------------------------------- */
/* Driving it all.                                                            */

/* Build the identity when stapling is on and a server context exists. */
static void ensureIdentity(void) {
    /* After a failure, wait for a change (context, responder, on/off) that
     * resets identity_error rather than re-reading files every cron tick. */
    if (ocsp.identity || ocsp.identity_error || !ocsp.server_ctx || !server.tls_ocsp_config.enabled) return;
    const char *why = NULL;
    ocsp.identity = identityCreate(ocsp.server_ctx, server.tls_ocsp_config.responder, &why);
    if (!ocsp.identity) {
        serverLog(LL_WARNING, "OCSP stapling: %s; not stapling",
                  !strcmp(why, "no_issuer") ? "the issuer of the server certificate is neither in tls-cert-file "
                                              "nor in tls-ca-cert-file / tls-ca-cert-dir"
                                            : "cannot set up the server certificate's identity");
        ocsp.identity_error = why;
        ocsp.last_error = why;
        return;
    }
    if (!ocsp.identity->url) {
        serverLog(LL_NOTICE, "OCSP stapling: %s; not stapling",
                  server.tls_ocsp_config.responder ? "tls-ocsp-responder is not a usable http:// URL"
                                                   : "the server certificate names no http:// OCSP responder in its "
                                                     "AIA extension and tls-ocsp-responder is not set");
        ocsp.next_fetch_ms = -1;
        return;
    }
    ocsp.next_fetch_ms = 0;
}

static void maybeFetchNow(void) {
    ensureIdentity();
    if (!server.tls_ocsp_config.enabled || ocsp.fetch || !ocsp.identity || !ocsp.identity->url) return;
    if (ocsp.next_fetch_ms < 0 || mstime() < ocsp.next_fetch_ms || !server.el) return;
    fetchStart();
}

/* The fetch in flight and the identity go; the next fetch is due at once
 * (once an identity is rebuilt), as for a new responder. */
static void forgetIdentity(void) {
    fetchCancel();
    identityFree(ocsp.identity);
    ocsp.identity = NULL;
    ocsp.identity_error = NULL;
    ocsp.consecutive_failures = 0;
    ocsp.last_attempt_ms = 0;
}

/* Identity, fetch and cache all go; counters stay. */
static void resetState(void) {
    forgetIdentity();
    dropResponse();
    ocsp.next_fetch_ms = -1;
}

void tlsOcspCron(void) {
    if (!server.tls_ocsp_config.enabled) return;
    if (responseIsValid() && time(NULL) >= ocsp.expires) {
        char when[32];
        formatTime(ocsp.expires, when, sizeof(when));
        serverLog(LL_WARNING,
                  "OCSP: the cached response expired at %s and no fresh one could be fetched; stapling stopped",
                  when);
        staplePublish(NULL);
        ocsp.expired = 1;
        ocsp.response_bytes = 0;
    }
    maybeFetchNow();
}

void tlsOcspSetupServerContext(void *ssl_ctx) {
    SSL_CTX_set_tlsext_status_cb((SSL_CTX *)ssl_ctx, ocspStatusCallback);
}

/* tls.c swapped in a new server context: if the certificate changed, its
 * response goes at once (the status callback never staples a response for
 * another certificate anyway) and a fetch for the new one starts. */
void tlsOcspServerContextChanged(void *ssl_ctx) {
    SSL_CTX *ctx = ssl_ctx;
    if (ctx == ocsp.server_ctx) return;
    if (ocsp.server_ctx) SSL_CTX_free(ocsp.server_ctx);
    SSL_CTX_up_ref(ctx);
    ocsp.server_ctx = ctx;

    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (ocsp.identity && cert && X509_cmp(cert, ocsp.identity->cert) == 0) {
        /* Same certificate: keep the response and the schedule; rebuild the
         * rest, as the CA files may have changed. */
        const char *why;
        ocspIdentity *id = identityCreate(ctx, server.tls_ocsp_config.responder, &why);
        if (id) {
            identityFree(ocsp.identity);
            ocsp.identity = id;
            return;
        }
    }
    if (ocsp.identity || ocsp.have_response)
        serverLog(LL_NOTICE, "OCSP: the server certificate changed; dropping its response and fetching anew");
    resetState();
    maybeFetchNow();
}

void tlsOcspShutdown(void) {
    resetState();
    if (ocsp.server_ctx) SSL_CTX_free(ocsp.server_ctx);
    ocsp.server_ctx = NULL;
}

/* CONFIG SET tls-ocsp-stapling: on fetches at once, off forgets everything. */
int tlsOcspApplyStapling(const char **err) {
    UNUSED(err);
    resetState();
    serverLog(LL_NOTICE, "OCSP stapling %s", server.tls_ocsp_config.enabled ? "enabled" : "disabled");
    maybeFetchNow();
    return 1;
}

/* CONFIG SET tls-ocsp-responder: the cached response stays valid (it is about
 * our certificate), but the question goes to the new responder at once. */
int tlsOcspApplyResponder(const char **err) {
    UNUSED(err);
    forgetIdentity();
    maybeFetchNow();
    return 1;
}

/* CONFIG SET of the margin, delay, timeout or interval: the next fetch moves
 * as if the last outcome had happened under the new values. */
int tlsOcspApplySchedule(const char **err) {
    UNUSED(err);
    if (server.tls_ocsp_config.enabled && !ocsp.fetch) reschedule();
    return 1;
}

sds tlsOcspInfo(sds info) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    const char *status = "disabled";
    if (cfg->enabled) {
        if (ocsp.identity && !ocsp.identity->url)
            status = "no_responder";
        else if (responseIsValid())
            status = certStatusName(ocsp.cert_status);
        else if (ocsp.expired)
            status = "expired";
        else
            status = "none";
    }
    long long now = time(NULL);
    long long expires_in = -1, refresh_in = -1;
    if (ocsp.have_response) expires_in = ocsp.expires > now ? ocsp.expires - now : 0;
    if (ocsp.fetch)
        refresh_in = 0;
    else if (cfg->enabled && ocsp.next_fetch_ms >= 0) {
        refresh_in = secondsUntilNextFetch(mstime());
        if (refresh_in < 0) refresh_in = 0;
    }
    const char *responder = ocsp.identity && ocsp.identity->url ? ocsp.identity->url : "";
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
                        "tls_ocsp_response_bytes:%zu\r\n",
                        cfg->enabled ? "enabled" : "disabled", status, responder, (long long)ocsp.this_update,
                        (long long)ocsp.next_update, expires_in, refresh_in, ocsp.last_success, ocsp.fetches_ok,
                        ocsp.fetches_failed, ocsp.consecutive_failures, ocsp.last_error,
                        atomic_load_explicit(&staples_sent, memory_order_relaxed), ocsp.response_bytes);
}

#else /* Built without TLS, or with TLS as a module: stapling is unavailable. */

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

void tlsOcspSetupServerContext(void *ssl_ctx) {
    UNUSED(ssl_ctx);
}

void tlsOcspServerContextChanged(void *ssl_ctx) {
    UNUSED(ssl_ctx);
}

void tlsOcspCron(void) {
}

void tlsOcspShutdown(void) {
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

int tlsOcspIsValidResponder(char *val, const char **err) {
    if (val == NULL || val[0] == '\0') return 1;
    if (strncasecmp(val, "http://", 7) != 0 || val[7] == '\0' || val[7] == '/' || strpbrk(val, " \t\r\n")) {
        *err = "tls-ocsp-responder must be empty or an http:// URL";
        return 0;
    }
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
