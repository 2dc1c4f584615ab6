/*
 * The top-level "dns:" mapping: how forward destinations are resolved
 * (src/upstream/dns.c). Server addresses are kept as the c-ares "host:port"
 * list they become; an IP address is required (a resolver cannot need a
 * resolver).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config_int.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int set_servers(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    struct cfg_dns *d = obj;
    char why[320];
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one server (leave it out "
                               "to use /etc/resolv.conf)");
    size_t cap = v->n * 72 + 1, off = 0;
    char *csv = cfg__alloc(ld, cap);
    if (csv == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        struct cfg_addr a;
        bool name = false;
        if (it->type == CFG_N_SCALAR) {
            for (size_t i = 0; i < it->val.len && !name; i++) {
                char c = it->val.p[i];
                name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            }
            if (it->val.len > 0 && it->val.p[0] == '[')
                name = false;
        }
        if (it->type != CFG_N_SCALAR || name ||
            cfg__parse_addr(it->val, &a, why, sizeof(why)) != 0)
            return cfg__bad(ld, it, "expected an IP address and port such as "
                                    "192.0.2.53:53 or [2001:db8::53]:53");
        int w = snprintf(csv + off, cap - off, "%s%s", off ? "," : "", a.text);
        if (w < 0 || (size_t)w >= cap - off)
            return cfg__bad(ld, it, "too long");
        off += (size_t)w;
    }
    d->servers = csv;
    return 0;
}

static int set_hosts(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__str(ld, v, false, &((struct cfg_dns *)obj)->hosts);
}

#define D struct cfg_dns
static const struct cfg__field dns_fields[] = {
    CFG__F_FN("servers", set_servers),
    CFG__F_FN("hosts", set_hosts),
    CFG__F_MS("timeout", D, timeout, 100, 60 * CFG__SEC),
    CFG__F_UINT("cache_size", D, cache_size, 0, 1000000),
    CFG__F_MS("min_ttl", D, min_ttl, 0, CFG__DAY),
    CFG__F_MS("max_ttl", D, max_ttl, 0, 7 * CFG__DAY),
    CFG__F_MS("negative_ttl", D, negative_ttl, 0, CFG__DAY),
};
#undef D

void cfg__dns_defaults(struct cfg_dns *d)
{
    *d = (struct cfg_dns){
        .servers = NULL,
        .hosts = "/etc/hosts",
        .timeout = 5 * CFG__SEC,
        .cache_size = 4096,
        .min_ttl = 1 * CFG__SEC,
        .max_ttl = 3600 * CFG__SEC,
        .negative_ttl = 5 * CFG__SEC,
    };
}

int cfg__dns(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__walk(ld, v, "dns", dns_fields, NFIELDS(dns_fields), &c->dns);
    if (rc != 0)
        return rc;
    if (c->dns.min_ttl > c->dns.max_ttl)
        return cfg__fail(ld, v, "dns: min_ttl must not exceed max_ttl");
    return 0;
}
