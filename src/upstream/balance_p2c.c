/*
 * random_two: the power of two choices (Mitzenmacher, "The Power of Two
 * Choices in Randomized Load Balancing", 2001). Two distinct candidates at
 * random; the one with fewer requests in flight for its weight wins.
 *
 * Against least_conn it needs no full scan and, with many workers picking
 * at once from counters that lag, it does not send every worker to the
 * same least loaded server (the herd effect).
 */
#include "upstream/ups_int.h"

static uint64_t next_rand(struct ups *u)
{
    /* xorshift64* (Vigna) */
    uint64_t x = u->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    u->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static unsigned p2c_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    (void)k;
    unsigned n = ups__popcount(set);
    if (n == 1)
        return (unsigned)__builtin_ctzll(set);
    uint64_t r = next_rand(u);
    unsigned ia = (unsigned)((r >> 32) % n);
    unsigned ib = (unsigned)((r & 0xffffffffu) % (n - 1));
    if (ib >= ia)
        ib++;
    unsigned a = ups__nth_bit(set, ia), b = ups__nth_bit(set, ib);
    int64_t now = loop_now(u->loop);
    int64_t fa = ups__inflight(u, a), wa = ups__weight(u, a, now);
    int64_t fb = ups__inflight(u, b), wb = ups__weight(u, b, now);
    if (fa * wb != fb * wa)
        return fa * wb < fb * wa ? a : b;
    return (r >> 31) & 1 ? a : b;
}

const struct ups_balancer ups__bal_p2c = { "random_two", p2c_pick };
