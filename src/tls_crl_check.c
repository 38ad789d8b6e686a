/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * --tls-crl of valkey-cli and valkey-benchmark: see tls_crl_check.h.
 */

#include "fmacros.h"
#include "tls_crl_check.h"

#include <stdio.h>

#ifdef USE_OPENSSL /* The tools link OpenSSL only when built with TLS. */

#include <errno.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

/* As tls-crl-file's bound (TLS_CRL_MAX_FILE_BYTES). */
#define CRL_TOOL_MAX_FILE_BYTES (64 * 1024 * 1024)

static char tool_error[512];
/* Set once by crlToolSetup(), read by the verify callback in any thread. */
static const char *tool_path;

static int toolFail(const char **err, const char *fmt, ...) {
    va_list ap;
    int used = snprintf(tool_error, sizeof(tool_error), "--tls-crl %s: ", tool_path);
    va_start(ap, fmt);
    if (used > 0 && (size_t)used < sizeof(tool_error)) vsnprintf(tool_error + used, sizeof(tool_error) - used, fmt, ap);
    va_end(ap);
    *err = tool_error;
    ERR_clear_error();
    return -1;
}

/* The bytes of path, in a memory BIO (pure OpenSSL: the tools link the sds of
 * their client library, under other names in Valkey 8.1). */
static BIO *readCrlFile(const char *path, const char **err) {
    errno = 0;
    BIO *file = BIO_new_file(path, "rb");
    if (!file) {
        toolFail(err, "cannot open it: %s", errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    BIO *mem = BIO_new(BIO_s_mem());
    char buf[16 * 1024];
    long total = 0;
    int n = 0, ok = mem != NULL;
    while (ok && total <= CRL_TOOL_MAX_FILE_BYTES && (n = BIO_read(file, buf, sizeof(buf))) > 0) {
        ok = BIO_write(mem, buf, n) == n;
        total += n;
    }
    BIO_free(file);
    if (!ok || n < 0 || total > CRL_TOOL_MAX_FILE_BYTES) {
        const char *why = !ok ? "out of memory" : (n < 0 ? "cannot read it" : "larger than 64 MiB");
        toolFail(err, "%s", why);
        BIO_free(mem);
        return NULL;
    }
    return mem;
}

int tlsCrlSignedByCa(X509_STORE *store, X509_CRL *crl) {
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    int ok = 0;
    if (sctx && X509_STORE_CTX_init(sctx, store, NULL, NULL) == 1) {
        STACK_OF(X509) *cas = X509_STORE_CTX_get1_certs(sctx, X509_CRL_get_issuer(crl));
        for (int i = 0; !ok && i < sk_X509_num(cas); i++) {
            X509 *ca = sk_X509_value(cas, i);
            if ((X509_get_extension_flags(ca) & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca) & KU_CRL_SIGN)) continue;
            EVP_PKEY *key = X509_get0_pubkey(ca);
            ok = key && X509_CRL_verify(crl, key) == 1;
        }
        sk_X509_pop_free(cas, X509_free);
    }
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return ok;
}

/* Verify one CRL and add it to the store. */
static int addCrl(X509_STORE *store, X509_CRL *crl, int index, const char **err) {
    char issuer[256];
    X509_NAME_oneline(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
    if (!tlsCrlSignedByCa(store, crl))
        return toolFail(err, "CRL %d (issuer %s) is not signed by a CA of --cacert / --cacertdir", index, issuer);
    const ASN1_TIME *this_update = X509_CRL_get0_lastUpdate(crl), *next_update = X509_CRL_get0_nextUpdate(crl);
    int days, secs;
    if (!this_update || ASN1_TIME_check(this_update) != 1 || (next_update && ASN1_TIME_check(next_update) != 1))
        return toolFail(err, "CRL %d (issuer %s) has an unreadable thisUpdate or nextUpdate", index, issuer);
    if (next_update && (ASN1_TIME_diff(&days, &secs, this_update, next_update) != 1 || days < 0 || secs < 0))
        return toolFail(err, "CRL %d (issuer %s) has its nextUpdate before its thisUpdate", index, issuer);
    if (X509_STORE_add_crl(store, crl) != 1) {
        /* The same CRL twice in the file is harmless. */
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
            return toolFail(err, "CRL %d (issuer %s) cannot be added: out of memory", index, issuer);
    }
    return 0;
}

/* PEM (one CRL or more, nothing else) or a single DER CRL, as tls-crl-file. */
static int loadCrls(X509_STORE *store, const char *data, size_t len, const char **err) {
    if (len == 0) return toolFail(err, "it is empty");
    if (!memmem(data, len, "-----BEGIN", 10)) {
        const unsigned char *p = (const unsigned char *)data;
        X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
        int ret = -1;
        if (!crl || p != (const unsigned char *)data + len)
            toolFail(err, "neither PEM nor a single DER X509 CRL (garbage or truncated)");
        else
            ret = addCrl(store, crl, 1, err);
        X509_CRL_free(crl);
        return ret;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) return toolFail(err, "out of memory");
    int count = 0, ret = 0;
    while (ret == 0) {
        ERR_clear_error();
        X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
        if (!crl) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
                ret = toolFail(err, "CRL %d cannot be parsed (truncated or not a PEM X509 CRL)", count + 1);
            else if (count == 0)
                ret = toolFail(err, "no PEM X509 CRL in it");
            break;
        }
        ret = addCrl(store, crl, ++count, err);
        X509_CRL_free(crl);
    }
    BIO_free(bio);
    ERR_clear_error();
    return ret;
}

static void serialText(const ASN1_INTEGER *serial, char *buf, size_t size) {
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(buf, size, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* The certificate a finding is about: "the server certificate" or its CA at
 * depth N, with its serial and subject. */
static void certText(X509 *cert, int depth, char *buf, size_t size) {
    char serial[128] = "?", subject[256] = "?";
    if (cert) {
        serialText(X509_get0_serialNumber(cert), serial, sizeof(serial));
        X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    }
    if (depth == 0)
        snprintf(buf, size, "the server certificate (serial %s, subject %s)", serial, subject);
    else
        snprintf(buf, size, "the CA certificate at depth %d of the server's chain (serial %s, subject %s)", depth,
                 serial, subject);
}

/* Why a listed certificate is revoked: " since DATE, reason: WHY". */
static void revokedText(X509_CRL *crl, X509 *cert, char *buf, size_t size) {
    X509_REVOKED *entry = NULL;
    buf[0] = '\0';
    if (!crl || !cert || X509_CRL_get0_by_cert(crl, &entry, cert) != 1 || !entry) return;
    int reason = OCSP_REVOKED_STATUS_NOSTATUS;
    ASN1_ENUMERATED *code = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL);
    if (code) reason = (int)ASN1_ENUMERATED_get(code);
    ASN1_ENUMERATED_free(code);
    char when[64] = "?";
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem && ASN1_TIME_print(mem, X509_REVOKED_get0_revocationDate(entry)) == 1) {
        int n = BIO_read(mem, when, sizeof(when) - 1);
        when[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    snprintf(buf, size, " since %s, reason: %s", when,
             reason == OCSP_REVOKED_STATUS_NOSTATUS ? "none given" : OCSP_crl_reason_str(reason));
}

/* OpenSSL's CRL check has run on the chain: refuse on its CRL findings but
 * one (an issuer above the leaf without a CRL), and say why. Other errors
 * are upstream's to report. */
static int crlToolVerifyCallback(int preverify_ok, X509_STORE_CTX *sctx) {
    if (preverify_ok) return 1;
    int error = X509_STORE_CTX_get_error(sctx);
    int depth = X509_STORE_CTX_get_error_depth(sctx);
    X509 *cert = X509_STORE_CTX_get_current_cert(sctx);
    X509_CRL *crl = X509_STORE_CTX_get0_current_crl(sctx);
    char who[512], issuer[256] = "?", why[160];
    if (error == X509_V_ERR_UNABLE_TO_GET_CRL && depth > 0) return 1;
    certText(cert, depth, who, sizeof(who));
    if (cert) X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof(issuer));
    switch (error) {
    case X509_V_ERR_CERT_REVOKED:
        revokedText(crl, cert, why, sizeof(why));
        fprintf(stderr, "CRL: %s is revoked%s, by the CRL of %s in %s\n", who, why, issuer, tool_path);
        break;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        fprintf(stderr, "CRL: %s cannot be checked: no CRL of its issuer %s in %s\n", who, issuer, tool_path);
        break;
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
        fprintf(stderr, "CRL: %s cannot be checked: the CRL of its issuer %s in %s: %s\n", who, issuer, tool_path,
                X509_verify_cert_error_string(error));
        break;
    default: break;
    }
    return 0;
}

int crlToolSetup(SSL_CTX *ctx, const char *path, const char **err) {
    tool_path = path;
    /* With --insecure nothing the verification finds refuses the server. */
    if (SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_NONE)
        return toolFail(err, "the server certificate is not verified (--insecure): nothing to check");
    BIO *file = readCrlFile(path, err);
    if (!file) return -1;
    char *data;
    long len = BIO_get_mem_data(file, &data);
    int ret = loadCrls(SSL_CTX_get_cert_store(ctx), data, len > 0 ? (size_t)len : 0, err);
    BIO_free(file);
    if (ret == -1) return -1;
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), crlToolVerifyCallback);
    return 0;
}

#else

int crlToolSetup(struct ssl_ctx_st *ctx, const char *path, const char **err) {
    (void)ctx;
    (void)path;
    *err = "--tls-crl needs TLS built in";
    return -1;
}

#endif
