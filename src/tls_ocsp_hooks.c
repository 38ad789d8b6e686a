/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The server side of OCSP stapling's hooks: what config.c, serverCron, INFO,
 * shutdown and the OCSP command call. The stapling itself is OpenSSL code
 * that lives where tls.c lives (tls_ocsp.h): built into the server, or in
 * valkey-tls.so, so this file reaches it only through the table tls.c's init
 * registers. A server that has none (built without TLS, or the TLS module
 * not loaded) keeps the directives, refuses to turn stapling on at runtime,
 * and says at startup that a configured tls-ocsp-stapling yes does nothing.
 *
 * The same hooks drive tls-crl-file (tls_crl_hooks.c): tlsOcspCron() and
 * tlsOcspInfo() call tlsCrlCron() and tlsCrlInfo(), OCSP REFRESH tlsCrlRefresh().
 *
 * Threads: main thread only.
 */

#include "server.h"
#include "tls_ocsp_fetch.h"

/* Valkey 8.1 (VALKEY_VERSION=8.1.1): a robj's value is its ptr field; 9.0
 * made it private behind objectGetVal(). */
#if VALKEY_VERSION_NUM < 0x00090000
#define objectGetVal(o) ((o)->ptr)
#endif

#if defined(USE_OPENSSL) && USE_OPENSSL == 2 /* BUILD_MODULE */
#define OCSP_UNAVAILABLE "OCSP stapling needs the TLS module: load valkey-tls.so at startup (loadmodule)"
#else
#define OCSP_UNAVAILABLE "OCSP stapling needs a server built with TLS (BUILD_TLS=yes or BUILD_TLS=module)"
#endif

static const tlsOcspStapler *stapler = NULL;

void tlsOcspRegisterStapler(const tlsOcspStapler *s) {
    stapler = s;
}

static int settingChanged(tlsOcspSetting setting, const char **err) {
    if (stapler) {
        stapler->setting_changed(setting);
        return 1;
    }
    if (setting == TLS_OCSP_SETTING_STAPLING && server.tls_ocsp_config.enabled) {
        *err = OCSP_UNAVAILABLE;
        return 0;
    }
    return 1;
}

int tlsOcspApplyStapling(const char **err) {
    return settingChanged(TLS_OCSP_SETTING_STAPLING, err);
}

int tlsOcspApplyResponder(const char **err) {
    return settingChanged(TLS_OCSP_SETTING_RESPONDER, err);
}

int tlsOcspApplySource(const char **err) {
    return settingChanged(TLS_OCSP_SETTING_SOURCE, err);
}

/* The schedule settings time the CRL fetches too. */
int tlsOcspApplySchedule(const char **err) {
    tlsCrlScheduleChanged();
    return settingChanged(TLS_OCSP_SETTING_SCHEDULE, err);
}

void tlsOcspCron(void) {
    static int warned = 0;
    ocspProxyForgetReplaced();
    if (stapler) {
        stapler->cron();
    } else if (server.tls_ocsp_config.enabled && !warned) {
        /* Set in the config file (CONFIG SET refuses it): once, at startup. */
        serverLog(LL_WARNING, "tls-ocsp-stapling yes has no effect: " OCSP_UNAVAILABLE);
        warned = 1;
    }
    tlsCrlCron();
}

sds tlsOcspInfo(sds info) {
    if (stapler)
        info = stapler->info(info);
    else
        info = sdscatprintf(info, "tls_ocsp_stapling:%s\r\ntls_ocsp_status:unavailable\r\n",
                            server.tls_ocsp_config.enabled ? "enabled" : "disabled");
    return tlsCrlInfo(info);
}

void tlsOcspShutdown(void) {
    if (stapler) stapler->shutdown();
}

void ocspCommand(client *c) {
    if (c->argc == 2 && !strcasecmp(objectGetVal(c->argv[1]), "help")) {
        const char *help[] = {
            "REFRESH",
            "    Fetch the OCSP response for the server certificate now (or read tls-ocsp-response-file",
            "    again), and the CRLs of tls-crl-urls (and read tls-crl-file again). Replies at once;",
            "    the outcome shows in INFO tls and the log.",
            NULL};
        addReplyHelp(c, help);
    } else if (c->argc == 2 && !strcasecmp(objectGetVal(c->argv[1]), "refresh")) {
        /* One command refreshes all revocation data the server keeps: with
         * stapling off, the CRLs alone. */
        int crls = tlsCrlRefresh();
        if (stapler && (server.tls_ocsp_config.enabled || !crls))
            stapler->refresh_command(c);
        else if (crls)
            addReply(c, shared.ok);
        else
            addReplyError(c, OCSP_UNAVAILABLE);
    } else {
        addReplySubcommandSyntaxError(c);
    }
}
