/*
 * HTTP/2 client connections: an h2 session (src/h2/) on one side, one
 * transaction per stream on the other, through the same client-side
 * interface an HTTP/1 connection offers (cli_* in proxy_int.h).
 *
 * Requests. The fields of a stream's head are written, as they arrive,
 * into an HTTP/1.1 head in the transaction's arena ("GET /p HTTP/1.1",
 * Host from :authority, cookie crumbs joined, RFC 9113 §8.2.3), which the
 * strict HTTP/1 parser then reads: one set of rules for what a request may
 * contain, whatever protocol carried it, and the upstream side (HTTP/1.1
 * pools) is unchanged. A body without Content-Length is chunked on its way
 * upstream. Body bytes wait in the stream's buffer, and go back to the
 * client's flow-control windows only as they are sent upstream: that is
 * the backpressure from upstream to client.
 *
 * Responses. The transaction serializes its head as for HTTP/1; it is
 * turned into HEADERS here, and the body is pulled by the session
 * (txn_pull) when the client's windows and the socket have room: that is
 * the backpressure from client to upstream.
 *
 * Nothing of a transaction runs inside the session's callbacks except
 * aborts on a reset: streams that have work to do are queued, and run
 * after the session has been fed (h2c_run), before frames are written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/macros.h"
#include "core/sock.h"
#include "h2/h2.h"
#include "proxy/proxy_int.h"

#define H2S_MAGIC 0x4832c0deu
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define ROUNDS 16

struct h2s {
    unsigned magic;
    struct h2c *hc;
    int32_t id;
    struct txn *t;          /* NULL once the transaction ended */
    struct buf rb;          /* request body bytes not yet sent upstream */
    size_t unacked;         /* bytes of rb not yet given back to the window */
    struct timer timer;     /* body and send timeouts of the transaction */
    struct h2s *prev, *next;
    struct h2s *qnext;      /* run queue */
    /* the request head being collected */
    char *head;
    size_t hlen, hcap;
    struct str method, path, authority, host;
    char *cookie;
    size_t cookie_len, cookie_cap;
    int status;             /* 431 from the session, 400 from us */
    bool queued, started, head_done, end_seen, has_cl, closed;
    bool no_body;           /* END_STREAM came with the head */
    struct h2_nv *tr;       /* request trailers (in the arena) */
    size_t ntr;
};

struct h2c {
    struct conn *c;
    struct h2_sess *sess;
    struct buf wbuf;        /* frames the socket has not taken yet */
    struct h2s *streams;
    struct h2s *q, *qtail;  /* streams to run */
};

static void run_queue(struct h2c *hc);
static void h2c_run(struct h2c *hc);

/* ---- streams ---- */

static void enqueue(struct h2s *s)
{
    struct h2c *hc = s->hc;
    if (s->queued)
        return;
    s->queued = true;
    s->qnext = NULL;
    if (hc->qtail != NULL)
        hc->qtail->qnext = s;
    else
        hc->q = s;
    hc->qtail = s;
}

static void dequeue(struct h2s *s)
{
    struct h2c *hc = s->hc;
    if (!s->queued)
        return;
    struct h2s **pp = &hc->q, *prev = NULL;
    while (*pp != s) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    *pp = s->qnext;
    if (hc->qtail == s)
        hc->qtail = prev;
    s->queued = false;
}

/* Runs the connection's work after the current event (coalescing every
 * stream's output of this loop iteration into one write). */
static void flush_deferred(struct loop *l, struct defer *d)
{
    (void)l;
    struct conn *c = container_of(d, struct conn, defer);
    if (!c->dead && c->h2 != NULL)
        h2c_run(c->h2);
}

static void flush_later(struct h2c *hc)
{
    loop_defer(hc->c->w->loop, &hc->c->defer, flush_deferred);
}

/* Gives the window back for the body bytes the transaction sent on. */
static void ack(struct h2s *s, bool all)
{
    size_t left = all ? 0 : buf_len(&s->rb);
    if (s->unacked > left) {
        h2_consume(s->hc->sess, s->id, s->unacked - left);
        s->unacked = left;
        flush_later(s->hc);
    }
}

static void stream_free(struct h2s *s)
{
    struct h2c *hc = s->hc;
    dequeue(s);
    timer_cancel(hc->c->w->loop, &s->timer);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        hc->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    buf_put(&s->rb);
    s->magic = 0;
    free(s);
}

static void stream_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct h2s *s = container_of(tm, struct h2s, timer);
    if (s->t != NULL)
        txn_timeout(s->t, true);
}

/* ---- collecting the request head ---- */

static bool grow(struct pool *p, char **buf, size_t *cap, size_t len, size_t need)
{
    if (len + need <= *cap)
        return true;
    size_t ncap = MAX(*cap * 2, len + need + 256);
    char *n = pool_alloc(p, ncap);
    if (n == NULL)
        return false;
    if (len > 0)
        memcpy(n, *buf, len);
    *buf = n;
    *cap = ncap;
    return true;
}

static bool append(struct h2s *s, const char *a, size_t alen, const char *b, size_t blen)
{
    if (!grow(s->t->pool, &s->head, &s->hcap, s->hlen, alen + blen + 4))
        return false;
    memcpy(s->head + s->hlen, a, alen);
    s->hlen += alen;
    memcpy(s->head + s->hlen, ": ", 2);
    s->hlen += 2;
    memcpy(s->head + s->hlen, b, blen);
    s->hlen += blen;
    memcpy(s->head + s->hlen, "\r\n", 2);
    s->hlen += 2;
    return true;
}

static struct str keep(struct h2s *s, const char *v, size_t len)
{
    char *p = pool_strndup(s->t->pool, v, len);
    if (p == NULL) {
        s->status = 503;
        return STR_NULL;
    }
    return str_make(p, len);
}

static void cb_field(void *sud, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct h2s *s = sud;
    struct str n = str_make(name, nlen);
    if (s->status != 0 || s->t == NULL)
        return;
    if (nlen > 0 && name[0] == ':') { /* nghttp2 checked which and where */
        if (str_eq(n, STR_LIT(":method")))
            s->method = keep(s, value, vlen);
        else if (str_eq(n, STR_LIT(":path")))
            s->path = keep(s, value, vlen);
        else if (str_eq(n, STR_LIT(":authority")))
            s->authority = keep(s, value, vlen);
        return; /* :scheme: the connection says what it is */
    }
    if (str_eq(n, STR_LIT("host"))) {
        s->host = keep(s, value, vlen);
        return;
    }
    if (str_eq(n, STR_LIT("cookie"))) {
        if (!grow(s->t->pool, &s->cookie, &s->cookie_cap, s->cookie_len, vlen + 2)) {
            s->status = 503;
            return;
        }
        if (s->cookie_len > 0) {
            memcpy(s->cookie + s->cookie_len, "; ", 2);
            s->cookie_len += 2;
        }
        memcpy(s->cookie + s->cookie_len, value, vlen);
        s->cookie_len += vlen;
        return;
    }
    if (str_eq(n, STR_LIT("content-length")))
        s->has_cl = true;
    if (!append(s, name, nlen, value, vlen))
        s->status = 503;
}

/* Writes "METHOD path HTTP/1.1", Host and the collected fields into one
 * HTTP/1.1 head and parses it like any other request. Returns 0 or the
 * status to refuse the request with. */
static int make_request(struct h2s *s, bool end)
{
    struct txn *t = s->t;
    struct str host = s->authority.len > 0 ? s->authority : s->host;
    if (s->authority.len > 0 && s->host.len > 0 &&
        !str_ieq(s->authority, s->host))
        return 400; /* RFC 9113 §8.3.1: they must name the same thing */
    if (s->method.len == 0)
        return 400;
    struct str target = str_eq(s->method, STR_LIT("CONNECT")) ? host : s->path;
    size_t need = s->method.len + target.len + host.len + s->hlen + s->cookie_len + 96;
    char *h = pool_alloc(t->pool, need);
    if (h == NULL)
        return 503;
    size_t n = 0;
#define PUT(p, l)                                                              \
    do {                                                                       \
        memcpy(h + n, (p), (l));                                               \
        n += (l);                                                              \
    } while (0)
    PUT(s->method.p, s->method.len);
    PUT(" ", 1);
    PUT(target.p, target.len);
    PUT(" HTTP/1.1\r\n", 11);
    if (host.len > 0) {
        PUT("host: ", 6);
        PUT(host.p, host.len);
        PUT("\r\n", 2);
    }
    if (s->hlen > 0)
        PUT(s->head, s->hlen);
    if (s->cookie_len > 0) {
        PUT("cookie: ", 8);
        PUT(s->cookie, s->cookie_len);
        PUT("\r\n", 2);
    }
    if (!end && !s->has_cl)
        PUT("transfer-encoding: chunked\r\n", 28); /* framed on the way up */
    PUT("\r\n", 2);
#undef PUT
    const struct cfg_limits *lim = &t->c->cl->limits;
    struct h1_limits hl = { .max_head = MAX(n, lim->header_bytes),
                            .max_fields = lim->header_count,
                            .max_target = lim->target_length };
    int rc = h1_parse_request(h, n, &t->req, &hl);
    if (rc > 0)
        return 0;
    return t->req.err_status != 0 ? t->req.err_status : 400;
}

/* The head is complete: start the transaction (from the run queue). */
static void start(struct h2s *s)
{
    struct txn *t = s->t;
    s->started = true;
    int status = s->status != 0 ? s->status : make_request(s, s->no_body);
    if (status != 0) {
        if (status == 503) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return;
        }
        txn_reject(t, status, "http_request_error",
                   status == 431 ? "header_list_too_large" : t->req.err_reason);
        return;
    }
    if (!s->end_seen)
        timer_set(t->c->w->loop, &s->timer, t->c->cl->timeouts.client_body,
                  stream_timeout);
    txn_start(t, &t->req);
}

/* ---- session callbacks ---- */

static void *cb_begin(void *ud, int32_t id)
{
    struct h2c *hc = ud;
    struct conn *c = hc->c;
    if (c->w->draining)
        return NULL;
    struct h2s *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->t = txn_alloc(c);
    if (s->t == NULL) {
        free(s);
        return NULL;
    }
    s->magic = H2S_MAGIC;
    s->hc = hc;
    s->id = id;
    s->t->h2 = s;
    s->t->rb = &s->rb;
    s->next = hc->streams;
    if (hc->streams != NULL)
        hc->streams->prev = s;
    hc->streams = s;
    timer_cancel(c->w->loop, &c->timer); /* not idle any more */
    return s;
}

static void cb_head(void *sud, bool end, int status)
{
    struct h2s *s = sud;
    s->head_done = true;
    s->end_seen = end;
    s->no_body = end;
    if (status != 0)
        s->status = status;
    enqueue(s);
}

static void cb_data(void *sud, const uint8_t *p, size_t len)
{
    struct h2s *s = sud;
    struct txn *t = s->t;
    if (t == NULL || t->phase == T_LOCAL || t->phase == T_DONE) {
        h2_consume(s->hc->sess, s->id, len); /* nobody reads it any more */
        return;
    }
    /* the stream window bounds what can arrive unacknowledged: room for it
     * is made here, so the copy never fails for lack of space */
    struct buf *b = &s->rb;
    if (buf_get(b) < 0 || (buf_room(b) < len && (buf_compact(b), buf_room(b) < len) &&
                           buf_grow(b, buf_len(b) + len) < 0)) {
        h2_consume(s->hc->sess, s->id, len);
        h2_reset(s->hc->sess, s->id, H2_INTERNAL_ERROR);
        return;
    }
    memcpy(buf_tail(b), p, len);
    b->end += (uint32_t)len;
    s->unacked += len;
    timer_set(t->c->w->loop, &s->timer, t->c->cl->timeouts.client_body, stream_timeout);
    enqueue(s);
}

static void cb_end(void *sud)
{
    struct h2s *s = sud;
    s->end_seen = true;
    if (s->t != NULL)
        enqueue(s);
}

static void cb_close(void *sud, uint32_t code)
{
    struct h2s *s = sud;
    struct txn *t = s->t;
    s->closed = true;
    if (s->unacked > 0) /* the connection window must not leak */
        h2_consume(s->hc->sess, s->id, s->unacked);
    s->unacked = 0;
    if (t == NULL) {
        stream_free(s);
        return;
    }
    if (code == H2_NO_ERROR && t->head_sent) {
        enqueue(s); /* the response went out whole: finish it normally */
        return;
    }
    /* reset by the client (or by us before it ended): give up */
    if (t->reason == NULL)
        t->reason = code == H2_CANCEL || code == H2_NO_ERROR ? "client_closed"
                                                             : "stream_reset";
    s->t = NULL;
    txn_abort(t);
    stream_free(s);
}

static ssize_t cb_pull(void *sud, uint8_t *buf, size_t len, bool *eof)
{
    struct h2s *s = sud;
    if (s->t == NULL) {
        *eof = true;
        return 0;
    }
    ssize_t n = txn_pull(s->t, (char *)buf, len, eof);
    if (n != -EAGAIN)
        enqueue(s); /* read more from upstream, or finish */
    return n;
}

/* Response trailers of an HTTP/2 upstream (gRPC's grpc-status). */
static size_t cb_trailers(void *sud, const struct h2_nv **nv)
{
    struct h2s *s = sud;
    if (s->t == NULL || s->t->hx == NULL)
        return 0;
    return h2up_trailers(s->t, nv);
}

/* A request trailer field: kept for an HTTP/2 upstream (h2s_trailers),
 * which may not be chosen yet; the HTTP/1.1 pipeline ignores them. */
static void cb_trailer(void *sud, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
    struct h2s *s = sud;
    if (s->t == NULL || s->ntr >= 64)
        return;
    if (s->tr == NULL)
        s->tr = pool_alloc(s->t->pool, 64 * sizeof(*s->tr));
    char *n = pool_strndup(s->t->pool, name, nlen);
    char *v = pool_strndup(s->t->pool, value, vlen);
    if (s->tr != NULL && n != NULL && v != NULL)
        s->tr[s->ntr++] = (struct h2_nv){ n, nlen, v, vlen };
}

size_t h2s_trailers(struct txn *t, const struct h2_nv **nv)
{
    struct h2s *s = t->h2;
    *nv = s->tr;
    return s->ntr;
}

static const struct h2_cbs cbs = {
    .begin = cb_begin,
    .field = cb_field,
    .head = cb_head,
    .data = cb_data,
    .end = cb_end,
    .close = cb_close,
    .pull = cb_pull,
    .trailers = cb_trailers,
    .trailer = cb_trailer,
};

/* ---- the client side of a transaction on a stream (cli_*) ---- */

/* Turns the HTTP/1.1 head the pipeline serialized ("HTTP/1.1 200 OK\r\n"
 * and fields) into HEADERS: lower-case names, no connection-specific
 * fields (RFC 9113 §8.2.2). */
static int submit_head(struct h2s *s, struct txn *t, struct outq *q, bool body)
{
    char *p = q->head + q->head_off;
    size_t len = q->head_len - q->head_off;
    q->head_off = q->head_len;
    if (len < 14 || memcmp(p, "HTTP/1.1 ", 9) != 0)
        return -EINVAL;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += p[i] == '\n';
    struct h2_nv *nv = pool_alloc(t->pool, (lines + 1) * sizeof(*nv));
    if (nv == NULL)
        return -ENOMEM;
    size_t n = 0;
    nv[n++] = (struct h2_nv){ ":status", 7, p + 9, 3 };
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    char *e = p + len;
    char *l = memchr(p, '\n', len);
    for (l = l != NULL ? l + 1 : e; l < e;) {
        char *eol = memchr(l, '\n', (size_t)(e - l));
        if (eol == NULL || eol - l < 2)
            break; /* the empty line */
        char *colon = memchr(l, ':', (size_t)(eol - l));
        char *next = eol + 1;
        if (colon == NULL) {
            l = next;
            continue;
        }
        struct str name = str_make(l, (size_t)(colon - l));
        char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(eol - 1 - v); /* without the CR */
        l = next;
        if (str_ieq_lit(name, "connection") || str_ieq_lit(name, "keep-alive") ||
            str_ieq_lit(name, "proxy-connection") ||
            str_ieq_lit(name, "transfer-encoding") || str_ieq_lit(name, "upgrade"))
            continue;
        for (size_t i = 0; i < name.len; i++)
            ((char *)name.p)[i] = ascii_lower(name.p[i]);
        nv[n++] = (struct h2_nv){ name.p, name.len, v, vlen };
    }
    flush_later(s->hc);
    return h2_submit(s->hc->sess, s->id, nv, n, body, status < 200);
}

ssize_t h2s_send(struct txn *t, struct outq *q, const char *data, size_t len)
{
    struct h2s *s = t->h2;
    (void)data;
    if (s->closed)
        return -EPIPE;
    if (q->head_off < q->head_len) {
        bool body = t->phase == T_LOCAL ? t->local_off < t->local_len
                                        : !(t->resf.done && t->resf.fwd == 0);
        if (submit_head(s, t, q, body) < 0)
            return -EPROTO;
    }
    if (len == 0)
        return 0;
    h2_resume(s->hc->sess, s->id);
    flush_later(s->hc);
    return -EAGAIN; /* taken by cb_pull when the client has room */
}

ssize_t h2s_read(struct txn *t)
{
    struct h2s *s = t->h2;
    ack(s, false);
    return s->end_seen ? 0 : -EAGAIN;
}

void h2s_timer(struct txn *t, int64_t ms)
{
    struct h2s *s = t->h2;
    if (ms < 0)
        timer_cancel(t->c->w->loop, &s->timer);
    else
        timer_set(t->c->w->loop, &s->timer, ms, stream_timeout);
}

void h2s_done(struct txn *t)
{
    struct h2s *s = t->h2;
    pick_end(t); /* the upstream slot, if an error path still held it */
    alog_write(t);
    s->t = NULL;
    t->magic = 0;
    pool_free(t->pool);
    timer_cancel(s->hc->c->w->loop, &s->timer);
    ack(s, true);
    buf_put(&s->rb);
    if (s->closed) {
        stream_free(s);
        return;
    }
    /* the end of the body may still have to be pulled */
    h2_resume(s->hc->sess, s->id);
    flush_later(s->hc);
}

void h2s_abort(struct txn *t)
{
    struct h2s *s = t->h2;
    struct h2c *hc = s->hc;
    if (!s->closed)
        h2_reset(hc->sess, s->id, H2_INTERNAL_ERROR);
    s->t = NULL;
    txn_abort(t);
    ack(s, true);
    buf_put(&s->rb);
    if (s->closed)
        stream_free(s);
    flush_later(hc);
}

/* ---- the connection ---- */

/* Runs the transactions of the queued streams. */
static void run_queue(struct h2c *hc)
{
    /* streams queued while this runs wait for the next round */
    struct h2s *list = hc->q;
    hc->q = hc->qtail = NULL;
    for (struct h2s *s = list; s != NULL; s = s->qnext)
        s->queued = false;
    struct h2s *s = list;
    while (s != NULL) {
        struct h2s *next = s->qnext;
        /* a stream run earlier may have freed this one (never: streams
         * are freed by their own transaction or by the session) */
        DASSERT(s->magic == H2S_MAGIC);
        if (s->t == NULL) {
            if (s->closed)
                stream_free(s);
        } else if (!s->started) {
            if (s->head_done)
                start(s);
        } else {
            txn_client_event(s->t);
        }
        s = next;
    }
}

/* Writes frames until the socket would block. Returns 0 or -1 (broken). */
static int flush(struct h2c *hc)
{
    struct conn *c = hc->c;
    for (int i = 0; i < 64; i++) {
        if (buf_len(&hc->wbuf) == 0) {
            if (!h2_want_write(hc->sess))
                break;
            if (buf_get(&hc->wbuf) < 0)
                return -1;
            ssize_t n = h2_send(hc->sess, (uint8_t *)buf_tail(&hc->wbuf),
                                buf_room(&hc->wbuf));
            if (n < 0)
                return -1;
            if (n == 0)
                break;
            hc->wbuf.end += (uint32_t)n;
        }
        if (!c->writable)
            break;
        struct iovec iov = { buf_head(&hc->wbuf), buf_len(&hc->wbuf) };
        ssize_t w = conn_sendv(c, &iov, 1);
        if (w == -EAGAIN)
            break;
        if (w < 0)
            return -1;
        buf_consume(&hc->wbuf, (size_t)w);
    }
    if (buf_len(&hc->wbuf) == 0)
        buf_put(&hc->wbuf);
    return 0;
}

/* Reads what the socket has (while the output keeps up) and feeds it to the
 * session. Returns 1 on progress, 0, or -1 when the connection is over. */
static int feed(struct h2c *hc)
{
    struct conn *c = hc->c;
    if (!c->readable || buf_len(&hc->wbuf) > 0 || !h2_want_read(hc->sess))
        return 0;
    ssize_t n = conn_read(c);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0)
        return -1;
    int rc = h2_recv(hc->sess, (const uint8_t *)buf_head(&c->rbuf), buf_len(&c->rbuf));
    buf_consume(&c->rbuf, buf_len(&c->rbuf));
    if (rc < 0 && h2_ended(hc->sess) == H2_END_PROTOCOL && !h2_want_write(hc->sess))
        return -1;
    return 1;
}

static void h2c_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    conn_close(container_of(tm, struct conn, timer));
}

static void h2c_run(struct h2c *hc)
{
    struct conn *c = hc->c;
    for (int round = 0; round < ROUNDS; round++) {
        int r = feed(hc);
        if (r < 0) {
            conn_close(c);
            return;
        }
        run_queue(hc);
        if (c->dead)
            return;
        if (flush(hc) < 0) {
            conn_close(c);
            return;
        }
        if (r == 0 && hc->q == NULL)
            break;
    }
    enum h2_end why = h2_ended(hc->sess);
    if (why != H2_END_NONE && buf_len(&hc->wbuf) == 0 && !h2_want_write(hc->sess)) {
        static const char *const what[] = { "", "protocol error", "rapid reset",
                                            "header flood", "misbehaviour" };
        char ip[64];
        sock_ntop(&c->peer.sa, ip, sizeof(ip));
        log_warn("h2: client %s: GOAWAY for %s", ip, what[why]);
        conn_close(c);
        return;
    }
    if (!h2_want_read(hc->sess) && !h2_want_write(hc->sess) &&
        buf_len(&hc->wbuf) == 0) {
        conn_close(c); /* GOAWAY exchanged, nothing left */
        return;
    }
    if (c->w->draining && h2_streams(hc->sess) == 0 && buf_len(&hc->wbuf) == 0) {
        conn_close(c);
        return;
    }
    if (hc->q != NULL)
        flush_later(hc); /* more to do, after other connections' events */
    const struct cfg_timeouts *to = &c->cl->timeouts;
    if (buf_len(&hc->wbuf) > 0)
        timer_set(c->w->loop, &c->timer, to->send, h2c_timeout);
    else if (h2_streams(hc->sess) == 0)
        timer_set(c->w->loop, &c->timer, to->client_idle, h2c_timeout);
    else
        timer_cancel(c->w->loop, &c->timer);
    buf_release_if_empty(&c->rbuf);
}

int h2c_start(struct conn *c)
{
    const struct cfg_listener *cl = c->cl;
    const struct cfg_http2 *h = &cl->http2;
    struct h2_limits lim = {
        .max_streams = h->max_streams,
        .stream_window = h->stream_window,
        .conn_window = h->conn_window,
        .max_header_list = (uint32_t)(cl->limits.header_bytes + 32 * cl->limits.header_count),
        .max_fields = (uint32_t)cl->limits.header_count,
        .max_resets = h->max_resets,
        .reset_rate = h->reset_rate,
        .max_glitches = h->max_glitches,
    };
    struct h2c *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return -ENOMEM;
    hc->c = c;
    hc->sess = h2_sess_new(&lim, &cbs, hc);
    if (hc->sess == NULL) {
        free(hc);
        return -ENOMEM;
    }
    c->h2 = hc;
    c->state = C_H2;
    /* bytes already read (the h2c preface) are fed first */
    if (buf_len(&c->rbuf) > 0) {
        int rc = h2_recv(hc->sess, (const uint8_t *)buf_head(&c->rbuf), buf_len(&c->rbuf));
        buf_consume(&c->rbuf, buf_len(&c->rbuf));
        if (rc < 0)
            return -EPROTO;
    }
    h2c_run(hc);
    return 0;
}

void h2c_event(struct conn *c)
{
    h2c_run(c->h2);
}

void h2c_close(struct conn *c)
{
    struct h2c *hc = c->h2;
    c->h2 = NULL;
    while (hc->streams != NULL) {
        struct h2s *s = hc->streams;
        if (s->t != NULL) {
            struct txn *t = s->t;
            s->t = NULL;
            if (t->reason == NULL)
                t->reason = "client_closed";
            txn_abort(t);
        }
        stream_free(s);
    }
    buf_put(&hc->wbuf);
    h2_sess_free(hc->sess);
    free(hc);
}

void h2c_drain(struct conn *c)
{
    h2_goaway(c->h2->sess);
    flush_later(c->h2);
}

int h2c_preface(const struct buf *b)
{
    size_t n = MIN(buf_len(b), sizeof(PREFACE) - 1);
    if (memcmp(buf_head(b), PREFACE, n) != 0)
        return -1;
    return n == sizeof(PREFACE) - 1 ? 1 : 0;
}
