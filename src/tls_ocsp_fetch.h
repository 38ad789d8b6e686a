/*
 * Copyright (c) Valkey Contributors
 * All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause
 */

/*
 * Responder URLs (every build: config validation needs them) and the bounded
 * HTTP/1.0 exchange of a fetch over the event loop (BUILD_TLS=yes only),
 * implemented in tls_ocsp_fetch.c. Main thread only.
 */

#ifndef VALKEY_TLS_OCSP_FETCH_H
#define VALKEY_TLS_OCSP_FETCH_H

#include "sds.h"

#include <stdbool.h>
#include <stddef.h>

/* Longer URLs are refused: they would only bloat requests, INFO and logs. */
#define OCSP_MAX_URL_BYTES 1024

typedef struct ocspUrl {
    sds host;     /* Without the brackets of an IPv6 literal. */
    sds port;     /* "80" when the URL names none. */
    sds path;     /* "/" when the URL names none; includes a query. */
    sds userinfo; /* Decoded "user:password" before an @, or NULL. */
} ocspUrl;

/* Split an http:// URL; user information only with allow_userinfo (a
 * proxy's credentials). Returns 1, or 0 with *err saying why it is
 * unusable; *url is filled only on success. */
int ocspUrlParse(const char *text, ocspUrl *url, int allow_userinfo, const char **err);
void ocspUrlClear(ocspUrl *url);
/* A proxy URL as CONFIG GET and the log show it: the password as ***. */
sds ocspProxyRedacted(const char *proxy);
/* From the cron: the value a CONFIG SET replaced is no longer needed. */
void ocspProxyForgetReplaced(void);

#ifdef USE_OPENSSL /* BUILD_TLS=yes or module: the server side of either. */

#include "tls_ocsp_check.h"

/* What one fetch may read: the status line and headers, then the body. */
#define OCSP_MAX_HEADER_BYTES (16 * 1024)

/* One question to an HTTP server. GET puts the body, base64- and
 * URL-encoded, at the end of the path (RFC 5019) when it fits in 255 bytes;
 * a server refusing the GET with an HTTP error is asked again with POST in
 * the same fetch. Without a body, a plain GET of the URL. */
typedef struct ocspHttpRequest {
    const char *name;          /* The URL as configured, for log lines. */
    const ocspUrl *target;     /* Whom to ask. */
    const ocspUrl *proxy;      /* Through this proxy (absolute-URI form), or NULL. */
    const unsigned char *body; /* What to send, or NULL. */
    size_t body_len;           /* At most INT_MAX. */
    bool try_get;              /* Try GET first when the body fits. */
    const char *body_type;     /* Content-Type of a POST. */
    const char *response_type; /* The Content-Type asked for, which the answer must have, */
    bool any_response_type;    /* unless this is set (the caller checks what the body is). */
    size_t max_body;           /* The answer's body may not exceed this. */
    int timeout_ms;            /* The whole fetch, from name lookup to the last byte. */
} ocspHttpRequest;

typedef struct ocspHttpResult {
    ocspError err;             /* OCSP_ERR_NONE: body holds the answer. */
    const char *detail;        /* Why not, for the log. */
    const char *method;        /* Of the last request: "GET" or "POST". */
    bool get_refused;          /* The server refused GET: ask it with POST from now on. */
    const unsigned char *body; /* Valid during the callback only. */
    size_t body_len;
} ocspHttpResult;

typedef struct ocspHttpFetch ocspHttpFetch;
typedef void ocspHttpDone(void *privdata, const ocspHttpResult *result);

/* Begin a fetch: it runs on the event loop and ends exactly once, by done
 * (called from the event loop, never from inside this call; the fetch is
 * freed when done returns) or by ocspHttpFetchCancel(). Returns NULL with
 * *detail set when it cannot even begin. */
ocspHttpFetch *ocspHttpFetchStart(const ocspHttpRequest *request,
                                  ocspHttpDone *done,
                                  void *privdata,
                                  const char **detail);
void ocspHttpFetchCancel(ocspHttpFetch *fetch);
/* "GET" or "POST": what the fetch asks with first. */
const char *ocspHttpFetchMethod(const ocspHttpFetch *fetch);

#endif

#endif
