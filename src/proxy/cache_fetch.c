/*
 * Fetches that run with no client: they only feed the cache.
 *
 * - Continuing a fill: the client that started a fill went away (or was
 *   answered 304 from what is being stored), but other requests may be
 *   reading the object and the next ones will want it. The upstream
 *   connection and the body framing move here and the rest of the body is
 *   stored, as nginx does for a cacheable response when its client aborts.
 * - Revalidating in the background (RFC 5861 stale-while-revalidate): the
 *   client got the stale response at once; a conditional request updates
 *   the stored head on a 304 or stores the new response.
 *
 * A fetch lives on the worker that started it, in its list, with its own
 * arena, and uses the worker's upstream pools and timeouts. When the
 * worker stops, fetches in flight are abandoned (their objects fail).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/cache_ctx.h"
#include "proxy/cache_head.h"

#define CFETCH_MAGIC 0xcfe7c4u
#define MAX_FIELDS 100

enum fstate { F_CONNECT = 0, F_SEND, F_HEAD, F_BODY };

struct cfetch {
    unsigned magic;
    struct worker *w;
    struct gen *gen;         /* pinned: its upstream pools are ours */
    struct cfetch *next, *prev;
    struct pool *pool;
    struct cache *c;
    struct ups *ups;
    struct uconn *uc;
    enum fstate st;
    struct cache_obj *fill;  /* written (referenced) */
    struct cache_obj *stale; /* revalidated (referenced) */
    /* the request (revalidation) */
    char *req;
    size_t req_len, req_off;
    uint64_t tried;
    int held;            /* server whose in-flight slot we hold, + 1 */
    bool replayed;
    int64_t req_time;
    struct cache_key key;
    struct h1_field *req_fields;
    size_t req_nfields;
    struct fresh_policy fp;
    bool req_auth;
    /* the response */
    struct h1_msg resp;
    enum h1_body kind;
    uint64_t left;
    struct h1_chunked ch;
    bool keepalive;
};

static void fetch_event(struct loop *l, struct ev *e, uint32_t events);
static void fetch_timeout(struct loop *l, struct timer *tm);
static void fetch_pump(struct cfetch *f);

static struct cfetch *fetch_new(struct txn *t)
{
    struct worker *w = t->c->w;
    struct cfetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    /* the configuration generation (and its upstream pools) must outlive
     * the fetch: pin it as a connection does */
    f->gen = t->c->gen;
    f->gen->nconns++;
    f->pool = pool_new(4096);
    if (f->pool == NULL) {
        gen_conn_closed(f->gen);
        free(f);
        return NULL;
    }
    f->magic = CFETCH_MAGIC;
    f->w = w;
    f->c = w->cache;
    struct cwk *k = w->cwk;
    f->next = k->fetches;
    if (k->fetches != NULL)
        k->fetches->prev = f;
    k->fetches = f;
    return f;
}

/* Ends the fetch; <ok>: the fill (if any) completed. */
static void fetch_end(struct cfetch *f, bool reuse)
{
    struct cwk *k = f->w->cwk;
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        k->fetches = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    if (f->held != 0) {
        ups_unhold(f->ups, (unsigned)(f->held - 1));
        f->held = 0;
    }
    if (f->uc != NULL) {
        struct uconn *uc = f->uc;
        f->uc = NULL;
        timer_cancel(f->w->loop, &uc->timer);
        if (reuse && !uc->rdhup && buf_len(&uc->rbuf) == 0 && f->ups->cu->keepalive > 0)
            ups_release(f->ups, uc);
        else
            ups_close(uc);
    }
    if (f->fill != NULL) {
        uint64_t len;
        if (cache_obj_state(f->fill, &len) == CB_FILLING)
            cache_abort(f->c, f->fill, false);
        cache_obj_unref(f->fill);
    }
    if (f->stale != NULL) {
        cache_obj_release_revalidate(f->stale);
        cache_obj_unref(f->stale);
    }
    f->magic = 0;
    pool_free(f->pool);
    gen_conn_closed(f->gen);
    loop_free_later(f->w->loop, f); /* an event may still name it */
}

void cfetch_stop_all(struct worker *w)
{
    struct cwk *k = w->cwk;
    while (k != NULL && k->fetches != NULL)
        fetch_end(k->fetches, false);
}

static void attach(struct cfetch *f, struct uconn *uc)
{
    f->uc = uc;
    uc->owner = f;
    uc->ev.cb = fetch_event;
}

/* ---- continuing a fill ---- */

static bool start_body(struct txn *t, struct cache_obj *fill, enum h1_body kind,
                       uint64_t left, const struct h1_chunked *ch)
{
    struct worker *w = t->c->w;
    if (t->uc == NULL || w->cwk == NULL || w->draining)
        return false;
    if (t->fx != NULL)
        return false; /* a forward origin lives as long as its transaction */
    struct cfetch *f = fetch_new(t);
    if (f == NULL)
        return false;
    f->ups = t->ups;
    f->fill = cache_obj_ref(fill);
    f->kind = kind;
    f->left = left;
    if (ch != NULL)
        f->ch = *ch;
    else
        h1_chunked_init(&f->ch);
    f->keepalive = h1_keepalive(&t->resp) && kind != H1_B_EOF &&
                   t->reqf.done && t->uout.head_off >= t->uout.head_len;
    f->st = F_BODY;
    attach(f, t->uc);
    t->uc = NULL;
    timer_set(w->loop, &f->uc->timer, f->ups->cu->read_timeout, fetch_timeout);
    fetch_pump(f);
    return true;
}

bool cfetch_continue(struct txn *t, struct cache_obj *fill, const struct h1_chunked *ch,
                     bool chunked)
{
    (void)chunked;
    return start_body(t, fill, t->resf.kind, t->resf.left, ch);
}

bool cfetch_continue_raw(struct txn *t, struct cache_obj *fill, enum h1_body kind,
                         uint64_t content_length)
{
    return start_body(t, fill, kind, kind == H1_B_LENGTH ? content_length : 0, NULL);
}

/* ---- revalidating in the background ---- */

static void connect_next(struct cfetch *f);

bool cfetch_revalidate(struct txn *t, struct cache_obj *stale)
{
    struct worker *w = t->c->w;
    struct ctx *cx = t->cx;
    if (t->ups == NULL || w->cwk == NULL || w->draining || t->uout.head_len == 0)
        return false;
    struct cfetch *f = fetch_new(t);
    if (f == NULL)
        return false;
    f->ups = t->ups;
    f->stale = cache_obj_ref(stale);
    f->req = pool_alloc(f->pool, t->uout.head_len);
    char *key = pool_alloc(f->pool, cx->key.len + 1);
    f->req_fields = pool_alloc(f->pool, (cx->nfields + 1) * sizeof(*f->req_fields));
    if (f->req == NULL || key == NULL || f->req_fields == NULL) {
        fetch_end(f, false);
        return true; /* the claim was released */
    }
    memcpy(f->req, t->uout.head, t->uout.head_len);
    f->req_len = t->uout.head_len;
    memcpy(key, cx->key.p, cx->key.len);
    cache_key_set(&f->key, key, cx->key.len);
    for (size_t i = 0; i < cx->nfields; i++) {
        struct str n = cx->fields[i].name, v = cx->fields[i].value;
        char *np = pool_strndup(f->pool, n.p, n.len);
        char *vp = pool_strndup(f->pool, v.p ? v.p : "", v.len);
        if (np == NULL || vp == NULL) {
            fetch_end(f, false);
            return true;
        }
        f->req_fields[i] = (struct h1_field){ str_make(np, n.len), str_make(vp, v.len) };
    }
    f->req_nfields = cx->nfields;
    f->fp = cx->fp;
    f->req_auth = cx->auth;
    f->req_time = loop_wall(w->loop);
    connect_next(f);
    return true;
}

static void connect_next(struct cfetch *f)
{
    const struct cfg_upstream *cu = f->ups->cu;
    /* a background refresh has no client: no hash key, no sticky cookie */
    static const struct ups_key nokey = { .sticky = -1 };
    for (;;) {
        if (f->held != 0) {
            ups_unhold(f->ups, (unsigned)(f->held - 1));
            f->held = 0;
        }
        int srv = ups_pick(f->ups, &nokey, f->tried);
        if (srv < 0) {
            fetch_end(f, false);
            return;
        }
        f->held = srv + 1;
        if (srv < 64)
            f->tried |= 1ull << srv;
        struct uconn *uc = ups_take_idle(f->ups, (unsigned)srv);
        if (uc != NULL) {
            attach(f, uc);
            uc->nreq++;
            uc->writable = true;
            f->st = F_SEND;
            timer_set(f->w->loop, &uc->timer, cu->send_timeout, fetch_timeout);
            fetch_pump(f);
            return;
        }
        int err = 0;
        uc = ups_connect(f->ups, (unsigned)srv, fetch_event, &err);
        if (uc == NULL)
            continue;
        attach(f, uc);
        uc->nreq++;
        f->st = F_CONNECT;
        timer_set(f->w->loop, &uc->timer, cu->connect_timeout, fetch_timeout);
        return;
    }
}

/* The connection broke before an answer: another server or connection. */
static void retry(struct cfetch *f)
{
    struct uconn *uc = f->uc;
    bool again = f->req != NULL && f->st != F_BODY && f->resp.fields == NULL;
    if (again && uc != NULL && uc->reused && !f->replayed) {
        f->replayed = true;
        if (uc->srv < 64)
            f->tried &= ~(1ull << uc->srv);
    }
    f->uc = NULL;
    ups_close(uc);
    f->req_off = 0;
    if (again)
        connect_next(f);
    else
        fetch_end(f, false);
}

/* ---- I/O ---- */

static ssize_t up_read(struct uconn *uc)
{
    if (buf_get(&uc->rbuf) < 0)
        return -ENOMEM;
    if (buf_room(&uc->rbuf) == 0) {
        buf_compact(&uc->rbuf);
        if (buf_room(&uc->rbuf) == 0)
            return -ENOBUFS;
    }
    for (;;) {
        ssize_t n = read(uc->ev.fd, buf_tail(&uc->rbuf), buf_room(&uc->rbuf));
        if (n > 0) {
            uc->rbuf.end += (uint32_t)n;
            return n;
        }
        if (n == 0) {
            uc->readable = false;
            return 0;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN) {
            uc->readable = false;
            return -EAGAIN;
        }
        return -err;
    }
}

/* Stores the body bytes at the start of the buffer. 1 when the body is
 * complete, 0 to read more, -1 on a framing error or a failed store. */
static int take_body(struct cfetch *f)
{
    struct buf *b = &f->uc->rbuf;
    while (buf_len(b) > 0) {
        const char *p = buf_head(b);
        size_t n = buf_len(b);
        if (f->kind == H1_B_LENGTH) {
            size_t take = n < f->left ? n : (size_t)f->left;
            if (cache_append(f->c, f->fill, p, take) != 0)
                return -1;
            f->left -= take;
            buf_consume(b, take);
            if (f->left == 0)
                return 1;
        } else if (f->kind == H1_B_CHUNKED) {
            char tmp[16384];
            size_t piece = n < sizeof(tmp) ? n : sizeof(tmp), dlen = 0;
            ssize_t used = h1_chunked_scan(&f->ch, p, piece, tmp, &dlen);
            if (used < 0 || (dlen > 0 && cache_append(f->c, f->fill, tmp, dlen) != 0))
                return -1;
            buf_consume(b, (size_t)used);
            if (f->ch.state == H1_CH_DONE)
                return 1;
        } else {
            if (cache_append(f->c, f->fill, p, n) != 0)
                return -1;
            buf_consume(b, n);
        }
    }
    if (f->kind == H1_B_LENGTH && f->left == 0)
        return 1;
    if (f->kind == H1_B_NONE)
        return 1;
    return 0;
}

static void body_done(struct cfetch *f)
{
    cache_complete(f->c, f->fill);
    cache_obj_unref(f->fill);
    f->fill = NULL;
    fetch_end(f, f->keepalive && buf_len(&f->uc->rbuf) == 0);
}

static void pump_body(struct cfetch *f)
{
    for (;;) {
        int rc = take_body(f);
        if (rc < 0) {
            fetch_end(f, false);
            return;
        }
        if (rc > 0) {
            body_done(f);
            return;
        }
        if (!f->uc->readable)
            return;
        ssize_t n = up_read(f->uc);
        if (n == -EAGAIN)
            return;
        if (n == 0 && f->kind == H1_B_EOF) {
            body_done(f);
            return;
        }
        if (n <= 0) {
            fetch_end(f, false); /* cut short: never complete */
            return;
        }
        timer_set(f->w->loop, &f->uc->timer, f->ups->cu->read_timeout, fetch_timeout);
    }
}

/* The response to a background revalidation. */
static void got_head(struct cfetch *f)
{
    struct h1_msg *r = &f->resp;
    int64_t now = loop_wall(f->w->loop);
    enum h1_body kind = h1_response_body(r, H1_M_GET);
    if (r->status == 304) {
        struct cache_view v;
        cache_obj_view(f->stale, &v);
        const struct h1_field *et = h1_find(r, STR_LIT("etag"));
        struct cache_head h;
        if ((et == NULL || v.etag.len == 0 || etag_weak_eq(et->value, v.etag)) &&
            chead_update(f->pool, &v, r, f->req_time, now, &h) == 0)
            cache_obj_unref(cache_update(f->c, f->stale, &h));
        buf_consume(&f->uc->rbuf, r->head_len);
        fetch_end(f, h1_keepalive(r));
        return;
    }
    struct chead_in in = {
        .resp = r,
        .req_time = f->req_time,
        .resp_time = now,
        .req_fields = f->req_fields,
        .req_nfields = f->req_nfields,
        .fp = &f->fp,
        .get = true,
        .req_auth = f->req_auth,
        .max_object = f->w->cfg->cache.max_object,
        .body_len = kind == H1_B_LENGTH ? r->content_length
                    : kind == H1_B_NONE ? 0
                                        : CACHE_LEN_UNKNOWN,
    };
    struct cache_head h;
    if (r->status >= 500 || chead_build(f->pool, &in, &h) != STORE_OK) {
        fetch_end(f, false); /* keep serving what we have until it expires */
        return;
    }
    struct cache_obj *o = cache_obj_new(f->c, &f->key);
    if (o == NULL || cache_publish(f->c, o, &h) != 0) {
        cache_obj_unref(o);
        fetch_end(f, false);
        return;
    }
    buf_consume(&f->uc->rbuf, r->head_len);
    f->fill = o;
    f->kind = kind;
    f->left = r->content_length;
    h1_chunked_init(&f->ch);
    f->keepalive = h1_keepalive(r) && kind != H1_B_EOF;
    f->st = F_BODY;
    pump_body(f);
}

static void pump_head(struct cfetch *f)
{
    struct uconn *uc = f->uc;
    for (;;) {
        if (buf_len(&uc->rbuf) > 0) {
            if (f->resp.fields == NULL) {
                struct h1_field *fl = pool_alloc(f->pool, MAX_FIELDS * sizeof(*fl));
                if (fl == NULL) {
                    fetch_end(f, false);
                    return;
                }
                h1_msg_init(&f->resp, fl, MAX_FIELDS);
            }
            struct h1_limits hl = { .max_head = 65536, .max_fields = MAX_FIELDS,
                                    .max_target = 65536 };
            int rc = h1_parse_response(buf_head(&uc->rbuf), buf_len(&uc->rbuf), &f->resp, &hl);
            if (rc > 0) {
                if (f->resp.status < 200) { /* interim: skip */
                    buf_consume(&uc->rbuf, f->resp.head_len);
                    h1_msg_init(&f->resp, f->resp.fields, MAX_FIELDS);
                    continue;
                }
                got_head(f);
                return;
            }
            if (rc == -EBADMSG || (buf_room(&uc->rbuf) == 0 && uc->rbuf.start == 0 &&
                                   buf_grow(&uc->rbuf, hl.max_head + 1) < 0)) {
                fetch_end(f, false);
                return;
            }
        }
        if (!uc->readable)
            return;
        ssize_t n = up_read(uc);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            if (buf_len(&uc->rbuf) == 0 && f->resp.nfields == 0)
                retry(f);
            else
                fetch_end(f, false);
            return;
        }
        timer_set(f->w->loop, &uc->timer, f->ups->cu->read_timeout, fetch_timeout);
    }
}

static void pump_send(struct cfetch *f)
{
    struct uconn *uc = f->uc;
    while (f->req_off < f->req_len) {
        if (!uc->writable)
            return;
        ssize_t n = write(uc->ev.fd, f->req + f->req_off, f->req_len - f->req_off);
        if (n == -1) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN) {
                uc->writable = false;
                return;
            }
            retry(f);
            return;
        }
        f->req_off += (size_t)n;
    }
    f->st = F_HEAD;
    timer_set(f->w->loop, &uc->timer, f->ups->cu->read_timeout, fetch_timeout);
    pump_head(f);
}

static void fetch_pump(struct cfetch *f)
{
    switch (f->st) {
    case F_SEND:
        pump_send(f);
        break;
    case F_HEAD:
        pump_head(f);
        break;
    case F_BODY:
        pump_body(f);
        break;
    default:
        break;
    }
}

static void fetch_event(struct loop *l, struct ev *e, uint32_t events)
{
    struct uconn *uc = container_of(e, struct uconn, ev);
    if (uc->ev.fd < 0)
        return;
    struct cfetch *f = uc->owner;
    if (f == NULL || f->magic != CFETCH_MAGIC)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        uc->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        uc->writable = true;
    if (events & EPOLLRDHUP)
        uc->rdhup = true;
    if (f->st == F_CONNECT) {
        if (!(events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
            return;
        if (sock_error(uc->ev.fd) != 0) {
            retry(f);
            return;
        }
        uc->connected = true;
        timer_cancel(l, &uc->timer);
        f->st = F_SEND;
    }
    fetch_pump(f);
}

static void fetch_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct uconn *uc = container_of(tm, struct uconn, timer);
    struct cfetch *f = uc->owner;
    if (f->st == F_CONNECT)
        retry(f);
    else
        fetch_end(f, false);
}
