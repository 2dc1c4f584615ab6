/*
 * What the cluster said about rate-limit keys, remembered by one worker
 * (docs/internals/cluster.md).
 *
 * With Redis configured, a rate-limited request asks the cluster
 * (shared_gcra) and waits for the verdict. Each verdict also says how long
 * until the key's next request may pass; keeping that here lets the worker
 * refuse a client that is over the cluster-wide rate without asking Redis
 * for every request it sends meanwhile. It is a cache of refusals only: a
 * key not found here is asked for.
 *
 * One table per worker (no locks): a small open-addressed array of
 * (hash of key, refused until) that forgets the entry closest to expiry
 * when full. A 64-bit hash collision could refuse another client until the
 * entry expires; at 64 bits that is not a practical concern.
 */
#ifndef GH_CLUSTER_CRL_H
#define GH_CLUSTER_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

struct crl;

/* A table of about <slots> entries (a power of two, at least 256).
 * Returns NULL when out of memory. Caller owns the result. */
struct crl *crl_new(size_t slots);
void crl_free(struct crl *c);

/* µs the cluster said <key> must still wait at <now_us> (monotonic), or 0:
 * ask it. */
int64_t crl_blocked(struct crl *c, struct str key, int64_t now_us);

/* Remembers that <key> may not pass before <now_us> + <wait_us>; a wait of
 * 0 forgets the key. */
void crl_learn(struct crl *c, struct str key, int64_t now_us, int64_t wait_us);

#endif
