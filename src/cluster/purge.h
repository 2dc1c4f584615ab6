/*
 * Cache purges broadcast to every node of a cluster, over shared.h's
 * publish/subscribe (docs/internals/cluster.md).
 *
 * A node that purges locally publishes what it purged; every other node's
 * subscriber applies the same purge to its own cache. The message names
 * the sending process, so a node skips its own purges (already done).
 * Delivery is at most once: a node whose subscription was down misses what
 * was published meanwhile, and is told so (CPURGE_GAP) when it is back.
 */
#ifndef GH_CLUSTER_PURGE_H
#define GH_CLUSTER_PURGE_H

#include "cluster/shared.h"
#include "core/str.h"

enum cpurge_how {
    CPURGE_GAP = 0,      /* purges may have been missed (no <what>) */
    CPURGE_KEY = 'k',    /* one cache key, every variant */
    CPURGE_PREFIX = 'p', /* every key starting with <what> */
    CPURGE_TAG = 't',    /* every object tagged <what> */
};

/* Publishes a purge to the other nodes. Fire and forget: returns 0, or
 * -ENOTCONN etc. as shared_publish() (the purge stays local). */
int cpurge_publish(struct shared *s, enum cpurge_how how, struct str what);

typedef void cpurge_fn(void *arg, enum cpurge_how how, struct str what);

/* Calls <fn>(<arg>, how, what) for each purge another node publishes (and
 * with CPURGE_GAP after a gap). Subscribe on one worker per process: the
 * cache is the process's. Returns as shared_subscribe(). */
int cpurge_subscribe(struct shared *s, cpurge_fn *fn, void *arg);

/* Decodes message <msg>: 0 (with <how> and <what> set) for a purge from another
 * process, 1 for one of ours, -EBADMSG for anything else. */
int cpurge_decode(struct str msg, enum cpurge_how *how, struct str *what);

#endif
