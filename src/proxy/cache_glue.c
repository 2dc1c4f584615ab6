/*
 * The cache in the request pipeline: what to do with a request (answer
 * from a stored response, wait for a fill in flight, validate, fetch), what
 * to do with the origin's answer (store it while it streams, update a
 * stored head from a 304, invalidate after an unsafe method), and PURGE.
 *
 * The decisions are RFC 9111's (src/cache/fresh.c); here they meet the
 * transaction. Choices the RFC leaves open are in docs/cache.md.
 *
 * Conditionals: when the response may be stored, the client's
 * If-None-Match / If-Modified-Since are not forwarded (the cache wants the
 * whole response) and the cache answers them itself from what it stored;
 * when a stored response is validated, its own ETag / Last-Modified are
 * sent instead. A Range request that misses is forwarded as is and a 206
 * is passed through unstored; a Range on a complete stored 200 is answered
 * from the cache.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "admin/metrics.h"
#include "core/macros.h"
#include "proxy/cache_ctx.h"
#include "proxy/cache_head.h"
#include "security/security.h"

/* ---- the store and the workers ---- */

/* The disk thread's sandbox: a worker's that serves files (open, rename,
 * unlink; no sockets it does not have, no exec). */
static int disk_sandbox(void *arg)
{
    (void)arg;
    return sandbox_enter(SB_WORKER_FILES);
}

struct cache *cglue_cache_new(const struct cfg *cfg, const struct priv_plan *plan)
{
    const struct cfg_cache *cc = &cfg->cache;
    struct cache_params p = {
        .mem_bytes = cc->memory,
        .max_object = cc->max_object,
        .disk_path = cc->disk_path,
        .disk_bytes = cc->disk_size,
        .disk_sync = cc->disk_sync,
        .chown = plan != NULL && plan->drop,
        .uid = plan != NULL ? plan->uid : 0,
        .gid = plan != NULL ? plan->gid : 0,
        .thread_init = cfg->security.sandbox ? disk_sandbox : NULL,
    };
    char err[512];
    struct cache *c = cache_new(&p, err, sizeof(err));
    if (c == NULL)
        log_err("%s", err);
    return c;
}

static void notifier_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct cwk *k = container_of(e, struct cwk, ev);
    cache_notifier_run(k->nt);
}

void cglue_count(struct ctx *cx, int id)
{
    struct mworker *m = cx->t->c->w->m;
    if (m != NULL)
        m_inc(m, (enum m_global)id);
}

/* The store's size, once a second, in worker 1's gauges (the store is the
 * process's: one worker reports it, the others' gauges stay 0). */
static void stats_tick(struct loop *l, struct timer *tm)
{
    struct cwk *k = container_of(tm, struct cwk, stats);
    struct mworker *m = k->w->m;
    struct cache_stats st;
    cache_stats(k->w->cache, &st);
    if (m != NULL) {
        atomic_store_explicit(&m->g[MG_CACHE_BYTES], st.bytes + st.disk_bytes,
                              memory_order_relaxed);
        atomic_store_explicit(&m->g[MG_CACHE_OBJECTS], MAX(st.objects, st.disk_objects),
                              memory_order_relaxed);
    }
    timer_set(l, tm, 1000, stats_tick);
}

int cglue_worker_init(struct worker *w)
{
    struct cwk *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    k->w = w;
    k->nt = cache_notifier_new();
    if (k->nt == NULL) {
        free(k);
        return -ENOMEM;
    }
    k->ev = (struct ev){ cache_notifier_fd(k->nt), notifier_event };
    if (loop_add_read(w->loop, &k->ev) < 0) {
        cache_notifier_free(k->nt);
        free(k);
        return -ENOMEM;
    }
    w->cwk = k;
    if (w->id == 1)
        timer_set(w->loop, &k->stats, 1000, stats_tick);
    return 0;
}

void cglue_worker_fini(struct worker *w)
{
    struct cwk *k = w->cwk;
    if (k == NULL)
        return;
    cfetch_stop_all(w);
    timer_cancel(w->loop, &k->stats);
    loop_del(w->loop, &k->ev);
    cache_notifier_free(k->nt); /* closes the fd */
    free(k);
    w->cwk = NULL;
}

/* ---- the transaction's state ---- */

static void ctx_cleanup(void *arg)
{
    struct ctx *cx = arg;
    struct txn *t = cx->t;
    cache_unwait(&cx->wt);
    loop_undefer(t->c->w->loop, &cx->d);
    if (cx->fill != NULL) {
        cache_abort(cx->c, cx->fill, false); /* never completed */
        cache_obj_unref(cx->fill);
    }
    if (cx->busy != NULL) {
        if (cx->writer)
            cache_abort(cx->c, cx->busy, true); /* the waiters fetch themselves */
        cache_obj_unref(cx->busy);
    }
    cache_obj_unref(cx->obj);
    cx->fill = cx->busy = cx->obj = NULL;
}

static void ctx_wake(void *arg)
{
    struct ctx *cx = arg;
    cglue_pump(cx->t);
}

static void ctx_deferred(struct loop *l, struct defer *d)
{
    (void)l;
    struct ctx *cx = container_of(d, struct ctx, d);
    cglue_pump(cx->t);
}

static struct ctx *ctx_new(struct txn *t, const struct cfg_cache_policy *pol)
{
    struct worker *w = t->c->w;
    struct ctx *cx = pool_calloc(t->pool, sizeof(*cx));
    if (cx == NULL || pool_on_destroy(t->pool, ctx_cleanup, cx) != 0)
        return NULL;
    cx->t = t;
    cx->c = w->cache;
    cx->pol = pol;
    const struct cfg_cache *cc = &w->cfg->cache;
    cx->fp.heuristic_pct = cc->heuristic_pct;
    cx->fp.heuristic_max = cc->heuristic_max / 1000;
    cx->fp.swr = pol != NULL ? pol->swr / 1000 : 0;
    cx->fp.sie = pol != NULL ? pol->sie / 1000 : 0;
    cx->wt.fn = ctx_wake;
    cx->wt.arg = cx;
    cx->wt.nt = w->cwk->nt;
    cc_req_init(&cx->rq);
    cx->req_time = loop_wall(w->loop);
    t->cx = cx;
    return cx;
}

struct str cglue_dup(struct pool *p, struct str s)
{
    if (s.len == 0)
        return STR_LIT(""); /* never a NULL view: memcpy(NULL, 0) is UB */
    char *d = pool_strndup(p, s.p, s.len);
    return d ? str_make(d, s.len) : STR_NULL;
}

/* The key of <req> (views valid) or of t->req (kept in the arena). */
int cglue_key(struct txn *t, const struct h1_msg *req, struct cache_key *k)
{
    struct str auth = req->form == H1_F_ABSOLUTE ? req->authority : req->host;
    struct str path = req->form == H1_F_ABSOLUTE ? req->path : req->target;
    /* what a forward proxy fetched from the named origin and what a site
     * serves for that name are different things: they never share keys */
    struct str ns = t->c->cl->kind == CFG_L_FORWARD ? STR_LIT(CGLUE_FWD_NS) : STR_NULL;
    size_t cap = ns.len + auth.len + path.len + 16;
    char *b = pool_alloc(t->pool, cap);
    if (b == NULL)
        return -ENOMEM;
    if (ns.len > 0)
        memcpy(b, ns.p, ns.len);
    size_t n = cache_key_write(b + ns.len, cap - ns.len, req->scheme, auth, path);
    if (n == 0)
        return -ENOMEM;
    cache_key_set(k, b, ns.len + n);
    return 0;
}

static bool match_msg(void *arg, const char *vary, size_t len)
{
    const struct h1_msg *m = arg;
    return cache_vary_match(vary, len, m->fields, m->nfields);
}

static int copy_fields(struct ctx *cx, const struct h1_msg *req)
{
    struct pool *p = cx->t->pool;
    cx->fields = pool_alloc(p, (req->nfields + 1) * sizeof(*cx->fields));
    if (cx->fields == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < req->nfields; i++) {
        cx->fields[i].name = cglue_dup(p, req->fields[i].name);
        cx->fields[i].value = cglue_dup(p, req->fields[i].value);
        if (req->fields[i].value.len > 0 && cx->fields[i].value.p == NULL)
            return -ENOMEM;
    }
    cx->nfields = req->nfields;
    return 0;
}

/* Reads what the cache needs from the request fields. False when the
 * request is not one the cache answers (If-Match...). */
static bool read_request(struct ctx *cx, const struct h1_msg *req)
{
    struct pool *p = cx->t->pool;
    bool has_cc = false, pragma = false, usable = true;
    for (size_t i = 0; i < req->nfields; i++) {
        struct str n = req->fields[i].name, v = req->fields[i].value;
        if (str_ieq_lit(n, "cache-control")) {
            has_cc = true;
            cc_parse_req(&cx->rq, v);
        } else if (str_ieq_lit(n, "pragma")) {
            pragma |= h1_list_has(v, STR_LIT("no-cache"));
        } else if (str_ieq_lit(n, "authorization")) {
            cx->auth = true;
        } else if (str_ieq_lit(n, "if-none-match")) {
            cx->inm = cglue_dup(p, v);
            cx->cond = true;
        } else if (str_ieq_lit(n, "if-modified-since")) {
            cx->ims = cglue_dup(p, v);
            cx->cond = true;
        } else if (str_ieq_lit(n, "range")) {
            cx->range = cglue_dup(p, v);
            cx->ranged = true;
        } else if (str_ieq_lit(n, "if-range")) {
            cx->if_range = cglue_dup(p, v);
        } else if (str_ieq_lit(n, "if-match") || str_ieq_lit(n, "if-unmodified-since")) {
            usable = false; /* preconditions on the origin's state */
        }
    }
    /* RFC 7234 §5.4: Pragma: no-cache when there is no Cache-Control (an
     * HTTP/1.0 client) */
    if (pragma && !has_cc)
        cx->rq.flags |= CCQ_NO_CACHE;
    return usable;
}

/* "If-None-Match: <etag>\r\nIf-Modified-Since: <lm>\r\n" from <o>. */
static struct str validators(struct pool *p, struct cache_obj *o)
{
    struct cache_view v;
    cache_obj_view(o, &v);
    struct str lm = chead_find(v.fields, "last-modified");
    size_t cap = v.etag.len + lm.len + 64;
    char *b = pool_alloc(p, cap);
    if (b == NULL)
        return STR_NULL;
    int n = 0;
    if (v.etag.len)
        n += snprintf(b + n, cap - (size_t)n, "If-None-Match: %.*s\r\n", STR_FMT(v.etag));
    if (lm.len)
        n += snprintf(b + n, cap - (size_t)n, "If-Modified-Since: %.*s\r\n", STR_FMT(lm));
    return str_make(b, (size_t)n);
}

static bool has_validator(struct cache_obj *o)
{
    struct cache_view v;
    cache_obj_view(o, &v);
    return v.etag.len > 0 || v.meta->last_modified != DATE_NONE;
}

static bool safe_method(enum h1_method m)
{
    return m == H1_M_GET || m == H1_M_HEAD || m == H1_M_OPTIONS || m == H1_M_TRACE;
}

/* Decides what a GET or HEAD does, from what the lookup found. */
static void decide(struct ctx *cx, struct cache_found *f, int64_t now)
{
    bool oic = cx->rq.flags & CCQ_ONLY_IF_CACHED;
    const char *miss = f->uri_seen ? "vary-miss" : "uri-miss";
    if (f->hit != NULL) {
        cx->obj = f->hit;
        int64_t ttl;
        struct cache_view v;
        cache_obj_view(f->hit, &v);
        enum fresh_use u = fresh_decide(v.meta, &cx->rq, &cx->fp, now, &ttl);
        if (u == USE_SWR && cx->t->ups == NULL)
            u = USE_REVALIDATE; /* forward proxy: no background fetch */
        if (u != USE_REVALIDATE) {
            cx->act = A_HIT;
            cx->stale_hit = u != USE_FRESH;
            cx->swr = u == USE_SWR && cache_obj_claim_revalidate(f->hit);
        } else if (oic) {
            cx->act = A_504;
        } else if (f->busy != NULL && !f->mine && cx->pol->collapse &&
                   !(cx->rq.flags & CCQ_NO_CACHE)) {
            cx->act = A_WAIT; /* a fresh copy is on its way */
            cx->collapsed = true;
            cx->busy = f->busy;
            f->busy = NULL;
            cache_obj_unref(cx->obj);
            cx->obj = NULL;
            cx->fwd = "stale";
        } else {
            cx->act = has_validator(f->hit) ? A_REVAL : A_MISS;
            cx->fwd = ttl > 0 ? "request" : "stale";
        }
    } else if (f->busy != NULL) {
        if (oic && !f->from_disk) {
            cx->act = A_504;
        } else if (f->mine) {
            cx->act = A_MISS;
            cx->writer = true;
            cx->fwd = miss;
        } else {
            cx->act = A_WAIT;
            cx->fwd = f->from_disk ? NULL : miss; /* from disk: a hit */
            cx->collapsed = !f->from_disk;
        }
        cx->busy = f->busy;
        f->busy = NULL;
    } else {
        cx->act = oic ? A_504 : A_MISS;
        cx->fwd = miss;
    }
    cache_obj_unref(f->busy); /* a busy found along with a usable hit */
}

int cglue_request(struct txn *t, const struct h1_msg *req, bool proxy, bool *hit)
{
    *hit = false;
    if (req->meth == H1_M_PURGE) {
        struct ctx *cx = ctx_new(t, NULL);
        return cx == NULL ? -ENOMEM : cglue_purge_prepare(cx, req);
    }
    if (!proxy || t->route->cache == NULL)
        return 0;
    return cglue_request_policy(t, req, t->route->cache, hit);
}

int cglue_request_policy(struct txn *t, const struct h1_msg *req,
                         const struct cfg_cache_policy *pol, bool *hit)
{
    *hit = false;
    struct ctx *cx = ctx_new(t, pol);
    if (cx == NULL)
        return -ENOMEM;
    cx->get = req->meth == H1_M_GET;
    cx->head = req->meth == H1_M_HEAD;
    if (!cx->get && !cx->head) {
        cx->act = safe_method(req->meth) ? A_NONE : A_METHOD;
        cx->fwd = "method";
        return 0;
    }
    if (!read_request(cx, req) || req->body != H1_B_NONE) {
        cx->act = A_NONE;
        cx->fwd = "request";
        return 0;
    }
    if (cglue_key(t, req, &cx->key) != 0)
        return -ENOMEM;
    int64_t now = cx->req_time;
    unsigned flags = 0;
    if (cx->get && !cx->ranged && pol->collapse &&
        !(cx->rq.flags & (CCQ_NO_CACHE | CCQ_NO_STORE | CCQ_ONLY_IF_CACHED)))
        flags |= CL_COLLAPSE; /* others cannot lead a fill the rest can use */
    struct cache_found f;
    cache_lookup(cx->c, &cx->key, match_msg, (void *)req, flags, &f);
    decide(cx, &f, now);
    switch (cx->act) {
    case A_REVAL:
        t->req_drop = HDROP_COND | HDROP_RANGE;
        t->req_extra = validators(t->pool, cx->obj);
        break;
    case A_HIT:
        if (cx->swr) { /* the upstream head is for the background check */
            t->req_drop = HDROP_COND | HDROP_RANGE;
            t->req_extra = validators(t->pool, cx->obj);
        }
        break;
    case A_MISS:
    case A_WAIT:
        if (cx->get && !cx->ranged)
            t->req_drop = HDROP_COND;
        break;
    default:
        break;
    }
    if ((cx->act == A_MISS || cx->act == A_REVAL || cx->act == A_WAIT) &&
        copy_fields(cx, req) != 0)
        return -ENOMEM;
    *hit = (cx->act == A_HIT && !cx->swr) || cx->act == A_504;
    return 0;
}

/* ---- answering without the origin ---- */

static void answer_504(struct ctx *cx)
{
    struct txn *t = cx->t;
    struct str cs = cserve_status(cx, false, false, 0);
    char *extra = pool_strndup(t->pool, cs.p, cs.len);
    static const char body[] = "504 Gateway Timeout\nThe response is not in the cache "
                               "(only-if-cached).\n";
    t->reason = "only_if_cached";
    txn_local(t, 504, NULL, body, sizeof(body) - 1, extra);
}

bool cglue_begin(struct txn *t)
{
    struct ctx *cx = t->cx;
    switch (cx->act) {
    case A_PURGE:
        cglue_purge_answer(cx);
        return true;
    case A_504:
        cglue_count(cx, MG_CACHE_MISS);
        cx->detail = "only-if-cached";
        cx->fwd = NULL; /* nothing was forwarded */
        answer_504(cx);
        return true;
    case A_HIT:
        cglue_count(cx, cx->stale_hit ? MG_CACHE_STALE : MG_CACHE_HIT);
        if (cx->swr && !cfetch_revalidate(t, cx->obj))
            cache_obj_release_revalidate(cx->obj);
        if (cserve_setup(cx, cx->obj) != 0) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return true;
        }
        cserve_pump(cx);
        return true;
    case A_WAIT:
        t->phase = T_CACHE;
        cserve_wait_head(cx);
        return true;
    default:
        return false;
    }
}

/* ---- the origin's answer ---- */

/* The upstream connection after a response whose body we do not read. */
static void release_upstream(struct txn *t, bool reusable)
{
    struct uconn *uc = t->uc;
    t->uc = NULL;
    pick_release(t, false); /* the server's in-flight slot */
    if (uc == NULL)
        return;
    timer_cancel(t->c->w->loop, &uc->timer);
    bool reuse = reusable && t->reqf.done && t->uout.head_off >= t->uout.head_len &&
                 t->reqf.fwd == 0 && h1_keepalive(&t->resp) && !uc->rdhup &&
                 t->ups->cu->keepalive > 0 && buf_len(&uc->rbuf) == 0;
    if (reuse)
        ups_release(t->ups, uc);
    else
        ups_close(uc);
}

/* From now on the cache answers: prepare, and write from the loop. */
static int take_over(struct ctx *cx, struct cache_obj *o)
{
    struct txn *t = cx->t;
    t->phase = T_CACHE;
    if (o != cx->obj) {
        cache_obj_unref(cx->obj);
        cx->obj = cache_obj_ref(o);
    }
    if (cserve_setup(cx, cx->obj) != 0)
        return -ENOMEM;
    loop_defer(t->c->w->loop, &cx->d, ctx_deferred);
    return 1;
}

/* A 304 to our conditional request: update the stored head, answer from it. */
static int revalidated(struct ctx *cx, struct h1_msg *r, int64_t now)
{
    struct txn *t = cx->t;
    struct cache_view v;
    cache_obj_view(cx->obj, &v);
    const struct h1_field *et = h1_find(r, STR_LIT("etag"));
    if (et != NULL && v.etag.len > 0 && !etag_weak_eq(et->value, v.etag)) {
        /* §4.3.4: it validates another representation; ours is not it */
        cache_purge_key(cx->c, &cx->key);
        return 0; /* the 304 goes on as it is */
    }
    struct cache_head h;
    if (chead_update(t->pool, &v, r, cx->req_time, now, &h) != 0)
        return -ENOMEM;
    struct cache_obj *n = cache_update(cx->c, cx->obj, &h);
    buf_consume(&t->uc->rbuf, r->head_len);
    release_upstream(t, true);
    cx->fwd_status = 304; /* fwd stays "stale" or "request" */
    cglue_count(cx, MG_CACHE_HIT);
    int rc = take_over(cx, n != NULL ? n : cx->obj);
    cache_obj_unref(n);
    return rc;
}

/* RFC 9111 §4.3.5: a 200 to a HEAD freshens the stored GET response it
 * describes (same validators and length), or invalidates it. */
static void head_freshens(struct ctx *cx, struct h1_msg *r, int64_t now)
{
    struct txn *t = cx->t;
    struct cache_view v;
    cache_obj_view(cx->obj, &v);
    const struct h1_field *et = h1_find(r, STR_LIT("etag"));
    const struct h1_field *lm = h1_find(r, STR_LIT("last-modified"));
    struct str slm = chead_find(v.fields, "last-modified");
    uint64_t blen = 0;
    bool complete = cache_obj_state(cx->obj, &blen) == CB_COMPLETE;
    bool same = (et == NULL ? v.etag.len == 0 : str_eq(et->value, v.etag)) &&
                (lm == NULL ? slm.len == 0 : str_eq(lm->value, slm)) &&
                (!(r->flags & H1_HAS_CL) || !complete || r->content_length == blen);
    if (!same) {
        cache_obj_unlist(cx->c, cx->obj);
        return;
    }
    struct cache_head h;
    if (chead_update(t->pool, &v, r, cx->req_time, now, &h) == 0)
        cache_obj_unref(cache_update(cx->c, cx->obj, &h));
}

/* True when the client's conditional request matches head <h>. */
static bool client_cond_matches(const struct ctx *cx, const struct cache_head *h)
{
    if (!cx->cond || h->status / 100 != 2)
        return false;
    if (cx->inm.len > 0)
        return h->etag.len > 0 && inm_matches(cx->inm, h->etag);
    int64_t ims = http_date_parse(cx->ims, cx->req_time);
    int64_t lm = h->meta.last_modified;
    return ims != DATE_NONE && lm != DATE_NONE && lm <= ims;
}

/* Stores the response if it may be; returns 1 when the client is answered
 * from the cache instead (a conditional that matches what we store). */
static int store(struct ctx *cx, struct h1_msg *r, int64_t now)
{
    struct txn *t = cx->t;
    enum h1_body kind = h1_response_body(r, t->req.meth);
    uint64_t len = kind == H1_B_LENGTH ? r->content_length
                   : kind == H1_B_NONE ? 0
                                       : CACHE_LEN_UNKNOWN;
    struct chead_in in = {
        .resp = r,
        .req_time = cx->req_time,
        .resp_time = now,
        .req_fields = cx->fields,
        .req_nfields = cx->nfields,
        .fp = &cx->fp,
        .get = cx->get,
        .req_no_store = cx->rq.flags & CCQ_NO_STORE,
        .req_auth = cx->auth,
        .max_object = t->c->w->cfg->cache.max_object,
        .body_len = len,
    };
    struct cache_head h;
    enum store_why why = !cx->get              ? STORE_METHOD
                         : r->status == 206    ? STORE_RANGE
                                               : chead_build(t->pool, &in, &h);
    if (why == STORE_OK && (!t->reqf.done || t->uout.head_off < t->uout.head_len))
        why = STORE_BODY; /* it answered before we sent everything */
    if (why != STORE_OK) {
        if (cx->writer && cx->busy != NULL) {
            cache_abort(cx->c, cx->busy, true);
            cache_obj_unref(cx->busy);
            cx->busy = NULL;
            cx->writer = false;
        }
        if (why != STORE_METHOD && why != STORE_RANGE)
            cx->detail = store_why_name(why);
        return 0;
    }
    struct cache_obj *o = cx->writer ? cx->busy : cache_obj_new(cx->c, &cx->key);
    if (cx->writer) {
        cx->busy = NULL;
        cx->writer = false;
    }
    if (o == NULL)
        return 0;
    if (cache_publish(cx->c, o, &h) != 0) {
        cache_obj_unref(o);
        return 0;
    }
    cx->fill = o;
    cx->stored = true;
    h1_chunked_init(&cx->ch);
    if (!client_cond_matches(cx, &h) || kind == H1_B_NONE)
        return 0;
    /* answer 304 now; the body goes on into the cache without this client */
    buf_consume(&t->uc->rbuf, r->head_len);
    if (!cfetch_continue_raw(t, o, kind, r->content_length))
        return 0; /* cannot: stream the 200, which is also a right answer */
    cx->fill = NULL;
    cache_obj_unref(o);
    return take_over(cx, o);
}

int cglue_response(struct txn *t, struct h1_msg *r)
{
    struct ctx *cx = t->cx;
    bool unsafe = !safe_method(t->req.meth) && t->req.meth != H1_M_PURGE;
    if (unsafe && r->status < 400 && t->c->w->cache != NULL)
        cglue_invalidate(t, r);
    if (cx == NULL || cx->act == A_PURGE)
        return 0;
    int64_t now = loop_wall(t->c->w->loop);
    if (cx->act == A_REVAL && cx->obj != NULL) {
        if (r->status == 304)
            return revalidated(cx, r, now);
        struct cache_view v;
        cache_obj_view(cx->obj, &v);
        if (r->status >= 500 && fresh_stale_if_error(v.meta, &cx->rq, &cx->fp, now)) {
            release_upstream(t, false);
            cx->fwd = "stale";
            cx->fwd_status = r->status;
            cx->detail = "stale-if-error";
            cglue_count(cx, MG_CACHE_STALE);
            return take_over(cx, cx->obj);
        }
    }
    if (cx->head && cx->obj != NULL && r->status == 200)
        head_freshens(cx, r, now);
    if (cx->act == A_MISS || cx->act == A_REVAL || cx->act == A_WAIT) {
        cglue_count(cx, MG_CACHE_MISS);
        int rc = store(cx, r, now);
        if (rc != 0)
            return rc;
    }
    t->resp_extra = cserve_status(cx, false, false, 0);
    return 0;
}

void cglue_decoded(struct txn *t)
{
    /* cglue_tee() reads t->resf.decode on each call: once the flow decodes
     * chunks it hands over payload bytes, and that is what is stored */
    (void)t;
}

void cglue_tee(struct txn *t, const char *p, size_t n)
{
    struct ctx *cx = t->cx;
    if (cx->fill == NULL)
        return;
    int rc = 0;
    /* the flow decodes chunked bodies itself for HTTP/1.0 clients, HTTP/2
     * and compression: then <p> is payload already */
    bool dechunk = t->resf.kind == H1_B_CHUNKED && !t->resf.decode;
    if (!dechunk) {
        rc = cache_append(cx->c, cx->fill, p, n);
    } else {
        char tmp[16384];
        while (n > 0 && rc == 0 && cx->ch.state != H1_CH_DONE) {
            size_t piece = n < sizeof(tmp) ? n : sizeof(tmp);
            size_t dlen = 0;
            ssize_t used = h1_chunked_scan(&cx->ch, p, piece, tmp, &dlen);
            if (used < 0) {
                rc = -EBADMSG;
                break;
            }
            if (dlen > 0)
                rc = cache_append(cx->c, cx->fill, tmp, dlen);
            p += used;
            n -= (size_t)used;
            if (used == 0)
                break;
        }
    }
    if (rc != 0) { /* too big, or out of memory: this one is not stored */
        cache_abort(cx->c, cx->fill, false);
        cache_obj_unref(cx->fill);
        cx->fill = NULL;
    }
}

void cglue_done(struct txn *t)
{
    struct ctx *cx = t->cx;
    if (cx->fill == NULL)
        return;
    if (t->resf.done)
        cache_complete(cx->c, cx->fill);
    else
        cache_abort(cx->c, cx->fill, false);
    cache_obj_unref(cx->fill);
    cx->fill = NULL;
}

void cglue_abort(struct txn *t)
{
    struct ctx *cx = t->cx;
    if (cx->fill == NULL)
        return;
    if (t->resf.done) { /* every byte arrived; only the client left */
        cglue_done(t);
        return;
    }
    bool client = t->reason != NULL && strncmp(t->reason, "client_", 7) == 0;
    if (client && t->phase == T_RESPONSE && t->uc != NULL && !t->uc->rdhup) {
        buf_consume(&t->uc->rbuf, t->resf.fwd + t->resf.skip); /* stored already */
        t->resf.fwd = t->resf.skip = 0;
        bool raw = t->resf.kind == H1_B_CHUNKED && !t->resf.decode;
        if (cfetch_continue(t, cx->fill, raw ? &cx->ch : &t->resf.ch, true)) {
            cache_obj_unref(cx->fill);
            cx->fill = NULL;
            return;
        }
    }
    cache_abort(cx->c, cx->fill, false);
    cache_obj_unref(cx->fill);
    cx->fill = NULL;
}

bool cglue_error(struct txn *t, int status)
{
    struct ctx *cx = t->cx;
    if (cx->act != A_REVAL || cx->obj == NULL || t->head_sent ||
        t->phase == T_LOCAL || t->phase == T_CACHE)
        return false;
    if (status != 502 && status != 503 && status != 504)
        return false;
    struct cache_view v;
    cache_obj_view(cx->obj, &v);
    if (!fresh_stale_if_error(v.meta, &cx->rq, &cx->fp, loop_wall(t->c->w->loop)))
        return false;
    release_upstream(t, false);
    cx->fwd = "stale";
    cx->detail = "stale-if-error";
    cglue_count(cx, MG_CACHE_STALE);
    return take_over(cx, cx->obj) > 0;
}

void cglue_pump(struct txn *t)
{
    struct ctx *cx = t->cx;
    if (cx->waiting_head)
        cserve_wait_head(cx);
    else if (cx->sv.started)
        cserve_pump(cx);
}

ssize_t cglue_pull(struct txn *t, char *dst, size_t max, bool *eof)
{
    *eof = false;
    if (t->cx->waiting_head)
        return -EAGAIN;
    return cserve_pull(t->cx, dst, max, eof);
}

void cglue_timeout(struct txn *t)
{
    struct ctx *cx = t->cx;
    if (cx->waiting_head) { /* the fill takes too long: go ourselves */
        cache_unwait(&cx->wt);
        cx->waiting_head = false;
        cache_obj_unref(cx->busy);
        cx->busy = NULL;
        cx->act = A_MISS;
        cx->collapsed = false;
        cli_timer_stop(t);
        txn_forward(t);
        return;
    }
    t->reason = cx->sv.blocked ? "client_send_timeout" : "cache_fill_timeout";
    cli_abort(t);
}
