/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Peer verification (tls-ocsp-verify-peers): the staples of the servers we
 * connect to (replication, cluster bus, Sentinel, MIGRATE), checked by
 * tls_ocsp_check.c in the handshake, and the certificates remembered as
 * revoked, refused on incoming connections too.
 *
 * Threads: the callbacks run in whichever thread does the handshake (the
 * main thread or an I/O thread), on the handshake's own objects. Shared are
 * the counters (atomics), and the log limiter, the last failure and the set
 * of revoked certificates, under peer_mutex, held for a few stores or a
 * binary search. The main thread clears the set (ocspPeerCron) and reads
 * the counters (ocspPeerInfo).
 */

#include "server.h"

#ifdef USE_OPENSSL /* The build links this only where OpenSSL is. */

#include "anet.h"
#include "tls_ocsp_check.h"
#include "tls_ocsp_peer.h"

#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define OCSP_PEER_LOG_INTERVAL_MS (60 * 1000LL)
#define OCSP_PEER_LOG_SLOTS 64

/* SSL ex_data index holding the policy a connection was created with, so a
 * CONFIG SET meanwhile never changes a handshake under way. */
static int peer_policy_index = -1;

static atomic_llong peer_checks_ok = 0, peer_checks_failed = 0;
static pthread_mutex_t peer_mutex = PTHREAD_MUTEX_INITIALIZER;
static char peer_last_failure[NET_IP_STR_LEN + 96] = "none";
/* When each recent (peer, reason) was last logged. */
static struct {
    char key[NET_IP_STR_LEN + 72];
    mstime_t logged_at;
} peer_logged[OCSP_PEER_LOG_SLOTS];

static void peerAddress(SSL *ssl, char *buf, size_t len) {
    char ip[NET_IP_STR_LEN];
    int port, fd = SSL_get_fd(ssl);
    if (fd < 0 || anetFdToString(fd, ip, sizeof(ip), &port, 1) == -1) {
        snprintf(buf, len, "an unknown peer");
        return;
    }
    snprintf(buf, len, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Count a refused peer; log it at most once a minute per peer and reason.
 * An incoming peer is one address whatever port it comes from. */
static void peerCheckFailed(SSL *ssl, ocspError err, bool remembered, const char *detail) {
    char peer[NET_IP_STR_LEN + 8], key[sizeof(peer_logged[0].key)], reason[64];
    bool incoming = SSL_is_server(ssl);
    peerAddress(ssl, peer, sizeof(peer));
    snprintf(reason, sizeof(reason), "%s%s", ocsp_error_names[err], remembered ? " (remembered)" : "");
    const char *port = strrchr(peer, ':');
    size_t key_len = incoming && port ? (size_t)(port - peer) : strlen(peer);
    snprintf(key, sizeof(key), "%s%.*s %s", incoming ? "from " : "", (int)key_len, peer, reason);
    mstime_t now = ocspClockMs(); /* An I/O thread may run this. */
    bool log = true;
    int slot = 0;
    atomic_fetch_add_explicit(&peer_checks_failed, 1, memory_order_relaxed);
    pthread_mutex_lock(&peer_mutex);
    snprintf(peer_last_failure, sizeof(peer_last_failure), "%s %s%s", reason, peer, incoming ? " (incoming)" : "");
    for (int i = 0; i < OCSP_PEER_LOG_SLOTS; i++) {
        if (!strcmp(peer_logged[i].key, key)) {
            slot = i;
            log = now - peer_logged[i].logged_at >= OCSP_PEER_LOG_INTERVAL_MS;
            break;
        }
        if (peer_logged[i].logged_at < peer_logged[slot].logged_at) slot = i;
    }
    if (log) {
        memcpy(peer_logged[slot].key, key, sizeof(key));
        peer_logged[slot].logged_at = now;
    }
    pthread_mutex_unlock(&peer_mutex);
    if (log)
        serverLog(LL_WARNING, "OCSP: refusing the TLS connection %s %s: %s (%s)", incoming ? "from" : "to", peer,
                  reason, detail);
}

/* Certificates whose own staple said revoked when we connected to their
 * server. Revocation sticks: such a certificate is refused on outgoing
 * connections under either policy and on incoming ones (a cluster node's bus
 * link always presents one, so a revoked node is cut off both ways and its
 * pings stop), whether or not its server staples later, until a valid staple
 * for it says good (a certificateHold lifted) or tls-ocsp-verify-peers is set
 * to no. A handshake without a staple never changes the set.
 *
 * Nothing is ever evicted: an entry costs 32 bytes, and adding one takes a
 * certificate our CA issued, its key, and a response our CA signed saying it
 * is revoked, so the set grows only as the CA revokes. Sorted SHA-256
 * fingerprints under peer_mutex; revoked_peers_count lets handshakes skip the
 * lookup while the set is empty. */
static unsigned char (*revoked_peers)[SHA256_DIGEST_LENGTH] = NULL;
static size_t revoked_peers_used = 0, revoked_peers_size = 0;
static atomic_size_t revoked_peers_count = 0;

static bool certFingerprint(X509 *cert, unsigned char *fingerprint) {
    unsigned int len = 0;
    return cert && X509_digest(cert, EVP_sha256(), fingerprint, &len) == 1 && len == SHA256_DIGEST_LENGTH;
}

/* Where the fingerprint is, or would be inserted, in the sorted set; *found
 * says which. peer_mutex held. */
static size_t revokedPeerSlot(const unsigned char *fingerprint, bool *found) {
    size_t low = 0, high = revoked_peers_used;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int cmp = memcmp(revoked_peers[mid], fingerprint, SHA256_DIGEST_LENGTH);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            low = mid + 1;
        else
            high = mid;
    }
    *found = false;
    return low;
}

static void revokedPeerRemember(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!certFingerprint(cert, fingerprint)) return;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    size_t slot = revokedPeerSlot(fingerprint, &found);
    if (!found) {
        if (revoked_peers_used == revoked_peers_size) {
            revoked_peers_size = revoked_peers_size ? revoked_peers_size * 2 : 16;
            revoked_peers = zrealloc(revoked_peers, revoked_peers_size * SHA256_DIGEST_LENGTH);
        }
        memmove(revoked_peers[slot + 1], revoked_peers[slot], (revoked_peers_used - slot) * SHA256_DIGEST_LENGTH);
        memcpy(revoked_peers[slot], fingerprint, SHA256_DIGEST_LENGTH);
        atomic_store(&revoked_peers_count, ++revoked_peers_used);
    }
    pthread_mutex_unlock(&peer_mutex);
}

static void revokedPeerForget(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!atomic_load(&revoked_peers_count) || !certFingerprint(cert, fingerprint)) return;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    size_t slot = revokedPeerSlot(fingerprint, &found);
    if (found) {
        memmove(revoked_peers[slot], revoked_peers[slot + 1], (revoked_peers_used - slot - 1) * SHA256_DIGEST_LENGTH);
        atomic_store(&revoked_peers_count, --revoked_peers_used);
    }
    pthread_mutex_unlock(&peer_mutex);
}

static bool revokedPeerKnown(X509 *cert) {
    unsigned char fingerprint[SHA256_DIGEST_LENGTH];
    if (!atomic_load(&revoked_peers_count) || !certFingerprint(cert, fingerprint)) return false;
    bool found;
    pthread_mutex_lock(&peer_mutex);
    revokedPeerSlot(fingerprint, &found);
    pthread_mutex_unlock(&peer_mutex);
    return found;
}

static void revokedPeersClear(void) {
    if (!atomic_load(&revoked_peers_count)) return;
    pthread_mutex_lock(&peer_mutex);
    zfree(revoked_peers);
    revoked_peers = NULL;
    revoked_peers_used = revoked_peers_size = 0;
    atomic_store(&revoked_peers_count, 0);
    pthread_mutex_unlock(&peer_mutex);
}

#define OCSP_REMEMBERED_DETAIL "its certificate's own staple said revoked when we connected to it"

/* Verify callback of every context: an incoming connection presenting a
 * certificate known to be revoked fails its handshake. */
static int incomingVerifyCallback(int preverify_ok, X509_STORE_CTX *store) {
    if (!preverify_ok || X509_STORE_CTX_get_error_depth(store) != 0) return preverify_ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (!ssl || !SSL_is_server(ssl) || !cert || !revokedPeerKnown(cert)) return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
    peerCheckFailed(ssl, OCSP_ERR_REVOKED, true, OCSP_REMEMBERED_DETAIL);
    return 0;
}

/* Client side of the status callback: the handshake goes on only when the
 * peer's staple meets the connection's policy, and its certificate is not
 * remembered as revoked unless this very staple is valid and says good. */
int ocspPeerStatusCallback(SSL *ssl) {
    int policy = (int)(intptr_t)SSL_get_ex_data(ssl, peer_policy_index);
    if (policy == TLS_OCSP_VERIFY_PEERS_NO) return 1;
    char detail[OCSP_DETAIL_LEN] = "";
    ocspResponseInfo info = {0};
    X509 *cert = ocspPeerCertificate(ssl);
    ocspError err = ocspCheckPeerStaple(ssl, policy, &info, detail, sizeof(detail));
    bool stapled_good = err == OCSP_ERR_NONE && info.bytes > 0 && info.cert_status == V_OCSP_CERTSTATUS_GOOD;
    if (stapled_good) {
        revokedPeerForget(cert);
        atomic_fetch_add_explicit(&peer_checks_ok, 1, memory_order_relaxed);
        return 1;
    }
    if (err == OCSP_ERR_REVOKED) {
        revokedPeerRemember(cert);
    } else if (revokedPeerKnown(cert)) {
        peerCheckFailed(ssl, OCSP_ERR_REVOKED, true, OCSP_REMEMBERED_DETAIL);
        return 0;
    }
    if (err == OCSP_ERR_NONE) {
        atomic_fetch_add_explicit(&peer_checks_ok, 1, memory_order_relaxed);
        return 1;
    }
    peerCheckFailed(ssl, err, false, detail);
    return 0;
}

void ocspPeerSetupContext(SSL_CTX *ctx) {
    if (peer_policy_index == -1) peer_policy_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), incomingVerifyCallback);
}

/* The connection keeps the policy it was created with, so that a CONFIG
 * SET meanwhile never changes a handshake under way. */
void ocspPeerSetupConnection(SSL *ssl, int policy) {
    if (policy == TLS_OCSP_VERIFY_PEERS_NO || peer_policy_index == -1) return;
    SSL_set_ex_data(ssl, peer_policy_index, (void *)(intptr_t)policy);
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
}

/* tls-ocsp-verify-peers no forgets every certificate remembered as revoked. */
void ocspPeerCron(void) {
    if (server.tls_ocsp_config.verify_peers == TLS_OCSP_VERIFY_PEERS_NO) revokedPeersClear();
}

sds ocspPeerInfo(sds info) {
    char last_failure[sizeof(peer_last_failure)];
    pthread_mutex_lock(&peer_mutex);
    memcpy(last_failure, peer_last_failure, sizeof(last_failure));
    pthread_mutex_unlock(&peer_mutex);
    return sdscatprintf(info,
                        "tls_ocsp_peer_checks_ok:%lld\r\n"
                        "tls_ocsp_peer_checks_failed:%lld\r\n"
                        "tls_ocsp_peer_last_failure:%s\r\n"
                        "tls_ocsp_peers_revoked_remembered:%zu\r\n",
                        atomic_load_explicit(&peer_checks_ok, memory_order_relaxed),
                        atomic_load_explicit(&peer_checks_failed, memory_order_relaxed), last_failure,
                        atomic_load(&revoked_peers_count));
}

#endif
