/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Certificate revocation lists (tls-crl-file): the client certificates the
 * server asks for and the certificates of the peers it connects to are
 * refused when a loaded CRL from their issuer lists them, and connections
 * already open are closed when a newly loaded CRL lists theirs.
 *
 * Where the code lives, as for OCSP stapling (tls_ocsp.h): the server side,
 * tls_crl_hooks.c (the directive, the cron, INFO), is in the server binary
 * in every build and calls no OpenSSL. The OpenSSL side, tls_crl.c (parsing,
 * verifying, the snapshot, the verify callback), goes where tls.c's OpenSSL
 * code goes: the server with BUILD_TLS=yes, valkey-tls.so with
 * BUILD_TLS=module. tls_crl.c registers itself from tlsOcspInit(), which
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

/* What tls_crl.c registers with the server side. */
typedef struct tlsCrlChecker {
    int (*file_changed)(const char **err); /* CONFIG SET tls-crl-file */
    void (*cron)(void);
    sds (*info)(sds info);
} tlsCrlChecker;

void tlsCrlRegisterChecker(const tlsCrlChecker *checker);

/* Server side (tls_crl_hooks.c): the config table's apply function, and
 * what tlsOcspCron() / tlsOcspInfo() call. */
int tlsCrlApplyFile(const char **err);
void tlsCrlCron(void);
sds tlsCrlInfo(sds info);

/* OpenSSL side (tls_crl.c): called by tlsOcspInit() and for every context
 * tlsOcspSetupServerContext() sets up (the server's, and the one for
 * outgoing connections). */
struct ssl_ctx_st;
void tlsCrlInit(void);
void tlsCrlSetupContext(struct ssl_ctx_st *ctx);

#endif
