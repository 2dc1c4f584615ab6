/*
 * Where the cluster's shared state meets the proxy (cluster_glue.c): each
 * worker's Redis client. (Cache purges across nodes are the cache's:
 * cache_purge.c.)
 */
#ifndef GH_PROXY_CLUSTER_GLUE_H
#define GH_PROXY_CLUSTER_GLUE_H

#include "proxy/proxy_int.h"

/* Starts <w>'s Redis client when cluster.redis is set. Returns 0 or
 * -ENOMEM. */
int clglue_worker_init(struct worker *w, const struct cfg *cfg);
/* Closes it (on the worker's thread, before its loop goes). */
void clglue_worker_fini(struct worker *w);

#endif
