/*
 * The configuration of the defences: the top-level "security" block
 * (privileges, sandbox, process-wide connection limit, table sizes) and the
 * "rate_limits" lists of listeners and routes.
 *
 * A rate-limit rule gets an id that names its buckets in the shared table.
 * The id is a hash of where the rule is written (listener address, site,
 * route, position, key), not of its values, so a reload that changes a
 * rule's rate keeps the clients' buckets, and a rule that moves elsewhere
 * starts afresh.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))
#define NS_PER_SEC ((int64_t)1000000000)

/* ---- security ---- */

static int set_name(struct cfg__ld *ld, const struct cfg__node *v,
                    const char **out)
{
    int rc = cfg__str(ld, v, false, out);
    if (rc != 0)
        return rc;
    if (v->val.len > 64)
        return cfg__bad(ld, v, "must be at most 64 characters");
    for (size_t i = 0; i < v->val.len; i++) {
        char c = v->val.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!ok)
            return cfg__bad(ld, v, "expected a user or group name (letters, "
                                   "digits, '_', '-', '.') or a number");
    }
    return 0;
}

static int set_user(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return set_name(ld, v, &((struct cfg_security *)obj)->user);
}

static int set_group(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return set_name(ld, v, &((struct cfg_security *)obj)->group);
}

static int set_chroot(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_security *s = obj;
    int rc = cfg__str(ld, v, false, &s->chroot);
    if (rc == 0 && v->val.p[0] != '/')
        return cfg__bad(ld, v, "must be an absolute path");
    return rc;
}

/* "auto" (0) or a number lo..hi. */
static int auto_or_num(struct cfg__ld *ld, const struct cfg__node *v,
                       uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (v->type == CFG_N_SCALAR && str_eq(v->val, STR_LIT("auto"))) {
        *out = 0;
        return 0;
    }
    if (v->type != CFG_N_SCALAR || !cfg__num(v->val, lo, hi, out))
        return cfg__bad(ld, v, "expected auto or a number %llu..%llu",
                        (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

static int set_open_files(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    return auto_or_num(ld, v, 64, 1u << 30,
                       &((struct cfg_security *)obj)->open_files);
}

static int set_max_conns(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    return auto_or_num(ld, v, 1, 1u << 30,
                       &((struct cfg_security *)obj)->max_connections);
}

#define S struct cfg_security
static const struct cfg__field security_fields[] = {
    CFG__F_FN("user", set_user),
    CFG__F_FN("group", set_group),
    CFG__F_BOOL("run_as_root", S, run_as_root),
    CFG__F_FN("chroot", set_chroot),
    CFG__F_BOOL("sandbox", S, sandbox),
    CFG__F_FN("open_files", set_open_files),
    CFG__F_FN("max_connections", set_max_conns),
    { "rate_limit_entries", CFG_F_SIZE64,
      CFG__OFF(S, rate_entries, uint64_t), 64, 1u << 26, NULL },
};
#undef S

void cfg__security_defaults(struct cfg_security *s)
{
    *s = (struct cfg_security){
        .sandbox = true,
        .rate_entries = 65536,
    };
}

int cfg__set_security(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__walk(ld, v, "security", security_fields,
                       NFIELDS(security_fields), &c->security);
    if (rc != 0)
        return rc;
    const struct cfg_security *s = &c->security;
    if (s->user != NULL && strcmp(s->user, "root") == 0 && !s->run_as_root)
        return cfg__bad(ld, cfg__map_get(v, "user"),
                        "running as root needs \"run_as_root: true\" as well");
    return 0;
}

/* ---- rate limits ---- */

struct rate_ctx {
    struct cfg_rate r;
    bool have_rate, have_burst, on_route;
    uint64_t count; /* the N of "N/s" */
};

static int set_rate(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const bad = "expected a rate such as 10/s, 600/m or "
                                   "1000/h";
    struct rate_ctx *x = obj;
    if (v->type != CFG_N_SCALAR)
        return cfg__bad(ld, v, "%s", bad);
    const char *slash = memchr(v->val.p, '/', v->val.len);
    if (slash == NULL)
        return cfg__bad(ld, v, "%s", bad);
    struct str num = str_make(v->val.p, (size_t)(slash - v->val.p));
    struct str unit = str_make(slash + 1, v->val.len - num.len - 1);
    int64_t per;
    if (str_eq(unit, STR_LIT("s")))
        per = NS_PER_SEC;
    else if (str_eq(unit, STR_LIT("m")))
        per = 60 * NS_PER_SEC;
    else if (str_eq(unit, STR_LIT("h")))
        per = 3600 * NS_PER_SEC;
    else if (str_eq(unit, STR_LIT("d")))
        per = 86400 * NS_PER_SEC;
    else
        return cfg__bad(ld, v, "%s", bad);
    if (!cfg__num(num, 1, 1000000, &x->count))
        return cfg__bad(ld, v, "the count must be 1..1000000 (%s)", bad);
    x->r.period_ns = per / (int64_t)x->count;
    if (x->r.period_ns < 1000)
        return cfg__bad(ld, v, "more than 1000000 requests a second is not a "
                               "limit");
    x->have_rate = true;
    return 0;
}

static int set_by(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "address", "route", "user" };
    static const enum cfg_rate_by vals[] = { CFG_RATE_ADDRESS,
                                             CFG_RATE_ROUTE, CFG_RATE_USER };
    struct rate_ctx *x = obj;
    size_t i;
    int rc = cfg__enum(ld, v, names, NFIELDS(names), &i);
    if (rc != 0)
        return rc;
    if (vals[i] == CFG_RATE_ROUTE && !x->on_route)
        return cfg__bad(ld, v, "\"route\" is for a route's rate_limits; a "
                               "listener's rate limits go by address or "
                               "user");
    x->r.by = vals[i];
    return 0;
}

static int set_burst(struct cfg__ld *ld, const struct cfg__node *v,
                     void *obj)
{
    struct rate_ctx *x = obj;
    uint64_t n;
    int rc = cfg__uint(ld, v, 1, 1000000, &n);
    if (rc == 0) {
        x->r.burst = (uint32_t)n;
        x->have_burst = true;
    }
    return rc;
}

static const struct cfg__field rate_fields[] = {
    CFG__F_FN("by", set_by),
    CFG__F_FN("rate", set_rate),
    CFG__F_FN("burst", set_burst),
};

static int read_rates(struct cfg__ld *ld, const struct cfg__node *v,
                      bool on_route, struct cfg_rate **out, size_t *nout)
{
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n > 16)
        return cfg__bad(ld, v, "at most 16 rate limits");
    struct cfg_rate *rs = cfg__array(ld, v->n ? v->n : 1, sizeof(*rs));
    if (rs == NULL)
        return -ENOMEM;
    const struct cfg__node *it = v->head;
    for (size_t i = 0; i < v->n; i++, it = it->next) {
        struct rate_ctx x = { .on_route = on_route };
        rc = cfg__walk(ld, it, "rate limit", rate_fields, NFIELDS(rate_fields),
                       &x);
        if (rc != 0)
            return rc;
        if (!x.have_rate)
            return cfg__fail(ld, it, "missing \"rate\" in rate limit");
        if (!x.have_burst)
            x.r.burst = x.count > 1000000 ? 1000000 : (uint32_t)x.count;
        rs[i] = x.r;
    }
    *out = rs;
    *nout = v->n;
    return 0;
}

int cfg__set_listener_rates(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj)
{
    struct cfg_listener *l = obj;
    return read_rates(ld, v, false, &l->rates, &l->nrates);
}

int cfg__set_route_rates(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    struct cfg_route *r = obj;
    return read_rates(ld, v, true, &r->rates, &r->nrates);
}

/* ---- after the listeners ---- */

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (h ^ 0xff) * 16777619u; /* a separator between parts */
}

static void name_rules(struct cfg_rate *rs, size_t n, uint32_t where)
{
    for (size_t i = 0; i < n; i++) {
        char tail[32];
        snprintf(tail, sizeof(tail), "%zu/%d", i, (int)rs[i].by);
        rs[i].id = fnv(where, tail);
    }
}

void cfg__finish_security(struct cfg *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct cfg_listener *l = &c->listeners[i];
        uint32_t lh = fnv(2166136261u, l->addr.text);
        l->id = lh;
        name_rules(l->rates, l->nrates, lh);
        c->has_rates |= l->nrates > 0;
        c->has_conn_limit |= l->limits.conns_per_addr > 0;
        for (size_t j = 0; j < l->nsites; j++) {
            const struct cfg_site *s = &l->sites[j];
            uint32_t sh = fnv(lh, s->nhosts > 0 ? s->hosts[0] : "*default");
            for (size_t k = 0; k < s->nroutes; k++) {
                struct cfg_route *r = &s->routes[k];
                uint32_t rh = fnv(fnv(sh, r->exact ? "=" : "^"), r->path);
                name_rules(r->rates, r->nrates, rh);
                c->has_rates |= r->nrates > 0;
            }
        }
    }
}
