/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * The server side of tls-crl-file: what CONFIG SET, serverCron (through
 * tlsOcspCron) and INFO (through tlsOcspInfo) call. The CRL set itself is
 * OpenSSL code in tls_crl.c, which lives where tls.c lives (built in, or in
 * valkey-tls.so) and registers itself from tls.c's init; without it (built
 * without TLS, or the TLS module not loaded) CONFIG SET of a path is
 * refused and a path from the config file is reported once as doing
 * nothing.
 *
 * Threads: main thread only.
 */

#include "server.h"

#if defined(USE_OPENSSL) && USE_OPENSSL == 2 /* BUILD_MODULE */
#define CRL_UNAVAILABLE "CRL checks need the TLS module: load valkey-tls.so at startup (loadmodule)"
#else
#define CRL_UNAVAILABLE "CRL checks need a server built with TLS (BUILD_TLS=yes or BUILD_TLS=module)"
#endif

static const tlsCrlChecker *checker = NULL;

void tlsCrlRegisterChecker(const tlsCrlChecker *c) {
    checker = c;
}

int tlsCrlApplyFile(const char **err) {
    if (checker) return checker->file_changed(err);
    if (server.tls_crl_file) {
        *err = CRL_UNAVAILABLE;
        return 0;
    }
    return 1;
}

void tlsCrlCron(void) {
    static int warned = 0;
    if (checker) {
        checker->cron();
    } else if (server.tls_crl_file && !warned) {
        serverLog(LL_WARNING, "tls-crl-file has no effect: " CRL_UNAVAILABLE);
        warned = 1;
    }
}

sds tlsCrlInfo(sds info) {
    if (checker) return checker->info(info);
    return sdscatprintf(info, "tls_crl_status:unavailable\r\n");
}
