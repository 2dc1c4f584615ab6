/*
 * ewma: peak-EWMA latency times in-flight requests (Finagle's and
 * Linkerd's "peak EWMA"), for servers that slow down (a JVM warming up or
 * collecting garbage): the cost of a server is
 *
 *     (latency EWMA + 1 µs) x (in-flight + 1) / weight
 *
 * and the cheapest wins. Costs within 25% of the cheapest count as a tie,
 * broken by smooth weighted round robin: servers that are equally fast share the load
 * instead of the one that happened to answer a few microseconds faster
 * taking it all. The EWMA is "peak":
 * a slower response replaces it at once, faster ones pull it down over
 * ewma_decay (state.c), so a server is avoided as soon as it slows and
 * won back gradually. A server with no latency yet and a request in flight
 * costs a large penalty, so a new server gets one probe at a time until it
 * has answered.
 */
#include "upstream/ups_int.h"

#define PENALTY 1e12
#define BAND 1.25 /* costs within 25% of the cheapest count as equal */

static unsigned ewma_pick(struct ups *u, const struct ups_key *k, uint64_t set)
{
    int64_t now_us = loop_now_us(u->loop), now = now_us / 1000;
    double cost[CFG_MAX_SERVERS], min = 0;
    bool first = true;
    for (uint64_t m = set; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        double lat = ups__ewma(u, i, now_us);
        double f = (double)ups__inflight(u, i);
        double c = lat <= 0 && f > 0 ? PENALTY + f : (lat + 1.0) * (f + 1.0);
        c /= (double)ups__weight(u, i, now);
        cost[i] = c;
        if (first || c < min)
            min = c;
        first = false;
    }
    uint64_t band = 0;
    for (uint64_t m = set; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        if (cost[i] <= min * BAND)
            band |= 1ull << i;
    }
    if ((band & (band - 1)) == 0)
        return (unsigned)__builtin_ctzll(band);
    return ups__bal_rr.pick(u, k, band); /* ties: weighted round robin */
}

const struct ups_balancer ups__bal_ewma = { "ewma", ewma_pick };
