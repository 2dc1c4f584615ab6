/*
 * The process-wide state of the upstream pools: what every worker must
 * agree on about a server.
 *
 * The request path takes no lock: each field is an atomic written with
 * relaxed order, because each is a hint (a count, a deadline, an average)
 * that may be seen a little late without harm. Two places need more care:
 *
 *   - An ejection is decided by whichever worker sees the failure that
 *     completes the run; a compare-and-swap on <eject_until> makes exactly
 *     one of them the ejector, which logs it.
 *   - A DNS slot's address (a sockaddr, too wide for one atomic) is a
 *     seqlock of three 64-bit atomics (Boehm, "Can seqlocks get along with
 *     programming language memory models?", 2012): the health thread is
 *     the only writer; readers retry while the sequence is odd or moved.
 *
 * Passive checks (Envoy's outlier detection, nginx max_fails): <failures>
 * consecutive failures within <window> eject a server for <eject>, doubled
 * on each ejection that follows the last one closely (within eject_max),
 * up to <eject_max>. A success resets the run.
 *
 * Peak EWMA (Finagle, Linkerd): a latency above the average replaces it at
 * once; below, it is mixed in with weight 1 - exp(-dt/tau). Reads decay it
 * toward zero with the same law, so a server that was slow and then got no
 * traffic is tried again after a while.
 *
 * The retry budget (Finagle, Envoy) is a balance in thousandths of a
 * retry: each request deposits budget_pct x 10, each retry of a request
 * that reached a server withdraws 1000; the balance decays with a 10 s time
 * constant (so it reflects recent requests) and is topped up by budget_min
 * retries per second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/macros.h"
#include "upstream/ups_int.h"

#define BUDGET_TAU_MS 10000.0

/* ---- hashing ---- */

uint64_t ups__mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t ups__hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return ups__mix(h);
}

/* ---- addresses ---- */

static void pack(const struct sockaddr *sa, uint64_t w[3])
{
    memset(w, 0, 3 * sizeof(*w));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        memcpy(&w[0], &in->sin_addr, 4);
        w[2] = AF_INET | (uint64_t)ntohs(in->sin_port) << 16;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        memcpy(&w[0], &in6->sin6_addr, 16);
        w[2] = AF_INET6 | (uint64_t)ntohs(in6->sin6_port) << 16 |
               (uint64_t)in6->sin6_scope_id << 32;
    }
}

static socklen_t unpack(const uint64_t w[3], struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    unsigned fam = (unsigned)(w[2] & 0xffff);
    uint16_t port = (uint16_t)(w[2] >> 16);
    if (fam == AF_INET) {
        struct sockaddr_in *in = (void *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, &w[0], 4);
        return sizeof(*in);
    }
    if (fam == AF_INET6) {
        struct sockaddr_in6 *in6 = (void *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, &w[0], 16);
        in6->sin6_scope_id = (uint32_t)(w[2] >> 32);
        return sizeof(*in6);
    }
    return 0;
}

socklen_t ups__addr(const struct ups_shared *sh, unsigned srv,
                    struct sockaddr_storage *ss, uint32_t *gen)
{
    const struct cfg_server *cs = &sh->cu->servers[srv];
    if (cs->host == NULL) {
        memcpy(ss, &cs->addr.ss, cs->addr.len);
        *gen = 0;
        return cs->addr.len;
    }
    struct ups_srv_sh *s = &sh->srv[srv];
    uint64_t w[3];
    for (unsigned spin = 0;; spin++) {
        if (spin >= 64)
            sched_yield(); /* the writer was preempted mid-write */
        uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1)
            continue; /* the writer is between its two increments */
        for (int i = 0; i < 3; i++)
            w[i] = atomic_load_explicit(&s->aw[i], RLX);
        *gen = atomic_load_explicit(&s->gen, RLX);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, RLX) == s1)
            break;
    }
    return unpack(w, ss);
}

void ups__set_addr(struct ups_shared *sh, unsigned srv,
                   const struct sockaddr *sa, socklen_t len)
{
    struct ups_srv_sh *s = &sh->srv[srv];
    uint64_t w[3] = { 0, 0, 0 };
    if (len > 0)
        pack(sa, w);
    uint32_t q = atomic_load_explicit(&s->seq, RLX);
    atomic_store_explicit(&s->seq, q + 1, RLX);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&s->aw[i], w[i], RLX);
    atomic_fetch_add_explicit(&s->gen, 1, RLX);
    atomic_store_explicit(&s->seq, q + 2, memory_order_release);
    atomic_store_explicit(&s->live, len > 0, RLX);
}

const char *ups_srv_name(struct ups *u, unsigned srv, char *buf, size_t len)
{
    const struct cfg_server *cs = &u->cu->servers[srv];
    if (cs->host == NULL) {
        snprintf(buf, len, "%s", cs->addr.text);
        return buf;
    }
    struct sockaddr_storage ss;
    uint32_t gen;
    socklen_t sl = ups__addr(u->sh, srv, &ss, &gen);
    char ip[64] = "-";
    if (sl > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
    else if (sl > 0)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
                  sizeof(ip));
    snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
             (unsigned)cs->port);
    return buf;
}

/* ---- eligibility and weights ---- */

bool ups__usable(const struct ups_shared *sh, unsigned srv, int64_t now_ms)
{
    const struct ups_srv_sh *s = &sh->srv[srv];
    return atomic_load_explicit(&s->live, RLX) &&
           !atomic_load_explicit(&s->down, RLX) &&
           atomic_load_explicit(&s->eject_until, RLX) <= now_ms;
}

int64_t ups__weight(const struct ups *u, unsigned srv, int64_t now_ms)
{
    const struct cfg_upstream *cu = u->cu;
    int64_t w = (int64_t)cu->servers[srv].weight * UPS_WSCALE;
    if (cu->slow_start > 0) {
        int64_t back = atomic_load_explicit(&u->sh->srv[srv].back_at, RLX);
        if (back > 0 && now_ms >= back && now_ms - back < cu->slow_start) {
            /* from 10% to 100% of the weight over slow_start */
            int64_t f = (now_ms - back) * UPS_WSCALE / cu->slow_start;
            w = w * MAX(f, UPS_WSCALE / 10) / UPS_WSCALE;
        }
    }
    return w < 1 ? 1 : w;
}

/* ---- latency ---- */

double ups__ewma(const struct ups *u, unsigned srv, int64_t now_us)
{
    const struct ups_srv_sh *s = &u->sh->srv[srv];
    double v = atomic_load_explicit(&s->ewma_us, RLX);
    if (v <= 0)
        return 0;
    int64_t dt = now_us - atomic_load_explicit(&s->ewma_at, RLX);
    if (dt <= 0)
        return v;
    return v * exp(-(double)dt / ((double)u->cu->ewma_decay * 1000.0));
}

static void ewma_add(struct ups *u, unsigned srv, double rtt, int64_t now_us)
{
    struct ups_srv_sh *s = &u->sh->srv[srv];
    double prev = atomic_load_explicit(&s->ewma_us, RLX);
    double v = rtt;
    if (rtt <= prev) {
        int64_t dt = now_us - atomic_load_explicit(&s->ewma_at, RLX);
        double w = dt > 0 ? exp(-(double)dt / ((double)u->cu->ewma_decay * 1000.0))
                          : 1.0;
        v = prev * w + rtt * (1.0 - w);
    }
    /* racing workers: the last store wins; a lost sample is harmless */
    atomic_store_explicit(&s->ewma_us, v, RLX);
    atomic_store_explicit(&s->ewma_at, now_us, RLX);
}

/* ---- passive checks ---- */

static const char *fmt_ms(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
    return buf;
}

static void eject(struct ups *u, unsigned srv, int64_t now, uint32_t fails)
{
    const struct cfg_passive *p = &u->cu->passive;
    struct ups_srv_sh *s = &u->sh->srv[srv];
    int64_t until = atomic_load_explicit(&s->eject_until, RLX);
    if (until > now)
        return; /* already out */
    uint32_t k = atomic_load_explicit(&s->ejections, RLX);
    if (now - atomic_load_explicit(&s->eject_end, RLX) > p->eject_max)
        k = 0; /* well behaved since its last ejection: start over */
    int64_t period = p->eject;
    for (uint32_t i = 0; i < k && period < p->eject_max; i++)
        period *= 2;
    period = MIN(period, p->eject_max);
    if (!atomic_compare_exchange_strong_explicit(&s->eject_until, &until,
                                                 now + period, RLX, RLX))
        return; /* another worker ejected it first */
    atomic_store_explicit(&s->ejections, k + 1, RLX);
    atomic_store_explicit(&s->eject_end, now + period, RLX);
    atomic_store_explicit(&s->back_at, now + period, RLX);
    atomic_store_explicit(&s->fails, 0, RLX);
    if (u->srv[srv].m != NULL) /* for /status and /metrics: down until then */
        m_max(&u->srv[srv].m->v[MS_EJECT_UNTIL_MS],
              (uint64_t)(loop_wall_ms(u->loop) + period));
    char name[80], d[32];
    log_warn("upstream %s: server %s ejected for %s after %u failure%s in a "
             "row (ejection %u)", u->cu->name,
             ups_srv_name(u, srv, name, sizeof(name)), fmt_ms(period, d, sizeof(d)),
             fails, fails == 1 ? "" : "s", k + 1);
}

void ups_report(struct ups *u, unsigned srv, enum ups_outcome o,
                int64_t latency_us)
{
    const struct cfg_upstream *cu = u->cu;
    struct ups_srv_sh *s = &u->sh->srv[srv];
    if (o != UPS_FAIL && cu->balance == CFG_BAL_EWMA && latency_us >= 0)
        ewma_add(u, srv, (double)latency_us, loop_now_us(u->loop));
    if (!cu->passive.on)
        return;
    bool failed = o == UPS_FAIL || (o == UPS_5XX && cu->passive.status_5xx);
    if (!failed) {
        if (atomic_load_explicit(&s->fails, RLX) != 0)
            atomic_store_explicit(&s->fails, 0, RLX);
        return;
    }
    int64_t now = loop_now(u->loop);
    uint32_t n = atomic_fetch_add_explicit(&s->fails, 1, RLX) + 1;
    if (n == 1 || now - atomic_load_explicit(&s->fail_since, RLX) > cu->passive.window) {
        atomic_store_explicit(&s->fail_since, now, RLX);
        atomic_store_explicit(&s->fails, 1, RLX);
        n = 1;
    }
    if (n >= cu->passive.failures)
        eject(u, srv, now, n);
}

void ups__set_down(struct ups_shared *sh, unsigned srv, bool down,
                   int64_t now_ms)
{
    struct ups_srv_sh *s = &sh->srv[srv];
    atomic_store_explicit(&s->down, down, RLX);
    if (!down)
        atomic_store_explicit(&s->back_at, now_ms, RLX);
}

/* ---- retry budget ---- */

static void budget_refill(struct ups_shared *sh, int64_t now)
{
    int64_t at = atomic_load_explicit(&sh->budget_at, RLX);
    if (now - at < 100)
        return;
    if (!atomic_compare_exchange_strong_explicit(&sh->budget_at, &at, now, RLX, RLX))
        return; /* another worker refills */
    const struct cfg_retries *r = &sh->cu->retries;
    double dt = (double)(now - at);
    int64_t b = atomic_load_explicit(&sh->budget, RLX);
    int64_t nb = (int64_t)((double)b * exp(-dt / BUDGET_TAU_MS)) +
                 (int64_t)((double)r->budget_min * MIN(dt, BUDGET_TAU_MS));
    /* deposits made meanwhile are added back on top */
    atomic_fetch_add_explicit(&sh->budget, nb - b, RLX);
}

void ups__budget_deposit(struct ups *u)
{
    unsigned pct = u->cu->retries.budget_pct;
    if (pct == 0)
        return;
    /* batched per worker: one shared write per 16 requests */
    u->deposit += (int64_t)pct * 10;
    if (++u->ndeposit >= 16) {
        atomic_fetch_add_explicit(&u->sh->budget, u->deposit, RLX);
        u->deposit = 0;
        u->ndeposit = 0;
    }
}

bool ups_retry_allowed(struct ups *u)
{
    struct ups_shared *sh = u->sh;
    if (u->deposit > 0) { /* this worker's share first */
        atomic_fetch_add_explicit(&sh->budget, u->deposit, RLX);
        u->deposit = 0;
        u->ndeposit = 0;
    }
    budget_refill(sh, loop_now(u->loop));
    int64_t b = atomic_fetch_sub_explicit(&sh->budget, 1000, RLX);
    if (b >= 1000)
        return true;
    atomic_fetch_add_explicit(&sh->budget, 1000, RLX);
    return false;
}

/* ---- life cycle ---- */

static void carry_over(struct ups_shared *sh, const struct ups_state *prev)
{
    const struct ups_shared *ps = NULL;
    for (size_t i = 0; prev != NULL && i < prev->n && ps == NULL; i++)
        if (strcmp(prev->ups[i].cu->name, sh->cu->name) == 0)
            ps = &prev->ups[i];
    if (ps == NULL)
        return;
    for (size_t i = 0; i < sh->cu->nservers; i++) {
        struct ups_srv_sh *s = &sh->srv[i];
        for (size_t j = 0; j < ps->cu->nservers; j++) {
            const struct ups_srv_sh *o = &ps->srv[j];
            if (strcmp(s->ident, o->ident) != 0)
                continue;
#define COPY(f) atomic_store_explicit(&s->f, atomic_load_explicit(&o->f, RLX), RLX)
            COPY(down);
            COPY(eject_until);
            COPY(back_at);
            COPY(ejections);
            COPY(eject_end);
            COPY(ewma_us);
            COPY(ewma_at);
#undef COPY
            if (sh->cu->servers[i].host != NULL) {
                struct sockaddr_storage ss;
                uint32_t gen;
                socklen_t len = ups__addr(ps, (unsigned)j, &ss, &gen);
                ups__set_addr(sh, (unsigned)i, (struct sockaddr *)&ss, len);
            }
            break;
        }
    }
}

static int shared_init(struct ups_shared *sh, const struct cfg_upstream *cu,
                       const struct ups_state *prev)
{
    size_t n = cu->nservers ? cu->nservers : 1;
    sh->cu = cu;
    sh->srv = aligned_alloc(64, n * sizeof(*sh->srv));
    if (sh->srv == NULL)
        return -ENOMEM;
    memset(sh->srv, 0, n * sizeof(*sh->srv));
    for (size_t i = 0; i < cu->nservers; i++) {
        const struct cfg_server *cs = &cu->servers[i];
        struct ups_srv_sh *s = &sh->srv[i];
        if (cs->host == NULL) {
            snprintf(s->ident, sizeof(s->ident), "%s", cs->addr.text);
            atomic_store_explicit(&s->live, true, RLX);
            continue;
        }
        sh->dns = true; /* empty until resolve.c fills it */
        snprintf(s->ident, sizeof(s->ident), "%.60s:%u#%u", cs->host,
                 (unsigned)cs->port, cs->slot);
    }
    carry_over(sh, prev);
    atomic_store_explicit(&sh->budget, (int64_t)cu->retries.budget_min * 1000, RLX);
    if (ups__sticky_init(sh, prev) < 0)
        return -ENOMEM;
    if (cu->balance == CFG_BAL_HASH && ups__ring_build(sh) < 0)
        return -ENOMEM;
    return 0;
}

struct ups_shared *ups_shared_new(const struct cfg_upstream *cu)
{
    struct ups_shared *sh = aligned_alloc(64, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    memset(sh, 0, sizeof(*sh));
    if (shared_init(sh, cu, NULL) < 0) {
        ups_shared_free(sh);
        return NULL;
    }
    return sh;
}

void ups_shared_free(struct ups_shared *sh)
{
    if (sh == NULL)
        return;
    if (sh->srv != NULL)
        ups__sticky_free(sh);
    ups__ring_free(&sh->ring);
    free(sh->srv);
    free(sh);
}

struct ups_state *ups_state_new(const struct cfg *cfg,
                                const struct ups_state *prev)
{
    struct ups_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    atomic_init(&st->refs, 1);
    st->cfg = cfg;
    st->hm = prev != NULL ? prev->hm : NULL;
    st->ups = aligned_alloc(64, (cfg->nupstreams + 1) * sizeof(*st->ups));
    if (st->ups == NULL) {
        free(st);
        return NULL;
    }
    memset(st->ups, 0, (cfg->nupstreams + 1) * sizeof(*st->ups));
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        st->n++;
        if (shared_init(&st->ups[i], &cfg->upstreams[i], prev) < 0) {
            ups_state_free(st);
            return NULL;
        }
    }
    return st;
}

void ups_state_set_metrics(struct ups_state *st, struct mworker *hm)
{
    st->hm = hm;
}

struct ups_state *ups_state_ref(struct ups_state *st)
{
    atomic_fetch_add(&st->refs, 1);
    return st;
}

void ups_state_unref(struct ups_state *st)
{
    if (st != NULL && atomic_fetch_sub(&st->refs, 1) == 1)
        ups_state_free(st);
}

void ups_state_free(struct ups_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n; i++) {
        struct ups_shared *sh = &st->ups[i];
        if (sh->srv != NULL)
            ups__sticky_free(sh);
        ups__ring_free(&sh->ring);
        free(sh->srv);
    }
    free(st->ups);
    free(st);
}
