/*
 * Per-worker upstream state: smooth weighted round robin and idle pools.
 *
 * Smooth WRR (nginx ngx_http_upstream_get_peer): every pick adds each
 * server's weight to its current weight, takes the largest, and subtracts
 * the total from the winner. Weights 5,1,1 give a a b a c a a: interleaved,
 * never a burst of five.
 *
 * An idle pooled connection stays registered in the loop; if the server
 * closes it (FIN or RST arrives as EPOLLIN/EPOLLRDHUP) it is dropped at
 * once, so a request is rarely written into a dead connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/macros.h"
#include "core/sock.h"
#include "tls/tls.h"
#include "upstream/ups.h"

/* Counters of servers whose set has no metrics yet (unit tests): written,
 * never read. */
static struct mslot scratch;

struct ups_set *ups_set_new(const struct cfg *cfg, struct loop *loop)
{
    struct ups_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->n = cfg->nupstreams;
    s->ups = calloc(s->n ? s->n : 1, sizeof(*s->ups));
    if (s->ups == NULL)
        goto Fail;
    for (size_t i = 0; i < s->n; i++) {
        struct ups *u = &s->ups[i];
        u->cu = &cfg->upstreams[i];
        u->loop = loop;
        u->srv = calloc(u->cu->nservers ? u->cu->nservers : 1, sizeof(*u->srv));
        if (u->srv == NULL)
            goto Fail;
        for (size_t j = 0; j < u->cu->nservers; j++)
            u->srv[j].m = &scratch;
    }
    return s;
Fail:
    ups_set_free(s);
    return NULL;
}

void ups_set_metrics(struct ups_set *s, struct mworker *m)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = 0; j < s->ups[i].cu->nservers; j++)
            s->ups[i].srv[j].m = m_slot(m, s->ups[i].cu->servers[j].mslot);
}

void ups_note_connect(struct ups *u, unsigned srv, int err)
{
    struct mslot *m = u->srv[srv].m;
    uint64_t now = (uint64_t)loop_wall_ms(u->loop);
    m_add(&m->v[err == 0 ? MS_CONNECT_OK : MS_CONNECT_FAIL], 1);
    m_max(&m->v[err == 0 ? MS_LAST_OK_MS : MS_LAST_FAIL_MS], now);
}

/* A connection now carries a request / no longer does. */
static void own(struct ups *u, struct uconn *uc)
{
    struct mslot *m = u->srv[uc->srv].m;
    uc->busy = true;
    m_add(&m->v[MS_INFLIGHT], 1);
    m_add(&m->v[MS_REQUESTS], 1);
}

static void disown(struct uconn *uc)
{
    if (!uc->busy)
        return;
    uc->busy = false;
    m_sub(&uc->ups->srv[uc->srv].m->v[MS_INFLIGHT], 1);
}

void ups_set_free(struct ups_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n && s->ups != NULL; i++) {
        struct ups *u = &s->ups[i];
        for (size_t j = 0; u->srv != NULL && j < u->cu->nservers; j++) {
            while (u->srv[j].idle != NULL) {
                struct uconn *uc = u->srv[j].idle;
                u->srv[j].idle = uc->next;
                ups_close(uc);
            }
        }
        free(u->srv);
    }
    free(s->ups);
    free(s);
}

struct ups *ups_of(struct ups_set *s, const struct cfg *cfg,
                   const struct cfg_upstream *cu)
{
    size_t i = (size_t)(cu - cfg->upstreams);
    ASSERT(i < s->n);
    return &s->ups[i];
}

int ups_pick(struct ups *u, uint64_t tried)
{
    const struct cfg_upstream *cu = u->cu;
    int best = -1, total = 0;
    for (size_t i = 0; i < cu->nservers; i++) {
        if (i < 64 && (tried & (1ull << i)))
            continue;
        u->srv[i].cw += cu->servers[i].weight;
        total += cu->servers[i].weight;
        if (best < 0 || u->srv[i].cw > u->srv[best].cw)
            best = (int)i;
    }
    if (best >= 0)
        u->srv[best].cw -= total;
    return best;
}

static void unlink_idle(struct ups *u, struct uconn *uc)
{
    struct ups_server *s = &u->srv[uc->srv];
    for (struct uconn **pp = &s->idle; *pp; pp = &(*pp)->next) {
        if (*pp == uc) {
            *pp = uc->next;
            s->nidle--;
            uc->next = NULL;
            return;
        }
    }
}

/* Events on an idle connection: anything readable or a hang-up means the
 * server closed it (or broke protocol): drop it. */
static void idle_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct uconn *uc = container_of(e, struct uconn, ev);
    if (uc->ev.fd < 0)
        return; /* closed earlier in this iteration */
    CHECK_OBJ(uc, UCONN_MAGIC);
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return; /* EPOLLOUT edge only */
    unlink_idle(uc->ups, uc);
    ups_close(uc);
}

static void idle_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct uconn *uc = container_of(t, struct uconn, timer);
    unlink_idle(uc->ups, uc);
    ups_close(uc);
}

struct uconn *ups_take_idle(struct ups *u, unsigned srv)
{
    struct ups_server *s = &u->srv[srv];
    struct uconn *uc = s->idle;
    if (uc == NULL)
        return NULL;
    s->idle = uc->next;
    s->nidle--;
    uc->next = NULL;
    timer_cancel(u->loop, &uc->timer);
    uc->reused = true;
    own(u, uc);
    /* Idle, it had nothing to read (or idle_event would have closed it);
     * the next edge will say when the response arrives. */
    uc->readable = false;
    return uc;
}

struct uconn *ups_connect(struct ups *u, unsigned srv, ev_fn *cb, int *err)
{
    const struct cfg_addr *a = &u->cu->servers[srv].addr;
    struct uconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    int fd = sock_connect((const struct sockaddr *)&a->ss, a->len);
    if (fd < 0) {
        *err = fd;
        free(uc);
        ups_note_connect(u, srv, fd);
        return NULL;
    }
    uc->magic = UCONN_MAGIC;
    uc->ups = u;
    uc->srv = srv;
    uc->ev.fd = fd;
    uc->ev.cb = cb;
    if (u->cu->tls != NULL) {
        char ip[64];
        sock_ntop((const struct sockaddr *)&a->ss, ip, sizeof(ip));
        uc->tls = tls_connect(u->cu->tls->cli, fd, srv, ip);
        if (uc->tls == NULL) {
            close(fd);
            free(uc);
            *err = -ENOMEM;
            return NULL;
        }
    }
    int rc = loop_add(u->loop, &uc->ev);
    if (rc < 0) {
        tls_free(uc->tls, false);
        close(fd);
        free(uc);
        *err = rc;
        return NULL;
    }
    own(u, uc);
    return uc;
}

void ups_release(struct ups *u, struct uconn *uc)
{
    struct ups_server *s = &u->srv[uc->srv];
    const struct cfg_upstream *cu = u->cu;
    disown(uc);
    /* a connection that began with a PROXY header speaks for one client */
    if (s->nidle >= cu->keepalive || uc->nreq >= cu->keepalive_requests ||
        buf_len(&uc->rbuf) != 0 || uc->rdhup || cu->proxy_protocol) {
        ups_close(uc);
        return;
    }
    buf_put(&uc->rbuf);
    uc->owner = NULL;
    uc->ev.cb = idle_event;
    uc->next = s->idle;
    s->idle = uc;
    s->nidle++;
    timer_set(u->loop, &uc->timer, cu->keepalive_timeout, idle_timeout);
}

void ups_close(struct uconn *uc)
{
    if (uc == NULL)
        return;
    CHECK_OBJ(uc, UCONN_MAGIC);
    disown(uc);
    timer_cancel(uc->ups->loop, &uc->timer);
    if (uc->tls != NULL) {
        tls_free(uc->tls, uc->tls_ready);
        uc->tls = NULL;
    }
    if (uc->ev.fd >= 0) {
        close(uc->ev.fd); /* also leaves the epoll set */
        uc->ev.fd = -1;
    }
    buf_put(&uc->rbuf);
    uc->magic = 0;
    /* an event for it may still wait in this iteration's batch */
    loop_free_later(uc->ups->loop, uc);
}

/* ---- I/O ---- */

ssize_t ups_recv(struct uconn *uc, char *p, size_t len)
{
    if (uc->tls != NULL) {
        unsigned f;
        ssize_t n = tls_read(uc->tls, p, len, &f);
        if (n > 0 && (f & TLS_DRAINED) && !uc->rdhup)
            uc->readable = false;
        else if (n == 0)
            uc->readable = false;
        else if (n == -EAGAIN && (f & TLS_WANT_WRITE))
            uc->writable = false;
        else if (n == -EAGAIN)
            uc->readable = false;
        return n;
    }
    for (;;) {
        ssize_t n = read(uc->ev.fd, p, len);
        if (n > 0) {
            if ((size_t)n < len && !uc->rdhup)
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

ssize_t ups_sendv(struct uconn *uc, const struct iovec *iov, int n)
{
    if (uc->tls != NULL) {
        unsigned want;
        ssize_t w = tls_writev(uc->tls, iov, n, &want);
        if (w == -EAGAIN) {
            if (want & TLS_WANT_READ)
                uc->readable = false;
            else
                uc->writable = false;
        }
        return w;
    }
    for (;;) {
        ssize_t w = writev(uc->ev.fd, iov, n);
        if (w >= 0)
            return w;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN)
            uc->writable = false;
        return -err;
    }
}

int ups_handshake(struct uconn *uc)
{
    if (uc->tls == NULL || uc->tls_ready)
        return 0;
    unsigned want;
    int rc = tls_handshake(uc->tls, &want);
    if (rc == 0) {
        uc->tls_ready = true;
        return 0;
    }
    if (rc == -EAGAIN) {
        if (want & TLS_WANT_WRITE)
            uc->writable = false;
        else
            uc->readable = false;
        return -EAGAIN;
    }
    const struct cfg_upstream *cu = uc->ups->cu;
    const char *why = tls_verify_error(uc->tls);
    log_warn("upstream %s: server %s: TLS handshake failed%s%s", cu->name,
             cu->servers[uc->srv].addr.text, why ? ": certificate: " : "",
             why ? why : "");
    return why != NULL ? -EKEYREJECTED : -EPROTO;
}

void ups_shutdown(struct uconn *uc)
{
    if (uc->tls != NULL)
        tls_shutdown(uc->tls);
    shutdown(uc->ev.fd, SHUT_WR);
}
