/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * tls-ocsp-verify-peers (tls_ocsp_peer.c): the staples of the servers we
 * connect to, checked in the handshake, and the certificates remembered as
 * revoked, refused both ways. BUILD_TLS=yes only.
 */

#ifndef VALKEY_TLS_OCSP_PEER_H
#define VALKEY_TLS_OCSP_PEER_H

#include "sds.h"

#include <openssl/ssl.h>

/* Any thread that creates contexts or connections (the main thread). */
void ocspPeerSetupContext(SSL_CTX *ctx);
void ocspPeerSetupConnection(SSL *ssl, int policy);
/* The client side of the status callback: 1 lets the handshake go on. Any
 * thread doing a handshake. */
int ocspPeerStatusCallback(SSL *ssl);
/* Main thread. */
void ocspPeerCron(void);
sds ocspPeerInfo(sds info);

#endif
