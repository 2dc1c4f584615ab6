/*
 * The cluster's shared state in the proxy: each worker's Redis client
 * (src/cluster/shared.h) and cluster-wide rate limits. (Cache purges
 * across nodes are the cache's: cache_purge.c.)
 *
 * A rate-limited request asks the cluster and waits for the verdict (a
 * round trip in the DMZ; at most cluster.redis.timeout), because letting it
 * go and learning the verdict later would let a client that alternates
 * between nodes through at N times the rate. The verdict also says how
 * long the client's next request must wait; the worker remembers it (crl)
 * and refuses those without asking. When Redis cannot answer, the node's
 * own limiter decides, as without a cluster.
 */
#include <errno.h>
#include <string.h>

#include "cluster/crl.h"
#include "cluster/shared.h"
#include "core/macros.h"
#include "proxy/cluster_glue.h"
#include "security/security.h"

#define KEY_LEN (2 + 2 * (8 + sizeof(uint32_t) + 16))
_Static_assert(sizeof(((struct sec_key *)0)->data) == 16, "KEY_LEN");
_Static_assert(sizeof(((struct sec_key *)0)->kind) == sizeof(uint32_t), "KEY_LEN");

/* A request waiting for the cluster's verdict on rule <i>. */
struct clim {
    struct shared_req q;
    struct txn *t;
    const struct cfg_rate *rs;
    size_t n, i;
    int stage;
    struct sec_key k;
    char key[KEY_LEN];
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t j = 0; j < n; j++)
        h = (h ^ b[j]) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator between parts */
}

/* Where rule <i> is written, the same on every node with the same
 * configuration: the local rule id cannot say it, as it hashes the
 * listener's address, which differs from node to node. */
static uint64_t place(const struct txn *t, int stage, size_t i)
{
    const struct cfg *cfg = t->c->gen->cfg;
    size_t li = (size_t)(t->c->cl - cfg->listeners);
    uint64_t h = fnv(0xcbf29ce484222325ull, &stage, sizeof(stage));
    h = fnv(h, &li, sizeof(li));
    if (stage == LIM_AT_ROUTE) {
        const struct cfg_site *s = t->site;
        const char *host = s->nhosts > 0 ? s->hosts[0] : "*default";
        h = fnv(h, host, strlen(host));
        h = fnv(h, t->route->exact ? "=" : "^", 1);
        h = fnv(h, t->route->path, t->route->path_len);
    }
    return fnv(h, &i, sizeof(i));
}

/* "r:", the rule's place, then the key's kind and data, in hex. */
static struct str key_text(const struct txn *t, int stage, size_t i,
                           const struct sec_key *k, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[8 + sizeof(k->kind) + sizeof(k->data)];
    uint64_t pl = place(t, stage, i);
    memcpy(raw, &pl, 8);
    memcpy(raw + 8, &k->kind, sizeof(k->kind));
    memcpy(raw + 8 + sizeof(k->kind), k->data, sizeof(k->data));
    out[0] = 'r';
    out[1] = ':';
    for (size_t j = 0; j < sizeof(raw); j++) {
        out[2 + 2 * j] = hex[raw[j] >> 4];
        out[3 + 2 * j] = hex[raw[j] & 15];
    }
    return str_make(out, 2 + 2 * sizeof(raw));
}

static void verdict(struct shared_req *q, const struct shared_res *r)
{
    struct clim *cl = container_of(q, struct clim, q);
    struct txn *t = cl->t;
    struct worker *w = t->c->w;
    t->clim = NULL;
    const struct cfg_rate *rule = &cl->rs[cl->i];
    if (r->err != 0) { /* Redis could not say: this node decides */
        if (lim__local(t, rule, &cl->k))
            return;
    } else {
        crl_learn(w->crl, str_make(cl->key, sizeof(cl->key)), loop_now_us(w->loop),
                  r->n2);
        if (r->n > 0) {
            lim__too_many(t, rule, r->n * 1000);
            return;
        }
    }
    if (!lim__from(t, cl->rs, cl->n, cl->i + 1, cl->stage))
        txn_limits_passed(t, cl->stage);
}

static void forget(void *arg)
{
    shared_cancel(&((struct clim *)arg)->q); /* a no-op once answered */
}

bool clglue_limit(struct txn *t, const struct cfg_rate *rs, size_t n, size_t i,
                  int stage, const struct sec_key *k)
{
    struct worker *w = t->c->w;
    char buf[KEY_LEN];
    struct str key = key_text(t, stage, i, k, buf);
    int64_t wait = crl_blocked(w->crl, key, loop_now_us(w->loop));
    if (wait > 0) { /* the cluster said so already */
        lim__too_many(t, &rs[i], wait * 1000);
        return true;
    }
    struct clim *cl = pool_alloc(t->pool, sizeof(*cl));
    if (cl == NULL)
        return lim__local(t, &rs[i], k);
    *cl = (struct clim){ .q = { .cb = verdict }, .t = t, .rs = rs, .n = n, .i = i,
                         .stage = stage, .k = *k };
    memcpy(cl->key, buf, sizeof(cl->key));
    /* however the request ends (an abort, a timeout's answer), the
     * verdict must not reach it after its arena is gone */
    if (pool_on_destroy(t->pool, forget, cl) < 0)
        return lim__local(t, &rs[i], k);
    int rc = shared_gcra(w->shared, &cl->q, str_make(cl->key, sizeof(cl->key)),
                         rs[i].period_ns / 1000, rs[i].burst);
    if (rc < 0) /* down, or too busy: this node decides */
        return lim__local(t, &rs[i], k);
    t->clim = cl;
    return true;
}

int clglue_worker_init(struct worker *w, const struct cfg *cfg)
{
    /* Redis settings are read at start: a reload does not change them */
    if (!cfg->cluster.redis.enabled)
        return 0;
    w->shared = shared_new(w->loop, &cfg->cluster.redis);
    w->crl = crl_new(4096);
    if (w->shared == NULL || w->crl == NULL)
        return -ENOMEM;
    return 0;
}

void clglue_worker_fini(struct worker *w)
{
    shared_free(w->shared);
    w->shared = NULL;
    crl_free(w->crl);
    w->crl = NULL;
}
