/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Background work of OCSP stapling: what the main thread must not do.
 *
 *   - Files (a cache file write with its fsyncs, a response file check, a
 *     cache file read after a certificate change, removing the temporary
 *     files a killed server left) run in the bio worker that reloads TLS
 *     certificates (BIO_TLS_OCSP jobs), one slot per kind of work, a newer
 *     item replacing one of its kind still waiting. A file is looked at
 *     before it is opened, opened non-blocking and read only if regular, and
 *     written only through a fresh name of our own, so no file can hang that
 *     worker.
 *   - Tasks of other features (ocspWorkerRunTask(): tls_crl.c reads and
 *     parses its CRL file this way) run in the same worker, one waiting at a
 *     time; their outcome is handed to the main thread like a file read's.
 *   - Name lookups (getaddrinfo blocks as long as DNS does) run in a
 *     resolver thread of ours, started by the first lookup, one at a time, so
 *     that a DNS server that never answers delays nothing else; a lookup
 *     cancelled meanwhile has its result dropped.
 *
 * Threads: the submit and cancel functions and every done callback run on
 * the main thread; the bio worker and the resolver thread touch only the
 * work handed to them, under worker.lock and resolver.lock. Both wake the
 * main thread through one pipe that lives as long as the process.
 */

#include "server.h"

#ifdef USE_OPENSSL /* BUILD_TLS=yes or module: the server side of either. */

#include "anet.h"
#include "bio.h"
#include "tls_ocsp_worker.h"

#include <ctype.h>
#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>

typedef struct ocspTask {
    void *arg;
    ocspTaskProc *run, *done, *free_arg;
} ocspTask;

typedef struct ocspFileWrite {
    sds path; /* Absolute: the main thread may change dir meanwhile. */
    size_t len;
    unsigned char data[];
} ocspFileWrite;

static struct {
    pthread_mutex_t lock;
    ocspFileWrite *write_waiting;
    ocspFileRead *read_waiting[OCSP_FILE_KINDS], *read_done[OCSP_FILE_KINDS];
    sds clean_waiting;                  /* A file whose leftover temporary files to remove. */
    ocspTask *task_waiting, *task_done; /* ocspWorkerRunTask(). */
    sds cleaned;                        /* Worker only: the last one cleaned for. */
    int wake_fds[2];                    /* Worker and resolver -> main thread. */
} worker = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_fds = {-1, -1}};

typedef struct ocspLookup {
    unsigned long long id;
    char *host, *port;
    ocspLookupDone *done;
    void *privdata;
    struct addrinfo *result;
    int gai_error;
    struct ocspLookup *next;
} ocspLookup;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    bool started;
    ocspLookup *waiting, *done; /* Lists, oldest first. */
    unsigned long long running; /* The lookup under way; 0 once cancelled. */
    unsigned long long last_id;
} resolver = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static atomic_llong write_failures = 0;

long long ocspWorkerWriteFailures(void) {
    return atomic_load_explicit(&write_failures, memory_order_relaxed);
}

static void fileWriteFree(void *work) {
    ocspFileWrite *write = work;
    sdsfree(write->path);
    zfree(write);
}

void ocspFileReadFree(ocspFileRead *read) {
    if (!read) return;
    sdsfree(read->path);
    sdsfree(read->data);
    zfree(read);
}

static void fileReadFreeVoid(void *work) {
    ocspFileReadFree(work);
}

static void taskFree(void *work) {
    ocspTask *task = work;
    if (!task) return;
    task->free_arg(task->arg);
    zfree(task);
}

const char *ocspFileErrorText(int error) {
    if (error == OCSP_FILE_NOT_REGULAR) return "not a regular file";
    if (error == EFBIG) return "larger than 64 KiB";
    return strerror(error);
}

void ocspFileStampOf(const struct stat *st, ocspFileStamp *stamp) {
    memset(stamp, 0, sizeof(*stamp));
    stamp->dev = st->st_dev;
    stamp->ino = st->st_ino;
    stamp->size = st->st_size;
    stamp->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    stamp->ctime_ns = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

int ocspFileStampEqual(const ocspFileStamp *a, const ocspFileStamp *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns;
}

/* Read a regular file of at most max bytes. Returns the bytes, or NULL with
 * *error set; *stamp describes what was read. Opening a FIFO or a device may
 * block or act, so the file is looked at first, opened non-blocking, and
 * looked at again once open (the name may have been replaced meanwhile). */
sds ocspReadSmallFile(const char *path, size_t max, ocspFileStamp *stamp, int *error) {
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
    if (data && stamp) ocspFileStampOf(&st, stamp);
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
void ocspRemoveLeftoverTemporaryFiles(const char *path) {
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
int ocspWriteFileAtomically(const char *path, const unsigned char *data, size_t len) {
    /* The rename would replace whatever has the name: never a device, a FIFO
     * or a directory someone pointed the setting at. */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        errno = ENOTSUP;
        return 0;
    }
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
        ocspFileStampOf(&st, &now);
        if (ocspFileStampEqual(&now, &read->seen)) {
            read->result = OCSP_FILE_UNCHANGED;
            return;
        }
    }
    read->data = ocspReadSmallFile(read->path, OCSP_MAX_FILE_BYTES, &read->stamp, &read->error);
    read->result = read->data ? OCSP_FILE_CHANGED : OCSP_FILE_UNREADABLE;
}

/* Runs in the bio worker, once per job, for whatever waits. */
void tlsOcspBackgroundJob(void) {
    ocspFileRead *reads[OCSP_FILE_KINDS];
    bool any_read = false;
    pthread_mutex_lock(&worker.lock);
    ocspFileWrite *write = worker.write_waiting;
    sds clean = worker.clean_waiting;
    ocspTask *task = worker.task_waiting;
    worker.write_waiting = NULL;
    worker.clean_waiting = NULL;
    worker.task_waiting = NULL;
    for (int kind = 0; kind < OCSP_FILE_KINDS; kind++) {
        reads[kind] = worker.read_waiting[kind];
        worker.read_waiting[kind] = NULL;
    }
    pthread_mutex_unlock(&worker.lock);

    if (clean) ocspRemoveLeftoverTemporaryFiles(clean);
    sdsfree(clean);
    if (write) {
        ocspRemoveLeftoverTemporaryFiles(write->path);
        if (!ocspWriteFileAtomically(write->path, write->data, write->len)) {
            atomic_fetch_add_explicit(&write_failures, 1, memory_order_relaxed);
            serverLog(LL_WARNING, "OCSP: cannot write the cache file %s: %s; stapling is unaffected", write->path,
                      errno == ENOTSUP ? "it exists and is not a regular file" : strerror(errno));
        }
        fileWriteFree(write);
    }
    for (int kind = 0; kind < OCSP_FILE_KINDS; kind++) {
        if (!reads[kind]) continue;
        workerReadFile(reads[kind]);
        any_read = true;
    }
    if (task) task->run(task->arg);
    if (!any_read && !task) return;

    pthread_mutex_lock(&worker.lock);
    ocspTask *replaced = NULL;
    if (task) {
        replaced = worker.task_done;
        worker.task_done = task;
    }
    for (int kind = 0; kind < OCSP_FILE_KINDS; kind++) {
        if (!reads[kind]) continue;
        ocspFileReadFree(worker.read_done[kind]);
        worker.read_done[kind] = reads[kind];
    }
    pthread_mutex_unlock(&worker.lock);
    taskFree(replaced);
    wakeMainThread();
}

static void lookupFree(ocspLookup *lookup) {
    if (!lookup) return;
    if (lookup->result) freeaddrinfo(lookup->result);
    zfree(lookup->host);
    zfree(lookup->port);
    zfree(lookup);
}

/* Append to a list. resolver.lock held. */
static void lookupAppend(ocspLookup **list, ocspLookup *lookup) {
    lookup->next = NULL;
    while (*list) list = &(*list)->next;
    *list = lookup;
}

/* Unlink the lookup with this id from a list, or NULL. resolver.lock held. */
static ocspLookup *lookupUnlink(ocspLookup **list, unsigned long long id) {
    for (; *list; list = &(*list)->next) {
        ocspLookup *lookup = *list;
        if (lookup->id != id) continue;
        *list = lookup->next;
        return lookup;
    }
    return NULL;
}

/* The resolver thread: one lookup at a time, for as long as it takes. */
static void *resolverMain(void *arg) {
    UNUSED(arg);
    valkey_set_thread_title("ocsp_resolver");
    pthread_mutex_lock(&resolver.lock);
    while (1) {
        while (!resolver.waiting) pthread_cond_wait(&resolver.work, &resolver.lock);
        ocspLookup *lookup = resolver.waiting;
        resolver.waiting = lookup->next;
        resolver.running = lookup->id;
        pthread_mutex_unlock(&resolver.lock);

        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        lookup->gai_error = getaddrinfo(lookup->host, lookup->port, &hints, &lookup->result);

        pthread_mutex_lock(&resolver.lock);
        if (resolver.running == lookup->id) {
            lookupAppend(&resolver.done, lookup);
            wakeMainThread();
        } else {
            lookupFree(lookup); /* Cancelled meanwhile. */
        }
        resolver.running = 0;
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
    int err = pthread_create(&thread, NULL, resolverMain, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (err) {
        serverLog(LL_WARNING, "OCSP: cannot start the resolver thread: %s", strerror(err));
        return 0;
    }
    pthread_detach(thread);
    resolver.started = true;
    return 1;
}

/* The worker or the resolver finished something: hand it to whoever waits,
 * one at a time, so that a callback may cancel what is still to come. */
static void backgroundDoneProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(client_data);
    UNUSED(mask);
    char drain[64];
    while (read(fd, drain, sizeof(drain)) > 0);

    while (1) {
        pthread_mutex_lock(&resolver.lock);
        ocspLookup *lookup = resolver.done;
        if (lookup) resolver.done = lookup->next;
        pthread_mutex_unlock(&resolver.lock);
        if (!lookup) break;
        lookup->done(lookup->privdata, lookup->gai_error, lookup->result);
        lookup->result = NULL;
        lookupFree(lookup);
    }
    for (int kind = 0; kind < OCSP_FILE_KINDS; kind++) {
        pthread_mutex_lock(&worker.lock);
        ocspFileRead *read = worker.read_done[kind];
        worker.read_done[kind] = NULL;
        pthread_mutex_unlock(&worker.lock);
        if (read) read->done(read);
    }
    pthread_mutex_lock(&worker.lock);
    ocspTask *task = worker.task_done;
    worker.task_done = NULL;
    pthread_mutex_unlock(&worker.lock);
    if (task) {
        task->done(task->arg);
        zfree(task);
    }
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

int ocspWorkerReadFile(ocspFileKind kind, const char *path, const ocspFileStamp *seen, unsigned long long generation, ocspFileReadDone *done) {
    ocspFileRead *read = zcalloc(sizeof(*read));
    read->path = sdsnew(path);
    if (seen) read->seen = *seen;
    read->generation = generation;
    read->done = done;
    return workerSubmit((void **)&worker.read_waiting[kind], read, fileReadFreeVoid);
}

void ocspWorkerWriteFile(sds path, const unsigned char *data, size_t len) {
    ocspFileWrite *write = zmalloc(sizeof(*write) + len);
    write->path = path;
    write->len = len;
    memcpy(write->data, data, len);
    workerSubmit((void **)&worker.write_waiting, write, fileWriteFree);
}

int ocspWorkerRunTask(void *arg, ocspTaskProc *run, ocspTaskProc *done, ocspTaskProc *free_arg) {
    ocspTask *task = zmalloc(sizeof(*task));
    task->arg = arg;
    task->run = run;
    task->done = done;
    task->free_arg = free_arg;
    return workerSubmit((void **)&worker.task_waiting, task, taskFree);
}

void ocspWorkerRemoveLeftovers(sds path) {
    workerSubmit((void **)&worker.clean_waiting, path, sdsfreeVoid);
}

unsigned long long ocspLookupStart(const char *host, const char *port, ocspLookupDone *done, void *privdata) {
    if (!wakePipeReady() || !resolverStarted()) return 0;
    ocspLookup *lookup = zcalloc(sizeof(*lookup));
    lookup->host = zstrdup(host);
    lookup->port = zstrdup(port);
    lookup->done = done;
    lookup->privdata = privdata;
    pthread_mutex_lock(&resolver.lock);
    lookup->id = ++resolver.last_id;
    lookupAppend(&resolver.waiting, lookup);
    pthread_cond_signal(&resolver.work);
    pthread_mutex_unlock(&resolver.lock);
    return lookup->id;
}

void ocspLookupCancel(unsigned long long id) {
    pthread_mutex_lock(&resolver.lock);
    ocspLookup *waiting = lookupUnlink(&resolver.waiting, id);
    ocspLookup *done = lookupUnlink(&resolver.done, id);
    if (resolver.running == id) resolver.running = 0;
    pthread_mutex_unlock(&resolver.lock);
    lookupFree(waiting);
    lookupFree(done);
}

#else /* Built without TLS: no background work. */

void tlsOcspBackgroundJob(void) {
}

#endif
