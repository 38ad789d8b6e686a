/*
 * PING round-trip latency over persistent TLS connections to two servers,
 * measured side by side.
 *
 *   ping-client [-c CERT -k KEY] [-n CONNS] CAFILE TRIALS PINGS LABEL_A PORT_A LABEL_B PORT_B
 *
 * CONNS TLS connections per server (default 1), opened up front, with the
 * client certificate CERT/KEY if given (tls-auth-clients yes), then a
 * warm-up of 1000 pings per side. The pings of a side go round-robin over
 * its connections, so every one stays in use (a server that closed one ends
 * the run). Each of TRIALS trials makes PINGS round trips per side,
 * interleaved ping by ping in the order A B B A A B B A ... so both sides
 * sample the same moments (and the same machine noise). A round trip
 * (SSL_write of PING until the whole "+PONG\r\n" is read) is timed with
 * CLOCK_MONOTONIC. Output, percentiles nearest-rank, times in microseconds:
 *
 *   trial i A p50 p99 max  B p50 p99 max  p99 ratio A/B
 *   RESULT label=L n=N p50_us= p99_us= p999_us= max_us= mean_us= loop_max_us=
 *          (per side, all trials pooled; loop_max_us is the server's own
 *          longest event-loop cycle over the trials, INFO debug
 *          eventloop_duration_max after a CONFIG RESETSTAT, both sent on
 *          the same connection after the warm-up)
 *   TRIALS p99_ratio_median=  max_min_A=  max_min_B=  max_median_A=  max_median_B=
 *
 * Build: cc -O2 -o ping-client ping-client.c -lssl -lcrypto -lm
 */
#define CLIENT_NAME "ping-client"
#include "bench-client.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

typedef struct {
    const char *label;
    SSL **ssl; /* CONNS connections */
    int conns, next;
    double *all; /* every measured round trip */
    long n;
    double *trial; /* this trial's round trips */
    long tn;
} side;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static SSL *open_tls(SSL_CTX *ctx, int port) {
    int fd = connect_loopback(port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (SSL_connect(ssl) != 1) die("handshake failed");
    return ssl;
}

/* One PING round trip, in microseconds. */
static double ping(SSL *ssl) {
    long long t0 = now_ns();
    ping_pong(ssl);
    return (now_ns() - t0) / 1000.0;
}

/* Send a command (inline arguments) and read a simple-string or bulk reply
 * into a malloc'd string; used outside the timed path only. */
static char *command(SSL *ssl, const char *cmd) {
    char req[256];
    int len = snprintf(req, sizeof(req), "%s\r\n", cmd);
    if (SSL_write(ssl, req, len) != len) die("write command");
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (got + 1 >= cap) buf = realloc(buf, cap *= 2);
        int n = SSL_read(ssl, buf + got, (int)(cap - got - 1));
        if (n <= 0) die("read reply");
        got += n;
        buf[got] = '\0';
        char *eol = strstr(buf, "\r\n");
        if (!eol) continue;
        if (buf[0] == '+') return buf;
        if (buf[0] != '$') die(buf);
        size_t want = (size_t)atol(buf + 1) + (eol - buf) + 4; /* header, body, CRLF */
        if (got >= want) return buf;
    }
}

/* The server's longest event-loop cycle since CONFIG RESETSTAT (us). */
static long loop_max(SSL *ssl) {
    char *info = command(ssl, "INFO debug");
    char *p = strstr(info, "eventloop_duration_max:");
    long v = p ? atol(p + strlen("eventloop_duration_max:")) : -1;
    free(info);
    return v;
}

/* The side's connections in turn. */
static SSL *next_conn(side *s) {
    SSL *ssl = s->ssl[s->next];
    s->next = (s->next + 1) % s->conns;
    return ssl;
}

static void sample(side *s) {
    double us = ping(next_conn(s));
    s->all[s->n++] = us;
    s->trial[s->tn++] = us;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, long n, double p) {
    long rank = (long)ceil(p * n);
    if (rank < 1) rank = 1;
    return v[rank - 1];
}

static double median(double *v, int n) {
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(side *s, long loop_max_us) {
    double sum = 0;
    for (long i = 0; i < s->n; i++) sum += s->all[i];
    qsort(s->all, s->n, sizeof(double), cmp_double);
    printf("RESULT label=%s n=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f loop_max_us=%ld\n",
           s->label, s->n, pct(s->all, s->n, 0.50), pct(s->all, s->n, 0.99), pct(s->all, s->n, 0.999),
           s->all[s->n - 1], sum / s->n, loop_max_us);
}

static void open_side(side *s, SSL_CTX *ctx, const char *label, int port, int conns) {
    s->label = label;
    s->conns = conns;
    s->ssl = malloc(sizeof(SSL *) * conns);
    if (!s->ssl) die("out of memory");
    for (int i = 0; i < conns; i++) s->ssl[i] = open_tls(ctx, port);
}

int main(int argc, char **argv) {
    const char *cert = NULL, *key = NULL;
    int conns = 1, opt;
    while ((opt = getopt(argc, argv, "c:k:n:")) != -1) {
        switch (opt) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': conns = atoi(optarg); break;
        default: argc = 0;
        }
    }
    if (argc - optind != 7) {
        fprintf(stderr, "usage: %s [-c CERT -k KEY] [-n CONNS] CAFILE TRIALS PINGS LABEL_A PORT_A LABEL_B PORT_B\n",
                argv[0]);
        return 2;
    }
    argv += optind - 1; /* argv[1] is CAFILE from here on */
    int trials = atoi(argv[2]), pings = atoi(argv[3]);
    if (trials < 1 || pings < 1) die("TRIALS and PINGS must be positive");
    if (conns < 1) die("CONNS must be positive");

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new");
    if (SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1) die("cannot load CAFILE");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    use_client_cert(ctx, cert, key);

    side a = {0}, b = {0};
    open_side(&a, ctx, argv[4], atoi(argv[5]), conns);
    open_side(&b, ctx, argv[6], atoi(argv[7]), conns);
    a.all = malloc(sizeof(double) * trials * pings);
    b.all = malloc(sizeof(double) * trials * pings);
    a.trial = malloc(sizeof(double) * pings);
    b.trial = malloc(sizeof(double) * pings);
    double *ratio = malloc(sizeof(double) * trials);
    double *max_a = malloc(sizeof(double) * trials), *max_b = malloc(sizeof(double) * trials);
    if (!a.all || !b.all || !a.trial || !b.trial || !ratio || !max_a || !max_b) die("out of memory");

    for (int i = 0; i < 1000; i++) { /* warm-up, not recorded */
        ping(next_conn(&a));
        ping(next_conn(&b));
    }

    /* Count the servers' event-loop cycles from here on (see loop_max). */
    free(command(a.ssl[0], "CONFIG RESETSTAT"));
    free(command(b.ssl[0], "CONFIG RESETSTAT"));

    printf("%-5s  %-28s  %-28s  %s\n", "", a.label, b.label, "p99");
    printf("%-5s  %8s %8s %10s  %8s %8s %10s  %s\n", "trial", "p50_us", "p99_us", "max_us", "p50_us", "p99_us", "max_us",
           "ratio");
    for (int t = 0; t < trials; t++) {
        a.tn = b.tn = 0;
        for (int i = 0; i < pings; i++) {
            if (i % 2 == 0) { /* A B, then B A: neither side always goes first */
                sample(&a);
                sample(&b);
            } else {
                sample(&b);
                sample(&a);
            }
        }
        qsort(a.trial, a.tn, sizeof(double), cmp_double);
        qsort(b.trial, b.tn, sizeof(double), cmp_double);
        double a99 = pct(a.trial, a.tn, 0.99), b99 = pct(b.trial, b.tn, 0.99);
        ratio[t] = a99 / b99;
        max_a[t] = a.trial[a.tn - 1];
        max_b[t] = b.trial[b.tn - 1];
        printf("%5d  %8.1f %8.1f %10.1f  %8.1f %8.1f %10.1f  %.3f\n", t + 1, pct(a.trial, a.tn, 0.5), a99, max_a[t],
               pct(b.trial, b.tn, 0.5), b99, max_b[t], ratio[t]);
        fflush(stdout);
    }
    long loop_a = loop_max(a.ssl[0]), loop_b = loop_max(b.ssl[0]);
    report(&a, loop_a);
    report(&b, loop_b);
    double rmed = median(ratio, trials), ma_med = median(max_a, trials), mb_med = median(max_b, trials);
    printf("TRIALS p99_ratio_median=%.4f max_min_A=%.1f max_min_B=%.1f max_median_A=%.1f max_median_B=%.1f\n", rmed,
           max_a[0], max_b[0], ma_med, mb_med);
    return 0;
}
