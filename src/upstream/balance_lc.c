/*
 * least_conn: the server with the fewest requests in flight for its weight,
 * counted across all workers (the shared in-flight counters), so a server
 * holding slow requests in one worker is avoided by the others too.
 *
 * Ties are broken round robin: the scan starts one server further on each
 * pick and the first of the equals wins.
 */
#include "upstream/ups_int.h"

/* a's load inflight_a / w_a is below b's (cross-multiplied: no division). */
static inline bool lighter(int64_t fa, int64_t wa, int64_t fb, int64_t wb)
{
    return fa * wb < fb * wa;
}

static unsigned lc_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    (void)k;
    int64_t now = loop_now(u->loop);
    unsigned start = u->turn++ % (unsigned)u->cu->nservers;
    uint64_t hi = set & (~0ull << start), lo = set & ~(~0ull << start);
    int best = -1;
    int64_t bf = 0, bw = 1;
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t m = pass == 0 ? hi : lo; m != 0; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctzll(m);
            int64_t f = ups__inflight(u, i), w = ups__weight(u, i, now);
            if (best < 0 || lighter(f, w, bf, bw)) {
                best = (int)i;
                bf = f;
                bw = w;
            }
        }
    }
    return (unsigned)best;
}

const struct ups_balancer ups__bal_lc = { "least_conn", lc_pick };
