/*
 * Responses we make ourselves: configured `return` routes and errors.
 *
 * Every error names its cause twice: in a Proxy-Status field (RFC 9209
 * error types, e.g. "connection_refused") for the client, and in the access
 * log's reason. Which upstream and which address failed goes to the error
 * log only: nothing the client receives reveals a server behind us.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "proxy/cache_glue.h"
#include "proxy/proxy_int.h"

int txn_flush_local(struct txn *t)
{
    while (t->cout.head_off < t->cout.head_len || t->local_off < t->local_len) {
        if (!cli_writable(t))
            goto Wait;
        ssize_t n = cli_send(t, &t->cout, t->local_body + t->local_off,
                             t->local_len - t->local_off);
        if (n == -EAGAIN)
            goto Wait;
        if (n < 0)
            return (int)n;
        t->local_off += (size_t)n;
    }
    return 0;
Wait:
    cli_timer(t, t->c->cl->timeouts.send);
    return -EAGAIN;
}

void txn_local(struct txn *t, int status, const char *ctype, const char *body,
               size_t len, const char *extra)
{
    struct worker *w = t->c->w;
    if (!t->reqf.done)
        t->keepalive = false; /* the rest of the body is not read */
    if (conn_closing(t->c))
        t->keepalive = false;
    if (t->uc != NULL) {
        ups_close(t->uc);
        t->uc = NULL;
    }
    t->status = status;
    t->phase = T_LOCAL;
    t->head_sent = true;
    const char *conn_hdr = !t->keepalive      ? "Connection: close\r\n"
                           : t->req.version < 11 ? "Connection: keep-alive\r\n"
                                                 : "";
    const char *hsts = t->c->tls != NULL && t->site != NULL && t->site->hsts
                           ? t->site->hsts
                           : "";
    size_t cap = 512 + strlen(hsts) + (extra ? strlen(extra) : 0);
    char *h = pool_alloc(t->pool, cap);
    if (h == NULL) {
        t->reason = "proxy_internal_error";
        cli_abort(t);
        return;
    }
    int n = snprintf(h, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     status, h1_reason(status), worker_date(w),
                     ctype ? ctype : "text/plain; charset=utf-8", len, hsts,
                     extra ? extra : "", conn_hdr);
    if (n < 0 || (size_t)n >= cap) {
        t->reason = "proxy_internal_error";
        cli_abort(t);
        return;
    }
    t->cout = (struct outq){ h, (size_t)n, 0 };
    bool no_body = t->req.meth == H1_M_HEAD || status == 204 || status == 304;
    t->local_body = body;
    t->local_len = no_body ? 0 : len;
    t->local_off = 0;
    int rc = txn_flush_local(t);
    if (rc == 0)
        cli_done(t);
    else if (rc != -EAGAIN) {
        t->reason = "client_closed";
        cli_abort(t);
    }
}

void txn_error(struct txn *t, int status, const char *error, const char *msg)
{
    txn_error_hdr(t, status, error, msg, NULL);
}

void txn_error_hdr(struct txn *t, int status, const char *error,
                   const char *msg, const char *more)
{
    if (t->cx != NULL && cglue_error(t, status))
        return; /* a stale response answers instead (stale-if-error) */
    if (t->reason == NULL)
        t->reason = error;
    if (t->head_sent && t->phase != T_LOCAL) {
        cli_abort(t); /* too late for a status: cut the response short */
        return;
    }
    if (t->phase == T_LOCAL) { /* already answering */
        cli_abort(t);
        return;
    }
    if (status == 400 || status == 408 || status == 413 || status == 414 ||
        status == 431 || status == 501 || status == 505)
        t->keepalive = false;
    char *body = pool_alloc(t->pool, 256);
    size_t ecap = 256 + (more != NULL ? strlen(more) : 0);
    char *extra = pool_alloc(t->pool, ecap);
    if (body == NULL || extra == NULL) {
        cli_abort(t);
        return;
    }
    int bl = snprintf(body, 256, "%d %s\n%s\n", status, h1_reason(status), msg);
    if (bl < 0)
        bl = 0;
    if (bl >= 256)
        bl = 255;
    if (t->reason != error)
        snprintf(extra, ecap, "Proxy-Status: gatehouse; error=%s; details=\"%s\"\r\n%s",
                 error, t->reason, more != NULL ? more : "");
    else
        snprintf(extra, ecap, "Proxy-Status: gatehouse; error=%s\r\n%s", error,
                 more != NULL ? more : "");
    txn_local(t, status, "text/plain; charset=utf-8", body, (size_t)bl, extra);
}

void txn_redirect_https(struct txn *t)
{
    const struct h1_msg *r = &t->req;
    if (t->host.len == 0) {
        txn_error(t, 400, "http_request_error",
                  "This site moved to https, and the request names no host.");
        return;
    }
    struct str path = r->form == H1_F_ORIGIN || r->form == H1_F_ABSOLUTE
                          ? r->path
                          : STR_LIT("/");
    unsigned port = t->site->redirect_https;
    char portbuf[8] = "";
    if (port != 443)
        snprintf(portbuf, sizeof(portbuf), ":%u", port);
    size_t cap = 64 + t->host.len + path.len;
    char *extra = pool_alloc(t->pool, cap);
    if (extra == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    snprintf(extra, cap, "Location: https://%.*s%s%.*s\r\n", STR_FMT(t->host),
             portbuf, STR_FMT(path));
    /* 308 keeps the method and body (RFC 9110 §15.4.9); GET and HEAD get
     * the 301 every client understands */
    bool safe = r->meth == H1_M_GET || r->meth == H1_M_HEAD;
    static const char body[] = "This site is served over https.\n";
    t->reason = "redirect_https";
    txn_local(t, safe ? 301 : 308, NULL, body, sizeof(body) - 1, extra);
}

void conn_reject(struct conn *c, int status, const char *error,
                 const char *reason, const struct h1_msg *m)
{
    (void)m;
    txn_reject(c->txn, status, error, reason);
}

void txn_reject(struct txn *t, int status, const char *error, const char *reason)
{
    t->keepalive = false;
    t->reason = reason ? reason : error;
    const char *msg;
    switch (status) {
    case 408:
        msg = "The request head did not arrive in time.";
        break;
    case 414:
        msg = "The request target is too long.";
        break;
    case 431:
        msg = "The request header section is too large.";
        break;
    case 501:
        msg = "The transfer coding is not supported.";
        break;
    case 505:
        msg = "The HTTP version is not supported.";
        break;
    default:
        status = status ? status : 400;
        msg = "The request is malformed.";
        break;
    }
    txn_error(t, status, error, msg);
}
