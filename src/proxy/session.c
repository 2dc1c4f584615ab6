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

void conn_accept(struct worker *w, const struct cfg_listener *cl, int fd,
                 const union sockaddr_any *peer)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->magic = CONN_MAGIC; /* TCP_NODELAY is inherited from the listener */
    c->w = w;
    c->cl = cl;
    c->peer = *peer;
    c->ev.fd = fd;
    c->ev.cb = conn_event;
    c->state = C_IDLE;
    if (loop_add(w->loop, &c->ev) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    /* The first request gets the header timeout from accept on. */
    timer_set(w->loop, &c->timer, cl->timeouts.client_header, conn_timeout);
}

void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    struct worker *w = c->w;
    c->dead = true;
    if (c->txn != NULL)
        txn_abort(c->txn);
    timer_cancel(w->loop, &c->timer);
    loop_undefer(w->loop, &c->defer);
    close(c->ev.fd); /* also leaves the epoll set: the fd is never shared */
    c->ev.fd = -1;
    buf_put(&c->rbuf);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    c->magic = 0;
    loop_free_later(w->loop, c);
}

/* ---- client I/O ----
 *
 * Every byte to or from a client goes through conn_recv() and conn_sendv():
 * the plain syscalls here, or the TLS layer when the connection has one.
 * Both keep the edge-triggered readiness flags up to date themselves
 * (a TLS read may need the socket writable and a write readable), so
 * callers only look at the return value. */

ssize_t conn_recv(struct conn *c, char *p, size_t len)
{
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

ssize_t cli_send(struct txn *t, struct outq *q, const char *data, size_t len)
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
    if (c->state == C_BUSY)
        txn_client_event(c->txn);
    else
        conn_process(c);
}

/* A new transaction (arena + parser state) for the request whose first
 * bytes just arrived. */
static int txn_new(struct conn *c)
{
    const struct cfg_limits *lim = &c->cl->limits;
    struct pool *p = pool_new(sizeof(struct txn) +
                              lim->header_count * sizeof(struct h1_field));
    if (p == NULL)
        return -ENOMEM;
    struct txn *t = pool_calloc(p, sizeof(*t));
    struct h1_field *f = pool_alloc(p, lim->header_count * sizeof(*f));
    if (t == NULL || f == NULL) {
        pool_free(p);
        return -ENOMEM;
    }
    t->magic = TXN_MAGIC;
    t->pool = p;
    t->c = c;
    t->rb = &c->rbuf;
    t->t0_us = loop_now_us(c->w->loop);
    h1_msg_init(&t->req, f, lim->header_count);
    c->txn = t;
    return 0;
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
        if (buf_len(&c->rbuf) > 0) {
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
            if (try_parse(c))
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
    bool keep = t->keepalive && !w->draining;
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
        if (c->state == C_IDLE)
            conn_close(c);
        c = next;
    }
}
