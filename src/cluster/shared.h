/*
 * State the nodes of a cluster share, kept in Redis (docs/cluster.md,
 * docs/internals/cluster.md).
 *
 * One struct shared per event loop (one per worker): a command connection
 * and, once something subscribes, a subscriber connection, both driven by
 * that loop through hiredis's async API. Nothing here blocks and nothing
 * here is shared between threads except the counters of shared_stats().
 *
 * Redis is an accelerator, never a dependency: while it is unreachable,
 * every call fails at once (-ENOTCONN) and the caller decides with its
 * local state; a call already sent when the connection dies, or that gets
 * no reply within the configured timeout, completes with an error too. The
 * client reconnects in the background with a capped exponential backoff,
 * logs each change of state once, and counts what fell back.
 *
 * Callbacks: a call that returns 0 completes exactly once through
 * q->cb (possibly with an error); a call that returns an error never calls
 * it. A caller that goes away first calls shared_cancel(q).
 */
#ifndef GH_CLUSTER_SHARED_H
#define GH_CLUSTER_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/str.h"

struct shared;
struct shared_call_;

/* The outcome of one call. <err> is 0, -ENOTCONN (the connection died),
 * -ETIMEDOUT (no reply in time), -EPROTO (Redis answered an error) or
 * -ECANCELED (the client is being freed). */
struct shared_res {
    int err;
    int64_t n;       /* shared_gcra: µs to wait (0: allowed); shared_incr:
                        the count in the window */
    int64_t n2;      /* shared_gcra: µs until the next request of this key
                        would pass (0: at once); shared_incr: ms left in
                        the window */
    const char *str; /* shared_get: the value (NULL when absent); valid
                        during the callback only */
    size_t len;
};

struct shared_req;
typedef void shared_done_fn(struct shared_req *q, const struct shared_res *r);

/* A pending call, in storage the caller owns (inside its transaction, say)
 * until the callback has run or shared_cancel() was called. */
struct shared_req {
    shared_done_fn *cb;
    void *arg;
    struct shared_call_ *call_; /* private */
};

/* A subscription's message: <channel> without the key prefix. Called with
 * channel.p == NULL when the subscription is (re)established after being
 * down: messages published meanwhile were missed. */
typedef void shared_msg_fn(void *arg, struct str channel, struct str msg);

/* Counters over every struct shared of the process (for /metrics). */
struct shared_stats {
    uint64_t fallbacks;  /* calls refused at once while Redis was down */
    uint64_t failed;     /* calls sent that ended in an error */
    uint64_t timeouts;   /* of those, timed out */
    uint64_t connects;   /* connections established */
    uint64_t lost;       /* connections lost or failed to establish */
    uint64_t up;         /* command connections up right now */
};

/* A client for <cfg> (copied) on loop <l>; it connects at once, in the
 * background. Returns NULL when out of memory. Caller owns the result. */
struct shared *shared_new(struct loop *l, const struct cfg_redis *cfg);
/* Closes the connections; pending calls complete with -ECANCELED. */
void shared_free(struct shared *s);

/* True when <a> and <b> would make the same client (a reload keeps the
 * clients the workers started with; a restart applies a change). */
bool shared_cfg_same(const struct cfg_redis *a, const struct cfg_redis *b);

/* True while the command connection is up. */
bool shared_up(const struct shared *s);

/* Rate limiting (GCRA, the same rule as the local limiter): one request
 * under key <key> may pass when no more than <burst> requests passed in the
 * last burst * period. Redis's clock decides, so the nodes' clocks do not
 * matter. r->n is 0 when it passes (and is counted), else the µs until it
 * would; r->n2 the µs until the next one would (crl_learn() keeps it, so
 * the node refuses without asking until then). Returns 0, -ENOTCONN,
 * -ENOBUFS (too many calls pending) or -ENAMETOOLONG (key over 200
 * bytes). */
int shared_gcra(struct shared *s, struct shared_req *q, struct str key,
                int64_t period_us, uint32_t burst);

/* A counter for a fixed window: adds <by> to <key>, which expires
 * <window_ms> after its first increment. r->n is the new count, r->n2 the
 * ms left in the window. Same returns as shared_gcra(). */
int shared_incr(struct shared *s, struct shared_req *q, struct str key,
                int64_t by, int64_t window_ms);

/* A small key/value table (sticky sessions): the value of <key>, or
 * r->str == NULL when there is none. Same returns as shared_gcra(). */
int shared_get(struct shared *s, struct shared_req *q, struct str key);
/* shared_get() that also restarts the key's expiry at <ttl_ms> when it is
 * there (GETEX, Redis 6.2+): an entry used stays. */
int shared_getex(struct shared *s, struct shared_req *q, struct str key,
                 int64_t ttl_ms);
/* Sets <key> to <val> for <ttl_ms> (0: no expiry). Fire and forget.
 * Returns 0, -ENOTCONN, -ENOBUFS or -ENAMETOOLONG. */
int shared_set(struct shared *s, struct str key, struct str val,
               int64_t ttl_ms);

/* Publishes <msg> on <channel> to every subscriber (every node). Fire and
 * forget; same returns as shared_set(). */
int shared_publish(struct shared *s, struct str channel, struct str msg);

/* Subscribes to <channel>: <fn>(<arg>, ...) for each message, for as long
 * as <s> lives, resubscribing after each reconnect. Works while Redis is
 * down (it applies once it is up). Returns 0, -ENOMEM, -ENAMETOOLONG or
 * -EEXIST (already subscribed on this client). */
int shared_subscribe(struct shared *s, struct str channel, shared_msg_fn *fn,
                     void *arg);

/* <n> zeroed bytes that live as long as <s> (state for a subscription's
 * callback); NULL when out of memory. */
void *shared_attach(struct shared *s, size_t n);

/* The caller no longer wants <q>'s result: its callback will not run. */
void shared_cancel(struct shared_req *q);

/* Sums the counters of every client of the process into <out>. */
void shared_stats(struct shared_stats *out);

/* Writes the counters in the Prometheus text format (gatehouse_redis_*)
 * into <buf> (size <cap>, NUL-terminated). Returns the length, or 0 when
 * it does not fit. */
size_t shared_stats_prometheus(char *buf, size_t cap);

#endif
