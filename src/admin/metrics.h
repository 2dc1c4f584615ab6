/*
 * Metrics: counters kept per worker, summed when someone asks.
 *
 * Each worker owns a struct mworker and is the only thread that writes it.
 * An increment is a relaxed load and a relaxed store of an _Atomic uint64_t:
 * on x86-64 and arm64 that compiles to a plain load and store (no lock
 * prefix, no fence), so the request path pays what a plain counter costs,
 * while the admin thread's concurrent reads are data-race free (each value
 * it reads is one the worker wrote; sums are not a snapshot across
 * counters, which Prometheus does not need). The health thread has a
 * struct mworker of its own too (metrics_health()), for the MS_HEALTH_*
 * counters of server slots only.
 *
 * Counters that belong to a configured object (a listener, a route, an
 * upstream server) live in slots. A slot is registered by its labels (the
 * listener's address; listener, site and route; upstream and server), so a
 * reload that keeps a route keeps its slot and its counts, and a new route
 * gets a new slot. The registry only grows. Slots come in chunks that are
 * allocated by the main thread before a snapshot reaches the workers, and
 * never move, so a worker never waits for the admin thread and the reverse.
 */
#ifndef GH_ADMIN_METRICS_H
#define GH_ADMIN_METRICS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef _Atomic uint64_t mctr;

/* Latency buckets (upper bounds, µs) of every request histogram; the last
 * bucket is +Inf. */
#define M_HIST_N 19
extern const uint64_t m_hist_le_us[M_HIST_N - 1];

/* A slot: 32 counters whose meaning depends on its kind. */
#define M_SLOT_N 32
struct mslot {
    mctr v[M_SLOT_N];
};

enum m_kind {
    MK_LISTENER = 0, /* also counts its requests that matched no route */
    MK_ROUTE,
    MK_SERVER,
};

/* Route slots (and a listener slot, for requests matching no route). */
enum {
    MR_1XX = 0, /* MR_1XX + status / 100 - 1; MR_OTHER for 0 and > 599 */
    MR_2XX,
    MR_3XX,
    MR_4XX,
    MR_5XX,
    MR_OTHER,
    MR_BYTES_IN,  /* request body bytes */
    MR_BYTES_OUT, /* response body bytes */
    MR_LAT_SUM,   /* µs */
    MR_HIST,      /* M_HIST_N buckets, not cumulative */
    MR_END = MR_HIST + M_HIST_N,
};

/* Listener slots, after the route counters. */
enum {
    ML_ACCEPTED = MR_END,
    ML_CLOSED,
    ML_PP_ERRORS, /* connections refused for a bad PROXY header */
    ML_END,
};

/* Upstream server slots. */
enum {
    MS_REQUESTS = 0,  /* requests sent (connections handed to a request) */
    MS_INFLIGHT,      /* connections owned by a request now (gauge) */
    MS_CONNECT_OK,
    MS_CONNECT_FAIL,  /* refused, unreachable or timed out */
    MS_LAST_OK_MS,    /* wall clock of the last good connect (max) */
    MS_LAST_FAIL_MS,  /* wall clock of the last failed one (max) */
    /* Active health checks. The health thread is not a worker: these are
     * written in its own struct mworker (metrics_health()), with atomic
     * read-modify-writes since the old and the new health thread of a
     * reload overlap for a moment. */
    MS_HEALTH_OK,      /* checks passed */
    MS_HEALTH_FAIL,    /* checks failed */
    MS_HEALTH_DOWN,    /* 1 while active checks hold the server down */
    MS_HEALTH_LAST,    /* the last check: 0 none yet, M_HC_PASSED, M_HC_FAILED */
    MS_HEALTH_LAST_MS, /* wall clock of the last check (max) */
    MS_EJECT_UNTIL_MS, /* wall clock a passive ejection ends (max) */
    MS_END,
};

enum {
    M_HC_NONE = 0,
    M_HC_PASSED = 1,
    M_HC_FAILED = 2,
};

/* What /metrics and /status say of a server. */
enum m_srv_state {
    M_SRV_UNKNOWN = 0, /* no connection attempt or health check yet */
    M_SRV_UP,
    M_SRV_DOWN,
};

/* Process-wide counters, per worker. Each line: id, metric name, labels,
 * type, help. Lines sharing a name form one family and must be adjacent.
 * A capability that lands adds its lines here and calls m_inc(). */
#define METRICS_GLOBAL(X)                                                          \
    X(CACHE_HIT, "gatehouse_cache_requests_total", "result=\"hit\"", "counter",   \
      "Cache lookups by result.")                                                  \
    X(CACHE_MISS, "gatehouse_cache_requests_total", "result=\"miss\"", "counter", \
      "")                                                                          \
    X(CACHE_STALE, "gatehouse_cache_requests_total", "result=\"stale\"",          \
      "counter", "")                                                               \
    X(CACHE_BYTES, "gatehouse_cache_stored_bytes", "", "gauge",                    \
      "Bytes of responses held by the cache.")                                     \
    X(CACHE_OBJECTS, "gatehouse_cache_stored_objects", "", "gauge",                \
      "Responses held by the cache.")                                              \
    X(TLS_HANDSHAKES, "gatehouse_tls_handshakes_total", "", "counter",            \
      "Completed TLS handshakes with clients.")                                    \
    X(TLS_RESUMED, "gatehouse_tls_resumptions_total", "", "counter",              \
      "TLS handshakes that resumed a session.")                                    \
    X(DENIED_ACL, "gatehouse_denied_total", "reason=\"acl\"", "counter",          \
      "Requests (connections for conn_limit) refused: by access rules (403), "     \
      "rate limits (429), connections_per_address, proxy authentication (407).")   \
    X(DENIED_RATE, "gatehouse_denied_total", "reason=\"rate_limit\"", "counter",  \
      "")                                                                          \
    X(DENIED_CONN, "gatehouse_denied_total", "reason=\"conn_limit\"", "counter",  \
      "")                                                                          \
    X(DENIED_AUTH, "gatehouse_denied_total", "reason=\"auth\"", "counter", "")

enum m_global {
#define M_X(id, name, labels, type, help) MG_##id,
    METRICS_GLOBAL(M_X)
#undef M_X
        MG_COUNT,
};

#define M_CHUNK 64        /* slots per chunk */
#define M_MAX_CHUNKS 1024 /* 65536 slots at most */

/* One worker's counters. Only that worker writes them. */
struct mworker {
    alignas(64) mctr g[MG_COUNT];
    alignas(64) struct mslot *_Atomic chunks[M_MAX_CHUNKS];
};

struct metrics;

/* A registry for <nworkers> workers. Returns NULL when out of memory. */
struct metrics *metrics_new(int nworkers);
void metrics_free(struct metrics *m);
int metrics_nworkers(const struct metrics *m);
struct mworker *metrics_worker(struct metrics *m, int i);
/* The health thread's counters (server slots' MS_HEALTH_* only); summed
 * with the workers' like any other. */
struct mworker *metrics_health(struct metrics *m);

/* Gives every listener, route and server of <cfg> its slot (the same slot
 * as any earlier snapshot's object with the same labels) and makes sure
 * every worker has memory for it. Main thread, before <cfg> is shared.
 * Returns 0 or -ENOMEM (then <cfg> must not be used). */
int metrics_register(struct metrics *m, struct cfg *cfg);

/* Writes the metrics of the listeners, routes and servers of <cfg> and the
 * process-wide counters in the Prometheus text format (version 0.0.4),
 * after the lines <extra> (already formatted, may be NULL), into a malloc'd
 * string; caller frees. NULL when out of memory. */
char *metrics_prometheus(struct metrics *m, const struct cfg *cfg,
                         const char *extra, size_t *len);

/* Sums over workers. */
uint64_t metrics_global(struct metrics *m, enum m_global id);
/* Sum over workers of counter <idx> of slot <id>. */
uint64_t metrics_slot_sum(struct metrics *m, uint32_t id, unsigned idx);
/* The largest value over workers: for the clocks (MS_LAST_OK_MS,
 * MS_LAST_FAIL_MS, MS_HEALTH_LAST_MS). The index alone does not say which
 * kind a slot is (MS_LAST_OK_MS is also MR_5XX), so the caller picks. */
uint64_t metrics_slot_max(struct metrics *m, uint32_t id, unsigned idx);
/* The state of server <s> of <u>: down while active health checks (when
 * <u> has them) hold it down; else down when the last failed connection
 * attempt is more recent than the last good one or the last passed health
 * check; unknown before any of them. */
enum m_srv_state metrics_server_state(struct metrics *m, const struct cfg_upstream *u,
                                      const struct cfg_server *s);
/* Sums the request counters (MR_1XX..MR_END) of every listener and route
 * slot into <out>. */
void metrics_requests_total(struct metrics *m, uint64_t out[MR_END]);

/* The latency below which <q> (0..1) of the requests counted in <hist>
 * (M_HIST_N buckets, not cumulative) fell, in µs, interpolated within its
 * bucket; 0 when empty. */
double metrics_quantile(const uint64_t *hist, double q);

/* ---- inline defs ---- */

static inline void m_add(mctr *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void m_sub(mctr *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static inline void m_max(mctr *c, uint64_t v)
{
    if (atomic_load_explicit(c, memory_order_relaxed) < v)
        atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline void m_inc(struct mworker *w, enum m_global id)
{
    m_add(&w->g[id], 1);
}

static inline struct mslot *m_slot(struct mworker *w, uint32_t id)
{
    return atomic_load_explicit(&w->chunks[id / M_CHUNK], memory_order_relaxed) +
           id % M_CHUNK;
}

/* The health thread's writes (see MS_HEALTH_OK). */
static inline void m_hc_result(struct mslot *s, bool passed, bool down,
                               uint64_t wall_ms)
{
    atomic_fetch_add_explicit(&s->v[passed ? MS_HEALTH_OK : MS_HEALTH_FAIL], 1,
                              memory_order_relaxed);
    atomic_store_explicit(&s->v[MS_HEALTH_LAST], passed ? M_HC_PASSED : M_HC_FAILED,
                          memory_order_relaxed);
    atomic_store_explicit(&s->v[MS_HEALTH_DOWN], down, memory_order_relaxed);
    uint64_t prev = atomic_load_explicit(&s->v[MS_HEALTH_LAST_MS], memory_order_relaxed);
    while (prev < wall_ms &&
           !atomic_compare_exchange_weak_explicit(&s->v[MS_HEALTH_LAST_MS], &prev,
                                                  wall_ms, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* Counts one finished request on slot <s>. */
static inline void m_request(struct mslot *s, int status, uint64_t in,
                             uint64_t out, uint64_t us)
{
    unsigned cls = status >= 100 && status <= 599 ? (unsigned)(status / 100 - 1)
                                                  : MR_OTHER;
    m_add(&s->v[cls], 1);
    m_add(&s->v[MR_BYTES_IN], in);
    m_add(&s->v[MR_BYTES_OUT], out);
    m_add(&s->v[MR_LAT_SUM], us);
    unsigned b = 0;
    while (b < M_HIST_N - 1 && us > m_hist_le_us[b])
        b++;
    m_add(&s->v[MR_HIST + b], 1);
}

#endif
