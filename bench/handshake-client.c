/*
 * Full TLS handshakes per second against two ports, side by side.
 *
 *   handshake-client [-c CERT -k KEY] [-p] [-l LABEL_ON,LABEL_OFF] CAFILE PORT_ON PORT_OFF ROUNDS COUNT
 *
 * Every handshake is a new TCP connection and a new SSL object with no session
 * to resume (client session cache off, no tickets), asking for certificate
 * status (status_request). After the handshake one PING/PONG proves the server
 * finished its side, then the connection is closed with an RST (SO_LINGER 0)
 * so tens of thousands of connections leave no TIME_WAIT behind.
 *
 * PORT_ON must staple on every handshake (checked; the first staple is also
 * parsed and verified against CAFILE), PORT_OFF must never staple. With -p
 * (plain) no handshake asks for certificate status and neither port may
 * staple: the two servers differ in something else (bench/crl-handshakes).
 * -c CERT -k KEY presents a client certificate in every handshake
 * (tls-auth-clients yes); -l names the two sides in the round lines (default
 * on,off; the RESULT keys stay *_on for PORT_ON and *_off for PORT_OFF). Rounds of
 * COUNT handshakes alternate ON,OFF / OFF,ON (ABBA) after a warm-up of 200
 * handshakes per side. Prints one line per round and, last, a RESULT line:
 *
 *   RESULT median_on=... median_off=... ratio=... paired_ratio=... (quartiles)
 *          on_handshakes=N off_handshakes=N client_cpu_us_on=... client_cpu_us_off=...
 *
 * client_cpu_us_* is the client's own CPU time per measured handshake.
 * ratio is median(on)/median(off); paired_ratio is the median of the per-round
 * on/off ratios (each pair ran back to back, so it cancels slow drift).
 *
 * Build: cc -O2 -o handshake-client handshake-client.c -lssl -lcrypto
 */
#define CLIENT_NAME "handshake-client"
#include "bench-client.h"

#include <time.h>
#include <unistd.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

static SSL_CTX *ctx;
static long on_handshakes, off_handshakes;
static int staple_checked;
static int plain; /* -p: no status request, no staple from either port */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parse and verify the stapled response once: successful, signed by someone
 * the CA vouches for, about the leaf the server presented, status good. */
static void check_staple(SSL *ssl, const unsigned char *der, long len) {
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, len);
    if (!resp) die("staple is not an OCSP response");
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) die("staple: responder status not successful");
    OCSP_BASICRESP *basic = OCSP_response_get1_basic(resp);
    if (!basic) die("staple: no basic response");
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl); /* leaf first on the client side */
    if (!chain || sk_X509_num(chain) < 2) die("staple: server sent no issuer to check against");
    if (OCSP_basic_verify(basic, chain, SSL_CTX_get_cert_store(ctx), 0) != 1) die("staple: signature does not verify");
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, sk_X509_value(chain, 0), sk_X509_value(chain, 1));
    int status = -1, reason;
    ASN1_GENERALIZEDTIME *thisupd, *nextupd, *rev;
    if (!id || !OCSP_resp_find_status(basic, id, &status, &reason, &rev, &thisupd, &nextupd))
        die("staple: no answer about the server certificate");
    if (status != V_OCSP_CERTSTATUS_GOOD) die("staple: certificate status is not good");
    printf("staple: %ld bytes, verified, status good; protocol %s, cipher %s\n", len, SSL_get_version(ssl),
           SSL_get_cipher_name(ssl));
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
}

/* One full handshake + PING on a fresh connection; side 1 is PORT_ON, which
 * must staple unless plain. */
static void handshake(int port, int side) {
    int expect_staple = side && !plain;
    int fd = connect_loopback(port);
    SSL *ssl = SSL_new(ctx);
    if (!ssl) die("SSL_new");
    SSL_set_fd(ssl, fd);
    if (!plain) SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (SSL_connect(ssl) != 1) die("handshake failed");
    if (SSL_session_reused(ssl)) die("session was resumed; wanted a full handshake");

    const unsigned char *der = NULL;
    long len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    int stapled = len > 0 && der != NULL;
    if (stapled != expect_staple) die(expect_staple ? "no staple from the stapling server" : "unexpected staple");
    if (stapled && !staple_checked) {
        check_staple(ssl, der, len);
        staple_checked = 1;
    }

    ping_pong(ssl);

    SSL_shutdown(ssl); /* send close_notify, do not wait for the peer's */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    SSL_free(ssl);
    close(fd);
    if (side)
        on_handshakes++;
    else
        off_handshakes++;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Client CPU seconds spent in measured rounds, per side (1 = on, 0 = off). */
static double client_cpu[2];

static double round_rate(int port, int expect_staple, int count) {
    double c0 = cpu_s(), t0 = now_s();
    for (int i = 0; i < count; i++) handshake(port, expect_staple);
    double rate = count / (now_s() - t0);
    client_cpu[expect_staple] += cpu_s() - c0;
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

int main(int argc, char **argv) {
    const char *cert = NULL, *key = NULL, *label_on = "on", *label_off = "off";
    char labels[64];
    int opt;
    while ((opt = getopt(argc, argv, "c:k:pl:")) != -1) {
        switch (opt) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'p': plain = 1; break;
        case 'l': {
            snprintf(labels, sizeof(labels), "%s", optarg);
            char *comma = strchr(labels, ',');
            if (!comma) die("-l wants LABEL_ON,LABEL_OFF");
            *comma = '\0';
            label_on = labels;
            label_off = comma + 1;
            break;
        }
        default: argc = 0;
        }
    }
    if (argc - optind != 5) {
        fprintf(stderr, "usage: %s [-c CERT -k KEY] [-p] [-l LABEL_ON,LABEL_OFF] CAFILE PORT_ON PORT_OFF ROUNDS COUNT\n",
                argv[0]);
        return 2;
    }
    argv += optind - 1; /* argv[1] is CAFILE from here on */
    int port_on = atoi(argv[2]), port_off = atoi(argv[3]), rounds = atoi(argv[4]), count = atoi(argv[5]);
    if (rounds < 1 || count < 1) die("ROUNDS and COUNT must be positive");

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new");
    if (SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1) die("cannot load CAFILE");
    use_client_cert(ctx, cert, key);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

    /* Warm-up, not counted in the rates (but counted in the handshake totals). */
    round_rate(port_on, 1, 200);
    round_rate(port_off, 0, 200);

    client_cpu[0] = client_cpu[1] = 0; /* measured rounds only */
    double *on = calloc(rounds, sizeof(double)), *off = calloc(rounds, sizeof(double));
    double *pair = calloc(rounds, sizeof(double)); /* on/off within each round */
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            on[r] = round_rate(port_on, 1, count);
            off[r] = round_rate(port_off, 0, count);
        } else {
            off[r] = round_rate(port_off, 0, count);
            on[r] = round_rate(port_on, 1, count);
        }
        pair[r] = on[r] / off[r];
        printf("round %2d  %s %8.1f/s  %s %8.1f/s  %s/%s %.3f\n", r + 1, label_on, on[r], label_off, off[r], label_on,
               label_off, pair[r]);
        fflush(stdout);
    }
    double m_on = quantile(on, rounds, 0.5), m_off = quantile(off, rounds, 0.5), m_pair = quantile(pair, rounds, 0.5);
    printf("RESULT median_on=%.1f median_off=%.1f ratio=%.4f paired_ratio=%.4f "
           "min_on=%.1f q1_on=%.1f q3_on=%.1f max_on=%.1f min_off=%.1f q1_off=%.1f q3_off=%.1f max_off=%.1f "
           "on_handshakes=%ld off_handshakes=%ld client_cpu_us_on=%.1f client_cpu_us_off=%.1f\n",
           m_on, m_off, m_on / m_off, m_pair, on[0], quantile(on, rounds, 0.25), quantile(on, rounds, 0.75),
           on[rounds - 1], off[0], quantile(off, rounds, 0.25), quantile(off, rounds, 0.75), off[rounds - 1],
           on_handshakes, off_handshakes, client_cpu[1] * 1e6 / ((double)rounds * count),
           client_cpu[0] * 1e6 / ((double)rounds * count));
    SSL_CTX_free(ctx);
    return 0;
}
