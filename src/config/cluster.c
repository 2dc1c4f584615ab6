/*
 * The "cluster" section: what a node needs to work beside others behind an
 * L4 balancer (docs/cluster.md).
 *
 *   cluster:
 *     drain_delay: 3s            # keep accepting after /healthz turns 503
 *     redis: 10.77.0.9:6379      # or { address, password, prefix,
 *                                #      timeout, reconnect_max }
 */
#include <errno.h>
#include <string.h>

#include "config/config_int.h"

static int set_redis_address(struct cfg__ld *ld, const struct cfg__node *v,
                             void *obj)
{
    return cfg__addr(ld, v, &((struct cfg_redis *)obj)->addr);
}

static int set_redis_password(struct cfg__ld *ld, const struct cfg__node *v,
                              void *obj)
{
    return cfg__str(ld, v, false, &((struct cfg_redis *)obj)->password);
}

static int set_redis_prefix(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj)
{
    struct cfg_redis *r = obj;
    int rc = cfg__str(ld, v, true, &r->prefix);
    if (rc == 0 && v->val.len > 64)
        return cfg__bad(ld, v, "must be at most 64 bytes");
    for (size_t i = 0; rc == 0 && i < v->val.len; i++) {
        unsigned char ch = (unsigned char)v->val.p[i];
        if (ch <= ' ' || ch >= 0x7f)
            return cfg__bad(ld, v, "must be printable ASCII without spaces");
    }
    return rc;
}

#define R struct cfg_redis
static const struct cfg__field redis_fields[] = {
    CFG__F_FN("address", set_redis_address),
    CFG__F_FN("password", set_redis_password),
    CFG__F_FN("prefix", set_redis_prefix),
    CFG__F_MS("timeout", R, timeout, 1, 60 * CFG__SEC),
    CFG__F_MS("reconnect_max", R, reconnect_max, 10, 3600 * CFG__SEC),
};
#undef R

static int set_redis(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_redis *r = obj;
    int rc;

    if (v->type == CFG_N_SCALAR) {
        rc = cfg__addr(ld, v, &r->addr);
    } else if (v->type == CFG_N_MAP) {
        rc = cfg__walk(ld, v, "redis", redis_fields,
                       sizeof(redis_fields) / sizeof(redis_fields[0]), r);
        if (rc == 0 && r->addr.len == 0)
            return cfg__fail(ld, v, "missing \"address\" in redis");
    } else {
        return cfg__bad(ld, v, "expected host:port, or a mapping with "
                               "address, password, prefix, timeout and "
                               "reconnect_max");
    }
    if (rc != 0)
        return rc;
    if (r->timeout > r->reconnect_max)
        return cfg__bad(ld, v, "timeout must not exceed reconnect_max");
    r->enabled = true;
    return 0;
}

static const struct cfg__field cluster_fields[] = {
    CFG__F_FN("redis", set_redis),
    CFG__F_MS("drain_delay", struct cfg_cluster, drain_delay, 0,
              3600 * CFG__SEC),
};

void cfg__cluster_defaults(struct cfg_cluster *c)
{
    memset(c, 0, sizeof(*c));
    c->redis.prefix = "gh:";
    c->redis.timeout = 200;
    c->redis.reconnect_max = 5 * CFG__SEC;
    c->drain_delay = 0;
}

int cfg__cluster(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    return cfg__walk(ld, v, "cluster", cluster_fields,
                     sizeof(cluster_fields) / sizeof(cluster_fields[0]),
                     &c->cluster);
}
