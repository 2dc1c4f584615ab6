/*
 * The health thread: one for the whole process, with its own event loop,
 * so a pool of N servers gets N checks per interval whatever the number of
 * workers (nginx plus and HAProxy check once per process too).
 *
 * It does three things, and publishes each through the shared state that
 * ups_pick() reads:
 *
 *   - Active checks. Per server, every <interval>: a TCP connect, or an
 *     HTTP/1.1 GET of <path> whose status must fall in <status>, all
 *     within <timeout>. <fall> failures in a row mark the server down,
 *     <rise> passes in a row mark it up again (and start its slow start).
 *     A server that passive checks ejected is readmitted once <rise>
 *     checks in a row passed since the ejection (Envoy does the same), so
 *     a server that comes back is in service within rise x interval
 *     instead of waiting out an ejection that doubled.
 *   - Ejection ends. Workers eject servers (and log it); the end of an
 *     ejection is only a time, so this thread watches for it and logs
 *     that the server is back.
 *   - Names. Servers with resolve: true are re-resolved at their TTL
 *     (resolve.c).
 *
 * Every state change is logged: down, up, readmitted, back after an
 * ejection, addresses added and removed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/macros.h"
#include "core/sock.h"
#include "upstream/health_int.h"

#define TICK_MS 100

enum check_state {
    CK_IDLE = 0,
    CK_CONNECTING,
    CK_READING,
};

struct check {
    struct ups_health *h;
    struct ups_shared *sh;
    unsigned srv;
    struct ev ev;
    struct timer timer;     /* next check, or this check's timeout */
    enum check_state state;
    int64_t started;        /* ms */
    char *req;              /* the HTTP request (NULL for tcp) */
    size_t req_len, req_off;
    char rbuf[128];         /* the start of the response */
    size_t rlen;
    unsigned passes, fails; /* in a row */
    unsigned since_eject;   /* passes since <eject_seen> began */
    int64_t eject_seen;     /* the ejection deadline last seen */
};

/* Per pool with passive checks: the ejection deadline each server had at
 * the last tick, to log when it ends. */
struct watch {
    struct ups_shared *sh;
    int64_t *until;
};

static void check_event(struct loop *l, struct ev *e, uint32_t events);
static void check_timer(struct loop *l, struct timer *t);
static void readmitted(struct ups_health *h, struct ups_shared *sh,
                       unsigned srv, int64_t now);

static const char *srv_name(struct check *c, char *buf, size_t len)
{
    struct ups u = { .cu = c->sh->cu, .sh = c->sh };
    return ups_srv_name(&u, c->srv, buf, len);
}

/* ---- transitions ---- */

static void passed(struct check *c, int64_t now)
{
    const struct cfg_health *hc = &c->sh->cu->health;
    struct ups_srv_sh *s = &c->sh->srv[c->srv];
    char name[80];
    c->fails = 0;
    c->passes++;
    c->since_eject++;
    if (atomic_load_explicit(&s->down, RLX)) {
        if (c->passes < hc->rise)
            return;
        int64_t until = atomic_load_explicit(&s->eject_until, RLX);
        if (until > now)
            atomic_compare_exchange_strong_explicit(&s->eject_until, &until, now,
                                                    RLX, RLX);
        ups__set_down(c->sh, c->srv, false, now);
        c->eject_seen = atomic_load_explicit(&s->eject_until, RLX);
        readmitted(c->h, c->sh, c->srv, c->eject_seen);
        log_info("upstream %s: server %s is up (%u health checks passed in "
                 "a row)", c->sh->cu->name, srv_name(c, name, sizeof(name)),
                 c->passes);
        return;
    }
    int64_t until = atomic_load_explicit(&s->eject_until, RLX);
    if (until != c->eject_seen) { /* a new ejection: count from now */
        c->eject_seen = until;
        c->since_eject = until > now ? 1 : 0;
    }
    if (until > now && c->since_eject >= hc->rise &&
        atomic_compare_exchange_strong_explicit(&s->eject_until, &until, now,
                                                RLX, RLX)) {
        atomic_store_explicit(&s->back_at, now, RLX);
        atomic_store_explicit(&s->eject_end, now, RLX);
        c->eject_seen = now;
        readmitted(c->h, c->sh, c->srv, now);
        log_info("upstream %s: server %s readmitted (%u health checks "
                 "passed since its ejection)", c->sh->cu->name,
                 srv_name(c, name, sizeof(name)), c->since_eject);
    }
}

static void failed(struct check *c, const char *why)
{
    const struct cfg_health *hc = &c->sh->cu->health;
    struct ups_srv_sh *s = &c->sh->srv[c->srv];
    char name[80];
    c->passes = 0;
    c->since_eject = 0;
    c->fails++;
    if (atomic_load_explicit(&s->down, RLX) || c->fails < hc->fall)
        return;
    ups__set_down(c->sh, c->srv, true, 0);
    log_warn("upstream %s: server %s is down (health check: %s; %u failures "
             "in a row)", c->sh->cu->name, srv_name(c, name, sizeof(name)), why,
             c->fails);
}

/* ---- one check ---- */

static void finish(struct check *c, bool ok, const char *why)
{
    struct loop *l = c->h->loop;
    if (c->ev.fd >= 0) {
        close(c->ev.fd);
        c->ev.fd = -1;
    }
    c->state = CK_IDLE;
    int64_t now = loop_now(l);
    if (ok)
        passed(c, now);
    else
        failed(c, why);
    struct mworker *hm = c->h->st->hm;
    if (hm != NULL) {
        bool down = atomic_load_explicit(&c->sh->srv[c->srv].down, RLX);
        m_hc_result(m_slot(hm, c->sh->cu->servers[c->srv].mslot), ok, down,
                    (uint64_t)loop_wall_ms(l));
    }
    int64_t next = c->started + c->sh->cu->health.interval - now;
    timer_set(l, &c->timer, next, check_timer);
}

static void start(struct check *c)
{
    struct loop *l = c->h->loop;
    struct sockaddr_storage ss;
    uint32_t gen;
    c->started = loop_now(l);
    socklen_t len = ups__addr(c->sh, c->srv, &ss, &gen);
    if (len == 0) { /* an empty DNS slot: nothing to check */
        timer_set(l, &c->timer, c->sh->cu->health.interval, check_timer);
        return;
    }
    int fd = sock_connect((struct sockaddr *)&ss, len);
    if (fd < 0) {
        finish(c, false, strerror(-fd));
        return;
    }
    c->ev = (struct ev){ fd, check_event };
    if (loop_add(l, &c->ev) < 0) {
        finish(c, false, "cannot watch the socket");
        return;
    }
    c->state = CK_CONNECTING;
    c->req_off = 0;
    c->rlen = 0;
    timer_set(l, &c->timer, c->sh->cu->health.timeout, check_timer);
}

static void check_timer(struct loop *l, struct timer *t)
{
    (void)l;
    struct check *c = container_of(t, struct check, timer);
    if (c->state == CK_IDLE)
        start(c);
    else
        finish(c, false, c->state == CK_CONNECTING ? "connect timed out"
                                                   : "no response in time");
}

/* "HTTP/1.1 200 ..." -> 200; 0 when not a status line (yet). */
static int status_of(const char *p, size_t n, bool *bad)
{
    *bad = false;
    if (n < 13)
        return 0;
    if (memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || (p[12] != ' ' && p[12] != '\r')) {
        *bad = true;
        return 0;
    }
    return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static void on_readable(struct check *c)
{
    const struct cfg_health *hc = &c->sh->cu->health;
    for (;;) {
        ssize_t n = read(c->ev.fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        if (n <= 0) {
            finish(c, false, n == 0 ? "connection closed before a status line"
                                    : strerror(errno));
            return;
        }
        c->rlen += (size_t)n;
        bool bad;
        int st = status_of(c->rbuf, c->rlen, &bad);
        if (bad) {
            finish(c, false, "not an HTTP/1.x response");
            return;
        }
        if (st == 0)
            continue;
        char why[48];
        snprintf(why, sizeof(why), "status %d", st);
        finish(c, st >= hc->status_lo && st <= hc->status_hi, why);
        return;
    }
}

static void check_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct check *c = container_of(e, struct check, ev);
    if (c->ev.fd < 0 || c->state == CK_IDLE)
        return;
    if (c->state == CK_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = sock_error(c->ev.fd);
        if (err != 0) {
            finish(c, false, strerror(err));
            return;
        }
        if (c->req == NULL) {
            finish(c, true, NULL);
            return;
        }
        c->state = CK_READING;
    }
    while (c->req_off < c->req_len) {
        ssize_t w = write(c->ev.fd, c->req + c->req_off, c->req_len - c->req_off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && errno == EAGAIN)
            return;
        if (w == -1) {
            finish(c, false, strerror(errno));
            return;
        }
        c->req_off += (size_t)w;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c);
}

static int check_init(struct ups_health *h, struct check *c,
                      struct ups_shared *sh, unsigned srv, size_t nth, size_t n)
{
    const struct cfg_upstream *cu = sh->cu;
    const struct cfg_health *hc = &cu->health;
    *c = (struct check){ .h = h, .sh = sh, .srv = srv, .ev = { -1, NULL } };
    if (!hc->tcp) {
        const struct cfg_server *cs = &cu->servers[srv];
        char host[300];
        if (hc->host != NULL)
            snprintf(host, sizeof(host), "%s", hc->host);
        else if (cs->host != NULL)
            snprintf(host, sizeof(host), "%s:%u", cs->host, (unsigned)cs->port);
        else
            snprintf(host, sizeof(host), "%s", cs->addr.text);
        size_t cap = strlen(hc->path) + strlen(host) + 128;
        c->req = malloc(cap);
        if (c->req == NULL)
            return -ENOMEM;
        int len = snprintf(c->req, cap,
                           "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                           "gatehouse-health\r\nConnection: close\r\n\r\n",
                           hc->path, host);
        c->req_len = (size_t)MAX(len, 0);
    }
    /* spread the first checks over the first interval */
    timer_set(h->loop, &c->timer, (int64_t)(hc->interval * (int64_t)nth / (int64_t)n),
              check_timer);
    return 0;
}

/* ---- ejection ends ---- */

static void readmitted(struct ups_health *h, struct ups_shared *sh,
                       unsigned srv, int64_t now)
{
    (void)now;
    for (size_t i = 0; i < h->nwatch; i++)
        if (h->watch[i].sh == sh)
            h->watch[i].until[srv] = 0; /* its end was logged already */
}

/* wt->until[s]: the end of the ejection we wait to see pass, or 0. */
static void watch_ejections(struct ups_health *h, int64_t now)
{
    for (size_t i = 0; i < h->nwatch; i++) {
        struct watch *wt = &h->watch[i];
        for (unsigned s = 0; s < wt->sh->cu->nservers; s++) {
            int64_t until = atomic_load_explicit(&wt->sh->srv[s].eject_until, RLX);
            int64_t pending = wt->until[s];
            if (pending == 0 || (until > now && until == pending)) {
                if (until > now)
                    wt->until[s] = until;
                continue;
            }
            if (pending <= now || until <= now) { /* it ended (maybe ejected again) */
                char name[80];
                struct ups u = { .cu = wt->sh->cu, .sh = wt->sh };
                bool down = atomic_load_explicit(&wt->sh->srv[s].down, RLX);
                log_info("upstream %s: server %s: ejection over; %s",
                         wt->sh->cu->name, ups_srv_name(&u, s, name, sizeof(name)),
                         down ? "still down by health checks" : "back in service");
            }
            wt->until[s] = until > now ? until : 0;
        }
    }
}

static void tick(struct loop *l, struct timer *t)
{
    struct ups_health *h = container_of(t, struct ups_health, tick);
    int64_t now = loop_now(l);
    watch_ejections(h, now);
    ups__resolve_tick(h, now);
    timer_set(l, &h->tick, h->dns_busy ? 20 : TICK_MS, tick);
}

/* ---- the thread ---- */

static void stop_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)e;
    (void)events;
    loop_stop(l);
}

static void *health_main(void *arg)
{
    struct ups_health *h = arg;
    log_set_thread_tag("health");
    int rc = loop_run(h->loop);
    if (rc < 0)
        log_err("health thread: event loop failed: %s", strerror(-rc));
    return NULL;
}

static void health_free(struct ups_health *h)
{
    for (size_t i = 0; i < h->nchecks; i++) {
        if (h->checks[i].ev.fd >= 0)
            close(h->checks[i].ev.fd);
        free(h->checks[i].req);
    }
    for (size_t i = 0; i < h->nwatch; i++)
        free(h->watch[i].until);
    ups__resolve_fini(h);
    free(h->checks);
    free(h->watch);
    if (h->stop.fd >= 0)
        close(h->stop.fd);
    loop_free(h->loop);
    free(h);
}

static int health_init(struct ups_health *h, struct ups_state *st)
{
    size_t nchecks = 0, nwatch = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct cfg_upstream *cu = st->ups[i].cu;
        nchecks += cu->health.on ? cu->nservers : 0;
        nwatch += cu->passive.on;
    }
    h->checks = calloc(nchecks + 1, sizeof(*h->checks));
    h->watch = calloc(nwatch + 1, sizeof(*h->watch));
    if (h->checks == NULL || h->watch == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < st->n; i++) {
        struct ups_shared *sh = &st->ups[i];
        const struct cfg_upstream *cu = sh->cu;
        if (cu->passive.on) {
            struct watch *wt = &h->watch[h->nwatch++];
            wt->sh = sh;
            wt->until = calloc(cu->nservers, sizeof(*wt->until));
            if (wt->until == NULL)
                return -ENOMEM;
        }
        for (size_t s = 0; cu->health.on && s < cu->nservers; s++) {
            int rc = check_init(h, &h->checks[h->nchecks], sh, (unsigned)s, s,
                                cu->nservers);
            h->nchecks++;
            if (rc < 0)
                return rc;
        }
    }
    int rc = ups__resolve_init(h, st);
    if (rc < 0)
        return rc;
    timer_set(h->loop, &h->tick, 0, tick);
    return 0;
}

int ups_health_start(struct ups_state *st, struct ups_health **out)
{
    *out = NULL;
    bool need = false;
    for (size_t i = 0; i < st->n; i++) {
        const struct cfg_upstream *cu = st->ups[i].cu;
        need |= cu->health.on || cu->passive.on || st->ups[i].dns;
    }
    if (!need)
        return 0;
    struct ups_health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->st = st;
    h->stop.fd = -1;
    h->loop = loop_new();
    if (h->loop == NULL) {
        free(h);
        return -ENOMEM;
    }
    int rc = health_init(h, st);
    int efd = rc == 0 ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
    if (rc == 0 && efd == -1)
        rc = -errno;
    if (rc == 0) {
        h->stop = (struct ev){ efd, stop_event };
        rc = loop_add_read(h->loop, &h->stop);
    }
    if (rc == 0) {
        int e = pthread_create(&h->thread, NULL, health_main, h);
        rc = -e;
    }
    if (rc < 0) {
        health_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void ups_health_stop(struct ups_health *h)
{
    if (h == NULL)
        return;
    uint64_t one = 1;
    if (write(h->stop.fd, &one, sizeof(one)) < 0)
        log_err("cannot stop the health thread: %s", strerror(errno));
    pthread_join(h->thread, NULL);
    health_free(h);
}
