/*
 * The response half of the reverse-proxy pipeline (txn.c has the request
 * half and the driving): the upstream's response head is read and parsed,
 * checked and rewritten, then its body streamed to the client through the
 * client's interface (cli_*: HTTP/1.1 or an HTTP/2 stream), with the
 * cache, compression and trailers on the way; at the end the upstream
 * connection goes back to its pool or is closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/macros.h"
#include "proxy/cache_glue.h"
#include "proxy/cluster_glue.h"
#include "proxy/proxy_int.h"

static int start_response(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    struct h1_msg *r = &t->resp;
    int status = r->status;
    if (status >= 100 && status < 200 && !(status == 101 && t->upgrade)) {
        /* interim: forward to HTTP/1.1 clients, then parse the next head */
        if (t->req.version >= 11 && status != 101) {
            if (hdr_response(t, r) < 0)
                return -ENOMEM;
        }
        buf_consume(&uc->rbuf, r->head_len);
        struct h1_field *f = r->fields;
        size_t max = c->cl->limits.header_count;
        h1_msg_init(r, f, max);
        return 0;
    }
    t->ustatus = status;
    t->status = status;
    pick_observe(t, status);
    stglue_learn(t, r, status);
    if (status != 101 && (t->cx != NULL || c->w->cache != NULL)) {
        int crc = cglue_response(t, r);
        if (crc != 0)
            return crc < 0 ? crc : 0; /* > 0: the cache answers instead */
    }
    if (status == 101) {
        t->phase = T_TUNNEL;
        t->keepalive = false;
        flow_init(&t->resf, H1_B_EOF, 0);
    } else {
        enum h1_body kind = h1_response_body(r, t->req.meth);
        flow_init(&t->resf, kind, r->content_length);
        if (kind == H1_B_CHUNKED && (t->req.version < 11 || t->h2 != NULL))
            t->resf.decode = true; /* HTTP/2 frames the body itself */
        if (kind == H1_B_EOF || t->resf.decode || !t->reqf.done)
            t->keepalive = false;
        t->phase = T_RESPONSE;
        if (t->route != NULL && t->route->compress != NULL) {
            if (compress_decide(t, r, kind) < 0)
                return -ENOMEM;
            if (t->bo != NULL && kind == H1_B_CHUNKED && !t->resf.decode) {
                t->resf.decode = true; /* compress the payload, not chunks */
                cglue_decoded(t);      /* ... and store the payload */
            }
        }
    }
    if (conn_closing(c))
        t->keepalive = false;
    int rc = hdr_response(t, r);
    buf_consume(&uc->rbuf, r->head_len);
    t->head_sent = true;
    return rc;
}

/* Reads and parses the response head. Returns 1 when a final head is ready
 * (t->head_sent), 0 when waiting, -1 when the transaction ended. */
static int read_response_head(struct txn *t)
{
    struct uconn *uc = t->uc;
    for (;;) {
        if (outq_pending(&t->cout))
            return 0; /* an interim response is still being written */
        if (buf_len(&uc->rbuf) > 0) {
            const struct cfg_limits *lim = &t->c->cl->limits;
            struct h1_limits hl = { .max_head = 65536,
                                    .max_fields = lim->header_count,
                                    .max_target = 65536 };
            if (t->resp.fields == NULL) {
                struct h1_field *f = pool_alloc(t->pool, lim->header_count * sizeof(*f));
                if (f == NULL) {
                    txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                    return -1;
                }
                h1_msg_init(&t->resp, f, lim->header_count);
            }
            t->resp_started = true;
            int rc = h1_parse_response(buf_head(&uc->rbuf), buf_len(&uc->rbuf),
                                       &t->resp, &hl);
            if (rc > 0) {
                if (start_response(t) < 0) {
                    txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                    return -1;
                }
                if (t->phase == T_CACHE)
                    return -1; /* served from the cache from now on */
                if (t->head_sent)
                    return 1;
                continue;
            }
            if (rc == -EBADMSG) {
                char name[80];
                log_warn("upstream %s: server %s: invalid response head (%s)",
                         t->ups->cu->name,
                         ups_srv_name(t->ups, uc->srv, name, sizeof(name)),
                         t->resp.err_reason ? t->resp.err_reason : "?");
                uc->rdhup = true;
                pick_release(t, true);
                txn_error(t, 502, t->resp.err_status == 431
                                      ? "http_response_header_section_size"
                                      : "http_protocol_error",
                          "The upstream server sent an invalid response.");
                return -1;
            }
            if (buf_room(&uc->rbuf) == 0 && uc->rbuf.start == 0 &&
                buf_grow(&uc->rbuf, hl.max_head + 1) < 0) {
                txn_error(t, 503, "proxy_internal_error", "Out of memory.");
                return -1;
            }
        }
        if (!uc->readable)
            return 0;
        ssize_t n = txn_ups_read(uc);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            if (t->resp_started) { /* a head cut short: nothing sent yet */
                t->uc = NULL;
                ups_close(uc);
                pick_release(t, true);
                if (pick_retry(t, PF_BROKEN)) {
                    txn_connect(t);
                    return -1;
                }
                txn_error(t, 502, "http_response_incomplete",
                          "The upstream server sent an incomplete response.");
                return -1;
            }
            txn_upstream_failed(t, n == 0 ? -ECONNRESET : (int)n, false);
            return -1;
        }
        txn_arm_timers(t, true, false);
    }
}

/* The upstream has nothing more for now: make what was compressed so far
 * reach the client. Returns 0, or -1 when the client connection closed. */
static int body_stall(struct txn *t)
{
    if (!cli_writable(t))
        return 0;
    int rc = bodyout_flush(t);
    if (rc < 0 && rc != -EAGAIN) {
        t->reason = "client_closed";
        cli_abort(t);
        return -1;
    }
    return 0;
}

/* The body is complete: end the compressed stream and the chunks. Returns
 * 0 when all is written, else nonzero (waiting, or closed: c->dead). */
static int body_end(struct txn *t)
{
    if (!cli_writable(t))
        return -EAGAIN;
    int rc = bodyout_finish(t);
    if (rc == -EAGAIN) {
        txn_arm_timers(t, false, true);
    } else if (rc < 0) {
        t->reason = "client_closed";
        cli_abort(t);
    }
    return rc;
}

/* Response bytes wait for the client: the head, framed body bytes, or
 * what the compressor holds. */
static bool resp_pending(struct txn *t)
{
    return outq_pending(&t->cout) || t->resf.fwd > 0 ||
           (t->bo != NULL && bodyout_pending(t));
}

/* The server's body broke after the head went: logged with the server's
 * name, the client's connection aborted (its framing cannot be kept).
 * Returns -1, the transaction ended. */
static int resp_broken(struct txn *t, const char *what, const char *reason)
{
    char name[80];
    log_warn("upstream %s: server %s: %s", t->ups->cu->name,
             ups_srv_name(t->ups, t->uc->srv, name, sizeof(name)), what);
    t->reason = reason;
    cli_abort(t);
    return -1;
}

/* Frames the next piece of the body (chunked: the next chunk's bytes) and
 * hands it to the cache too. -1: malformed, the transaction ended. */
static int resp_frame(struct txn *t)
{
    struct uconn *uc = t->uc;
    if (flow_take(&t->resf, &uc->rbuf) < 0)
        return resp_broken(t, "malformed chunked body", "http_response_transfer_coding");
    if (t->cx != NULL && t->resf.fwd > 0)
        cglue_tee(t, buf_head(&uc->rbuf), t->resf.fwd); /* store too */
    return 0;
}

/* Sends what is pending to the client: 1 some went, 0 it cannot take
 * more now, -1 it is gone (the transaction ended). */
static int resp_send(struct txn *t)
{
    struct uconn *uc = t->uc;
    if (!cli_writable(t))
        return 0;
    ssize_t n = t->bo == NULL ? cli_send(t, &t->cout, buf_head(&uc->rbuf), t->resf.fwd)
                              : bodyout_write(t, buf_head(&uc->rbuf), t->resf.fwd);
    if (n == -EAGAIN)
        return 0;
    if (n < 0) {
        t->reason = "client_closed";
        cli_abort(t);
        return -1;
    }
    flow_sent(&t->resf, &uc->rbuf, (size_t)n);
    return 1;
}

/* Reads more of the body from the server: 1 some came, 2 its end (a body
 * delimited by the close), 0 nothing yet, -1 the transaction ended (cut
 * short). */
static int resp_read(struct txn *t)
{
    struct uconn *uc = t->uc;
    ssize_t n = uc->readable ? txn_ups_read(uc) : -EAGAIN;
    if (n == -EAGAIN)
        return t->bo != NULL && body_stall(t) < 0 ? -1 : 0;
    if (n == 0 && t->resf.kind == H1_B_EOF) {
        t->resf.done = true;
        uc->rdhup = true;
        return 2;
    }
    if (n <= 0)
        return resp_broken(t, "response body cut short", "http_response_incomplete");
    return 1;
}

/* Streams the response head and body to the client. Returns 0, or -1 when
 * the transaction ended. */
int txn_pump_response(struct txn *t)
{
    struct uconn *uc = t->uc;
    if (!t->head_sent) {
        int rc = read_response_head(t);
        if (rc < 0)
            return -1;
        if (rc == 0 && !outq_pending(&t->cout))
            return 0;
    }
    bool cprog = false, uprog = false;
    for (;;) {
        if (t->head_sent && t->resf.fwd == 0 && !t->resf.done &&
            buf_len(&uc->rbuf) > 0 && resp_frame(t) < 0)
            return -1;
        if (resp_pending(t)) {
            int r = resp_send(t);
            if (r < 0)
                return -1;
            if (r == 0)
                break;
            cprog = true;
            continue;
        }
        if (!t->head_sent) {
            int rc = read_response_head(t);
            if (rc < 0)
                return -1;
            if (rc == 0 && !outq_pending(&t->cout))
                break;
            continue;
        }
        if (t->resf.done) {
            if (t->bo != NULL && body_end(t) != 0)
                return t->c->dead ? -1 : 0;
            txn_finish(t);
            return -1;
        }
        int r = resp_read(t);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        uprog |= r == 1; /* at the end, no upstream timer to re-arm */
    }
    if (uprog)
        txn_arm_timers(t, true, false);
    if (resp_pending(t))
        txn_arm_timers(t, false, true);
    else if (cprog)
        cli_timer_stop(t);
    return 0;
}

void txn_finish(struct txn *t)
{
    if (t->cx != NULL)
        cglue_done(t);
    struct uconn *uc = t->uc;
    t->uc = NULL;
    t->phase = T_DONE;
    pick_release(t, false);
    if (uc != NULL) {
        timer_cancel(t->c->w->loop, &uc->timer);
        bool reuse = t->reqf.done && !outq_pending(&t->uout) && t->reqf.fwd == 0 &&
                     t->resf.kind != H1_B_EOF && h1_keepalive(&t->resp) &&
                     !uc->rdhup && t->ups->cu->keepalive > 0;
        if (reuse)
            ups_release(t->ups, uc);
        else
            ups_close(uc);
    }
    cli_done(t);
}

ssize_t txn_pull(struct txn *t, char *dst, size_t max, bool *eof)
{
    size_t n = 0;
    if (t->phase == T_CACHE)
        return cglue_pull(t, dst, max, eof);
    if (t->phase == T_FILE)
        return static_pull(t, dst, max, eof);
    if (t->aj != NULL && t->phase == T_RESPONSE)
        return ajp_pull(t, dst, max, eof);
    if (t->hx != NULL && t->phase == T_RESPONSE)
        return h2up_pull(t, dst, max, eof);
    if (t->phase == T_LOCAL) {
        n = MIN(max, t->local_len - t->local_off);
        memcpy(dst, t->local_body + t->local_off, n);
        t->local_off += n;
        *eof = t->local_off == t->local_len;
        return (ssize_t)n;
    }
    if (t->phase == T_RESPONSE && t->uc != NULL) {
        n = MIN(max, t->resf.fwd);
        memcpy(dst, buf_head(&t->uc->rbuf), n);
        flow_sent(&t->resf, &t->uc->rbuf, n);
    }
    *eof = t->phase == T_DONE || (t->resf.done && t->resf.fwd == 0);
    if (n == 0 && !*eof)
        return -EAGAIN;
    return (ssize_t)n;
}
