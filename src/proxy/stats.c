/*
 * Glue between the pipeline and two operations features: the per-worker
 * metrics of each finished request, and the PROXY protocol on both sides
 * (accepted from an L4 balancer, sent to upstreams that want it).
 *
 * A PROXY header replaces c->peer with the address it carries, so the
 * access log, X-Forwarded-For / Forwarded and any access control that
 * reads c->peer see the real client, not the balancer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/proxy_int.h"
#include "proxy/proxy_proto.h"
#include "tls/tls.h"

void stats_txn(struct txn *t)
{
    struct conn *c = t->c;
    uint32_t id = t->route != NULL ? t->route->mslot : c->cl->mslot;
    int64_t us = loop_now_us(c->w->loop) - t->t0_us;
    m_request(m_slot(c->w->m, id), t->status, t->reqf.bytes,
              t->resf.bytes + t->local_off, us > 0 ? (uint64_t)us : 0);
}

void stats_tls(struct conn *c)
{
    struct mworker *m = c->w->m;
    if (m == NULL)
        return;
    m_inc(m, MG_TLS_HANDSHAKES);
    if (tls_resumed(c->tls))
        m_inc(m, MG_TLS_RESUMED);
}

void stats_denied(struct worker *w, int id)
{
    if (w->m != NULL)
        m_inc(w->m, (enum m_global)id);
}

/* A PROXY header that did not parse: logged, counted, the connection
 * closed. Returns -1. */
static int pp_refuse(struct conn *c)
{
    char ip[64];
    sock_ntop(&c->peer.sa, ip, sizeof(ip));
    log_warn("listener %s: client %s: no valid PROXY header; closing",
             c->cl->addr.text, ip);
    m_add(&m_slot(c->w->m, c->cl->mslot)->v[ML_PP_ERRORS], 1);
    conn_close(c);
    return -1;
}

/* The header parsed: its source is the client from now on. 1, or -1 when
 * the connection was closed. */
static int pp_apply(struct conn *c, const struct pp_info *pi)
{
    c->pp_wait = false;
    if (pi->local)
        return 1;
    memcpy(&c->peer, &pi->src, sizeof(c->peer));
    if (lim_conn_pp(c) < 0) { /* connections_per_address */
        conn_close(c);
        return -1;
    }
    /* kept only where a header carried it: 28 bytes an idle connection
     * elsewhere does not pay for */
    c->pp_dst = malloc(sizeof(*c->pp_dst));
    if (c->pp_dst != NULL)
        memcpy(c->pp_dst, &pi->dst, sizeof(*c->pp_dst));
    return 1;
}

int pp_accept(struct conn *c)
{
    struct pp_info pi;
    int rc = pp_parse(buf_head(&c->rbuf), buf_len(&c->rbuf), &pi);
    if (rc == -EAGAIN)
        return 0; /* a header fits in the buffer: PP_MAX_V2 < 16 KiB */
    if (rc < 0)
        return pp_refuse(c);
    buf_consume(&c->rbuf, (size_t)rc);
    return pp_apply(c, &pi);
}

int pp_accept_raw(struct conn *c)
{
    /* the header comes before the ClientHello, in clear: look at what has
     * arrived without taking it, then take exactly the header, so the TLS
     * layer reads from the first byte after it */
    char b[PP_MAX_V2];
    ssize_t n = recv(c->ev.fd, b, sizeof(b), MSG_PEEK);
    if (n == 0) {
        conn_close(c);
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            c->readable = false;
            return 0;
        }
        conn_close(c);
        return -1;
    }
    struct pp_info pi;
    int rc = pp_parse(b, (size_t)n, &pi);
    if (rc == -EAGAIN) {
        /* the rest raises a new edge when it comes (peeked bytes stay
         * queued, so a header longer than the buffer is refused instead) */
        if ((size_t)n == sizeof(b))
            return pp_refuse(c);
        c->readable = false;
        return 0;
    }
    if (rc < 0)
        return pp_refuse(c);
    if (recv(c->ev.fd, b, (size_t)rc, 0) != rc) { /* peeked: all there */
        conn_close(c);
        return -1;
    }
    return pp_apply(c, &pi);
}

int pp_upstream(struct txn *t)
{
    int ver = t->ups->cu->proxy_protocol;
    if (ver == 0)
        return 0;
    struct conn *c = t->c;
    union sockaddr_any local;
    if (c->pp_dst != NULL) {
        local = *c->pp_dst;
    } else {
        socklen_t len = sizeof(local);
        if (getsockname(c->ev.fd, &local.sa, &len) == -1)
            memset(&local, 0, sizeof(local));
    }
    char hdr[PP_MAX_V1 + 64];
    int n = pp_write(hdr, sizeof(hdr), ver, &c->peer.sa, &local.sa);
    if (n < 0)
        return -ENOMEM;
    size_t len = (size_t)n + t->uout.head_len;
    char *p = pool_alloc(t->pool, len);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, hdr, (size_t)n);
    memcpy(p + n, t->uout.head, t->uout.head_len);
    t->uout = (struct outq){ p, len, 0 };
    return 0;
}
