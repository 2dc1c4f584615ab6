/*
 * The cluster's shared state in the proxy: each worker's Redis client
 * (src/cluster/shared.h). Without Redis, or while it is down, every node
 * works on its local state.
 */
#include <errno.h>

#include "cluster/shared.h"
#include "proxy/cluster_glue.h"

int clglue_worker_init(struct worker *w, const struct cfg *cfg)
{
    /* Redis settings are read at start: a reload does not change them */
    if (!cfg->cluster.redis.enabled)
        return 0;
    w->shared = shared_new(w->loop, &cfg->cluster.redis);
    if (w->shared == NULL)
        return -ENOMEM;
    return 0;
}

void clglue_worker_fini(struct worker *w)
{
    shared_free(w->shared);
    w->shared = NULL;
}
