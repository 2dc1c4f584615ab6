/*
 * Eviction hit ratios: the cache's S3-FIFO (src/cache/s3fifo.c, the code
 * the server runs) against plain LRU, on synthetic traces.
 *
 *   evict_sim [keys] [requests] [cache%] [seed]
 *
 * Traces (every object has size 1, the cache holds cache% of the keys):
 *   zipf     Zipf(0.9) over the keys (popularity ranks shuffled)
 *   zipf+scan  the same, with a scan of 20% of the keys (each once, keys no
 *            request of the Zipf part uses) inserted after every 10% of it
 * Prints one TSV line per trace: trace, keys, requests, cache size, LRU hit
 * ratio, S3-FIFO hit ratio. Deterministic for a seed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/s3fifo.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / (double)(1ull << 53);
}

/* ---- LRU ---- */

struct lnode {
    uint32_t prev, next; /* indices; UINT32_MAX = none */
    bool in;
};

struct lru {
    struct lnode *n;
    uint32_t head, tail;
    size_t size, cap;
};

static void lru_unlink(struct lru *l, uint32_t k)
{
    struct lnode *x = &l->n[k];
    if (x->prev != UINT32_MAX)
        l->n[x->prev].next = x->next;
    else
        l->head = x->next;
    if (x->next != UINT32_MAX)
        l->n[x->next].prev = x->prev;
    else
        l->tail = x->prev;
}

static void lru_push(struct lru *l, uint32_t k)
{
    struct lnode *x = &l->n[k];
    x->prev = UINT32_MAX;
    x->next = l->head;
    if (l->head != UINT32_MAX)
        l->n[l->head].prev = k;
    else
        l->tail = k;
    l->head = k;
}

static bool lru_access(struct lru *l, uint32_t k)
{
    struct lnode *x = &l->n[k];
    if (x->in) {
        lru_unlink(l, k);
        lru_push(l, k);
        return true;
    }
    if (l->size == l->cap) {
        uint32_t v = l->tail;
        lru_unlink(l, v);
        l->n[v].in = false;
        l->size--;
    }
    x->in = true;
    lru_push(l, k);
    l->size++;
    return false;
}

/* ---- S3-FIFO (the server's) ---- */

struct s3sim {
    struct s3 s;
    struct s3_node *n;
};

static bool s3_access(struct s3sim *c, uint32_t k)
{
    struct s3_node *x = &c->n[k];
    if (x->where != S3_NONE) {
        s3_hit(x);
        return true;
    }
    x->size = 1;
    x->hash = 0x9e3779b97f4a7c15ull * (k + 1);
    s3_insert(&c->s, x);
    while (s3_used(&c->s) > c->s.cap) {
        struct s3_node *v = s3_evict(&c->s);
        if (v == NULL)
            break;
    }
    return false;
}

/* ---- traces ---- */

struct zipf {
    double *cdf;
    uint32_t *perm;
    size_t n;
};

static void zipf_init(struct zipf *z, size_t n, double a)
{
    z->n = n;
    z->cdf = malloc(n * sizeof(*z->cdf));
    z->perm = malloc(n * sizeof(*z->perm));
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), a);
        z->cdf[i] = sum;
        z->perm[i] = (uint32_t)i;
    }
    for (size_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
    for (size_t i = n - 1; i > 0; i--) { /* rank -> key, shuffled */
        size_t j = (size_t)(rnd() % (i + 1));
        uint32_t t = z->perm[i];
        z->perm[i] = z->perm[j];
        z->perm[j] = t;
    }
}

static uint32_t zipf_next(const struct zipf *z)
{
    double u = rnd01();
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return z->perm[lo];
}

static void run(const char *name, size_t keys, size_t reqs, double pct, bool scans,
                uint64_t seed)
{
    rng_state = seed;
    struct zipf z;
    zipf_init(&z, keys, 0.9);
    size_t scan_keys = scans ? keys / 5 : 0;
    size_t total_keys = keys + scan_keys * 10;
    size_t cap = (size_t)((double)keys * pct / 100.0);
    struct lru l = { calloc(total_keys, sizeof(struct lnode)), UINT32_MAX, UINT32_MAX, 0, cap };
    struct s3sim c;
    c.n = calloc(total_keys, sizeof(struct s3_node));
    if (l.n == NULL || c.n == NULL || s3_init(&c.s, cap, cap) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint64_t lhit = 0, shit = 0, n = 0;
    uint32_t next_scan = (uint32_t)keys;
    for (size_t i = 0; i < reqs; i++) {
        if (scans && i > 0 && i % (reqs / 10) == 0) {
            for (size_t j = 0; j < scan_keys; j++, next_scan++) {
                lhit += lru_access(&l, next_scan);
                shit += s3_access(&c, next_scan);
                n++;
            }
        }
        uint32_t k = zipf_next(&z);
        lhit += lru_access(&l, k);
        shit += s3_access(&c, k);
        n++;
    }
    printf("%s\t%zu\t%llu\t%zu\t%.4f\t%.4f\n", name, keys, (unsigned long long)n, cap,
           (double)lhit / (double)n, (double)shit / (double)n);
    free(l.n);
    free(c.n);
    s3_fini(&c.s);
    free(z.cdf);
    free(z.perm);
}

int main(int argc, char **argv)
{
    size_t keys = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
    size_t reqs = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 2000000;
    double pct = argc > 3 ? strtod(argv[3], NULL) : 10.0;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 42;
    if (keys < 100 || reqs < 1000 || pct <= 0 || pct > 100) {
        fprintf(stderr, "usage: evict_sim [keys>=100] [requests>=1000] [cache%%] [seed]\n");
        return 2;
    }
    printf("trace\tkeys\trequests\tcache_objects\tlru_hit_ratio\ts3fifo_hit_ratio\n");
    run("zipf0.9", keys, reqs, pct, false, seed);
    run("zipf0.9+scan", keys, reqs, pct, true, seed);
    return 0;
}
