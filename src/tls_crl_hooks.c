/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The server side of tls-crl-file and tls-crl-urls: what CONFIG SET,
 * serverCron (through tlsOcspCron), INFO (through tlsOcspInfo) and OCSP
 * REFRESH call. The CRL set itself is OpenSSL code in tls_crl.c, which lives
 * where tls.c lives (built in, or in valkey-tls.so) and registers itself from
 * tls.c's init; without it (built without TLS, or the TLS module not loaded)
 * CONFIG SET of a path or URL is refused and one from the config file is
 * reported once as doing nothing.
 *
 * Threads: main thread only.
 */

#include "server.h"
#include "tls_ocsp_fetch.h"

#if defined(USE_OPENSSL) && USE_OPENSSL == 2 /* BUILD_MODULE */
#define CRL_UNAVAILABLE "CRL checks need the TLS module: load valkey-tls.so at startup (loadmodule)"
#else
#define CRL_UNAVAILABLE "CRL checks need a server built with TLS (BUILD_TLS=yes or BUILD_TLS=module)"
#endif

static const tlsCrlChecker *checker = NULL;

void tlsCrlRegisterChecker(const tlsCrlChecker *c) {
    checker = c;
}

static int crlConfigured(void) {
    return server.tls_crl_config.file || server.tls_crl_config.urls;
}

/* tls-crl-urls: at most TLS_CRL_MAX_URLS http:// URLs, separated by spaces,
 * each as tls-ocsp-responder takes it (no user information). */
int tlsCrlIsValidUrls(char *val, const char **err) {
    if (val == NULL || val[0] == '\0') return 1;
    int count = 0;
    sds *urls = sdssplitargs(val, &count);
    int ok = urls != NULL && count > 0;
    if (!ok) *err = "tls-crl-urls: expected one or more URLs separated by spaces";
    if (ok && count > TLS_CRL_MAX_URLS) {
        *err = "tls-crl-urls: at most 16 URLs";
        ok = 0;
    }
    for (int i = 0; ok && i < count; i++) {
        ocspUrl url = {0};
        ok = ocspUrlParse(urls[i], &url, 0, err);
        ocspUrlClear(&url);
        for (int j = 0; ok && j < i; j++) {
            if (!strcmp(urls[i], urls[j])) {
                *err = "tls-crl-urls: a URL is given twice";
                ok = 0;
            }
        }
    }
    sdsfreesplitres(urls, count);
    return ok;
}

int tlsCrlApplyFile(const char **err) {
    if (checker) return checker->file_changed(err);
    if (server.tls_crl_config.file) {
        *err = CRL_UNAVAILABLE;
        return 0;
    }
    return 1;
}

int tlsCrlApplyUrls(const char **err) {
    if (checker) return checker->urls_changed(err);
    if (server.tls_crl_config.urls) {
        *err = CRL_UNAVAILABLE;
        return 0;
    }
    return 1;
}

int tlsCrlApplyStale(const char **err) {
    UNUSED(err);
    if (checker) checker->stale_changed();
    return 1;
}

/* CONFIG SET of tls-ocsp-refresh-margin, -retry-delay or
 * -max-refresh-interval: the next fetch of each URL is timed again. */
void tlsCrlScheduleChanged(void) {
    if (checker) checker->schedule_changed();
}

/* OCSP REFRESH: read the file and fetch every URL now. Returns 0 if there is
 * nothing to refresh. */
int tlsCrlRefresh(void) {
    return checker ? checker->refresh() : 0;
}

void tlsCrlCron(void) {
    static int warned = 0;
    if (checker) {
        checker->cron();
    } else if (crlConfigured() && !warned) {
        serverLog(LL_WARNING, "tls-crl-file and tls-crl-urls have no effect: " CRL_UNAVAILABLE);
        warned = 1;
    }
}

sds tlsCrlInfo(sds info) {
    if (checker) return checker->info(info);
    return sdscatprintf(info, "tls_crl_status:unavailable\r\n");
}
