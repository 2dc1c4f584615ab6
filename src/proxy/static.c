/*
 * Static files: the route action "static" (docs/static.md); the request
 * half. A request becomes a path under the route's root, checked twice:
 * here, after percent-decoding, a "." or ".." segment (however it was
 * encoded), a NUL or a hidden name is refused; then the kernel resolves the
 * path with RESOLVE_BENEATH (fcache.c), so no symlink leads out of the root
 * either. Each refusal is logged with its reason. A directory is answered
 * with its index file, a redirect to its '/' form, or its listing
 * (static_list.c); a file by static_send.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "http/negotiate.h"
#include "proxy/static_int.h"

/* ---- the request ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ascii_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static struct str copy_field(struct pool *p, const struct h1_msg *req, const char *name)
{
    const struct h1_field *f = h1_find(req, str_cstr(name));
    if (f == NULL)
        return STR_NULL;
    char *s = pool_strndup(p, f->value.p, f->value.len);
    return s != NULL ? str_make(s, f->value.len) : STR_LIT("");
}

int static_prepare(struct txn *t, const struct h1_msg *req)
{
    struct pool *p = t->pool;
    t->has_range = h1_find(req, STR_LIT("range")) != NULL;
    if (t->route->compress != NULL || (t->route->stat && t->route->stat->precompressed)) {
        /* several Accept-Encoding fields are one list (RFC 9110 §5.3) */
        size_t total = 0;
        for (size_t i = 0; i < req->nfields; i++)
            if (str_ieq_lit(req->fields[i].name, "accept-encoding"))
                total += req->fields[i].value.len + 2;
        if (total > 0) {
            char *s = pool_alloc(p, total);
            if (s == NULL)
                return -ENOMEM;
            size_t n = 0;
            for (size_t i = 0; i < req->nfields; i++) {
                const struct h1_field *f = &req->fields[i];
                if (!str_ieq_lit(f->name, "accept-encoding"))
                    continue;
                memcpy(s + n, f->value.p, f->value.len);
                n += f->value.len;
                s[n++] = ',';
                s[n++] = ' ';
            }
            t->accept_enc = str_make(s, n);
        }
    }
    if (t->route->action != CFG_ACT_STATIC)
        return 0;
    struct sfile *sf = pool_calloc(p, sizeof(*sf));
    if (sf == NULL)
        return -ENOMEM;
    struct sreq *rq = &sf->rq;
    rq->range = copy_field(p, req, "range");
    rq->if_range = copy_field(p, req, "if-range");
    rq->inm = copy_field(p, req, "if-none-match");
    rq->ims = copy_field(p, req, "if-modified-since");
    rq->im = copy_field(p, req, "if-match");
    rq->ius = copy_field(p, req, "if-unmodified-since");
    t->sf = sf;
    return 0;
}

/* Decodes the path of the target into rq->path. Returns 0, or the status
 * to answer (400) with *why set. */
static int decode_path(struct txn *t, struct sreq *rq, const char **why)
{
    const struct h1_msg *m = &t->req;
    struct str target = m->form == H1_F_ABSOLUTE || m->form == H1_F_ORIGIN ? m->path
                                                                           : STR_LIT("/");
    const char *q = memchr(target.p, '?', target.len);
    size_t plen = q ? (size_t)(q - target.p) : target.len;
    rq->raw_path = str_make(target.p, plen);
    rq->query = q ? str_make(q, target.len - plen) : STR_NULL;
    char *out = pool_alloc(t->pool, plen + 1);
    if (out == NULL) {
        *why = "proxy_internal_error";
        return 503;
    }
    size_t n = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = target.p[i];
        if (c == '%') {
            if (i + 2 >= plen || hexval(target.p[i + 1]) < 0 ||
                hexval(target.p[i + 2]) < 0) {
                *why = "static_bad_escape";
                return 400;
            }
            c = (char)(hexval(target.p[i + 1]) * 16 + hexval(target.p[i + 2]));
            i += 2;
            if (c == '\0') {
                *why = "static_nul";
                return 400;
            }
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (n == 0 || out[0] != '/') {
        *why = "static_bad_path";
        return 400;
    }
    rq->path = str_make(out, n);
    return 0;
}

/* Refuses "." and ".." segments (after decoding: %2e%2e, ..%2f) and hidden
 * names. Returns 0, or the status with *why set. */
static int check_segments(const struct cfg_static *cs, struct str path,
                          const char **why)
{
    size_t i = 0;
    while (i < path.len) {
        while (i < path.len && path.p[i] == '/')
            i++;
        size_t s = i;
        while (i < path.len && path.p[i] != '/')
            i++;
        struct str seg = str_make(path.p + s, i - s);
        if (str_eq(seg, STR_LIT(".")) || str_eq(seg, STR_LIT(".."))) {
            *why = "static_traversal";
            return 403;
        }
        if (seg.len > 0 && seg.p[0] == '.' && !cs->hidden &&
            !str_eq(seg, STR_LIT(".well-known"))) {
            *why = "static_hidden";
            return 404;
        }
    }
    return 0;
}

/* ---- answers ---- */

static void refuse(struct txn *t, int status, const char *why, const char *msg)
{
    char ip[64];
    struct str path = t->sf != NULL && t->sf->rq.raw_path.len ? t->sf->rq.raw_path : t->req.target;
    if (status == 403 || (why != NULL && strcmp(why, "static_hidden") == 0)) {
        sock_ntop(&t->c->peer.sa, ip, sizeof(ip));
        log_warn("static: %s refused %.*s for %s", why, (int)MIN(path.len, 512u), path.p, ip);
    }
    t->reason = why;
    txn_error(t, status, "http_request_denied", msg);
}

static void redirect_dir(struct txn *t)
{
    struct sreq *rq = &t->sf->rq;
    size_t cap = rq->raw_path.len + rq->query.len + 32;
    char *loc = pool_alloc(t->pool, cap);
    if (loc == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    /* the target as sent plus '/': relative to this host (RFC 9110 §10.2.2) */
    snprintf(loc, cap, "Location: %.*s/%.*s\r\n", STR_FMT(rq->raw_path), STR_FMT(rq->query));
    static const char body[] = "301 Moved Permanently\n";
    txn_local(t, 301, "text/plain; charset=utf-8", body, sizeof(body) - 1, loc);
}

/* The request's path relative to the root: decoded, checked segment by
 * segment, the route's prefix taken off when strip_prefix says so, and no
 * leading '/'. false: the request was refused. */
static bool relative_path(struct txn *t, const struct cfg_static *cs, struct str *rel)
{
    struct sfile *sf = t->sf;
    const char *why = NULL;
    int st = decode_path(t, &sf->rq, &why);
    if (st == 0)
        st = check_segments(cs, sf->rq.path, &why);
    if (st != 0) {
        refuse(t, st, why, st == 400 ? "The path is malformed." :
                           st == 403 ? "The path leaves the directory." :
                                       "No such file.");
        return false;
    }
    *rel = sf->rq.path;
    if (cs->strip_prefix) {
        size_t pl = t->route->path_len;
        while (pl > 0 && t->route->path[pl - 1] == '/')
            pl--;
        if (rel->len < pl || memcmp(rel->p, t->route->path, pl) != 0) {
            refuse(t, 404, "static_not_found", "No such file.");
            return false;
        }
        rel->p += pl;
        rel->len -= pl;
    }
    while (rel->len > 0 && rel->p[0] == '/') {
        rel->p++;
        rel->len--;
    }
    return true;
}

/* A directory was asked for: its index file, when there is one. true: the
 * request was answered (the file, or a refusal). */
static bool serve_index(struct txn *t, const struct cfg_static *cs, struct str rel)
{
    size_t il = strlen(cs->index);
    char *p = pool_alloc(t->pool, rel.len + il + 1);
    if (p == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return true;
    }
    memcpy(p, rel.p, rel.len);
    memcpy(p + rel.len, cs->index, il + 1);
    struct fentry *e = NULL;
    int rc = fcache_open(t->c->gen, cs, p, rel.len + il, &e);
    if (rc == 0 && e->regular) {
        t->sf->e = e;
        static_respond(t, e);
        return true;
    }
    if (e != NULL)
        fcache_unref(e);
    if (rc != -ENOENT && rc != 0) {
        bool escape = rc == -EXDEV || rc == -ELOOP;
        refuse(t, escape ? 403 : 404, escape ? "static_symlink_escape" : "static_not_found",
               "No such file.");
        return true;
    }
    return false;
}

/* The answer to a file that could not be opened (<rc>, a -errno). */
static void refuse_open(struct txn *t, const struct cfg_static *cs, struct str rel, int rc)
{
    switch (rc) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        t->reason = "static_not_found";
        txn_error(t, 404, "http_request_denied", "No such file.");
        return;
    case -EXDEV:
    case -ELOOP:
        refuse(t, 403, "static_symlink_escape", "The path leaves the directory.");
        return;
    case -EACCES:
    case -EPERM:
        refuse(t, 403, "static_forbidden", "The file cannot be read.");
        return;
    default:
        log_err("static: opening %.*s under %s: %s", STR_FMT(rel), cs->root, strerror(-rc));
        t->reason = "static_open_error";
        txn_error(t, 500, "proxy_internal_error", "The file cannot be opened.");
        return;
    }
}

void static_start(struct txn *t)
{
    const struct cfg_static *cs = t->route->stat;
    struct sfile *sf = t->sf;
    if (sf == NULL || pool_on_destroy(t->pool, static_sf_release, sf) < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (t->req.meth != H1_M_GET && t->req.meth != H1_M_HEAD) {
        t->reason = "static_method";
        txn_local(t, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23,
                  "Allow: GET, HEAD\r\n");
        return;
    }
    struct str rel;
    if (!relative_path(t, cs, &rel))
        return;
    bool dir_req = rel.len == 0 || rel.p[rel.len - 1] == '/';
    if (dir_req && cs->index != NULL && serve_index(t, cs, rel))
        return;
    while (rel.len > 0 && rel.p[rel.len - 1] == '/')
        rel.len--;
    struct fentry *e = NULL;
    int rc = fcache_open(t->c->gen, cs, rel.p, rel.len, &e);
    if (rc < 0) {
        refuse_open(t, cs, rel, rc);
        return;
    }
    sf->e = e;
    if (e->is_dir) {
        if (!dir_req)
            redirect_dir(t);
        else if (cs->listing)
            static_list(t, e->id.fd, t->sf->rq.path, cs->hidden);
        else
            refuse(t, 403, "static_no_listing", "Directory listing is off.");
        return;
    }
    if (dir_req || !e->regular) {
        refuse(t, dir_req ? 404 : 403, dir_req ? "static_not_found" : "static_not_regular",
               "No such file.");
        return;
    }
    static_respond(t, e);
}

void static_gen_fini(struct gen *g)
{
    fcache_free(g);
}
