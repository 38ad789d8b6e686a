/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * OCSP stapling for the TLS server side: the staple and its schedule, the
 * hooks tls.c calls, and what the server side (tls_ocsp_hooks.c) reaches
 * through the table tlsOcspInit() registers: INFO, OCSP REFRESH, the cron
 * and CONFIG SET. Linked where tls.c's OpenSSL code is: the server, or
 * valkey-tls.so.
 *
 * The main thread keeps one verified OCSP response for the server certificate.
 * It comes from one of three sources (ocspSource):
 *
 *   responder  serverCron -> tlsOcspCron() -> staplerCron() -> fetchStart()
 *              when due: one bounded HTTP exchange (tls_ocsp_fetch.c),
 *              ended in fetchDone().
 *   cache      tls-ocsp-cache-file, written by the background worker after
 *              each fetch (tls_ocsp_worker.c), read by cacheLoad() at start
 *              and after a certificate change.
 *   file       tls-ocsp-response-file, looked at by the worker once a second;
 *              responseFileChecked() takes what changed.
 *
 * Every response is checked by verifyResponse() (signature, certificate ID,
 * validity: tls_ocsp_check.c) and trimmed to what a handshake can carry
 * before publishResponse() makes it the staple. Why anything failed is an
 * ocspError; their names, for INFO, the log and the tests, are the table
 * ocsp_error_names in tls_ocsp_check.c. The staples of the servers we
 * connect to are tls_ocsp_peer.c's.
 *
 * Threads: everything here runs on the main thread but the status callback,
 * which runs in whichever thread does the handshake (the main thread or an
 * I/O thread). Server side, it takes a reference to the published staple
 * under a mutex held for a pointer copy (and no lock at all while nothing is
 * published), so the main thread may swap or drop the staple at any time
 * without a reader ever seeing freed memory. Client side it hands over to
 * tls_ocsp_peer.c.
 */

#include "server.h"
#include "tls_ocsp_fetch.h"

#ifdef USE_OPENSSL /* The build links this file only where OpenSSL is. */

#include "tls_ocsp_check.h"
#include "tls_ocsp_peer.h"
#include "tls_ocsp_subject.h"
#include "tls_ocsp_worker.h"

#include <openssl/ssl.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Longest retry delay while no valid response is cached. */
#define OCSP_RETRY_CAP_WITHOUT_RESPONSE_MS (300 * 1000LL)
/* The largest response body a fetch reads. */
#define OCSP_MAX_BODY_BYTES (64 * 1024)

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
/* Written under staple_mutex; read without it only to see that it is NULL. */
static _Atomic(ocspStaple *) published_staple = NULL;
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
    /* Nothing published (stapling off, or no response yet): no lock. */
    if (!atomic_load_explicit(&published_staple, memory_order_relaxed)) return NULL;
    pthread_mutex_lock(&staple_mutex);
    ocspStaple *staple = atomic_load_explicit(&published_staple, memory_order_relaxed);
    if (staple) atomic_fetch_add_explicit(&staple->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&staple_mutex);
    return staple;
}

/* Replace the published staple (NULL: staple nothing). Main thread only. */
static void staplePublish(ocspStaple *staple) {
    pthread_mutex_lock(&staple_mutex);
    ocspStaple *old = atomic_load_explicit(&published_staple, memory_order_relaxed);
    atomic_store_explicit(&published_staple, staple, memory_order_relaxed);
    pthread_mutex_unlock(&staple_mutex);
    if (old) stapleRelease(old);
}

/* SSL_CTX status callback, server side: staple when the client asked for
 * status (OpenSSL calls us only then), the response is about the certificate
 * this handshake presents, and it has not expired. It may run in an I/O
 * thread: the clock is ocspClockMs(), as mstime() caches in statics. */
static int ocspStatusCallback(SSL *ssl, void *arg) {
    UNUSED(arg);
    /* The server context also makes outgoing connections when no client
     * certificate is configured. */
    if (!SSL_is_server(ssl)) return ocspPeerStatusCallback(ssl);

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
/* Main-thread state.                                                         */

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
    ocspHttpFetch *fetch;       /* At most one in flight. */
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

/* tls-ocsp-refresh-margin, "10" or "10%" (stored as -10, as config.c keeps
 * percentages). */
static mstime_t refreshMarginPercent(void) {
    int margin = server.tls_ocsp_config.refresh_margin;
    return margin < 0 ? -margin : margin;
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
    mstime_t margin = (newest->expires - newest->this_update) * refreshMarginPercent() / 100;
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
/* Fetching a response.                                                       */

static void fetchDone(void *privdata, const ocspHttpResult *result);

/* Stop the fetch in flight, if any, without counting it. */
static void forgetFetch(void) {
    ocspHttpFetchCancel(ocsp.fetch);
    ocsp.fetch = NULL;
}

static void recordFailure(ocspError err, const char *detail, ocspSource source);

static void fetchStart(void) {
    ocspSubject *s = ocsp.subject;
    const char *proxy_config = server.tls_ocsp_config.proxy, *err, *detail = "cannot build the OCSP request";
    ocspUrl proxy = {0};
    bool via_proxy = proxy_config && ocspUrlParse(proxy_config, &proxy, 1, &err);
    unsigned char *der = NULL;
    int der_len = ocspSubjectEncodeRequest(s, &der);
    ocsp.fetch_scheduled = false;
    if (der_len > 0) {
        ocspHttpRequest request = {
            .name = s->url,
            .target = &s->responder,
            .proxy = via_proxy ? &proxy : NULL,
            .body = der,
            .body_len = (size_t)der_len,
            .try_get = !s->post_only,
            .body_type = "application/ocsp-request",
            .response_type = "application/ocsp-response",
            .max_body = OCSP_MAX_BODY_BYTES,
            .timeout_ms = (int)secondsToMs(server.tls_ocsp_config.response_timeout),
        };
        ocsp.fetch = ocspHttpFetchStart(&request, fetchDone, NULL, &detail);
    }
    OPENSSL_free(der);
    if (ocsp.fetch && via_proxy) {
        sds shown = ocspProxyRedacted(proxy_config);
        serverLog(LL_VERBOSE, "OCSP: querying %s for the server certificate (%s, through %s)", s->url,
                  ocspHttpFetchMethod(ocsp.fetch), shown);
        sdsfree(shown);
    } else if (ocsp.fetch) {
        serverLog(LL_VERBOSE, "OCSP: querying %s for the server certificate (%s)", s->url,
                  ocspHttpFetchMethod(ocsp.fetch));
    }
    ocspUrlClear(&proxy);
    if (!ocsp.fetch) recordFailure(OCSP_ERR_INTERNAL, detail, OCSP_SOURCE_RESPONDER);
}

/* ------------------------------------------------------------------------- */
/* Verification: what may be stapled.                                         */

/* The validity we give our own responses without nextUpdate. */
static mstime_t noNextUpdateValidity(void) {
    int bound = server.tls_ocsp_config.max_refresh_interval;
    return bound ? secondsToMs(bound) : OCSP_NO_NEXT_UPDATE_VALIDITY_MS;
}

/* Check a response about our certificate (tls_ocsp_subject.c). */
static ocspError verifyResponse(const unsigned char *der, size_t len, ocspVerifiedResponse *out) {
    return ocspSubjectVerifyResponse(ocsp.subject, der, len, noNextUpdateValidity(), out);
}

/* ------------------------------------------------------------------------- */
/* Outcomes: a verified response is published, a failure counted.            */

static bool responseFileMode(void) {
    return server.tls_ocsp_config.response_file != NULL;
}

static sds cacheFilePath(void) {
    char *name = server.tls_ocsp_config.cache_file;
    return name && name[0] ? getAbsolutePath(name) : NULL;
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
    if (path) ocspWorkerWriteFile(path, der, info->bytes);
    char next[64];
    snprintf(next, sizeof(next), ", next refresh in %lld s", secondsUntilNextFetch());
    logResponse(info, "fetched", ocsp.subject->url, next);
}

/* Every fetch ends here, exactly once (tls_ocsp_fetch.c frees it once we
 * return): the answer, if the exchange completed, is verified and the
 * outcome recorded. */
static void fetchDone(void *privdata, const ocspHttpResult *result) {
    UNUSED(privdata);
    ocsp.fetch = NULL;
    if (result->get_refused) ocsp.subject->post_only = true;
    ocspError err = result->err;
    const char *detail = result->detail;
    ocspVerifiedResponse verified = {0};
    if (err == OCSP_ERR_NONE) {
        err = verifyResponse(result->body, result->body_len, &verified);
        detail = verified.detail;
    }
    if (err != OCSP_ERR_NONE)
        recordFailure(err, detail, OCSP_SOURCE_RESPONDER);
    else
        recordSuccess(&verified.info, verified.der, OCSP_SOURCE_RESPONDER);
    OPENSSL_free(verified.der);
}

/* Staple a response read from the cache file if it is still valid for our
 * certificate, and let the margin rule, not the restart, decide when to
 * fetch. */
static void cacheLoadBytes(const char *path, const unsigned char *der, size_t len) {
    ocspVerifiedResponse verified = {0};
    ocspError err = verifyResponse(der, len, &verified);
    if (err != OCSP_ERR_NONE) {
        serverLog(LL_NOTICE, "OCSP: ignoring the cache file %s: %s (%s)", path, ocsp_error_names[err],
                  verified.detail);
    } else {
        publishResponse(&verified.info, verified.der, OCSP_SOURCE_CACHE);
        recordAttempt(OCSP_OUTCOME_SUCCEEDED);
        char next[64];
        snprintf(next, sizeof(next), ", next refresh in %lld s", secondsUntilNextFetch());
        sds origin = sdscatfmt(sdsempty(), "the cache file %s", path);
        logResponse(&verified.info, "stapling", origin, next);
        sdsfree(origin);
    }
    OPENSSL_free(verified.der);
}

static void logNoCacheFile(const char *path, int error) {
    serverLog(LL_NOTICE, "OCSP: no cached response to staple from %s (%s)", path, ocspFileErrorText(error));
}

static void cacheFileLoaded(ocspFileRead *load);
static void responseFileChecked(ocspFileRead *check);

/* At start and after a certificate change: the response cached by an
 * earlier run. At start, before the event loop runs, it is read at once (a
 * small regular file, read like the certificate files: the first handshake
 * gets it); later, in the worker, and cacheFileLoaded() takes it. */
static void cacheLoad(void) {
    sds path = cacheFilePath();
    if (!path) return;
    if (ocsp.running) {
        ocspWorkerReadFile(OCSP_FILE_CACHE, path, NULL, ocsp.certificate_generation, cacheFileLoaded);
    } else {
        int error;
        sds der = ocspReadSmallFile(path, OCSP_MAX_FILE_BYTES, NULL, &error);
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
    ocspFileReadFree(load);
}

/* Look at tls-ocsp-response-file about once a second, in the worker. */
static void maybeCheckResponseFile(void) {
    mstime_t now = monotonicMs();
    if (ocsp.file_check_in_flight || now < ocsp.next_file_check_at) return;
    sds path = getAbsolutePath(server.tls_ocsp_config.response_file);
    if (path && ocspWorkerReadFile(OCSP_FILE_RESPONSE, path, &ocsp.file_seen, 0, responseFileChecked))
        ocsp.file_check_in_flight = true;
    ocsp.next_file_check_at = now + 1000;
    sdsfree(path);
}

/* The worker looked at the response file. */
static void responseFileChecked(ocspFileRead *check) {
    ocsp.file_check_in_flight = false;
    sds path = responseFileMode() ? getAbsolutePath(server.tls_ocsp_config.response_file) : NULL;
    bool current = path && ocsp.subject && server.tls_ocsp_config.enabled && !strcmp(path, check->path);
    sdsfree(path);
    if (!current || check->result == OCSP_FILE_UNCHANGED) {
        ocspFileReadFree(check);
        return;
    }
    if (check->result == OCSP_FILE_UNREADABLE) {
        memset(&ocsp.file_seen, 0, sizeof(ocsp.file_seen)); /* Read it again once it is back. */
        if (!ocsp.file_unreadable_logged) {
            /* Counted and logged once until it can be read again. */
            serverLog(LL_WARNING, "OCSP: cannot read tls-ocsp-response-file %s: %s; %s",
                      server.tls_ocsp_config.response_file, ocspFileErrorText(check->error),
                      ocsp.cache_state == OCSP_CACHE_STAPLED ? "the cached response stays stapled until it expires"
                                                             : "nothing is stapled");
            ocsp.file_unreadable_logged = true;
            ocsp.fetches_failed++;
            ocsp.last_error = OCSP_ERR_FILE_UNREADABLE;
        }
        ocspFileReadFree(check);
        return;
    }
    ocsp.file_seen = check->stamp;
    ocsp.file_unreadable_logged = false;
    ocspVerifiedResponse verified = {0};
    ocspError err = verifyResponse((unsigned char *)check->data, sdslen(check->data), &verified);
    if (err != OCSP_ERR_NONE)
        recordFailure(err, verified.detail, OCSP_SOURCE_FILE);
    else
        recordSuccess(&verified.info, verified.der, OCSP_SOURCE_FILE);
    OPENSSL_free(verified.der);
    ocspFileReadFree(check);
}

/* A response from a file cannot refresh itself: say once when it is within
 * its refresh margin, so that whoever supplies it knows. */
static void warnIfResponseFileDue(void) {
    if (!responseFileMode() || ocsp.cache_state != OCSP_CACHE_STAPLED || ocsp.margin_warned) return;
    mstime_t window = ocsp.cached.expires - ocsp.cached.this_update;
    mstime_t due = ocsp.cached.expires - window * refreshMarginPercent() / 100;
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
    ocspSubjectFree(ocsp.subject);
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
    ocsp.subject = ocspSubjectCreate(ocsp.server_ctx, server.tls_ocsp_config.responder, &err);
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
 * while writing its cache file left behind go. Only a server that serves TLS
 * from the start (as server.c configures it) staples and so writes that
 * file: a server without TLS queues no background work at all (on Valkey
 * 8.1 the worker is a thread of its own, started by the first job). */
static void startRunning(void) {
    ocsp.running = true;
    bool tls = server.tls_port || server.tls_replication || server.tls_cluster;
    sds path = server.tls_ocsp_config.enabled && tls ? cacheFilePath() : NULL;
    if (path) ocspWorkerRemoveLeftovers(path);
}

static void staplerCron(void) {
    ocspPeerCron();
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
    SSL_CTX_set_tlsext_status_cb(ctx, ocspStatusCallback);
    ocspPeerSetupContext(ctx);
    tlsCrlSetupContext(ctx); /* After ocspPeerSetupContext: chains its verify callback. */
}

/* The context for outgoing connections when tls-client-cert-file is set. */
void tlsOcspSetupClientContext(struct ssl_ctx_st *ctx) {
    tlsOcspSetupServerContext(ctx);
}

/* An outgoing connection asks for its peer's status unless
 * tls-ocsp-verify-peers is no, and keeps the policy it was created with. */
void tlsOcspSetupClientConnection(struct ssl_st *ssl) {
    ocspPeerSetupConnection(ssl, server.tls_ocsp_config.verify_peers);
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
        ocspSubject *s = ocspSubjectCreate(ctx, server.tls_ocsp_config.responder, &err);
        if (s) {
            s->post_only = ocsp.subject->post_only;
            ocspSubjectFree(ocsp.subject);
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

static void staplerShutdown(void) {
    forgetAll();
    if (ocsp.server_ctx) SSL_CTX_free(ocsp.server_ctx);
    ocsp.server_ctx = NULL;
}

/* CONFIG SET of a tls-ocsp-* directive. */
static void staplerSettingChanged(tlsOcspSetting setting) {
    switch (setting) {
    case TLS_OCSP_SETTING_STAPLING:
        /* On fetches at once, off forgets everything. */
        forgetAll();
        serverLog(LL_NOTICE, "OCSP stapling %s", server.tls_ocsp_config.enabled ? "enabled" : "disabled");
        maybeFetchNow();
        break;
    case TLS_OCSP_SETTING_RESPONDER:
        /* The cached response stays valid (it is about our certificate), but
         * the question goes to the new responder at once. */
        forgetSubject();
        maybeFetchNow();
        break;
    case TLS_OCSP_SETTING_SOURCE:
        /* Where responses come from changed: the cached response stays, the
         * new source is asked at once. */
        forgetSubject();
        forgetResponseFile();
        maybeFetchNow();
        break;
    case TLS_OCSP_SETTING_SCHEDULE:
        /* The next fetch moves as if the last outcome had happened under
         * the new values. */
        if (server.tls_ocsp_config.enabled && !ocsp.fetch && ocsp.fetch_scheduled) reschedule();
        break;
    }
}

/* What INFO calls tls_ocsp_status. */
static const char *stapleStatusName(void) {
    if (!server.tls_ocsp_config.enabled) return "disabled";
    if (ocsp.cache_state == OCSP_CACHE_STAPLED) return certStatusName(ocsp.cached.cert_status);
    if (!responseFileMode() && ocsp.subject && !ocsp.subject->url) return "no_responder";
    if (ocsp.cache_state == OCSP_CACHE_EXPIRED) return "expired";
    return "none";
}

static sds staplerInfo(sds info) {
    const tlsOcspConfig *cfg = &server.tls_ocsp_config;
    mstime_t now = mstime();
    long long expires_in = -1, refresh_in = -1;
    if (ocsp.cache_state != OCSP_CACHE_EMPTY)
        expires_in = ocsp.cached.expires > now ? (ocsp.cached.expires - now) / 1000 : 0;
    if (ocsp.fetch) {
        refresh_in = 0;
    } else if (cfg->enabled && ocsp.fetch_scheduled) {
        refresh_in = secondsUntilNextFetch();
        if (refresh_in < 0) refresh_in = 0;
    }
    const char *responder = ocsp.subject && ocsp.subject->url ? ocsp.subject->url : "";
    info = sdscatprintf(info,
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
                        "tls_ocsp_cache_write_failures:%lld\r\n",
                        cfg->enabled ? "enabled" : "disabled", stapleStatusName(), responder,
                        ocsp.cached.this_update / 1000, ocsp.cached.next_update / 1000, expires_in, refresh_in,
                        ocsp.last_success_at / 1000, ocsp.fetches_ok, ocsp.fetches_failed, ocsp.consecutive_failures,
                        ocsp_error_names[ocsp.last_error], atomic_load_explicit(&staples_sent, memory_order_relaxed),
                        ocsp.cache_state == OCSP_CACHE_STAPLED ? ocsp.cached.bytes : 0,
                        ocsp_source_names[ocsp.cache_state == OCSP_CACHE_STAPLED ? ocsp.source : OCSP_SOURCE_NONE],
                        ocspWorkerWriteFailures());
    return ocspPeerInfo(info);
}

/* OCSP REFRESH: fetch now (or read the response file again), unless a fetch
 * is in flight; the outcome shows in INFO and the log as for any fetch. */
static void staplerRefreshCommand(client *c) {
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

static const tlsOcspStapler stapler = {
    .setting_changed = staplerSettingChanged,
    .cron = staplerCron,
    .info = staplerInfo,
    .refresh_command = staplerRefreshCommand,
    .shutdown = staplerShutdown,
};

/* From tls.c's init: in the server with BUILD_TLS=yes, at startup; in
 * valkey-tls.so, when loadmodule loads it. */
void tlsOcspInit(void) {
    tlsOcspRegisterStapler(&stapler);
    tlsCrlInit(); /* tls-crl-file's OpenSSL side lives here too. */
}

#endif
