/*
 * hash: consistent hashing of a request key (client address, URI, a field
 * or a cookie) on a ring with virtual nodes (Karger et al., 1997).
 *
 * Each server owns about 160 points of a 64-bit ring, in proportion to its
 * weight, placed by hashing its identity (its address as configured, or
 * name#slot for a resolved name) with the point's number. A key belongs to
 * the first point at or after its hash. Adding a server to N moves only the
 * keys its points take, about 1/(N+1) of them; removing one moves only its
 * own keys. A server that may not be used (down, ejected, tried already)
 * passes its keys on to the next usable point, so they spread over the
 * others instead of all landing on one neighbour.
 *
 * The ring depends only on the configuration, so it is built once per
 * snapshot and shared, read-only, by every worker. A request without the
 * key (no such field or cookie) is balanced round robin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "upstream/ups_int.h"

#define POINTS_PER_SERVER 160

struct point {
    uint64_t h;
    uint8_t own;
};

static int cmp_point(const void *a, const void *b)
{
    const struct point *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (int)x->own - (int)y->own;
}

int ups__ring_build(struct ups_shared *sh)
{
    const struct cfg_upstream *cu = sh->cu;
    uint64_t wsum = 0;
    for (size_t i = 0; i < cu->nservers; i++)
        wsum += (uint64_t)cu->servers[i].weight;
    size_t want = POINTS_PER_SERVER * cu->nservers, total = 0;
    size_t np[CFG_MAX_SERVERS];
    for (size_t i = 0; i < cu->nservers; i++) {
        np[i] = (size_t)((want * (uint64_t)cu->servers[i].weight + wsum / 2) / wsum);
        np[i] = MAX(np[i], (size_t)1);
        total += np[i];
    }
    struct point *p = malloc(total * sizeof(*p));
    struct ups_ring *r = &sh->ring;
    r->pt = malloc(total * sizeof(*r->pt));
    r->own = malloc(total);
    if (p == NULL || r->pt == NULL || r->own == NULL) {
        free(p);
        ups__ring_free(r);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < cu->nservers; i++) {
        const char *id = sh->srv[i].ident;
        uint64_t base = ups__hash(id, strlen(id), 0);
        for (size_t j = 0; j < np[i]; j++)
            p[k++] = (struct point){ ups__mix(base + j * 0x9e3779b97f4a7c15ull),
                                     (uint8_t)i };
    }
    qsort(p, total, sizeof(*p), cmp_point);
    for (size_t i = 0; i < total; i++) {
        r->pt[i] = p[i].h;
        r->own[i] = p[i].own;
    }
    r->n = total;
    free(p);
    return 0;
}

void ups__ring_free(struct ups_ring *r)
{
    FREE_NULL(r->pt);
    FREE_NULL(r->own);
    r->n = 0;
}

unsigned ups__ring_pick(const struct ups_ring *r, uint64_t hash, uint64_t set)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) { /* first point >= hash */
        size_t mid = lo + (hi - lo) / 2;
        if (r->pt[mid] < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t step = 0; step < r->n; step++) {
        size_t i = (lo + step) % r->n;
        if (set & (1ull << r->own[i]))
            return r->own[i];
    }
    return (unsigned)__builtin_ctzll(set); /* not reached: set is not empty */
}

static unsigned hash_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    if (!k->has_hash)
        return ups__bal_rr.pick(u, k, set);
    return ups__ring_pick(&u->sh->ring, k->hash, set);
}

const struct ups_balancer ups__bal_hash = { "hash", hash_pick };
