/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Fetching over HTTP: responder and proxy URLs (parsing, and the
 * tls-ocsp-proxy directive's functions, which must show the URL without its
 * password), and the bounded HTTP/1.0 exchange of one fetch. Main thread
 * only; host names are resolved by tls_ocsp_worker.c's resolver thread.
 *
 * A fetch (ocspHttpFetch, one context per fetch) goes through ocspFetchPhase:
 *   STARTING   begun from the event loop
 *   RESOLVING  the resolver thread looks the host up; numeric addresses
 *              skip this
 *   CONNECTING non-blocking connect, each address in turn (to the proxy
 *              when there is one)
 *   SENDING    the HTTP/1.0 GET (or POST)
 *   RECEIVING  the answer, one bounded read per event, into a fixed buffer
 * and always ends in fetchFinish(), which hands the outcome to the caller
 * and frees it, or in ocspHttpFetchCancel(). One timer bounds the whole
 * fetch, and no callback does more than one read or write, so neither slow
 * nor endless answers can hold the event loop or memory.
 */

#include "server.h"
#include "tls_ocsp_fetch.h"

#include <ctype.h>

/* ------------------------------------------------------------------------- */
/* URLs, in every build (config validation needs them).                       */

void ocspUrlClear(ocspUrl *url) {
    sdsfree(url->host);
    sdsfree(url->port);
    sdsfree(url->path);
    sdsfree(url->userinfo);
    url->host = url->port = url->path = url->userinfo = NULL;
}

/* RFC 3986 percent-decoding of user information; NULL if an escape is not
 * two hex digits. */
static sds ocspPercentDecode(const char *text, size_t len) {
    sds decoded = sdsempty();
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '%') {
            decoded = sdscatlen(decoded, text + i, 1);
            continue;
        }
        char hex[3] = {0};
        if (i + 2 >= len || !isxdigit((unsigned char)text[i + 1]) || !isxdigit((unsigned char)text[i + 2])) {
            sdsfree(decoded);
            return NULL;
        }
        memcpy(hex, text + i + 1, 2);
        char byte = (char)strtol(hex, NULL, 16);
        decoded = sdscatlen(decoded, &byte, 1);
        i += 2;
    }
    return decoded;
}

/* The scheme may be in any case (tls_ocsp_fetch.h). */
int ocspUrlParse(const char *text, ocspUrl *url, int allow_userinfo, const char **err) {
    if (strlen(text) > OCSP_MAX_URL_BYTES) {
        *err = "the URL is too long (over 1024 bytes)";
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f) {
            *err = "the URL contains a space, a control character or a non-ASCII byte";
            return 0;
        }
    }
    if (strchr(text, '#')) {
        *err = "the URL has a fragment (#)";
        return 0;
    }
    if (strncasecmp(text, "https://", 8) == 0) {
        *err = "https:// is not supported: the URL must begin with http://";
        return 0;
    }
    if (strncasecmp(text, "http://", 7) != 0) {
        *err = "the URL must begin with http://";
        return 0;
    }
    const char *authority = text + 7;
    const char *path = authority + strcspn(authority, "/?#");
    const char *host = authority, *host_end, *port = NULL;
    /* The last @ ends the user information: a password may contain @. */
    const char *at = NULL;
    for (const char *p = authority; p < path; p++)
        if (*p == '@') at = p;
    if (at && !allow_userinfo) {
        *err = "user information (user@host) is not supported in the URL";
        return 0;
    }
    if (at) host = at + 1;
    if (*host == '[') {
        host++;
        host_end = memchr(host, ']', path - host);
        if (!host_end) {
            *err = "the URL has an unterminated [IPv6 address]";
            return 0;
        }
        if (host_end == host || strspn(host, "0123456789abcdefABCDEF:.") != (size_t)(host_end - host)) {
            *err = "the URL has an invalid [IPv6 address]";
            return 0;
        }
        if (host_end + 1 < path) {
            if (host_end[1] != ':') {
                *err = "the URL has characters after its [IPv6 address]";
                return 0;
            }
            port = host_end + 2;
        }
    } else {
        host_end = memchr(host, ':', path - host);
        if (host_end) {
            port = host_end + 1;
        } else {
            host_end = path;
        }
        if (port && memchr(port, ':', path - port)) {
            *err = "an IPv6 address in the URL must be in brackets";
            return 0;
        }
    }
    if (host_end == host) {
        *err = "the URL has no host";
        return 0;
    }
    long port_number = 80;
    if (port) {
        size_t digits = strspn(port, "0123456789");
        port_number = 0;
        if (port + digits == path && digits > 0 && digits <= 5) port_number = strtol(port, NULL, 10);
        if (port_number < 1 || port_number > 65535) {
            *err = "the port in the URL must be a number from 1 to 65535";
            return 0;
        }
    }
    sds userinfo = NULL;
    if (at && !(userinfo = ocspPercentDecode(authority, at - authority))) {
        *err = "the user information in the URL has an invalid %-escape";
        return 0;
    }
    url->userinfo = userinfo;
    url->host = sdsnewlen(host, host_end - host);
    url->port = sdsfromlonglong(port_number);
    url->path = *path == '/' ? sdsnew(path) : sdscat(sdsnew("/"), path);
    return 1;
}

/* tls-ocsp-proxy: http://host:port, optionally http://user:password@host:port
 * for Basic authentication. The password is never shown: CONFIG GET and the
 * log show it as ***; CONFIG REWRITE writes the real value. CONFIG SET of the
 * shown form (what CONFIG SET's rollback does with the getter's value, and
 * what an operator copying CONFIG GET does) means the value it was shown for. */

/* The value tls-ocsp-proxy held before the last change, for CONFIG SET's
 * rollback within the same command; forgotten at the next cron tick. */
static char *proxy_replaced = NULL;

/* Where the user information of an http:// URL ends (its last @), or NULL. */
static const char *proxyUserinfoEnd(const char *proxy) {
    const char *authority = proxy + 7, *at = NULL;
    for (const char *p = authority; *p && !strchr("/?#", *p); p++)
        if (*p == '@') at = p;
    return at;
}

/* The proxy as shown. Basic authentication takes the user name up to the
 * first colon of the decoded user information (RFC 7617), so everything after
 * that colon, however it was encoded, is the password. */
sds ocspProxyRedacted(const char *proxy) {
    if (!proxy) return sdsempty();
    const char *at = proxyUserinfoEnd(proxy);
    sds userinfo = at ? ocspPercentDecode(proxy + 7, at - (proxy + 7)) : NULL;
    if (!userinfo) return sdsnew(at ? "http://***" : proxy);
    char *colon = strchr(userinfo, ':');
    size_t user_len = colon ? (size_t)(colon - userinfo) : sdslen(userinfo);
    sds shown = sdsnewlen(proxy, 7);
    for (size_t i = 0; i < user_len; i++) {
        unsigned char ch = userinfo[i];
        if (isalnum(ch) || strchr("-._~!$&'()*+,;=", ch))
            shown = sdscatlen(shown, &ch, 1);
        else
            shown = sdscatprintf(shown, "%%%02X", ch);
    }
    if (colon) shown = sdscat(shown, ":***");
    shown = sdscat(shown, at);
    sdsfree(userinfo);
    return shown;
}

static int proxyShownAs(const char *proxy, const char *shown) {
    sds redacted = ocspProxyRedacted(proxy);
    int same = !strcmp(redacted, shown);
    sdsfree(redacted);
    return same;
}

/* Whether the password of the URL is the placeholder *** itself. */
static int proxyHasPlaceholder(const char *proxy) {
    const char *at = proxyUserinfoEnd(proxy);
    const char *colon = at ? memchr(proxy + 7, ':', at - (proxy + 7)) : NULL;
    return colon && at - colon - 1 == 3 && !strncmp(colon + 1, "***", 3);
}

int tlsOcspSetProxy(struct standardConfig *config, sds *argv, int argc, const char **err) {
    UNUSED(config);
    if (argc != 1) {
        *err = "wrong number of arguments";
        return 0;
    }
    char **proxy = &server.tls_ocsp_config.proxy;
    const char *value = argv[0][0] ? argv[0] : NULL;
    if (value) {
        ocspUrl url = {0};
        if (!ocspUrlParse(value, &url, 1, err)) return 0;
        int has_path = strcmp(url.path, "/") != 0;
        ocspUrlClear(&url);
        if (has_path) {
            *err = "the proxy URL must be http://[user:password@]host:port, without a path";
            return 0;
        }
        if (proxyHasPlaceholder(value)) {
            if (*proxy && proxyShownAs(*proxy, value)) {
                value = *proxy;
            } else if (proxy_replaced && proxyShownAs(proxy_replaced, value)) {
                value = proxy_replaced;
            } else {
                *err = "the password *** is how CONFIG GET shows a password (redacted), and no proxy set before "
                       "is shown so: give the real password (a literal *** is written %2A%2A%2A)";
                return 0;
            }
        }
    }
    if ((!value && !*proxy) || (value && *proxy && !strcmp(value, *proxy))) return 2;
    char *replaced = *proxy;
    *proxy = value ? zstrdup(value) : NULL;
    zfree(proxy_replaced);
    proxy_replaced = replaced;
    return 1;
}

/* CONFIG SET is over (its rollback, if any, within the command that
 * needed it): the replaced value stands for nothing any more. */
void ocspProxyForgetReplaced(void) {
    zfree(proxy_replaced);
    proxy_replaced = NULL;
}

sds tlsOcspGetProxy(struct standardConfig *config) {
    UNUSED(config);
    return ocspProxyRedacted(server.tls_ocsp_config.proxy);
}


void tlsOcspRewriteProxy(struct standardConfig *config, const char *name, struct rewriteConfigState *state) {
    UNUSED(config);
    const char *proxy = server.tls_ocsp_config.proxy;
    if (!proxy) {
        rewriteConfigMarkAsProcessed(state, name);
        return;
    }
    sds line = sdscatfmt(sdsempty(), "%s ", name);
    line = sdscatrepr(line, proxy, strlen(proxy));
    rewriteConfigRewriteLine(state, name, line, 1);
}

int tlsOcspIsValidResponder(char *val, const char **err) {
    if (val == NULL || val[0] == '\0') return 1;
    ocspUrl url = {0};
    if (!ocspUrlParse(val, &url, 0, err)) return 0;
    ocspUrlClear(&url);
    return 1;
}

/* ------------------------------------------------------------------------- */
/* The HTTP exchange.                                                         */

#ifdef USE_OPENSSL /* BUILD_TLS=yes or module: the server side of either. */

#include "anet.h"
#include "tls_ocsp_worker.h"


#include <netdb.h>
#include <sys/socket.h>

/* A fetch: one context, driven by ae events, ended by fetchFinish(). */
typedef enum ocspFetchPhase {
    OCSP_FETCH_STARTING,   /* Waiting for the event loop to begin it. */
    OCSP_FETCH_RESOLVING,  /* The resolver looks the host up. */
    OCSP_FETCH_CONNECTING, /* A non-blocking connect is under way. */
    OCSP_FETCH_SENDING,    /* Writing the request. */
    OCSP_FETCH_RECEIVING,  /* Reading the answer. */
} ocspFetchPhase;

struct ocspHttpFetch {
    ocspFetchPhase phase;
    ocspHttpDone *done;
    void *privdata;
    sds name; /* For log lines. */
    const char *response_type;
    bool any_response_type;
    size_t max_body;
    int timeout_ms;
    long long start_timer; /* Begins the fetch from the event loop. */
    long long timeout_timer;
    char *host, *port;
    unsigned long long lookup_id; /* Our lookup with the resolver; 0: none. */
    struct addrinfo *addresses, *next_address;
    int connect_errno;
    int fd;
    int watched_mask;
    const char *method; /* Of request: "GET" or "POST". */
    bool get_refused;
    sds request;
    sds post_fallback; /* With a GET: the POST to send if it is refused. */
    size_t request_sent;
    char *buf;       /* The answer: headers, then the body. */
    size_t buf_size; /* Grown as the answer arrives, up to its bound. */
    size_t received;
    size_t body_start;        /* Offset of the body; 0 until the headers ended. */
    long long content_length; /* -1: not given, read until the peer closes. */
};
typedef struct ocspHttpFetch ocspFetch;

static void fetchConnectNext(ocspFetch *f);
static void fetchRetryWithPost(ocspFetch *f, const char *refusal);

static void fetchUnwatch(ocspFetch *f) {
    if (f->fd != -1 && f->watched_mask) aeDeleteFileEvent(server.el, f->fd, f->watched_mask);
    f->watched_mask = 0;
}

static int fetchWatch(ocspFetch *f, int mask, aeFileProc *proc) {
    fetchUnwatch(f);
    if (aeCreateFileEvent(server.el, f->fd, mask, proc, f) == AE_ERR) return 0;
    f->watched_mask = mask;
    return 1;
}

/* The one teardown: everything a fetch holds, whatever phase it is in. */
static void fetchFree(ocspFetch *f) {
    if (f->start_timer != AE_ERR) aeDeleteTimeEvent(server.el, f->start_timer);
    if (f->timeout_timer != AE_ERR) aeDeleteTimeEvent(server.el, f->timeout_timer);
    if (f->lookup_id) ocspLookupCancel(f->lookup_id);
    if (f->addresses) freeaddrinfo(f->addresses);
    fetchUnwatch(f);
    if (f->fd != -1) close(f->fd);
    sdsfree(f->name);
    zfree(f->host);
    zfree(f->port);
    sdsfree(f->request);
    sdsfree(f->post_fallback);
    zfree(f->buf);
    zfree(f);
}

void ocspHttpFetchCancel(ocspHttpFetch *fetch) {
    if (fetch) fetchFree(fetch);
}

const char *ocspHttpFetchMethod(const ocspHttpFetch *fetch) {
    return fetch->method;
}

/* Every fetch ends here or in ocspHttpFetchCancel(), exactly once. */
static void fetchFinish(ocspFetch *f, ocspError err, const char *detail) {
    ocspHttpResult result = {
        .err = err,
        .detail = detail,
        .method = f->method,
        .get_refused = f->get_refused,
    };
    if (err == OCSP_ERR_NONE) {
        result.body = (unsigned char *)f->buf + f->body_start;
        result.body_len = f->received - f->body_start;
    }
    f->done(f->privdata, &result);
    fetchFree(f);
}

static long long fetchTimeoutProc(struct aeEventLoop *el, long long id, void *client_data) {
    UNUSED(el);
    UNUSED(id);
    ocspFetch *f = client_data;
    f->timeout_timer = AE_ERR; /* ae deletes it as we return AE_NOMORE. */
    char detail[64];
    snprintf(detail, sizeof(detail), "no complete answer within %d s", f->timeout_ms / 1000);
    fetchFinish(f, OCSP_ERR_TIMEOUT, detail);
    return AE_NOMORE;
}

/* The value of header NAME in the header block, or NULL; *len its length. */
static const char *headerValue(const char *headers, size_t headers_len, const char *name, size_t *len) {
    size_t name_len = strlen(name);
    const char *end = headers + headers_len;
    for (const char *line = headers; line < end;) {
        const char *eol = memchr(line, '\n', end - line);
        if (!eol) eol = end;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' && strncasecmp(line, name, name_len) == 0) {
            const char *value = line + name_len + 1, *value_end = eol;
            while (value < value_end && (*value == ' ' || *value == '\t')) value++;
            while (value_end > value && isspace((unsigned char)value_end[-1])) value_end--;
            *len = value_end - value;
            return value;
        }
        line = eol + 1;
    }
    return NULL;
}

/* The header block is complete: check the status line and the headers that
 * matter. Returns OCSP_ERR_NONE to go on reading the body. */
static ocspError fetchCheckHeaders(ocspFetch *f, char *detail, size_t detail_len) {
    const char *status_line = f->buf;
    const char *line_end = memchr(status_line, '\n', f->body_start);
    int status_len = (int)(line_end - status_line);
    while (status_len > 0 && isspace((unsigned char)status_line[status_len - 1])) status_len--;
    if (status_len > 80) status_len = 80;
    /* "HTTP/1.x NNN ..." */
    if (status_len < 12 || strncmp(status_line, "HTTP/1.", 7) != 0 || status_line[8] != ' ' ||
        !isdigit((unsigned char)status_line[9]) || !isdigit((unsigned char)status_line[10]) ||
        !isdigit((unsigned char)status_line[11])) {
        snprintf(detail, detail_len, "not an HTTP status line");
        return OCSP_ERR_MALFORMED;
    }
    if (strncmp(status_line + 9, "200", 3) != 0) {
        snprintf(detail, detail_len, "%s answered '%.*s'", f->method, status_len, status_line);
        return OCSP_ERR_HTTP_STATUS;
    }

    const char *headers = line_end + 1;
    size_t headers_len = f->body_start - (headers - f->buf);
    size_t len;
    const char *value = headerValue(headers, headers_len, "Content-Type", &len);
    const char *expected = f->response_type;
    size_t type_len = 0;
    while (value && type_len < len && value[type_len] != ';' && value[type_len] != ' ' && value[type_len] != '\t')
        type_len++;
    if (!f->any_response_type &&
        (!value || type_len != strlen(expected) || strncasecmp(value, expected, type_len) != 0)) {
        snprintf(detail, detail_len, "Content-Type '%.*s'", value ? (int)(len > 64 ? 64 : len) : 0, value ? value : "");
        return OCSP_ERR_CONTENT_TYPE;
    }
    value = headerValue(headers, headers_len, "Transfer-Encoding", &len);
    if (value && !(len == 8 && strncasecmp(value, "identity", 8) == 0)) {
        snprintf(detail, detail_len, "Transfer-Encoding '%.*s' in an HTTP/1.0 exchange", (int)(len > 32 ? 32 : len),
                 value);
        return OCSP_ERR_MALFORMED;
    }
    f->content_length = -1;
    value = headerValue(headers, headers_len, "Content-Length", &len);
    if (value) {
        long long n;
        if (!string2ll(value, len, &n) || n < 0) {
            snprintf(detail, detail_len, "bad Content-Length");
            return OCSP_ERR_MALFORMED;
        }
        if ((unsigned long long)n > f->max_body) {
            snprintf(detail, detail_len, "Content-Length %lld exceeds %zu bytes", n, f->max_body);
            return OCSP_ERR_TOO_LARGE;
        }
        f->content_length = n;
    }
    return OCSP_ERR_NONE;
}

/* One read, as the socket allows and the bounds leave room for. */
static void fetchReadProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    char detail[OCSP_DETAIL_LEN];
    /* Headers fill at most OCSP_MAX_HEADER_BYTES. A body of unknown length
     * gets room for one byte past its bound, so that a peer sending more than
     * it may is caught by the read that carries the extra byte. */
    size_t limit = OCSP_MAX_HEADER_BYTES;
    if (f->body_start)
        limit = f->body_start + (f->content_length >= 0 ? (size_t)f->content_length : f->max_body + 1);
    /* Room is added as bytes arrive, so that a large bound (a CRL's) costs
     * memory only when that much is sent. */
    if (f->received == f->buf_size && f->buf_size < limit) {
        f->buf_size = f->buf_size > limit / 2 ? limit : f->buf_size * 2;
        f->buf = zrealloc(f->buf, f->buf_size);
    }
    if (limit > f->buf_size) limit = f->buf_size;
    ssize_t n = read(fd, f->buf + f->received, limit - f->received);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n == -1) {
        snprintf(detail, sizeof(detail), "reading: %s", strerror(errno));
        fetchFinish(f, OCSP_ERR_TRUNCATED, detail);
        return;
    }
    size_t scan_from = f->received > 3 ? f->received - 3 : 0;
    f->received += n;

    if (!f->body_start && n > 0) {
        size_t prefix = f->received < 5 ? f->received : 5;
        if (memcmp(f->buf, "HTTP/", prefix) != 0) {
            fetchFinish(f, OCSP_ERR_MALFORMED, "not an HTTP response");
            return;
        }
        char *end = memmem(f->buf + scan_from, f->received - scan_from, "\r\n\r\n", 4);
        if (!end && f->received >= OCSP_MAX_HEADER_BYTES) {
            snprintf(detail, sizeof(detail), "headers exceed %d bytes", OCSP_MAX_HEADER_BYTES);
            fetchFinish(f, OCSP_ERR_TOO_LARGE, detail);
            return;
        }
        if (!end) return;
        f->body_start = end + 4 - f->buf;
        ocspError err = fetchCheckHeaders(f, detail, sizeof(detail));
        if (err == OCSP_ERR_HTTP_STATUS && f->post_fallback) {
            fetchRetryWithPost(f, detail);
            return;
        }
        if (err != OCSP_ERR_NONE) {
            fetchFinish(f, err, detail);
            return;
        }
    }
    if (!f->body_start) {
        fetchFinish(f, OCSP_ERR_TRUNCATED, "the connection closed before the end of the headers");
        return;
    }
    size_t body_len = f->received - f->body_start;
    if (body_len > f->max_body) {
        snprintf(detail, sizeof(detail), "the body exceeds %zu bytes", f->max_body);
        fetchFinish(f, OCSP_ERR_TOO_LARGE, detail);
        return;
    }
    if (f->content_length >= 0 && body_len >= (size_t)f->content_length) {
        f->received = f->body_start + f->content_length; /* Ignore what follows. */
        fetchFinish(f, OCSP_ERR_NONE, NULL);
    } else if (n == 0 && f->content_length >= 0) {
        snprintf(detail, sizeof(detail), "the connection closed after %zu of %lld body bytes", body_len,
                 f->content_length);
        fetchFinish(f, OCSP_ERR_TRUNCATED, detail);
    } else if (n == 0) {
        fetchFinish(f, OCSP_ERR_NONE, NULL); /* No Content-Length: the close ends the body. */
    }
}

/* One write of what is left of the request. */
static void fetchWriteProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    ssize_t n = write(fd, f->request + f->request_sent, sdslen(f->request) - f->request_sent);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n == -1) {
        char detail[OCSP_DETAIL_LEN];
        snprintf(detail, sizeof(detail), "sending the request: %s", strerror(errno));
        fetchFinish(f, OCSP_ERR_CONNECT_FAILED, detail);
        return;
    }
    f->request_sent += n;
    if (f->request_sent < sdslen(f->request)) return;
    f->phase = OCSP_FETCH_RECEIVING;
    f->buf_size = OCSP_MAX_HEADER_BYTES;
    f->buf = zmalloc(f->buf_size);
    if (!fetchWatch(f, AE_READABLE, fetchReadProc)) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
}

/* Base64 (RFC 4648, padded). Here and not OpenSSL's, which the server does
 * not link when TLS is a module. */
static sds base64(const unsigned char *data, size_t len) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sds out = sdsempty();
    for (size_t i = 0; i < len; i += 3) {
        unsigned long group = (unsigned long)data[i] << 16;
        if (i + 1 < len) group |= (unsigned long)data[i + 1] << 8;
        if (i + 2 < len) group |= data[i + 2];
        char quad[4] = {alphabet[(group >> 18) & 63], alphabet[(group >> 12) & 63],
                        i + 1 < len ? alphabet[(group >> 6) & 63] : '=', i + 2 < len ? alphabet[group & 63] : '='};
        out = sdscatlen(out, quad, 4);
    }
    return out;
}

/* The HTTP/1.0 request: a GET (get true) of the path, with the body, if
 * any, base64- and URL-encoded at its end (RFC 5019 section 5: caches in
 * front of responders answer it), NULL when that would exceed 255 bytes;
 * else a POST of the body. Through a proxy, the target is the absolute URL,
 * and the proxy's credentials go in Proxy-Authorization. */
static sds buildRequest(const ocspHttpRequest *r, bool get) {
    const ocspUrl *url = r->target;
    sds host = strchr(url->host, ':') ? sdscatfmt(sdsempty(), "[%S]", url->host) : sdsdup(url->host);
    if (strcmp(url->port, "80") != 0) host = sdscatfmt(host, ":%S", url->port);
    sds target = r->proxy ? sdscatfmt(sdsempty(), "http://%S%S", host, url->path) : sdsdup(url->path);
    if (get && r->body) {
        sds encoded = base64(r->body, r->body_len), escaped = sdsempty();
        for (size_t i = 0; i < sdslen(encoded); i++) {
            char ch = encoded[i];
            escaped = ch == '+'   ? sdscat(escaped, "%2B")
                      : ch == '/' ? sdscat(escaped, "%2F")
                      : ch == '=' ? sdscat(escaped, "%3D")
                                  : sdscatlen(escaped, &ch, 1);
        }
        sdsfree(encoded);
        if (sdslen(escaped) > 255) {
            sdsfree(escaped);
            sdsfree(target);
            sdsfree(host);
            return NULL;
        }
        if (target[sdslen(target) - 1] != '/') target = sdscat(target, "/");
        target = sdscatsds(target, escaped);
        sdsfree(escaped);
    }
    sds req = sdscatfmt(sdsempty(), "%s %S HTTP/1.0\r\nHost: %S\r\n", get ? "GET" : "POST", target, host);
    if (r->proxy && r->proxy->userinfo) {
        sds credentials = base64((unsigned char *)r->proxy->userinfo, sdslen(r->proxy->userinfo));
        req = sdscatfmt(req, "Proxy-Authorization: Basic %S\r\n", credentials);
        sdsfree(credentials);
    }
    req = sdscatfmt(req, "Accept: %s\r\n", r->response_type);
    if (!get)
        req = sdscatfmt(req, "Content-Type: %s\r\nContent-Length: %i\r\n", r->body_type, (int)r->body_len);
    req = sdscat(req, "Connection: close\r\n\r\n");
    if (!get) req = sdscatlen(req, r->body, r->body_len);
    sdsfree(target);
    sdsfree(host);
    return req;
}

/* The server refused our GET: the same fetch asks again with POST, over a
 * new connection; the result tells the caller to use POST from now on. */
static void fetchRetryWithPost(ocspFetch *f, const char *refusal) {
    serverLog(LL_NOTICE, "OCSP: %s refused GET (%s); asking with POST from now on", f->name, refusal);
    f->get_refused = true;
    fetchUnwatch(f);
    close(f->fd);
    f->fd = -1;
    sdsfree(f->request);
    f->request = f->post_fallback;
    f->post_fallback = NULL;
    f->method = "POST";
    f->request_sent = 0;
    zfree(f->buf);
    f->buf = NULL;
    f->buf_size = f->received = f->body_start = 0;
    f->next_address = f->addresses;
    f->connect_errno = 0;
    fetchConnectNext(f);
}

static void fetchConnectedProc(struct aeEventLoop *el, int fd, void *client_data, int mask) {
    UNUSED(el);
    UNUSED(mask);
    ocspFetch *f = client_data;
    int err = anetGetError(fd);
    if (err) {
        fetchUnwatch(f);
        close(f->fd);
        f->fd = -1;
        f->connect_errno = err;
        fetchConnectNext(f);
        return;
    }
    f->phase = OCSP_FETCH_SENDING;
    if (!fetchWatch(f, AE_WRITABLE, fetchWriteProc)) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
}

/* Try the resolved addresses in order until a connect gets under way. */
static void fetchConnectNext(ocspFetch *f) {
    f->phase = OCSP_FETCH_CONNECTING;
    while (f->next_address) {
        struct addrinfo *ai = f->next_address;
        f->next_address = ai->ai_next;
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd == -1) {
            f->connect_errno = errno;
            continue;
        }
        if (anetNonBlock(NULL, fd) != ANET_OK || anetCloexec(fd) == -1 ||
            (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 && errno != EINPROGRESS)) {
            f->connect_errno = errno;
            close(fd);
            continue;
        }
        f->fd = fd;
        if (!fetchWatch(f, AE_WRITABLE, fetchConnectedProc))
            fetchFinish(f, OCSP_ERR_INTERNAL, "cannot watch the socket");
        return;
    }
    fetchFinish(f, OCSP_ERR_CONNECT_FAILED, f->connect_errno ? strerror(f->connect_errno) : "no address to connect to");
}

static void fetchResolved(void *privdata, int gai_error, struct addrinfo *result) {
    ocspFetch *f = privdata;
    f->lookup_id = 0;
    if (gai_error) {
        if (result) freeaddrinfo(result);
        fetchFinish(f, OCSP_ERR_RESOLVE_FAILED, gai_strerror(gai_error));
        return;
    }
    f->addresses = f->next_address = result;
    fetchConnectNext(f);
}

/* Begins from the event loop, so that no fetch does I/O inside a CONFIG SET
 * or before the bio workers exist at startup. */
static long long fetchBeginProc(struct aeEventLoop *el, long long id, void *client_data) {
    UNUSED(el);
    UNUSED(id);
    ocspFetch *f = client_data;
    f->start_timer = AE_ERR;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *numeric = NULL;
    if (getaddrinfo(f->host, f->port, &hints, &numeric) == 0) {
        fetchResolved(f, 0, numeric);
        return AE_NOMORE;
    }
    f->phase = OCSP_FETCH_RESOLVING;
    f->lookup_id = ocspLookupStart(f->host, f->port, fetchResolved, f);
    if (!f->lookup_id) fetchFinish(f, OCSP_ERR_INTERNAL, "cannot reach the resolver thread");
    return AE_NOMORE;
}

ocspHttpFetch *ocspHttpFetchStart(const ocspHttpRequest *request,
                                  ocspHttpDone *done,
                                  void *privdata,
                                  const char **detail) {
    const ocspUrl *connect_to = request->proxy ? request->proxy : request->target;
    /* A GET appends to the path: not after a query string. */
    bool try_get = request->try_get && !strchr(request->target->path, '?');
    sds get = try_get || !request->body ? buildRequest(request, true) : NULL;
    sds post = request->body ? buildRequest(request, false) : NULL;
    if (!get && !post) {
        *detail = "cannot build the request";
        return NULL;
    }
    ocspFetch *f = zcalloc(sizeof(*f));
    f->phase = OCSP_FETCH_STARTING;
    f->done = done;
    f->privdata = privdata;
    f->name = sdsnew(request->name);
    f->response_type = request->response_type;
    f->any_response_type = request->any_response_type;
    f->max_body = request->max_body;
    f->timeout_ms = request->timeout_ms;
    f->fd = -1;
    f->host = zstrdup(connect_to->host);
    f->port = zstrdup(connect_to->port);
    f->method = get ? "GET" : "POST";
    f->request = get ? get : post;
    f->post_fallback = get ? post : NULL;
    f->timeout_timer = aeCreateTimeEvent(server.el, request->timeout_ms, fetchTimeoutProc, f, NULL);
    f->start_timer = aeCreateTimeEvent(server.el, 0, fetchBeginProc, f, NULL);
    if (f->timeout_timer == AE_ERR || f->start_timer == AE_ERR) {
        fetchFree(f);
        *detail = "cannot create the fetch timers";
        return NULL;
    }
    return f;
}

#endif
