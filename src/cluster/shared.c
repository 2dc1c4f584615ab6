/*
 * Redis connections on our event loop.
 *
 * hiredis's async API wants an event library that can switch read and
 * write interest on and off; our loop registers each fd once, edge-
 * triggered, for both directions. The adapter bridges the two the way the
 * rest of the proxy does: an event only records readiness (readable,
 * writable, rdhup), and rc_pump() acts on what hiredis wants. Two rules
 * follow from edge triggering:
 *
 *  - Writes: when hiredis asks to write while the socket is known to be
 *    writable, no new edge will come, so the write runs as a deferred call
 *    after this batch. When hiredis still wants to write after a write, the
 *    socket is full and the next EPOLLOUT edge resumes it.
 *  - Reads: hiredis reads at most 16 KiB per call, so we call it until the
 *    socket holds nothing more (a recv(MSG_PEEK) would block), or until EOF
 *    once the peer hung up.
 *
 * hiredis must never be asked to read or write a socket whose connect(2)
 * is still in progress (it would take "no error yet" for "connected"), so
 * until the connect callback says otherwise only a real event drives it.
 *
 * Failure handling is what makes Redis optional: a connection that fails,
 * dies, or leaves a reply waiting longer than the timeout is freed at once
 * (every pending call completes with an error), calls made while it is
 * down fail immediately, and a timer reconnects with a capped exponential
 * backoff and some jitter, so N workers on M nodes do not retry in step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/shared_int.h"
#include "core/log.h"
#include "core/macros.h"

#define BACKOFF_MIN 100 /* ms */
#define READS_PER_PUMP 64

struct shared__counters shared__cnt;

static void rc_pump(struct rconn *rc);
static void rc_retry(struct loop *l, struct timer *t);

static void cnt_add(atomic_uint_fast64_t *c, int64_t d)
{
    if (d >= 0)
        atomic_fetch_add_explicit(c, (uint_fast64_t)d, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(c, (uint_fast64_t)-d, memory_order_relaxed);
}

/* ---- the hiredis event hooks ---- */

static void pump_deferred(struct loop *l, struct defer *d)
{
    (void)l;
    rc_pump(container_of(d, struct rconn, defer));
}

static void hook_add_read(void *priv)
{
    (void)priv; /* reads are always welcome */
}

static void hook_del_read(void *priv)
{
    (void)priv;
}

static void hook_add_write(void *priv)
{
    struct rconn *rc = priv;
    rc->want_w = true;
    if (rc->connected && rc->writable)
        loop_defer(rc->s->l, &rc->defer, pump_deferred);
}

static void hook_del_write(void *priv)
{
    ((struct rconn *)priv)->want_w = false;
}

/* Called by hiredis when it frees the context, after every pending
 * callback ran with a NULL reply; it closes the fd afterwards. */
static void hook_cleanup(void *priv)
{
    struct rconn *rc = priv;
    struct shared *s = rc->s;
    if (rc->ac == NULL)
        return; /* hiredis may call this twice */
    loop_del(s->l, &rc->ev);
    rc->ev.fd = -1;
    loop_undefer(s->l, &rc->defer);
    timer_cancel(s->l, &rc->timer);
    rc->ac = NULL;
    rc->connected = false;
    if (rc->state == RC_UP && rc == &s->cmd)
        cnt_add(&shared__cnt.up, -1);
    cnt_add(&shared__cnt.lost, 1);
    rc->state = RC_DOWN;
    rc->npend = 0;
    if (s->closing)
        return;
    /* jitter: 75%..125% of the backoff */
    int64_t d = rc->backoff * 3 / 4 + (int64_t)(random() % (rc->backoff / 2 + 1));
    timer_set(s->l, &rc->timer, d, rc_retry);
    rc->backoff = MIN(rc->backoff * 2, s->reconnect_max);
}

/* ---- events ---- */

static void rc_read(struct rconn *rc)
{
    for (int i = 0; i < READS_PER_PUMP; i++) {
        if (rc->ac == NULL || !rc->connected)
            return;
        redisAsyncHandleRead(rc->ac);
        if (rc->ac == NULL)
            return;
        /* more to read? (recv, not ioctl(FIONREAD): the sandbox allows the
         * socket calls a worker makes anyway) */
        char b;
        ssize_t n = recv(rc->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == -1 && !rc->rdhup) {
            rc->readable = false; /* EAGAIN: drained */
            return;
        }
    }
    loop_defer(rc->s->l, &rc->defer, pump_deferred); /* more after others */
}

static void rc_pump(struct rconn *rc)
{
    if (rc->ac != NULL && rc->writable && rc->want_w) {
        redisAsyncHandleWrite(rc->ac);
        if (rc->ac != NULL && rc->want_w)
            rc->writable = false; /* the socket is full: wait for an edge */
    }
    if (rc->ac != NULL && rc->readable)
        rc_read(rc);
}

static void rc_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct rconn *rc = container_of(e, struct rconn, ev);
    if (rc->ac == NULL)
        return;
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        rc->writable = true;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        rc->readable = true;
    if (events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        rc->rdhup = true;
    if (rc->state == RC_CONNECTING && (events & (EPOLLERR | EPOLLHUP)))
        rc->want_w = true; /* let hiredis see the failed connect */
    rc_pump(rc);
}

/* ---- connect, deadlines, reconnect ---- */

static void rc_deadline(struct loop *l, struct timer *t)
{
    (void)l;
    struct rconn *rc = container_of(t, struct rconn, timer);
    struct shared *s = rc->s;
    if (rc->state == RC_CONNECTING) {
        if (!rc->warned)
            log_warn("redis %s: %s connection: no answer within %lldms; using "
                     "local state, retrying in the background",
                     s->addr_text, rc->role, (long long)s->timeout);
        rc->warned = true;
        shared__rc_drop(rc, -ETIMEDOUT);
    } else if (rc->state == RC_UP && rc->npend > 0) {
        log_warn("redis %s: no reply within %lldms (%u pending); dropping the "
                 "connection, using local state until it is back",
                 s->addr_text, (long long)s->timeout, rc->npend);
        cnt_add(&shared__cnt.timeouts, rc->npend);
        rc->was_up = true;
        rc->warned = true;
        shared__rc_drop(rc, -ETIMEDOUT);
        /* The subscriber waits for messages, so it cannot tell a stalled or
         * unreachable Redis from a quiet one: make it connect again too,
         * and report the gap once it is back. */
        if (s->sub.state == RC_UP) {
            s->sub.was_up = true;
            shared__rc_drop(&s->sub, -ETIMEDOUT);
        }
    }
}

static void rc_retry(struct loop *l, struct timer *t)
{
    (void)l;
    struct rconn *rc = container_of(t, struct rconn, timer);
    if (rc->state == RC_DOWN && !rc->s->closing)
        shared__rc_start(rc);
}

/* Connected, and authenticated when a password is set: calls may go. */
static void become_up(struct rconn *rc)
{
    struct shared *s = rc->s;
    rc->state = RC_UP;
    if (rc->npend == 0)
        timer_cancel(s->l, &rc->timer);
    rc->backoff = BACKOFF_MIN;
    cnt_add(&shared__cnt.connects, 1);
    if (rc == &s->cmd)
        cnt_add(&shared__cnt.up, 1);
    if (rc->warned || rc->was_up)
        log_info("redis %s: %s connection up again; shared state in use",
                 s->addr_text, rc->role);
    else
        log_debug("redis %s: %s connection up", s->addr_text, rc->role);
    rc->warned = false;
    if (rc == &s->sub)
        shared__resubscribe(s);
}

static void hello_done(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct rconn *rc = priv;
    redisReply *r = reply;
    shared__rc_replied(rc);
    if (r == NULL)
        return; /* the connection is going: hook_cleanup */
    if (r->type == REDIS_REPLY_ERROR) {
        if (!rc->warned)
            log_err("redis %s: %s refused (%s); using local state",
                    rc->s->addr_text, rc->s->password ? "AUTH" : "PING", r->str);
        rc->warned = true;
        shared__rc_drop(rc, -EACCES); /* hiredis frees it after this call */
        return;
    }
    become_up(rc);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct rconn *rc = cac->data;
    struct shared *s = rc->s;
    if (status != REDIS_OK) {
        if (!rc->warned)
            log_warn("redis %s: %s connection failed (%s); using local state, "
                     "retrying in the background",
                     s->addr_text, rc->role, cac->errstr);
        rc->warned = true;
        return; /* hiredis frees the context: hook_cleanup */
    }
    rc->connected = true;
    /* a peer gone without a word (a partition) shows up within minutes
     * even on a quiet subscriber connection */
    (void)redisEnableKeepAlive((redisContext *)&cac->c);
    /* AUTH (or PING) first, and up only once Redis answers it: a stopped
     * Redis (SIGSTOP, a hung host) still completes TCP handshakes in the
     * kernel, and a connection declared up at connect would send every
     * call into the timeout again, backoff reset each time. Calls wait for
     * the answer; the connect deadline runs on. */
    const char *argv[2] = { "AUTH", s->password };
    size_t argvlen[2] = { 4, s->password ? strlen(s->password) : 0 };
    if (s->password == NULL) {
        argv[0] = "PING";
        argvlen[0] = 4;
    }
    if (redisAsyncCommandArgv(rc->ac, hello_done, rc, s->password ? 2 : 1, argv,
                              argvlen) == REDIS_OK)
        rc->npend++;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;
    rc->was_up = true;
    if (status == REDIS_OK || rc->s->closing || rc->warned)
        return; /* we closed it, and said why */
    rc->warned = true;
    log_warn("redis %s: %s connection lost (%s); using local state until it "
             "is back", rc->s->addr_text, rc->role,
             ac->errstr[0] ? ac->errstr : "closed");
}

/* Could not even start: count it and try again later. */
static void start_failed(struct rconn *rc, const char *why)
{
    struct shared *s = rc->s;
    if (!rc->warned)
        log_warn("redis %s: %s connection: %s; using local state, retrying in "
                 "the background", s->addr_text, rc->role, why);
    rc->warned = true;
    cnt_add(&shared__cnt.lost, 1);
    rc->state = RC_DOWN;
    timer_set(s->l, &rc->timer, rc->backoff, rc_retry);
    rc->backoff = MIN(rc->backoff * 2, s->reconnect_max);
}

void shared__rc_start(struct rconn *rc)
{
    struct shared *s = rc->s;
    redisAsyncContext *ac = redisAsyncConnect(s->ip, s->port);
    if (ac == NULL) {
        start_failed(rc, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        start_failed(rc, why);
        return;
    }
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    rc->connected = false;
    rc->want_w = rc->writable = rc->readable = rc->rdhup = false;
    rc->npend = 0;
    rc->why = -ENOTCONN;
    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
    rc->ev = (struct ev){ ac->c.fd, rc_event };
    int rc_add = loop_add(s->l, &rc->ev);
    if (rc_add < 0) {
        redisAsyncFree(ac); /* hook_cleanup schedules the retry */
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect); /* asks to write */
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    timer_set(s->l, &rc->timer, s->timeout, rc_deadline);
}

void shared__rc_drop(struct rconn *rc, int why)
{
    if (rc->ac == NULL)
        return;
    rc->why = why;
    redisAsyncFree(rc->ac); /* pending calls fail, then hook_cleanup */
}

int shared__rc_send(struct rconn *rc, redisCallbackFn *fn, void *priv,
                    bool counted, int argc, const char **argv,
                    const size_t *argvlen)
{
    if (rc->state != RC_UP || rc->ac == NULL)
        return -ENOTCONN;
    if (redisAsyncCommandArgv(rc->ac, fn, priv, argc, argv, argvlen) != REDIS_OK)
        return -ENOTCONN;
    if (counted && rc->npend++ == 0)
        timer_set(rc->s->l, &rc->timer, rc->s->timeout, rc_deadline);
    return 0;
}

void shared__rc_replied(struct rconn *rc)
{
    if (rc->npend == 0)
        return;
    if (--rc->npend > 0)
        timer_set(rc->s->l, &rc->timer, rc->s->timeout, rc_deadline);
    else if (rc->state == RC_UP)
        timer_cancel(rc->s->l, &rc->timer);
}

void shared__rc_init(struct rconn *rc, struct shared *s, const char *role)
{
    memset(rc, 0, sizeof(*rc));
    rc->s = s;
    rc->role = role;
    rc->ev.fd = -1;
    rc->state = RC_OFF;
    rc->backoff = BACKOFF_MIN;
}

/* ---- the client ---- */

struct shared *shared_new(struct loop *l, const struct cfg_redis *cfg)
{
    struct shared *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->l = l;
    const struct sockaddr *sa = (const struct sockaddr *)&cfg->addr.ss;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, s->ip, sizeof(s->ip));
        s->port = ntohs(in6->sin6_port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, s->ip, sizeof(s->ip));
        s->port = ntohs(in->sin_port);
    }
    snprintf(s->addr_text, sizeof(s->addr_text), "%s", cfg->addr.text);
    if (cfg->password != NULL) {
        s->password = strdup(cfg->password);
        if (s->password == NULL) {
            free(s);
            return NULL;
        }
    }
    const char *prefix = cfg->prefix != NULL ? cfg->prefix : "";
    snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    s->plen = strlen(s->prefix);
    s->timeout = cfg->timeout > 0 ? cfg->timeout : 200;
    s->reconnect_max = MAX(cfg->reconnect_max, BACKOFF_MIN);
    shared__rc_init(&s->cmd, s, "command");
    shared__rc_init(&s->sub, s, "subscriber");
    s->cmd.state = RC_DOWN;
    shared__rc_start(&s->cmd);
    return s;
}

void shared_free(struct shared *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    shared__rc_drop(&s->cmd, -ECANCELED);
    shared__rc_drop(&s->sub, -ECANCELED);
    timer_cancel(s->l, &s->cmd.timer);
    timer_cancel(s->l, &s->sub.timer);
    for (size_t i = 0; i < s->nsubs; i++)
        free(s->subs[i].channel);
    for (size_t i = 0; i < s->nattached; i++)
        free(s->attached[i]);
    free(s->attached);
    shared__calls_free(s);
    free(s->password);
    free(s);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

bool shared_cfg_same(const struct cfg_redis *a, const struct cfg_redis *b)
{
    if (a->enabled != b->enabled)
        return false;
    if (!a->enabled)
        return true;
    return strcmp(a->addr.text, b->addr.text) == 0 && same_str(a->password, b->password) &&
           same_str(a->prefix, b->prefix) && a->timeout == b->timeout &&
           a->reconnect_max == b->reconnect_max;
}

void *shared_attach(struct shared *s, size_t n)
{
    void **a = realloc(s->attached, (s->nattached + 1) * sizeof(*a));
    if (a == NULL)
        return NULL;
    s->attached = a;
    void *p = calloc(1, n);
    if (p != NULL)
        a[s->nattached++] = p;
    return p;
}

bool shared_up(const struct shared *s)
{
    return s->cmd.state == RC_UP;
}

size_t shared_stats_prometheus(char *buf, size_t cap)
{
    struct shared_stats st;
    shared_stats(&st);
    int n = snprintf(buf, cap,
        "# HELP gatehouse_redis_up Workers whose Redis connection is up.\n"
        "# TYPE gatehouse_redis_up gauge\n"
        "gatehouse_redis_up %llu\n"
        "# HELP gatehouse_redis_fallbacks_total Calls answered from local state "
        "at once because Redis was down.\n"
        "# TYPE gatehouse_redis_fallbacks_total counter\n"
        "gatehouse_redis_fallbacks_total %llu\n"
        "# HELP gatehouse_redis_failed_total Calls sent to Redis that failed "
        "(then decided locally).\n"
        "# TYPE gatehouse_redis_failed_total counter\n"
        "gatehouse_redis_failed_total %llu\n"
        "# HELP gatehouse_redis_timeouts_total Calls that got no reply in time.\n"
        "# TYPE gatehouse_redis_timeouts_total counter\n"
        "gatehouse_redis_timeouts_total %llu\n"
        "# HELP gatehouse_redis_connections_total Redis connections made and "
        "lost.\n"
        "# TYPE gatehouse_redis_connections_total counter\n"
        "gatehouse_redis_connections_total{event=\"connected\"} %llu\n"
        "gatehouse_redis_connections_total{event=\"lost\"} %llu\n",
        (unsigned long long)st.up, (unsigned long long)st.fallbacks,
        (unsigned long long)st.failed, (unsigned long long)st.timeouts,
        (unsigned long long)st.connects, (unsigned long long)st.lost);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

void shared_stats(struct shared_stats *out)
{
    out->fallbacks = atomic_load(&shared__cnt.fallbacks);
    out->failed = atomic_load(&shared__cnt.failed);
    out->timeouts = atomic_load(&shared__cnt.timeouts);
    out->connects = atomic_load(&shared__cnt.connects);
    out->lost = atomic_load(&shared__cnt.lost);
    out->up = atomic_load(&shared__cnt.up);
}
