/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * --tls-crl FILE of valkey-cli and valkey-benchmark: the server's
 * certificate is checked against the CRLs in FILE, as the server checks its
 * clients' (tls-crl-file, tls_crl.c), the way --tls-ocsp-verify checks the
 * staple (tls_ocsp_check.c). Pure OpenSSL; built into the tools, and where
 * tls_crl.c is, which shares tlsCrlSignedByCa().
 *
 * FILE (PEM, one CRL or more, or a single DER CRL) is read and every CRL in
 * it verified when the tool builds its TLS context: signed by a CA of
 * --cacert / --cacertdir (with cRLSign if the CA has a key usage), nextUpdate
 * not before thisUpdate. Any failure refuses the connection with the reason.
 * The CRLs then go into the context's X509_STORE and OpenSSL's own CRL check
 * does the rest in the handshake (X509_V_FLAG_CRL_CHECK, _CHECK_ALL); the
 * verify callback only decides which of its findings refuse the server:
 *
 *  - the leaf must be covered: with no CRL in FILE from its issuer the
 *    connection is refused. The user asked for this one server's certificate
 *    to be checked, and a file from another CA (or from before the server
 *    moved to a new intermediate) would otherwise pass without a word; that
 *    is why X509_V_FLAG_CRL_CHECK refuses it too (as openssl s_client
 *    -crl_check and curl --crlfile do);
 *  - intermediates (and the root) are checked when FILE has a CRL from their
 *    issuer, and pass when it has none: root CAs' CRLs are seldom at hand,
 *    and the server's own tls-crl-file leaves issuers without a CRL alone;
 *  - a listed certificate, or a CRL past its nextUpdate (as a stale staple
 *    is refused by --tls-ocsp-verify), refuses the server with a message on
 *    stderr that names the serial, or the CRL.
 *
 * Threads: crlToolSetup() runs once, in the thread that makes the first TLS
 * connection (the main thread of both tools). The verify callback runs in
 * whichever thread does a handshake (valkey-benchmark --threads): it reads
 * only what setup left behind, never changed again, and the X509_STORE,
 * which OpenSSL locks.
 */

#ifndef VALKEY_TLS_CRL_CHECK_H
#define VALKEY_TLS_CRL_CHECK_H

struct ssl_ctx_st;
struct x509_store_st;
struct X509_crl_st;

/* Is one of the CA certificates of store for the CRL's issuer its signer
 * (with cRLSign if the CA has a key usage)? Any thread, with a store of its
 * own or one OpenSSL locks. */
int tlsCrlSignedByCa(struct x509_store_st *store, struct X509_crl_st *crl);

/* Load and verify the CRLs of path into ctx (whose CA locations are already
 * set) and check the server against them in every handshake. Returns 0, or
 * -1 with *err saying why (a static buffer). */
int crlToolSetup(struct ssl_ctx_st *ctx, const char *path, const char **err);

#endif
