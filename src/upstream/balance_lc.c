/*
 * least_conn: the server with the fewest requests in flight for its weight,
 * counted across all workers (the shared in-flight counters), so a server
 * holding slow requests in one worker is avoided by the others too.
 *
 * Ties are broken by smooth weighted round robin among the equals (as
 * nginx does), so idle servers take turns in proportion to their weights.
 */
#include "upstream/ups_int.h"

static unsigned lc_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    int64_t now = loop_now(u->loop);
    int64_t f[CFG_MAX_SERVERS], w[CFG_MAX_SERVERS];
    int best = -1;
    for (uint64_t m = set; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        f[i] = ups__inflight(u, i);
        w[i] = ups__weight(u, i, now);
        /* f/w < best's f/w, cross-multiplied: no division */
        if (best < 0 || f[i] * w[best] < f[best] * w[i])
            best = (int)i;
    }
    uint64_t ties = 0;
    for (uint64_t m = set; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        if (f[i] * w[best] == f[best] * w[i])
            ties |= 1ull << i;
    }
    if ((ties & (ties - 1)) == 0)
        return (unsigned)best;
    return ups__bal_rr.pick(u, k, ties);
}

const struct ups_balancer ups__bal_lc = { "least_conn", lc_pick };
