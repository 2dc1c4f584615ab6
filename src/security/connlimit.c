/*
 * Connection limits: how many client connections the process holds, and
 * how many come from one client address.
 *
 * The process-wide ceiling is a counter that workers reserve from *before*
 * accept(2). At the ceiling a worker stops accepting (the kernel's listen
 * queue holds new connections) instead of accepting and closing them, so a
 * burst of clients is delayed, not failed; the counter cannot overshoot,
 * however many workers race for the last place.
 *
 * Per-address counts live in a set-associative table like the rate limits'
 * (ratelimit.c), under per-shard mutexes, but a slot with a non-zero count
 * is never evicted: it belongs to open connections. The table has room for
 * every connection the ceiling allows, twice over; a set that is full
 * anyway refuses the connection. A connection keeps the index of its slot
 * and gives it back on close without a lookup.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/macros.h"
#include "security/security.h"

#define WAYS 8
#define NSHARDS 64

struct cslot {
    struct sec_key key;
    uint32_t count; /* 0: free */
};

struct cl_table {
    uint64_t seed[2];
    size_t nsets;
    struct cslot *slots;
    pthread_mutex_t mu[NSHARDS];
};

static struct cl_table *table_new(unsigned long conns)
{
    struct cl_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    size_t sets = NSHARDS;
    while (sets * WAYS < 2 * (size_t)conns && sets < ((size_t)1 << 24))
        sets <<= 1;
    t->nsets = sets;
    t->slots = calloc(sets * WAYS, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < NSHARDS; i++)
        AZ(pthread_mutex_init(&t->mu[i], NULL));
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) {
        t->seed[0] = (uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull;
        t->seed[1] = (uint64_t)(uintptr_t)t->slots;
    }
    return t;
}

int connlimit_init(struct connlimit *cl, unsigned long max, bool per_addr)
{
    atomic_init(&cl->open, 0);
    cl->max = max;
    cl->addrs = NULL;
    if (per_addr) {
        cl->addrs = table_new(max);
        if (cl->addrs == NULL)
            return -ENOMEM;
    }
    return 0;
}

void connlimit_fini(struct connlimit *cl)
{
    struct cl_table *t = cl->addrs;
    if (t == NULL)
        return;
    for (size_t i = 0; i < NSHARDS; i++)
        pthread_mutex_destroy(&t->mu[i]);
    free(t->slots);
    FREE_NULL(cl->addrs);
}

bool connlimit_reserve(struct connlimit *cl)
{
    unsigned long n = atomic_load_explicit(&cl->open, memory_order_relaxed);
    do {
        if (n >= cl->max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &cl->open, &n, n + 1, memory_order_relaxed, memory_order_relaxed));
    return true;
}

void connlimit_release(struct connlimit *cl)
{
    unsigned long was = atomic_fetch_sub_explicit(&cl->open, 1, memory_order_relaxed);
    DASSERT(was > 0);
    (void)was;
}

/* Finds the slot of <k> in its set, or (when <insert>) a free one. Called
 * with the set's shard locked. */
static struct cslot *find(struct cl_table *t, size_t set,
                          const struct sec_key *k, bool insert)
{
    struct cslot *s = &t->slots[set * WAYS], *free_slot = NULL;
    for (int i = 0; i < WAYS; i++) {
        if (s[i].count == 0) {
            if (free_slot == NULL)
                free_slot = &s[i];
            continue;
        }
        if (memcmp(&s[i].key, k, sizeof(*k)) == 0)
            return &s[i];
    }
    if (insert && free_slot != NULL) {
        free_slot->key = *k;
        return free_slot;
    }
    return NULL;
}

int connlimit_addr_get(struct connlimit *cl, uint32_t lid,
                       const struct sockaddr *sa, unsigned limit)
{
    struct cl_table *t = cl->addrs;
    struct sec_key k;
    sec_key_addr(&k, lid, sa);
    size_t set = (size_t)sec_hash(&k, t->seed) & (t->nsets - 1);
    pthread_mutex_t *mu = &t->mu[set & (NSHARDS - 1)];
    int rc;

    pthread_mutex_lock(mu);
    struct cslot *s = find(t, set, &k, true);
    if (s == NULL) {
        rc = -ENOSPC;
    } else if (s->count >= limit) {
        rc = -EMFILE;
    } else {
        s->count++;
        rc = (int)(s - t->slots);
    }
    pthread_mutex_unlock(mu);
    return rc;
}

void connlimit_addr_put(struct connlimit *cl, int handle)
{
    struct cl_table *t = cl->addrs;
    size_t idx = (size_t)handle;
    ASSERT(handle >= 0 && idx < t->nsets * WAYS);
    pthread_mutex_t *mu = &t->mu[(idx / WAYS) & (NSHARDS - 1)];
    pthread_mutex_lock(mu);
    ASSERT(t->slots[idx].count > 0);
    t->slots[idx].count--;
    pthread_mutex_unlock(mu);
}

unsigned connlimit_addr_count(struct connlimit *cl, uint32_t lid,
                              const struct sockaddr *sa)
{
    struct cl_table *t = cl->addrs;
    struct sec_key k;
    sec_key_addr(&k, lid, sa);
    size_t set = (size_t)sec_hash(&k, t->seed) & (t->nsets - 1);
    pthread_mutex_t *mu = &t->mu[set & (NSHARDS - 1)];
    pthread_mutex_lock(mu);
    struct cslot *s = find(t, set, &k, false);
    unsigned n = s != NULL ? s->count : 0;
    pthread_mutex_unlock(mu);
    return n;
}
