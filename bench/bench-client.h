/*
 * What both benchmark clients share: error exit, a loopback TCP connection,
 * one PING / +PONG exchange over TLS, and the client certificate option
 * (-c CERT -k KEY). Each client defines CLIENT_NAME.
 */
#ifndef BENCH_CLIENT_H
#define BENCH_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void die(const char *what) {
    fprintf(stderr, CLIENT_NAME ": %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A TCP connection to 127.0.0.1:port with Nagle off. */
static int connect_loopback(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) die(strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Send PING and read the whole "+PONG\r\n". */
static void ping_pong(SSL *ssl) {
    static const char cmd[] = "*1\r\n$4\r\nPING\r\n";
    char buf[16];
    int got = 0;
    if (SSL_write(ssl, cmd, sizeof(cmd) - 1) != (int)sizeof(cmd) - 1) die("write PING");
    while (got < 7) {
        int n = SSL_read(ssl, buf + got, 7 - got);
        if (n <= 0) die("read PONG");
        got += n;
    }
    if (memcmp(buf, "+PONG\r\n", 7) != 0) die("unexpected reply to PING");
}

/* -c CERT -k KEY: present that certificate (PEM, chain allowed) and key in
 * every handshake, for servers with tls-auth-clients yes. Both or neither. */
static void use_client_cert(SSL_CTX *ctx, const char *cert, const char *key) {
    if (!cert && !key) return;
    if (!cert || !key) die("-c CERT and -k KEY go together");
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) die("cannot load the client certificate (-c)");
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die("cannot load the client key (-k)");
    if (SSL_CTX_check_private_key(ctx) != 1) die("client key does not match the certificate");
}

#endif
