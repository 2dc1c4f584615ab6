/*
 * The "upstreams" section: pools of servers and how requests are spread
 * over them, watched and retried (docs/upstreams.md).
 *
 * Most options are plain table entries. What needs code: a server item
 * (an address, or a mapping), the options that take either `true` or a
 * mapping (health, passive, sticky), the hash key syntax ("header:X-User"),
 * percentages, status ranges, and the checks across keys once an upstream
 * is read (a hash key without hash balancing, every server a backup, ...).
 *
 * A server with `resolve: true` is expanded into <max_addresses> slots
 * (consecutive servers) that the address answers of its name fill at run
 * time (src/upstream/resolve.c); its name is checked but not resolved at
 * load, since the resolver it names may not be the system's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"
#include "core/macros.h"

#define MAX_CONNS_UNSET UINT_MAX
#define DEFAULT_SLOTS 4

/* ---- servers ---- */

/* Loader-only view of a server item: the table writes <resolve> and
 * <slots> next to the server itself; the address is read once all keys
 * are known (a name that is re-resolved is not resolved at load). */
struct srv_item {
    struct cfg_server s;
    bool resolve;
    unsigned slots;
    const struct cfg__node *addr;
};

static int set_srv_address(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    (void)ld;
    ((struct srv_item *)obj)->addr = v;
    return 0;
}

#define S struct srv_item
static const struct cfg__field server_fields[] = {
    CFG__F_FN("address", set_srv_address),
    CFG__F_INT("weight", S, s.weight, 1, 1000),
    CFG__F_BOOL("backup", S, s.backup),
    CFG__F_UINT("max_conns", S, s.max_conns, 0, 1000000),
    CFG__F_BOOL("resolve", S, resolve),
    CFG__F_UINT("max_addresses", S, slots, 1, CFG_MAX_SERVERS),
};
#undef S

/* 0.0.0.0 or [::]: fine to listen on, meaningless to connect to. */
static bool is_any(const struct cfg_addr *a)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr, &any6,
                  sizeof(any6)) == 0;
}

/* "name:port" for a name that is re-resolved at run time: checked, not
 * resolved. */
static int read_name(struct cfg__ld *ld, const struct cfg__node *v,
                     struct cfg_server *s)
{
    static const char *const bad = "resolve: true needs a host name and a "
                                   "port, such as app.internal:8080";
    if (v->type != CFG_N_SCALAR)
        return cfg__bad(ld, v, "%s", bad);
    struct str t = v->val;
    const char *colon = t.len > 0 ? memrchr(t.p, ':', t.len) : NULL;
    uint64_t port;
    if (colon == NULL || colon == t.p ||
        !cfg__num(str_make(colon + 1, t.len - (size_t)(colon + 1 - t.p)), 1,
                  65535, &port))
        return cfg__bad(ld, v, "%s", bad);
    size_t hl = (size_t)(colon - t.p);
    char host[256];
    if (hl >= sizeof(host) || hl > 253)
        return cfg__bad(ld, v, "%s", bad);
    memcpy(host, t.p, hl);
    host[hl] = '\0';
    bool digits_dots = true;
    for (size_t i = 0; i < hl; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
        if (!ok)
            return cfg__bad(ld, v, "resolve: true needs a host name, not an "
                                   "address");
        digits_dots &= (c >= '0' && c <= '9') || c == '.';
    }
    if (digits_dots)
        return cfg__bad(ld, v, "resolve: true needs a host name, not an "
                               "address");
    s->host = cfg__arena_strndup(ld->a, host, hl);
    if (s->host == NULL)
        return -ENOMEM;
    s->port = (uint16_t)port;
    memset(&s->addr, 0, sizeof(s->addr));
    snprintf(s->addr.text, sizeof(s->addr.text), "%.50s:%u", host, (unsigned)port);
    return 0;
}

/* One item of "servers": an address, or a mapping. */
static int read_server(struct cfg__ld *ld, const struct cfg__node *v,
                       struct srv_item *it)
{
    const struct cfg__node *an = v;
    int rc;

    it->s.weight = 1;
    it->s.max_conns = MAX_CONNS_UNSET;
    it->slots = DEFAULT_SLOTS;
    if (v->type == CFG_N_SCALAR) {
        rc = cfg__server_addr(ld, v, &it->s);
    } else if (v->type == CFG_N_MAP) {
        rc = cfg__walk(ld, v, "server", server_fields, ARRAY_LEN(server_fields),
                       it);
        if (rc == 0 && it->addr == NULL)
            return cfg__fail(ld, v, "missing \"address\" in server");
        an = it->addr;
        if (rc == 0)
            rc = it->resolve ? read_name(ld, an, &it->s)
                             : cfg__server_addr(ld, an, &it->s);
    } else {
        return cfg__bad(ld, v, "expected an address, or a mapping with "
                               "address and weight");
    }
    if (rc == 0 && !it->resolve && is_any(&it->s.addr))
        return cfg__bad(ld, an, "%s is not a server address (a server "
                                "needs a real address to connect to)",
                        it->s.addr.text);
    if (rc == 0 && !it->resolve && v->type == CFG_N_MAP &&
        cfg__map_get(v, "max_addresses") != NULL)
        return cfg__fail(ld, cfg__map_get(v, "max_addresses")->key,
                         "\"max_addresses\" needs resolve: true");
    return rc;
}

/* Appends <it> to <u>: one server, or <slots> of them for a name that is
 * re-resolved. */
static int add_server(struct cfg__ld *ld, const struct cfg__node *at,
                      struct cfg_upstream *u, size_t cap,
                      const struct srv_item *it)
{
    unsigned n = it->resolve ? it->slots : 1;
    if (u->nservers + n > cap || u->nservers + n > CFG_MAX_SERVERS)
        return cfg__fail(ld, at, "upstream \"%s\" has more than %d servers "
                                 "(counting max_addresses of each resolved "
                                 "name)", u->name, CFG_MAX_SERVERS);
    for (size_t j = 0; j < u->nservers && !it->resolve; j++)
        if (u->servers[j].host == NULL &&
            cfg__addr_eq(&u->servers[j].addr, &it->s.addr))
            return cfg__fail(ld, at, "server %s is listed twice in "
                                     "upstream \"%s\" (use weight)",
                             it->s.addr.text, u->name);
    unsigned slot0 = (unsigned)u->nservers;
    for (unsigned k = 0; k < n; k++) {
        struct cfg_server *s = &u->servers[u->nservers++];
        *s = it->s;
        if (it->resolve) {
            s->slot = k;
            s->slot0 = slot0;
            s->nslots = n;
        }
    }
    return 0;
}

static int set_servers(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    struct cfg_upstream *u = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    size_t cap = v->n;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next)
        if (it->type == CFG_N_MAP && cfg__map_get(it, "resolve") != NULL)
            cap += CFG_MAX_SERVERS;
    cap = MIN(cap, (size_t)CFG_MAX_SERVERS + 1);
    u->servers = cfg__array(ld, cap, sizeof(*u->servers));
    if (u->servers == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        struct srv_item item = { 0 };
        rc = read_server(ld, it, &item);
        if (rc == 0)
            rc = add_server(ld, it, u, cap, &item);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- balancing ---- */

static int set_balance(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    static const char *const names[] = { "round_robin", "least_conn", "hash",
                                         "random_two", "ewma" };
    static const enum cfg_balance vals[] = {
        CFG_BAL_ROUND_ROBIN, CFG_BAL_LEAST_CONN, CFG_BAL_HASH,
        CFG_BAL_RANDOM_TWO, CFG_BAL_EWMA,
    };
    size_t i;
    int rc = cfg__enum(ld, v, names, ARRAY_LEN(names), &i);
    if (rc == 0)
        ((struct cfg_upstream *)obj)->balance = vals[i];
    return rc;
}

/* RFC 9110 token characters (field and cookie names). */
static bool is_token(struct str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static int set_hash_key(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_upstream *u = obj;
    static const char *const bad = "expected client, uri, header:<name> or "
                                   "cookie:<name>";
    if (v->type != CFG_N_SCALAR)
        return cfg__bad(ld, v, "%s", bad);
    struct str s = v->val;
    if (str_eq(s, STR_LIT("client"))) {
        u->hash_key = CFG_HK_CLIENT;
        return 0;
    }
    if (str_eq(s, STR_LIT("uri"))) {
        u->hash_key = CFG_HK_URI;
        return 0;
    }
    struct str name;
    if (str_has_prefix(s, STR_LIT("header:"))) {
        u->hash_key = CFG_HK_HEADER;
        name = str_make(s.p + 7, s.len - 7);
    } else if (str_has_prefix(s, STR_LIT("cookie:"))) {
        u->hash_key = CFG_HK_COOKIE;
        name = str_make(s.p + 7, s.len - 7);
    } else {
        return cfg__bad(ld, v, "%s", bad);
    }
    if (!is_token(name))
        return cfg__bad(ld, v, "\"%s\" is not a valid %s name", name.p,
                        u->hash_key == CFG_HK_HEADER ? "field" : "cookie");
    u->hash_name = name.p; /* NUL-terminated: the rest of the scalar */
    return 0;
}

/* ---- health ---- */

/* "200", "200-399". */
static int set_status_range(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj)
{
    struct cfg_health *h = obj;
    static const char *const bad = "expected a status such as 200 or a "
                                   "range such as 200-399 (100..599)";
    if (v->type != CFG_N_SCALAR)
        return cfg__bad(ld, v, "%s", bad);
    struct str s = v->val;
    const char *dash = memchr(s.p, '-', s.len);
    uint64_t lo, hi;
    if (dash == NULL) {
        if (!cfg__num(s, 100, 599, &lo))
            return cfg__bad(ld, v, "%s", bad);
        hi = lo;
    } else if (!cfg__num(str_make(s.p, (size_t)(dash - s.p)), 100, 599, &lo) ||
               !cfg__num(str_make(dash + 1, s.len - (size_t)(dash + 1 - s.p)),
                         100, 599, &hi) ||
               lo > hi) {
        return cfg__bad(ld, v, "%s", bad);
    }
    h->status_lo = (int)lo;
    h->status_hi = (int)hi;
    return 0;
}

static int set_health_type(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    static const char *const names[] = { "http", "tcp" };
    size_t i;
    int rc = cfg__enum(ld, v, names, 2, &i);
    if (rc == 0)
        ((struct cfg_health *)obj)->tcp = i == 1;
    return rc;
}

static int set_health_path(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_health *h = obj;
    int rc = cfg__str(ld, v, false, &h->path);
    if (rc != 0)
        return rc;
    if (h->path[0] != '/')
        return cfg__bad(ld, v, "must start with /");
    for (size_t i = 0; i < v->val.len; i++)
        if ((unsigned char)h->path[i] <= ' ' || h->path[i] == 0x7f)
            return cfg__bad(ld, v, "must not contain spaces or control "
                                   "characters");
    return 0;
}

static int set_health_host(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_health *h = obj;
    int rc = cfg__str(ld, v, false, &h->host);
    for (size_t i = 0; rc == 0 && i < v->val.len; i++)
        if ((unsigned char)h->host[i] <= ' ' || h->host[i] == 0x7f)
            return cfg__bad(ld, v, "must not contain spaces or control "
                                   "characters");
    return rc;
}

#define H struct cfg_health
static const struct cfg__field health_fields[] = {
    CFG__F_FN("type", set_health_type),
    CFG__F_FN("path", set_health_path),
    CFG__F_FN("host", set_health_host),
    CFG__F_FN("status", set_status_range),
    CFG__F_MS("interval", H, interval, 10, CFG__DAY),
    CFG__F_MS("timeout", H, timeout, 1, CFG__DAY),
    CFG__F_UINT("rise", H, rise, 1, 100),
    CFG__F_UINT("fall", H, fall, 1, 100),
};
#undef H

/* `key: true`, `key: false` or a mapping read through <fields>. */
static int bool_or_map(struct cfg__ld *ld, const struct cfg__node *v,
                       const char *what, const struct cfg__field *fields,
                       size_t n, void *obj, bool *on)
{
    if (v->type == CFG_N_SCALAR) {
        static const char *const words[] = { "true", "True", "TRUE", "false",
                                             "False", "FALSE" };
        for (size_t i = 0; i < ARRAY_LEN(words); i++)
            if (str_eq(v->val, str_cstr(words[i])))
                return cfg__bool(ld, v, on);
        return cfg__bad(ld, v, "expected true, false or a mapping");
    }
    *on = true;
    return cfg__walk(ld, v, what, fields, n, obj);
}

static int set_health(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_health *h = &((struct cfg_upstream *)obj)->health;
    int rc = bool_or_map(ld, v, "health", health_fields,
                         ARRAY_LEN(health_fields), h, &h->on);
    if (rc != 0)
        return rc;
    if (h->timeout > h->interval)
        return cfg__fail(ld, v, "health \"timeout\" must not be longer than "
                                "its \"interval\"");
    if (h->tcp && (cfg__map_get(v, "path") || cfg__map_get(v, "status") ||
                   cfg__map_get(v, "host")))
        return cfg__fail(ld, v, "a tcp health check has no path, host or "
                                "status");
    return 0;
}

/* ---- passive checks ---- */

#define P struct cfg_passive
static const struct cfg__field passive_fields[] = {
    CFG__F_UINT("failures", P, failures, 1, 1000),
    CFG__F_MS("window", P, window, 1, CFG__DAY),
    CFG__F_MS("eject", P, eject, 1, CFG__DAY),
    CFG__F_MS("eject_max", P, eject_max, 1, CFG__DAY),
    CFG__F_BOOL("status_5xx", P, status_5xx),
};
#undef P

static int set_passive(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    struct cfg_passive *p = &((struct cfg_upstream *)obj)->passive;
    int rc = bool_or_map(ld, v, "passive", passive_fields,
                         ARRAY_LEN(passive_fields), p, &p->on);
    if (rc == 0 && p->eject_max < p->eject)
        return cfg__fail(ld, v, "passive \"eject_max\" must not be shorter "
                                "than \"eject\"");
    return rc;
}

/* ---- retries ---- */

/* "20%" (0..100). */
static int set_budget(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_retries *r = obj;
    uint64_t n;
    if (v->type != CFG_N_SCALAR || v->val.len < 2 ||
        v->val.p[v->val.len - 1] != '%' ||
        !cfg__num(str_make(v->val.p, v->val.len - 1), 0, 100, &n))
        return cfg__bad(ld, v, "expected a percentage such as 20%%");
    r->budget_pct = (unsigned)n;
    return 0;
}

#define R struct cfg_retries
static const struct cfg__field retries_fields[] = {
    CFG__F_UINT("tries", R, tries, 0, CFG_MAX_SERVERS),
    CFG__F_FN("budget", set_budget),
    CFG__F_UINT("budget_min", R, budget_min, 0, 1000000),
};
#undef R

static int set_retries(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    return cfg__walk(ld, v, "retries", retries_fields,
                     ARRAY_LEN(retries_fields),
                     &((struct cfg_upstream *)obj)->retries);
}

/* ---- sticky ---- */

static int set_sticky_cookie(struct cfg__ld *ld, const struct cfg__node *v,
                             void *obj)
{
    struct cfg_sticky *s = obj;
    int rc = cfg__str(ld, v, false, &s->cookie);
    if (rc == 0 && !is_token(v->val))
        return cfg__bad(ld, v, "\"%s\" is not a valid cookie name", s->cookie);
    return rc;
}

static int set_sticky_path(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_sticky *s = obj;
    int rc = cfg__str(ld, v, false, &s->path);
    if (rc != 0)
        return rc;
    if (s->path[0] != '/')
        return cfg__bad(ld, v, "must start with /");
    for (size_t i = 0; i < v->val.len; i++)
        if ((unsigned char)s->path[i] <= ' ' || s->path[i] == ';' ||
            s->path[i] == 0x7f)
            return cfg__bad(ld, v, "must not contain spaces, ';' or control "
                                   "characters");
    return 0;
}

static int set_sticky_learn(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj)
{
    struct cfg_sticky *s = obj;
    int rc = cfg__str(ld, v, false, &s->learn);
    if (rc == 0 && !is_token(v->val))
        return cfg__bad(ld, v, "\"%s\" is not a valid cookie name", s->learn);
    if (rc == 0)
        s->by = CFG_STICK_LEARN;
    return rc;
}

static int set_sticky_by(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    static const char *const names[] = { "cookie", "source" };
    struct cfg_sticky *s = obj;
    size_t i;
    int rc = cfg__enum(ld, v, names, ARRAY_LEN(names), &i);
    if (rc == 0 && i == 1)
        s->by = CFG_STICK_SOURCE;
    return rc;
}

#define K struct cfg_sticky
static const struct cfg__field sticky_fields[] = {
    CFG__F_FN("cookie", set_sticky_cookie),
    CFG__F_FN("path", set_sticky_path),
    CFG__F_MS("max_age", K, max_age, 1000, 3650 * CFG__DAY),
    CFG__F_FN("learn", set_sticky_learn),
    CFG__F_FN("by", set_sticky_by),
    CFG__F_MS("expire", K, expire, 1000, 30 * CFG__DAY),
    CFG__F_UINT("size", K, size, 1, 10000000),
};
#undef K

/* One way to stick per pool: the proxy's cookie (cookie, path, max_age),
 * the application's cookie (learn) or the client address (by: source);
 * the table's keys (expire, size) only with the last two. */
static int sticky_check(struct cfg__ld *ld, const struct cfg__node *v,
                        struct cfg_sticky *s)
{
    const struct cfg__node *by = cfg__map_get(v, "by");
    bool proxy_keys = cfg__map_get(v, "cookie") || cfg__map_get(v, "path") ||
                      cfg__map_get(v, "max_age");
    if (s->learn != NULL && by != NULL)
        return cfg__fail(ld, by, "sticky \"by\" cannot be combined with "
                                 "\"learn\" (learn is by the application's "
                                 "cookie)");
    if (s->by != CFG_STICK_COOKIE && proxy_keys)
        return cfg__fail(ld, v, "sticky \"%s\" uses no proxy cookie: "
                                "\"cookie\", \"path\" and \"max_age\" do not "
                                "apply", s->learn != NULL ? "learn" : "by: source");
    if (s->by == CFG_STICK_COOKIE &&
        (cfg__map_get(v, "expire") || cfg__map_get(v, "size")))
        return cfg__fail(ld, v, "sticky \"expire\" and \"size\" are for the "
                                "table (\"learn\" or \"by: source\"), not "
                                "the proxy cookie");
    return 0;
}

static int set_sticky(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_sticky *s = &((struct cfg_upstream *)obj)->sticky;
    bool on = false;
    int rc = bool_or_map(ld, v, "sticky", sticky_fields,
                         ARRAY_LEN(sticky_fields), s, &on);
    if (rc == 0 && on)
        rc = sticky_check(ld, v, s);
    if (rc == 0 && on && s->cookie == NULL && s->by == CFG_STICK_COOKIE)
        s->cookie = "GH_SRV";
    if (rc == 0 && !on) {
        s->cookie = NULL;
        s->learn = NULL;
        s->by = CFG_STICK_COOKIE;
    }
    return rc;
}

/* ---- queue ---- */

#define U struct cfg_upstream
static const struct cfg__field queue_fields[] = {
    CFG__F_UINT("size", U, queue, 0, 1000000),
    CFG__F_MS("timeout", U, queue_timeout, 1, CFG__DAY),
    CFG__F_MS("retry_after", U, retry_after, 1000, CFG__DAY),
};
#undef U

static int set_queue(struct cfg__ld *ld, const struct cfg__node *v,
                     void *obj)
{
    return cfg__walk(ld, v, "queue", queue_fields, ARRAY_LEN(queue_fields),
                     obj);
}

/* ---- resolver ---- */

static int set_dns_servers(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_resolve *r = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    r->servers = cfg__array(ld, v->n, sizeof(*r->servers));
    if (r->servers == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        rc = cfg__addr(ld, it, &r->servers[r->nservers]);
        if (rc != 0)
            return rc;
        r->nservers++;
    }
    return 0;
}

#define D struct cfg_resolve
static const struct cfg__field resolver_fields[] = {
    CFG__F_FN("servers", set_dns_servers),
    CFG__F_MS("min_ttl", D, min_ttl, 100, CFG__DAY),
    CFG__F_MS("max_ttl", D, max_ttl, 100, CFG__DAY),
};
#undef D

static int set_resolver(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_resolve *r = &((struct cfg_upstream *)obj)->resolve;
    int rc = cfg__walk(ld, v, "resolver", resolver_fields,
                       ARRAY_LEN(resolver_fields), r);
    if (rc == 0 && r->max_ttl < r->min_ttl)
        return cfg__fail(ld, v, "resolver \"max_ttl\" must not be shorter "
                                "than \"min_ttl\"");
    return rc;
}

/* ---- the upstream ---- */

#define U struct cfg_upstream
static int set_ups_proxy_protocol(struct cfg__ld *ld,
                                  const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "off", "v1", "v2" };
    size_t i;
    int rc = cfg__enum(ld, v, names, 3, &i);
    if (rc == 0)
        ((struct cfg_upstream *)obj)->proxy_protocol = (int)i;
    return rc;
}

static const struct cfg__field upstream_fields[] = {
    CFG__F_FN("servers", set_servers),
    CFG__F_FN("balance", set_balance),
    CFG__F_MS("connect_timeout", U, connect_timeout, 1, CFG__DAY),
    CFG__F_MS("read_timeout", U, read_timeout, 1, CFG__DAY),
    CFG__F_MS("send_timeout", U, send_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive", U, keepalive, 0, 10000),
    CFG__F_MS("keepalive_timeout", U, keepalive_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive_requests", U, keepalive_requests, 1, 1000000000),
    CFG__F_FN("hash_key", set_hash_key),
    CFG__F_MS("ewma_decay", U, ewma_decay, 10, CFG__DAY),
    CFG__F_MS("slow_start", U, slow_start, 0, CFG__DAY),
    CFG__F_UINT("max_conns", U, max_conns, 0, 1000000),
    CFG__F_FN("queue", set_queue),
    CFG__F_FN("health", set_health),
    CFG__F_FN("passive", set_passive),
    CFG__F_FN("retries", set_retries),
    CFG__F_FN("sticky", set_sticky),
    CFG__F_FN("resolver", set_resolver),
    CFG__F_FN("proxy_protocol", set_ups_proxy_protocol),
    CFG__F_FN("tls", cfg__upstream_tls),
    CFG__F_FN("ajp", cfg__upstream_ajp),
    CFG__F_FN("protocol", cfg__upstream_protocol),
};
#undef U

static void upstream_defaults(struct cfg_upstream *u)
{
    u->balance = CFG_BAL_ROUND_ROBIN;
    u->connect_timeout = 5 * CFG__SEC;
    u->read_timeout = 60 * CFG__SEC;
    u->send_timeout = 60 * CFG__SEC;
    u->keepalive = 32;
    u->keepalive_timeout = 60 * CFG__SEC;
    u->keepalive_requests = 10000;
    cfg__upstream_web_defaults(u);
    u->hash_key = CFG_HK_CLIENT;
    u->ewma_decay = 10 * CFG__SEC;
    u->queue_timeout = 5 * CFG__SEC;
    u->retry_after = 1 * CFG__SEC;
    u->health = (struct cfg_health){ .path = "/", .status_lo = 200,
                                     .status_hi = 399,
                                     .interval = 2 * CFG__SEC,
                                     .timeout = 1 * CFG__SEC, .rise = 2,
                                     .fall = 3 };
    u->passive = (struct cfg_passive){ .failures = 3,
                                       .window = 10 * CFG__SEC,
                                       .eject = 10 * CFG__SEC,
                                       .eject_max = 300 * CFG__SEC,
                                       .status_5xx = true };
    u->retries = (struct cfg_retries){ .tries = 0, .budget_pct = 20,
                                       .budget_min = 10 };
    u->sticky.path = "/";
    u->sticky.expire = 30 * 60 * CFG__SEC;
    u->sticky.size = 100000;
    u->resolve.min_ttl = 1 * CFG__SEC;
    u->resolve.max_ttl = 3600 * CFG__SEC;
}

static int check_name(struct cfg__ld *ld, const struct cfg__node *key)
{
    struct str s = key->val;
    bool ok = s.len > 0 && s.len <= 64;
    for (size_t i = 0; ok && i < s.len; i++) {
        char ch = s.p[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
             (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
    }
    if (!ok)
        return cfg__fail(ld, key, "upstream name \"%s\" must be 1..64 letters, "
                                  "digits, '_', '-' or '.'", s.p);
    return 0;
}

/* The checks that involve several keys of one upstream. */
static int check_upstream(struct cfg__ld *ld, const struct cfg__node *m,
                          struct cfg_upstream *u)
{
    if (u->nservers == 0)
        return cfg__fail(ld, m->key, "upstream \"%s\" has no servers", u->name);
    const struct cfg__node *hk = cfg__map_get(m, "hash_key");
    if (hk != NULL && u->balance != CFG_BAL_HASH)
        return cfg__fail(ld, hk->key, "\"hash_key\" is used only with "
                                      "balance: hash");
    bool primary = false, resolve = false;
    for (size_t i = 0; i < u->nservers; i++) {
        struct cfg_server *s = &u->servers[i];
        if (s->max_conns == MAX_CONNS_UNSET)
            s->max_conns = u->max_conns;
        primary |= !s->backup;
        resolve |= s->host != NULL;
    }
    if (!primary)
        return cfg__fail(ld, m->key, "every server of upstream \"%s\" is a "
                                     "backup (at least one must not be)",
                         u->name);
    const struct cfg__node *q = cfg__map_get(m, "queue");
    if (q != NULL && u->queue > 0) {
        bool limited = false;
        for (size_t i = 0; i < u->nservers; i++)
            limited |= u->servers[i].max_conns > 0;
        if (!limited)
            return cfg__fail(ld, q->key, "a queue needs max_conns on the "
                                         "servers (nothing would ever wait)");
    }
    const struct cfg__node *r = cfg__map_get(m, "resolver");
    if (r != NULL && !resolve)
        return cfg__fail(ld, r->key, "\"resolver\" is used only by servers "
                                     "with resolve: true");
    return 0;
}

int cfg__upstreams(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__want(ld, v, CFG_N_MAP);
    if (rc != 0)
        return rc;
    c->upstreams = cfg__array(ld, v->n, sizeof(*c->upstreams));
    if (c->upstreams == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        struct cfg_upstream *u = &c->upstreams[c->nupstreams];
        upstream_defaults(u);
        u->name = it->key->val.p;
        rc = check_name(ld, it->key);
        if (rc == 0)
            rc = cfg__walk(ld, it, "upstream", upstream_fields,
                           ARRAY_LEN(upstream_fields), u);
        if (rc == 0)
            rc = check_upstream(ld, it, u);
        if (rc == 0)
            rc = cfg__upstream_web_check(ld, it, u);
        if (rc == 0)
            rc = cfg__upstream_h2_check(ld, it, u);
        if (rc == 0 && u->tls != NULL)
            rc = cfg__upstream_tls_build(ld, it, u);
        if (rc != 0)
            return rc;
        c->nupstreams++;
    }
    return 0;
}
