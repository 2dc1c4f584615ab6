/*
 * The reverse-proxy pipeline for one request: pick a server, connect (or
 * reuse a pooled connection), stream the request head and body up, parse the
 * response head, stream the body down, then hand the upstream connection
 * back to the pool.
 *
 * Both sockets are edge-triggered, so every event just records readiness
 * and calls txn_pump(), which moves bytes in each direction until a socket
 * would block or a buffer is empty. Backpressure falls out of that: a
 * direction stops reading its source while its sink is not writable, and
 * nothing is ever held beyond one buffer per direction.
 *
 *   client rbuf --(reqf)--> upstream      upstream rbuf --(resf)--> client
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/proxy_int.h"

static void txn_pump(struct txn *t);
static void ups_event(struct loop *l, struct ev *e, uint32_t events);
static void ups_timeout(struct loop *l, struct timer *tm);

/* ---- body framing ---- */

static void flow_init(struct flow *f, enum h1_body kind, uint64_t len)
{
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->left = len;
    h1_chunked_init(&f->ch);
    f->done = (kind == H1_B_NONE) || (kind == H1_B_LENGTH && len == 0);
}

/* Classifies the bytes at the start of <b> as body bytes to send on (fwd)
 * and framing to drop (skip). Call only when fwd and skip are both 0.
 * Returns 0 or -EBADMSG. */
static int flow_take(struct flow *f, struct buf *b)
{
    size_t avail = buf_len(b);
    char *p = buf_head(b);
    switch (f->kind) {
    case H1_B_NONE:
        f->done = true;
        return 0;
    case H1_B_LENGTH: {
        size_t n = avail < f->left ? avail : (size_t)f->left;
        f->fwd = n;
        f->left -= n;
        f->done = f->left == 0;
        break;
    }
    case H1_B_CHUNKED: {
        size_t dlen = 0;
        ssize_t n = h1_chunked_scan(&f->ch, p, avail, f->decode ? p : NULL,
                                    f->decode ? &dlen : NULL);
        if (n < 0)
            return -EBADMSG;
        if (f->decode) {
            f->fwd = dlen;
            f->skip = (size_t)n - dlen;
        } else {
            f->fwd = (size_t)n;
        }
        f->done = f->ch.state == H1_CH_DONE;
        break;
    }
    case H1_B_EOF:
        f->fwd = avail;
        break;
    }
    f->bytes += f->fwd;
    if (f->fwd == 0 && f->skip > 0) {
        buf_consume(b, f->skip);
        f->skip = 0;
    }
    return 0;
}

/* After <n> bytes of fwd were written. */
static void flow_sent(struct flow *f, struct buf *b, size_t n)
{
    f->fwd -= n;
    if (f->fwd == 0 && f->skip > 0) {
        n += f->skip;
        f->skip = 0;
    }
    buf_consume(b, n);
}

/* writev of the pending head and <len> bytes at <data>. Returns the number
 * of <data> bytes written (>= 0), -EAGAIN or -errno. */
static ssize_t send_out(int fd, struct outq *q, const char *data, size_t len)
{
    struct iovec iov[2];
    int n = 0;
    size_t hl = q->head_len - q->head_off;
    if (hl > 0)
        iov[n++] = (struct iovec){ q->head + q->head_off, hl };
    if (len > 0)
        iov[n++] = (struct iovec){ (void *)data, len };
    if (n == 0)
        return 0;
    for (;;) {
        ssize_t w = writev(fd, iov, n);
        if (w >= 0) {
            size_t uw = (size_t)w;
            if (uw <= hl) {
                q->head_off += uw;
                return 0;
            }
            q->head_off = q->head_len;
            return (ssize_t)(uw - hl);
        }
        int err = errno;
        if (err == EINTR)
            continue;
        return -err;
    }
}

static inline bool outq_pending(const struct outq *q)
{
    return q->head_off < q->head_len;
}

/* ---- start ---- */

static bool idempotent(enum h1_method m)
{
    return m == H1_M_GET || m == H1_M_HEAD || m == H1_M_PUT ||
           m == H1_M_DELETE || m == H1_M_OPTIONS || m == H1_M_TRACE;
}

static uint64_t body_limit(const struct txn *t)
{
    if (t->route != NULL && t->route->max_body != 0)
        return t->route->max_body;
    return t->c->cl->limits.body_bytes;
}

int txn_keep_request(struct txn *t, const struct h1_msg *req)
{
    struct h1_msg *m = &t->req;
    struct pool *p = t->pool;
    const struct str *views[] = { &m->method, &m->target, &m->path, &m->host,
                                  &m->authority };
    for (size_t i = 0; i < ARRAY_LEN(views); i++) {
        struct str *v = (struct str *)views[i];
        if (v->len == 0)
            continue;
        char *s = pool_strndup(p, v->p, v->len);
        if (s == NULL)
            return -ENOMEM;
        v->p = s;
    }
    (void)req;
    /* Fields: only what the access log needs survives. */
    size_t keep = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        struct h1_field *f = &m->fields[i];
        if (!str_ieq_lit(f->name, "user-agent") && !str_ieq_lit(f->name, "referer"))
            continue;
        char *n = pool_strndup(p, f->name.p, f->name.len);
        char *v = pool_strndup(p, f->value.p, f->value.len);
        if (n == NULL || v == NULL)
            return -ENOMEM;
        m->fields[keep].name = str_make(n, f->name.len);
        m->fields[keep].value = str_make(v, f->value.len);
        keep++;
    }
    m->nfields = keep;
    return 0;
}

void txn_start(struct conn *c, struct h1_msg *req, struct h1_field *fields)
{
    struct txn *t = c->txn;
    (void)fields;
    t->keepalive = h1_keepalive(req);
    flow_init(&t->reqf, req->body, req->content_length);
    /* The head is in: client_header no longer applies. A body has
     * client_body between reads; without one, the upstream's timers (or
     * the tunnel's idle timer) are what runs now. */
    if (t->reqf.done)
        timer_cancel(c->w->loop, &c->timer);
    else
        timer_set(c->w->loop, &c->timer, c->cl->timeouts.client_body, c->timer.cb);
    t->upgrade = (req->flags & H1_CONN_UPGRADE) && (req->flags & H1_HAS_UPGRADE) &&
                 h1_find(req, STR_LIT("upgrade")) != NULL &&
                 h1_list_has(h1_find(req, STR_LIT("upgrade"))->value,
                             STR_LIT("websocket"));
    if (c->cl->kind == CFG_L_FORWARD && fwd_start(t, req))
        return;
    struct str authority = req->form == H1_F_ABSOLUTE ? req->authority : req->host;
    t->host = route_host(t->pool, authority);
    t->site = route_site(c->cl, t->host);
    if (t->site != NULL) {
        struct str path = req->form == H1_F_ORIGIN || req->form == H1_F_ABSOLUTE
                              ? req->path
                              : STR_LIT("/");
        t->route = route_match(t->site, path, t->pool);
    }

    /* Build the upstream head while the field views are still valid. */
    bool proxy = t->route != NULL && t->route->action == CFG_ACT_PROXY;
    if (proxy)
        t->ups = ups_of(c->w->ups, c->w->cfg, t->route->upstream);
    int rc = proxy ? hdr_request(t, req) : 0;
    size_t head_len = req->head_len;
    if (rc == 0)
        rc = txn_keep_request(t, req);
    buf_consume(&c->rbuf, head_len);
    if (rc < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (req->form == H1_F_AUTHORITY) {
        t->keepalive = false;
        txn_error(t, 405, "http_request_denied",
                  "CONNECT is not served on this listener.");
        return;
    }
    if (req->flags & H1_EXPECT_OTHER) {
        t->keepalive = false;
        txn_error(t, 417, "http_request_error", "Unsupported Expect value.");
        return;
    }
    if (t->site == NULL) {
        txn_error(t, 421, "http_request_denied", "No site is configured for this host.");
        return;
    }
    if (t->route == NULL) {
        txn_error(t, 404, "http_request_denied", "No route matches this path.");
        return;
    }
    uint64_t limit = body_limit(t);
    if (limit != 0 && req->body == H1_B_LENGTH && req->content_length > limit) {
        t->keepalive = false;
        txn_error(t, 413, "http_request_denied", "The request body is too large.");
        return;
    }
    if (!proxy) {
        const struct cfg_route *r = t->route;
        txn_local(t, r->ret_status, r->ret_type, r->ret_body, r->ret_body_len, NULL);
        return;
    }
    txn_connect(t);
}

/* ---- upstream connection ---- */

static void upstream_failed(struct txn *t, int err, bool connecting);

static void attach(struct txn *t, struct uconn *uc)
{
    t->uc = uc;
    uc->owner = t;
    uc->ev.cb = ups_event;
    uc->nreq++;
}

/* Every server was tried and none could be reached. */
static void connect_exhausted(struct txn *t)
{
    if (t->last_err == -ETIMEDOUT)
        txn_error(t, 504, "connection_timeout",
                  "The upstream server did not accept the connection in time.");
    else
        txn_error(t, 502, "connection_refused",
                  "The upstream server refused the connection.");
}

void txn_connect(struct txn *t)
{
    struct worker *w = t->c->w;
    const struct cfg_upstream *cu = t->ups->cu;
    for (;;) {
        int srv = ups_pick(t->ups, t->tried);
        if (srv < 0)
            break;
        if (srv < 64)
            t->tried |= 1ull << srv;
        t->attempts++;
        /* a tunnel needs a connection of its own: a pooled one has
         * carried HTTP and the server expects more of it */
        struct uconn *uc = t->req.meth == H1_M_CONNECT
                               ? NULL
                               : ups_take_idle(t->ups, (unsigned)srv);
        if (uc != NULL) {
            attach(t, uc);
            uc->writable = true;
            t->phase = T_REQUEST;
            txn_pump(t);
            return;
        }
        int err = 0;
        uc = ups_connect(t->ups, (unsigned)srv, ups_event, &err);
        if (uc == NULL) {
            log_warn("upstream %s: server %s: connect failed: %s", cu->name,
                     cu->servers[srv].addr.text, strerror(-err));
            t->last_err = err;
            continue;
        }
        attach(t, uc);
        t->phase = T_CONNECT;
        timer_set(w->loop, &uc->timer, cu->connect_timeout, ups_timeout);
        return;
    }
    connect_exhausted(t);
}

/* Connect failed or timed out, or the connection broke before any response
 * byte. A failed connect moves on to the next server (nothing was sent). A
 * pooled connection found dead is replaced once by a fresh one, when the
 * request can be replayed (idempotent, no body). Otherwise 502. */
static void upstream_failed(struct txn *t, int err, bool connecting)
{
    const struct cfg_upstream *cu = t->ups->cu;
    struct uconn *uc = t->uc;
    bool reused = uc != NULL && uc->reused;
    int srv = uc != NULL ? (int)uc->srv : -1;
    if (uc != NULL) {
        log_warn("upstream %s: server %s: %s: %s", cu->name,
                 cu->servers[uc->srv].addr.text,
                 connecting ? "connect failed" : "connection broke",
                 strerror(-err));
        t->uc = NULL;
        ups_close(uc);
    }
    if (connecting) {
        t->last_err = err;
        txn_connect(t);
        return;
    }
    bool can_replay = t->reqf.kind == H1_B_NONE && idempotent(t->req.meth);
    if (!t->resp_started && reused && can_replay && !t->replayed) {
        t->replayed = true;
        if (srv >= 0 && srv < 64)
            t->tried &= ~(1ull << srv); /* the server is fine, the conn was stale */
        t->uout.head_off = 0;
        txn_connect(t);
        return;
    }
    txn_error(t, 502, "connection_terminated",
              "The upstream server closed the connection.");
}

static ssize_t ups_read(struct uconn *uc)
{
    if (buf_get(&uc->rbuf) < 0)
        return -ENOMEM;
    if (buf_room(&uc->rbuf) == 0) {
        buf_compact(&uc->rbuf);
        if (buf_room(&uc->rbuf) == 0)
            return -ENOBUFS;
    }
    for (;;) {
        size_t room = buf_room(&uc->rbuf);
        ssize_t n = read(uc->ev.fd, buf_tail(&uc->rbuf), room);
        if (n > 0) {
            uc->rbuf.end += (uint32_t)n;
            if ((size_t)n < room && !uc->rdhup)
                uc->readable = false; /* drained: the next byte raises an edge */
            return n;
        }
        if (n == 0) {
            uc->readable = false;
            return 0;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN) {
            uc->readable = false;
            return -EAGAIN;
        }
        return -err;
    }
}

static void ups_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct uconn *uc = container_of(e, struct uconn, ev);
    if (uc->ev.fd < 0)
        return;
    CHECK_OBJ(uc, UCONN_MAGIC);
    struct txn *t = uc->owner;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        uc->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        uc->writable = true;
    if (events & EPOLLRDHUP)
        uc->rdhup = true;
    if (!uc->connected) {
        if (!(events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
            return;
        int err = sock_error(uc->ev.fd);
        if (err != 0) {
            upstream_failed(t, -err, true);
            return;
        }
        uc->connected = true;
        timer_cancel(l, &uc->timer);
        t->phase = T_REQUEST;
        if (t->req.meth == H1_M_CONNECT && fwd_tunnel_open(t) < 0)
            return;
    }
    txn_pump(t);
}

static void ups_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct uconn *uc = container_of(tm, struct uconn, timer);
    struct txn *t = uc->owner;
    if (!uc->connected) {
        upstream_failed(t, -ETIMEDOUT, true);
        return;
    }
    txn_timeout(t, false);
}

/* ---- timers ---- */

static void arm_upstream_timer(struct txn *t)
{
    struct uconn *uc = t->uc;
    if (uc == NULL || !uc->connected)
        return;
    const struct cfg_upstream *cu = t->ups->cu;
    bool sending = outq_pending(&t->uout) || t->reqf.fwd > 0;
    timer_set(t->c->w->loop, &uc->timer,
              sending ? cu->send_timeout : cu->read_timeout, ups_timeout);
}

static void arm_client_timer(struct txn *t, bool sending)
{
    struct conn *c = t->c;
    const struct cfg_timeouts *to = &c->cl->timeouts;
    timer_set(c->w->loop, &c->timer, sending ? to->send : to->client_body,
              c->timer.cb);
}

/* ---- client -> upstream ---- */

/* Moves request head and body bytes upstream. Returns 0, or -1 when the
 * transaction was ended (failed). */
static int pump_request(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    bool progress = false;
    int rc = 0;
    for (;;) {
        /* classify first, so the head and the first body bytes leave in
         * one writev */
        if (t->reqf.fwd == 0 && !t->reqf.done && buf_len(&c->rbuf) > 0) {
            if (flow_take(&t->reqf, &c->rbuf) < 0) {
                t->keepalive = false;
                txn_error(t, 400, "http_request_error", "Malformed chunked request body.");
                return -1;
            }
            uint64_t limit = body_limit(t);
            if (limit != 0 && t->reqf.bytes > limit) {
                t->keepalive = false;
                txn_error(t, 413, "http_request_denied", "The request body is too large.");
                return -1;
            }
        }
        if (outq_pending(&t->uout) || t->reqf.fwd > 0) {
            if (!uc->writable)
                break;
            ssize_t n = send_out(uc->ev.fd, &t->uout, buf_head(&c->rbuf), t->reqf.fwd);
            if (n == -EAGAIN) {
                uc->writable = false;
                break;
            }
            if (n < 0) {
                if (t->resp_started) { /* it answered early: stop sending */
                    t->reqf.done = true;
                    t->reqf.fwd = 0;
                    t->keepalive = false;
                    uc->rdhup = true; /* never reuse */
                    break;
                }
                upstream_failed(t, (int)n, false);
                return -1;
            }
            flow_sent(&t->reqf, &c->rbuf, (size_t)n);
            progress = true;
            continue;
        }
        if (t->reqf.done)
            break;
        if (!c->readable)
            break;
        ssize_t n = conn_read(c);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            /* the client went away in the middle of its body */
            t->reason = "client_closed";
            rc = -1;
            conn_close(c);
            return rc;
        }
        progress = true;
        arm_client_timer(t, false);
    }
    if (progress)
        arm_upstream_timer(t);
    return rc;
}

/* ---- upstream -> client ---- */

static void txn_finish(struct txn *t);

static int start_response(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    struct h1_msg *r = &t->resp;
    int status = r->status;
    if (status >= 100 && status < 200 && !(status == 101 && t->upgrade)) {
        /* interim: forward to HTTP/1.1 clients, then parse the next head */
        if (t->req.version >= 11 && status != 101) {
            if (hdr_response(t, r) < 0)
                return -ENOMEM;
        }
        buf_consume(&uc->rbuf, r->head_len);
        struct h1_field *f = r->fields;
        size_t max = c->cl->limits.header_count;
        h1_msg_init(r, f, max);
        return 0;
    }
    t->ustatus = status;
    t->status = status;
    if (status == 101) {
        t->phase = T_TUNNEL;
        t->keepalive = false;
        flow_init(&t->resf, H1_B_EOF, 0);
    } else {
        enum h1_body kind = h1_response_body(r, t->req.meth);
        flow_init(&t->resf, kind, r->content_length);
        if (kind == H1_B_CHUNKED && t->req.version < 11)
            t->resf.decode = true;
        if (kind == H1_B_EOF || t->resf.decode || !t->reqf.done)
            t->keepalive = false;
        t->phase = T_RESPONSE;
    }
    if (c->w->draining)
        t->keepalive = false;
    int rc = hdr_response(t, r);
    buf_consume(&uc->rbuf, r->head_len);
    t->head_sent = true;
    return rc;
}

/* Reads and parses the response head. Returns 1 when a final head is ready
 * (t->head_sent), 0 when waiting, -1 when the transaction ended. */
static int read_response_head(struct txn *t)
{
    struct uconn *uc = t->uc;
    for (;;) {
        if (outq_pending(&t->cout))
            return 0; /* an interim response is still being written */
        if (buf_len(&uc->rbuf) > 0) {
            const struct cfg_limits *lim = &t->c->cl->limits;
            struct h1_limits hl = { .max_head = 65536,
                                    .max_fields = lim->header_count,
                                    .max_target = 65536 };
            if (t->resp.fields == NULL) {
                struct h1_field *f = pool_alloc(t->pool, lim->header_count * sizeof(*f));
                if (f == NULL) {
                    txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                    return -1;
                }
                h1_msg_init(&t->resp, f, lim->header_count);
            }
            t->resp_started = true;
            int rc = h1_parse_response(buf_head(&uc->rbuf), buf_len(&uc->rbuf),
                                       &t->resp, &hl);
            if (rc > 0) {
                if (start_response(t) < 0) {
                    txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                    return -1;
                }
                if (t->head_sent)
                    return 1;
                continue;
            }
            if (rc == -EBADMSG) {
                log_warn("upstream %s: server %s: invalid response head (%s)",
                         t->ups->cu->name, t->ups->cu->servers[uc->srv].addr.text,
                         t->resp.err_reason ? t->resp.err_reason : "?");
                uc->rdhup = true;
                txn_error(t, 502, t->resp.err_status == 431
                                      ? "http_response_header_section_size"
                                      : "http_protocol_error",
                          "The upstream server sent an invalid response.");
                return -1;
            }
            if (buf_room(&uc->rbuf) == 0 && uc->rbuf.start == 0 &&
                buf_grow(&uc->rbuf, hl.max_head + 1) < 0) {
                txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                return -1;
            }
        }
        if (!uc->readable)
            return 0;
        ssize_t n = ups_read(uc);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            if (t->resp_started) {
                txn_error(t, 502, "http_response_incomplete",
                          "The upstream server sent an incomplete response.");
                return -1;
            }
            upstream_failed(t, n == 0 ? -ECONNRESET : (int)n, false);
            return -1;
        }
        arm_upstream_timer(t);
    }
}

/* Streams the response head and body to the client. Returns 0, or -1 when
 * the transaction ended. */
static int pump_response(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    if (!t->head_sent) {
        int rc = read_response_head(t);
        if (rc < 0)
            return -1;
        if (rc == 0 && !outq_pending(&t->cout))
            return 0;
    }
    bool cprog = false, uprog = false;
    for (;;) {
        if (t->head_sent && t->resf.fwd == 0 && !t->resf.done &&
            buf_len(&uc->rbuf) > 0 && flow_take(&t->resf, &uc->rbuf) < 0) {
            log_warn("upstream %s: server %s: malformed chunked body",
                     t->ups->cu->name, t->ups->cu->servers[uc->srv].addr.text);
            t->reason = "http_response_transfer_coding";
            conn_close(c);
            return -1;
        }
        if (outq_pending(&t->cout) || t->resf.fwd > 0) {
            if (!c->writable)
                break;
            ssize_t n = send_out(c->ev.fd, &t->cout, buf_head(&uc->rbuf), t->resf.fwd);
            if (n == -EAGAIN) {
                c->writable = false;
                break;
            }
            if (n < 0) {
                t->reason = "client_closed";
                conn_close(c);
                return -1;
            }
            flow_sent(&t->resf, &uc->rbuf, (size_t)n);
            cprog = true;
            continue;
        }
        if (!t->head_sent) {
            int rc = read_response_head(t);
            if (rc < 0)
                return -1;
            if (rc == 0 && !outq_pending(&t->cout))
                break;
            continue;
        }
        if (t->resf.done) {
            txn_finish(t);
            return -1;
        }
        if (!uc->readable)
            break;
        ssize_t n = ups_read(uc);
        if (n == -EAGAIN)
            break;
        if (n == 0 && t->resf.kind == H1_B_EOF) {
            t->resf.done = true;
            uc->rdhup = true;
            continue;
        }
        if (n <= 0) {
            log_warn("upstream %s: server %s: response body cut short",
                     t->ups->cu->name, t->ups->cu->servers[uc->srv].addr.text);
            t->reason = "http_response_incomplete";
            conn_close(c);
            return -1;
        }
        uprog = true;
    }
    if (uprog)
        arm_upstream_timer(t);
    if (outq_pending(&t->cout) || t->resf.fwd > 0)
        arm_client_timer(t, true);
    else if (cprog)
        timer_cancel(c->w->loop, &c->timer);
    return 0;
}

static void txn_finish(struct txn *t)
{
    struct uconn *uc = t->uc;
    t->uc = NULL;
    t->phase = T_DONE;
    if (uc != NULL) {
        timer_cancel(t->c->w->loop, &uc->timer);
        bool reuse = t->reqf.done && !outq_pending(&t->uout) && t->reqf.fwd == 0 &&
                     t->resf.kind != H1_B_EOF && h1_keepalive(&t->resp) &&
                     !uc->rdhup && t->ups->cu->keepalive > 0;
        if (reuse)
            ups_release(t->ups, uc);
        else
            ups_close(uc);
    }
    conn_txn_done(t->c);
}

/* ---- tunnel (after 101 Switching Protocols) ---- */

/* One direction of raw bytes: <src> buffer filled from <from>, written to
 * <to_fd>. Returns 1 on progress, 0 when blocked, -1 on a broken socket. */
static int tunnel_dir(int to_fd, bool *to_writable, struct buf *b, size_t *fwd,
                      uint64_t *bytes)
{
    if (*fwd == 0)
        *fwd = buf_len(b);
    if (*fwd == 0 || !*to_writable)
        return 0;
    struct outq none = { 0 };
    ssize_t n = send_out(to_fd, &none, buf_head(b), *fwd);
    if (n == -EAGAIN) {
        *to_writable = false;
        return 0;
    }
    if (n < 0)
        return -1;
    *fwd -= (size_t)n;
    *bytes += (uint64_t)n;
    buf_consume(b, (size_t)n);
    return 1;
}

static void pump_tunnel(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    bool progress = false;
    for (;;) {
        bool moved = false;
        if (outq_pending(&t->cout)) { /* the 101 head first */
            if (!c->writable)
                break;
            ssize_t n = send_out(c->ev.fd, &t->cout, NULL, 0);
            if (n == -EAGAIN) {
                c->writable = false;
                break;
            }
            if (n < 0)
                goto Broken;
            continue;
        }
        if (t->splice && t->spl == NULL && buf_len(&c->rbuf) == 0 &&
            buf_len(&uc->rbuf) == 0)
            (void)tunnel_splice_start(t);
        if (t->spl != NULL) {
            int r = tunnel_splice_pump(t);
            if (r < 0)
                goto Broken;
            moved = r > 0;
            goto Moved;
        }
        /* client -> upstream */
        int r = tunnel_dir(uc->ev.fd, &uc->writable, &c->rbuf, &t->reqf.fwd,
                           &t->reqf.bytes);
        if (r < 0)
            goto Broken;
        moved |= r > 0;
        if (buf_len(&c->rbuf) == 0 && !t->c_shut) {
            if (c->eof) {
                shutdown(uc->ev.fd, SHUT_WR);
                t->c_shut = true;
            } else if (c->readable) {
                ssize_t n = conn_read(c);
                if (n > 0 || n == 0)
                    moved = true;
                else if (n != -EAGAIN)
                    goto Broken;
            }
        }
        /* upstream -> client */
        r = tunnel_dir(c->ev.fd, &c->writable, &uc->rbuf, &t->resf.fwd,
                       &t->resf.bytes);
        if (r < 0)
            goto Broken;
        moved |= r > 0;
        if (buf_len(&uc->rbuf) == 0 && !t->u_shut) {
            if (t->up_eof) {
                shutdown(c->ev.fd, SHUT_WR);
                t->u_shut = true;
            } else if (uc->readable) {
                ssize_t n = ups_read(uc);
                if (n == 0)
                    t->up_eof = true;
                if (n >= 0)
                    moved = true;
                else if (n != -EAGAIN)
                    goto Broken;
            }
        }
    Moved:
        if (t->c_shut && t->u_shut) {
            txn_finish(t);
            return;
        }
        if (!moved)
            break;
        progress = true;
    }
    if (progress)
        timer_set(c->w->loop, &uc->timer, t->ups->cu->read_timeout, ups_timeout);
    return;
Broken:
    txn_finish(t);
}

/* ---- driving ---- */

/* The client hung up while we wait for the upstream: like nginx, take EOF
 * as "gone" (a half-close cannot be told apart) and stop the work, logged
 * 499. Pipelined bytes still waiting mean it is not gone. */
static bool client_gone(struct txn *t)
{
    struct conn *c = t->c;
    if (!c->rdhup || t->head_sent || !t->reqf.done || t->rdhup_seen)
        return false;
    t->rdhup_seen = true;
    char b;
    ssize_t n = recv(c->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
        return false; /* pipelined bytes, or a spurious wake-up */
    t->reason = "client_closed";
    conn_close(c);
    return true;
}

static void txn_pump(struct txn *t)
{
    if (client_gone(t))
        return;
    switch (t->phase) {
    case T_REQUEST:
    case T_RESPONSE:
        if (pump_request(t) < 0)
            return;
        if (t->phase == T_TUNNEL)
            break;
        pump_response(t);
        return;
    case T_LOCAL:
        if (txn_flush_local(t) == 0)
            conn_txn_done(t->c);
        return;
    default:
        break;
    }
    if (t->phase == T_TUNNEL)
        pump_tunnel(t);
}

void txn_client_event(struct txn *t)
{
    CHECK_OBJ(t, TXN_MAGIC);
    if (t->phase == T_CONNECT) {
        client_gone(t); /* client bytes wait until we have an upstream */
        return;
    }
    txn_pump(t);
}

void txn_abort(struct txn *t)
{
    struct conn *c = t->c;
    if (c->state == C_BUSY) {
        if (t->reason == NULL)
            t->reason = "client_closed";
        if (!t->head_sent && t->phase != T_LOCAL)
            t->status = 499; /* nginx's "client closed request" */
        alog_write(t);
    }
    if (t->uc != NULL) {
        ups_close(t->uc);
        t->uc = NULL;
    }
    c->txn = NULL;
    t->magic = 0;
    pool_free(t->pool);
}

void txn_timeout(struct txn *t, bool client_side)
{
    struct conn *c = t->c;
    if (client_side) {
        bool sending = t->phase == T_LOCAL || t->head_sent;
        if (!sending && !t->reqf.done) {
            t->keepalive = false;
            txn_error(t, 408, "http_request_error", "The request body did not arrive in time.");
            return;
        }
        t->reason = "client_send_timeout";
        conn_close(c);
        return;
    }
    struct uconn *uc = t->uc;
    if (t->phase == T_TUNNEL) { /* idle both ways: routine, not a failure */
        t->reason = "tunnel_idle_timeout";
        txn_finish(t);
        return;
    }
    bool sending = uc != NULL && (outq_pending(&t->uout) || t->reqf.fwd > 0);
    if (uc != NULL)
        log_warn("upstream %s: server %s: %s timed out", t->ups->cu->name,
                 t->ups->cu->servers[uc->srv].addr.text,
                 sending ? "sending the request" : "reading the response");
    if (!t->head_sent) {
        if (uc != NULL) {
            t->uc = NULL;
            ups_close(uc);
        }
        txn_error(t, 504, sending ? "connection_write_timeout" : "connection_read_timeout",
                  "The upstream server did not answer in time.");
        return;
    }
    t->reason = "connection_read_timeout";
    conn_close(c);
}
