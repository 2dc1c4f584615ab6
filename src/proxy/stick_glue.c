/*
 * The stick table in the proxy (sticky: learn / by: source;
 * docs/upstreams.md, docs/cluster.md).
 *
 * Each process keeps one table per pool (src/upstream/sticktab.c), which
 * ups_prepare() reads. With cluster.redis, Redis holds the cluster's
 * table and is the agreement point: before its first pick, a request with
 * a key asks Redis (GETEX, which also keeps a used entry alive) and waits
 * for the answer, at most cluster.redis.timeout, as a rate-limited request
 * waits for the cluster's verdict (cluster_glue.c): going ahead with the
 * local answer and correcting later would send a session that another
 * node learnt to the wrong server. When Redis cannot answer (down, slow,
 * too busy), the local table and the balancer decide: a fallback counted
 * in /metrics and logged once until Redis answers again; never an error.
 * A call that failed after being sent (no reply within the timeout, the
 * connection lost) also quiets the lookups for QUIET_MS: a stalled Redis
 * costs one request per second its timeout, not every request.
 *
 * What is learnt (a response head from the server, status < 500) goes into
 * the local table and, fire and forget, into Redis with the table's
 * expiry, so the other nodes send the session to the same server.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "cluster/shared.h"
#include "core/macros.h"
#include "proxy/cluster_glue.h"
#include "upstream/sticktab.h"

/* A request waiting for the cluster's answer. */
struct stw {
    struct shared_req q;
    struct txn *t;
    char key[UPS_STICK_KEYLEN + 1];
};

#define QUIET_MS 1000

/* Process-wide: "falling back" is logged once per outage, not per worker
 * or per request; after a failed call, no lookup asks Redis before
 * <quiet_until> (loop ms). */
static atomic_bool fell_back;
static _Atomic int64_t quiet_until;

static void fallback(const struct cfg_upstream *cu, int err)
{
    sticktab_note_fallback();
    if (!atomic_exchange(&fell_back, true))
        log_warn("upstream %s: sticky: Redis cannot answer (%s); using this "
                 "node's table until it can", cu->name, strerror(-err));
}

static void answered(struct shared_req *q, const struct shared_res *r)
{
    struct stw *sw = container_of(q, struct stw, q);
    struct txn *t = sw->t;
    if (r->err != 0) {
        atomic_store(&quiet_until, loop_now(t->c->w->loop) + QUIET_MS);
        fallback(t->ups->cu, r->err);
    } else {
        if (atomic_exchange(&fell_back, false))
            log_info("sticky: Redis answers again; the cluster's table decides");
        ups_stick_told(t->ups, &t->key,
                       r->str != NULL ? str_make(r->str, r->len) : STR_NULL);
    }
    txn_connect(t);
}

static void forget(void *arg)
{
    shared_cancel(&((struct stw *)arg)->q); /* a no-op once answered */
}

bool stglue_lookup(struct txn *t)
{
    struct worker *w = t->c->w;
    if (w->shared == NULL || t->ups == NULL || !t->key.has_skey ||
        t->attempts > 0 || !ups_stick_table(t->ups))
        return false;
    if (loop_now(w->loop) < atomic_load(&quiet_until)) {
        fallback(t->ups->cu, -ETIMEDOUT); /* it failed a moment ago */
        return false;
    }
    struct stw *sw = pool_alloc(t->pool, sizeof(*sw));
    if (sw == NULL || pool_on_destroy(t->pool, forget, sw) < 0)
        return false; /* the local table's answer */
    *sw = (struct stw){ .q = { .cb = answered }, .t = t };
    struct str key = ups_stick_rkey(t->ups, t->key.skey, sw->key);
    int rc = shared_getex(w->shared, &sw->q, key, t->ups->cu->sticky.expire);
    if (rc < 0) {
        fallback(t->ups->cu, rc);
        return false;
    }
    return true;
}

void stglue_learn(struct txn *t, const struct h1_msg *resp, int status)
{
    if (t->ups == NULL || t->held == 0 || status >= 500 || !ups_stick_table(t->ups))
        return;
    unsigned srv = (unsigned)(t->held - 1);
    uint64_t keys[2];
    size_t n = ups_stick_learn(t->ups, &t->key, srv, resp, keys);
    struct shared *sh = t->c->w->shared;
    for (size_t i = 0; i < n && sh != NULL; i++) {
        char buf[UPS_STICK_KEYLEN + 1];
        /* refused while Redis is down: counted by shared.c's fallbacks */
        (void)shared_set(sh, ups_stick_rkey(t->ups, keys[i], buf),
                         ups_stick_token(t->ups, srv), t->ups->cu->sticky.expire);
    }
}
