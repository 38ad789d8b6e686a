/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The subject of OCSP stapling: the server certificate, its issuer (the
 * trust anchor for responses), where to ask about it, the request, and what
 * a response about it must be before it is stapled (verified, then trimmed
 * to what a handshake can carry). Built, used and freed on the main thread;
 * immutable once built.
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this only where OpenSSL is. */

#include "tls_ocsp_subject.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The largest response we staple. TLS 1.2 sends it in a CertificateStatus
 * handshake message, which OpenSSL clients (and others) refuse above 16384
 * bytes, one record's plaintext ("excessive message size"); the message
 * holds a 1-byte status type and a 3-byte length before the response. TLS
 * 1.3 carries it in a certificate extension with room to spare. */
#define OCSP_MAX_STAPLE_BYTES (16384 - 4)

void ocspSubjectFree(ocspSubject *s) {
    if (!s) return;
    X509_free(s->cert);
    X509_free(s->issuer);
    sk_X509_pop_free(s->chain, X509_free);
    X509_STORE_free(s->store);
    OCSP_CERTID_free(s->certid);
    sdsfree(s->url);
    ocspUrlClear(&s->responder);
    zfree(s);
}

/* The first usable http:// OCSP URL in the certificate's AIA extension. */
static void subjectFindResponder(ocspSubject *s, const char *configured) {
    const char *err;
    if (configured) {
        if (ocspUrlParse(configured, &s->responder, 0, &err)) s->url = sdsnew(configured);
        return;
    }
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(s->cert);
    for (int i = 0; i < sk_OPENSSL_STRING_num(urls) && !s->url; i++) {
        const char *candidate = sk_OPENSSL_STRING_value(urls, i);
        if (ocspUrlParse(candidate, &s->responder, 0, &err)) s->url = sdsnew(candidate);
    }
    X509_email_free(urls);
}

/* The issuer of cert: the next certificate of tls-cert-file, else one from
 * tls-ca-cert-file / tls-ca-cert-dir (the context's trust store). */
static X509 *findIssuer(SSL_CTX *ctx, X509 *cert, STACK_OF(X509) * chain) {
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *candidate = sk_X509_value(chain, i);
        if (X509_check_issued(candidate, cert) == X509_V_OK) {
            X509_up_ref(candidate);
            return candidate;
        }
    }
    X509 *issuer = NULL;
    X509_STORE_CTX *store_ctx = X509_STORE_CTX_new();
    if (store_ctx && X509_STORE_CTX_init(store_ctx, SSL_CTX_get_cert_store(ctx), cert, NULL) == 1) {
        if (X509_STORE_CTX_get1_issuer(&issuer, store_ctx, cert) != 1) issuer = NULL;
    }
    X509_STORE_CTX_free(store_ctx);
    ERR_clear_error();
    return issuer;
}

/* Build the subject of the context's certificate, or NULL with *err set. */
ocspSubject *ocspSubjectCreate(SSL_CTX *ctx, const char *configured_responder, ocspError *err) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) {
        *err = OCSP_ERR_NO_CERTIFICATE;
        return NULL;
    }
    ocspSubject *s = zcalloc(sizeof(*s));
    X509_up_ref(cert);
    s->cert = cert;

    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    s->chain = chain ? X509_chain_up_ref(chain) : sk_X509_new_null();
    subjectFindResponder(s, configured_responder);

    s->issuer = findIssuer(ctx, cert, s->chain);
    if (!s->issuer) {
        *err = OCSP_ERR_NO_ISSUER;
        ocspSubjectFree(s);
        return NULL;
    }
    s->store = X509_STORE_new();
    s->certid = OCSP_cert_to_id(NULL, cert, s->issuer);
    if (!s->chain || !s->store || !s->certid || X509_STORE_add_cert(s->store, s->issuer) != 1) {
        ERR_clear_error();
        *err = OCSP_ERR_INTERNAL;
        ocspSubjectFree(s);
        return NULL;
    }
    /* Our issuer is trusted because it issued our certificate; it need not
     * chain to any root configured for client verification. */
    X509_STORE_set_flags(s->store, X509_V_FLAG_PARTIAL_CHAIN);
    return s;
}


/* No nonce: responders such as Microsoft ADCS refuse nonces by default. */
int ocspSubjectEncodeRequest(const ocspSubject *s, unsigned char **der) {
    OCSP_REQUEST *request = OCSP_REQUEST_new();
    OCSP_CERTID *certid = request ? OCSP_CERTID_dup(s->certid) : NULL;
    if (certid && !OCSP_request_add0_id(request, certid)) {
        OCSP_CERTID_free(certid);
        certid = NULL;
    }
    int len = certid ? i2d_OCSP_REQUEST(request, der) : -1;
    OCSP_REQUEST_free(request);
    return len;
}


/* Keep in the unsigned certs field only what a client needs to check the
 * signature: nothing when the issuer signed, else the delegated signer. */
static int trimCertificates(const ocspSubject *s, OCSP_BASICRESP *basic) {
    X509 *signer = NULL;
    if (OCSP_resp_get0_signer(basic, &signer, s->chain) != 1) return 0;
    bool delegated = X509_cmp(signer, s->issuer) != 0;
    X509_up_ref(signer);
    /* The response owns its certs stack and OpenSSL has no setter for it;
     * it lies outside the signed data, so emptying it keeps the signature. */
    STACK_OF(X509) *certs = (STACK_OF(X509) *)OCSP_resp_get0_certs(basic);
    while (sk_X509_num(certs) > 0) X509_free(sk_X509_pop(certs));
    int ok = !delegated || OCSP_basic_add1_cert(basic, signer);
    X509_free(signer);
    return ok;
}

ocspError ocspSubjectVerifyResponse(const ocspSubject *s,
                                    const unsigned char *der,
                                    size_t der_len,
                                    long long no_next_update_validity,
                                    ocspVerifiedResponse *out) {
    ocspTrust trust = {
        .untrusted = s->chain,
        .store = s->store,
        .certid = s->certid,
        .no_next_update_validity = no_next_update_validity,
    };
    char *detail = out->detail;
    size_t detail_len = sizeof(out->detail);
    ocspError err = OCSP_ERR_NONE;
    int len = 0;
    out->der = NULL;
    OCSP_BASICRESP *basic = ocspDecodeResponse(der, der_len, &err, detail, detail_len);
    if (!basic) {
        /* detail says why */
    } else if ((err = ocspCheckBasicResponse(basic, &trust, &out->info, detail, detail_len)) != OCSP_ERR_NONE) {
        /* detail says why */
    } else if (!trimCertificates(s, basic)) {
        snprintf(detail, detail_len, "cannot trim the certificates of the response");
        err = OCSP_ERR_INTERNAL;
    } else {
        OCSP_RESPONSE *trimmed = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
        len = trimmed ? i2d_OCSP_RESPONSE(trimmed, &out->der) : -1;
        OCSP_RESPONSE_free(trimmed);
        if (len <= 0) {
            snprintf(detail, detail_len, "cannot encode the response");
            err = OCSP_ERR_INTERNAL;
        } else if (len > OCSP_MAX_STAPLE_BYTES) {
            snprintf(detail, detail_len, "%d bytes after trimming, more than the %d a TLS 1.2 handshake can carry",
                     len, OCSP_MAX_STAPLE_BYTES);
            err = OCSP_ERR_TOO_LARGE;
        }
    }
    OCSP_BASICRESP_free(basic);
    ERR_clear_error();
    if (err != OCSP_ERR_NONE) {
        OPENSSL_free(out->der);
        out->der = NULL;
        return err;
    }
    out->info.bytes = (size_t)len;
    return OCSP_ERR_NONE;
}

#endif
