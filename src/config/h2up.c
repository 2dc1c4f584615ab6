/*
 * The upstream key "protocol" (docs/tls.md, "HTTP/2 to upstream
 * servers"): what the pool's HTTP servers speak, "http/1.1" (default) or
 * "h2" (HTTP/2 with prior knowledge on http:// servers, ALPN "h2" on TLS
 * ones), for gRPC.
 */
#include "config/config_int.h"

int cfg__upstream_protocol(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "http/1.1", "h2" };
    size_t i;
    int rc = cfg__enum(ld, v, names, 2, &i);
    if (rc == 0)
        ((struct cfg_upstream *)obj)->h2 = i == 1;
    return rc;
}

int cfg__upstream_h2_check(struct cfg__ld *ld, const struct cfg__node *v,
                           struct cfg_upstream *u)
{
    const struct cfg__node *pn = cfg__map_get(v, "protocol");
    if (!u->h2)
        return 0;
    if (u->proto == CFG_PROTO_AJP)
        return cfg__bad(ld, pn, "h2 is for HTTP servers, not ajp:// ones");
    const struct cfg__node *pp = cfg__map_get(v, "proxy_protocol");
    if (u->proxy_protocol != 0)
        return cfg__fail(ld, pp != NULL ? pp->key : pn->key,
                         "\"proxy_protocol\" is not available with protocol: h2");
    const struct cfg__node *h = cfg__map_get(v, "health");
    if (u->health.on && !u->health.tcp)
        return cfg__fail(ld, h != NULL ? h->key : pn->key,
                         "an HTTP/1.1 health check cannot talk to an h2 "
                         "server: use health: { type: tcp }");
    if (u->tls != NULL)
        u->tls->alpn_h2 = true; /* before the client context is built */
    return 0;
}
