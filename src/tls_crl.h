/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Certificate revocation lists (tls-crl-file, tls-crl-urls): the client
 * certificates the server asks for and the certificates of the peers it
 * connects to are refused when a loaded CRL from their issuer lists them,
 * and connections already open are closed when a newly loaded CRL lists
 * theirs. CRLs from a file are watched; CRLs from URLs are fetched in the
 * background, refreshed before their nextUpdate and kept in a cache file.
 *
 * Where the code lives, as for OCSP stapling (tls_ocsp.h): the server side,
 * tls_crl_hooks.c (the directives, the cron, INFO), is in the server binary
 * in every build and calls no OpenSSL. The OpenSSL side goes where tls.c's
 * OpenSSL code goes: the server with BUILD_TLS=yes, valkey-tls.so with
 * BUILD_TLS=module. It is tls_crl.c (the CRL set: parsing, verifying, the
 * snapshot, the verify callback, closing connections; tls_crl_set.h) and
 * tls_crl_sources.c (the file, the URLs, their schedule and cache files,
 * INFO), which registers it all from tlsOcspInit(), which
 * tls.c's init calls; until then tls-crl-file can be set in the config file
 * but does nothing, and CONFIG SET tls-crl-file refuses a path.
 *
 * The server reaches this code through the OCSP hooks (tls_ocsp_hooks.c and
 * tls_ocsp.c call the functions below), so that upstream files only gain
 * the directive.
 */

#ifndef VALKEY_TLS_CRL_H
#define VALKEY_TLS_CRL_H

#ifndef sdslen
#include "sds.h"
#endif

/* The largest CRL file read. */
#define TLS_CRL_MAX_FILE_BYTES (64 * 1024 * 1024)
/* At most this many URLs in tls-crl-urls. */
#define TLS_CRL_MAX_URLS 16

/* tls-crl-stale: what a CRL past its nextUpdate does when no fresh one can
 * be had. */
#define TLS_CRL_STALE_KEEP 0   /* It stays in force; a warning says so. */
#define TLS_CRL_STALE_REFUSE 1 /* Every certificate of its issuer is refused. */

/* The tls-crl-* directives, held in server.tls_crl_config. */
typedef struct tlsCrlConfig {
    char *file;                   /* tls-crl-file, NULL = none */
    char *urls;                   /* tls-crl-urls, space-separated http:// URLs, NULL = none */
    int stale;                    /* tls-crl-stale, TLS_CRL_STALE_* */
    unsigned long long max_bytes; /* tls-crl-max-bytes: the largest CRL fetched */
} tlsCrlConfig;

/* What tls_crl.c registers with the server side. */
typedef struct tlsCrlChecker {
    int (*file_changed)(const char **err); /* CONFIG SET tls-crl-file */
    int (*urls_changed)(const char **err); /* CONFIG SET tls-crl-urls */
    void (*stale_changed)(void);           /* CONFIG SET tls-crl-stale */
    void (*schedule_changed)(void);        /* CONFIG SET of the OCSP schedule */
    int (*refresh)(void);                  /* OCSP REFRESH; 0: no CRL source */
    void (*cron)(void);
    sds (*info)(sds info);
} tlsCrlChecker;

void tlsCrlRegisterChecker(const tlsCrlChecker *checker);

/* Server side (tls_crl_hooks.c): the config table's validate and apply
 * functions, and what tlsOcspCron() / tlsOcspInfo() / OCSP REFRESH call. */
int tlsCrlIsValidUrls(char *val, const char **err);
int tlsCrlApplyFile(const char **err);
int tlsCrlApplyUrls(const char **err);
int tlsCrlApplyStale(const char **err);
void tlsCrlScheduleChanged(void);
int tlsCrlRefresh(void);
void tlsCrlCron(void);
sds tlsCrlInfo(sds info);

/* OpenSSL side: tlsCrlInit() (tls_crl_sources.c) is called by
 * tlsOcspInit(), tlsCrlSetupContext() (tls_crl.c) for every context
 * tlsOcspSetupServerContext() sets up (the server's, and the one for
 * outgoing connections). */
struct ssl_ctx_st;
void tlsCrlInit(void);
void tlsCrlSetupContext(struct ssl_ctx_st *ctx);

#endif
