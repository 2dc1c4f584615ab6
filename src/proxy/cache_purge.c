/*
 * Removing stored responses: PURGE requests (admin only: by URL, by prefix,
 * by tag) and the invalidation after unsafe methods (RFC 9111 §4.4).
 *
 * In a cluster with Redis (cluster/purge.h), a PURGE answered here is also
 * published, and one worker per process applies what the other nodes
 * publish, so a purge reaches every node's cache. Invalidations after
 * unsafe methods stay local: each node invalidates what its own requests
 * change, as RFC 9111 describes a cache.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster/purge.h"
#include "core/log.h"
#include "core/macros.h"
#include "proxy/cache_ctx.h"

int cglue_purge_prepare(struct ctx *cx, const struct h1_msg *req)
{
    struct pool *p = cx->t->pool;
    cx->act = A_PURGE;
    for (size_t i = 0; i < req->nfields; i++) {
        struct str n = req->fields[i].name;
        if (str_ieq_lit(n, "cache-tag") || str_ieq_lit(n, "surrogate-key") ||
            str_ieq_lit(n, "x-purge-tag")) {
            cx->purge_how = 2;
            cx->purge_what = str_trim(cglue_dup(p, req->fields[i].value));
            return 0;
        }
    }
    if (cglue_key(cx->t, req, &cx->key) != 0)
        return -ENOMEM;
    cx->purge_how = 0;
    if (cx->key.len > 0 && cx->key.p[cx->key.len - 1] == '*') {
        cx->purge_how = 1; /* a prefix: PURGE /static/ followed by a star */
        cx->purge_what = str_make(cx->key.p, cx->key.len - 1);
    }
    return 0;
}

void cglue_purge_answer(struct ctx *cx)
{
    struct txn *t = cx->t;
    struct worker *w = t->c->w;
    if (!cfg_cache_purge_allowed(&w->cfg->cache, &t->c->peer.sa)) {
        t->keepalive = t->keepalive && t->reqf.done;
        stats_denied(w, MG_DENIED_ACL);
        txn_error(t, 403, "http_request_denied", "PURGE is not allowed from this address.");
        return;
    }
    size_t n;
    struct shared *sh = w->shared;
    if (cx->purge_how == 2) {
        n = 0;
        struct str v = cx->purge_what;
        size_t i = 0;
        while (i < v.len) { /* "a, b" or "a b": each tag */
            while (i < v.len && (v.p[i] == ' ' || v.p[i] == ',' || v.p[i] == '\t'))
                i++;
            size_t k = i;
            while (k < v.len && v.p[k] != ' ' && v.p[k] != ',' && v.p[k] != '\t')
                k++;
            if (k > i) {
                struct str tag = str_make(v.p + i, k - i);
                n += cache_purge_tag(cx->c, tag);
                if (sh != NULL)
                    cpurge_publish(sh, CPURGE_TAG, tag);
            }
            i = k;
        }
    } else if (cx->purge_how == 1) {
        n = cache_purge_prefix(cx->c, cx->purge_what);
        if (sh != NULL)
            cpurge_publish(sh, CPURGE_PREFIX, cx->purge_what);
    } else {
        n = cache_purge_key(cx->c, &cx->key);
        if (sh != NULL)
            cpurge_publish(sh, CPURGE_KEY, str_make(cx->key.p, cx->key.len));
    }
    char *body = pool_alloc(t->pool, 64);
    if (body == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    int bl = snprintf(body, 64, "{\"purged\":%zu}\n", n);
    t->reason = "purge";
    txn_local(t, 200, "application/json", body, (size_t)bl, NULL);
}

/* RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the
 * target URI, and the same-origin Location and Content-Location. */
static void invalidate_one(struct txn *t, struct cache *c, struct str origin, struct str ref)
{
    ref = str_trim(ref);
    if (ref.len == 0)
        return;
    char buf[4096];
    size_t n;
    if (ref.p[0] == '/' && (ref.len < 2 || ref.p[1] != '/')) {
        n = origin.len + ref.len <= sizeof(buf) ? origin.len : 0;
        if (n == 0)
            return;
        memcpy(buf, origin.p, origin.len);
        memcpy(buf + n, ref.p, ref.len);
        n += ref.len;
    } else {
        const char *ss = memchr(ref.p, ':', ref.len);
        if (ss == NULL || ref.len < (size_t)(ss - ref.p) + 3 || ss[1] != '/' || ss[2] != '/')
            return;
        struct str scheme = str_make(ref.p, (size_t)(ss - ref.p));
        const char *a = ss + 3, *end = ref.p + ref.len;
        const char *slash = a;
        while (slash < end && *slash != '/' && *slash != '?')
            slash++;
        size_t ns = t->c->cl->kind == CFG_L_FORWARD ? sizeof(CGLUE_FWD_NS) - 1 : 0;
        memcpy(buf, CGLUE_FWD_NS, ns);
        n = cache_key_write(buf + ns, sizeof(buf) - ns, scheme,
                            str_make(a, (size_t)(slash - a)),
                            str_make(slash, (size_t)(end - slash)));
        n = n == 0 ? 0 : ns + n;
        if (n < origin.len || memcmp(buf, origin.p, origin.len) != 0 ||
            (n > origin.len && buf[origin.len] != '/'))
            return; /* another origin: never */
    }
    struct cache_key k;
    cache_key_set(&k, buf, n);
    cache_purge_key(c, &k);
}

void cglue_invalidate(struct txn *t, const struct h1_msg *r)
{
    struct cache *c = t->c->w->cache;
    struct cache_key k;
    if (cglue_key(t, &t->req, &k) != 0)
        return;
    cache_purge_key(c, &k);
    /* the origin: "[forward ]http://host[:port]" */
    const char *sep = memmem(k.p, k.len, "://", 3);
    if (sep == NULL)
        return;
    size_t from = (size_t)(sep - k.p) + 3;
    const char *p = memchr(k.p + from, '/', k.len - from);
    struct str origin = str_make(k.p, p ? (size_t)(p - k.p) : k.len);
    for (size_t i = 0; i < r->nfields; i++) {
        struct str n = r->fields[i].name;
        if (str_ieq_lit(n, "location") || str_ieq_lit(n, "content-location"))
            invalidate_one(t, c, origin, r->fields[i].value);
    }
}


/* ---- purges from the other nodes of a cluster ---- */

static void apply_remote(void *arg, enum cpurge_how how, struct str what)
{
    struct cache *c = arg;
    struct cache_key k;
    switch (how) {
    case CPURGE_KEY:
        cache_key_set(&k, what.p, what.len);
        cache_purge_key(c, &k);
        break;
    case CPURGE_PREFIX:
        cache_purge_prefix(c, what);
        break;
    case CPURGE_TAG:
        cache_purge_tag(c, what);
        break;
    default:
        log_warn("cache: purges published by other nodes may have been missed "
                 "while Redis was unreachable");
        break;
    }
}

void cglue_cluster_init(struct worker *w)
{
    if (w->shared == NULL || w->cache == NULL || w->id != 1)
        return; /* one subscriber per process: the cache is the process's */
    if (cpurge_subscribe(w->shared, apply_remote, w->cache) < 0)
        log_warn("cache: cannot subscribe to the cluster's purges");
}
