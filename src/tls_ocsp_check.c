/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Checking OCSP responses: see tls_ocsp_check.h.
 */

#include "fmacros.h"
#include "tls_ocsp_check.h"

#include <strings.h>

#if defined(USE_OPENSSL) && USE_OPENSSL == 1 /* BUILD_YES */

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* The one name of each ocspError: INFO tls_ocsp_last_error, the log lines
 * and the tests all use these. */
const char *const ocsp_error_names[OCSP_ERR_COUNT] = {
    [OCSP_ERR_NONE] = "none",
    [OCSP_ERR_TIMEOUT] = "timeout",
    [OCSP_ERR_RESOLVE_FAILED] = "resolve_failed",
    [OCSP_ERR_CONNECT_FAILED] = "connect_failed",
    [OCSP_ERR_HTTP_STATUS] = "http_status",
    [OCSP_ERR_CONTENT_TYPE] = "content_type",
    [OCSP_ERR_TOO_LARGE] = "too_large",
    [OCSP_ERR_TRUNCATED] = "truncated",
    [OCSP_ERR_MALFORMED] = "malformed",
    [OCSP_ERR_RESPONDER_ERROR] = "responder_error",
    [OCSP_ERR_BAD_SIGNATURE] = "bad_signature",
    [OCSP_ERR_WRONG_CERTIFICATE] = "wrong_certificate",
    [OCSP_ERR_STALE] = "stale",
    [OCSP_ERR_NOT_YET_VALID] = "not_yet_valid",
    [OCSP_ERR_NO_ISSUER] = "no_issuer",
    [OCSP_ERR_NO_CERTIFICATE] = "no_certificate",
    [OCSP_ERR_NO_RESPONDER] = "no_responder",
    [OCSP_ERR_FILE_UNREADABLE] = "file_unreadable",
    [OCSP_ERR_NO_STAPLE] = "no_staple",
    [OCSP_ERR_REVOKED] = "revoked",
    [OCSP_ERR_UNKNOWN_STATUS] = "unknown",
    [OCSP_ERR_INTERNAL] = "internal_error",
};

long long ocspClockMs(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void ocspFormatTime(long long ms, char *buf, size_t len) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long long asn1TimeToMs(const ASN1_GENERALIZEDTIME *t) {
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm) * 1000;
}

/* Signature (by the issuer in store, or a delegate it issued, found in the
 * response or in untrusted), status for certid, and validity; a response
 * without nextUpdate is valid for no_next_update_validity. */
ocspError ocspCheckBasicResponse(OCSP_BASICRESP *basic,
                                 STACK_OF(X509) * untrusted,
                                 X509_STORE *store,
                                 OCSP_CERTID *certid,
                                 long long no_next_update_validity,
                                 ocspResponseInfo *info,
                                 char *detail,
                                 size_t detail_len) {
    ASN1_GENERALIZEDTIME *revoked_at = NULL, *this_update = NULL, *next_update = NULL;
    if (OCSP_basic_verify(basic, untrusted, store, 0) <= 0) {
        ERR_error_string_n(ERR_peek_last_error(), detail, detail_len);
        return OCSP_ERR_BAD_SIGNATURE;
    }
    if (OCSP_resp_find_status(basic, certid, &info->cert_status, &info->revocation_reason, &revoked_at,
                              &this_update, &next_update) != 1) {
        snprintf(detail, detail_len, "no status for the certificate in the response");
        return OCSP_ERR_WRONG_CERTIFICATE;
    }
    long long now = ocspClockMs();
    info->this_update = asn1TimeToMs(this_update);
    info->next_update = next_update ? asn1TimeToMs(next_update) : 0;
    info->revoked_at = revoked_at ? asn1TimeToMs(revoked_at) : 0;
    info->expires = next_update ? info->next_update : info->this_update + no_next_update_validity;
    char when[32], other[32];
    if (!info->this_update || (next_update && !info->next_update)) {
        snprintf(detail, detail_len, "unreadable thisUpdate or nextUpdate");
        return OCSP_ERR_MALFORMED;
    }
    if (next_update && info->next_update < info->this_update) {
        ocspFormatTime(info->next_update, when, sizeof(when));
        ocspFormatTime(info->this_update, other, sizeof(other));
        snprintf(detail, detail_len, "nextUpdate %s is before thisUpdate %s", when, other);
        return OCSP_ERR_MALFORMED;
    }
    if (info->this_update > now + OCSP_CLOCK_SKEW_MS) {
        ocspFormatTime(info->this_update, when, sizeof(when));
        snprintf(detail, detail_len, "thisUpdate %s is in the future", when);
        return OCSP_ERR_NOT_YET_VALID;
    }
    if (info->expires <= now) {
        ocspFormatTime(info->expires, when, sizeof(when));
        snprintf(detail, detail_len, "%s %s has passed", next_update ? "nextUpdate" : "thisUpdate + validity", when);
        return OCSP_ERR_STALE;
    }
    return OCSP_ERR_NONE;
}

/* The issuer of the peer's leaf: from the chain OpenSSL verified, else the
 * chain the peer sent. Returns a new reference, or NULL. */
static X509 *peerIssuer(SSL *ssl, X509 *leaf) {
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    if (sk_X509_num(verified) >= 2 && X509_check_issued(sk_X509_value(verified, 1), leaf) == X509_V_OK) {
        X509_up_ref(sk_X509_value(verified, 1));
        return sk_X509_value(verified, 1);
    }
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; i < sk_X509_num(sent); i++) {
        X509 *candidate = sk_X509_value(sent, i);
        if (candidate != leaf && X509_check_issued(candidate, leaf) == X509_V_OK) {
            X509_up_ref(candidate);
            return candidate;
        }
    }
    return NULL;
}

/* Whether the staple the peer sent meets policy; *detail says why not. */
ocspError ocspCheckPeerStaple(SSL *ssl, int policy, ocspResponseInfo *info, char *detail, size_t detail_len) {
    const unsigned char *der = NULL;
    long der_len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    if (!der || der_len <= 0) {
        if (policy == OCSP_PEER_POLICY_OPTIONAL) return OCSP_ERR_NONE;
        snprintf(detail, detail_len, "the peer stapled no OCSP response");
        return OCSP_ERR_NO_STAPLE;
    }
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    X509 *issuer = leaf ? peerIssuer(ssl, leaf) : NULL;
    if (!issuer) {
        snprintf(detail, detail_len, "the issuer of the peer certificate is unknown");
        return OCSP_ERR_NO_ISSUER;
    }
    X509_STORE *store = X509_STORE_new();
    OCSP_CERTID *certid = OCSP_cert_to_id(NULL, leaf, issuer);
    const unsigned char *p = der;
    OCSP_RESPONSE *response = d2i_OCSP_RESPONSE(NULL, &p, der_len);
    OCSP_BASICRESP *basic = NULL;
    ocspError err = OCSP_ERR_NONE;
    if (!store || !certid || X509_STORE_add_cert(store, issuer) != 1) {
        snprintf(detail, detail_len, "out of memory");
        err = OCSP_ERR_INTERNAL;
    } else if (!response || p != der + der_len) {
        snprintf(detail, detail_len, "not a DER OCSP response");
        err = OCSP_ERR_MALFORMED;
    } else if (OCSP_response_status(response) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(detail, detail_len, "response status '%s'", OCSP_response_status_str(OCSP_response_status(response)));
        err = OCSP_ERR_RESPONDER_ERROR;
    } else if (!(basic = OCSP_response_get1_basic(response))) {
        snprintf(detail, detail_len, "no basic response inside");
        err = OCSP_ERR_MALFORMED;
    } else {
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
        err = ocspCheckBasicResponse(basic, SSL_get_peer_cert_chain(ssl), store, certid, OCSP_NO_NEXT_UPDATE_VALIDITY_MS,
                                     info, detail, detail_len);
    }
    if (err == OCSP_ERR_NONE && info->cert_status == V_OCSP_CERTSTATUS_REVOKED) {
        char when[32];
        ocspFormatTime(info->revoked_at, when, sizeof(when));
        snprintf(detail, detail_len, "revoked at %s, reason: %s", when, OCSP_crl_reason_str(info->revocation_reason));
        err = OCSP_ERR_REVOKED;
    } else if (err == OCSP_ERR_NONE && info->cert_status != V_OCSP_CERTSTATUS_GOOD &&
               policy == OCSP_PEER_POLICY_YES) {
        snprintf(detail, detail_len, "the responder does not know the certificate");
        err = OCSP_ERR_UNKNOWN_STATUS;
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(response);
    OCSP_CERTID_free(certid);
    X509_STORE_free(store);
    X509_free(issuer);
    ERR_clear_error();
    return err;
}

/* --tls-ocsp-verify of valkey-cli and valkey-benchmark. */

static int tool_policy_index = -1, tool_verbose_index = -1;

static int toolStatusCallback(SSL *ssl, void *arg) {
    (void)arg;
    int policy = (int)(intptr_t)SSL_get_ex_data(ssl, tool_policy_index);
    int verbose = (int)(intptr_t)SSL_get_ex_data(ssl, tool_verbose_index);
    ocspResponseInfo info = {0};
    char detail[OCSP_DETAIL_LEN] = "";
    ocspError err = ocspCheckPeerStaple(ssl, policy, &info, detail, sizeof(detail));
    if (err == OCSP_ERR_REVOKED) {
        fprintf(stderr, "OCSP: server certificate %s\n", detail);
    } else if (err == OCSP_ERR_NO_STAPLE) {
        fprintf(stderr, "OCSP: no stapled response\n");
    } else if (err != OCSP_ERR_NONE) {
        fprintf(stderr, "OCSP: the stapled response is refused: %s (%s)\n", ocsp_error_names[err], detail);
    } else if (verbose && info.this_update) {
        char this_update[32], next_update[32] = "none";
        ocspFormatTime(info.this_update, this_update, sizeof(this_update));
        if (info.next_update) ocspFormatTime(info.next_update, next_update, sizeof(next_update));
        fprintf(stderr, "OCSP: stapled status %s (thisUpdate %s, nextUpdate %s)\n",
                info.cert_status == V_OCSP_CERTSTATUS_GOOD ? "good" : "unknown", this_update, next_update);
    } else if (verbose) {
        fprintf(stderr, "OCSP: no stapled response\n");
    }
    return err == OCSP_ERR_NONE;
}

/* Ask for the server's status on ssl and check it in the handshake. Returns
 * 0, or -1 when OpenSSL cannot be set up for it. */
int ocspToolRequestStatus(SSL_CTX *ctx, SSL *ssl, int policy, int verbose) {
    if (tool_policy_index == -1) tool_policy_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tool_verbose_index == -1) tool_verbose_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tool_policy_index == -1 || tool_verbose_index == -1) return -1;
    SSL_CTX_set_tlsext_status_cb(ctx, toolStatusCallback);
    if (!SSL_set_ex_data(ssl, tool_policy_index, (void *)(intptr_t)policy) ||
        !SSL_set_ex_data(ssl, tool_verbose_index, (void *)(intptr_t)verbose) ||
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp) != 1)
        return -1;
    return 0;
}

#else

int ocspToolRequestStatus(struct ssl_ctx_st *ctx, struct ssl_st *ssl, int policy, int verbose) {
    (void)ctx;
    (void)ssl;
    (void)policy;
    (void)verbose;
    return -1;
}

#endif

/* "optional" or "yes": the policy (1, 2); anything else: 0. */
int ocspToolParsePolicy(const char *value) {
    if (!strcasecmp(value, "optional")) return 1;
    if (!strcasecmp(value, "yes")) return 2;
    return 0;
}
