/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The certificate we staple for and what a response about it must be
 * (tls_ocsp_subject.c). BUILD_TLS=yes only; main thread.
 */

#ifndef VALKEY_TLS_OCSP_SUBJECT_H
#define VALKEY_TLS_OCSP_SUBJECT_H

#include "tls_ocsp_check.h"
#include "tls_ocsp_fetch.h"

#include <stdbool.h>

typedef struct ocspSubject {
    X509 *cert;             /* Leaf of tls-cert-file. */
    X509 *issuer;           /* Its issuer: the trust anchor for responses. */
    STACK_OF(X509) * chain; /* The rest of tls-cert-file: untrusted helpers. */
    X509_STORE *store;      /* Just the issuer, as a partial-chain anchor. */
    OCSP_CERTID *certid;    /* SHA-1 certificate ID (RFC 5019). */
    sds url;                /* Responder URL as configured or in the AIA; NULL: none. */
    ocspUrl responder;      /* url, split; empty when url is NULL. */
    bool post_only;         /* The responder refused a GET: ask it with POST. */
} ocspSubject;

/* The subject of the context's certificate (the responder configured, else
 * the first usable http:// URL of its AIA extension), or NULL with *err. */
ocspSubject *ocspSubjectCreate(SSL_CTX *ctx, const char *configured_responder, ocspError *err);
void ocspSubjectFree(ocspSubject *s);
/* The DER OCSP request for the certificate (OPENSSL_free it); its length, or
 * -1. */
int ocspSubjectEncodeRequest(const ocspSubject *s, unsigned char **der);
/* A response verified for the subject: what it says and what to staple. */
typedef struct ocspVerifiedResponse {
    ocspResponseInfo info;
    unsigned char *der;           /* Trimmed, to staple; OPENSSL_free it. NULL unless verified. */
    char detail[OCSP_DETAIL_LEN]; /* Why not, for the log. */
} ocspVerifiedResponse;

/* Decode, check and trim an answer into *out; a response without nextUpdate
 * is valid for no_next_update_validity ms. */
ocspError ocspSubjectVerifyResponse(const ocspSubject *s,
                                    const unsigned char *der,
                                    size_t der_len,
                                    long long no_next_update_validity,
                                    ocspVerifiedResponse *out);

#endif
