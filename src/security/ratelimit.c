/*
 * Rate limits: token buckets shared by every worker.
 *
 * Each bucket is one number, its "theoretical arrival time" (GCRA, the
 * generic cell rate algorithm, which is a token bucket written as a time):
 * a request is let through when tat - now <= (burst - 1) * period, and then
 * moves tat one period on. A bucket whose tat is in the past is full, and
 * a full bucket holds no information: it is the same as no bucket at all.
 * That is the expiry: a slot whose tat has passed is free for anyone, with
 * no sweeper and no timestamps besides tat.
 *
 * The table is set-associative: a key hashes (SipHash under a secret) to a
 * set of 8 slots, and lives in one of them. When all 8 are taken by
 * buckets that are not full, the one closest to full (smallest tat) is
 * dropped, which forgets the least. The table never grows: its memory is
 * fixed at start, whatever addresses an attacker cycles through.
 *
 * Sets are grouped into 64 shards, each with its own mutex, held only to
 * scan one set. Workers on different shards never meet.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/macros.h"
#include "security/security.h"

#define WAYS 8
#define NSHARDS 64

struct slot {
    struct sec_key key;
    int64_t tat; /* ns; <= now: full (free) */
};

struct shard {
    pthread_mutex_t mu;
    char pad_[64 - sizeof(pthread_mutex_t) % 64];
};

struct rl_table {
    uint64_t seed[2];
    size_t nsets; /* a power of two, >= NSHARDS */
    struct slot *slots;
    struct shard shards[NSHARDS];
};

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* A secret for the keyed hash. getrandom(2) before the sandbox is on. */
static void fill_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof(uint64_t), 0) == (ssize_t)(2 * sizeof(uint64_t)))
        return;
    /* no entropy source: still distinct per process and table */
    seed[0] = (uint64_t)(uintptr_t)seed ^ 0x5851f42d4c957f2dull;
    seed[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
}

struct rl_table *rl_new(size_t entries)
{
    struct rl_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->nsets = pow2_at_least((entries + WAYS - 1) / WAYS);
    if (t->nsets < NSHARDS)
        t->nsets = NSHARDS;
    t->slots = calloc(t->nsets * WAYS, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < NSHARDS; i++)
        AZ(pthread_mutex_init(&t->shards[i].mu, NULL));
    fill_seed(t->seed);
    return t;
}

void rl_free(struct rl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < NSHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].mu);
    free(t->slots);
    free(t);
}

size_t rl_capacity(const struct rl_table *t)
{
    return t->nsets * WAYS;
}

/* (burst - 1) * period, saturated: a rule of 1/d with a burst of a
 * million would overflow 64 bits of nanoseconds. */
static int64_t tolerance(int64_t period, uint32_t burst)
{
    if (burst <= 1)
        return 0;
    if (period > INT64_MAX / 4 / (int64_t)(burst - 1))
        return INT64_MAX / 4;
    return period * (int64_t)(burst - 1);
}

int64_t rl_take(struct rl_table *t, const struct sec_key *k,
                int64_t period_ns, uint32_t burst, int64_t now_ns)
{
    uint64_t h = sec_hash(k, t->seed);
    size_t set = (size_t)h & (t->nsets - 1);
    struct shard *sh = &t->shards[set & (NSHARDS - 1)];
    struct slot *s = &t->slots[set * WAYS];
    int64_t wait = 0;

    pthread_mutex_lock(&sh->mu);
    struct slot *hit = NULL, *victim = &s[0];
    for (int i = 0; i < WAYS; i++) {
        if (memcmp(&s[i].key, k, sizeof(*k)) == 0 && s[i].tat > now_ns) {
            hit = &s[i];
            break;
        }
        if (s[i].tat < victim->tat)
            victim = &s[i]; /* a full (expired) slot, or the closest to it */
    }
    int64_t tat = hit != NULL ? hit->tat : now_ns;
    int64_t tau = tolerance(period_ns, burst);
    if (tat - now_ns > tau) {
        wait = tat - now_ns - tau;
    } else {
        if (hit == NULL) {
            hit = victim;
            hit->key = *k;
        }
        hit->tat = tat + period_ns;
    }
    pthread_mutex_unlock(&sh->mu);
    return wait;
}

size_t rl_live(struct rl_table *t, int64_t now_ns)
{
    size_t n = 0;
    for (size_t set = 0; set < t->nsets; set++) {
        struct shard *sh = &t->shards[set & (NSHARDS - 1)];
        pthread_mutex_lock(&sh->mu);
        for (int i = 0; i < WAYS; i++)
            n += t->slots[set * WAYS + (size_t)i].tat > now_ns;
        pthread_mutex_unlock(&sh->mu);
    }
    return n;
}
