/*
 * Proxying to an HTTP/2 upstream ("protocol: h2"; docs/tls.md, "HTTP/2
 * to upstream servers"),
 * for gRPC: the request becomes one stream of an h2 session
 * (src/h2/h2_client.c), its response becomes the client's, and the
 * response trailers (grpc-status, grpc-message) reach the client: as a
 * trailing HEADERS frame on HTTP/2, as chunked trailers for an HTTP/1.1
 * client that sent "TE: trailers".
 *
 * The forwarded header set is the one the HTTP/1.1 path sends
 * (hdr_request: hop-by-hop fields dropped, X-Forwarded-*, Via), parsed back
 * and turned into HEADERS, so both protocols follow the same rules; "TE:
 * trailers" (the one TE value HTTP/2 allows, RFC 9113 §8.2.2) is passed on
 * when the client sent it.
 *
 * Many streams share one upstream connection (h2mux.c); a transaction
 * holds a stream, never the connection. Flow control is backpressure both
 * ways: response
 * DATA is acknowledged (WINDOW_UPDATE) only as it is passed to the client,
 * and request body bytes are pulled by the session only when the server's
 * windows have room.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "core/macros.h"
#include "proxy/h2up.h"

#define MAX_TRAILERS 64
#define ROUNDS 64

/* ---- session callbacks ---- */

static struct str dup(struct txn *t, const char *p, size_t n)
{
    char *d = pool_strndup(t->pool, p, n);
    return d != NULL ? str_make(d, n) : STR_NULL;
}

static void cb_field(void *sud, const char *name, size_t nlen, const char *value,
                     size_t vlen, bool trailer)
{
    struct h2x *x = sud;
    struct txn *t = x->t;
    if (nlen == 0 || name[0] == ':')
        return; /* :status comes with head() */
    if (trailer ? x->ntr >= MAX_TRAILERS : x->nf >= x->maxf) {
        x->bad_head = true;
        return;
    }
    struct str n = dup(t, name, nlen), v = dup(t, value, vlen);
    if (n.p == NULL || v.p == NULL) {
        x->bad_head = true;
        return;
    }
    if (trailer)
        x->tr[x->ntr++] = (struct h2_nv){ n.p, n.len, v.p, v.len };
    else
        x->f[x->nf++] = (struct h1_field){ .name = n, .value = v };
}

static void cb_head(void *sud, int status, bool end)
{
    struct h2x *x = sud;
    if (status < 200) {
        x->nf = 0; /* interim responses are not passed on */
        return;
    }
    x->status = status;
    x->head_in = true;
    x->ended |= end;
    x->up_prog = true;
    h2mux_wake(x);
}

static void cb_data(void *sud, const uint8_t *p, size_t len)
{
    struct h2x *x = sud;
    struct buf *b = &x->rb;
    /* our stream window bounds what can arrive unacknowledged */
    if (buf_get(b) < 0 || (buf_room(b) < len && (buf_compact(b), buf_room(b) < len) &&
                           buf_grow(b, buf_len(b) + len) < 0)) {
        h2_cli_consume(x->hc->cli, x->id, len);
        x->closed = true; /* failed by the pump (502), which resets it */
        x->code = H2_INTERNAL_ERROR;
        h2mux_wake(x);
        return;
    }
    memcpy(buf_tail(b), p, len);
    b->end += (uint32_t)len;
    x->up_prog = true;
    h2mux_wake(x);
}

static void cb_end(void *sud)
{
    struct h2x *x = sud;
    x->ended = true;
    x->up_prog = true;
    h2mux_wake(x);
}

static void cb_close(void *sud, uint32_t code)
{
    struct h2x *x = sud;
    x->closed = true;
    x->code = code;
    h2mux_wake(x);
}

/* The request body, as the server's windows allow. */
static ssize_t cb_pull(void *sud, uint8_t *buf, size_t len, bool *eof)
{
    struct h2x *x = sud;
    struct txn *t = x->t;
    struct flow *f = &t->reqf;
    *eof = false;
    for (int i = 0; i < 4 && f->fwd == 0 && !f->done && buf_len(t->rb) > 0; i++)
        if (flow_take(f, t->rb) < 0)
            return -EBADMSG; /* malformed chunked body: the stream is reset */
    uint64_t limit = t->route->max_body ? t->route->max_body : t->c->cl->limits.body_bytes;
    if (limit != 0 && f->bytes > limit) {
        x->too_big = true; /* answered 413 by the pump */
        x->deferred = true;
        h2mux_wake(x);
        return -EAGAIN;
    }
    size_t n = MIN(len, f->fwd);
    if (n > 0) {
        memcpy(buf, buf_head(t->rb), n);
        flow_sent(f, t->rb, n);
        h2mux_wake(x); /* the client may send as much again */
    }
    if (f->kind == H1_B_EOF && x->cli_eof && f->fwd == 0 && buf_len(t->rb) == 0)
        f->done = true;
    if (f->done && f->fwd == 0) {
        *eof = true;
        return (ssize_t)n;
    }
    if (n == 0) {
        x->deferred = true;
        return -EAGAIN;
    }
    return (ssize_t)n;
}

/* The request trailers, for HTTP/2 clients (HTTP/1.1 ones are dropped). */
static size_t cb_trailers(void *sud, const struct h2_nv **nv)
{
    struct h2x *x = sud;
    return x->t->h2 != NULL ? h2s_trailers(x->t, nv) : 0;
}

const struct h2_cli_cbs h2up_cbs = {
    .field = cb_field,
    .head = cb_head,
    .data = cb_data,
    .end = cb_end,
    .close = cb_close,
    .pull = cb_pull,
    .trailers = cb_trailers,
};

/* ---- the request ---- */

static bool skip_request_field(struct str n)
{
    return str_ieq_lit(n, "host") || str_ieq_lit(n, "transfer-encoding") ||
           str_ieq_lit(n, "connection") || str_ieq_lit(n, "keep-alive") ||
           str_ieq_lit(n, "proxy-connection") || str_ieq_lit(n, "upgrade") ||
           str_ieq_lit(n, "te") || str_ieq_lit(n, "http2-settings");
}

/* HEADERS from the HTTP/1.1 head hdr_request built, parsed back in <m>. */
static int build_nv(struct txn *t, struct h2x *x, const struct h1_msg *m,
                    const struct h1_msg *req)
{
    struct h2_nv *nv = pool_alloc(t->pool, (m->nfields + 5) * sizeof(*nv));
    if (nv == NULL)
        return -ENOMEM;
    size_t n = 0;
    struct str path = m->form == H1_F_ABSOLUTE ? m->path : m->target;
    bool tls = t->ups->cu->tls != NULL;
    nv[n++] = (struct h2_nv){ ":method", 7, req->method.p, req->method.len };
    nv[n++] = (struct h2_nv){ ":scheme", 7, tls ? "https" : "http", tls ? 5u : 4u };
    if (m->host.len > 0)
        nv[n++] = (struct h2_nv){ ":authority", 10, m->host.p, m->host.len };
    nv[n++] = (struct h2_nv){ ":path", 5, path.p, path.len };
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *fl = &m->fields[i];
        if (skip_request_field(fl->name))
            continue;
        for (size_t k = 0; k < fl->name.len; k++) /* the arena's copy */
            ((char *)fl->name.p)[k] = ascii_lower(fl->name.p[k]);
        nv[n++] = (struct h2_nv){ fl->name.p, fl->name.len, fl->value.p, fl->value.len };
    }
    if (x->te_trailers)
        nv[n++] = (struct h2_nv){ "te", 2, "trailers", 8 };
    x->nv = nv;
    x->nnv = n;
    return 0;
}

/* The transaction's arena is freed: its stream leaves the connection. */
static void x_free(void *p)
{
    struct h2x *x = p;
    h2mux_detach(x);
    buf_put(&x->rb);
}

int h2up_request(struct txn *t, const struct h1_msg *req)
{
    struct h1_msg m; /* the HTTP head, by the HTTP rules */
    int rc = hdr_request_fields(t, req, &m);
    if (rc < 0)
        return rc == -E2BIG ? -ENOMEM : rc;
    const struct cfg_limits *lim = &t->c->cl->limits;
    struct h2x *x = pool_calloc(t->pool, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    const struct h1_field *te = h1_find(req, STR_LIT("te"));
    x->te_trailers = te != NULL && h1_list_has(te->value, STR_LIT("trailers"));
    x->t = t;
    x->maxf = lim->header_count;
    x->f = pool_alloc(t->pool, x->maxf * sizeof(*x->f));
    x->tr = pool_alloc(t->pool, MAX_TRAILERS * sizeof(*x->tr));
    if (x->f == NULL || x->tr == NULL || build_nv(t, x, &m, req) < 0)
        return -ENOMEM;
    if (pool_on_destroy(t->pool, x_free, x) < 0)
        return -ENOMEM;
    x->body = !t->reqf.done;
    if (t->h2 != NULL && t->reqf.kind == H1_B_CHUNKED) {
        t->reqf.kind = H1_B_EOF; /* raw DATA bytes until END_STREAM */
        t->reqf.encode = false;
    } else {
        t->reqf.decode = true; /* DATA carries body bytes, not chunks */
    }
    t->hx = x;
    return 0;
}

/* A try of the request on server <srv>: a stream on one of its
 * connections. 0, or -errno when none could be opened. */
int h2up_connect(struct txn *t, unsigned srv)
{
    struct h2x *x = t->hx;
    x->nf = x->ntr = 0;
    x->head_in = x->ended = x->closed = x->deferred = x->bad_head = false;
    buf_put(&x->rb);
    return h2mux_attach(t, srv);
}

/* ---- failures ---- */

static void fail(struct txn *t, const char *why, const char *msg)
{
    struct h2x *x = t->hx;
    char name[80];
    if (x->hc != NULL)
        log_warn("upstream %s: server %s: %s", t->ups->cu->name,
                 ups_srv_name(t->ups, x->hc->uc->srv, name, sizeof(name)), why);
    h2mux_detach(x);
    if (t->head_sent) {
        t->reason = "upstream_stream_error";
        cli_abort(t);
        return;
    }
    pick_release(t, true);
    txn_error(t, 502, "http_protocol_error", msg);
}

/* The stream closed before the response ended. */
static void stream_failed(struct txn *t)
{
    struct h2x *x = t->hx;
    char why[96];
    if (x->code == H2_REFUSED_STREAM && x->hc != NULL && x->hc->cli != NULL &&
        h2_cli_goaway(x->hc->cli) >= 0) {
        fail(t, "GOAWAY: the stream was not processed",
             "The upstream server is going away (GOAWAY) and did not process "
             "the request.");
        return;
    }
    snprintf(why, sizeof(why), "HTTP/2 stream reset (error code 0x%x)", x->code);
    fail(t, why, x->code == H2_REFUSED_STREAM
                     ? "The upstream server refused the HTTP/2 stream."
                     : "The upstream server reset the HTTP/2 stream.");
}

/* ---- upstream events ---- */

void h2up_conn_failed(struct h2x *x, int err, bool connecting, bool goaway)
{
    struct txn *t = x->t;
    if (t->head_sent) {
        t->reason = "upstream_connection_broke";
        cli_abort(t);
        return;
    }
    const char *msg = err == -ENOPROTOOPT ? "The upstream server does not speak HTTP/2 (ALPN)."
                      : err == -EBADMSG   ? "The upstream server broke the HTTP/2 protocol."
                      : goaway ? "The upstream server closed the HTTP/2 connection "
                                 "(GOAWAY) before it answered."
                               : NULL;
    if (msg != NULL) {
        pick_release(t, true);
        txn_error(t, 502, "http_protocol_error", msg);
        return;
    }
    txn_upstream_failed(t, err, connecting); /* another server, or 502/504 */
}

static void x_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct h2x *x = container_of(tm, struct h2x, timer);
    struct txn *t = x->t;
    char name[80];
    log_warn("upstream %s: server %s: %s timed out", t->ups->cu->name,
             ups_srv_name(t->ups, x->hc->uc->srv, name, sizeof(name)),
             x->head_in ? "reading the response" : "waiting for the response");
    h2mux_detach(x);
    txn_timeout(t, false); /* another server, 504, or the client cut */
}

void h2up_arm(struct h2x *x)
{
    struct txn *t = x->t;
    if (x->hc == NULL)
        return;
    struct loop *l = t->c->w->loop;
    if (x->ended) {
        timer_cancel(l, &x->timer);
        return;
    }
    if (!x->up_prog && timer_armed(&x->timer))
        return;
    x->up_prog = false;
    const struct cfg_upstream *cu = t->ups->cu;
    bool sending = x->body && !t->reqf.done && !x->head_in;
    timer_set(l, &x->timer, sending ? cu->send_timeout : cu->read_timeout, x_timeout);
}

/* What the session said about the stream. 0, or -1 when the transaction
 * ended. */
static int check_stream(struct txn *t)
{
    struct h2x *x = t->hx;
    if (x->head_in)
        t->resp_started = true;
    if (x->bad_head) {
        fail(t, "response head or trailers too large",
             "The upstream server sent too many header fields.");
        return -1;
    }
    if (x->closed && !x->ended) {
        stream_failed(t);
        return -1;
    }
    return 0;
}

/* ---- the client side ---- */

/* Client request body bytes. 1 when the stream may go on, 0, -1 when the
 * transaction ended. */
static int read_client(struct txn *t)
{
    struct h2x *x = t->hx;
    if (x->too_big) {
        if (t->head_sent) {
            t->reason = "request_body_too_large";
            cli_abort(t);
            return -1;
        }
        h2mux_detach(x);
        t->keepalive = false;
        pick_release(t, false);
        txn_error(t, 413, "http_request_denied", "The request body is too large.");
        return -1;
    }
    if (!x->body || t->reqf.done || x->cli_eof)
        return 0;
    if (t->reqf.fwd == 0 && cli_readable(t)) {
        ssize_t n = cli_read(t);
        if (n == 0 && (t->h2 != NULL || t->reqf.kind == H1_B_EOF)) {
            x->cli_eof = true;
        } else if (n == 0 || (n < 0 && n != -EAGAIN && n != -ENOBUFS)) {
            t->reason = "client_closed"; /* gone in the middle of its body */
            cli_abort(t);
            return -1;
        }
    }
    if (x->deferred && (buf_len(t->rb) > 0 || x->cli_eof)) {
        x->deferred = false;
        h2_cli_resume(x->hc->cli, x->id);
        return 1;
    }
    return 0;
}

static bool content_length(struct str v, uint64_t *out)
{
    uint64_t n = 0;
    if (v.len == 0 || v.len > 18)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = n;
    return true;
}

static int start_response(struct txn *t)
{
    struct h2x *x = t->hx;
    struct h1_msg *r = &t->resp;
    h1_msg_init(r, x->f, x->maxf);
    r->nfields = x->nf;
    r->status = x->status;
    r->version = 11;
    r->reason = str_cstr(h1_reason(x->status));
    size_t hl = 64;
    for (size_t i = 0; i < x->nf; i++) {
        const struct h1_field *f = &x->f[i];
        hl += f->name.len + f->value.len + 4;
        if (str_ieq_lit(f->name, "content-length") && content_length(f->value, &r->content_length))
            r->flags |= H1_HAS_CL; /* nghttp2 checked it is digits */
    }
    r->head_len = hl;
    r->body = (r->flags & H1_HAS_CL) ? H1_B_LENGTH : H1_B_EOF;
    t->ustatus = t->status = x->status;
    pick_observe(t, x->status);
    enum h1_body kind = h1_response_body(r, t->req.meth);
    if (kind == H1_B_EOF)
        kind = H1_B_CHUNKED; /* no length: we frame it */
    txn_flow_init_resp(t, kind, r->content_length);
    if (!t->reqf.done || t->c->w->draining)
        t->keepalive = false;
    if (kind == H1_B_CHUNKED && t->h2 == NULL && bodyout_new(t) == NULL)
        return -ENOMEM;
    if (t->bo != NULL && !t->bo->chunked)
        t->keepalive = false; /* HTTP/1.0 client: the end is the close */
    /* HTTP/2 client: HEADERS ends the stream when nothing follows */
    t->resf.done = x->ended && buf_len(&x->rb) == 0 && x->ntr == 0;
    if (hdr_response(t, r) < 0)
        return -ENOMEM;
    t->head_sent = true;
    t->phase = T_RESPONSE;
    return 0;
}

static void consume(struct txn *t, size_t n)
{
    struct h2x *x = t->hx;
    buf_consume(&x->rb, n);
    if (x->hc != NULL)
        h2_cli_consume(x->hc->cli, x->id, n);
    t->resf.bytes += n;
}

/* The response ended: the stream leaves its connection (reset when the
 * server still reads a request body nobody wants), the transaction ends. */
static void finish(struct txn *t)
{
    h2mux_detach(t->hx);
    t->resf.done = true;
    t->reqf.done = true;
    t->reqf.fwd = 0;
    txn_done_upstream(t);
}

/* HTTP/1.1: the last chunk with the trailers. 0 when written, -EAGAIN or
 * -errno. */
static int send_trailers(struct txn *t)
{
    struct h2x *x = t->hx;
    if (x->tq.head == NULL) {
        int rc = bodyout_flush(t);
        if (rc != 0)
            return rc;
        size_t len = 8;
        for (size_t i = 0; i < x->ntr; i++)
            len += x->tr[i].nlen + x->tr[i].vlen + 4;
        char *p = pool_alloc(t->pool, len);
        if (p == NULL)
            return -ENOMEM;
        size_t n = 0;
        memcpy(p, "0\r\n", 3), n = 3;
        for (size_t i = 0; i < x->ntr; i++) {
            memcpy(p + n, x->tr[i].name, x->tr[i].nlen), n += x->tr[i].nlen;
            memcpy(p + n, ": ", 2), n += 2;
            memcpy(p + n, x->tr[i].value, x->tr[i].vlen), n += x->tr[i].vlen;
            memcpy(p + n, "\r\n", 2), n += 2;
        }
        memcpy(p + n, "\r\n", 2), n += 2;
        x->tq = (struct outq){ p, n, 0 };
        t->bo->last_queued = true;
    }
    for (int i = 0; i < 8 && x->tq.head_off < x->tq.head_len; i++) {
        ssize_t w = cli_send(t, &x->tq, NULL, 0);
        if (w < 0)
            return (int)w;
    }
    return x->tq.head_off < x->tq.head_len ? -EAGAIN : 0;
}

/* HTTP/1: the end of the body. 0 when blocked, -1 when the transaction
 * ended. */
static int end_h1(struct txn *t)
{
    struct h2x *x = t->hx;
    int rc = 0;
    if (t->bo != NULL)
        rc = x->te_trailers && x->ntr > 0 && t->bo->chunked && t->bo->z == NULL
                 ? send_trailers(t)
                 : bodyout_finish(t);
    else if (t->cout.head_off < t->cout.head_len)
        rc = (int)MIN(cli_send(t, &t->cout, NULL, 0), 0);
    if (rc == 0 && t->cout.head_off < t->cout.head_len)
        rc = -EAGAIN;
    if (rc == -EAGAIN) {
        txn_arm_timers(t, false, true);
        return 0;
    }
    if (rc < 0) {
        t->reason = "client_closed";
        cli_abort(t);
        return -1;
    }
    if (t->resf.kind == H1_B_LENGTH && t->resf.bytes != t->resp.content_length) {
        fail(t, "body shorter than Content-Length", "");
        return -1;
    }
    finish(t);
    return -1;
}

/* HTTP/1: response body bytes to the client. 1 on progress, 0 when
 * blocked, -1 when the transaction ended. */
static int to_h1(struct txn *t)
{
    struct h2x *x = t->hx;
    int prog = 0;
    for (int i = 0; i < ROUNDS && cli_writable(t); i++) {
        size_t n = buf_len(&x->rb);
        bool pending = t->cout.head_off < t->cout.head_len ||
                       (t->bo != NULL && bodyout_pending(t));
        if (n == 0 && !pending)
            break;
        if (t->resf.kind == H1_B_LENGTH && t->resf.bytes + n > t->resp.content_length) {
            fail(t, "body longer than Content-Length", "");
            return -1;
        }
        if (t->resf.kind == H1_B_NONE) { /* HEAD, 204, 304: dropped */
            consume(t, n);
            n = 0;
        }
        ssize_t w = t->bo != NULL ? bodyout_write(t, buf_head(&x->rb), n)
                                  : cli_send(t, &t->cout, buf_head(&x->rb), n);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            t->reason = "client_closed";
            cli_abort(t);
            return -1;
        }
        if (w > 0) {
            consume(t, (size_t)w);
            prog = 1;
        } else if (n > 0 || t->cout.head_off < t->cout.head_len) {
            break;
        }
    }
    if (x->ended && buf_len(&x->rb) == 0)
        return end_h1(t);
    if (buf_len(&x->rb) > 0)
        txn_arm_timers(t, false, true);
    return prog;
}

/* HTTP/2: the head is submitted, the body pulled (h2up_pull). */
static int to_h2(struct txn *t)
{
    struct h2x *x = t->hx;
    if (t->cout.head_off < t->cout.head_len) {
        if (cli_send(t, &t->cout, NULL, 0) < 0) {
            t->reason = "client_closed";
            cli_abort(t);
            return -1;
        }
        if (t->resf.done)
            x->eof_pulled = true; /* HEADERS with END_STREAM */
    }
    if (x->ended && buf_len(&x->rb) == 0 && x->eof_pulled) {
        finish(t);
        return -1;
    }
    if (buf_len(&x->rb) > 0 || x->ended)
        (void)cli_send(t, &t->cout, (const char *)x, 1); /* resumes the pulls */
    return 0;
}

static int to_client(struct txn *t)
{
    struct h2x *x = t->hx;
    if (!t->head_sent) {
        if (!x->head_in)
            return 0;
        if (start_response(t) < 0) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return -1;
        }
    }
    return t->h2 != NULL ? to_h2(t) : to_h1(t);
}

/* ---- driving ---- */

void h2up_pump(struct txn *t)
{
    struct h2x *x = t->hx;
    if (x->hc == NULL || x->id == 0 ||
        (t->phase != T_REQUEST && t->phase != T_RESPONSE))
        return;
    struct h2uc *hc = x->hc;
    for (int i = 0; i < ROUNDS; i++) {
        int a = read_client(t);
        if (a < 0 || check_stream(t) < 0)
            return;
        int d = to_client(t);
        if (d < 0)
            return;
        if (a + d == 0)
            break;
    }
    h2up_arm(x);
    h2mux_flush_later(hc); /* resumed, consumed: frames to write */
}

ssize_t h2up_pull(struct txn *t, char *dst, size_t max, bool *eof)
{
    struct h2x *x = t->hx;
    size_t n = MIN(max, buf_len(&x->rb));
    if (n > 0) {
        memcpy(dst, buf_head(&x->rb), n);
        consume(t, n);
    }
    *eof = x->ended && buf_len(&x->rb) == 0;
    if (*eof)
        x->eof_pulled = true;
    if (n == 0 && !*eof)
        return -EAGAIN;
    return (ssize_t)n;
}

size_t h2up_trailers(struct txn *t, const struct h2_nv **nv)
{
    struct h2x *x = t->hx;
    *nv = x->tr;
    return x->ended ? x->ntr : 0;
}

