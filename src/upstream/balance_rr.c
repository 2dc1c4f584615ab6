/*
 * round_robin: smooth weighted round robin (nginx ngx_http_upstream_get_peer).
 *
 * Every pick adds each candidate's weight to its current weight, takes the
 * largest, and subtracts the candidates' total from the winner. Weights
 * 5,1,1 give a a b a c a a: interleaved, never a burst of five. The current
 * weights are per worker; the effective weight ramps up during slow start.
 */
#include "upstream/ups_int.h"

static unsigned rr_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    (void)k;
    int64_t now = loop_now(u->loop);
    int64_t total = 0;
    unsigned best = (unsigned)__builtin_ctzll(set);
    for (uint64_t m = set; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        int64_t w = ups__weight(u, i, now);
        u->srv[i].cw += w;
        total += w;
        if (u->srv[i].cw > u->srv[best].cw)
            best = i;
    }
    u->srv[best].cw -= total;
    return best;
}

const struct ups_balancer ups__bal_rr = { "round_robin", rr_pick };
