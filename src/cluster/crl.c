/*
 * The cluster's refusals, per worker: see crl.h.
 */
#include <stdlib.h>

#include "cluster/crl.h"

#define PROBE 8

struct slot {
    uint64_t h;     /* 0: empty */
    int64_t until;  /* µs, monotonic */
};

struct crl {
    size_t mask;
    struct slot s[];
};

static uint64_t hash(struct str k)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < k.len; i++) {
        h ^= (unsigned char)k.p[i];
        h *= 0x100000001b3ull;
    }
    return h != 0 ? h : 1;
}

struct crl *crl_new(size_t slots)
{
    size_t n = 256;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    struct crl *c = calloc(1, sizeof(*c) + n * sizeof(struct slot));
    if (c != NULL)
        c->mask = n - 1;
    return c;
}

void crl_free(struct crl *c)
{
    free(c);
}

int64_t crl_blocked(struct crl *c, struct str key, int64_t now_us)
{
    uint64_t h = hash(key);
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *s = &c->s[(h + i) & c->mask];
        if (s->h == h)
            return s->until > now_us ? s->until - now_us : 0;
    }
    return 0;
}

/* Which slot to give up first: an empty one, else the one that frees
 * soonest (an expired one before any live one). */
static int64_t rank(const struct slot *s)
{
    return s->h == 0 ? INT64_MIN : s->until;
}

void crl_learn(struct crl *c, struct str key, int64_t now_us, int64_t wait_us)
{
    uint64_t h = hash(key);
    struct slot *victim = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *s = &c->s[(h + i) & c->mask];
        if (s->h == h) {
            victim = s;
            break;
        }
        if (victim == NULL || rank(s) < rank(victim))
            victim = s;
    }
    if (wait_us <= 0) {
        if (victim->h == h)
            victim->h = 0;
        return;
    }
    victim->h = h;
    victim->until = now_us + wait_us;
}
