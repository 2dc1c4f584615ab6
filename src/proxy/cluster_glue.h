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

/* The stick table (stick_glue.c). Before the first pick of a request to a
 * pool with a table, when Redis is configured and the request has a key:
 * asks the cluster which server the key sticks to and waits for the
 * answer (at most cluster.redis.timeout), then txn_connect(). Returns true
 * when it waits, false to connect at once (the local table's answer is
 * already in t->key). */
bool stglue_lookup(struct txn *t);
/* A response head <resp> with <status> from the server the request holds:
 * the table learns (locally, and in Redis when configured). */
void stglue_learn(struct txn *t, const struct h1_msg *resp, int status);

#endif
