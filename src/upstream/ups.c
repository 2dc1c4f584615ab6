/*
 * Per-worker upstream state: which server gets a request, the wait queue
 * for max_conns, and the idle keep-alive connections.
 *
 * Picking (ups_pick) is in two steps. First the candidates: servers not
 * tried yet for this request, with an address, not marked down by health
 * checks, not ejected by passive checks and below max_conns. Primaries are
 * used while any is a candidate; backups only when none is. When no server
 * at all is healthy, the untried ones are used anyway (health is a hint,
 * and trying costs a refused connect; nginx does the same). Then the pool's
 * balancer (a vtable: the choice is made per pool at run time) picks one
 * of the candidates, unless the sticky cookie names one of them.
 *
 * A pick takes one of the server's in-flight slots (a shared atomic
 * counter): the balancers count it, and max_conns caps it. When the slot
 * cannot be had because another worker took the last one first, the pick
 * moves on to the next candidate.
 *
 * An idle pooled connection stays registered in the loop; if the server
 * closes it (FIN or RST arrives as EPOLLIN/EPOLLRDHUP) it is dropped at
 * once. One idle for a while is also probed with a non-blocking
 * recv(MSG_PEEK) before reuse, which catches a close whose event has not
 * been read yet (a server's own keep-alive timeout racing ours). A
 * connection to a DNS slot whose address changed since is closed, not
 * reused.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/macros.h"
#include "core/sock.h"
#include "http/h1.h"
#include "tls/tls.h"
#include "upstream/ups_int.h"

/* Counters of servers whose set has no metrics yet (unit tests): written,
 * never read. */
static struct mslot scratch;

#define PEEK_AFTER_MS 200 /* probe idle connections older than this */
#define QUEUE_POLL_MS 10  /* waiters look for slots freed by other workers */

static void wake_waiters(struct loop *l, struct defer *d);

static const struct ups_balancer *balancer_of(enum cfg_balance b)
{
    switch (b) {
    case CFG_BAL_LEAST_CONN:
        return &ups__bal_lc;
    case CFG_BAL_HASH:
        return &ups__bal_hash;
    case CFG_BAL_RANDOM_TWO:
        return &ups__bal_p2c;
    case CFG_BAL_EWMA:
        return &ups__bal_ewma;
    case CFG_BAL_ROUND_ROBIN:
        break;
    }
    return &ups__bal_rr;
}

struct ups_set *ups_set_new(const struct cfg *cfg, struct ups_state *st,
                            struct loop *loop)
{
    struct ups_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->st = st;
    s->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*s->ups));
    if (s->ups == NULL)
        goto Fail;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct ups *u = &s->ups[i];
        u->cu = &cfg->upstreams[i];
        u->sh = &st->ups[i];
        u->bal = balancer_of(u->cu->balance);
        u->loop = loop;
        u->rng = ups__mix((uint64_t)(uintptr_t)u ^ (uint64_t)loop_now_us(loop)) | 1;
        s->n++;
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

void ups_init_one(struct ups *u, const struct cfg_upstream *cu,
                  struct ups_shared *sh, struct ups_server *srv,
                  struct loop *loop)
{
    u->cu = cu;
    u->sh = sh;
    u->bal = balancer_of(cu->balance);
    u->loop = loop;
    u->rng = ups__mix((uint64_t)(uintptr_t)u ^ (uint64_t)loop_now_us(loop)) | 1;
    u->srv = srv;
    for (size_t j = 0; j < cu->nservers; j++)
        u->srv[j].m = &scratch;
}

void ups_set_free(struct ups_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n && s->ups != NULL; i++) {
        struct ups *u = &s->ups[i];
        timer_cancel(u->loop, &u->poll);
        loop_undefer(u->loop, &u->wake);
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

/* ---- picking ---- */

static uint64_t client_hash(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET)
        return ups__hash(&((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                         4, 0);
    if (sa->sa_family == AF_INET6)
        return ups__hash(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                         16, 0);
    return 0;
}

void ups_prepare(struct ups *u, const struct ups_req *r, struct ups_key *k)
{
    const struct cfg_upstream *cu = u->cu;
    *k = (struct ups_key){ .sticky = -1 };
    ups__budget_deposit(u);
    if (cu->balance == CFG_BAL_HASH) {
        struct str v = STR_NULL;
        switch (cu->hash_key) {
        case CFG_HK_CLIENT:
            k->hash = client_hash(r->client);
            k->has_hash = r->client != NULL;
            break; /* stickiness still applies */
        case CFG_HK_URI:
            v = r->uri;
            break;
        case CFG_HK_HEADER: {
            const struct h1_field *f = h1_find(r->msg, str_cstr(cu->hash_name));
            if (f != NULL)
                v = str_trim(f->value);
            break;
        }
        case CFG_HK_COOKIE:
            if (!ups__cookie(r->msg, str_cstr(cu->hash_name), &v))
                v = STR_NULL;
            break;
        }
        if (v.len > 0) {
            k->hash = ups__hash(v.p, v.len, 0);
            k->has_hash = true;
        }
    }
    if (cu->sticky.cookie != NULL) {
        struct str v;
        if (ups__cookie(r->msg, str_cstr(cu->sticky.cookie), &v))
            k->sticky = ups__sticky_find(u->sh, v);
    }
    if (u->sh->stick != NULL)
        ups__stick_prepare(u, r, client_hash(r->client), k);
}

/* Takes an in-flight slot of <srv>; false when max_conns is reached. */
static bool hold(struct ups *u, unsigned srv)
{
    unsigned max = u->cu->servers[srv].max_conns;
    _Atomic int32_t *f = &u->sh->srv[srv].inflight;
    int32_t old = atomic_fetch_add_explicit(f, 1, RLX);
    if (max == 0 || old < (int32_t)max)
        return true;
    atomic_fetch_sub_explicit(f, 1, RLX);
    return false;
}

void ups_unhold(struct ups *u, unsigned srv)
{
    atomic_fetch_sub_explicit(&u->sh->srv[srv].inflight, 1, RLX);
    if (u->nwait > 0)
        loop_defer(u->loop, &u->wake, wake_waiters);
}

int ups_pick(struct ups *u, const struct ups_key *k, uint64_t tried)
{
    const struct cfg_upstream *cu = u->cu;
    const struct ups_shared *sh = u->sh;
    int64_t now = loop_now(u->loop);
    uint64_t all = cu->nservers >= 64 ? ~0ull : (1ull << cu->nservers) - 1;
    uint64_t cand = all & ~tried;
    uint64_t prim = 0, back = 0, pfull = 0, bfull = 0, live = 0;
    for (uint64_t m = cand; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        const struct cfg_server *cs = &cu->servers[i];
        uint64_t bit = 1ull << i;
        bool full = cs->max_conns > 0 &&
                    ups__inflight(u, i) >= (int32_t)cs->max_conns;
        if (atomic_load_explicit(&sh->srv[i].live, RLX) && !full)
            live |= bit;
        if (!ups__usable(sh, i, now))
            continue;
        if (full)
            *(cs->backup ? &bfull : &pfull) |= bit;
        else
            *(cs->backup ? &back : &prim) |= bit;
    }
    uint64_t set = prim;
    if (set == 0 && pfull == 0)
        set = back;
    if (set == 0 && (pfull | bfull) != 0)
        return UPS_FULL;
    if (set == 0) { /* nothing healthy: try what is left anyway */
        uint64_t bk = 0;
        for (uint64_t m = live; m != 0; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctzll(m);
            if (cu->servers[i].backup)
                bk |= 1ull << i;
        }
        set = (live & ~bk) != 0 ? live & ~bk : bk;
        if (set == 0)
            return UPS_NONE;
    }
    while (set != 0) {
        unsigned i;
        if (k->sticky >= 0 && (set & (1ull << k->sticky)))
            i = (unsigned)k->sticky;
        else
            i = u->bal->pick(u, k, set);
        if (hold(u, i))
            return (int)i;
        set &= ~(1ull << i); /* another worker took its last slot */
    }
    return UPS_FULL;
}

/* ---- wait queue ---- */

static void unlink_waiter(struct ups *u, struct ups_waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        u->qhead = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        u->qtail = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
    u->nwait--;
    if (u->nwait == 0)
        timer_cancel(u->loop, &u->poll);
}

static void wait_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct ups_waiter *w = container_of(t, struct ups_waiter, timer);
    struct ups *u = w->u;
    unlink_waiter(u, w);
    w->cb(w, true);
}

/* Offers the slots that may have come free to the waiters in order; stops
 * at the first that finds none (it puts itself back at the head). */
static void wake_waiters(struct loop *l, struct defer *d)
{
    (void)l;
    struct ups *u = container_of(d, struct ups, wake);
    for (unsigned n = u->nwait; n > 0 && u->qhead != NULL; n--) {
        struct ups_waiter *w = u->qhead;
        unlink_waiter(u, w);
        w->cb(w, false);
        if (u->qhead == w) /* compared, never dereferenced: w may be gone */
            break;
    }
}

static void poll_tick(struct loop *l, struct timer *t)
{
    struct ups *u = container_of(t, struct ups, poll);
    if (u->nwait == 0)
        return;
    timer_set(l, &u->poll, QUEUE_POLL_MS, poll_tick);
    wake_waiters(l, &u->wake);
}

int ups_wait(struct ups *u, struct ups_waiter *w, ups_wait_fn *cb, bool front)
{
    if (!w->counted) {
        int32_t q = atomic_fetch_add_explicit(&u->sh->queued, 1, RLX);
        if (q >= (int32_t)u->cu->queue) {
            atomic_fetch_sub_explicit(&u->sh->queued, 1, RLX);
            return -EBUSY;
        }
        w->counted = true;
        w->u = u;
        w->cb = cb;
        timer_set(u->loop, &w->timer, u->cu->queue_timeout, wait_timeout);
    }
    if (w->queued)
        return 0;
    w->queued = true;
    if (front) {
        w->prev = NULL;
        w->next = u->qhead;
        if (u->qhead != NULL)
            u->qhead->prev = w;
        else
            u->qtail = w;
        u->qhead = w;
    } else {
        w->next = NULL;
        w->prev = u->qtail;
        if (u->qtail != NULL)
            u->qtail->next = w;
        else
            u->qhead = w;
        u->qtail = w;
    }
    if (u->nwait++ == 0)
        timer_set(u->loop, &u->poll, QUEUE_POLL_MS, poll_tick);
    return 0;
}

void ups_unwait(struct ups *u, struct ups_waiter *w)
{
    unlink_waiter(u, w);
    timer_cancel(u->loop, &w->timer);
    if (w->counted) {
        atomic_fetch_sub_explicit(&u->sh->queued, 1, RLX);
        w->counted = false;
    }
}

/* ---- connections ---- */

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

/* True when the server closed <uc> or sent something unasked. */
static bool closed_by_peer(const struct uconn *uc)
{
    char b;
    ssize_t n = recv(uc->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n == -1 && (errno == EAGAIN || errno == EINTR));
}

struct uconn *ups_take_idle(struct ups *u, unsigned srv)
{
    struct ups_server *s = &u->srv[srv];
    int64_t now = loop_now(u->loop);
    uint32_t gen = u->cu->servers[srv].host != NULL
                       ? atomic_load_explicit(&u->sh->srv[srv].gen, RLX)
                       : 0;
    while (s->idle != NULL) {
        struct uconn *uc = s->idle;
        s->idle = uc->next;
        s->nidle--;
        uc->next = NULL;
        timer_cancel(u->loop, &uc->timer);
        if (uc->gen != gen ||
            (now - uc->idle_since >= PEEK_AFTER_MS && closed_by_peer(uc))) {
            ups_close(uc);
            continue;
        }
        uc->reused = true;
        own(u, uc);
        /* Idle, it had nothing to read (or idle_event would have closed it);
         * the next edge will say when the response arrives. */
        uc->readable = false;
        return uc;
    }
    return NULL;
}

struct uconn *ups_connect(struct ups *u, unsigned srv, ev_fn *cb, int *err)
{
    struct sockaddr_storage ss;
    uint32_t gen;
    socklen_t len = ups__addr(u->sh, srv, &ss, &gen);
    if (len == 0) {
        *err = -EADDRNOTAVAIL; /* a DNS slot emptied since the pick */
        return NULL;
    }
    struct uconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    int fd = sock_connect((const struct sockaddr *)&ss, len);
    if (fd < 0) {
        *err = fd;
        free(uc);
        ups_note_connect(u, srv, fd);
        return NULL;
    }
    uc->magic = UCONN_MAGIC;
    uc->ups = u;
    uc->srv = srv;
    uc->gen = gen;
    uc->ev.fd = fd;
    uc->ev.cb = cb;
    if (u->cu->tls != NULL) {
        char ip[64];
        sock_ntop((const struct sockaddr *)&ss, ip, sizeof(ip));
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
    uc->idle_since = loop_now(u->loop);
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
    if (uc->proto_free != NULL)
        uc->proto_free(uc->proto);
    uc->proto = NULL;
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

int ups_ready(struct uconn *uc, uint32_t events, bool connecting)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        uc->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        uc->writable = true;
    if (events & EPOLLRDHUP)
        uc->rdhup = true;
    if (!connecting)
        return 0;
    if (!uc->tls_started) {
        if (!(events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
            return 1;
        int err = sock_error(uc->ev.fd);
        if (err != 0)
            return -err;
    }
    if (uc->tls != NULL) {
        uc->tls_started = true;
        int rc = ups_handshake(uc);
        if (rc == -EAGAIN)
            return 1;
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ups_shutdown(struct uconn *uc)
{
    if (uc->tls != NULL)
        tls_shutdown(uc->tls);
    shutdown(uc->ev.fd, SHUT_WR);
}
