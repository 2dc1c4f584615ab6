/*
 * Where the cluster's shared state meets the proxy (cluster_glue.c): each
 * worker's Redis client, and cluster-wide rate limits.
 */
#ifndef GH_PROXY_CLUSTER_GLUE_H
#define GH_PROXY_CLUSTER_GLUE_H

#include "core/str.h"
#include "proxy/proxy_int.h"

/* Starts <w>'s Redis client when cluster.redis is set. Returns 0 or
 * -ENOMEM. */
int clglue_worker_init(struct worker *w, const struct cfg *cfg);
/* Closes it (on the worker's thread, before its loop goes). */
void clglue_worker_fini(struct worker *w);

/* Rate rule <i> of <rs> (<n> rules, checked at <stage>) for key <k>, by
 * the cluster: refused at once when this worker already knows the client
 * is over (crl), else asks Redis and waits for the verdict, then goes on
 * with the next rules and the request (or answers 429). When Redis cannot
 * answer, this node decides alone. Returns true when the request was
 * answered or waits, false when rule <i> passed at once. */
struct sec_key;
bool clglue_limit(struct txn *t, const struct cfg_rate *rs, size_t n, size_t i,
                  int stage, const struct sec_key *k);

#endif
