/*
 * Answering from a stored object: the hit path.
 *
 * The head is three pieces written with the body in one writev: the stored
 * status line, the stored fields (both immutable in the object, so a hit
 * copies none of them), and a short suffix built per response: Server and
 * Via as the listener wants them, Age, Cache-Status, the framing and
 * Connection. A complete object goes out with Content-Length; one still
 * being filled goes out as it arrives, with Content-Length when the origin
 * gave one, else chunked (HTTP/1.1) or until close (HTTP/1.0), and the
 * transaction waits on the object for more bytes.
 *
 * From the same object it also answers conditionals (304, RFC 9110 §13,
 * RFC 9111 §4.3.2), a single byte range of a complete 200 (206, or 416,
 * RFC 9110 §14) and HEAD. On HTTP/2 the head goes out as HEADERS and the
 * HTTP/2 session pulls the body (pump_h2, cserve_pull).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "admin/metrics.h"
#include "core/macros.h"
#include "proxy/cache_ctx.h"
#include "proxy/cache_head.h"

/* Appending to a buffer without printf: the hit path formats a suffix per
 * response, and vsnprintf was the largest user-space cost of a hit. */
struct ab {
    char *p;
    size_t n, cap;
};

static void ab_put(struct ab *b, const char *s, size_t len)
{
    if (len > 0 && b->n + len <= b->cap) {
        memcpy(b->p + b->n, s, len);
        b->n += len;
    } else if (len > 0) {
        b->n = b->cap + 1; /* overflowed: the result is refused */
    }
}

static void ab_s(struct ab *b, struct str s)
{
    ab_put(b, s.p, s.len);
}

static void ab_c(struct ab *b, const char *s)
{
    ab_put(b, s, strlen(s));
}

static void ab_u(struct ab *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    ab_put(b, d + i, sizeof(d) - i);
}

static void ab_i(struct ab *b, int64_t v)
{
    if (v < 0) {
        ab_put(b, "-", 1);
        ab_u(b, (uint64_t)(-(v + 1)) + 1);
    } else {
        ab_u(b, (uint64_t)v);
    }
}

static void status_into(struct ab *b, struct ctx *cx, bool hit, bool has_ttl, int64_t ttl)
{
    ab_c(b, "Cache-Status: ");
    ab_c(b, cx->t->c->w->cfg->via_name);
    if (hit) {
        ab_c(b, "; hit");
    } else if (cx->fwd != NULL) {
        ab_c(b, "; fwd=");
        ab_c(b, cx->fwd);
    }
    if (!hit && cx->fwd_status != 0) {
        ab_c(b, "; fwd-status=");
        ab_u(b, (uint64_t)cx->fwd_status);
    }
    if (cx->stored)
        ab_c(b, "; stored");
    if (cx->collapsed)
        ab_c(b, "; collapsed");
    if (has_ttl) {
        ab_c(b, "; ttl=");
        ab_i(b, ttl);
    }
    if (cx->detail != NULL) {
        ab_c(b, "; detail=");
        ab_c(b, cx->detail);
    }
    ab_c(b, "\r\n");
}

struct str cserve_status(struct ctx *cx, bool hit, bool has_ttl, int64_t ttl)
{
    struct txn *t = cx->t;
    size_t cap = strlen(t->c->w->cfg->via_name) + 200;
    struct ab b = { pool_alloc(t->pool, cap), 0, cap };
    if (b.p == NULL)
        return STR_NULL;
    status_into(&b, cx, hit, has_ttl, ttl);
    return b.n <= cap ? str_make(b.p, b.n) : STR_NULL;
}

/* ---- conditionals and ranges ---- */

static bool cond_match(const struct ctx *cx, const struct cache_view *v)
{
    if (v->status / 100 != 2)
        return false; /* RFC 9110 §13.2.1: only for a 2xx */
    if (cx->inm.len > 0)
        return inm_matches(cx->inm, v->etag);
    if (cx->ims.len == 0)
        return false;
    int64_t ims = http_date_parse(cx->ims, cx->req_time);
    if (ims == DATE_NONE)
        return false;
    /* RFC 9111 §4.3.2: Last-Modified, else Date (the time received when
     * there was none) */
    int64_t lm = v->meta->last_modified != DATE_NONE ? v->meta->last_modified
                                                     : v->meta->date;
    return lm <= ims;
}

static bool if_range_ok(const struct ctx *cx, const struct cache_view *v)
{
    struct str ir = str_trim(cx->if_range);
    if (ir.len == 0)
        return true;
    if (ir.p[0] == '"' || (ir.len > 1 && ir.p[0] == 'W' && ir.p[1] == '/'))
        return etag_strong_eq(ir, v->etag); /* RFC 9110 §13.1.5 */
    int64_t d = http_date_parse(ir, cx->req_time);
    return d != DATE_NONE && d == v->meta->last_modified;
}

static bool digits(struct str s, uint64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return true;
}

/* One "bytes=a-b" range of <total>: 1 with [*start, *end), -1 when it is
 * unsatisfiable (416), 0 to ignore the field (invalid, several ranges). */
static int parse_range(struct str r, uint64_t total, uint64_t *start, uint64_t *end)
{
    r = str_trim(r);
    if (r.len < 6 || !str_ieq(str_make(r.p, 6), STR_LIT("bytes=")))
        return 0;
    struct str spec = str_trim(str_make(r.p + 6, r.len - 6));
    if (memchr(spec.p, ',', spec.len) != NULL)
        return 0;
    const char *dash = memchr(spec.p, '-', spec.len);
    if (dash == NULL)
        return 0;
    struct str a = str_trim(str_make(spec.p, (size_t)(dash - spec.p)));
    struct str b = str_trim(str_make(dash + 1, spec.len - (size_t)(dash - spec.p) - 1));
    uint64_t first, last;
    if (a.len == 0) { /* suffix: the last b bytes */
        if (!digits(b, &last))
            return 0;
        if (last == 0 || total == 0)
            return -1;
        *start = total > last ? total - last : 0;
        *end = total;
        return 1;
    }
    if (!digits(a, &first))
        return 0;
    if (b.len == 0)
        last = UINT64_MAX;
    else if (!digits(b, &last) || last < first)
        return 0;
    if (first >= total)
        return -1;
    *start = first;
    *end = last >= total ? total : last + 1;
    return 1;
}

/* ---- heads ---- */

/* Stored fields without those <drop> says to leave out. */
static struct str filter(struct pool *p, struct str fields, bool is304, struct str ncf)
{
    char *out = pool_alloc(p, fields.len + 1);
    if (out == NULL)
        return STR_NULL;
    size_t o = 0, i = 0;
    while (i < fields.len) {
        const char *eol = memchr(fields.p + i, '\n', fields.len - i);
        size_t end = eol ? (size_t)(eol - fields.p) + 1 : fields.len;
        struct str line = str_make(fields.p + i, end - i);
        const char *colon = memchr(line.p, ':', line.len);
        struct str name = str_make(line.p, colon ? (size_t)(colon - line.p) : 0);
        bool keep = true;
        /* RFC 9110 §15.4.5: no representation metadata in a 304 */
        if (is304 && name.len > 8 && str_ieq(str_make(name.p, 8), STR_LIT("content-")) &&
            !str_ieq_lit(name, "content-location"))
            keep = false;
        for (size_t j = 0; keep && j < ncf.len;) {
            size_t nl = strnlen(ncf.p + j, ncf.len - j);
            if (str_ieq(name, str_make(ncf.p + j, nl)))
                keep = false;
            j += nl + 1;
        }
        if (keep) {
            memcpy(out + o, line.p, line.len);
            o += line.len;
        }
        i = end;
    }
    return str_make(out, o);
}

enum smode { M_FULL = 0, M_304, M_206, M_416 };

static struct str suffix(struct ctx *cx, const struct cache_view *v, enum smode mode,
                         int64_t age, int64_t ttl, uint64_t total, uint64_t rstart,
                         uint64_t rend)
{
    struct txn *t = cx->t;
    const struct cfg_headers *hd = &t->c->cl->headers;
    const char *via_name = t->c->w->cfg->via_name;
    size_t cap = v->server.len + v->via.len + 2 * strlen(via_name) + 512;
    struct ab b = { pool_alloc(t->pool, cap), 0, cap };
    if (b.p == NULL)
        return STR_NULL;
    if (!hd->hide_server)
        ab_s(&b, v->server);
    if (hd->via || v->via.len) {
        ab_c(&b, "Via: ");
        ab_s(&b, v->via);
        if (hd->via) {
            ab_c(&b, v->via.len ? ", 1.1 " : "1.1 ");
            ab_c(&b, via_name);
        }
        ab_c(&b, "\r\n");
    }
    ab_c(&b, "Age: ");
    ab_i(&b, age);
    ab_c(&b, "\r\n");
    status_into(&b, cx, cx->fwd == NULL, true, ttl);
    if (mode == M_206) {
        ab_c(&b, "Content-Range: bytes ");
        ab_u(&b, rstart);
        ab_c(&b, "-");
        ab_u(&b, rend - 1);
        ab_c(&b, "/");
        ab_u(&b, total);
        ab_c(&b, "\r\nContent-Length: ");
        ab_u(&b, rend - rstart);
        ab_c(&b, "\r\n");
    } else if (mode == M_416) {
        ab_c(&b, "Content-Range: bytes */");
        ab_u(&b, total);
        ab_c(&b, "\r\nContent-Length: 0\r\n");
    } else if (mode == M_FULL && v->status != 204) {
        if (total != CACHE_LEN_UNKNOWN) {
            ab_c(&b, "Content-Length: ");
            ab_u(&b, total);
            ab_c(&b, "\r\n");
        } else if (cx->sv.chunked) {
            ab_c(&b, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (!t->keepalive)
        ab_c(&b, "Connection: close\r\n");
    else if (t->req.version < 11)
        ab_c(&b, "Connection: keep-alive\r\n");
    ab_c(&b, "\r\n");
    return b.n <= cap ? str_make(b.p, b.n) : STR_NULL;
}

int cserve_setup(struct ctx *cx, struct cache_obj *o)
{
    struct txn *t = cx->t;
    struct worker *w = t->c->w;
    struct serve *sv = &cx->sv;
    cache_unwait(&cx->wt); /* it may name another object */
    memset(sv, 0, sizeof(*sv));
    sv->o = o;
    struct cache_view v;
    cache_obj_view(o, &v);
    int64_t now = loop_wall(w->loop);
    int64_t age = fresh_age(v.meta, now);
    int64_t ttl = fresh_lifetime(v.meta, &cx->fp) - age;
    uint64_t blen;
    bool complete = cache_obj_state(o, &blen) == CB_COMPLETE;
    uint64_t total = complete ? blen : v.body_len;
    enum smode mode = M_FULL;
    uint64_t rstart = 0, rend = 0;
    if (cond_match(cx, &v)) {
        mode = M_304;
    } else if (cx->ranged && cx->get && v.status == 200 && complete && if_range_ok(cx, &v)) {
        int rr = parse_range(cx->range, total, &rstart, &rend);
        mode = rr > 0 ? M_206 : rr < 0 ? M_416 : M_FULL;
    }
    sv->body = !cx->head && (mode == M_FULL || mode == M_206) && v.status != 204;
    sv->end = mode == M_206 ? rend : total;
    if (sv->body && total == CACHE_LEN_UNKNOWN && t->h2 == NULL) {
        if (t->req.version >= 11)
            sv->chunked = true;
        else
            t->keepalive = false; /* the end of the body is the close */
    }
    if (w->draining)
        t->keepalive = false;
    cache_reader_init(o, &sv->rd, mode == M_206 ? rstart : 0);

    static const struct str lines[] = {
        { "HTTP/1.1 200 OK\r\n", 17 },
        { "HTTP/1.1 304 Not Modified\r\n", 27 },
        { "HTTP/1.1 206 Partial Content\r\n", 30 },
        { "HTTP/1.1 416 Range Not Satisfiable\r\n", 36 },
    };
    sv->head[0] = mode == M_FULL ? v.status_line : lines[mode];
    /* a qualified no-cache: those fields only after a validation */
    struct str ncf = cx->fwd_status == 304 ? STR_NULL : v.nocache_fields;
    bool is304 = mode == M_304 || mode == M_416;
    sv->head[1] = is304 || ncf.len ? filter(t->pool, v.fields, is304, ncf) : v.fields;
    sv->head[2] = suffix(cx, &v, mode, age, ttl, total, rstart, rend);
    if (sv->head[2].len == 0 || (sv->head[1].p == NULL && v.fields.len > 0))
        return -ENOMEM;
    sv->head_len = sv->head[0].len + sv->head[1].len + sv->head[2].len;
    static const int codes[] = { 0, 304, 206, 416 };
    t->status = mode == M_FULL ? v.status : codes[mode];
    t->head_sent = true;
    t->phase = T_CACHE;
    sv->started = true;
    return 0;
}

/* ---- writing ---- */

/* The iovecs of the current chunk frame [size line][data][CRLF]. */
static int chunk_iov(struct serve *sv, enum cache_bstate st, uint64_t blen,
                     struct iovec *iov, int max)
{
    if (!sv->c_active) {
        uint64_t avail = blen - sv->rd.pos;
        if (avail > 0) {
            sv->c_data = avail < 65536 ? avail : 65536;
            int n = snprintf(sv->cline, sizeof(sv->cline), "%llx\r\n",
                             (unsigned long long)sv->c_data);
            sv->cl_len = (size_t)n;
            sv->last = false;
        } else if (st == CB_COMPLETE && !sv->last_sent) {
            memcpy(sv->cline, "0\r\n\r\n", 5);
            sv->cl_len = 5;
            sv->c_data = 0;
            sv->last = true;
        } else {
            return 0;
        }
        sv->c_active = true;
        sv->c_sent = 0;
    }
    int k = 0;
    if (sv->c_sent < sv->cl_len)
        iov[k++] = (struct iovec){ sv->cline + sv->c_sent, sv->cl_len - sv->c_sent };
    uint64_t dsent = sv->c_sent > sv->cl_len ? MIN(sv->c_sent - sv->cl_len, sv->c_data) : 0;
    uint64_t dwant = sv->c_data - dsent, dgot = 0;
    if (dwant > 0) {
        int n = cache_read_iov(sv->o, &sv->rd, iov + k, max - k - 1, dwant);
        for (int i = 0; i < n; i++)
            dgot += iov[k + i].iov_len;
        k += n;
    }
    if (!sv->last && dgot == dwant) {
        uint64_t csent = sv->c_sent > sv->cl_len + sv->c_data
                             ? sv->c_sent - sv->cl_len - sv->c_data
                             : 0;
        static const char crlf[] = "\r\n";
        if (csent < 2)
            iov[k++] = (struct iovec){ (void *)(crlf + csent), 2 - csent };
    }
    return k;
}

/* <w> bytes were written: the head first, then the body (or its frame). */
static void account(struct serve *sv, size_t w)
{
    size_t h = MIN(w, sv->head_len - sv->head_off);
    sv->head_off += h;
    w -= h;
    if (w == 0)
        return;
    if (!sv->chunked) {
        cache_read_skip(sv->o, &sv->rd, w);
        sv->sent += w;
        return;
    }
    uint64_t total = sv->cl_len + sv->c_data + (sv->last ? 0 : 2);
    uint64_t take = MIN((uint64_t)w, total - sv->c_sent);
    uint64_t lo = MAX(sv->c_sent, sv->cl_len);
    uint64_t hi = MIN(sv->c_sent + take, sv->cl_len + sv->c_data);
    if (hi > lo) {
        cache_read_skip(sv->o, &sv->rd, (size_t)(hi - lo));
        sv->sent += hi - lo;
    }
    sv->c_sent += take;
    if (sv->c_sent == total) {
        sv->c_active = false;
        if (sv->last)
            sv->last_sent = true;
    }
}

static bool all_sent(const struct serve *sv, enum cache_bstate st, uint64_t blen)
{
    if (sv->head_off < sv->head_len)
        return false;
    if (!sv->body)
        return true;
    if (sv->chunked)
        return sv->last_sent;
    if (sv->end != CACHE_LEN_UNKNOWN)
        return sv->rd.pos >= sv->end;
    return st == CB_COMPLETE && sv->rd.pos == blen;
}

static int64_t fill_timeout(const struct txn *t)
{
    return t->ups != NULL ? t->ups->cu->read_timeout : 60000;
}

/* ---- HTTP/2 ----
 *
 * On a stream the head goes as HTTP/1.1 text to cli_send(), which turns it
 * into HEADERS (as for every response), and the session pulls the body
 * when the client's windows have room (cserve_pull, through txn_pull).
 * No chunked framing: DATA frames delimit the body. */

static void pump_h2(struct ctx *cx)
{
    struct txn *t = cx->t;
    struct serve *sv = &cx->sv;
    if (sv->head_off < sv->head_len) {
        char *h = pool_alloc(t->pool, sv->head_len);
        if (h == NULL) {
            t->reason = "proxy_internal_error";
            cli_abort(t);
            return;
        }
        size_t o = 0;
        for (int i = 0; i < 3; i++) {
            if (sv->head[i].len > 0)
                memcpy(h + o, sv->head[i].p, sv->head[i].len);
            o += sv->head[i].len;
        }
        struct outq q = { h, o, 0 };
        t->resf.done = !sv->body; /* says whether DATA follows the HEADERS */
        ssize_t n = cli_send(t, &q, NULL, 0);
        if (n < 0 && n != -EAGAIN) {
            t->reason = "client_closed";
            cli_abort(t);
            return;
        }
        sv->head_off = sv->head_len;
    }
    uint64_t blen;
    enum cache_bstate st = cache_obj_state(sv->o, &blen);
    if (all_sent(sv, st, blen)) {
        t->resf.bytes = sv->sent;
        cli_done(t);
        return;
    }
    if (st == CB_FAILED || st == CB_PASS) {
        t->reason = "cache_fill_failed";
        cli_abort(t);
        return;
    }
    static const char one = 0;
    struct outq none = { 0 };
    (void)cli_send(t, &none, &one, 1); /* "body bytes ready": the session pulls */
}

ssize_t cserve_pull(struct ctx *cx, char *dst, size_t max, bool *eof)
{
    struct serve *sv = &cx->sv;
    size_t n = 0;
    *eof = false;
    if (!sv->started || sv->head_off < sv->head_len)
        return -EAGAIN;
    for (;;) {
        uint64_t blen;
        enum cache_bstate st = cache_obj_state(sv->o, &blen);
        uint64_t lim = sv->end == CACHE_LEN_UNKNOWN ? blen : MIN(sv->end, blen);
        while (sv->body && n < max && lim > sv->rd.pos) {
            struct iovec iov[8];
            int k = cache_read_iov(sv->o, &sv->rd, iov, 8, MIN(lim - sv->rd.pos, max - n));
            size_t got = 0;
            for (int i = 0; i < k; i++) {
                memcpy(dst + n + got, iov[i].iov_base, iov[i].iov_len);
                got += iov[i].iov_len;
            }
            if (got == 0)
                break;
            cache_read_skip(sv->o, &sv->rd, got);
            sv->sent += got;
            n += got;
        }
        if (all_sent(sv, st, blen)) {
            *eof = true;
            return (ssize_t)n;
        }
        if (st == CB_FAILED || st == CB_PASS)
            return -EIO; /* the stream is reset: the response is cut */
        if (n > 0)
            return (ssize_t)n;
        if (cache_wait(sv->o, &cx->wt, sv->rd.pos) == 1)
            continue;
        return -EAGAIN; /* woken by the fill: pump_h2 asks to be pulled again */
    }
}

void cserve_pump(struct ctx *cx)
{
    struct txn *t = cx->t;
    struct serve *sv = &cx->sv;
    if (t->h2 != NULL) {
        pump_h2(cx);
        return;
    }
    for (;;) {
        struct iovec iov[24];
        int n = 0;
        size_t off = sv->head_off;
        for (int i = 0; i < 3; i++) {
            if (off >= sv->head[i].len) {
                off -= sv->head[i].len;
                continue;
            }
            iov[n++] = (struct iovec){ (void *)(sv->head[i].p + off), sv->head[i].len - off };
            off = 0;
        }
        uint64_t blen;
        enum cache_bstate st = cache_obj_state(sv->o, &blen);
        if (sv->body && sv->chunked) {
            n += chunk_iov(sv, st, blen, iov + n, 24 - n);
        } else if (sv->body) {
            uint64_t lim = sv->end == CACHE_LEN_UNKNOWN ? blen : MIN(sv->end, blen);
            if (lim > sv->rd.pos)
                n += cache_read_iov(sv->o, &sv->rd, iov + n, 24 - n, lim - sv->rd.pos);
        }
        if (n == 0) {
            if (all_sent(sv, st, blen)) {
                t->resf.bytes = sv->sent;
                cli_done(t);
                return;
            }
            if (st == CB_FAILED || st == CB_PASS) {
                t->reason = "cache_fill_failed"; /* the response is cut short */
                cli_abort(t);
                return;
            }
            if (cache_wait(sv->o, &cx->wt, sv->rd.pos) == 1)
                continue;
            sv->blocked = false;
            cli_timer(t, fill_timeout(t));
            return;
        }
        if (!cli_writable(t))
            break;
        ssize_t w = cli_sendv(t, iov, n);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            t->reason = "client_closed";
            cli_abort(t);
            return;
        }
        account(sv, (size_t)w);
    }
    sv->blocked = true; /* the client is not reading */
    cli_timer(t, t->c->cl->timeouts.send);
}

void cserve_wait_head(struct ctx *cx)
{
    struct txn *t = cx->t;
    struct cache_obj *b = cx->busy;
    bool first = !cx->waiting_head;
    cx->waiting_head = true;
    t->phase = T_CACHE;
    if (cache_wait(b, &cx->wt, UINT64_MAX) == 0) {
        /* the fill has its own timeouts; this only bounds the wait */
        int64_t guard = t->ups != NULL
                            ? t->ups->cu->connect_timeout + t->ups->cu->read_timeout
                            : 60000;
        if (first)
            cli_timer(t, guard);
        return;
    }
    cx->waiting_head = false;
    cli_timer_stop(t);
    enum cache_bstate st = cache_obj_state(b, NULL);
    if (cache_obj_ready(b) && (st == CB_FILLING || st == CB_COMPLETE)) {
        struct cache_view v;
        cache_obj_view(b, &v);
        int64_t ttl;
        if (cache_vary_match(v.vary.p, v.vary.len, cx->fields, cx->nfields) &&
            fresh_decide(v.meta, &cx->rq, &cx->fp, loop_wall(t->c->w->loop), &ttl) !=
                USE_REVALIDATE) {
            cache_obj_unref(cx->obj);
            cx->obj = b;
            cx->busy = NULL;
            cglue_count(cx, MG_CACHE_HIT); /* collapsed, or read from disk */
            if (cserve_setup(cx, cx->obj) != 0) {
                t->reason = "proxy_internal_error";
                cli_abort(t);
                return;
            }
            cserve_pump(cx);
            return;
        }
    }
    /* not for us (another variant, not storable, failed): go ourselves */
    cache_unwait(&cx->wt); /* it names the object */
    cache_obj_unref(b);
    cx->busy = NULL;
    cx->act = A_MISS;
    cx->collapsed = false;
    txn_forward(t);
}
