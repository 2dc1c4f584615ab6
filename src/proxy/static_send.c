/*
 * Static files, the response: conditional requests (RFC 9110 §13.2.2: If-Match,
 * If-Unmodified-Since, If-None-Match, If-Modified-Since, then If-Range),
 * ranges (§14: one range, 206 with Content-Range; several, 206
 * multipart/byteranges; none satisfiable, 416), the representation (a
 * precompressed sibling, or compression on the way), the head, and the
 * bytes.
 *
 * The body is a list of segments: memory (multipart boundaries) and file
 * ranges. File bytes go with sendfile(2) when the client connection is a
 * plain socket, else (TLS, compression, or "sendfile: false") they are read
 * into a buffer and written, so the same handler serves any client side.
 * Either way the client's writable flag paces it: nothing is read ahead of
 * what the socket takes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "http/negotiate.h"
#include "proxy/static_int.h"

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

void static_sf_release(void *arg)
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

/* After the last segment: what the compressor or the head still holds,
 * then the end of the transaction. Returns as send_step. */
static int send_end(struct txn *t)
{
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

/* The sendfile(2) path: the head first (with MSG_MORE, so it leaves in one
 * segment with the file's first bytes), then the file range of <s>.
 * Returns as send_step. */
static int send_file(struct txn *t, const struct seg *s)
{
    struct conn *c = t->c;
    struct sfile *sf = t->sf;
    int fd = c->ev.fd;
    ssize_t n;
    if (t->cout.head_off < t->cout.head_len) {
        struct iovec iov = { t->cout.head + t->cout.head_off,
                             t->cout.head_len - t->cout.head_off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        n = sendmsg(fd, &mh, MSG_MORE | MSG_NOSIGNAL);
    } else {
        off_t off = (off_t)(s->foff + sf->fdone);
        size_t want = (size_t)MIN(s->flen - sf->fdone, (uint64_t)(1u << 20));
        n = sendfile(fd, sf->fd, &off, want);
    }
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
    if (t->cout.head_off < t->cout.head_len) {
        t->cout.head_off += (size_t)n;
        return 1;
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

/* One step of sending; returns 1 on progress, 0 when blocked, -1 when the
 * transaction ended. */
static int send_step(struct txn *t)
{
    struct sfile *sf = t->sf;
    if (sf->cur == sf->nsegs)
        return send_end(t);
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
    return send_file(t, s);
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

/* What a response is made of, decided before its head is written. */
struct answer {
    const struct fvar *v; /* the representation */
    unsigned enc;         /* its content coding (0: identity) */
    bool vary;            /* Vary: Accept-Encoding */
    int nr;               /* ranges in rr (< 0: none asked or applicable) */
    struct http_range rr[HTTP_RANGE_MAX];
    char boundary[40];    /* of a multipart/byteranges body */
    uint64_t blen;        /* body length */
};

/* The body's segments for the status in t->status. -1: out of memory. */
static int respond_body(struct txn *t, const struct fentry *e, struct answer *a)
{
    struct sfile *sf = t->sf;
    a->blen = a->v->size;
    if (t->status == 206) {
        a->blen = range_segs(t, a->rr, a->nr, a->v, e->mime, a->boundary);
    } else if (t->status == 200) {
        sf->segs = pool_calloc(t->pool, sizeof(*sf->segs));
        if (sf->segs != NULL) {
            sf->segs[0] = (struct seg){ NULL, 0, 0, a->v->size };
            sf->nsegs = 1;
        }
    } else {
        sf->segs = pool_calloc(t->pool, sizeof(*sf->segs)); /* 304: none */
    }
    if (sf->segs == NULL)
        return -1;
    if (t->req.meth == H1_M_HEAD || t->status == 304)
        sf->nsegs = 0;
    return 0;
}

/* The response head into t->cout. -1: out of memory. */
static int respond_head(struct txn *t, const struct fentry *e, const struct answer *a)
{
    int status = t->status;
    struct hb h = { .cap = 1024 };
    h.p = pool_alloc(t->pool, h.cap);
    if (h.p == NULL)
        return -1;
    hput(&h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, h1_reason(status), worker_date(t->c->w));
    if (status == 206 && a->nr > 1)
        hput(&h, "Content-Type: multipart/byteranges; boundary=%s\r\n", a->boundary);
    else if (status != 304)
        hput(&h, "Content-Type: %s\r\n", e->mime);
    if (status == 206 && a->nr == 1)
        hput(&h, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)a->rr[0].first,
             (unsigned long long)a->rr[0].last, (unsigned long long)a->v->size);
    if (t->bo != NULL) {
        if (t->bo->chunked)
            hput(&h, "Transfer-Encoding: chunked\r\n");
        else
            t->keepalive = false;
    } else if (status != 304) {
        hput(&h, "Content-Length: %llu\r\n", (unsigned long long)a->blen);
    }
    hput(&h, "Last-Modified: %.*s\r\n", (int)e->lastmod_len, e->lastmod);
    hput(&h, "ETag: %s%.*s\r\n", t->bo != NULL ? "W/" : "", (int)a->v->etag_len, a->v->etag);
    if (a->enc != 0)
        hput(&h, "Content-Encoding: %s\r\n", http_enc_name(a->enc));
    if (a->vary)
        hput(&h, "Vary: Accept-Encoding\r\n");
    hput(&h, "Accept-Ranges: bytes\r\n%s\r\n", conn_field(t));
    if (h.len >= h.cap)
        return -1;
    t->cout = (struct outq){ h.p, h.len, 0 };
    return 0;
}

void static_respond(struct txn *t, struct fentry *e)
{
    struct sfile *sf = t->sf;
    struct conn *c = t->c;
    struct answer a = { .nr = -EINVAL };
    a.v = choose(t, e, &a.enc);
    a.vary = e->gz.fd >= 0 || e->br.fd >= 0;
    int pre = preconditions(t, a.v, e);
    if (pre == 412) {
        txn_error(t, 412, "http_request_denied", "A precondition failed.");
        return;
    }
    int status = pre == 304 ? 304 : 200;
    if (status == 200 && sf->rq.range.p != NULL && t->req.meth == H1_M_GET &&
        if_range_ok(&sf->rq, a.v, e))
        a.nr = http_parse_range(sf->rq.range, a.v->size, a.rr, HTTP_RANGE_MAX);
    if (a.nr == 0) {
        char *x = pool_alloc(t->pool, 64);
        if (x != NULL)
            snprintf(x, 64, "Content-Range: bytes */%llu\r\n", (unsigned long long)a.v->size);
        t->reason = "static_range_not_satisfiable";
        txn_local(t, 416, "text/plain; charset=utf-8", "416 Range Not Satisfiable\n", 26, x);
        return;
    }
    /* compression on the way, when no sibling was chosen */
    t->status = status;
    if (status == 200 && a.enc == 0 && a.nr < 0 && e->id.size > 0 &&
        compress_candidate(t, str_cstr(e->mime), true, a.v->size)) {
        a.vary = true;
        unsigned z = http_pick_encoding(t->accept_enc, t->route->compress->encodings);
        if (z != 0 && t->req.meth == H1_M_GET && t->h2 == NULL) {
            if (compress_start(t, z) < 0) {
                txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                return;
            }
            a.enc = z;
        }
    }
    if (status == 200 && a.nr > 0)
        status = 206;
    t->status = status;
    t->zenc = a.enc;
    sf->fd = a.v->fd;
    sf->use_sendfile = t->route->stat->sendfile && t->bo == NULL && can_sendfile(t);
    snprintf(a.boundary, sizeof(a.boundary), "%016llx%08x",
             (unsigned long long)(c->w->seq++ ^ ((uint64_t)e->ino << 20)),
             (unsigned)(e->mtime & 0xffffffff));
    if (!t->reqf.done || c->w->draining)
        t->keepalive = false; /* a request body we do not read */
    if (respond_body(t, e, &a) < 0 || respond_head(t, e, &a) < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    t->head_sent = true;
    t->phase = T_FILE;
    static_pump(t);
}
