/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The CRL set shared by tls_crl.c (what a set is, loading one, the snapshot
 * handshakes read, closing the connections a set lists) and
 * tls_crl_sources.c (where the CRLs come from). Not for other files.
 */

#ifndef VALKEY_TLS_CRL_SET_H
#define VALKEY_TLS_CRL_SET_H

#include <openssl/x509.h>

#include <stdatomic.h>
#include <stdbool.h>

/* A CRL entry's serial longer than this refuses its CRL (RFC 5280: at most
 * 20 octets; leading zero octets are not counted). */
#define CRL_MAX_SERIAL 32
#define CRL_ERROR_LEN 256

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

/* Sets: built by one thread, immutable once shared; freed by the last
 * release. */
crlSet *crlSetNew(void);
void crlSetAdd(crlSet *set, crlList *l);
void crlSetFree(crlSet *set);
void crlSetRelease(crlSet *set);

/* Any thread: the published snapshot (a reference), or NULL. Main thread:
 * publish one; with required, a source configured, every certificate is
 * refused while the set misses a source's CRLs. */
crlSet *crlSetAcquire(void);
void crlSetPublish(crlSet *set, bool required);

/* The worker: read and verify CRLs into a new set. */
crlSet *crlSetLoad(const char *source,
                   const char *data,
                   size_t len,
                   const char *ca_file,
                   const char *ca_dir,
                   char *err,
                   size_t err_size);

/* Main thread. */
int crlSetGoesBackwards(const crlSet *in_force, const crlSet *set, char *err, size_t size);
int crlSetCloseRevoked(const crlSet *set);
void crlSetLogStale(void);
void crlSetStalePolicy(int policy);
int crlStalePolicy(void);
long long crlHandshakesRefused(void);

#endif
