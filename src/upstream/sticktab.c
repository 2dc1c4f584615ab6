/*
 * The stick table: session key -> server token, bounded, idle expiry.
 *
 * One table per sticky pool for the whole process, not one per worker:
 * the kernel spreads a client's connections over the workers
 * (SO_REUSEPORT), so a session learnt by one worker must be known to the
 * next one that sees the client, with or without Redis. A mutex guards it;
 * every operation is a hash probe and a few index moves, so the lock is
 * held for well under a microsecond.
 *
 * Layout: entries in one array, chained into buckets (a power of two at
 * least the capacity) and into a doubly linked list by last use, the most
 * recent at the head. Every entry has the same time to live, so the tail
 * is also the first to expire: put() drops expired entries from the tail,
 * and a full table evicts the tail. Indices, not pointers, keep an entry
 * at 40 bytes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/macros.h"
#include "upstream/sticktab.h"

#define NIL UINT32_MAX

struct ent {
    uint64_t key, val;
    int64_t exp;             /* ms: dead from then on */
    uint32_t prev, next;     /* by last use (free list: next) */
    uint32_t hnext;          /* bucket chain */
};

struct sticktab {
    pthread_mutex_t mu;
    atomic_uint refs;
    uint32_t cap, n, mask;
    int64_t ttl;
    uint32_t head, tail, free;
    uint32_t *bucket;
    struct ent *e;
};

static struct {
    _Atomic uint64_t entries, hits, misses, learnt, expired, evicted, fallbacks;
} cnt;

#define BUMP(f) atomic_fetch_add_explicit(&cnt.f, 1, memory_order_relaxed)

struct sticktab *sticktab_new(uint32_t cap, int64_t ttl_ms)
{
    if (cap == 0 || cap >= NIL / 2 || ttl_ms <= 0)
        return NULL;
    struct sticktab *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    uint32_t nb = 1;
    while (nb < cap)
        nb <<= 1;
    t->bucket = malloc(nb * sizeof(*t->bucket));
    t->e = malloc(cap * sizeof(*t->e));
    if (t->bucket == NULL || t->e == NULL || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t->bucket);
        free(t->e);
        free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < nb; i++)
        t->bucket[i] = NIL;
    for (uint32_t i = 0; i < cap; i++)
        t->e[i].next = i + 1 < cap ? i + 1 : NIL;
    atomic_init(&t->refs, 1);
    t->cap = cap;
    t->mask = nb - 1;
    t->ttl = ttl_ms;
    t->head = t->tail = NIL;
    t->free = 0;
    return t;
}

struct sticktab *sticktab_ref(struct sticktab *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void sticktab_unref(struct sticktab *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    atomic_fetch_sub_explicit(&cnt.entries, t->n, memory_order_relaxed);
    pthread_mutex_destroy(&t->mu);
    free(t->bucket);
    free(t->e);
    free(t);
}

bool sticktab_same(const struct sticktab *t, uint32_t cap, int64_t ttl_ms)
{
    return t->cap == cap && t->ttl == ttl_ms;
}

/* ---- under the lock ---- */

static uint32_t find(const struct sticktab *t, uint64_t key)
{
    uint32_t i = t->bucket[key & t->mask];
    while (i != NIL && t->e[i].key != key)
        i = t->e[i].hnext;
    return i;
}

static void lru_unlink(struct sticktab *t, uint32_t i)
{
    struct ent *x = &t->e[i];
    if (x->prev != NIL)
        t->e[x->prev].next = x->next;
    else
        t->head = x->next;
    if (x->next != NIL)
        t->e[x->next].prev = x->prev;
    else
        t->tail = x->prev;
}

static void lru_push(struct sticktab *t, uint32_t i)
{
    struct ent *x = &t->e[i];
    x->prev = NIL;
    x->next = t->head;
    if (t->head != NIL)
        t->e[t->head].prev = i;
    t->head = i;
    if (t->tail == NIL)
        t->tail = i;
}

static void drop(struct sticktab *t, uint32_t i)
{
    uint32_t *p = &t->bucket[t->e[i].key & t->mask];
    while (*p != i)
        p = &t->e[*p].hnext; /* i is in its chain */
    *p = t->e[i].hnext;
    lru_unlink(t, i);
    t->e[i].next = t->free;
    t->free = i;
    t->n--;
    atomic_fetch_sub_explicit(&cnt.entries, 1, memory_order_relaxed);
}

static void use(struct sticktab *t, uint32_t i, int64_t now)
{
    t->e[i].exp = now + t->ttl;
    if (t->head != i) {
        lru_unlink(t, i);
        lru_push(t, i);
    }
}

/* ---- API ---- */

bool sticktab_get(struct sticktab *t, uint64_t key, int64_t now_ms,
                  uint64_t *val)
{
    bool found = false;
    pthread_mutex_lock(&t->mu);
    uint32_t i = find(t, key);
    if (i != NIL && t->e[i].exp <= now_ms) {
        drop(t, i);
        BUMP(expired);
    } else if (i != NIL) {
        use(t, i, now_ms);
        *val = t->e[i].val;
        found = true;
    }
    pthread_mutex_unlock(&t->mu);
    if (found)
        BUMP(hits);
    else
        BUMP(misses);
    return found;
}

bool sticktab_put(struct sticktab *t, uint64_t key, uint64_t val,
                  int64_t now_ms)
{
    bool changed = true;
    pthread_mutex_lock(&t->mu);
    /* the tail expires first (one ttl for all): drop the dead there */
    while (t->tail != NIL && t->e[t->tail].exp <= now_ms && t->e[t->tail].key != key) {
        drop(t, t->tail);
        BUMP(expired);
    }
    uint32_t i = find(t, key);
    if (i != NIL) {
        bool dead = t->e[i].exp <= now_ms;
        changed = t->e[i].val != val || dead;
        if (dead)
            BUMP(expired);
        t->e[i].val = val;
        use(t, i, now_ms);
    } else {
        if (t->n == t->cap) {
            drop(t, t->tail);
            BUMP(evicted);
        }
        i = t->free;
        t->free = t->e[i].next;
        t->e[i].key = key;
        t->e[i].val = val;
        t->e[i].exp = now_ms + t->ttl;
        uint32_t *b = &t->bucket[key & t->mask];
        t->e[i].hnext = *b;
        *b = i;
        lru_push(t, i);
        t->n++;
        atomic_fetch_add_explicit(&cnt.entries, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&t->mu);
    if (changed)
        BUMP(learnt);
    return changed;
}

bool sticktab_del(struct sticktab *t, uint64_t key)
{
    pthread_mutex_lock(&t->mu);
    uint32_t i = find(t, key);
    if (i != NIL)
        drop(t, i);
    pthread_mutex_unlock(&t->mu);
    return i != NIL;
}

size_t sticktab_count(struct sticktab *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void sticktab_stats(struct sticktab_stats *out)
{
    out->entries = atomic_load(&cnt.entries);
    out->hits = atomic_load(&cnt.hits);
    out->misses = atomic_load(&cnt.misses);
    out->learnt = atomic_load(&cnt.learnt);
    out->expired = atomic_load(&cnt.expired);
    out->evicted = atomic_load(&cnt.evicted);
    out->fallbacks = atomic_load(&cnt.fallbacks);
}

void sticktab_note_fallback(void)
{
    BUMP(fallbacks);
}

size_t sticktab_stats_prometheus(char *buf, size_t cap)
{
    struct sticktab_stats st;
    sticktab_stats(&st);
    int n = snprintf(buf, cap,
        "# HELP gatehouse_sticky_entries Sessions held in the stick tables.\n"
        "# TYPE gatehouse_sticky_entries gauge\n"
        "gatehouse_sticky_entries %llu\n"
        "# HELP gatehouse_sticky_lookups_total Stick table lookups by result.\n"
        "# TYPE gatehouse_sticky_lookups_total counter\n"
        "gatehouse_sticky_lookups_total{result=\"hit\"} %llu\n"
        "gatehouse_sticky_lookups_total{result=\"miss\"} %llu\n"
        "# HELP gatehouse_sticky_learnt_total Sessions learnt or moved to "
        "another server.\n"
        "# TYPE gatehouse_sticky_learnt_total counter\n"
        "gatehouse_sticky_learnt_total %llu\n"
        "# HELP gatehouse_sticky_dropped_total Sessions dropped, by why.\n"
        "# TYPE gatehouse_sticky_dropped_total counter\n"
        "gatehouse_sticky_dropped_total{why=\"expired\"} %llu\n"
        "gatehouse_sticky_dropped_total{why=\"evicted\"} %llu\n"
        "# HELP gatehouse_sticky_redis_fallbacks_total Lookups Redis could "
        "not answer (down or slow), decided by the local table.\n"
        "# TYPE gatehouse_sticky_redis_fallbacks_total counter\n"
        "gatehouse_sticky_redis_fallbacks_total %llu\n",
        (unsigned long long)st.entries, (unsigned long long)st.hits,
        (unsigned long long)st.misses, (unsigned long long)st.learnt,
        (unsigned long long)st.expired, (unsigned long long)st.evicted,
        (unsigned long long)st.fallbacks);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
