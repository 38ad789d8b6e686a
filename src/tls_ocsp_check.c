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

#ifdef USE_OPENSSL /* The build links this only where OpenSSL is. */

#include <openssl/err.h>
#include <openssl/sha.h>
#include <pthread.h>
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

OCSP_BASICRESP *ocspDecodeResponse(const unsigned char *der, size_t len, ocspError *err, char *detail, size_t detail_len) {
    const unsigned char *p = der;
    OCSP_RESPONSE *response = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *basic = NULL;
    *err = OCSP_ERR_MALFORMED;
    if (!response || p != der + len) {
        snprintf(detail, detail_len, response ? "bytes after the response" : "not a DER OCSP response");
    } else if (OCSP_response_status(response) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(detail, detail_len, "response status '%s'", OCSP_response_status_str(OCSP_response_status(response)));
        *err = OCSP_ERR_RESPONDER_ERROR;
    } else if (!(basic = OCSP_response_get1_basic(response))) {
        snprintf(detail, detail_len, "no basic response inside");
    } else {
        *err = OCSP_ERR_NONE;
    }
    OCSP_RESPONSE_free(response);
    return basic;
}

/* Signature (by the issuer in the trust store, or a delegate it issued,
 * found in the response or among the untrusted certificates), the status for
 * the certificate ID and well-formed times. */
static ocspError checkSignatureAndStatus(OCSP_BASICRESP *basic,
                                         const ocspTrust *trust,
                                         ocspResponseInfo *info,
                                         char *detail,
                                         size_t detail_len) {
    ASN1_GENERALIZEDTIME *revoked_at = NULL, *this_update = NULL, *next_update = NULL;
    if (OCSP_basic_verify(basic, trust->untrusted, trust->store, 0) <= 0) {
        ERR_error_string_n(ERR_peek_last_error(), detail, detail_len);
        return OCSP_ERR_BAD_SIGNATURE;
    }
    if (OCSP_resp_find_status(basic, trust->certid, &info->cert_status, &info->revocation_reason, &revoked_at,
                              &this_update, &next_update) != 1) {
        snprintf(detail, detail_len, "no status for the certificate in the response");
        return OCSP_ERR_WRONG_CERTIFICATE;
    }
    info->this_update = asn1TimeToMs(this_update);
    info->next_update = next_update ? asn1TimeToMs(next_update) : 0;
    info->revoked_at = revoked_at ? asn1TimeToMs(revoked_at) : 0;
    info->expires = next_update ? info->next_update : info->this_update + trust->no_next_update_validity;
    if (!info->this_update || (next_update && !info->next_update)) {
        snprintf(detail, detail_len, "unreadable thisUpdate or nextUpdate");
        return OCSP_ERR_MALFORMED;
    }
    if (next_update && info->next_update < info->this_update) {
        char when[32], other[32];
        ocspFormatTime(info->next_update, when, sizeof(when));
        ocspFormatTime(info->this_update, other, sizeof(other));
        snprintf(detail, detail_len, "nextUpdate %s is before thisUpdate %s", when, other);
        return OCSP_ERR_MALFORMED;
    }
    return OCSP_ERR_NONE;
}

/* Whether a response with these times is valid now, within the clock skew. */
static ocspError checkValidity(const ocspResponseInfo *info, char *detail, size_t detail_len) {
    long long now = ocspClockMs();
    char when[32];
    if (info->this_update > now + OCSP_CLOCK_SKEW_MS) {
        ocspFormatTime(info->this_update, when, sizeof(when));
        snprintf(detail, detail_len, "thisUpdate %s is in the future", when);
        return OCSP_ERR_NOT_YET_VALID;
    }
    if (info->expires <= now) {
        ocspFormatTime(info->expires, when, sizeof(when));
        snprintf(detail, detail_len, "%s %s has passed", info->next_update ? "nextUpdate" : "thisUpdate + validity",
                 when);
        return OCSP_ERR_STALE;
    }
    return OCSP_ERR_NONE;
}

/* Signature, status for certid, and validity now: everything a response
 * must pass before it is stapled or believed. */
ocspError ocspCheckBasicResponse(OCSP_BASICRESP *basic,
                                 const ocspTrust *trust,
                                 ocspResponseInfo *info,
                                 char *detail,
                                 size_t detail_len) {
    ocspError err = checkSignatureAndStatus(basic, trust, info, detail, detail_len);
    return err != OCSP_ERR_NONE ? err : checkValidity(info, detail, detail_len);
}

/* Staples whose signature was already checked. A peer sends the same bytes on
 * every handshake until its next refresh, and the signature check (decoding
 * the response and the responder certificate inside, one or two RSA checks)
 * costs about as much as the rest of a client's full handshake. An entry is
 * keyed by a SHA-256 over everything that check reads (the staple, the peer's
 * leaf, its issuer and the chain the peer sent) and holds what it found; the
 * validity is checked again at every use, and an entry is not used past the
 * notAfter of the responder's or the issuer's certificate. Only successful
 * checks are kept; shared by the threads doing handshakes. */
#define VERIFIED_STAPLES 16

typedef struct verifiedStaple {
    unsigned char key[SHA256_DIGEST_LENGTH];
    long long certs_valid_until;
    ocspResponseInfo info;
} verifiedStaple;

static verifiedStaple verified_staples[VERIFIED_STAPLES];
static unsigned verified_staples_next;
static pthread_mutex_t verified_staples_lock = PTHREAD_MUTEX_INITIALIZER;

static int verifiedStapleKey(const unsigned char *der,
                             long der_len,
                             X509 *leaf,
                             X509 *issuer,
                             STACK_OF(X509) * chain,
                             unsigned char *key) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char fingerprint[EVP_MAX_MD_SIZE];
    unsigned int len;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, der, der_len);
    X509 *certs[2] = {leaf, issuer};
    for (int i = 0; ok && i < 2 + sk_X509_num(chain); i++) {
        X509 *cert = i < 2 ? certs[i] : sk_X509_value(chain, i - 2);
        ok = X509_digest(cert, EVP_sha1(), fingerprint, &len) && EVP_DigestUpdate(md, fingerprint, len);
    }
    ok = ok && EVP_DigestFinal_ex(md, key, NULL);
    EVP_MD_CTX_free(md);
    return ok;
}

static int verifiedStapleFind(const unsigned char *key, ocspResponseInfo *info) {
    int found = 0;
    long long now = ocspClockMs();
    pthread_mutex_lock(&verified_staples_lock);
    for (int i = 0; i < VERIFIED_STAPLES && !found; i++) {
        verifiedStaple *entry = &verified_staples[i];
        if (entry->certs_valid_until > now && !memcmp(entry->key, key, sizeof(entry->key))) {
            *info = entry->info;
            found = 1;
        }
    }
    pthread_mutex_unlock(&verified_staples_lock);
    return found;
}

static void verifiedStapleAdd(const unsigned char *key,
                              OCSP_BASICRESP *basic,
                              X509 *issuer,
                              STACK_OF(X509) * chain,
                              const ocspResponseInfo *info) {
    /* The signer is in the response or the chain, or else it is the issuer
     * itself (the only certificate the check trusted). */
    X509 *signer = NULL;
    long long until = asn1TimeToMs(X509_get0_notAfter(issuer));
    if (OCSP_resp_get0_signer(basic, &signer, chain) == 1 && signer) {
        long long signer_until = asn1TimeToMs(X509_get0_notAfter(signer));
        if (signer_until < until) until = signer_until;
    }
    if (!until) return;
    pthread_mutex_lock(&verified_staples_lock);
    verifiedStaple *entry = &verified_staples[verified_staples_next++ % VERIFIED_STAPLES];
    memcpy(entry->key, key, sizeof(entry->key));
    entry->certs_valid_until = until;
    entry->info = *info;
    pthread_mutex_unlock(&verified_staples_lock);
}

/* The issuer of the peer's leaf, from the chain OpenSSL verified only: a
 * certificate the peer merely sent is no trust anchor for its staple.
 * Returns a new reference, or NULL. */
static X509 *peerIssuer(SSL *ssl, X509 *leaf) {
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    if (sk_X509_num(verified) < 2 || X509_check_issued(sk_X509_value(verified, 1), leaf) != X509_V_OK) return NULL;
    X509_up_ref(sk_X509_value(verified, 1));
    return sk_X509_value(verified, 1);
}

X509 *ocspPeerCertificate(SSL *ssl) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    return SSL_get0_peer_certificate(ssl);
#else
    /* The connection keeps its own reference: drop the one we are given. */
    X509 *cert = SSL_get_peer_certificate(ssl);
    X509_free(cert);
    return cert;
#endif
}

/* Signature and status of the staple the peer sent, from the cache of
 * verified staples or checked now (and then cached). */
static ocspError checkPeerStapleSignature(SSL *ssl,
                                          const unsigned char *der,
                                          long der_len,
                                          X509 *leaf,
                                          X509 *issuer,
                                          ocspResponseInfo *info,
                                          char *detail,
                                          size_t detail_len) {
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    unsigned char key[SHA256_DIGEST_LENGTH];
    int keyed = verifiedStapleKey(der, der_len, leaf, issuer, chain, key);
    if (keyed && verifiedStapleFind(key, info)) return OCSP_ERR_NONE;

    ocspTrust trust = {
        .untrusted = chain,
        .store = X509_STORE_new(),
        .certid = OCSP_cert_to_id(NULL, leaf, issuer),
        .no_next_update_validity = OCSP_NO_NEXT_UPDATE_VALIDITY_MS,
    };
    OCSP_BASICRESP *basic = NULL;
    ocspError err = OCSP_ERR_NONE;
    if (!trust.store || !trust.certid || X509_STORE_add_cert(trust.store, issuer) != 1) {
        snprintf(detail, detail_len, "out of memory");
        err = OCSP_ERR_INTERNAL;
    } else if ((basic = ocspDecodeResponse(der, (size_t)der_len, &err, detail, detail_len))) {
        X509_STORE_set_flags(trust.store, X509_V_FLAG_PARTIAL_CHAIN);
        err = checkSignatureAndStatus(basic, &trust, info, detail, detail_len);
        if (err == OCSP_ERR_NONE && keyed) verifiedStapleAdd(key, basic, issuer, chain, info);
    }
    OCSP_BASICRESP_free(basic);
    OCSP_CERTID_free(trust.certid);
    X509_STORE_free(trust.store);
    return err;
}

/* Whether the staple the peer sent meets policy; *detail says why not. */
ocspError ocspCheckPeerStaple(SSL *ssl, int policy, ocspResponseInfo *info, char *detail, size_t detail_len) {
    const unsigned char *der = NULL;
    long der_len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    if (!der || der_len <= 0) {
        if (policy == TLS_OCSP_VERIFY_PEERS_OPTIONAL) return OCSP_ERR_NONE;
        snprintf(detail, detail_len, "the peer stapled no OCSP response");
        return OCSP_ERR_NO_STAPLE;
    }
    info->bytes = (size_t)der_len;
    X509 *leaf = ocspPeerCertificate(ssl);
    X509 *issuer = leaf ? peerIssuer(ssl, leaf) : NULL;
    if (!issuer) {
        snprintf(detail, detail_len, "the issuer of the peer certificate is not in its verified chain");
        return OCSP_ERR_NO_ISSUER;
    }
    ocspError err = checkPeerStapleSignature(ssl, der, der_len, leaf, issuer, info, detail, detail_len);
    if (err == OCSP_ERR_NONE) err = checkValidity(info, detail, detail_len);
    if (err == OCSP_ERR_NONE && info->cert_status == V_OCSP_CERTSTATUS_REVOKED) {
        char when[32];
        ocspFormatTime(info->revoked_at, when, sizeof(when));
        snprintf(detail, detail_len, "revoked at %s, reason: %s", when, OCSP_crl_reason_str(info->revocation_reason));
        err = OCSP_ERR_REVOKED;
    } else if (err == OCSP_ERR_NONE && info->cert_status != V_OCSP_CERTSTATUS_GOOD &&
               policy == TLS_OCSP_VERIFY_PEERS_YES) {
        snprintf(detail, detail_len, "the responder does not know the certificate");
        err = OCSP_ERR_UNKNOWN_STATUS;
    }
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

/* "optional" or "yes": the policy; anything else: TLS_OCSP_VERIFY_PEERS_NO. */
int ocspToolParsePolicy(const char *value) {
    if (!strcasecmp(value, "optional")) return TLS_OCSP_VERIFY_PEERS_OPTIONAL;
    if (!strcasecmp(value, "yes")) return TLS_OCSP_VERIFY_PEERS_YES;
    return TLS_OCSP_VERIFY_PEERS_NO;
}
