/*
 * Full TLS handshakes per second of a client that checks the server's OCSP
 * staple (tls-ocsp-verify-peers yes) versus one that does not ask for it
 * (tls-ocsp-verify-peers no), against one stapling server, side by side.
 *
 *   peer-verify-client CAFILE PORT ROUNDS COUNT CHECKS [SERVER_PID]
 *
 * Built together with src/tls_ocsp_check.c (-DUSE_OPENSSL=1), so the check is
 * the very code valkey-server runs on its outgoing connections and valkey-cli
 * runs for --tls-ocsp-verify yes: ocspCheckPeerStaple(ssl, TLS_OCSP_VERIFY_PEERS_YES)
 * in the status callback, the handshake failing unless it returns
 * OCSP_ERR_NONE (as tls_ocsp.c's peerStatusCallback does).
 *
 * Two modes, same SSL_CTX (with the status callback set, as the server's
 * client context has), same server port:
 *   verify: SSL_set_tlsext_status_type(ocsp) + the policy in the SSL's ex data;
 *           the callback must run and pass once per handshake (it also adds
 *           up the thread CPU time of its ocspCheckPeerStaple calls: two
 *           clock reads, about 1 us, on this side only)
 *   plain:  no status request, so no staple and no callback (checked)
 *
 * Every handshake is a new TCP connection and a new SSL object with no session
 * to resume (client session cache off, no tickets); one PING/PONG proves the
 * server finished its side; the connection is closed with an RST (SO_LINGER 0)
 * so that tens of thousands of connections leave no TIME_WAIT behind.
 *
 * Rounds of COUNT handshakes alternate verify,plain / plain,verify (ABBA)
 * after a warm-up of 200 handshakes per side. Before that, one handshake per
 * side counts the bytes on the wire (a BIO callback on the socket BIO).
 * Last, on one SSL kept open after a verify handshake, CHECKS calls each
 * (in 9 batches, interleaved; the median batch reported) of: ocspCheckPeerStaple; its decoding
 * part (d2i_OCSP_RESPONSE + OCSP_response_get1_basic); OCSP_basic_verify on a
 * freshly decoded response (decoding subtracted); one RSA signature check
 * alone (X509_verify of the delegated responder's certificate, or of the
 * server's if the CA signed the response itself, with the issuer's key).
 *
 * SERVER_PID (optional): the server's CPU time (/proc/PID/task/ * /schedstat,
 * ns) is read at each round's start and end, outside the client's timing, and
 * summed per side.
 *
 * Output: "wire:" and "round" lines, then one RESULT line of
 * key=value pairs (see the printf at the end).
 */
#define CLIENT_NAME "peer-verify-client"
#include "bench-client.h"

#include <dirent.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "tls_ocsp_check.h"

enum { PLAIN = 0, VERIFY = 1 };

static SSL_CTX *ctx;
static int policy_index = -1;
static long handshakes[2];
static long checks_ok, checks_failed, unexpected_callbacks;
static ocspError last_err;
static char last_detail[OCSP_DETAIL_LEN];
static pid_t server_pid;
static double check_cpu; /* CPU seconds inside ocspCheckPeerStaple in the callback */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The server's CPU time so far in seconds (all its threads), or 0. */
static double server_cpu_s(void) {
    if (!server_pid) return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)server_pid);
    DIR *d = opendir(path);
    if (!d) die("cannot read the server's /proc/PID/task");
    unsigned long long total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char file[320];
        snprintf(file, sizeof(file), "/proc/%d/task/%s/schedstat", (int)server_pid, e->d_name);
        FILE *f = fopen(file, "r");
        if (!f) continue; /* a thread that just ended */
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1) total += ns;
        fclose(f);
    }
    closedir(d);
    return total / 1e9;
}

/* The status callback: tls_ocsp.c's peerStatusCallback without the server's
 * counters and log. */
static int status_callback(SSL *ssl, void *arg) {
    (void)arg;
    int policy = (int)(intptr_t)SSL_get_ex_data(ssl, policy_index);
    if (policy == 0) { /* "no": never asked for status, so never called */
        unexpected_callbacks++;
        return 1;
    }
    ocspResponseInfo info = {0};
    char detail[OCSP_DETAIL_LEN] = "";
    double c0 = thread_cpu_s();
    ocspError err = ocspCheckPeerStaple(ssl, policy, &info, detail, sizeof(detail));
    check_cpu += thread_cpu_s() - c0;
    if (err == OCSP_ERR_NONE) {
        checks_ok++;
        return 1;
    }
    checks_failed++;
    last_err = err;
    snprintf(last_detail, sizeof(last_detail), "%s", detail);
    return 0;
}

/* Bytes through the socket BIO (counted only on the handshakes that ask). */
static long wire_in, wire_out;

static long count_bytes(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                        size_t *processed) {
    (void)b, (void)argp, (void)len, (void)argi, (void)argl;
    if (ret > 0 && processed) {
        if (oper == (BIO_CB_READ | BIO_CB_RETURN)) wire_in += (long)*processed;
        if (oper == (BIO_CB_WRITE | BIO_CB_RETURN)) wire_out += (long)*processed;
    }
    return ret;
}

static void close_rst(SSL *ssl, int fd) {
    SSL_shutdown(ssl); /* send close_notify, do not wait for the peer's */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    SSL_free(ssl);
    close(fd);
}

/* One full handshake + PING on a fresh connection. With keep, returns the
 * SSL still open (its fd in *fd_out) instead of closing it. */
static SSL *handshake(int port, int mode, int count_wire, int keep, int *fd_out) {
    int fd = connect_loopback(port);
    SSL *ssl = SSL_new(ctx);
    if (!ssl) die("SSL_new");
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (mode == VERIFY) {
        /* tls_ocsp.c's tlsOcspSetupClientConnection for policy yes */
        SSL_set_ex_data(ssl, policy_index, (void *)(intptr_t)TLS_OCSP_VERIFY_PEERS_YES);
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    }
    if (count_wire) {
        wire_in = wire_out = 0;
        BIO_set_callback_ex(SSL_get_rbio(ssl), count_bytes);
    }
    long ok_before = checks_ok;
    if (SSL_connect(ssl) != 1) {
        if (checks_failed) {
            fprintf(stderr, CLIENT_NAME ": the staple check failed %ld time(s): %s (%s)\n", checks_failed,
                    ocsp_error_names[last_err], last_detail);
        }
        die("handshake failed");
    }
    if (SSL_session_reused(ssl)) die("session was resumed; wanted a full handshake");
    if (checks_ok != ok_before + (mode == VERIFY)) die("the status callback did not pass exactly once");
    if (unexpected_callbacks) die("status callback called on a handshake that asked for no status");
    if (mode == PLAIN) {
        const unsigned char *der = NULL;
        long len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
        if (len > 0 && der) die("a staple arrived without a status request");
    }

    ping_pong(ssl);
    handshakes[mode]++;
    if (keep) {
        *fd_out = fd;
        return ssl;
    }
    close_rst(ssl, fd);
    return NULL;
}

/* Client and server CPU seconds spent in measured rounds, per side. */
static double client_cpu[2], server_cpu[2];

static double round_rate(int port, int mode, int count) {
    double s0 = server_cpu_s();
    double c0 = cpu_s(), t0 = now_s();
    for (int i = 0; i < count; i++) handshake(port, mode, 0, 0, NULL);
    double rate = count / (now_s() - t0);
    client_cpu[mode] += cpu_s() - c0;
    server_cpu[mode] += server_cpu_s() - s0;
    return rate;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q (0..1) of v, linear between ranks; sorts v. */
static double quantile(double *v, int n, double q) {
    qsort(v, n, sizeof(*v), cmp_double);
    double pos = q * (n - 1);
    int lo = (int)pos;
    return lo + 1 < n ? v[lo] + (pos - lo) * (v[lo + 1] - v[lo]) : v[lo];
}

#define BATCHES 9

/* What one call of ocspCheckPeerStaple costs, and where, in CPU microseconds
 * per call (median of BATCHES batches), on an SSL kept open after a verify
 * handshake. */
typedef struct {
    double check;  /* ocspCheckPeerStaple itself */
    double decode; /* d2i_OCSP_RESPONSE + OCSP_response_get1_basic (+ frees): the
                    * response and the responder certificate inside it */
    double verify; /* OCSP_basic_verify on a freshly decoded response (the
                    * signature, the responder's chain), decoding excluded */
    double rsa;    /* one signature check alone: X509_verify of the responder
                    * certificate (or the server's) with the issuer's key */
    int calls, signer_certs, delegated;
} checkCost;

typedef struct {
    SSL *ssl;
    const unsigned char *der;
    long len;
    X509_STORE *store;
    X509 *signer, *issuer;
} timingCtx;

static void step_check(timingCtx *t) {
    ocspResponseInfo info = {0};
    char detail[OCSP_DETAIL_LEN];
    if (ocspCheckPeerStaple(t->ssl, TLS_OCSP_VERIFY_PEERS_YES, &info, detail, sizeof(detail)) != OCSP_ERR_NONE)
        die("ocspCheckPeerStaple failed after the handshake");
}

static OCSP_BASICRESP *decode_basic(timingCtx *t, OCSP_RESPONSE **resp) {
    const unsigned char *p = t->der;
    *resp = d2i_OCSP_RESPONSE(NULL, &p, t->len);
    OCSP_BASICRESP *basic = *resp ? OCSP_response_get1_basic(*resp) : NULL;
    if (!basic) die("cannot decode the staple");
    return basic;
}

static void step_decode(timingCtx *t) {
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP_free(decode_basic(t, &resp));
    OCSP_RESPONSE_free(resp);
}

static void step_decode_verify(timingCtx *t) {
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP *basic = decode_basic(t, &resp);
    if (OCSP_basic_verify(basic, SSL_get_peer_cert_chain(t->ssl), t->store, 0) != 1) die("OCSP_basic_verify failed");
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
}

static void step_rsa(timingCtx *t) {
    if (X509_verify(t->signer, X509_get0_pubkey(t->issuer)) != 1) die("X509_verify of the responder certificate failed");
}

/* CPU microseconds per call of each step: BATCHES rounds, each timing one
 * batch of per calls of every step in turn (so a slow spell of the VM hits
 * all steps alike); the median batch of each step. */
enum { STEPS = 4 };
static void per_call_us(void (*const step[STEPS])(timingCtx *), timingCtx *t, int per, double us[STEPS]) {
    double batch[STEPS][BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        for (int s = 0; s < STEPS; s++) {
            double c0 = thread_cpu_s();
            for (int i = 0; i < per; i++) step[s](t);
            batch[s][b] = (thread_cpu_s() - c0) * 1e6 / per;
        }
    }
    for (int s = 0; s < STEPS; s++) us[s] = quantile(batch[s], BATCHES, 0.5);
}

static void time_checks(int port, int checks, checkCost *cost) {
    int fd;
    timingCtx t = {0};
    t.ssl = handshake(port, VERIFY, 0, 1, &fd);
    t.len = SSL_get_tlsext_status_ocsp_resp(t.ssl, &t.der);
    STACK_OF(X509) *verified = SSL_get0_verified_chain(t.ssl);
    if (t.len <= 0 || sk_X509_num(verified) < 2) die("no staple or no issuer to time the check with");
    t.issuer = sk_X509_value(verified, 1);
    /* The store ocspCheckPeerStaple builds: the issuer, partial chains. */
    t.store = X509_STORE_new();
    if (!t.store || X509_STORE_add_cert(t.store, t.issuer) != 1) die("X509_STORE");
    X509_STORE_set_flags(t.store, X509_V_FLAG_PARTIAL_CHAIN);
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP *basic = decode_basic(&t, &resp);
    /* For scale, one RSA signature check with the issuer's key: of the
     * delegated responder's certificate if the staple carries one, else of
     * the server's certificate. */
    const STACK_OF(X509) *inside = OCSP_resp_get0_certs(basic);
    cost->signer_certs = sk_X509_num(inside);
    t.signer = SSL_get0_peer_certificate(t.ssl);
    for (int i = 0; i < cost->signer_certs; i++) {
        X509 *c = sk_X509_value(inside, i);
        if (X509_cmp(c, t.issuer) != 0 && X509_check_issued(t.issuer, c) == X509_V_OK) {
            t.signer = c;
            cost->delegated = 1;
        }
    }

    int per = checks / BATCHES > 0 ? checks / BATCHES : 1;
    cost->calls = per * BATCHES;
    void (*const step[STEPS])(timingCtx *) = {step_check, step_decode, step_decode_verify, step_rsa};
    double us[STEPS];
    per_call_us(step, &t, per, us);
    cost->check = us[0];
    cost->decode = us[1];
    cost->verify = us[2] - us[1];
    cost->rsa = us[3];

    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    X509_STORE_free(t.store);
    close_rst(t.ssl, fd);
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s CAFILE PORT ROUNDS COUNT CHECKS [SERVER_PID]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), rounds = atoi(argv[3]), count = atoi(argv[4]), checks = atoi(argv[5]);
    if (argc == 7) server_pid = (pid_t)atoi(argv[6]);
    if (rounds < 1 || count < 1 || checks < 1) die("ROUNDS, COUNT and CHECKS must be positive");

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new");
    if (SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1) die("cannot load CAFILE");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_tlsext_status_cb(ctx, status_callback); /* as tlsOcspSetupClientContext */
    policy_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (policy_index < 0) die("SSL_get_ex_new_index");

    /* Bytes on the wire, one handshake + PING each (warm-up, not timed). */
    long in[2], out[2];
    int staple_len = 0;
    for (int mode = PLAIN; mode <= VERIFY; mode++) {
        int fd;
        SSL *ssl = handshake(port, mode, 1, 1, &fd);
        in[mode] = wire_in;
        out[mode] = wire_out;
        if (mode == VERIFY) {
            const unsigned char *der = NULL;
            staple_len = (int)SSL_get_tlsext_status_ocsp_resp(ssl, &der);
            printf("wire: protocol %s, cipher %s\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
        }
        close_rst(ssl, fd);
    }
    printf("wire: bytes per handshake+PING, server->client: verify %ld, plain %ld (+%ld; staple %d bytes); "
           "client->server: verify %ld, plain %ld (+%ld)\n",
           in[VERIFY], in[PLAIN], in[VERIFY] - in[PLAIN], staple_len, out[VERIFY], out[PLAIN],
           out[VERIFY] - out[PLAIN]);

    /* Warm-up, not counted in the rates (but counted in the handshake totals). */
    round_rate(port, VERIFY, 200);
    round_rate(port, PLAIN, 200);

    client_cpu[0] = client_cpu[1] = server_cpu[0] = server_cpu[1] = check_cpu = 0; /* measured rounds only */
    double *v = calloc(rounds, sizeof(double)), *pl = calloc(rounds, sizeof(double));
    double *pair = calloc(rounds, sizeof(double)); /* verify/plain within each round */
    if (!v || !pl || !pair) die("out of memory");
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            v[r] = round_rate(port, VERIFY, count);
            pl[r] = round_rate(port, PLAIN, count);
        } else {
            pl[r] = round_rate(port, PLAIN, count);
            v[r] = round_rate(port, VERIFY, count);
        }
        pair[r] = v[r] / pl[r];
        printf("round %3d  verify %8.1f/s  plain %8.1f/s  verify/plain %.3f\n", r + 1, v[r], pl[r], pair[r]);
        fflush(stdout);
    }

    double check_cpu_rounds = check_cpu;
    checkCost cost = {0};
    time_checks(port, checks, &cost);
    if (checks_failed || unexpected_callbacks) die("a staple check failed"); /* already fatal; belt and braces */

    double n = (double)rounds * count;
    double m_v = quantile(v, rounds, 0.5), m_p = quantile(pl, rounds, 0.5), m_pair = quantile(pair, rounds, 0.5);
    printf("RESULT median_verify=%.1f median_plain=%.1f ratio=%.4f paired_ratio=%.4f "
           "min_verify=%.1f q1_verify=%.1f q3_verify=%.1f max_verify=%.1f "
           "min_plain=%.1f q1_plain=%.1f q3_plain=%.1f max_plain=%.1f "
           "verify_handshakes=%ld plain_handshakes=%ld checks_ok=%ld checks_failed=%ld "
           "client_cpu_us_verify=%.1f client_cpu_us_plain=%.1f server_cpu_us_verify=%.1f server_cpu_us_plain=%.1f "
           "check_in_handshake_us=%.1f check_us=%.1f decode_us=%.1f basic_verify_us=%.1f rsa_verify_us=%.1f check_calls=%d signer_certs=%d delegated=%d "
           "wire_in_verify=%ld wire_in_plain=%ld staple_bytes=%d\n",
           m_v, m_p, m_v / m_p, m_pair, v[0], quantile(v, rounds, 0.25), quantile(v, rounds, 0.75), v[rounds - 1],
           pl[0], quantile(pl, rounds, 0.25), quantile(pl, rounds, 0.75), pl[rounds - 1], handshakes[VERIFY],
           handshakes[PLAIN], checks_ok, checks_failed, client_cpu[VERIFY] * 1e6 / n, client_cpu[PLAIN] * 1e6 / n,
           server_pid ? server_cpu[VERIFY] * 1e6 / n : -1.0, server_pid ? server_cpu[PLAIN] * 1e6 / n : -1.0,
           check_cpu_rounds * 1e6 / n, cost.check, cost.decode, cost.verify, cost.rsa, cost.calls, cost.signer_certs, cost.delegated, in[VERIFY], in[PLAIN],
           staple_len);
    SSL_CTX_free(ctx);
    return 0;
}
