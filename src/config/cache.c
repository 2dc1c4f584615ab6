/*
 * The "cache" section and the "cache" key of routes.
 *
 *   cache:                       # optional; defaults shown
 *     memory: 256MiB
 *     max_object: 8MiB           # memory/32, at most 8MiB
 *     disk: { path: /var/cache/gatehouse, size: 1GiB, sync: false }
 *     heuristic: 10              # % of (Date - Last-Modified), RFC 9111 §4.2.2
 *     heuristic_max: 1d
 *     purge: { allow: [127.0.0.0/8, ::1] }
 *   routes:
 *     - { path: /static/, upstream: was, cache: true }
 *     - { path: /news/, upstream: was,
 *         cache: { stale_while_revalidate: 10s, stale_if_error: 1h, collapse: true } }
 *
 * A route with "cache" and no top-level section gets the defaults. The
 * store's size is fixed when the process starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "config/config_int.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

void cfg__cache_defaults(struct cfg *c)
{
    struct cfg_cache *cc = &c->cache;
    memset(cc, 0, sizeof(*cc));
    cc->memory = 256 * CFG__MIB;
    cc->max_object = 0; /* derived in cfg__cache_finish */
    cc->disk_size = CFG__GIB;
    cc->heuristic_pct = 10;
    cc->heuristic_max = CFG__DAY;
}

/* ---- address blocks ---- */

static int parse_net(struct str s, struct cfg_cache_net *n)
{
    char buf[64];
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash ? (size_t)(slash - s.p) : s.len;
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s.p, alen);
    buf[alen] = '\0';
    memset(n, 0, sizeof(*n));
    unsigned max;
    if (inet_pton(AF_INET, buf, n->addr) == 1) {
        n->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
        n->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    n->bits = max;
    if (slash != NULL) {
        uint64_t b;
        if (!cfg__num(str_make(slash + 1, s.len - alen - 1), 0, max, &b))
            return -EINVAL;
        n->bits = (unsigned)b;
    }
    /* host bits must be zero: 10.0.0.1/8 is a typo for something */
    for (unsigned i = n->bits; i < max; i++)
        if (n->addr[i / 8] & (0x80u >> (i % 8)))
            return -EINVAL;
    return 0;
}

static bool net_match(const struct cfg_cache_net *n, const unsigned char *a)
{
    unsigned full = n->bits / 8, rest = n->bits % 8;
    if (memcmp(n->addr, a, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (n->addr[full] & mask) == (a[full] & mask);
}

bool cfg_cache_purge_allowed(const struct cfg_cache *cc, const struct sockaddr *sa)
{
    unsigned char a4[4];
    const unsigned char *a6 = NULL;
    bool v4 = false;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        v4 = true;
    } else if (sa->sa_family == AF_INET6) {
        a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(a6, mapped, 12) == 0) { /* ::ffff:a.b.c.d */
            memcpy(a4, a6 + 12, 4);
            v4 = true;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < cc->npurge_allow; i++) {
        const struct cfg_cache_net *n = &cc->purge_allow[i];
        if (n->family == AF_INET && v4 && net_match(n, a4))
            return true;
        if (n->family == AF_INET6 && a6 != NULL && net_match(n, a6))
            return true;
    }
    return false;
}

static int set_purge_allow(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_cache *cc = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    cc->purge_allow = cfg__array(ld, v->n ? v->n : 1, sizeof(*cc->purge_allow));
    if (cc->purge_allow == NULL)
        return -ENOMEM;
    cc->npurge_allow = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        if (it->type != CFG_N_SCALAR ||
            parse_net(it->val, &cc->purge_allow[cc->npurge_allow]) != 0)
            return cfg__fail(ld, it, "expected an address or a block such as "
                                     "127.0.0.1, 10.0.0.0/8 or ::1/128 (host "
                                     "bits zero)");
        cc->npurge_allow++;
    }
    return 0;
}

static const struct cfg__field purge_fields[] = {
    CFG__F_FN("allow", set_purge_allow),
};

static int set_purge(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__walk(ld, v, "purge", purge_fields, NFIELDS(purge_fields), obj);
}

/* ---- disk ---- */

static int set_disk_path(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__str(ld, v, false, &((struct cfg_cache *)obj)->disk_path);
}

#define C struct cfg_cache
static const struct cfg__field disk_fields[] = {
    CFG__F_FN("path", set_disk_path),
    CFG__F_SIZE64("size", C, disk_size, CFG__MIB, UINT64_MAX / 2),
    CFG__F_BOOL("sync", C, disk_sync),
};

static int set_disk(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_cache *cc = obj;
    int rc = cfg__walk(ld, v, "disk", disk_fields, NFIELDS(disk_fields), cc);
    if (rc == 0 && cc->disk_path == NULL)
        return cfg__fail(ld, v, "missing \"path\" in disk");
    return rc;
}

static const struct cfg__field cache_fields[] = {
    CFG__F_SIZE64("memory", C, memory, CFG__MIB, UINT64_MAX / 2),
    CFG__F_SIZE64("max_object", C, max_object, 1, UINT64_MAX / 2),
    CFG__F_FN("disk", set_disk),
    CFG__F_UINT("heuristic", C, heuristic_pct, 0, 100),
    CFG__F_MS("heuristic_max", C, heuristic_max, 0, 365 * CFG__DAY),
    CFG__F_FN("purge", set_purge),
};
#undef C

int cfg__cache(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__walk(ld, v, "cache", cache_fields, NFIELDS(cache_fields), &c->cache);
    if (rc == 0)
        c->cache.enabled = true;
    return rc;
}

/* ---- policies ---- */

#define P struct cfg_cache_policy
static const struct cfg__field policy_fields[] = {
    CFG__F_BOOL("collapse", P, collapse),
    CFG__F_MS("stale_while_revalidate", P, swr, 0, 365 * CFG__DAY),
    CFG__F_MS("stale_if_error", P, sie, 0, 365 * CFG__DAY),
};
#undef P

int cfg__cache_policy(struct cfg__ld *ld, const struct cfg__node *v,
                      const struct cfg_cache_policy **out)
{
    *out = NULL;
    if (v->type == CFG_N_SCALAR) {
        static const char *const bools[] = { "true", "True", "TRUE",
                                             "false", "False", "FALSE" };
        bool known = false, on = false;
        for (size_t i = 0; i < NFIELDS(bools); i++)
            if (str_eq(v->val, str_cstr(bools[i]))) {
                known = true;
                on = i < 3;
            }
        if (!known)
            return cfg__bad(ld, v, "expected true, false, or a mapping with "
                                   "collapse, stale_while_revalidate, "
                                   "stale_if_error");
        if (!on)
            return 0;
    }
    struct cfg_cache_policy *p = cfg__alloc(ld, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->collapse = true;
    if (v->type != CFG_N_SCALAR) {
        int rc = cfg__walk(ld, v, "cache", policy_fields, NFIELDS(policy_fields), p);
        if (rc != 0)
            return rc;
    }
    *out = p;
    ld->c->cache.enabled = true;
    return 0;
}

int cfg__route_cache(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__cache_policy(ld, v, &((struct cfg_route *)obj)->cache);
}

/* ---- checks ---- */

static const struct cfg__node *item(const struct cfg__node *seq, size_t i)
{
    const struct cfg__node *it = seq != NULL ? seq->head : NULL;
    while (it != NULL && i-- > 0)
        it = it->next;
    return it;
}

/* A route that answers by itself has nothing to cache. */
static int check_routes(struct cfg__ld *ld)
{
    const struct cfg *c = ld->c;
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct cfg__node *ln = item(ld->listeners, i);
        const struct cfg_listener *l = &c->listeners[i];
        for (size_t j = 0; j < l->nsites; j++) {
            const struct cfg__node *sn = item(cfg__map_get(ln, "sites"), j);
            const struct cfg_site *s = &l->sites[j];
            for (size_t k = 0; k < s->nroutes; k++) {
                const struct cfg_route *r = &s->routes[k];
                if (r->cache == NULL || r->action == CFG_ACT_PROXY)
                    continue;
                const struct cfg__node *rn = item(cfg__map_get(sn, "routes"), k);
                return cfg__bad(ld, cfg__map_get(rn, "cache"),
                                "route %s answers with \"return\": there is "
                                "nothing to cache", r->path);
            }
        }
    }
    return 0;
}

int cfg__cache_finish(struct cfg__ld *ld, const struct cfg__node *root)
{
    struct cfg_cache *cc = &ld->c->cache;
    const struct cfg__node *cn = cfg__map_get(root, "cache");
    uint64_t shard = cc->memory / cache_shards(cc->memory);
    if (cc->max_object == 0) {
        cc->max_object = cc->memory / 32;
        if (cc->max_object > 8 * CFG__MIB)
            cc->max_object = 8 * CFG__MIB;
    } else if (cc->max_object > shard) {
        char b[32];
        cfg__fmt_size(shard, b, sizeof(b));
        return cfg__bad(ld, cfg__map_get(cn, "max_object"),
                        "must not exceed %s (the memory is split into %u "
                        "parts and an object must fit in one)", b,
                        cache_shards(cc->memory));
    }
    if (cc->purge_allow == NULL) {
        static const char *const loop[] = { "127.0.0.0/8", "::1/128" };
        cc->purge_allow = cfg__array(ld, 2, sizeof(*cc->purge_allow));
        if (cc->purge_allow == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < 2; i++)
            parse_net(str_cstr(loop[i]), &cc->purge_allow[cc->npurge_allow++]);
    }
    return check_routes(ld);
}
