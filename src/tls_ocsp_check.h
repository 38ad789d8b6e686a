/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Checking OCSP responses, shared by the server (tls_ocsp.c: the responses it
 * fetches for itself and the staples of the servers it connects to) and the
 * command line tools (valkey-cli, valkey-benchmark: --tls-ocsp-verify). Pure
 * OpenSSL; nothing here touches server state.
 */

#ifndef VALKEY_TLS_OCSP_CHECK_H
#define VALKEY_TLS_OCSP_CHECK_H

#include "tls_ocsp.h" /* TLS_OCSP_VERIFY_PEERS_*: the policies. */

#ifdef USE_OPENSSL /* The build links this only where OpenSSL is. */

#include <openssl/ssl.h>
#include <openssl/ocsp.h>

/* Accepted clock difference between a responder and us (RFC 6960 practice). */
#define OCSP_CLOCK_SKEW_MS (300 * 1000LL)
/* Validity given to a response without nextUpdate, unless told otherwise. */
#define OCSP_NO_NEXT_UPDATE_VALIDITY_MS (3600 * 1000LL)
/* A short human-readable detail goes with every error into the log. */
#define OCSP_DETAIL_LEN 256

/* Why a fetch, a setup or a check failed: one name each, for INFO, the log
 * and the tests. */
typedef enum ocspError {
    OCSP_ERR_NONE = 0,
    OCSP_ERR_TIMEOUT,           /* No complete answer within the response timeout. */
    OCSP_ERR_RESOLVE_FAILED,    /* The responder's host name did not resolve. */
    OCSP_ERR_CONNECT_FAILED,    /* No address took the connection, or sending failed. */
    OCSP_ERR_HTTP_STATUS,       /* An HTTP status other than 200. */
    OCSP_ERR_CONTENT_TYPE,      /* Not application/ocsp-response. */
    OCSP_ERR_TOO_LARGE,         /* Over a read bound, or too large to staple. */
    OCSP_ERR_TRUNCATED,         /* The connection ended before the answer did. */
    OCSP_ERR_MALFORMED,         /* Not an OCSP response, or inconsistent one. */
    OCSP_ERR_RESPONDER_ERROR,   /* A response status other than successful. */
    OCSP_ERR_BAD_SIGNATURE,     /* Not signed by the issuer or its delegate. */
    OCSP_ERR_WRONG_CERTIFICATE, /* No status for our certificate. */
    OCSP_ERR_STALE,             /* Its nextUpdate (or validity) has passed. */
    OCSP_ERR_NOT_YET_VALID,     /* Its thisUpdate is beyond the clock skew. */
    OCSP_ERR_NO_ISSUER,         /* The issuer of our certificate is nowhere. */
    OCSP_ERR_NO_CERTIFICATE,    /* No server certificate to ask about. */
    OCSP_ERR_NO_RESPONDER,      /* No usable http:// responder URL. */
    OCSP_ERR_FILE_UNREADABLE,   /* tls-ocsp-response-file cannot be read. */
    OCSP_ERR_NO_STAPLE,         /* A peer stapled nothing. */
    OCSP_ERR_REVOKED,           /* A peer's certificate is revoked. */
    OCSP_ERR_UNKNOWN_STATUS,    /* A peer's responder does not know its certificate. */
    OCSP_ERR_INTERNAL,          /* Resources or encoding. */
    OCSP_ERR_COUNT
} ocspError;

extern const char *const ocsp_error_names[OCSP_ERR_COUNT];

/* A verified response, as INFO and the schedule see it. */
typedef struct ocspResponseInfo {
    int cert_status; /* V_OCSP_CERTSTATUS_* */
    int revocation_reason;
    long long revoked_at, this_update;
    long long next_update; /* 0 when the response has none. */
    long long expires;     /* nextUpdate, or thisUpdate + the validity we give. */
    size_t bytes;
} ocspResponseInfo;

long long ocspClockMs(void);
void ocspFormatTime(long long ms, char *buf, size_t len);
/* What a response is checked against. */
typedef struct ocspTrust {
    STACK_OF(X509) * untrusted;        /* May hold a delegated responder's certificate. */
    X509_STORE *store;                 /* The issuer of the certificate asked about. */
    OCSP_CERTID *certid;               /* The certificate asked about. */
    long long no_next_update_validity; /* Given to a response without nextUpdate. */
} ocspTrust;

/* The basic response inside a DER OCSP response whose status is
 * successful (to OCSP_BASICRESP_free), or NULL with *err and detail. */
OCSP_BASICRESP *ocspDecodeResponse(const unsigned char *der, size_t len, ocspError *err, char *detail, size_t detail_len);
ocspError ocspCheckBasicResponse(OCSP_BASICRESP *basic,
                                 const ocspTrust *trust,
                                 ocspResponseInfo *info,
                                 char *detail,
                                 size_t detail_len);
/* info->bytes is the staple's size: 0 when the peer stapled nothing. */
ocspError ocspCheckPeerStaple(SSL *ssl, int policy, ocspResponseInfo *info, char *detail, size_t detail_len);
/* The peer's certificate, borrowed from the connection (OpenSSL 1.1.1 and 3). */
X509 *ocspPeerCertificate(SSL *ssl);

#endif

/* --tls-ocsp-verify of valkey-cli and valkey-benchmark. Built without TLS,
 * asking for status always fails. */
struct ssl_ctx_st;
struct ssl_st;
int ocspToolParsePolicy(const char *value);
int ocspToolRequestStatus(struct ssl_ctx_st *ctx, struct ssl_st *ssl, int policy, int verbose);

#endif
