/*
 * /status: the process, its configuration generation, per-second history
 * (what the dashboard draws), listeners, upstream servers and the cache, as
 * one JSON document.
 *
 * The history is sampled once a second by the admin thread: the request
 * counters summed over workers, minus the previous sample, give the rates
 * and the latency histogram of that second, from which the percentiles are
 * interpolated (so they are as fine as the buckets, see metrics.c).
 *
 * A server's state is what the workers last saw when connecting to it:
 * "down" when the last attempt failed, "up" when it succeeded, "unknown"
 * before any attempt. The active health checks of the pools' issue will
 * feed the same counters.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "cluster/shared.h"
#include "core/macros.h"
#include "upstream/sticktab.h"

#ifndef GH_VERSION
#define GH_VERSION "0.1.0"
#endif

static uint64_t open_conns(struct admin *a)
{
    uint64_t open = 0;
    const struct cfg *cfg = a->cfg;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        uint32_t id = cfg->listeners[i].mslot;
        open += metrics_slot_sum(a->m, id, ML_ACCEPTED) -
                metrics_slot_sum(a->m, id, ML_CLOSED);
    }
    return open;
}

void status_sample(struct admin *a)
{
    struct history *h = &a->hist;
    uint64_t cur[MR_END];
    metrics_requests_total(a->m, cur);
    int64_t now = admin_wall_ms();
    if (h->have_prev && now > h->prev_ms) {
        double dt = (double)(now - h->prev_ms) / 1000.0;
        uint64_t d[MR_END];
        for (unsigned i = 0; i < MR_END; i++)
            d[i] = cur[i] - h->prev[i];
        uint64_t reqs = 0;
        for (unsigned i = MR_1XX; i <= MR_OTHER; i++)
            reqs += d[i];
        struct sample s = {
            .t_ms = now,
            .rps = (double)reqs / dt,
            .err_ps = (double)d[MR_5XX] / dt,
            .out_bps = (double)d[MR_BYTES_OUT] / dt,
            .p50_ms = metrics_quantile(&d[MR_HIST], 0.50) / 1000.0,
            .p90_ms = metrics_quantile(&d[MR_HIST], 0.90) / 1000.0,
            .p99_ms = metrics_quantile(&d[MR_HIST], 0.99) / 1000.0,
            .conns = open_conns(a),
        };
        if (h->n < HISTORY_LEN) {
            h->s[(h->head + h->n) % HISTORY_LEN] = s;
            h->n++;
        } else {
            h->s[h->head] = s;
            h->head = (h->head + 1) % HISTORY_LEN;
        }
    }
    memcpy(h->prev, cur, sizeof(cur));
    h->prev_ms = now;
    h->have_prev = true;
}

/* "name":[v,v,...] of one field of the last <n> samples. */
static void series(struct sbuf *b, const struct history *h, const char *name,
                   size_t off, bool integer)
{
    sb_printf(b, "\"%s\":[", name);
    for (unsigned i = 0; i < h->n; i++) {
        const struct sample *s = &h->s[(h->head + i) % HISTORY_LEN];
        const char *p = (const char *)s + off;
        if (integer) {
            uint64_t v;
            memcpy(&v, p, sizeof(v));
            sb_printf(b, "%s%llu", i ? "," : "", (unsigned long long)v);
        } else {
            double v;
            memcpy(&v, p, sizeof(v));
            sb_printf(b, "%s%.3f", i ? "," : "", v);
        }
    }
    sb_puts(b, "]");
}

static void put_history(struct sbuf *b, const struct history *h)
{
    sb_puts(b, "\"history\":{\"interval_s\":1,\"t\":[");
    for (unsigned i = 0; i < h->n; i++)
        sb_printf(b, "%s%lld", i ? "," : "",
                  (long long)h->s[(h->head + i) % HISTORY_LEN].t_ms / 1000);
    sb_puts(b, "],");
    series(b, h, "rps", offsetof(struct sample, rps), false);
    sb_puts(b, ",");
    series(b, h, "errors_ps", offsetof(struct sample, err_ps), false);
    sb_puts(b, ",");
    series(b, h, "p50_ms", offsetof(struct sample, p50_ms), false);
    sb_puts(b, ",");
    series(b, h, "p90_ms", offsetof(struct sample, p90_ms), false);
    sb_puts(b, ",");
    series(b, h, "p99_ms", offsetof(struct sample, p99_ms), false);
    sb_puts(b, ",");
    series(b, h, "out_bps", offsetof(struct sample, out_bps), false);
    sb_puts(b, ",");
    series(b, h, "conns", offsetof(struct sample, conns), true);
    sb_puts(b, "}");
}

static const char *server_state(struct admin *a, const struct cfg_upstream *u,
                                const struct cfg_server *s)
{
    switch (metrics_server_state(a->m, u, s)) {
    case M_SRV_UP:
        return "up";
    case M_SRV_DOWN:
        return "down";
    case M_SRV_UNKNOWN:
        break;
    }
    return "unknown";
}

/* "health_checks": null without active checks, else their counts and the
 * last result. */
static void put_health(struct sbuf *b, struct admin *a, const struct cfg_upstream *u,
                       uint32_t id, int64_t now)
{
    if (!u->health.on) {
        sb_puts(b, ",\"health_checks\":null");
        return;
    }
    uint64_t last = metrics_slot_sum(a->m, id, MS_HEALTH_LAST);
    uint64_t at = metrics_slot_max(a->m, id, MS_HEALTH_LAST_MS);
    sb_printf(b, ",\"health_checks\":{\"ok\":%llu,\"failed\":%llu,\"down\":%s,"
                 "\"last\":",
              (unsigned long long)metrics_slot_sum(a->m, id, MS_HEALTH_OK),
              (unsigned long long)metrics_slot_sum(a->m, id, MS_HEALTH_FAIL),
              metrics_slot_sum(a->m, id, MS_HEALTH_DOWN) ? "true" : "false");
    if (last == M_HC_NONE)
        sb_puts(b, "null,\"last_s_ago\":null}");
    else
        sb_printf(b, "\"%s\",\"last_s_ago\":%.1f}",
                  last == M_HC_PASSED ? "passed" : "failed",
                  (double)(now - (int64_t)at) / 1000.0);
}

static void put_upstreams(struct sbuf *b, struct admin *a)
{
    const struct cfg *cfg = a->cfg;
    int64_t now = admin_wall_ms();
    sb_puts(b, "\"upstreams\":[");
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct cfg_upstream *u = &cfg->upstreams[i];
        sb_puts(b, i ? ",{\"name\":" : "{\"name\":");
        sb_json(b, u->name);
        sb_puts(b, ",\"servers\":[");
        for (size_t j = 0; j < u->nservers; j++) {
            uint32_t id = u->servers[j].mslot;
            uint64_t fail_ms = metrics_slot_max(a->m, id, MS_LAST_FAIL_MS);
            sb_puts(b, j ? ",{\"address\":" : "{\"address\":");
            sb_json(b, u->servers[j].addr.text);
            sb_printf(b, ",\"weight\":%d,\"state\":\"%s\",\"in_flight\":%llu,"
                         "\"requests\":%llu,\"connect_failures\":%llu",
                      u->servers[j].weight, server_state(a, u, &u->servers[j]),
                      (unsigned long long)metrics_slot_sum(a->m, id, MS_INFLIGHT),
                      (unsigned long long)metrics_slot_sum(a->m, id, MS_REQUESTS),
                      (unsigned long long)metrics_slot_sum(a->m, id, MS_CONNECT_FAIL));
            put_health(b, a, u, id, now);
            sb_puts(b, ",\"last_failure_s_ago\":");
            if (fail_ms == 0)
                sb_puts(b, "null}");
            else
                sb_printf(b, "%.1f}", (double)(now - (int64_t)fail_ms) / 1000.0);
        }
        sb_puts(b, "]}");
    }
    sb_puts(b, "]");
}

static void put_security(struct sbuf *b, struct admin *a)
{
    sb_printf(b, "\"tls\":{\"handshakes\":%llu,\"resumed\":%llu},"
                 "\"denied\":{\"acl\":%llu,\"rate_limit\":%llu,"
                 "\"conn_limit\":%llu,\"auth\":%llu}",
              (unsigned long long)metrics_global(a->m, MG_TLS_HANDSHAKES),
              (unsigned long long)metrics_global(a->m, MG_TLS_RESUMED),
              (unsigned long long)metrics_global(a->m, MG_DENIED_ACL),
              (unsigned long long)metrics_global(a->m, MG_DENIED_RATE),
              (unsigned long long)metrics_global(a->m, MG_DENIED_CONN),
              (unsigned long long)metrics_global(a->m, MG_DENIED_AUTH));
}

static void put_listeners(struct sbuf *b, struct admin *a)
{
    const struct cfg *cfg = a->cfg;
    sb_puts(b, "\"listeners\":[");
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        uint64_t acc = metrics_slot_sum(a->m, l->mslot, ML_ACCEPTED);
        uint64_t reqs = 0;
        for (unsigned c = MR_1XX; c <= MR_OTHER; c++) {
            reqs += metrics_slot_sum(a->m, l->mslot, c);
            for (size_t s = 0; s < l->nsites; s++)
                for (size_t r = 0; r < l->sites[s].nroutes; r++)
                    reqs += metrics_slot_sum(a->m, l->sites[s].routes[r].mslot, c);
        }
        sb_puts(b, i ? ",{\"listen\":" : "{\"listen\":");
        sb_json(b, l->addr.text);
        sb_printf(b, ",\"proxy_protocol\":%s,\"open\":%llu,\"accepted\":%llu,"
                     "\"requests\":%llu}",
                  l->proxy_protocol ? "true" : "false",
                  (unsigned long long)(acc - metrics_slot_sum(a->m, l->mslot, ML_CLOSED)),
                  (unsigned long long)acc, (unsigned long long)reqs);
    }
    sb_puts(b, "]");
}

static void put_cache(struct sbuf *b, struct admin *a)
{
    uint64_t hit = metrics_global(a->m, MG_CACHE_HIT);
    uint64_t miss = metrics_global(a->m, MG_CACHE_MISS);
    uint64_t stale = metrics_global(a->m, MG_CACHE_STALE);
    sb_printf(b, "\"cache\":{\"hits\":%llu,\"misses\":%llu,\"stale\":%llu,"
                 "\"stored_bytes\":%llu,\"objects\":%llu,\"hit_ratio\":",
              (unsigned long long)hit, (unsigned long long)miss,
              (unsigned long long)stale,
              (unsigned long long)metrics_global(a->m, MG_CACHE_BYTES),
              (unsigned long long)metrics_global(a->m, MG_CACHE_OBJECTS));
    if (hit + miss + stale == 0)
        sb_puts(b, "null}");
    else
        sb_printf(b, "%.4f}", (double)(hit + stale) / (double)(hit + miss + stale));
}

char *status_json(struct admin *a, size_t *len)
{
    struct sbuf b = { 0 };
    int64_t now = admin_wall_ms();
    pthread_mutex_lock(&a->mu);
    bool draining = a->draining, ok = a->last_reload_ok;
    unsigned gen = a->generation;
    uint64_t rok = a->reloads_ok, rfail = a->reloads_failed;
    int64_t last = a->last_reload_ms;
    char lasterr[sizeof(a->last_error)];
    memcpy(lasterr, a->last_error, sizeof(lasterr));
    pthread_mutex_unlock(&a->mu);

    sb_printf(&b, "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%.1f,"
                  "\"workers\":%d,\"draining\":%s,\"config\":{\"file\":",
              GH_VERSION, (long)getpid(), (double)(now - a->start_ms) / 1000.0,
              a->nworkers, draining ? "true" : "false");
    sb_json(&b, a->cfg->file);
    sb_printf(&b, ",\"generation\":%u,\"reloads\":%llu,\"reloads_failed\":%llu,"
                  "\"last_reload\":",
              gen, (unsigned long long)rok, (unsigned long long)rfail);
    if (last == 0) {
        sb_puts(&b, "null},");
    } else {
        sb_printf(&b, "{\"ok\":%s,\"s_ago\":%.1f,\"error\":", ok ? "true" : "false",
                  (double)(now - last) / 1000.0);
        if (ok)
            sb_puts(&b, "null}},");
        else {
            sb_json(&b, lasterr);
            sb_puts(&b, "}},");
        }
    }
    uint64_t tot[MR_END];
    metrics_requests_total(a->m, tot);
    uint64_t reqs = 0;
    for (unsigned i = MR_1XX; i <= MR_OTHER; i++)
        reqs += tot[i];
    sb_printf(&b, "\"totals\":{\"requests\":%llu,\"by_class\":{\"1xx\":%llu,"
                  "\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
                  "\"bytes_in\":%llu,\"bytes_out\":%llu,\"connections_open\":%llu,"
                  "\"p50_ms\":%.3f,\"p99_ms\":%.3f},",
              (unsigned long long)reqs, (unsigned long long)tot[MR_1XX],
              (unsigned long long)tot[MR_2XX], (unsigned long long)tot[MR_3XX],
              (unsigned long long)tot[MR_4XX], (unsigned long long)tot[MR_5XX],
              (unsigned long long)tot[MR_BYTES_IN], (unsigned long long)tot[MR_BYTES_OUT],
              (unsigned long long)open_conns(a),
              metrics_quantile(&tot[MR_HIST], 0.5) / 1000.0,
              metrics_quantile(&tot[MR_HIST], 0.99) / 1000.0);
    put_history(&b, &a->hist);
    sb_puts(&b, ",");
    put_listeners(&b, a);
    sb_puts(&b, ",");
    put_upstreams(&b, a);
    sb_puts(&b, ",");
    put_cache(&b, a);
    sb_puts(&b, ",");
    put_security(&b, a);
    sb_puts(&b, "}\n");
    return sb_take(&b, len);
}

/* True when some pool of <cfg> sticks through a table. */
static bool sticky_tables(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].sticky.cookie == NULL &&
            (cfg->upstreams[i].sticky.learn != NULL ||
             cfg->upstreams[i].sticky.by == CFG_STICK_SOURCE))
            return true;
    return false;
}

void status_prometheus(struct admin *a, struct sbuf *b)
{
    pthread_mutex_lock(&a->mu);
    bool draining = a->draining;
    unsigned gen = a->generation;
    uint64_t rok = a->reloads_ok, rfail = a->reloads_failed;
    pthread_mutex_unlock(&a->mu);
    sb_printf(b, "# HELP gatehouse_build_info Version of the running binary.\n"
                 "# TYPE gatehouse_build_info gauge\n"
                 "gatehouse_build_info{version=\"%s\"} 1\n", GH_VERSION);
    sb_printf(b, "# HELP gatehouse_start_time_seconds When the process started.\n"
                 "# TYPE gatehouse_start_time_seconds gauge\n"
                 "gatehouse_start_time_seconds %.3f\n", (double)a->start_ms / 1000.0);
    sb_printf(b, "# HELP gatehouse_config_generation Configurations loaded since "
                 "start (1: the first).\n# TYPE gatehouse_config_generation gauge\n"
                 "gatehouse_config_generation %u\n", gen);
    sb_printf(b, "# HELP gatehouse_reloads_total Reloads by result.\n"
                 "# TYPE gatehouse_reloads_total counter\n"
                 "gatehouse_reloads_total{result=\"ok\"} %llu\n"
                 "gatehouse_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)rok, (unsigned long long)rfail);
    sb_printf(b, "# HELP gatehouse_draining 1 during a graceful stop.\n"
                 "# TYPE gatehouse_draining gauge\ngatehouse_draining %d\n",
              draining ? 1 : 0);
    sb_printf(b, "# HELP gatehouse_workers Worker threads.\n"
                 "# TYPE gatehouse_workers gauge\ngatehouse_workers %d\n", a->nworkers);
    if (a->cfg != NULL && sticky_tables(a->cfg)) {
        char st[2048];
        if (sticktab_stats_prometheus(st, sizeof(st)) > 0)
            sb_puts(b, st);
    }
    if (a->cfg != NULL && a->cfg->cluster.redis.enabled) {
        char redis[2048];
        if (shared_stats_prometheus(redis, sizeof(redis)) > 0)
            sb_puts(b, redis);
    }
}
