/*
 * HTTP/2 upstream connections shared by many streams (protocol: h2).
 *
 * A struct h2uc is one connection to a server and its client session
 * (uc->proto, freed with the connection). While it carries streams it is
 * on its server's list (ups_server.h2), where the next request of any
 * client looks first: up to H2UP_MAX_STREAMS streams share it. When its
 * last stream ends it goes back to the keep-alive pool like an HTTP/1.1
 * connection (ups_release), and comes back from there (ups_take_idle)
 * with its session.
 *
 * The connection's events (hc_run) read and feed the session, whose
 * callbacks (h2up.c) fill the streams and queue them; the queued streams
 * are then pumped (h2up_pump), and the frames written. A transaction never
 * owns the connection (t->uc stays NULL): it holds a stream, and
 * h2mux_detach() takes it off when the transaction ends, which resets the
 * stream if it is still open. A connection that fails fails each of its
 * streams (h2up_conn_failed), which retry elsewhere or answer the error.
 *
 * hc->busy is held while h2mux code walks a connection, so a stream
 * ending inside (its transaction freed) never frees the connection under
 * our feet: the connection settles (idle pool, or closed) when the outer
 * walk ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/macros.h"
#include "proxy/h2up.h"
#include "tls/tls.h"

#define ROUNDS 16

static void hc_event(struct loop *l, struct ev *e, uint32_t events);
static void hc_run(struct h2uc *hc);
static void fail_all(struct h2uc *hc, int err, bool connecting);

static struct ups_server *server_of(struct h2uc *hc)
{
    return &hc->uc->ups->srv[hc->uc->srv];
}

static struct loop *loop_of(struct h2uc *hc)
{
    return hc->uc->ups->loop;
}

static void unlist(struct h2uc *hc)
{
    if (!hc->listed)
        return;
    struct ups_server *s = server_of(hc);
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else
        s->h2 = hc->next;
    if (hc->next != NULL)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    hc->listed = false;
}

static void enlist(struct h2uc *hc)
{
    if (hc->listed)
        return;
    struct ups_server *s = server_of(hc);
    hc->prev = NULL;
    hc->next = s->h2;
    if (hc->next != NULL)
        hc->next->prev = hc;
    s->h2 = hc;
    hc->listed = true;
}

/* uc->proto_free: the connection is being closed (ups_close). */
static void hc_free(void *p)
{
    struct h2uc *hc = p;
    struct loop *l = loop_of(hc);
    loop_undefer(l, &hc->defer);
    unlist(hc);
    h2_cli_free(hc->cli);
    hc->cli = NULL;
    hc->gone = true;
    /* this may run inside its own deferred flush (hc_run closing the
     * connection), which still holds hc: freed after the iteration */
    loop_free_later(l, hc);
}

static void hc_close(struct h2uc *hc)
{
    unlist(hc);
    ups_close(hc->uc); /* frees hc */
}

static bool hc_usable(struct h2uc *hc)
{
    return !hc->dead && hc->n < H2UP_MAX_STREAMS &&
           hc->uc->nreq < hc->uc->ups->cu->keepalive_requests &&
           (hc->cli == NULL || h2_cli_usable(hc->cli));
}

/* ---- writing ---- */

/* Writes the session's frames. 1 on progress, 0 when blocked or nothing to
 * write, -1 when the connection broke (its streams were failed). */
static int hc_flush(struct h2uc *hc)
{
    struct uconn *uc = hc->uc;
    int prog = 0;
    if (hc->cli == NULL || hc->dead)
        return 0;
    for (int i = 0; i < 64; i++) {
        if (hc->ooff == hc->olen) {
            ssize_t n = h2_cli_send(hc->cli, hc->ob, sizeof(hc->ob));
            if (n < 0) {
                fail_all(hc, -EBADMSG, false);
                return -1;
            }
            if (n == 0)
                break;
            hc->olen = (size_t)n;
            hc->ooff = 0;
        }
        if (!uc->writable)
            break;
        struct iovec iov = { hc->ob + hc->ooff, hc->olen - hc->ooff };
        ssize_t w = ups_sendv(uc, &iov, 1);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            fail_all(hc, (int)w, false);
            return -1;
        }
        hc->ooff += (size_t)w;
        prog = 1;
    }
    return prog;
}

static void flush_deferred(struct loop *l, struct defer *d)
{
    (void)l;
    struct h2uc *hc = container_of(d, struct h2uc, defer);
    if (!hc->gone && !hc->pooled) /* queued before it closed or went idle */
        hc_run(hc);
}

void h2mux_flush_later(struct h2uc *hc)
{
    loop_defer(loop_of(hc), &hc->defer, flush_deferred);
}

/* ---- the end of a connection's use ---- */

/* No stream left (and nobody walking it): back to the pool when its
 * session is clean, else closed. */
static void hc_settle(struct h2uc *hc)
{
    if (hc->busy > 0 || hc->n > 0)
        return;
    if (hc->dead || !hc->connected) {
        hc_close(hc);
        return;
    }
    if (hc_flush(hc) < 0)
        return; /* closed */
    if (hc->ooff != hc->olen || h2_cli_want_write(hc->cli) || !h2_cli_usable(hc->cli) ||
        h2_cli_streams(hc->cli) > 0 || hc->uc->rdhup) {
        hc_close(hc);
        return;
    }
    unlist(hc);
    loop_undefer(loop_of(hc), &hc->defer);
    hc->pooled = true;
    ups_release(hc->uc->ups, hc->uc); /* may close it (pool full): frees hc */
}

static void fail_all(struct h2uc *hc, int err, bool connecting)
{
    struct uconn *uc = hc->uc;
    char name[80];
    if (connecting)
        ups_note_connect(uc->ups, uc->srv, err);
    bool goaway = hc->cli != NULL && h2_cli_goaway(hc->cli) >= 0;
    log_warn("upstream %s: server %s: %s: %s", uc->ups->cu->name,
             ups_srv_name(uc->ups, uc->srv, name, sizeof(name)),
             connecting ? "connect failed" : "HTTP/2 connection broke",
             err == -EBADMSG ? "protocol error" : strerror(-err));
    hc->dead = true;
    unlist(hc);
    hc->busy++;
    while (hc->streams != NULL) {
        struct h2x *x = hc->streams;
        h2mux_detach(x);
        h2up_conn_failed(x, err, connecting, goaway);
    }
    hc->busy--;
    hc_settle(hc);
}

/* ---- streams ---- */

void h2mux_wake(struct h2x *x)
{
    struct h2uc *hc = x->hc;
    if (hc == NULL || x->queued)
        return;
    x->queued = true;
    x->qnext = NULL;
    if (hc->qtail != NULL)
        hc->qtail->qnext = x;
    else
        hc->q = x;
    hc->qtail = x;
}

static void dequeue(struct h2uc *hc, struct h2x *x)
{
    struct h2x *prev = NULL;
    for (struct h2x *q = hc->q; q != NULL; prev = q, q = q->qnext) {
        if (q != x)
            continue;
        if (prev != NULL)
            prev->qnext = x->qnext;
        else
            hc->q = x->qnext;
        if (hc->qtail == x)
            hc->qtail = prev;
        break;
    }
    x->queued = false;
    x->qnext = NULL;
}

int h2mux_submit(struct h2x *x)
{
    struct h2uc *hc = x->hc;
    int32_t id = h2_cli_request(hc->cli, x->nv, x->nnv, x->body, x);
    if (id < 0)
        return id;
    x->id = id;
    h2mux_flush_later(hc);
    return 0;
}

void h2mux_detach(struct h2x *x)
{
    struct h2uc *hc = x->hc;
    if (hc == NULL)
        return;
    timer_cancel(loop_of(hc), &x->timer);
    if (hc->cli != NULL && x->id > 0 && !x->closed) {
        h2_cli_reset(hc->cli, x->id, H2_CANCEL); /* no more callbacks */
        h2mux_flush_later(hc);
    }
    if (x->queued)
        dequeue(hc, x);
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        hc->streams = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->hc = NULL;
    x->id = 0;
    hc->n--;
    hc_settle(hc);
}

static void link_stream(struct h2uc *hc, struct h2x *x)
{
    x->hc = hc;
    x->id = 0;
    x->prev = NULL;
    x->next = hc->streams;
    if (hc->streams != NULL)
        hc->streams->prev = x;
    hc->streams = x;
    hc->n++;
    hc->uc->nreq++;
    if (hc->n > 1) /* the first was counted when the connection was taken */
        m_add(&server_of(hc)->m->v[MS_REQUESTS], 1);
}

/* ---- connecting ---- */

static void hc_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct uconn *uc = container_of(tm, struct uconn, timer);
    fail_all(uc->owner, -ETIMEDOUT, true);
}

/* The connection (and its TLS handshake) is up: the session starts and
 * the waiting streams go. Returns 0 or -1 (failed). */
static int hc_up(struct h2uc *hc)
{
    struct uconn *uc = hc->uc;
    const char *alpn = uc->tls != NULL ? tls_alpn(uc->tls) : "h2";
    if (alpn == NULL || strcmp(alpn, "h2") != 0) {
        fail_all(hc, -ENOPROTOOPT, true);
        return -1;
    }
    hc->cli = h2_cli_new(&h2up_cbs, H2UP_STREAM_WINDOW, H2UP_CONN_WINDOW);
    if (hc->cli == NULL) {
        fail_all(hc, -ENOMEM, true);
        return -1;
    }
    ups_note_connect(uc->ups, uc->srv, 0);
    uc->connected = true;
    hc->connected = true;
    timer_cancel(loop_of(hc), &uc->timer);
    int64_t now = loop_now_us(loop_of(hc));
    for (struct h2x *x = hc->streams; x != NULL; x = x->next) {
        x->t->phase = T_REQUEST;
        x->t->try_us = now; /* latency (ewma) counts from here */
        if (h2mux_submit(x) < 0) { /* a new session takes a stream */
            fail_all(hc, -ENOMEM, true);
            return -1;
        }
        h2mux_wake(x);
    }
    return 0;
}

static void hc_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct uconn *uc = container_of(e, struct uconn, ev);
    if (uc->ev.fd < 0)
        return;
    CHECK_OBJ(uc, UCONN_MAGIC);
    struct h2uc *hc = uc->owner;
    int rc = ups_ready(uc, events, !hc->connected);
    if (rc > 0)
        return;
    if (rc < 0) {
        fail_all(hc, rc, true);
        return;
    }
    if (!hc->connected) {
        hc->busy++;
        rc = hc_up(hc);
        hc->busy--;
        if (rc < 0) {
            hc_settle(hc); /* closes it */
            return;
        }
    }
    hc_run(hc);
}

/* Opens a new connection to <srv> for <t>'s stream. */
static struct h2uc *hc_new(struct txn *t, unsigned srv, int *err)
{
    struct uconn *uc = ups_connect(t->ups, srv, hc_event, err);
    if (uc == NULL)
        return NULL;
    struct h2uc *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) {
        ups_close(uc);
        *err = -ENOMEM;
        return NULL;
    }
    hc->uc = uc;
    uc->owner = hc;
    uc->proto = hc;
    uc->proto_free = hc_free;
    timer_set(t->ups->loop, &uc->timer, t->ups->cu->connect_timeout, hc_timeout);
    return hc;
}

/* An idle pooled connection to <srv>, or NULL. */
static struct h2uc *hc_idle(struct txn *t, unsigned srv)
{
    for (;;) {
        struct uconn *uc = ups_take_idle(t->ups, srv);
        if (uc == NULL)
            return NULL;
        struct h2uc *hc = uc->proto;
        if (hc == NULL || hc->cli == NULL || !h2_cli_usable(hc->cli)) {
            ups_close(uc);
            continue;
        }
        uc->owner = hc;
        uc->ev.cb = hc_event;
        uc->writable = true;
        hc->dead = false;
        hc->pooled = false;
        return hc;
    }
}

int h2mux_attach(struct txn *t, unsigned srv)
{
    struct h2x *x = t->hx;
    struct h2uc *hc = t->ups->srv[srv].h2;
    while (hc != NULL && !hc_usable(hc))
        hc = hc->next;
    if (hc == NULL)
        hc = hc_idle(t, srv);
    if (hc == NULL) {
        int err = 0;
        hc = hc_new(t, srv, &err);
        if (hc == NULL)
            return err;
    }
    enlist(hc);
    link_stream(hc, x);
    if (!hc->connected) {
        t->phase = T_CONNECT;
        return 0;
    }
    t->phase = T_REQUEST;
    t->try_us = loop_now_us(loop_of(hc));
    if (h2mux_submit(x) < 0) { /* a GOAWAY came in meanwhile */
        hc->dead = true;
        h2mux_detach(x);
        return h2mux_attach(t, srv);
    }
    h2mux_wake(x);
    h2mux_flush_later(hc);
    return 0;
}

/* ---- the connection's events ---- */

/* Feeds what the server sent. 1 on progress, 0 when nothing came, -1 when
 * the connection failed. */
static int hc_read(struct h2uc *hc)
{
    struct uconn *uc = hc->uc;
    uint8_t buf[16384];
    int prog = 0;
    for (int i = 0; i < ROUNDS && uc->readable && !hc->dead; i++) {
        ssize_t n = ups_recv(uc, (char *)buf, sizeof(buf));
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            fail_all(hc, n == 0 ? -ECONNRESET : (int)n, false);
            return -1;
        }
        if (h2_cli_recv(hc->cli, buf, (size_t)n) < 0) {
            fail_all(hc, -EBADMSG, false);
            return -1;
        }
        prog = 1;
    }
    return prog;
}

/* Pumps the streams queued so far (those queued meanwhile wait for the
 * next round). */
static bool run_queue(struct h2uc *hc)
{
    unsigned n = 0;
    for (struct h2x *x = hc->q; x != NULL; x = x->qnext)
        n++;
    for (unsigned i = 0; i < n && hc->q != NULL; i++) {
        struct h2x *x = hc->q;
        dequeue(hc, x);
        h2up_pump(x->t); /* may end the transaction: x is gone then */
    }
    return n > 0;
}

static void hc_run(struct h2uc *hc)
{
    if (!hc->connected)
        return;
    hc->busy++;
    for (int i = 0; i < ROUNDS && !hc->dead; i++) {
        int r = hc_read(hc);
        if (r < 0)
            break;
        bool ran = run_queue(hc);
        int w = hc_flush(hc);
        if (w < 0)
            break;
        if (r == 0 && !ran && w == 0)
            break;
    }
    if (!hc->dead && (hc->q != NULL || (hc->uc->readable && hc->n > 0)))
        h2mux_flush_later(hc); /* more than ROUNDS: go on later */
    hc->busy--;
    hc_settle(hc);
}
