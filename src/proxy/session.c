/*
 * Client connections: accept, read and parse request heads, keep-alive,
 * pipelining, timeouts, close.
 *
 * An idle keep-alive connection holds no buffer and no arena: just this
 * struct (about 200 bytes). A transaction (and its arena) is created when the
 * first byte of a request arrives, so the header timeout runs from there and
 * a slowloris client is cut off however slowly it trickles.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"
#include "tls/tls.h"

static void conn_event(struct loop *l, struct ev *e, uint32_t events);
static void conn_timeout(struct loop *l, struct timer *tm);
static void conn_process(struct conn *c);

static void process_deferred(struct loop *l, struct defer *d)
{
    (void)l;
    struct conn *c = container_of(d, struct conn, defer);
    if (!c->dead)
        conn_process(c);
}

void conn_accept(struct worker *w, struct lsock *ls, int fd,
                 const union sockaddr_any *peer)
{
    const struct cfg_listener *cl = ls->cl;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        lim_conn_gone(w, -1);
        return;
    }
    c->magic = CONN_MAGIC; /* TCP_NODELAY is inherited from the listener */
    c->w = w;
    c->gen = ls->g;
    c->cl = cl;
    c->peer = *peer;
    c->pp_wait = cl->proxy_protocol;
    c->ev.fd = fd;
    c->ev.cb = conn_event;
    c->state = C_IDLE;
    int64_t first = cl->timeouts.client_header;
    c->addr_slot = lim_conn_open(w, cl, peer);
    if (c->addr_slot == LIM_REFUSED) { /* too many from this address */
        close(fd);
        lim_conn_gone(w, -1);
        free(c);
        return;
    }
    if (cl->tls != NULL) {
        c->tls = tls_accept(cl->tls->srv, fd);
        c->state = C_HANDSHAKE;
        first = cl->tls->handshake_timeout;
    }
    if ((cl->tls != NULL && c->tls == NULL) || loop_add(w->loop, &c->ev) < 0) {
        tls_free(c->tls, false);
        close(fd);
        lim_conn_gone(w, c->addr_slot);
        free(c);
        return;
    }
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    c->gen->nconns++;
    m_add(&m_slot(w->m, cl->mslot)->v[ML_ACCEPTED], 1);
    /* The first request gets the header timeout from accept on (after
     * the TLS handshake, which has its own). */
    timer_set(w->loop, &c->timer, first, conn_timeout);
}

void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    struct worker *w = c->w;
    c->dead = true;
    if (c->txn != NULL)
        txn_abort(c->txn);
    if (c->h2 != NULL)
        h2c_close(c);
    timer_cancel(w->loop, &c->timer);
    loop_undefer(w->loop, &c->defer);
    if (c->tls != NULL) {
        tls_free(c->tls, true);
        c->tls = NULL;
    }
    close(c->ev.fd); /* also leaves the epoll set: the fd is never shared */
    c->ev.fd = -1;
    buf_put(&c->rbuf);
    FREE_NULL(c->pp_dst);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    m_add(&m_slot(w->m, c->cl->mslot)->v[ML_CLOSED], 1);
    lim_conn_gone(w, c->addr_slot);
    c->magic = 0;
    gen_conn_closed(c->gen);
    loop_free_later(w->loop, c);
}

/* ---- client I/O ----
 *
 * Every byte to or from a client goes through conn_recv() and conn_sendv():
 * the plain syscalls here, or the TLS layer when the connection has one.
 * Both keep the edge-triggered readiness flags up to date themselves
 * (a TLS read may need the socket writable and a write readable), so
 * callers only look at the return value. */

static ssize_t tls_recv(struct conn *c, char *p, size_t len)
{
    unsigned f;
    ssize_t n = tls_read(c->tls, p, len, &f);
    if (n > 0) {
        if ((f & TLS_DRAINED) && !c->rdhup)
            c->readable = false; /* as for a short plain read */
        return n;
    }
    if (n == 0) {
        c->eof = true;
        c->readable = false;
    } else if (n == -EAGAIN) {
        if (f & TLS_WANT_WRITE)
            c->writable = false;
        else
            c->readable = false;
    }
    return n;
}

ssize_t conn_recv(struct conn *c, char *p, size_t len)
{
    if (c->tls != NULL)
        return tls_recv(c, p, len);
    for (;;) {
        ssize_t n = read(c->ev.fd, p, len);
        if (n > 0) {
            /* A short read drained the socket; with edge triggering, any
             * later byte (or FIN) raises a new event, so no read just to
             * hear EAGAIN. */
            if ((size_t)n < len && !c->rdhup)
                c->readable = false;
            return n;
        }
        if (n == 0) {
            c->eof = true;
            c->readable = false;
            return 0;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN) {
            c->readable = false;
            return -EAGAIN;
        }
        return -err;
    }
}

ssize_t conn_sendv(struct conn *c, const struct iovec *iov, int n)
{
    if (c->tls != NULL) {
        unsigned want;
        ssize_t w = tls_writev(c->tls, iov, n, &want);
        if (w == -EAGAIN) {
            if (want & TLS_WANT_READ)
                c->readable = false;
            else
                c->writable = false;
        }
        return w;
    }
    for (;;) {
        ssize_t w = writev(c->ev.fd, iov, n);
        if (w >= 0)
            return w;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN)
            c->writable = false;
        return -err;
    }
}

bool conn_peer_gone(struct conn *c)
{
    if (c->tls != NULL)
        return tls_peer_gone(c->tls);
    char b;
    ssize_t n = recv(c->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)));
}

void conn_shutdown(struct conn *c)
{
    if (c->tls != NULL)
        tls_shutdown(c->tls);
    shutdown(c->ev.fd, SHUT_WR);
}

ssize_t cli_send(struct txn *t, struct outq *q, const char *data, size_t len)
{
    if (t->h2 != NULL)
        return h2s_send(t, q, data, len);
    struct iovec iov[2];
    int n = 0;
    size_t hl = q->head_len - q->head_off;
    if (hl > 0)
        iov[n++] = (struct iovec){ q->head + q->head_off, hl };
    if (len > 0)
        iov[n++] = (struct iovec){ (void *)data, len };
    if (n == 0)
        return 0;
    ssize_t w = conn_sendv(t->c, iov, n);
    if (w < 0)
        return w;
    if ((size_t)w <= hl) {
        q->head_off += (size_t)w;
        return 0;
    }
    q->head_off = q->head_len;
    return w - (ssize_t)hl;
}

ssize_t conn_read(struct conn *c)
{
    if (buf_get(&c->rbuf) < 0)
        return -ENOMEM;
    if (buf_room(&c->rbuf) == 0) {
        buf_compact(&c->rbuf);
        if (buf_room(&c->rbuf) == 0)
            return -ENOBUFS;
    }
    ssize_t n = conn_recv(c, buf_tail(&c->rbuf), buf_room(&c->rbuf));
    if (n > 0)
        c->rbuf.end += (uint32_t)n;
    return n;
}

/* Drives the TLS handshake; when it completes, ALPN says which protocol
 * the connection speaks. */
static void conn_handshake(struct conn *c)
{
    /* only when the socket can do what the handshake waits for: the first
     * event after accept is often just "writable", before any ClientHello */
    if (!(c->hs_wants_write ? c->writable : c->readable))
        return;
    if (UNLIKELY(c->pp_wait) && pp_accept_raw(c) <= 0)
        return;
    unsigned want;
    int rc = tls_handshake(c->tls, &want);
    if (rc == -EAGAIN) {
        c->hs_wants_write = (want & TLS_WANT_WRITE) != 0;
        if (c->hs_wants_write)
            c->writable = false;
        else
            c->readable = false;
        return;
    }
    if (rc < 0) {
        conn_close(c);
        return;
    }
    stats_tls(c);
    const char *alpn = tls_alpn(c->tls);
    if (alpn != NULL && alpn[0] == 'h' && alpn[1] == '2') {
        if (h2c_start(c) < 0)
            conn_close(c);
        return;
    }
    c->state = C_IDLE;
    timer_set(c->w->loop, &c->timer, c->cl->timeouts.client_header, conn_timeout);
    conn_process(c);
}

/* h2c with prior knowledge: the first bytes of a plain connection are the
 * HTTP/2 preface. Returns 1 when the connection moved on (to HTTP/2, or
 * closed), 0 when the bytes so far are a prefix of the preface (read on),
 * -1 when they are not (HTTP/1). */
static int try_h2c(struct conn *c)
{
    int p = h2c_preface(&c->rbuf);
    if (p <= 0)
        return p;
    if (c->txn != NULL) { /* made for an HTTP/1 head: not needed */
        pool_free(c->txn->pool);
        c->txn = NULL;
    }
    if (h2c_start(c) < 0)
        conn_close(c);
    return 1;
}

static void conn_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct conn *c = container_of(e, struct conn, ev);
    if (c->dead)
        return;
    CHECK_OBJ(c, CONN_MAGIC);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        c->writable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (UNLIKELY(c->state >= C_HANDSHAKE)) {
        if (c->state == C_H2)
            h2c_event(c);
        else
            conn_handshake(c);
    } else if (c->state == C_BUSY)
        txn_client_event(c->txn);
    else
        conn_process(c);
}

struct txn *txn_alloc(struct conn *c)
{
    const struct cfg_limits *lim = &c->cl->limits;
    struct pool *p = pool_new(sizeof(struct txn) +
                              lim->header_count * sizeof(struct h1_field));
    if (p == NULL)
        return NULL;
    struct txn *t = pool_calloc(p, sizeof(*t));
    struct h1_field *f = pool_alloc(p, lim->header_count * sizeof(*f));
    if (t == NULL || f == NULL) {
        pool_free(p);
        return NULL;
    }
    t->magic = TXN_MAGIC;
    t->pool = p;
    t->c = c;
    t->rb = &c->rbuf;
    t->t0_us = loop_now_us(c->w->loop);
    h1_msg_init(&t->req, f, lim->header_count);
    return t;
}

/* A new transaction (arena + parser state) for the request whose first
 * bytes just arrived. */
static int txn_new(struct conn *c)
{
    c->txn = txn_alloc(c);
    return c->txn != NULL ? 0 : -ENOMEM;
}

/* Parses what we have of the request head. Returns true when the
 * connection moved on (transaction started, rejected or closed). */
static bool try_parse(struct conn *c)
{
    struct txn *t = c->txn;
    const struct cfg_limits *lim = &c->cl->limits;
    struct h1_limits hl = {
        .max_head = lim->header_bytes,
        .max_fields = lim->header_count,
        .max_target = lim->target_length,
    };
    int rc = h1_parse_request(buf_head(&c->rbuf), buf_len(&c->rbuf), &t->req, &hl);
    if (rc > 0) {
        c->state = C_BUSY;
        txn_start(t, &t->req);
        return true;
    }
    if (rc == -EBADMSG) {
        c->state = C_BUSY;
        conn_reject(c, t->req.err_status, "http_request_error",
                    t->req.err_reason, &t->req);
        return true;
    }
    return false;
}

static void conn_process(struct conn *c)
{
    struct worker *w = c->w;
    for (;;) {
        if (c->pp_wait && buf_len(&c->rbuf) > 0) {
            int rc = pp_accept(c);
            if (rc < 0)
                return;
        }
        if (buf_len(&c->rbuf) > 0 && !c->pp_wait) {
            if (c->txn == NULL) {
                if (txn_new(c) < 0) {
                    conn_close(c);
                    return;
                }
                c->state = C_HEAD;
                if (c->nreq > 0)
                    timer_set(w->loop, &c->timer, c->cl->timeouts.client_header,
                              conn_timeout);
            }
            int h2 = UNLIKELY(c->cl->http2.h2c) && c->nreq == 0 ? try_h2c(c) : -1;
            if (h2 > 0)
                return;
            if (h2 < 0 && try_parse(c))
                return;
            /* incomplete: make room up to the head limit */
            if (buf_room(&c->rbuf) == 0 && c->rbuf.start == 0 &&
                buf_grow(&c->rbuf, c->cl->limits.header_bytes + 1) < 0) {
                conn_close(c);
                return;
            }
        }
        if (!c->readable)
            break;
        ssize_t n = conn_read(c);
        if (n == -EAGAIN)
            break;
        if (n <= 0) { /* EOF, error, or no room */
            conn_close(c);
            return;
        }
    }
    if (c->state == C_IDLE)
        buf_release_if_empty(&c->rbuf);
}

static void conn_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct conn *c = container_of(tm, struct conn, timer);
    switch (c->state) {
    case C_IDLE:
    case C_HANDSHAKE:
        conn_close(c);
        break;
    case C_HEAD:
        c->state = C_BUSY;
        conn_reject(c, 408, "http_request_error", "client_header_timeout",
                    &c->txn->req);
        break;
    case C_BUSY:
        txn_timeout(c->txn, true);
        break;
    default:
        conn_close(c);
        break;
    }
}

void conn_txn_done(struct conn *c)
{
    struct txn *t = c->txn;
    struct worker *w = c->w;
    pick_end(t); /* the upstream slot, if an error path still held it */
    alog_write(t);
    stats_txn(t);
    bool keep = t->keepalive && !conn_closing(c);
    c->txn = NULL;
    pool_free(t->pool);
    c->nreq++;
    if (!keep) {
        conn_close(c);
        return;
    }
    c->state = C_IDLE;
    timer_set(w->loop, &c->timer, c->cl->timeouts.client_idle, conn_timeout);
    if (buf_len(&c->rbuf) > 0 || c->readable)
        loop_defer(w->loop, &c->defer, process_deferred); /* pipelined */
    else
        buf_put(&c->rbuf);
}

/* Graceful stop: idle keep-alive connections go now, busy ones close after
 * their response (txn->keepalive is ignored while draining). */
void conn_drain_idle(struct worker *w)
{
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->state == C_IDLE || c->state == C_HANDSHAKE)
            conn_close(c);
        else if (c->state == C_H2)
            h2c_drain(c);
        c = next;
    }
}
