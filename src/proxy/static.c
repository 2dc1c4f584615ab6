/*
 * Static files: the route action "static" (docs/static.md).
 *
 * A request becomes a path under the route's root, checked twice: here,
 * after percent-decoding, a "." or ".." segment (however it was encoded), a
 * NUL or a hidden name is refused; then the kernel resolves the path with
 * RESOLVE_BENEATH (fcache.c), so no symlink leads out of the root either.
 * Each refusal is logged with its reason.
 *
 * The response is a head built here (validators from the open-file cache)
 * and a list of segments: memory (multipart boundaries) and file ranges.
 * File bytes go with sendfile(2) when the client connection is a plain
 * socket, else (TLS, compression, or "sendfile: false") they are read into a
 * buffer and written, so the same handler serves any client side. Either
 * way the client's writable flag paces it: nothing is read ahead of what
 * the socket takes.
 *
 * Conditional requests follow RFC 9110 §13.2.2 (If-Match,
 * If-Unmodified-Since, If-None-Match, If-Modified-Since, then If-Range);
 * ranges §14 (one range: 206 with Content-Range; several: 206
 * multipart/byteranges; none satisfiable: 416).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "core/sock.h"
#include "http/negotiate.h"
#include "proxy/fcache.h"
#include "proxy/proxy_int.h"

/* What the request said that the handler needs, copied into the arena. */
struct sreq {
    struct str path; /* percent-decoded, without the query */
    struct str query; /* with its '?', or empty */
    struct str raw_path; /* as sent, without the query */
    struct str range, if_range, inm, ims, im, ius;
};

struct seg {
    const char *mem; /* sent first */
    size_t mlen;
    uint64_t foff, flen; /* then this file range */
};

struct sfile {
    struct sreq rq;
    struct fentry *e;
    int fd;              /* the representation sent (identity, .gz, .br) */
    struct seg *segs;
    size_t nsegs, cur;
    size_t moff;         /* in segs[cur].mem */
    uint64_t fdone;      /* of segs[cur].flen */
    bool use_sendfile;
    struct buf rb;       /* file bytes read (copy and compress modes) */
    uint64_t body_bytes; /* for the access log */
};

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

/* ---- conditional requests (RFC 9110 §13.2.2) ---- */

/* Returns 0 to go on, 304 or 412. */
static int preconditions(const struct txn *t, const struct fvar *v, const struct fentry *e)
{
    const struct sreq *rq = &t->sf->rq;
    struct str etag = str_make(v->etag, v->etag_len);
    int64_t d;
    if (rq->im.p != NULL) {
        if (!http_etag_match(rq->im, etag, false))
            return 412;
    } else if (rq->ius.p != NULL && http_parse_date(rq->ius, &d) == 0 && e->mtime > d) {
        return 412;
    }
    if (rq->inm.p != NULL) {
        if (http_etag_match(rq->inm, etag, true))
            return 304;
    } else if (rq->ims.p != NULL && http_parse_date(rq->ims, &d) == 0 && e->mtime <= d) {
        return 304;
    }
    return 0;
}

/* If-Range (§13.1.5): the range applies only when the validator matches
 * the current representation (strong comparison, or the exact date). */
static bool if_range_ok(const struct sreq *rq, const struct fvar *v, const struct fentry *e)
{
    if (rq->if_range.p == NULL)
        return true;
    struct str ir = str_trim(rq->if_range);
    if (ir.len > 0 && (ir.p[0] == '"' || ir.p[0] == 'W'))
        return http_etag_match(ir, str_make(v->etag, v->etag_len), false);
    int64_t d;
    return http_parse_date(ir, &d) == 0 && d == e->mtime;
}

/* ---- the response head ---- */

struct hb {
    char *p;
    size_t len, cap;
};

static void hput(struct hb *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hput(struct hb *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->p + h->len, h->cap - h->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        h->len = MIN(h->len + (size_t)n, h->cap);
}

static const char *conn_field(const struct txn *t)
{
    return !t->keepalive ? "Connection: close\r\n"
           : t->req.version < 11 ? "Connection: keep-alive\r\n"
                                 : "";
}

/* ---- sending ---- */

/* sendfile(2) writes to the socket itself: right for a plain TCP client,
 * wrong for a TLS one (unless the kernel does the TLS, kTLS) or an HTTP/2
 * stream; those get the copy path (pread into a buffer, then cli_send). */
static bool can_sendfile(const struct txn *t)
{
    /* TLS: the records are made in user space (no per-connection kTLS
     * send yet), so file bytes go by the copy path and cli_send */
    return t->h2 == NULL && t->c->tls == NULL;
}

static void sf_release(void *arg)
{
    struct sfile *sf = arg;
    buf_put(&sf->rb);
    if (sf->e != NULL)
        fcache_unref(sf->e);
    sf->e = NULL;
}

static void finish(struct txn *t)
{
    t->resf.bytes = t->sf->body_bytes;
    t->phase = T_DONE;
    cli_done(t);
}

static void client_broke(struct txn *t)
{
    t->reason = "client_closed";
    cli_abort(t);
}

/* Reads the next file bytes of the current segment into sf->rb. Returns
 * bytes read (> 0) or -errno (-EIO when the file shrank). */
static ssize_t read_block(struct sfile *sf)
{
    struct seg *s = &sf->segs[sf->cur];
    if (buf_get(&sf->rb) < 0)
        return -ENOMEM;
    size_t want = (size_t)MIN((uint64_t)sf->rb.cap, s->flen - sf->fdone);
    for (;;) {
        ssize_t n = pread(sf->fd, sf->rb.data, want, (off_t)(s->foff + sf->fdone));
        if (n > 0) {
            sf->rb.start = 0;
            sf->rb.end = (uint32_t)n;
            return n;
        }
        if (n == 0)
            return -EIO;
        if (errno != EINTR)
            return -errno;
    }
}

/* One step of sending; returns 1 on progress, 0 when blocked, -1 when the
 * transaction ended. */
static int send_step(struct txn *t)
{
    struct conn *c = t->c;
    struct sfile *sf = t->sf;
    int fd = c->ev.fd; /* sendfile only: everything else goes by cli_send */
    if (sf->cur == sf->nsegs) { /* body done */
        if (t->bo != NULL) {
            int rc = bodyout_finish(t);
            if (rc == -EAGAIN)
                return 0;
            if (rc < 0) {
                client_broke(t);
                return -1;
            }
        } else if (t->cout.head_off < t->cout.head_len) {
            ssize_t n = cli_send(t, &t->cout, NULL, 0);
            if (n == -EAGAIN)
                return 0;
            if (n < 0) {
                client_broke(t);
                return -1;
            }
            return 1;
        }
        finish(t);
        return -1;
    }
    struct seg *s = &sf->segs[sf->cur];
    if (sf->moff < s->mlen) { /* boundary text (and the head) */
        ssize_t n = cli_send(t, &t->cout, s->mem + sf->moff, s->mlen - sf->moff);
        if (n < 0)
            return n == -EAGAIN ? 0 : (client_broke(t), -1);
        sf->moff += (size_t)n;
        return 1;
    }
    if (sf->fdone == s->flen) {
        sf->cur++;
        sf->moff = 0;
        sf->fdone = 0;
        return 1;
    }
    if (buf_len(&sf->rb) > 0) { /* copy and compress modes */
        ssize_t n = t->bo != NULL ? bodyout_write(t, buf_head(&sf->rb), buf_len(&sf->rb))
                                  : cli_send(t, &t->cout, buf_head(&sf->rb), buf_len(&sf->rb));
        if (n < 0)
            return n == -EAGAIN ? 0 : (client_broke(t), -1);
        buf_consume(&sf->rb, (size_t)n);
        sf->fdone += (uint64_t)n;
        sf->body_bytes += (uint64_t)n;
        return 1;
    }
    if (!sf->use_sendfile || t->bo != NULL) {
        ssize_t n = read_block(sf);
        if (n < 0) {
            log_warn("static: reading %s: %s", sf->e->path, strerror((int)-n));
            t->reason = "static_read_error";
            cli_abort(t);
            return -1;
        }
        return 1;
    }
    if (t->cout.head_off < t->cout.head_len) {
        /* the head with MSG_MORE: it leaves in one segment with the file */
        struct iovec iov = { t->cout.head + t->cout.head_off,
                             t->cout.head_len - t->cout.head_off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = sendmsg(fd, &mh, MSG_MORE | MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EAGAIN) {
                c->writable = false;
                return 0;
            }
            if (errno == EINTR)
                return 1;
            client_broke(t);
            return -1;
        }
        t->cout.head_off += (size_t)n;
        return 1;
    }
    off_t off = (off_t)(s->foff + sf->fdone);
    size_t want = (size_t)MIN(s->flen - sf->fdone, (uint64_t)(1u << 20));
    ssize_t n = sendfile(fd, sf->fd, &off, want);
    if (n == -1) {
        if (errno == EAGAIN) {
            c->writable = false;
            return 0;
        }
        if (errno == EINTR)
            return 1;
        client_broke(t);
        return -1;
    }
    if (n == 0) { /* the file shrank under us: the length is a lie now */
        log_warn("static: %s shrank while being sent", sf->e->path);
        t->reason = "static_file_changed";
        cli_abort(t);
        return -1;
    }
    sf->fdone += (uint64_t)n;
    sf->body_bytes += (uint64_t)n;
    return 1;
}

ssize_t static_pull(struct txn *t, char *dst, size_t max, bool *eof)
{
    struct sfile *sf = t->sf;
    size_t n = 0;
    while (n < max && sf->cur < sf->nsegs) {
        struct seg *s = &sf->segs[sf->cur];
        if (sf->moff < s->mlen) {
            size_t k = MIN(max - n, s->mlen - sf->moff);
            memcpy(dst + n, s->mem + sf->moff, k);
            sf->moff += k;
            n += k;
            continue;
        }
        if (sf->fdone == s->flen) {
            sf->cur++;
            sf->moff = 0;
            sf->fdone = 0;
            continue;
        }
        size_t k = MIN(max - n, buf_len(&sf->rb));
        if (k > 0) { /* read by static_pump before the stream pulled */
            memcpy(dst + n, buf_head(&sf->rb), k);
            buf_consume(&sf->rb, k);
        } else {
            ssize_t r;
            do
                r = pread(sf->fd, dst + n, (size_t)MIN((uint64_t)(max - n), s->flen - sf->fdone),
                          (off_t)(s->foff + sf->fdone));
            while (r == -1 && errno == EINTR);
            if (r <= 0) {
                log_warn("static: reading %s: %s", sf->e->path,
                         r == 0 ? "the file shrank" : strerror(errno));
                return -EIO;
            }
            k = (size_t)r;
        }
        sf->fdone += k;
        sf->body_bytes += k;
        n += k;
    }
    *eof = sf->cur == sf->nsegs;
    return n == 0 && !*eof ? -EAGAIN : (ssize_t)n;
}

void static_pump(struct txn *t)
{
    for (;;) {
        if (!cli_writable(t))
            break;
        int r = send_step(t);
        if (r < 0)
            return;
        if (r == 0)
            break; /* the write that would block cleared the flag */
    }
    cli_timer(t, t->c->cl->timeouts.send);
}

/* ---- building the response ---- */

/* Segments for <n> ranges of <v> (multipart when n > 1). Returns the body
 * length, or 0 with t->sf->segs NULL on out of memory. */
static uint64_t range_segs(struct txn *t, const struct http_range *r, int n,
                           const struct fvar *v, const char *ctype,
                           char *boundary)
{
    struct sfile *sf = t->sf;
    sf->segs = pool_calloc(t->pool, (size_t)(n + 1) * sizeof(*sf->segs));
    if (sf->segs == NULL)
        return 0;
    if (n == 1) {
        sf->segs[0] = (struct seg){ NULL, 0, r[0].first, r[0].last - r[0].first + 1 };
        sf->nsegs = 1;
        return sf->segs[0].flen;
    }
    uint64_t total = 0;
    for (int i = 0; i <= n; i++) {
        size_t cap = 256 + strlen(ctype);
        char *m = pool_alloc(t->pool, cap);
        if (m == NULL) {
            sf->segs = NULL;
            return 0;
        }
        int len;
        if (i < n)
            len = snprintf(m, cap,
                           "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                           i ? "\r\n" : "", boundary, ctype,
                           (unsigned long long)r[i].first, (unsigned long long)r[i].last,
                           (unsigned long long)v->size);
        else
            len = snprintf(m, cap, "\r\n--%s--\r\n", boundary);
        uint64_t flen = i < n ? r[i].last - r[i].first + 1 : 0;
        sf->segs[i] = (struct seg){ m, (size_t)len, i < n ? r[i].first : 0, flen };
        total += (uint64_t)len + flen;
    }
    sf->nsegs = (size_t)n + 1;
    return total;
}

/* Chooses the representation: a precompressed sibling when the client
 * accepts it and no range is asked for. Sets *enc. */
static const struct fvar *choose(const struct txn *t, const struct fentry *e, unsigned *enc)
{
    *enc = 0;
    if (t->has_range || (e->gz.fd < 0 && e->br.fd < 0))
        return &e->id;
    unsigned have = (e->gz.fd >= 0 ? HTTP_ENC_GZIP : 0) | (e->br.fd >= 0 ? HTTP_ENC_BR : 0);
    unsigned pick = http_pick_encoding(t->accept_enc, have);
    if (pick == HTTP_ENC_BR) {
        *enc = pick;
        return &e->br;
    }
    if (pick == HTTP_ENC_GZIP) {
        *enc = pick;
        return &e->gz;
    }
    return &e->id;
}

static void respond(struct txn *t, struct fentry *e)
{
    struct sfile *sf = t->sf;
    struct conn *c = t->c;
    unsigned enc;
    const struct fvar *v = choose(t, e, &enc);
    bool vary = e->gz.fd >= 0 || e->br.fd >= 0;
    int pre = preconditions(t, v, e);
    if (pre == 412) {
        txn_error(t, 412, "http_request_denied", "A precondition failed.");
        return;
    }
    int status = pre == 304 ? 304 : 200;
    struct http_range rr[HTTP_RANGE_MAX];
    int nr = -EINVAL;
    if (status == 200 && sf->rq.range.p != NULL && t->req.meth == H1_M_GET &&
        if_range_ok(&sf->rq, v, e))
        nr = http_parse_range(sf->rq.range, v->size, rr, HTTP_RANGE_MAX);
    if (nr == 0) {
        char *x = pool_alloc(t->pool, 64);
        if (x != NULL)
            snprintf(x, 64, "Content-Range: bytes */%llu\r\n", (unsigned long long)v->size);
        t->reason = "static_range_not_satisfiable";
        txn_local(t, 416, "text/plain; charset=utf-8", "416 Range Not Satisfiable\n", 26, x);
        return;
    }
    /* compression on the way, when no sibling was chosen */
    t->status = status;
    if (status == 200 && enc == 0 && nr < 0 && e->id.size > 0 &&
        compress_candidate(t, str_cstr(e->mime), true, v->size)) {
        vary = true;
        unsigned z = http_pick_encoding(t->accept_enc, t->route->compress->encodings);
        if (z != 0 && t->req.meth == H1_M_GET && t->h2 == NULL) {
            if (compress_start(t, z) < 0) {
                txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                return;
            }
            enc = z;
        }
    }
    if (status == 200 && nr > 0)
        status = 206;
    t->status = status;
    t->zenc = enc;
    sf->fd = v->fd;
    sf->use_sendfile = t->route->stat->sendfile && t->bo == NULL && can_sendfile(t);
    char boundary[40];
    snprintf(boundary, sizeof(boundary), "%016llx%08x",
             (unsigned long long)(c->w->seq++ ^ ((uint64_t)e->ino << 20)),
             (unsigned)(e->mtime & 0xffffffff));
    uint64_t blen = v->size;
    if (status == 206) {
        blen = range_segs(t, rr, nr, v, e->mime, boundary);
    } else if (status == 200) {
        sf->segs = pool_calloc(t->pool, sizeof(*sf->segs));
        if (sf->segs != NULL) {
            sf->segs[0] = (struct seg){ NULL, 0, 0, v->size };
            sf->nsegs = 1;
        }
    } else {
        sf->segs = pool_calloc(t->pool, sizeof(*sf->segs)); /* 304: none */
    }
    if (sf->segs == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (t->req.meth == H1_M_HEAD || status == 304)
        sf->nsegs = 0;
    if (!t->reqf.done || c->w->draining)
        t->keepalive = false; /* a request body we do not read */
    struct hb h = { .cap = 1024 };
    h.p = pool_alloc(t->pool, h.cap);
    if (h.p == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    hput(&h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, h1_reason(status), worker_date(c->w));
    if (status == 206 && nr > 1)
        hput(&h, "Content-Type: multipart/byteranges; boundary=%s\r\n", boundary);
    else if (status != 304)
        hput(&h, "Content-Type: %s\r\n", e->mime);
    if (status == 206 && nr == 1)
        hput(&h, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)rr[0].first,
             (unsigned long long)rr[0].last, (unsigned long long)v->size);
    if (t->bo != NULL) {
        if (t->bo->chunked)
            hput(&h, "Transfer-Encoding: chunked\r\n");
        else
            t->keepalive = false;
    } else if (status != 304) {
        hput(&h, "Content-Length: %llu\r\n", (unsigned long long)blen);
    }
    hput(&h, "Last-Modified: %.*s\r\n", (int)e->lastmod_len, e->lastmod);
    hput(&h, "ETag: %s%.*s\r\n", t->bo != NULL ? "W/" : "", (int)v->etag_len, v->etag);
    if (enc != 0)
        hput(&h, "Content-Encoding: %s\r\n", http_enc_name(enc));
    if (vary)
        hput(&h, "Vary: Accept-Encoding\r\n");
    hput(&h, "Accept-Ranges: bytes\r\n%s\r\n", conn_field(t));
    if (h.len >= h.cap) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    t->cout = (struct outq){ h.p, h.len, 0 };
    t->head_sent = true;
    t->phase = T_FILE;
    static_pump(t);
}

void static_start(struct txn *t)
{
    const struct cfg_static *cs = t->route->stat;
    struct sfile *sf = t->sf;
    if (sf == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (pool_on_destroy(t->pool, sf_release, sf) < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (t->req.meth != H1_M_GET && t->req.meth != H1_M_HEAD) {
        t->reason = "static_method";
        txn_local(t, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23,
                  "Allow: GET, HEAD\r\n");
        return;
    }
    const char *why = NULL;
    int st = decode_path(t, &sf->rq, &why);
    if (st == 0)
        st = check_segments(cs, sf->rq.path, &why);
    if (st != 0) {
        refuse(t, st, why, st == 400 ? "The path is malformed." :
                           st == 403 ? "The path leaves the directory." :
                                       "No such file.");
        return;
    }
    struct str rel = sf->rq.path;
    if (cs->strip_prefix) {
        size_t pl = t->route->path_len;
        while (pl > 0 && t->route->path[pl - 1] == '/')
            pl--;
        if (rel.len < pl || memcmp(rel.p, t->route->path, pl) != 0) {
            refuse(t, 404, "static_not_found", "No such file.");
            return;
        }
        rel.p += pl;
        rel.len -= pl;
    }
    while (rel.len > 0 && rel.p[0] == '/') {
        rel.p++;
        rel.len--;
    }
    bool dir_req = rel.len == 0 || rel.p[rel.len - 1] == '/';
    struct fentry *e = NULL;
    int rc;
    if (dir_req && cs->index != NULL) {
        size_t il = strlen(cs->index);
        char *p = pool_alloc(t->pool, rel.len + il + 1);
        if (p == NULL) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return;
        }
        memcpy(p, rel.p, rel.len);
        memcpy(p + rel.len, cs->index, il + 1);
        rc = fcache_open(t->c->gen, cs, p, rel.len + il, &e);
        if (rc == 0 && e->regular) {
            sf->e = e;
            respond(t, e);
            return;
        }
        if (e != NULL) {
            fcache_unref(e);
            e = NULL;
        }
        if (rc != -ENOENT && rc != 0) {
            refuse(t, rc == -EXDEV || rc == -ELOOP ? 403 : 404,
                   rc == -EXDEV || rc == -ELOOP ? "static_symlink_escape" : "static_not_found",
                   "No such file.");
            return;
        }
    }
    while (rel.len > 0 && rel.p[rel.len - 1] == '/')
        rel.len--;
    rc = fcache_open(t->c->gen, cs, rel.p, rel.len, &e);
    if (rc < 0) {
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
    respond(t, e);
}

void static_gen_fini(struct gen *g)
{
    fcache_free(g);
}
