/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Where the CRLs of tls-crl-file and tls-crl-urls come from: each is a
 * source (the file, each URL) with the CRLs it last gave; the published
 * snapshot (tls_crl.c) is all of them. Also the settings, the cron, OCSP
 * REFRESH and INFO, registered with the server side (tls_crl_hooks.c) by
 * tlsCrlInit().
 *
 *   watch   serverCron -> tlsOcspCron -> tlsCrlCron -> crlCron(): once a
 *           second the worker looks at the file (a stat, never on the main
 *           thread) and loads it if its stamp changed (rename, symlink swap,
 *           rewrite). CONFIG SET tls-crl-file loads it at once.
 *   fetch   a URL's CRL is fetched over HTTP with the OCSP client
 *           (tls_ocsp_fetch.c: tls-ocsp-proxy, tls-ocsp-response-timeout,
 *           never blocking), at most tls-crl-max-bytes, and refreshed on the
 *           OCSP schedule (tls-ocsp-refresh-margin of its thisUpdate ..
 *           nextUpdate window, at most tls-ocsp-max-refresh-interval apart,
 *           tls-ocsp-retry-delay doubled per failure). A verified one is kept
 *           in a cache file in dir, read (and verified) first after a
 *           restart, then fetched at once.
 *   load    crlJobRun() in the background worker of the OCSP jobs
 *           (ocspWorkerRunTask, tls_ocsp_worker.c), one job at a time: reads
 *           the file or takes the fetched bytes and builds the source's set
 *           (crlSetLoad), or writes a cache file.
 *   swap    crlJobDone() on the main thread: a source's new CRLs must not go
 *           backwards; they replace its old ones in a new snapshot, or the
 *           reason is logged and the old ones stay (at startup, a refused
 *           tls-crl-file stops the server: fail closed).
 *
 * Threads: everything here runs on the main thread but crlJobRun(), which
 * the worker runs on a job of its own (nothing shared).
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this file only where OpenSSL is. */

#include "tls_crl_set.h"
#include "tls_ocsp_fetch.h"
#include "tls_ocsp_worker.h"

#include <openssl/sha.h>

#include <sys/stat.h>

#define CRL_CHECK_INTERVAL_MS 1000
/* Refresh and retry bound when tls-ocsp-max-refresh-interval is 0 (none). */
#define CRL_DEFAULT_INTERVAL_MS (3600 * 1000LL)

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
    int read_errno;     /* Why a read failed. */
    bool watch;         /* The file's once-a-second look: read only if it changed. */
    ocspFileStamp seen; /* With watch: the stamp of the file last looked at. */
    bool seen_valid;
    int stat_errno;      /* With watch: why the stat failed. */
    bool unchanged;      /* With watch: it has the seen stamp; nothing was read. */
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
    if (sources == 0) {
        crlSetPublish(NULL, false);
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
    crlSetPublish(set, true);
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
    crl.connections_closed += crlSetCloseRevoked(set);
    return 1;
}

static void crlNoteError(const crlSource *s, const char *error) {
    snprintf(crl.last_error, sizeof(crl.last_error), "%s: %s", s->name, error);
}

/* ------------------------------------------------------------------------- */
/* The worker. */

/* The worker: read, verify and build, or write; nothing here is shared. */
static void crlJobRun(void *arg) {
    crlJob *job = arg;
    if (job->kind == CRL_JOB_WRITE_CACHE) {
        ocspRemoveLeftoverTemporaryFiles(job->path);
        if (!ocspWriteFileAtomically(job->path, (unsigned char *)job->data, sdslen(job->data))) {
            snprintf(job->error, sizeof(job->error), "%s",
                     errno == ENOTSUP ? "it exists and is not a regular file" : strerror(errno));
        }
        return;
    }
    sds data = job->data;
    if (job->watch) {
        /* Here, not on the main thread: a stat can hang as long as its file
         * system does. The stamp counts as seen even if the read fails, so
         * a file that cannot be read is not read again until it changes. */
        struct stat st;
        if (stat(job->path, &st) == -1) {
            job->stat_errno = errno;
            snprintf(job->error, sizeof(job->error), "cannot read it: %s", strerror(errno));
            return;
        }
        ocspFileStampOf(&st, &job->stamp);
        job->read = true;
        if (job->seen_valid && ocspFileStampEqual(&job->stamp, &job->seen)) {
            job->unchanged = true;
            return;
        }
    }
    if (job->kind != CRL_JOB_PARSE) {
        data = ocspReadSmallFile(job->path, TLS_CRL_MAX_FILE_BYTES, &job->stamp, &job->read_errno);
        if (!data) {
            snprintf(job->error, sizeof(job->error), "cannot read it: %s",
                     job->read_errno == EFBIG ? "larger than 64 MiB" : ocspFileErrorText(job->read_errno));
            return;
        }
        job->read = true;
    }
    job->set = crlSetLoad(job->name, data, sdslen(data), job->ca_file, job->ca_dir, job->error, sizeof(job->error));
    if (data != job->data) sdsfree(data);
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

/* With watch (the file only), the job reads it only if its stamp changed. */
static void crlJobQueue(crlSource *s, crlJobKind kind, const char *path, sds data, bool watch) {
    crlJob *job = zcalloc(sizeof(*job));
    job->kind = kind;
    job->watch = watch;
    job->seen = s->seen;
    job->seen_valid = s->seen_valid;
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
    crlJobQueue(s, CRL_JOB_READ_FILE, s->name, NULL, false);
}

/* What a load of the file gave: its CRLs in force, or refused. */
static void crlFileAccept(crlSource *s, crlJob *job) {
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
}

static void crlFileLoaded(crlSource *s, crlJob *job) {
    if (job->read) {
        s->seen = job->stamp;
        s->seen_valid = true;
    }
    if (job->stat_errno) {
        /* The watch cannot see the file: said once per reason. */
        if (s->stat_errno != job->stat_errno) {
            s->stat_errno = job->stat_errno;
            crl.loads_failed++;
            crlNoteError(s, job->error);
            serverLog(LL_WARNING, "CRL: cannot read tls-crl-file %s: %s; the CRLs loaded before stay in force",
                      s->name, strerror(job->stat_errno));
        }
    } else {
        s->stat_errno = 0;
        if (!job->unchanged) crlFileAccept(s, job);
    }
    if (s->due) crlFileLoad();
}

/* Once a second: the worker looks at the file and loads it if its stamp
 * changed (rename, symlink swap, rewrite). */
static void crlFileWatch(crlSource *s) {
    if (s->busy) return;
    if (!s->started) {
        crlFileLoad(); /* At startup: a file that fails stops the server. */
        return;
    }
    crlJobQueue(s, CRL_JOB_READ_FILE, s->name, NULL, true);
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
    crlJobQueue(s, CRL_JOB_PARSE, NULL, sdsnewlen(result->body, result->body_len), false);
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
    crlJobQueue(s, CRL_JOB_WRITE_CACHE, s->cache_path, job->data, false);
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
            crlJobQueue(s, CRL_JOB_READ_CACHE, s->cache_path, NULL, false);
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
    crlSetLogStale();
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
    crlSetStalePolicy(server.tls_crl_config.stale);
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
                        crlStalePolicy() == TLS_CRL_STALE_REFUSE ? "refuse" : "keep", crl.loaded_time,
                        crl.loads_ok, crl.loads_failed, crl.fetches_ok, crl.fetches_failed, next_fetch,
                        crl.cache_writes_failed, error, crlHandshakesRefused(),
                        crl.connections_closed);
    sdsfree(error);
    crlSetRelease(set);
    return info;
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
