/*
 * Response bodies that do not go to the client byte for byte: compressed
 * on the way (compress.c), or re-framed as chunks because their length is
 * not known in advance (a compressed body, an AJP response without
 * Content-Length).
 *
 * The plain proxy path never comes here: it writes the upstream's bytes
 * with one writev (flow.c uconn_send). A struct bodyout exists only for the
 * responses that need it, so that path keeps its cost.
 *
 * Framing is done with writev and no copy: a chunk is its header (hex size
 * and CRLF, a few bytes kept here), the caller's data in place, and a CRLF.
 * A partial write leaves the rest of the same chunk for the next call; the
 * caller presents its data again from where the last call stopped, as the
 * flow of txn.c already does.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/uio.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

static void bo_free(void *arg)
{
    struct bodyout *bo = arg;
    buf_put(&bo->zb);
}

struct bodyout *bodyout_new(struct txn *t)
{
    if (t->bo != NULL)
        return t->bo;
    struct bodyout *bo = pool_calloc(t->pool, sizeof(*bo));
    if (bo == NULL || pool_on_destroy(t->pool, bo_free, bo) < 0)
        return NULL;
    /* HTTP/2 frames bodies itself; HTTP/1.1 gets chunks; HTTP/1.0 the
     * close */
    bo->chunked = t->req.version >= 11 && t->h2 == NULL;
    t->bo = bo;
    return bo;
}

/* Writes what is left of the head, then up to <len> bytes of <data>
 * (framed as a chunk when chunked). Returns the data bytes written (>= 0),
 * -EAGAIN or -errno. */
static ssize_t write_framed(struct txn *t, const char *data, size_t len)
{
    struct bodyout *bo = t->bo;
    if (!bo->chunked)
        return cli_send(t, &t->cout, data, len);
    struct outq *q = &t->cout;
    struct iovec iov[4];
    size_t part[4];
    int n = 0;
    size_t hl = q->head_len - q->head_off;
    if (hl > 0) {
        iov[n] = (struct iovec){ q->head + q->head_off, hl };
        part[n++] = 0;
    }
    if (bo->chunked && len > 0 && bo->ch_left == 0 && bo->crlf_left == 0 &&
        bo->ch_off == bo->ch_len) {
        int w = snprintf(bo->ch, sizeof(bo->ch), "%zx\r\n", len);
        bo->ch_len = (uint8_t)w;
        bo->ch_off = 0;
        bo->ch_left = len;
        bo->crlf_left = 2;
    }
    if (bo->ch_off < bo->ch_len) {
        iov[n] = (struct iovec){ bo->ch + bo->ch_off, (size_t)(bo->ch_len - bo->ch_off) };
        part[n++] = 1;
    }
    size_t dl = bo->chunked ? MIN(len, bo->ch_left) : len;
    if (dl > 0) {
        iov[n] = (struct iovec){ (void *)data, dl };
        part[n++] = 2;
    }
    if (bo->chunked && bo->crlf_left > 0 && dl == bo->ch_left) {
        static const char crlf[] = "\r\n";
        iov[n] = (struct iovec){ (void *)&crlf[2 - bo->crlf_left], bo->crlf_left };
        part[n++] = 3;
    }
    if (n == 0)
        return 0;
    ssize_t w = conn_sendv(t->c, iov, n); /* chunks: HTTP/1.1 only */
    if (w < 0)
        return w;
    size_t left = (size_t)w, wrote = 0;
    for (int i = 0; i < n && left > 0; i++) {
        size_t k = MIN(left, iov[i].iov_len);
        left -= k;
        switch (part[i]) {
        case 0:
            q->head_off += k;
            break;
        case 1:
            bo->ch_off = (uint8_t)(bo->ch_off + k);
            break;
        case 2:
            wrote = k;
            if (bo->chunked)
                bo->ch_left -= k;
            break;
        case 3:
            bo->crlf_left = (uint8_t)(bo->crlf_left - k);
            break;
        }
    }
    return (ssize_t)wrote;
}

/* Writes the head and the compressed bytes waiting in zb (and the end of
 * a chunk). Returns 0 when nothing is left, -EAGAIN or -errno. Each pass
 * either writes something or gets EAGAIN from the socket, so it ends. */
static int drain_zb(struct txn *t)
{
    struct bodyout *bo = t->bo;
    while (buf_len(&bo->zb) > 0 || t->cout.head_off < t->cout.head_len ||
           bo->ch_off < bo->ch_len || (bo->chunked && bo->crlf_left > 0)) {
        ssize_t w = write_framed(t, buf_head(&bo->zb), buf_len(&bo->zb));
        if (w < 0)
            return (int)w;
        buf_consume(&bo->zb, (size_t)w);
    }
    return 0;
}

/* Runs the compressor with <op> over <data>, into zb. Returns the input
 * bytes used, or -errno. Sets *complete when a flush or finish is done. */
static ssize_t squeeze(struct bodyout *bo, enum z_op op, const char *data,
                       size_t len, bool *complete)
{
    if (buf_get(&bo->zb) < 0)
        return -ENOMEM;
    if (buf_room(&bo->zb) == 0)
        buf_compact(&bo->zb);
    const char *in = data;
    size_t inlen = len;
    char *out = buf_tail(&bo->zb);
    size_t room = buf_room(&bo->zb);
    int rc = z_step(bo->z, op, &in, &inlen, &out, &room);
    if (rc < 0)
        return rc;
    bo->zb.end = (uint32_t)(out - bo->zb.data);
    *complete = rc == 1;
    return (ssize_t)(len - inlen);
}

ssize_t bodyout_write(struct txn *t, const char *data, size_t len)
{
    struct bodyout *bo = t->bo;
    if (bo->z == NULL)
        return write_framed(t, data, len);
    size_t used = 0;
    for (;;) {
        int rc = drain_zb(t);
        if (rc < 0)
            return used > 0 ? (ssize_t)used : rc;
        if (used == len)
            return (ssize_t)used;
        bool complete;
        ssize_t u = squeeze(bo, ZOP_RUN, data + used, len - used, &complete);
        if (u < 0)
            return u;
        used += (size_t)u;
        bo->dirty = true;
    }
}

static int run_op(struct txn *t, enum z_op op, bool *done)
{
    struct bodyout *bo = t->bo;
    for (;;) {
        int rc = drain_zb(t);
        if (rc < 0)
            return rc;
        if (*done)
            return 0;
        bool complete = false;
        ssize_t u = squeeze(bo, op, NULL, 0, &complete);
        if (u < 0)
            return (int)u;
        if (complete)
            *done = true;
    }
}

int bodyout_flush(struct txn *t)
{
    struct bodyout *bo = t->bo;
    if (bo->z == NULL)
        return drain_zb(t);
    if (!bo->dirty && buf_len(&bo->zb) == 0)
        return drain_zb(t);
    bool done = false;
    int rc = run_op(t, ZOP_FLUSH, &done);
    if (rc == 0)
        bo->dirty = false;
    return rc;
}

int bodyout_finish(struct txn *t)
{
    struct bodyout *bo = t->bo;
    if (bo->z != NULL && !bo->z_done) {
        int rc = run_op(t, ZOP_FINISH, &bo->z_done);
        if (rc < 0)
            return rc;
    } else {
        int rc = drain_zb(t);
        if (rc < 0)
            return rc;
    }
    if (!bo->chunked)
        return 0;
    if (!bo->last_queued) {
        memcpy(bo->ch, "0\r\n\r\n", 5);
        bo->ch_len = 5;
        bo->ch_off = 0;
        bo->last_queued = true;
    }
    while (bo->ch_off < bo->ch_len) {
        ssize_t w = write_framed(t, NULL, 0);
        if (w < 0)
            return (int)w;
        if (bo->ch_off < bo->ch_len)
            return -EAGAIN;
    }
    return 0;
}

bool bodyout_pending(const struct txn *t)
{
    const struct bodyout *bo = t->bo;
    return buf_len(&bo->zb) > 0 || bo->ch_off < bo->ch_len || bo->crlf_left > 0;
}
