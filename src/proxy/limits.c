/*
 * Where the limits meet the proxy: the process-wide connection ceiling at
 * accept, the per-address connection count, and the rate limits of
 * listeners and routes (429 with Retry-After).
 *
 * At the ceiling a worker takes its listeners out of epoll instead of
 * accepting and closing: new clients wait in the kernel's listen queue
 * (the listener's backlog) and are served as soon as others leave. The
 * worker looks again when one of its own connections closes, and every
 * PAUSE_MS in case the room was made by another worker. accept(2) failing
 * for want of file descriptors pauses the same way, instead of spinning
 * on a listener that stays readable.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/cluster_glue.h"
#include "proxy/proxy_int.h"

#define PAUSE_MS 50

/* ---- the process-wide ceiling ---- */

/* The listeners of the current generation; a reload while paused gives
 * new ones, watched at once: the next accept on them pauses again. */
static void resume(struct worker *w)
{
    struct gen *g = w->gen;
    w->paused = false;
    timer_cancel(w->loop, &w->pause_timer);
    for (size_t i = 0; i < g->nls; i++)
        if (g->ls[i].ev.fd >= 0 && loop_add_read(w->loop, &g->ls[i].ev) < 0)
            log_err("listener %s: cannot watch it again: %s",
                    g->ls[i].cl->addr.text, strerror(errno));
}

static void pause_check(struct loop *l, struct timer *t)
{
    (void)l;
    struct worker *w = container_of(t, struct worker, pause_timer);
    if (!w->paused || w->ls_closed)
        return;
    if (connlimit_full(&w->gd->conns))
        timer_set(w->loop, &w->pause_timer, PAUSE_MS, pause_check);
    else
        resume(w);
}

static void pause_accepting(struct worker *w)
{
    if (w->paused || w->ls_closed)
        return;
    w->paused = true;
    for (size_t i = 0; i < w->gen->nls; i++)
        loop_del(w->loop, &w->gen->ls[i].ev);
    timer_set(w->loop, &w->pause_timer, PAUSE_MS, pause_check);
    log_debug("accepting paused: %lu client connections open (max_connections "
              "%lu)", atomic_load(&w->gd->conns.open), w->gd->conns.max);
}

bool lim_accept_begin(struct worker *w)
{
    if (connlimit_reserve(&w->gd->conns))
        return true;
    pause_accepting(w);
    return false;
}

void lim_accept_failed(struct worker *w, int err)
{
    connlimit_release(&w->gd->conns);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        int64_t now = loop_wall(w->loop);
        if (now != w->warned_sec) {
            w->warned_sec = now;
            log_err("accept: %s: pausing for %dms", strerror(err), PAUSE_MS);
        }
        pause_accepting(w);
    }
}

void lim_conn_gone(struct worker *w, int slot)
{
    if (slot >= 0)
        connlimit_addr_put(&w->gd->conns, slot);
    connlimit_release(&w->gd->conns);
    if (w->paused && !w->ls_closed && !connlimit_full(&w->gd->conns))
        resume(w);
}

/* ---- per client address ---- */

/* Counts <peer> on <cl>: a handle, or LIM_REFUSED. */
static int count_addr(struct worker *w, const struct cfg_listener *cl,
                      const union sockaddr_any *peer)
{
    int rc = connlimit_addr_get(&w->gd->conns, cl->id, &peer->sa,
                                cl->limits.conns_per_addr);
    if (rc >= 0)
        return rc;
    stats_denied(w, MG_DENIED_CONN);
    int64_t now = loop_wall(w->loop);
    if (now != w->warned_sec) { /* at most one line a second per worker */
        w->warned_sec = now;
        char a[64];
        sock_ntop(&peer->sa, a, sizeof(a));
        log_warn("listener %s: %s: %s", cl->addr.text, a,
                 rc == -EMFILE ? "connections_per_address reached; closing "
                                 "new connections"
                               : "no room to count its connections; closing");
    }
    return LIM_REFUSED;
}

int lim_conn_open(struct worker *w, const struct cfg_listener *cl,
                  const union sockaddr_any *peer)
{
    if (cl->limits.conns_per_addr == 0 || cl->proxy_protocol)
        return -1; /* nothing to count, or the balancer's address */
    return count_addr(w, cl, peer);
}

int lim_conn_pp(struct conn *c)
{
    if (c->cl->limits.conns_per_addr == 0 || c->addr_slot >= 0)
        return 0;
    c->addr_slot = count_addr(c->w, c->cl, &c->peer);
    if (c->addr_slot != LIM_REFUSED)
        return 0;
    c->addr_slot = -1;
    return -1;
}

/* ---- rate limits ---- */

static bool rule_key(const struct txn *t, const struct cfg_rate *r,
                     struct sec_key *k)
{
    switch (r->by) {
    case CFG_RATE_ADDRESS:
        sec_key_addr(k, r->id, &t->c->peer.sa);
        return true;
    case CFG_RATE_ROUTE:
        sec_key_route(k, r->id);
        return true;
    case CFG_RATE_USER:
        if (t->user.len == 0)
            return false; /* not authenticated: this rule does not count */
        sec_key_user(k, r->id, t->user);
        return true;
    }
    return false;
}

static const char *const reasons[] = {
    [CFG_RATE_ADDRESS] = "rate_limit_address",
    [CFG_RATE_ROUTE] = "rate_limit_route",
    [CFG_RATE_USER] = "rate_limit_user",
};

void lim__too_many(struct txn *t, const struct cfg_rate *r, int64_t wait_ns)
{
    /* Retry-After is whole seconds (RFC 9110 10.2.3), rounded up */
    long long secs = (wait_ns + 999999999) / 1000000000;
    if (secs < 1)
        secs = 1;
    t->reason = reasons[r->by];
    stats_denied(t->c->w, MG_DENIED_RATE);
    char *body = pool_alloc(t->pool, 128);
    char *extra = pool_alloc(t->pool, 160);
    if (body == NULL || extra == NULL) {
        conn_close(t->c);
        return;
    }
    int bl = snprintf(body, 128, "429 Too Many Requests\nRetry in %lld "
                      "second%s.\n", secs, secs == 1 ? "" : "s");
    snprintf(extra, 160, "Retry-After: %lld\r\nProxy-Status: gatehouse; "
             "error=http_request_denied; details=\"%s\"\r\n", secs, t->reason);
    txn_local(t, 429, "text/plain; charset=utf-8", body,
              bl > 0 && bl < 128 ? (size_t)bl : 0, extra);
}

bool lim__local(struct txn *t, const struct cfg_rate *r, const struct sec_key *k)
{
    struct rl_table *tab = t->c->w->gd->rl;
    int64_t now = loop_now_us(t->c->w->loop) * 1000;
    int64_t wait = tab != NULL ? rl_take(tab, k, r->period_ns, r->burst, now) : 0;
    if (wait > 0) {
        lim__too_many(t, r, wait);
        return true;
    }
    return false;
}

bool lim__from(struct txn *t, const struct cfg_rate *rs, size_t n, size_t i,
               int stage)
{
    for (; i < n; i++) {
        struct sec_key k;
        if (!rule_key(t, &rs[i], &k))
            continue;
        /* with Redis, the cluster decides (and local state if it cannot) */
        if (t->c->w->shared != NULL && clglue_limit(t, rs, n, i, stage, &k))
            return true;
        if (t->c->w->shared == NULL && lim__local(t, &rs[i], &k))
            return true;
    }
    return false;
}

bool lim_request(struct txn *t, const struct cfg_rate *rs, size_t n, int stage)
{
    if (n == 0 || t->c->w->gd->rl == NULL)
        return false;
    return lim__from(t, rs, n, 0, stage);
}
