/*
 * Listeners, their sites and routes, and the checks that span them.
 *
 * Most mistakes in a proxy configuration are not bad values but bad
 * combinations: a route naming an upstream that is not defined, two sites
 * claiming the same host, two defaults, two listeners on one address, a
 * route that can never match because an identical one precedes it. Each is
 * refused here at the position of the second, offending, node, so that what
 * the proxy gets is a table it can follow without second-guessing.
 *
 * The upstreams are already loaded when this runs (load.c reads listeners
 * last), so a route resolves its upstream name to a pointer at once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

#define TYPE_DEFAULT "text/plain; charset=utf-8"
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- routes ---- */

/* True when a segment of <p> is "." or "..": the proxy removes those from
 * request paths before matching, so such a route could never match. */
static bool has_dot_segment(struct str p)
{
    for (size_t i = 0; i < p.len; i++) {
        if (p.p[i] != '/')
            continue;
        size_t j = i + 1;
        while (j < p.len && p.p[j] == '.')
            j++;
        if ((j == i + 2 || j == i + 3) && (j == p.len || p.p[j] == '/'))
            return true;
    }
    return false;
}

static int route_path(struct cfg__ld *ld, const struct cfg__node *v,
                      struct cfg_route *r, bool exact)
{
    if (r->path != NULL)
        return cfg__bad(ld, v, "use \"path\" or \"exact\", not both");
    int rc = cfg__str(ld, v, false, &r->path);
    if (rc != 0)
        return rc;
    if (v->val.p[0] != '/')
        return cfg__bad(ld, v, "must start with \"/\"");
    for (size_t i = 0; i < v->val.len; i++) {
        unsigned char c = (unsigned char)v->val.p[i];
        if (c <= ' ' || c == 0x7f)
            return cfg__bad(ld, v, "must not contain spaces or control "
                                   "characters");
        if (c == '?' || c == '#')
            return cfg__bad(ld, v, "must not contain \"?\" or \"#\" (routes "
                                   "match the path only)");
    }
    if (has_dot_segment(v->val))
        return cfg__bad(ld, v, "must not contain \".\" or \"..\" segments "
                               "(request paths are matched without them)");
    r->path_len = v->val.len;
    r->exact = exact;
    return 0;
}

static int set_path(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return route_path(ld, v, obj, false);
}

static int set_exact(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return route_path(ld, v, obj, true);
}

static int no_upstream(struct cfg__ld *ld, const struct cfg__node *v)
{
    const struct cfg *c = ld->c;
    char list[256] = "";
    size_t off = 0;

    if (c->nupstreams == 0)
        return cfg__bad(ld, v, "no upstream named \"%s\" (none are defined "
                               "under \"upstreams\")", v->val.p);
    for (size_t i = 0; i < c->nupstreams && off < sizeof(list); i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s",
                         i ? ", " : "", c->upstreams[i].name);
        off += w > 0 ? (size_t)w : 0;
    }
    return cfg__bad(ld, v, "no upstream named \"%s\" (defined: %s)", v->val.p,
                    list);
}

static int set_upstream(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_route *r = obj;
    const struct cfg *c = ld->c;

    if (r->action == CFG_ACT_RETURN)
        return cfg__bad(ld, v, "use \"upstream\" or \"return\", not both");
    if (r->action == CFG_ACT_STATIC)
        return cfg__bad(ld, v, "use only one of \"upstream\", \"return\" "
                               "and \"static\"");
    int rc = cfg__want(ld, v, CFG_N_SCALAR);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (str_eq(v->val, str_cstr(c->upstreams[i].name))) {
            r->action = CFG_ACT_PROXY;
            r->upstream = &c->upstreams[i];
            return 0;
        }
    }
    return no_upstream(ld, v);
}

static int set_ret_body(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_route *r = obj;
    int rc = cfg__want(ld, v, CFG_N_SCALAR);
    if (rc == 0) {
        r->ret_body = v->val.p;
        r->ret_body_len = v->val.len; /* may hold NULs: sent as is */
    }
    return rc;
}

static int set_ret_type(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_route *r = obj;
    int rc = cfg__str(ld, v, false, &r->ret_type);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < v->val.len; i++) {
        unsigned char c = (unsigned char)v->val.p[i];
        if ((c < ' ' && c != '\t') || c == 0x7f)
            return cfg__bad(ld, v, "must not contain control characters");
    }
    return 0;
}

static const struct cfg__field return_fields[] = {
    CFG__F_INT("status", struct cfg_route, ret_status, 100, 599),
    CFG__F_FN("body", set_ret_body),
    CFG__F_FN("content_type", set_ret_type),
};

static int set_return(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_route *r = obj;

    if (r->upstream != NULL)
        return cfg__bad(ld, v, "use \"upstream\" or \"return\", not both");
    if (r->action == CFG_ACT_STATIC)
        return cfg__bad(ld, v, "use only one of \"upstream\", \"return\" "
                               "and \"static\"");
    r->action = CFG_ACT_RETURN;
    int rc = cfg__walk(ld, v, "return", return_fields, NFIELDS(return_fields),
                       r);
    if (rc != 0)
        return rc;
    if (r->ret_status == 0)
        return cfg__fail(ld, v, "missing \"status\" in return");
    int st = r->ret_status;
    if (r->ret_body_len > 0 && (st < 200 || st == 204 || st == 304))
        return cfg__bad(ld, cfg__map_get(v, "body"),
                        "a %d response cannot have a body", st);
    return 0;
}

static const struct cfg__field route_fields[] = {
    CFG__F_FN("path", set_path),
    CFG__F_FN("exact", set_exact),
    CFG__F_FN("upstream", set_upstream),
    CFG__F_FN("return", set_return),
    CFG__F_SIZE64("max_body", struct cfg_route, max_body, 0, UINT64_MAX),
    CFG__F_FN("cache", cfg__route_cache),
    CFG__F_FN("static", cfg__route_static),
    CFG__F_FN("ext", cfg__route_ext),
    CFG__F_FN("compress", cfg__route_compress),
    CFG__F_FN("rate_limits", cfg__set_route_rates),
};

/* The node of a route's "path" or "exact" value. */
static const struct cfg__node *path_node(const struct cfg__node *route)
{
    const struct cfg__node *p = cfg__map_get(route, "path");
    return p != NULL ? p : cfg__map_get(route, "exact");
}

static int read_route(struct cfg__ld *ld, const struct cfg__node *v,
                      struct cfg_route *r)
{
    r->ret_body = "";
    r->ret_type = TYPE_DEFAULT;
    int rc = cfg__walk(ld, v, "route", route_fields, NFIELDS(route_fields), r);
    if (rc != 0)
        return rc;
    if (r->path == NULL)
        return cfg__fail(ld, v, "missing \"path\" (or \"exact\") in route");
    if (r->upstream == NULL && r->action != CFG_ACT_RETURN &&
        r->action != CFG_ACT_STATIC)
        return cfg__fail(ld, v, "route %s needs \"upstream\", \"return\" "
                                "or \"static\"", r->path);
    return 0;
}

static int set_routes(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_site *s = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    s->routes = cfg__array(ld, v->n, sizeof(*s->routes));
    if (s->routes == NULL)
        return -ENOMEM;
    const struct cfg__node *it = v->head;
    for (size_t i = 0; i < v->n; i++, it = it->next) {
        struct cfg_route *r = &s->routes[i];
        rc = read_route(ld, it, r);
        if (rc != 0)
            return rc;
        const struct cfg__node *prev = v->head;
        for (size_t j = 0; j < i; j++, prev = prev->next) {
            const struct cfg_route *o = &s->routes[j];
            if (o->exact != r->exact || strcmp(o->path, r->path) != 0 ||
                o->nexts != 0 || r->nexts != 0)
                continue;
            const struct cfg__node *pn = path_node(prev);
            return cfg__bad(ld, path_node(it), "route %s is already defined "
                                               "at %u:%u", r->path,
                            pn->line, pn->col);
        }
        s->nroutes++;
    }
    return 0;
}

/* ---- sites ---- */

static bool all_digits(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return len > 0;
}

static bool is_name_char(char c, bool bracketed)
{
    c = ascii_lower(c);
    if (bracketed)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' ||
               c == '.';
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* The host part of a pattern: the text before an optional ":port". */
static bool host_span(struct str s, size_t *end)
{
    const char *colon;

    if (s.len > 0 && s.p[0] == '[') {
        const char *rb = memchr(s.p, ']', s.len);
        if (rb == NULL)
            return false;
        *end = (size_t)(rb - s.p) + 1;
        colon = *end < s.len ? s.p + *end : NULL;
        if (colon != NULL && *colon != ':')
            return false;
    } else {
        colon = memchr(s.p, ':', s.len);
        *end = colon != NULL ? (size_t)(colon - s.p) : s.len;
    }
    return colon == NULL ||
           all_digits(colon + 1, s.len - (size_t)(colon + 1 - s.p));
}

int cfg__host(struct cfg__ld *ld, const struct cfg__node *v, const char **out)
{
    static const char *const bad = "expected a host name such as "
                                   "example.com or *.example.com";
    size_t end = 0, start = 0;

    if (v->type != CFG_N_SCALAR || !host_span(v->val, &end))
        return cfg__bad(ld, v, "%s", bad);
    const char *p = v->val.p;
    bool br = end > 0 && p[0] == '[';
    if (!br && end > 1 && p[end - 1] == '.')
        end--;
    if (str_eq(v->val, STR_LIT("*")))
        return cfg__bad(ld, v, "\"*\" is not a host name: to catch every "
                               "host, give the site \"default: true\"");
    if (end > 2 && p[0] == '*' && p[1] == '.')
        start = 2;
    for (size_t i = start; i < end; i++) {
        if (p[i] == '*')
            return cfg__bad(ld, v, "\"*\" is only allowed as a leading "
                                   "\"*.\", as in *.example.com");
        if (!is_name_char(p[i], br) && !(br && (i == 0 || i == end - 1)))
            return cfg__bad(ld, v, "%s", bad);
    }
    if (end == start || (br && end < 3) || end > 255)
        return cfg__bad(ld, v, "%s", bad);
    char *h = cfg__alloc(ld, end + 1);
    if (h == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < end; i++)
        h[i] = ascii_lower(p[i]);
    *out = h;
    return 0;
}

static int set_host(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_site *s = obj;

    if (s->nhosts > 0)
        return cfg__bad(ld, v, "use \"host\" or \"hosts\", not both");
    s->hosts = cfg__array(ld, 1, sizeof(*s->hosts));
    if (s->hosts == NULL)
        return -ENOMEM;
    int rc = cfg__host(ld, v, &s->hosts[0]);
    if (rc == 0)
        s->nhosts = 1;
    return rc;
}

static int set_hosts(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_site *s = obj;

    if (s->nhosts > 0)
        return cfg__bad(ld, v, "use \"host\" or \"hosts\", not both");
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one host");
    s->hosts = cfg__array(ld, v->n, sizeof(*s->hosts));
    if (s->hosts == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        rc = cfg__host(ld, it, &s->hosts[s->nhosts]);
        if (rc != 0)
            return rc;
        s->nhosts++;
    }
    return 0;
}

static const struct cfg__field site_fields[] = {
    CFG__F_FN("host", set_host),
    CFG__F_FN("hosts", set_hosts),
    CFG__F_BOOL("default", struct cfg_site, is_default),
    CFG__F_FN("routes", set_routes),
    CFG__F_FN("redirect_https", cfg__redirect_https),
    CFG__F_FN("hsts", cfg__hsts),
};

/* The node of host <k> of a site (its "host", or item k of "hosts"). */
static const struct cfg__node *host_node(const struct cfg__node *site,
                                         size_t k)
{
    const struct cfg__node *h = cfg__map_get(site, "host");
    if (h != NULL)
        return h;
    h = cfg__map_get(site, "hosts")->head;
    while (k-- > 0)
        h = h->next;
    return h;
}

/* Refuses a host of site <i> that an earlier site, or itself, lists. */
static int check_hosts(struct cfg__ld *ld, const struct cfg_listener *l,
                       size_t i, const struct cfg__node *sn)
{
    const struct cfg_site *s = &l->sites[i];

    for (size_t k = 0; k < s->nhosts; k++) {
        for (size_t j = 0; j <= i; j++) {
            const struct cfg_site *o = &l->sites[j];
            size_t n = j == i ? k : o->nhosts;
            for (size_t m = 0; m < n; m++)
                if (strcmp(o->hosts[m], s->hosts[k]) == 0)
                    return cfg__fail(ld, host_node(sn, k),
                                     "host %s is listed twice in this "
                                     "listener", s->hosts[k]);
        }
    }
    return 0;
}

static int read_site(struct cfg__ld *ld, const struct cfg__node *v,
                     struct cfg_listener *l)
{
    struct cfg_site *s = &l->sites[l->nsites];
    int rc = cfg__walk(ld, v, "site", site_fields, NFIELDS(site_fields), s);
    if (rc != 0)
        return rc;
    if (s->nroutes == 0) {
        const struct cfg__node *rn = cfg__map_get(v, "routes");
        return cfg__fail(ld, rn != NULL ? rn : v, "site has no routes");
    }
    rc = check_hosts(ld, l, l->nsites, v);
    if (rc == 0)
        l->nsites++;
    return rc;
}

/* One default at most. A site without hosts is the default (it catches
 * every host); a site with hosts is the default only when it says so, so a
 * listener serving only "only.test" answers 421 to other hosts. */
static int check_defaults(struct cfg__ld *ld, struct cfg_listener *l,
                          const struct cfg__node *seq)
{
    const struct cfg__node *first = NULL;
    const struct cfg__node *it = seq->head;

    for (size_t i = 0; i < l->nsites; i++, it = it->next) {
        struct cfg_site *s = &l->sites[i];
        const struct cfg__node *d = cfg__map_get(it, "default");
        if (d == NULL && s->nhosts == 0)
            s->is_default = true;
        if (!s->is_default && s->nhosts == 0)
            return cfg__fail(ld, it, "site has no hosts and is not the "
                                     "default");
        if (!s->is_default)
            continue;
        if (first != NULL && d != NULL)
            return cfg__bad(ld, d, "only one site of a listener can be the "
                                   "default (the first is at %u:%u)",
                            first->line, first->col);
        if (first != NULL)
            return cfg__fail(ld, it, "a site without hosts is the default, "
                                     "but this listener already has one "
                                     "(at %u:%u)", first->line, first->col);
        first = d != NULL ? d : it;
    }
    return 0;
}

static int set_sites(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_listener *l = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    l->sites = cfg__array(ld, v->n, sizeof(*l->sites));
    if (l->sites == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        rc = read_site(ld, it, l);
        if (rc != 0)
            return rc;
    }
    return check_defaults(ld, l, v);
}

/* ---- listeners ---- */

static int set_listen(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    return cfg__addr(ld, v, &((struct cfg_listener *)obj)->addr);
}

static int set_xff(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "append", "replace", "off" };
    static const enum cfg_xff vals[] = { CFG_XFF_APPEND, CFG_XFF_REPLACE,
                                         CFG_XFF_OFF };
    size_t i;
    int rc = cfg__enum(ld, v, names, NFIELDS(names), &i);
    if (rc == 0)
        ((struct cfg_headers *)obj)->x_forwarded_for = vals[i];
    return rc;
}

#define H struct cfg_headers
static const struct cfg__field header_fields[] = {
    CFG__F_BOOL("via", H, via),
    CFG__F_FN("x_forwarded_for", set_xff),
    CFG__F_BOOL("x_forwarded_proto", H, x_forwarded_proto),
    CFG__F_BOOL("x_forwarded_host", H, x_forwarded_host),
    CFG__F_BOOL("forwarded", H, forwarded),
    CFG__F_BOOL("hide_server", H, hide_server),
};
#undef H

#define T struct cfg_timeouts
static const struct cfg__field timeout_fields[] = {
    CFG__F_MS("client_header", T, client_header, 1, CFG__DAY),
    CFG__F_MS("client_body", T, client_body, 1, CFG__DAY),
    CFG__F_MS("client_idle", T, client_idle, 1, CFG__DAY),
    CFG__F_MS("send", T, send, 1, CFG__DAY),
};
#undef T

#define L struct cfg_limits
static const struct cfg__field limit_fields[] = {
    CFG__F_SIZE("header_bytes", L, header_bytes, CFG__KIB, CFG__MIB),
    CFG__F_COUNT("header_count", L, header_count, 1, 10000),
    CFG__F_SIZE("target_length", L, target_length, 1, CFG__MIB),
    CFG__F_SIZE64("body_bytes", L, body_bytes, 0, UINT64_MAX),
    CFG__F_UINT("connections_per_address", L, conns_per_addr, 0, 1000000),
};
#undef L

static int set_headers(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    return cfg__walk(ld, v, "headers", header_fields, NFIELDS(header_fields),
                     &((struct cfg_listener *)obj)->headers);
}

static int set_timeouts(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    return cfg__walk(ld, v, "timeouts", timeout_fields,
                     NFIELDS(timeout_fields),
                     &((struct cfg_listener *)obj)->timeouts);
}

static int set_limits(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_limits *lim = &((struct cfg_listener *)obj)->limits;
    int rc = cfg__walk(ld, v, "limits", limit_fields, NFIELDS(limit_fields),
                       lim);
    if (rc != 0 || lim->target_length <= lim->header_bytes)
        return rc;
    const struct cfg__node *t = cfg__map_get(v, "target_length");
    if (t == NULL) {
        /* the default target limit follows a smaller head limit */
        lim->target_length = lim->header_bytes;
        return 0;
    }
    char b[32];
    cfg__fmt_size(lim->header_bytes, b, sizeof(b));
    return cfg__bad(ld, t, "must not exceed header_bytes (%s)", b);
}

static const struct cfg__field listener_fields[] = {
    CFG__F_FN("listen", set_listen),
    CFG__F_FN("sites", set_sites),
    CFG__F_INT("backlog", struct cfg_listener, backlog, 1, 65535),
    CFG__F_FN("headers", set_headers),
    CFG__F_FN("timeouts", set_timeouts),
    CFG__F_FN("limits", set_limits),
    CFG__F_BOOL("proxy_protocol", struct cfg_listener, proxy_protocol),
    CFG__F_FN("tls", cfg__tls),
    CFG__F_FN("http2", cfg__http2),
    CFG__F_FN("rate_limits", cfg__set_listener_rates),
    CFG__F_FN("forward", cfg__forward),
};

static void listener_defaults(struct cfg_listener *l)
{
    l->kind = CFG_L_REVERSE;
    l->backlog = 511;
    l->headers = (struct cfg_headers){
        .via = true,
        .x_forwarded_for = CFG_XFF_APPEND,
        .x_forwarded_proto = true,
        .x_forwarded_host = true,
        .forwarded = false,
        .hide_server = false,
    };
    l->timeouts = (struct cfg_timeouts){
        .client_header = 10 * CFG__SEC,
        .client_body = 60 * CFG__SEC,
        .client_idle = 60 * CFG__SEC,
        .send = 60 * CFG__SEC,
    };
    l->limits = (struct cfg_limits){
        .header_bytes = 32 * CFG__KIB,
        .header_count = 100,
        .target_length = 8 * CFG__KIB,
        .body_bytes = 1 * CFG__GIB,
    };
    cfg__http2_defaults(&l->http2);
}

/* Site options that need (or cannot have) TLS on their listener. */
static int check_tls_sites(struct cfg__ld *ld, const struct cfg_listener *l,
                           const struct cfg__node *v)
{
    const struct cfg__node *sn = cfg__map_get(v, "sites");
    const struct cfg__node *it = sn != NULL ? sn->head : NULL;
    for (size_t i = 0; it != NULL && i < l->nsites; i++, it = it->next) {
        const struct cfg_site *s = &l->sites[i];
        if (l->tls != NULL && s->redirect_https != 0)
            return cfg__bad(ld, cfg__map_get(it, "redirect_https"),
                            "this listener already has tls (redirect on the "
                            "plain listener)");
        if (l->tls == NULL && s->hsts != NULL)
            return cfg__bad(ld, cfg__map_get(it, "hsts"),
                            "is only sent over TLS and this listener has no "
                            "tls");
    }
    const struct cfg__node *h2c = cfg__map_get(cfg__map_get(v, "http2"), "h2c");
    if (l->tls != NULL && l->http2.h2c)
        return cfg__bad(ld, h2c, "is for plain listeners; with tls, HTTP/2 "
                                 "is chosen by ALPN (tls.alpn)");
    return 0;
}

static int read_listener(struct cfg__ld *ld, const struct cfg__node *v,
                         struct cfg_listener *l)
{
    listener_defaults(l);
    if (cfg__map_get(v, "forward") != NULL) {
        /* X-Forwarded-Proto/-Host say what a reverse proxy's client asked
         * for; a forward proxy's origin sees that in the request itself */
        l->kind = CFG_L_FORWARD;
        l->headers.x_forwarded_proto = false;
        l->headers.x_forwarded_host = false;
    }
    int rc = cfg__walk(ld, v, "listener", listener_fields,
                       NFIELDS(listener_fields), l);
    if (rc != 0)
        return rc;
    if (l->addr.len == 0)
        return cfg__fail(ld, v, "missing \"listen\" in listener");
    if (l->nsites == 0 && l->kind != CFG_L_FORWARD) {
        const struct cfg__node *sn = cfg__map_get(v, "sites");
        return cfg__fail(ld, sn != NULL ? sn : v, "listener %s has no sites "
                         "(and no \"forward\")", l->addr.text);
    }
    rc = check_tls_sites(ld, l, v);
    if (rc == 0 && l->tls != NULL) /* the address names its ticket keys */
        rc = cfg__tls_build(ld, cfg__map_get(v, "tls"), l);
    return rc;
}

int cfg__listeners(struct cfg__ld *ld, const struct cfg__node *v)
{
    struct cfg *c = ld->c;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one listener");
    c->listeners = cfg__array(ld, v->n, sizeof(*c->listeners));
    if (c->listeners == NULL)
        return -ENOMEM;
    const struct cfg__node *it = v->head;
    for (size_t i = 0; i < v->n; i++, it = it->next) {
        struct cfg_listener *l = &c->listeners[i];
        rc = read_listener(ld, it, l);
        if (rc != 0)
            return rc;
        const struct cfg__node *prev = v->head;
        for (size_t j = 0; j < i; j++, prev = prev->next) {
            if (!cfg__addr_eq(&c->listeners[j].addr, &l->addr))
                continue;
            const struct cfg__node *pn = cfg__map_get(prev, "listen");
            return cfg__bad(ld, cfg__map_get(it, "listen"),
                            "%s is already used by the listener at %u:%u",
                            l->addr.text, pn->line, pn->col);
        }
        c->nlisteners++;
    }
    return 0;
}
