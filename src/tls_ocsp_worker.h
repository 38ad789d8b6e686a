/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Background work of OCSP stapling (tls_ocsp_worker.c): file work in the bio
 * worker that reloads TLS certificates, name lookups in a resolver thread of
 * our own. Submitted from and completed on the main thread.
 */

#ifndef VALKEY_TLS_OCSP_WORKER_H
#define VALKEY_TLS_OCSP_WORKER_H

#include "sds.h"

#include <stdbool.h>
#include <sys/types.h>

struct addrinfo;

/* The largest response file or cache file read. */
#define OCSP_MAX_FILE_BYTES (64 * 1024)
/* Why a file was not read: an errno value, or this. EFBIG: over the bound. */
#define OCSP_FILE_NOT_REGULAR (-1)

/* Enough of a stat to see a file replaced (rename, symlink swap) or
 * rewritten in place. */
typedef struct ocspFileStamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    long long mtime_ns, ctime_ns;
} ocspFileStamp;

typedef enum ocspFileReadResult {
    OCSP_FILE_UNCHANGED,  /* Same stamp as seen. */
    OCSP_FILE_CHANGED,    /* data holds the new bytes. */
    OCSP_FILE_UNREADABLE, /* error says why. */
} ocspFileReadResult;

/* The files read in the worker, one slot each. */
typedef enum ocspFileKind {
    OCSP_FILE_RESPONSE, /* tls-ocsp-response-file, looked at once a second. */
    OCSP_FILE_CACHE,    /* tls-ocsp-cache-file, after a certificate change. */
    OCSP_FILE_KINDS
} ocspFileKind;

typedef struct ocspFileRead ocspFileRead;
/* Takes the read, to free with ocspFileReadFree(). */
typedef void ocspFileReadDone(ocspFileRead *read);

struct ocspFileRead {
    sds path;
    ocspFileStamp seen;            /* Unchanged if it still has this stamp. */
    unsigned long long generation; /* The caller's, handed back. */
    ocspFileReadDone *done;
    ocspFileReadResult result;
    ocspFileStamp stamp; /* Of what was read. */
    sds data;
    int error;
};

const char *ocspFileErrorText(int error);
/* A file's stamp from its stat, and whether two stamps are the same file,
 * unchanged (a rename, a symlink swap or a rewrite changes it). */
struct stat;
void ocspFileStampOf(const struct stat *st, ocspFileStamp *stamp);
int ocspFileStampEqual(const ocspFileStamp *a, const ocspFileStamp *b);
/* Read a regular file of at most max bytes; NULL with *error set. Never
 * blocks on a FIFO or a device. */
sds ocspReadSmallFile(const char *path, size_t max, ocspFileStamp *stamp, int *error);
/* In the worker only (a task's run function may call them). */
int ocspWriteFileAtomically(const char *path, const unsigned char *data, size_t len);
void ocspRemoveLeftoverTemporaryFiles(const char *path);
void ocspFileReadFree(ocspFileRead *read);

/* Read path in the worker unless it still has the stamp seen (NULL: read
 * it); done gets the outcome on the main thread. A newer read of the same
 * kind replaces one still waiting. Returns 0 if the worker is unreachable. */
int ocspWorkerReadFile(ocspFileKind kind, const char *path, const ocspFileStamp *seen, unsigned long long generation, ocspFileReadDone *done);
/* Write the bytes to path atomically in the worker (takes path). */
void ocspWorkerWriteFile(sds path, const unsigned char *data, size_t len);
/* Remove the temporary files a killed server left beside path (takes path). */
void ocspWorkerRemoveLeftovers(sds path);
long long ocspWorkerWriteFailures(void);

/* Work of another feature run in the same worker (tls_crl.c loads its CRL
 * file this way): run(arg) there, then done(arg) on the main thread, which
 * owns arg from then on. One task waits at a time: a newer one replaces it
 * (free_arg frees the replaced one's arg). Returns 0 if the worker is
 * unreachable (arg is then freed). */
typedef void ocspTaskProc(void *arg);
int ocspWorkerRunTask(void *arg, ocspTaskProc *run, ocspTaskProc *done, ocspTaskProc *free_arg);

/* Look host:port up in the resolver thread; done gets the result (to
 * freeaddrinfo) on the main thread unless the lookup is cancelled first.
 * Returns the lookup's id, 0 on failure. */
typedef void ocspLookupDone(void *privdata, int gai_error, struct addrinfo *result);
unsigned long long ocspLookupStart(const char *host, const char *port, ocspLookupDone *done, void *privdata);
void ocspLookupCancel(unsigned long long id);

#endif
