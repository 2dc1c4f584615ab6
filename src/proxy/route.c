/*
 * Routing for reverse listeners: the site by host name (exact names first,
 * then "*.suffix" wildcards, longest suffix first, then the default site),
 * then the route by path (an exact route beats every prefix; the longest
 * prefix wins).
 *
 * Paths are matched in normalised form, dot segments removed (RFC 3986
 * §5.2.4, with "%2e" read as "."), so "/public/../admin" is routed as
 * "/admin", the way the origin will read it. The target is forwarded as the
 * client sent it.
 */
#include <string.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

struct str route_host(struct pool *p, struct str a)
{
    size_t len = a.len;
    if (len > 0 && a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        len = rb ? (size_t)(rb - a.p) + 1 : a.len;
    } else {
        const char *colon = memchr(a.p, ':', a.len);
        if (colon != NULL)
            len = (size_t)(colon - a.p);
    }
    while (len > 0 && a.p[len - 1] == '.') /* "example.com." */
        len--;
    char *s = pool_alloc(p, len + 1);
    if (s == NULL)
        return STR_NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = ascii_lower(a.p[i]);
    s[len] = '\0';
    return str_make(s, len);
}

static bool wildcard_match(const char *pat, struct str host, size_t *score)
{
    /* "*.example.com" matches "a.example.com" and "a.b.example.com" */
    size_t plen = strlen(pat) - 1; /* ".example.com" */
    if (host.len <= plen)
        return false;
    if (memcmp(host.p + host.len - plen, pat + 1, plen) != 0)
        return false;
    *score = plen;
    return true;
}

const struct cfg_site *route_site(const struct cfg_listener *cl, struct str host)
{
    const struct cfg_site *def = NULL, *wild = NULL;
    size_t best = 0;
    for (size_t i = 0; i < cl->nsites; i++) {
        const struct cfg_site *s = &cl->sites[i];
        if (s->is_default && def == NULL)
            def = s;
        for (size_t j = 0; j < s->nhosts; j++) {
            const char *pat = s->hosts[j];
            size_t score = 0;
            if (pat[0] == '*') {
                if (wildcard_match(pat, host, &score) && score > best) {
                    best = score;
                    wild = s;
                }
            } else if (str_eq(str_cstr(pat), host)) {
                return s;
            }
        }
    }
    return wild ? wild : def;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Copies <path> (up to '?') with "%2e" decoded to '.' and dot segments
 * removed. */
static struct str normalise(struct pool *p, struct str path)
{
    const char *q = memchr(path.p, '?', path.len);
    size_t len = q ? (size_t)(q - path.p) : path.len;
    char *in = pool_alloc(p, len + 1);
    char *out = pool_alloc(p, len + 2);
    if (in == NULL || out == NULL)
        return STR_NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (path.p[i] == '%' && i + 2 < len && hexval(path.p[i + 1]) == 2 &&
            (path.p[i + 2] == 'e' || path.p[i + 2] == 'E')) {
            in[n++] = '.';
            i += 2;
        } else {
            in[n++] = path.p[i];
        }
    }
    /* remove_dot_segments over segments of in[0..n) */
    size_t o = 0, i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && in[j] != '/')
            j++;
        /* segment is in[i+1 .. j) (in[i] == '/' when path starts with /) */
        size_t slen = j - i - 1;
        const char *seg = in + i + 1;
        if (in[i] == '/' && slen == 1 && seg[0] == '.') {
            if (j == n)
                out[o++] = '/';
        } else if (in[i] == '/' && slen == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the previous segment and its slash */
            if (j == n) /* "/a/.." is "/" with the trailing slash */
                out[o++] = '/';
        } else {
            memcpy(out + o, in + i, j - i);
            o += j - i;
        }
        i = j;
    }
    if (o == 0)
        out[o++] = '/';
    return str_make(out, o);
}

/* A route with "ext" matches only paths whose last segment ends in
 * ".<ext>" (case-insensitive). */
static bool ext_match(const struct cfg_route *r, struct str np)
{
    for (size_t i = 0; i < r->nexts; i++) {
        struct str e = str_cstr(r->exts[i]);
        if (np.len < e.len + 2 || np.p[np.len - e.len - 1] != '.')
            continue;
        if (str_ieq(str_make(np.p + np.len - e.len, e.len), e) &&
            memchr(np.p + np.len - e.len, '/', e.len) == NULL)
            return true;
    }
    return false;
}

const struct cfg_route *route_match(const struct cfg_site *s, struct str path,
                                    struct pool *p)
{
    struct str np = normalise(p, path);
    if (np.p == NULL)
        return NULL;
    const struct cfg_route *best = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct cfg_route *r = &s->routes[i];
        struct str rp = str_make(r->path, r->path_len);
        if (r->nexts > 0 && !ext_match(r, np))
            continue;
        if (r->exact) {
            if (str_eq(rp, np))
                return r;
        } else if (str_has_prefix(np, rp) &&
                   (best == NULL || r->path_len > best->path_len ||
                    (r->path_len == best->path_len && r->nexts > 0 &&
                     best->nexts == 0))) {
            best = r;
        }
    }
    return best;
}
