/*
 * The metrics registry (slots by labels) and the Prometheus text format.
 *
 * Registration runs on the main thread, under the registry's mutex, when a
 * snapshot is loaded; the admin thread takes the same mutex to read the
 * keys. Workers never take it: they only follow chunk pointers that were
 * published before they got the snapshot naming those slots.
 *
 * The exposition walks the admin thread's current snapshot, so only the
 * listeners, routes and servers configured now are listed; their counts
 * include what earlier snapshots counted under the same labels.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/metrics.h"
#include "admin/sbuf.h"
#include "core/macros.h"

const uint64_t m_hist_le_us[M_HIST_N - 1] = {
    100,    250,    500,     1000,    2500,    5000,
    10000,  25000,  50000,   100000,  250000,  500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

struct mkey {
    enum m_kind kind;
    char *a, *b, *c;
};

_Static_assert(ML_END <= M_SLOT_N && MS_END <= M_SLOT_N, "slot too small");

struct metrics {
    pthread_mutex_t mu;
    int nw;               /* workers */
    struct mworker **w;   /* nw + 1: the workers', then the health thread's */
    struct mkey *keys;
    uint32_t nkeys, capkeys;
    uint32_t nchunks;
};

struct metrics *metrics_new(int nworkers)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->nw = nworkers;
    m->w = calloc((size_t)nworkers + 1, sizeof(*m->w));
    if (m->w == NULL)
        goto Fail;
    for (int i = 0; i <= nworkers; i++) {
        m->w[i] = aligned_alloc(64, sizeof(struct mworker));
        if (m->w[i] == NULL)
            goto Fail;
        memset(m->w[i], 0, sizeof(struct mworker));
    }
    return m;
Fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    for (int i = 0; m->w != NULL && i <= m->nw; i++) {
        if (m->w[i] == NULL)
            continue;
        for (uint32_t c = 0; c < m->nchunks; c++)
            free(atomic_load(&m->w[i]->chunks[c]));
        free(m->w[i]);
    }
    free(m->w);
    for (uint32_t i = 0; i < m->nkeys; i++) {
        free(m->keys[i].a);
        free(m->keys[i].b);
        free(m->keys[i].c);
    }
    free(m->keys);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int metrics_nworkers(const struct metrics *m)
{
    return m->nw;
}

struct mworker *metrics_worker(struct metrics *m, int i)
{
    ASSERT(i >= 0 && i < m->nw);
    return m->w[i];
}

struct mworker *metrics_health(struct metrics *m)
{
    return m->w[m->nw];
}

static bool eq(const char *x, const char *y)
{
    return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

/* The slot for these labels, made when new. UINT32_MAX when out of memory
 * or slots. Called with the mutex held. */
static uint32_t slot_for(struct metrics *m, enum m_kind kind, const char *a,
                         const char *b, const char *c)
{
    for (uint32_t i = 0; i < m->nkeys; i++) {
        const struct mkey *k = &m->keys[i];
        if (k->kind == kind && eq(k->a, a) && eq(k->b, b) && eq(k->c, c))
            return i;
    }
    if (m->nkeys == (uint32_t)M_CHUNK * M_MAX_CHUNKS)
        return UINT32_MAX;
    if (m->nkeys == m->capkeys) {
        uint32_t cap = m->capkeys ? m->capkeys * 2 : 64;
        struct mkey *k = realloc(m->keys, cap * sizeof(*k));
        if (k == NULL)
            return UINT32_MAX;
        m->keys = k;
        m->capkeys = cap;
    }
    uint32_t id = m->nkeys;
    if (id / M_CHUNK >= m->nchunks) {
        /* a new chunk for every worker, published before use */
        for (int w = 0; w <= m->nw; w++) {
            struct mslot *ch = calloc(M_CHUNK, sizeof(*ch));
            if (ch == NULL)
                return UINT32_MAX; /* chunks given so far stay: harmless */
            atomic_store_explicit(&m->w[w]->chunks[m->nchunks], ch,
                                  memory_order_release);
        }
        m->nchunks++;
    }
    bool oom = false;
    struct mkey k = { kind, dup_or_null(a, &oom), dup_or_null(b, &oom),
                      dup_or_null(c, &oom) };
    if (oom) {
        free(k.a);
        free(k.b);
        free(k.c);
        return UINT32_MAX;
    }
    m->keys[m->nkeys++] = k;
    return id;
}

/* Labels of a site and a route, as the metrics show them. */
static const char *site_label(const struct cfg_site *s)
{
    return s->nhosts > 0 ? s->hosts[0] : "*";
}

static void route_label(const struct cfg_route *r, char *out, size_t len)
{
    snprintf(out, len, "%s%s", r->exact ? "= " : "", r->path);
}

int metrics_register(struct metrics *m, struct cfg *cfg)
{
    int rc = 0;
    char rl[1100];
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < cfg->nlisteners && rc == 0; i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        l->mslot = slot_for(m, MK_LISTENER, l->addr.text, NULL, NULL);
        if (l->mslot == UINT32_MAX)
            rc = -ENOMEM;
        for (size_t s = 0; s < l->nsites && rc == 0; s++) {
            struct cfg_site *site = &l->sites[s];
            for (size_t r = 0; r < site->nroutes && rc == 0; r++) {
                struct cfg_route *rt = &site->routes[r];
                route_label(rt, rl, sizeof(rl));
                rt->mslot = slot_for(m, MK_ROUTE, l->addr.text, site_label(site), rl);
                if (rt->mslot == UINT32_MAX)
                    rc = -ENOMEM;
            }
        }
    }
    for (size_t i = 0; i < cfg->nupstreams && rc == 0; i++) {
        struct cfg_upstream *u = &cfg->upstreams[i];
        for (size_t s = 0; s < u->nservers && rc == 0; s++) {
            u->servers[s].mslot = slot_for(m, MK_SERVER, u->name,
                                           u->servers[s].addr.text, NULL);
            if (u->servers[s].mslot == UINT32_MAX)
                rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static struct mslot *slot_of(struct metrics *m, int w, uint32_t id)
{
    return atomic_load_explicit(&m->w[w]->chunks[id / M_CHUNK],
                                memory_order_acquire) + id % M_CHUNK;
}

uint64_t metrics_slot_sum(struct metrics *m, uint32_t id, unsigned idx)
{
    uint64_t t = 0;
    for (int w = 0; w <= m->nw; w++)
        t += atomic_load_explicit(&slot_of(m, w, id)->v[idx], memory_order_relaxed);
    return t;
}

uint64_t metrics_slot_max(struct metrics *m, uint32_t id, unsigned idx)
{
    uint64_t t = 0;
    for (int w = 0; w <= m->nw; w++)
        t = MAX(t, atomic_load_explicit(&slot_of(m, w, id)->v[idx], memory_order_relaxed));
    return t;
}

uint64_t metrics_global(struct metrics *m, enum m_global id)
{
    uint64_t t = 0;
    for (int w = 0; w <= m->nw; w++)
        t += atomic_load_explicit(&m->w[w]->g[id], memory_order_relaxed);
    return t;
}

enum m_srv_state metrics_server_state(struct metrics *m, const struct cfg_upstream *u,
                                      const struct cfg_server *s)
{
    uint32_t id = s->mslot;
    uint64_t hc_ok = 0;
    if (u->passive.on) { /* ejected by passive checks: out until it ends */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (metrics_slot_max(m, id, MS_EJECT_UNTIL_MS) > now)
            return M_SRV_DOWN;
    }
    if (u->health.on) {
        if (metrics_slot_sum(m, id, MS_HEALTH_DOWN) != 0)
            return M_SRV_DOWN;
        if (metrics_slot_sum(m, id, MS_HEALTH_LAST) == M_HC_PASSED)
            hc_ok = metrics_slot_max(m, id, MS_HEALTH_LAST_MS);
    }
    uint64_t ok = MAX(metrics_slot_max(m, id, MS_LAST_OK_MS), hc_ok);
    uint64_t fail = metrics_slot_max(m, id, MS_LAST_FAIL_MS);
    if (ok == 0 && fail == 0)
        return M_SRV_UNKNOWN;
    return fail > ok ? M_SRV_DOWN : M_SRV_UP;
}

void metrics_requests_total(struct metrics *m, uint64_t out[MR_END])
{
    memset(out, 0, MR_END * sizeof(out[0]));
    pthread_mutex_lock(&m->mu);
    uint32_t n = m->nkeys;
    for (uint32_t id = 0; id < n; id++) {
        if (m->keys[id].kind == MK_SERVER)
            continue;
        for (int w = 0; w <= m->nw; w++) {
            struct mslot *s = slot_of(m, w, id);
            for (unsigned i = 0; i < MR_END; i++)
                out[i] += atomic_load_explicit(&s->v[i], memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&m->mu);
}

double metrics_quantile(const uint64_t *hist, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < M_HIST_N; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    double rank = q * (double)total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < M_HIST_N; i++) {
        if (hist[i] == 0 || (double)(seen + hist[i]) < rank) {
            seen += hist[i];
            continue;
        }
        double lo = i == 0 ? 0 : (double)m_hist_le_us[i - 1];
        double hi = i < M_HIST_N - 1 ? (double)m_hist_le_us[i] : lo * 2;
        double frac = ((rank - (double)seen) / (double)hist[i]);
        if (frac < 0)
            frac = 0;
        return lo + (hi - lo) * frac;
    }
    return (double)m_hist_le_us[M_HIST_N - 2];
}

/* ---- exposition ---- */

static void family(struct sbuf *b, const char *name, const char *type,
                   const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* {listener="..",site="..",route=".." (no closing brace) */
static void route_labels(struct sbuf *b, const char *l, const char *s,
                         const char *r)
{
    sb_puts(b, "{listener=\"");
    sb_label(b, l);
    sb_puts(b, "\",site=\"");
    sb_label(b, s);
    sb_puts(b, "\",route=\"");
    sb_label(b, r);
    sb_puts(b, "\"");
}

/* Calls <fn> for the listener slot (unrouted requests) and every route of
 * every listener of <cfg>. */
typedef void route_fn(struct sbuf *b, struct metrics *m, uint32_t id,
                      const char *l, const char *s, const char *r);

static void each_route(struct sbuf *b, struct metrics *m, const struct cfg *cfg,
                       route_fn *fn)
{
    char rl[1100];
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        fn(b, m, l->mslot, l->addr.text, "", "");
        for (size_t s = 0; s < l->nsites; s++)
            for (size_t r = 0; r < l->sites[s].nroutes; r++) {
                route_label(&l->sites[s].routes[r], rl, sizeof(rl));
                fn(b, m, l->sites[s].routes[r].mslot, l->addr.text,
                   site_label(&l->sites[s]), rl);
            }
    }
}

static void put_requests(struct sbuf *b, struct metrics *m, uint32_t id,
                         const char *l, const char *s, const char *r)
{
    static const char *const cls[] = { "1xx", "2xx", "3xx", "4xx", "5xx", "other" };
    for (unsigned c = MR_1XX; c <= MR_OTHER; c++) {
        uint64_t v = metrics_slot_sum(m, id, c);
        if (c == MR_OTHER && v == 0)
            continue;
        sb_puts(b, "gatehouse_requests_total");
        route_labels(b, l, s, r);
        sb_printf(b, ",code=\"%s\"} %llu\n", cls[c], (unsigned long long)v);
    }
}

static void put_hist(struct sbuf *b, struct metrics *m, uint32_t id,
                     const char *l, const char *s, const char *r)
{
    uint64_t cum = 0;
    for (unsigned i = 0; i < M_HIST_N; i++) {
        cum += metrics_slot_sum(m, id, MR_HIST + i);
        sb_puts(b, "gatehouse_request_duration_seconds_bucket");
        route_labels(b, l, s, r);
        if (i < M_HIST_N - 1)
            sb_printf(b, ",le=\"%g\"} %llu\n", (double)m_hist_le_us[i] / 1e6,
                      (unsigned long long)cum);
        else
            sb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sb_puts(b, "gatehouse_request_duration_seconds_sum");
    route_labels(b, l, s, r);
    sb_printf(b, "} %.6f\n", (double)metrics_slot_sum(m, id, MR_LAT_SUM) / 1e6);
    sb_puts(b, "gatehouse_request_duration_seconds_count");
    route_labels(b, l, s, r);
    sb_printf(b, "} %llu\n", (unsigned long long)cum);
}

static void put_bytes_in(struct sbuf *b, struct metrics *m, uint32_t id,
                         const char *l, const char *s, const char *r)
{
    sb_puts(b, "gatehouse_request_body_bytes_total");
    route_labels(b, l, s, r);
    sb_printf(b, "} %llu\n", (unsigned long long)metrics_slot_sum(m, id, MR_BYTES_IN));
}

static void put_bytes_out(struct sbuf *b, struct metrics *m, uint32_t id,
                          const char *l, const char *s, const char *r)
{
    sb_puts(b, "gatehouse_response_body_bytes_total");
    route_labels(b, l, s, r);
    sb_printf(b, "} %llu\n", (unsigned long long)metrics_slot_sum(m, id, MR_BYTES_OUT));
}

static void put_listeners(struct sbuf *b, struct metrics *m, const struct cfg *cfg)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        { "gatehouse_connections_accepted_total", "counter",
          "Client connections accepted." },
        { "gatehouse_connections_open", "gauge", "Client connections open now." },
        { "gatehouse_proxy_protocol_errors_total", "counter",
          "Connections closed for a missing or invalid PROXY header." },
    };
    for (size_t f = 0; f < ARRAY_LEN(fams); f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < cfg->nlisteners; i++) {
            const struct cfg_listener *l = &cfg->listeners[i];
            uint64_t acc = metrics_slot_sum(m, l->mslot, ML_ACCEPTED);
            uint64_t v = f == 0 ? acc
                       : f == 1 ? acc - metrics_slot_sum(m, l->mslot, ML_CLOSED)
                                : metrics_slot_sum(m, l->mslot, ML_PP_ERRORS);
            sb_printf(b, "%s{listener=\"", fams[f].name);
            sb_label(b, l->addr.text);
            sb_printf(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

static void server_labels(struct sbuf *b, const char *name,
                          const struct cfg_upstream *u, const struct cfg_server *s)
{
    sb_printf(b, "%s{upstream=\"", name);
    sb_label(b, u->name);
    sb_puts(b, "\",server=\"");
    sb_label(b, s->addr.text);
    sb_puts(b, "\"");
}

static void put_servers(struct sbuf *b, struct metrics *m, const struct cfg *cfg)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        { "gatehouse_upstream_up", "gauge",
          "0 while active health checks hold the server down, or when the last "
          "connection attempt to it failed (and no check passed since); else 1." },
        { "gatehouse_upstream_in_flight", "gauge",
          "Requests on their way to or from the server now." },
        { "gatehouse_upstream_requests_total", "counter",
          "Requests sent to the server." },
        { "gatehouse_upstream_connects_total", "counter",
          "Connection attempts to the server, by result." },
        { "gatehouse_upstream_health_checks_total", "counter",
          "Active health checks of the server, by result." },
        { "gatehouse_upstream_health_last_check_passed", "gauge",
          "1 when the last active health check of the server passed, 0 when it "
          "failed (servers checked at least once)." },
        { "gatehouse_upstream_health_last_check_timestamp_seconds", "gauge",
          "When the last active health check of the server finished." },
    };
    for (size_t f = 0; f < ARRAY_LEN(fams); f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < cfg->nupstreams; i++) {
            const struct cfg_upstream *u = &cfg->upstreams[i];
            for (size_t j = 0; j < u->nservers; j++) {
                uint32_t id = u->servers[j].mslot;
                if (f == 3 || f == 4) {
                    unsigned ok = f == 3 ? MS_CONNECT_OK : MS_HEALTH_OK;
                    for (unsigned k = 0; k < 2; k++) {
                        server_labels(b, fams[f].name, u, &u->servers[j]);
                        sb_printf(b, ",result=\"%s\"} %llu\n", k ? "failed" : "ok",
                                  (unsigned long long)metrics_slot_sum(m, id, ok + k));
                    }
                    continue;
                }
                uint64_t last = metrics_slot_sum(m, id, MS_HEALTH_LAST);
                if (f >= 5 && (!u->health.on || last == M_HC_NONE))
                    continue;
                server_labels(b, fams[f].name, u, &u->servers[j]);
                if (f == 6) {
                    uint64_t ms = metrics_slot_max(m, id, MS_HEALTH_LAST_MS);
                    sb_printf(b, "} %llu.%03u\n", (unsigned long long)(ms / 1000),
                              (unsigned)(ms % 1000));
                    continue;
                }
                uint64_t v;
                if (f == 0)
                    v = metrics_server_state(m, u, &u->servers[j]) != M_SRV_DOWN;
                else if (f == 5)
                    v = last == M_HC_PASSED;
                else
                    v = metrics_slot_sum(m, id, f == 1 ? MS_INFLIGHT : MS_REQUESTS);
                sb_printf(b, "} %llu\n", (unsigned long long)v);
            }
        }
    }
}

static void put_globals(struct sbuf *b, struct metrics *m)
{
    const char *last = "";
#define M_X(id, name, labels, type, help)                                      \
    if (strcmp(last, name) != 0)                                               \
        family(b, name, type, help);                                           \
    last = name;                                                               \
    sb_printf(b, "%s%s%s%s %llu\n", name, *labels ? "{" : "", labels,          \
              *labels ? "}" : "", (unsigned long long)metrics_global(m, MG_##id));
    METRICS_GLOBAL(M_X)
#undef M_X
}

char *metrics_prometheus(struct metrics *m, const struct cfg *cfg,
                         const char *extra, size_t *len)
{
    struct sbuf b = { 0 };
    if (extra != NULL)
        sb_puts(&b, extra);
    family(&b, "gatehouse_requests_total", "counter",
           "Requests answered, by listener, site, route and status class "
           "(site and route empty: no route matched).");
    each_route(&b, m, cfg, put_requests);
    family(&b, "gatehouse_request_duration_seconds", "histogram",
           "Time from the first byte of a request to its last response byte.");
    each_route(&b, m, cfg, put_hist);
    family(&b, "gatehouse_request_body_bytes_total", "counter",
           "Request body bytes received.");
    each_route(&b, m, cfg, put_bytes_in);
    family(&b, "gatehouse_response_body_bytes_total", "counter",
           "Response body bytes sent.");
    each_route(&b, m, cfg, put_bytes_out);
    put_listeners(&b, m, cfg);
    put_servers(&b, m, cfg);
    put_globals(&b, m);
    return sb_take(&b, len);
}
