/*
 * Where the proxy pipeline meets the cache (src/cache/). Every function
 * here is one small call from txn.c, headers.c, respond.c or server.c; the
 * logic lives in cache_glue.c (lookup, serving, storing, purge),
 * cache_head.c (stored heads, 304 updates) and cache_fetch.c (fetches that
 * run without a client: stale-while-revalidate, and fills whose first
 * client went away).
 *
 * A transaction on a caching route carries a struct ctx (t->cx) in its
 * arena:
 *
 *   txn_start   cglue_request   PURGE? parse; else look the key up and
 *                               decide: hit, wait for a fill (collapse),
 *                               revalidate, miss; says whether an upstream
 *                               head is needed at all
 *               cglue_begin     hit -> T_CACHE (serve), wait -> T_CACHE,
 *                               only-if-cached -> 504, PURGE -> answer;
 *                               else txn_connect()
 *   response    cglue_response  304 on revalidation -> update, serve from
 *                               the cache; storable -> publish the head and
 *                               store the body as it streams (cglue_tee);
 *                               unsafe method -> invalidate
 *   txn_finish  cglue_done      the body is complete
 *   txn_abort   cglue_abort     the client left mid-fill: the fill goes on
 *                               in the background (cache_fetch.c)
 *   txn_error   cglue_error     the origin failed: stale-if-error
 *
 * The forward proxy plugs in the same way: its handler calls
 * cglue_request() with the listener's policy (cfg_cache_policy) for an
 * absolute-form http:// request (never CONNECT), then cglue_begin() before
 * it connects; the response hooks in txn.c are shared.
 */
#ifndef GH_PROXY_CACHE_GLUE_H
#define GH_PROXY_CACHE_GLUE_H

#include <stdbool.h>

#include "cache/cache.h"
#include "proxy/proxy_int.h"

/* A worker's cache state. */
struct cwk {
    struct worker *w;
    struct cache_notifier *nt; /* wakes this worker's waiting transactions */
    struct ev ev;              /* its eventfd in the loop */
    struct cfetch *fetches;    /* background fetches in flight */
    struct timer stats;        /* worker 1: the store's size for /metrics */
};

struct priv_plan;
/* The store described by cfg->cache (NULL with an error logged); its disk
 * files belong to the user of <plan> (NULL: this one), and its disk thread
 * enters the sandbox when the configuration has one. */
struct cache *cglue_cache_new(const struct cfg *cfg, const struct priv_plan *plan);

/* Cluster: applies the purges other nodes publish (worker 1 of each
 * process, once its Redis connection exists). */
void cglue_cluster_init(struct worker *w);

/* Per worker: the notifier that wakes its waiting transactions. */
int cglue_worker_init(struct worker *w);
void cglue_worker_fini(struct worker *w); /* idempotent */

/* Request head parsed (fields still valid). <proxy>: the route proxies.
 * Sets *<hit> when the response will come from the cache (no upstream
 * head needed). Returns 0 or -ENOMEM. */
int cglue_request(struct txn *t, const struct h1_msg *req, bool proxy, bool *hit);
/* Same with an explicit policy (the forward proxy). */
int cglue_request_policy(struct txn *t, const struct h1_msg *req,
                         const struct cfg_cache_policy *pol, bool *hit);
/* True when the cache answered (or will) and the transaction must not
 * connect upstream. */
bool cglue_begin(struct txn *t);
/* A final response head from upstream. Returns 0 to go on, 1 when the cache
 * took over (t->phase == T_CACHE, the upstream connection released), or
 * -ENOMEM. */
int cglue_response(struct txn *t, struct h1_msg *resp);
/* The response flow of <t> now decodes chunked bodies itself (the
 * compressor wants the payload): cglue_tee gets payload bytes. */
void cglue_decoded(struct txn *t);
/* <n> body bytes at <p> are about to go to the client (as framed
 * upstream): store them too. */
void cglue_tee(struct txn *t, const char *p, size_t n);
void cglue_done(struct txn *t);
void cglue_abort(struct txn *t);
bool cglue_error(struct txn *t, int status);
void cglue_pump(struct txn *t);
/* HTTP/2: the session pulls body bytes of a response from the cache. */
ssize_t cglue_pull(struct txn *t, char *dst, size_t max, bool *eof);
void cglue_timeout(struct txn *t);

/* ---- cache_fetch.c ---- */

struct cfetch;
/* Takes over <t>'s upstream connection to finish storing the body of the
 * object it fills; false when that cannot be done (the caller aborts the
 * fill). */
bool cfetch_continue(struct txn *t, struct cache_obj *fill, const struct h1_chunked *ch,
                     bool chunked);
/* Same, at the response head (nothing of the body read yet): the client
 * is answered from the cache while the body is stored. */
bool cfetch_continue_raw(struct txn *t, struct cache_obj *fill, enum h1_body kind,
                         uint64_t content_length);
/* Revalidates <stale> in the background with the request head in t->uout
 * (already conditional). Returns false when it could not start. */
bool cfetch_revalidate(struct txn *t, struct cache_obj *stale);
/* Stops every background fetch of <w> (worker exit). */
void cfetch_stop_all(struct worker *w);

#endif
