/*
 * Body framing and the upstream write path, shared by the pipelines (txn.c,
 * ajp_txn.c, h2up.c, tunnel.c): a struct flow classifies the bytes of a
 * body as they arrive (Content-Length, chunked kept or decoded, raw bytes
 * framed as chunks, until EOF), and uconn_send() writes a pending head,
 * pending chunk framing and body bytes to an upstream with one writev.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

void flow_init(struct flow *f, enum h1_body kind, uint64_t len)
{
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->left = len;
    h1_chunked_init(&f->ch);
    f->done = (kind == H1_B_NONE) || (kind == H1_B_LENGTH && len == 0);
}

/* Classifies the bytes at the start of <b> as body bytes to send on (fwd)
 * and framing to drop (skip). Call only when fwd and skip are both 0.
 * Returns 0 or -EBADMSG. */
int flow_take(struct flow *f, struct buf *b)
{
    size_t avail = buf_len(b);
    char *p = buf_head(b);
    switch (f->kind) {
    case H1_B_NONE:
        f->done = true;
        return 0;
    case H1_B_LENGTH: {
        size_t n = avail < f->left ? avail : (size_t)f->left;
        f->fwd = n;
        f->left -= n;
        f->done = f->left == 0;
        break;
    }
    case H1_B_CHUNKED: {
        if (f->encode) { /* raw bytes: frame them as one chunk */
            int n = snprintf(f->chunk_buf, sizeof(f->chunk_buf), "%s%zx\r\n",
                             f->bytes > 0 ? "\r\n" : "", avail);
            f->chunk = (struct outq){ f->chunk_buf, (size_t)n, 0 };
            f->fwd = avail;
            break;
        }
        size_t dlen = 0;
        ssize_t n = h1_chunked_scan(&f->ch, p, avail, f->decode ? p : NULL,
                                    f->decode ? &dlen : NULL);
        if (n < 0)
            return -EBADMSG;
        if (f->decode) {
            f->fwd = dlen;
            f->skip = (size_t)n - dlen;
        } else {
            f->fwd = (size_t)n;
        }
        f->done = f->ch.state == H1_CH_DONE;
        break;
    }
    case H1_B_EOF:
        f->fwd = avail;
        break;
    }
    f->bytes += f->fwd;
    if (f->fwd == 0 && f->skip > 0) {
        buf_consume(b, f->skip);
        f->skip = 0;
    }
    return 0;
}

/* encode: the source ended; queue the last chunk. */
void flow_end_chunks(struct flow *f)
{
    int n = snprintf(f->chunk_buf, sizeof(f->chunk_buf), "%s0\r\n\r\n",
                     f->bytes > 0 ? "\r\n" : "");
    f->chunk = (struct outq){ f->chunk_buf, (size_t)n, 0 };
    f->term = true;
}

/* After <n> bytes of fwd were written. */
void flow_sent(struct flow *f, struct buf *b, size_t n)
{
    f->fwd -= n;
    if (f->fwd == 0 && f->skip > 0) {
        n += f->skip;
        f->skip = 0;
    }
    buf_consume(b, n);
}

/* Advances <q> by up to <w> written bytes; returns what is left of <w>. */
size_t outq_advance(struct outq *q, size_t w)
{
    size_t n = MIN(w, q->head_len - q->head_off);
    q->head_off += n;
    return w - n;
}

/* writev of the pending head, the pending chunk framing <ch> (or NULL) and
 * <len> bytes at <data> to an upstream (plain or TLS). Returns the number
 * of <data> bytes written (>= 0), -EAGAIN or -errno. */
ssize_t uconn_send(struct uconn *uc, struct outq *q, struct outq *ch,
                   const char *data, size_t len)
{
    struct iovec iov[3];
    int n = 0;
    size_t hl = q->head_len - q->head_off;
    if (hl > 0)
        iov[n++] = (struct iovec){ q->head + q->head_off, hl };
    if (ch != NULL && outq_pending(ch))
        iov[n++] = (struct iovec){ ch->head + ch->head_off, ch->head_len - ch->head_off };
    if (len > 0)
        iov[n++] = (struct iovec){ (void *)data, len };
    if (n == 0)
        return 0;
    ssize_t w = ups_sendv(uc, iov, n);
    if (w < 0)
        return w;
    size_t left = outq_advance(q, (size_t)w);
    if (ch != NULL)
        left = outq_advance(ch, left);
    return (ssize_t)left;
}
