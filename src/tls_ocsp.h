/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * OCSP stapling for the TLS server side: the server fetches, verifies and
 * caches the OCSP response for its own certificate and attaches it to every
 * handshake whose client asks for certificate status (RFC 6066 section 8).
 *
 * All logic lives in tls_ocsp*.c; upstream files only call the hooks below.
 */

#ifndef VALKEY_TLS_OCSP_H
#define VALKEY_TLS_OCSP_H

/* Valkey 8.1's valkey-cli and valkey-benchmark (through tls_ocsp_check.h)
 * use hiredis' sds, whose sdscompat.h makes the sds names macros for its
 * own: the server's sds.h would clash there, and they need none of it. */
#ifndef sdslen
#include "sds.h"
#endif

/* The tls-ocsp-* directives, held in server.tls_ocsp_config. */
typedef struct tlsOcspConfig {
    int enabled;              /* tls-ocsp-stapling */
    int refresh_margin;       /* tls-ocsp-refresh-margin, percent of the validity window (-10: "10%") */
    int retry_delay;          /* tls-ocsp-retry-delay, seconds */
    int response_timeout;     /* tls-ocsp-response-timeout, seconds per fetch */
    int max_refresh_interval; /* tls-ocsp-max-refresh-interval, seconds, 0 = no bound */
    char *responder;          /* tls-ocsp-responder, NULL = the certificate's AIA URL */
    char *cache_file;         /* tls-ocsp-cache-file, relative to dir; "" = none */
    char *response_file;      /* tls-ocsp-response-file, NULL = ask the responder */
    char *proxy;              /* tls-ocsp-proxy, NULL = connect directly */
    int verify_peers;         /* tls-ocsp-verify-peers, TLS_OCSP_VERIFY_PEERS_* */
} tlsOcspConfig;

/* tls-ocsp-verify-peers: what the staple of a server we connect to must be. */
#define TLS_OCSP_VERIFY_PEERS_NO 0       /* Not asked for, not checked. */
#define TLS_OCSP_VERIFY_PEERS_OPTIONAL 1 /* A staple, if any, must be valid and not revoked. */
#define TLS_OCSP_VERIFY_PEERS_YES 2      /* A valid, good staple is required. */

/* Where the code lives. The server side (tls_ocsp_hooks.c, the HTTP client
 * tls_ocsp_fetch.c, the background work tls_ocsp_worker.c) is in the server
 * binary in every build and calls no OpenSSL. The OpenSSL side (tls_ocsp.c,
 * _subject.c, _peer.c, _check.c) goes where tls.c's OpenSSL code goes: into
 * the server with BUILD_TLS=yes, into valkey-tls.so with BUILD_TLS=module.
 * tls.c's init registers it with the server side (tlsOcspInit), which calls
 * it only through this table; until then the directives are kept but do
 * nothing, and CONFIG SET tls-ocsp-stapling yes says why. */
typedef enum tlsOcspSetting {
    TLS_OCSP_SETTING_STAPLING,  /* tls-ocsp-stapling */
    TLS_OCSP_SETTING_RESPONDER, /* tls-ocsp-responder */
    TLS_OCSP_SETTING_SOURCE,    /* tls-ocsp-response-file, tls-ocsp-proxy */
    TLS_OCSP_SETTING_SCHEDULE,  /* the margin, delay, timeout and interval */
} tlsOcspSetting;

struct client;
typedef struct tlsOcspStapler {
    void (*setting_changed)(tlsOcspSetting setting);
    void (*cron)(void);
    sds (*info)(sds info);
    void (*refresh_command)(struct client *c);
    void (*shutdown)(void);
} tlsOcspStapler;

/* The OpenSSL side registers itself, once, from tls.c's init. */
void tlsOcspRegisterStapler(const tlsOcspStapler *stapler);

/* Config hooks: the table's validate / apply / special-config functions
 * (config.c). tls-ocsp-proxy is special because CONFIG GET must not show
 * its password (tls_ocsp_fetch.c). */
struct standardConfig;
struct rewriteConfigState;
int tlsOcspApplyStapling(const char **err);
int tlsOcspApplyResponder(const char **err);
int tlsOcspApplySchedule(const char **err);
int tlsOcspApplySource(const char **err);
int tlsOcspIsValidResponder(char *val, const char **err);
int tlsOcspSetProxy(struct standardConfig *config, sds *argv, int argc, const char **err);
sds tlsOcspGetProxy(struct standardConfig *config);
void tlsOcspRewriteProxy(struct standardConfig *config, const char *name, struct rewriteConfigState *state);

/* TLS hooks (tls.c, so in valkey-tls.so with BUILD_TLS=module). A forward
 * declaration of OpenSSL's SSL_CTX keeps type checking without making every
 * includer pull in OpenSSL. */
struct ssl_ctx_st;
struct ssl_st;
void tlsOcspInit(void);
void tlsOcspSetupServerContext(struct ssl_ctx_st *ctx);
void tlsOcspServerContextChanged(struct ssl_ctx_st *ctx);
void tlsOcspSetupClientContext(struct ssl_ctx_st *ctx);
void tlsOcspSetupClientConnection(struct ssl_st *ssl);

/* Server hooks (server.c). */
void tlsOcspCron(void);
sds tlsOcspInfo(sds info);
void tlsOcspShutdown(void);

/* OCSP REFRESH | HELP (commands.def). */
void ocspCommand(struct client *c);

/* Background hook (bio.c): the BIO_TLS_OCSP worker runs this for each job. */
void tlsOcspBackgroundJob(void);

#endif
