/*
 * The web-server parts of the configuration: static routes ("static"),
 * response compression ("compress"), extension filters on routes ("ext"),
 * and AJP upstreams ("ajp://" servers and the "ajp" mapping).
 *
 * What can be checked at load time is: a static root must be a directory we
 * can open now (a typo should stop the load, not turn every request into a
 * 404), and an AJP pool must carry a secret, because an AJP connector
 * without one is what CVE-2020-1938 (Ghostcat) exploited.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config_int.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- static ---- */

static int set_root(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_static *s = obj;
    int rc = cfg__str(ld, v, false, &s->root);
    if (rc != 0)
        return rc;
    int fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        int e = errno;
        return cfg__bad(ld, v, "cannot open directory %s: %s", s->root,
                        strerror(e));
    }
    close(fd);
    return 0;
}

static int set_index(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_static *s = obj;
    if (v->type == CFG_N_SCALAR && v->plain &&
        (str_eq(v->val, STR_LIT("off")) || str_eq(v->val, STR_LIT("false")))) {
        s->index = NULL;
        return 0;
    }
    int rc = cfg__str(ld, v, false, &s->index);
    if (rc != 0)
        return rc;
    if (memchr(v->val.p, '/', v->val.len) != NULL || v->val.p[0] == '.')
        return cfg__bad(ld, v, "must be a file name (no '/', not starting "
                               "with '.'), or off");
    return 0;
}

#define S struct cfg_static
static const struct cfg__field static_fields[] = {
    CFG__F_FN("root", set_root),
    CFG__F_FN("index", set_index),
    CFG__F_BOOL("strip_prefix", S, strip_prefix),
    CFG__F_BOOL("listing", S, listing),
    CFG__F_BOOL("hidden", S, hidden),
    CFG__F_BOOL("outside_symlinks", S, outside_symlinks),
    CFG__F_BOOL("precompressed", S, precompressed),
    CFG__F_BOOL("sendfile", S, sendfile),
    CFG__F_MS("cache_valid", S, cache_valid, 0, CFG__DAY),
    CFG__F_UINT("cache_entries", S, cache_entries, 0, 1000000),
};
#undef S

int cfg__route_static(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_route *r = obj;
    if (r->action == CFG_ACT_RETURN || r->upstream != NULL)
        return cfg__bad(ld, v, "use only one of \"upstream\", \"return\" "
                               "and \"static\"");
    struct cfg_static *s = cfg__alloc(ld, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    *s = (struct cfg_static){
        .index = "index.html",
        .precompressed = true,
        .sendfile = true,
        .cache_valid = 1 * CFG__SEC,
        .cache_entries = 1024,
    };
    int rc;
    if (v->type == CFG_N_SCALAR) { /* static: /srv/www */
        rc = set_root(ld, v, s);
    } else {
        rc = cfg__walk(ld, v, "static", static_fields, NFIELDS(static_fields),
                       s);
        if (rc == 0 && s->root == NULL)
            rc = cfg__fail(ld, v, "missing \"root\" in static");
    }
    if (rc != 0)
        return rc;
    r->action = CFG_ACT_STATIC;
    r->stat = s;
    return 0;
}

/* ---- ext ---- */

int cfg__route_ext(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_route *r = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one extension");
    r->exts = cfg__array(ld, v->n, sizeof(*r->exts));
    if (r->exts == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        const char *e;
        rc = cfg__str(ld, it, false, &e);
        if (rc != 0)
            return rc;
        if (e[0] == '.')
            e++;
        size_t n = strlen(e);
        char *lc = cfg__alloc(ld, n + 1);
        if (lc == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            char c = e[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                      c == '.';
            if (!ok)
                return cfg__bad(ld, it, "an extension is letters, digits, "
                                        "'_', '-' or '.', as in css or "
                                        "tar.gz");
            lc[i] = ascii_lower(c);
        }
        if (n == 0)
            return cfg__bad(ld, it, "must not be empty");
        r->exts[r->nexts++] = lc;
    }
    return 0;
}

/* ---- compress ---- */

static const char *const default_types[] = {
    "text/*",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
    "font/ttf",
    "font/otf",
};

static int set_encodings(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    static const char *const names[] = { "gzip", "br", "zstd" };
    static const unsigned bits[] = { CFG_ENC_GZIP, CFG_ENC_BR, CFG_ENC_ZSTD };
    struct cfg_compress *z = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one of gzip, br, zstd");
    z->encodings = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        size_t i;
        rc = cfg__enum(ld, it, names, NFIELDS(names), &i);
        if (rc != 0)
            return rc;
        z->encodings |= bits[i];
    }
    return 0;
}

static int set_types(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_compress *z = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    z->types = cfg__array(ld, v->n ? v->n : 1, sizeof(*z->types));
    if (z->types == NULL)
        return -ENOMEM;
    z->ntypes = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        const char *t;
        rc = cfg__str(ld, it, false, &t);
        if (rc != 0)
            return rc;
        const char *slash = strchr(t, '/');
        if (slash == NULL || slash == t || slash[1] == '\0' ||
            strpbrk(t, " ;,\t") != NULL)
            return cfg__bad(ld, it, "expected a media type such as text/css "
                                    "or text/* (no parameters)");
        size_t n = strlen(t);
        char *lc = cfg__alloc(ld, n + 1);
        if (lc == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            lc[i] = ascii_lower(t[i]);
        z->types[z->ntypes++] = lc;
    }
    return 0;
}

#define Z struct cfg_compress
static const struct cfg__field compress_fields[] = {
    CFG__F_FN("encodings", set_encodings),
    CFG__F_FN("types", set_types),
    CFG__F_SIZE64("min_size", Z, min_size, 0, UINT64_MAX),
    CFG__F_INT("gzip_level", Z, gzip_level, 1, 9),
    CFG__F_INT("br_quality", Z, br_quality, 0, 11),
    CFG__F_INT("zstd_level", Z, zstd_level, 1, 19),
};
#undef Z

int cfg__route_compress(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_route *r = obj;
    if (v->type == CFG_N_SCALAR) {
        bool on;
        int rc = cfg__bool(ld, v, &on);
        if (rc != 0 || !on)
            return rc;
    }
    struct cfg_compress *z = cfg__alloc(ld, sizeof(*z));
    if (z == NULL)
        return -ENOMEM;
    *z = (struct cfg_compress){
        .encodings = CFG_ENC_GZIP | CFG_ENC_BR | CFG_ENC_ZSTD,
        .types = (const char **)default_types,
        .ntypes = NFIELDS(default_types),
        .min_size = 256,
        .gzip_level = 5,
        .br_quality = 4,
        .zstd_level = 3,
    };
    if (v->type != CFG_N_SCALAR) {
        int rc = cfg__walk(ld, v, "compress", compress_fields,
                           NFIELDS(compress_fields), z);
        if (rc != 0)
            return rc;
    }
    r->compress = z;
    return 0;
}

/* ---- AJP upstreams ---- */

int cfg__server_addr(struct cfg__ld *ld, const struct cfg__node *v,
                     struct cfg_server *s)
{
    if (v->type != CFG_N_SCALAR)
        return cfg__addr(ld, v, &s->addr);
    struct str a = v->val;
    s->proto = CFG_PROTO_HTTP;
    if (a.len >= 6 && memcmp(a.p, "ajp://", 6) == 0) {
        s->proto = CFG_PROTO_AJP;
        a.p += 6;
        a.len -= 6;
    } else if (a.len >= 7 && memcmp(a.p, "http://", 7) == 0) {
        a.p += 7;
        a.len -= 7;
    } else if (memmem(a.p, a.len, "://", 3) != NULL) {
        return cfg__bad(ld, v, "a server is host:port, http://host:port or "
                               "ajp://host:port");
    }
    if (a.len > 0 && a.p[a.len - 1] == '/')
        a.len--;
    char why[320];
    if (cfg__parse_addr(a, &s->addr, why, sizeof(why)) != 0)
        return cfg__bad(ld, v, "%s", why);
    return 0;
}

static int set_secret(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_ajp *a = obj;
    int rc = cfg__str(ld, v, false, &a->secret);
    if (rc != 0)
        return rc;
    if (v->val.len > 1024)
        return cfg__bad(ld, v, "must be at most 1024 bytes");
    a->secret_len = v->val.len;
    return 0;
}

#define A struct cfg_ajp
static const struct cfg__field ajp_fields[] = {
    CFG__F_FN("secret", set_secret),
    CFG__F_UINT("packet_size", A, packet_size, 8192, 65536),
    CFG__F_BOOL("cping", A, cping),
    CFG__F_MS("cping_timeout", A, cping_timeout, 1, CFG__DAY),
};
#undef A

int cfg__upstream_ajp(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj)
{
    struct cfg_upstream *u = obj;
    return cfg__walk(ld, v, "ajp", ajp_fields, NFIELDS(ajp_fields), &u->ajp);
}

void cfg__upstream_web_defaults(struct cfg_upstream *u)
{
    u->ajp.packet_size = 8192;
    u->ajp.cping = true;
    u->ajp.cping_timeout = 2 * CFG__SEC;
}

int cfg__upstream_web_check(struct cfg__ld *ld, const struct cfg__node *v,
                            struct cfg_upstream *u)
{
    const struct cfg__node *sv = cfg__map_get(v, "servers");
    u->proto = u->nservers > 0 ? u->servers[0].proto : CFG_PROTO_HTTP;
    const struct cfg__node *it = sv != NULL ? sv->head : NULL;
    for (size_t i = 0; i < u->nservers; i++, it = it ? it->next : NULL)
        if (u->servers[i].proto != u->proto)
            return cfg__fail(ld, it != NULL ? it : v,
                             "upstream \"%s\" mixes ajp:// and HTTP servers "
                             "(one protocol per upstream)", u->name);
    const struct cfg__node *an = cfg__map_get(v, "ajp");
    if (u->proto == CFG_PROTO_AJP && u->ajp.secret == NULL)
        return cfg__fail(ld, an != NULL ? an : v->key != NULL ? v->key : v,
                         "upstream \"%s\" has ajp:// servers but no "
                         "\"ajp: { secret: ... }\": an AJP connector without "
                         "a secret is open to CVE-2020-1938 (Ghostcat)",
                         u->name);
    if (u->proto != CFG_PROTO_AJP && an != NULL)
        return cfg__bad(ld, an, "only for an upstream whose servers are "
                                "ajp://host:port");
    if (u->proto == CFG_PROTO_AJP) {
        static const char *const bad[] = { "tls", "proxy_protocol" };
        for (size_t i = 0; i < NFIELDS(bad); i++) {
            const struct cfg__node *x = cfg__map_get(v, bad[i]);
            if (x != NULL)
                return cfg__fail(ld, x->key, "\"%s\" is not available with "
                                             "ajp:// servers", bad[i]);
        }
        const struct cfg__node *h = cfg__map_get(v, "health");
        if (u->health.on && !u->health.tcp)
            return cfg__fail(ld, h != NULL ? h->key : v->key,
                             "an HTTP health check cannot talk to an AJP "
                             "port: use health: { type: tcp }");
    }
    return 0;
}
