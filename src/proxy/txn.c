/*
 * The reverse-proxy pipeline for one request: pick a server, connect (or
 * reuse a pooled connection), stream the request head and body up, parse the
 * response head, stream the body down, then hand the upstream connection
 * back to the pool.
 *
 * Both sockets are edge-triggered, so every event just records readiness
 * and calls txn_pump(), which moves bytes in each direction until a socket
 * would block or a buffer is empty. Backpressure falls out of that: a
 * direction stops reading its source while its sink is not writable, and
 * nothing is ever held beyond one buffer per direction.
 *
 *   client rbuf --(reqf)--> upstream      upstream rbuf --(resf)--> client
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "proxy/cache_glue.h"
#include "proxy/cluster_glue.h"
#include "proxy/proxy_int.h"

static void txn_pump(struct txn *t);
static void ups_event(struct loop *l, struct ev *e, uint32_t events);
static void ups_timeout(struct loop *l, struct timer *tm);

/* ---- start ---- */

static bool idempotent(enum h1_method m)
{
    return m == H1_M_GET || m == H1_M_HEAD || m == H1_M_PUT ||
           m == H1_M_DELETE || m == H1_M_OPTIONS || m == H1_M_TRACE;
}

static uint64_t body_limit(const struct txn *t)
{
    if (t->route != NULL && t->route->max_body != 0)
        return t->route->max_body;
    return t->c->cl->limits.body_bytes;
}

int txn_keep_request(struct txn *t, const struct h1_msg *req)
{
    struct h1_msg *m = &t->req;
    struct pool *p = t->pool;
    const struct str *views[] = { &m->method, &m->target, &m->path, &m->host,
                                  &m->authority };
    for (size_t i = 0; i < ARRAY_LEN(views); i++) {
        struct str *v = (struct str *)views[i];
        if (v->len == 0)
            continue;
        char *s = pool_strndup(p, v->p, v->len);
        if (s == NULL)
            return -ENOMEM;
        v->p = s;
    }
    (void)req;
    /* Fields: only what the access log needs survives. */
    size_t keep = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        struct h1_field *f = &m->fields[i];
        if (!str_ieq_lit(f->name, "user-agent") && !str_ieq_lit(f->name, "referer"))
            continue;
        char *n = pool_strndup(p, f->name.p, f->name.len);
        char *v = pool_strndup(p, f->value.p, f->value.len);
        if (n == NULL || v == NULL)
            return -ENOMEM;
        m->fields[keep].name = str_make(n, f->name.len);
        m->fields[keep].value = str_make(v, f->value.len);
        keep++;
    }
    m->nfields = keep;
    return 0;
}

void txn_start(struct txn *t, struct h1_msg *req)
{
    struct conn *c = t->c;
    t->keepalive = h1_keepalive(req);
    flow_init(&t->reqf, req->body, req->content_length);
    if (t->h2 != NULL && req->body == H1_B_CHUNKED)
        t->reqf.encode = true; /* HTTP/2 DATA without a length */
    /* The head is in: client_header no longer applies. A body has
     * client_body between reads; without one, the upstream's timers (or
     * the tunnel's idle timer) are what runs now. */
    if (t->h2 == NULL) {
        if (t->reqf.done)
            timer_cancel(c->w->loop, &c->timer);
        else
            timer_set(c->w->loop, &c->timer, c->cl->timeouts.client_body, c->timer.cb);
    }
    t->upgrade = (req->flags & H1_CONN_UPGRADE) && (req->flags & H1_HAS_UPGRADE) &&
                 h1_find(req, STR_LIT("upgrade")) != NULL &&
                 h1_list_has(h1_find(req, STR_LIT("upgrade"))->value,
                             STR_LIT("websocket"));
    if (c->cl->kind == CFG_L_FORWARD && fwd_start(t, req))
        return;
    struct str authority = req->form == H1_F_ABSOLUTE ? req->authority : req->host;
    t->host = route_host(t->pool, authority);
    t->site = route_site(c->cl, t->host);
    if (t->site != NULL) {
        struct str path = req->form == H1_F_ORIGIN || req->form == H1_F_ABSOLUTE
                              ? req->path
                              : STR_LIT("/");
        t->route = route_match(t->site, path, t->pool);
    }

    /* Build the upstream head while the field views are still valid. */
    bool proxy = t->route != NULL && t->route->action == CFG_ACT_PROXY;
    bool ajp = proxy && t->route->upstream->proto == CFG_PROTO_AJP;
    bool h2up = proxy && t->route->upstream->h2;
    if (proxy) {
        t->ups = ups_of(c->gen->ups, c->gen->cfg, t->route->upstream);
        struct ups_req ur = { &c->peer.sa, req->target, req };
        ups_prepare(t->ups, &ur, &t->key);
    }
    bool hit = false; /* answered from the cache: no upstream head */
    int rc = c->w->cache != NULL && !h2up ? cglue_request(t, req, proxy, &hit) : 0;
    if (rc == 0 && proxy && !hit)
        rc = ajp ? ajp_request(t, req) : h2up ? h2up_request(t, req) : hdr_request(t, req);
    if (rc == 0 && proxy && !hit && !ajp)
        rc = pp_upstream(t);
    if (rc == 0 && t->route != NULL &&
        (t->route->compress != NULL || t->route->action == CFG_ACT_STATIC))
        rc = static_prepare(t, req);
    size_t head_len = req->head_len;
    if (rc == 0)
        rc = txn_keep_request(t, req);
    if (t->h2 == NULL)
        buf_consume(t->rb, head_len);
    if (rc == -E2BIG) {
        t->keepalive = false;
        txn_error(t, 431, "http_request_header_section_size",
                  "The request head does not fit in one AJP packet.");
        return;
    }
    if (rc < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    if (req->form == H1_F_AUTHORITY) {
        t->keepalive = false;
        txn_error(t, 405, "http_request_denied",
                  "CONNECT is not served on this listener.");
        return;
    }
    if (req->flags & H1_EXPECT_OTHER) {
        t->keepalive = false;
        txn_error(t, 417, "http_request_error", "Unsupported Expect value.");
        return;
    }
    if (lim_request(t, c->cl->rates, c->cl->nrates, LIM_AT_LISTENER))
        return; /* 429, or the cluster's verdict awaited: the listener's
                   rate limits, before routing */
    txn_limits_passed(t, LIM_AT_LISTENER);
}

/* The listener's rate limits passed: route, then the route's limits. */
static void start_routed(struct txn *t)
{
    struct conn *c = t->c;
    const struct h1_msg *req = &t->req;
    if (t->cx != NULL && cglue_begin(t))
        return; /* a hit, a wait for a fill, a purge */
    if (t->site == NULL) {
        txn_error(t, 421, "http_request_denied", "No site is configured for this host.");
        return;
    }
    if (t->site->redirect_https != 0 && c->tls == NULL) {
        t->keepalive = t->keepalive && req->body == H1_B_NONE;
        txn_redirect_https(t);
        return;
    }
    if (t->route == NULL) {
        txn_error(t, 404, "http_request_denied", "No route matches this path.");
        return;
    }
    if (lim_request(t, t->route->rates, t->route->nrates, LIM_AT_ROUTE))
        return; /* 429, or the cluster's verdict awaited */
    txn_limits_passed(t, LIM_AT_ROUTE);
}

/* Every rate limit passed: the body limit, then serve. */
static void start_allowed(struct txn *t)
{
    const struct h1_msg *req = &t->req;
    bool proxy = t->route->action == CFG_ACT_PROXY;
    bool ajp = proxy && t->route->upstream->proto == CFG_PROTO_AJP;
    uint64_t limit = body_limit(t);
    if (limit != 0 && req->body == H1_B_LENGTH && req->content_length > limit) {
        t->keepalive = false;
        txn_error(t, 413, "http_request_denied", "The request body is too large.");
        return;
    }
    if (t->route->action == CFG_ACT_STATIC) {
        static_start(t);
        return;
    }
    if (ajp)
        t->reqf.decode = true; /* AJP carries body bytes, not chunks */
    if (!proxy) {
        const struct cfg_route *r = t->route;
        txn_local(t, r->ret_status, r->ret_type, r->ret_body, r->ret_body_len, NULL);
        return;
    }
    if (t->reqf.done) /* the header timeout is over: the head is in */
        cli_timer_stop(t);
    if (stglue_lookup(t))
        return; /* the cluster's stick table is asked first */
    txn_connect(t);
}

void txn_limits_passed(struct txn *t, int stage)
{
    if (stage == LIM_AT_LISTENER)
        start_routed(t);
    else if (stage == LIM_AT_FORWARD)
        fwd_limits_passed(t);
    else
        start_allowed(t);
}

/* ---- upstream connection ---- */

static void upstream_failed(struct txn *t, int err, bool connecting);

static void attach(struct txn *t, struct uconn *uc)
{
    t->uc = uc;
    uc->owner = t;
    uc->ev.cb = ups_event;
    uc->nreq++;
}

/* A connection to <srv> could not be started (<err>): logged, the server
 * given back to the balancer, and another picked (retries permitting). */
static void connect_failed(struct txn *t, unsigned srv, int err)
{
    char name[80];
    log_warn("upstream %s: server %s: connect failed: %s", t->ups->cu->name,
             ups_srv_name(t->ups, srv, name, sizeof(name)), strerror(-err));
    t->last_err = err;
    pick_release(t, true);
    pick_retry(t, PF_REFUSED);
}

void txn_connect(struct txn *t)
{
    struct worker *w = t->c->w;
    const struct cfg_upstream *cu = t->ups->cu;
    for (;;) {
        int srv = pick_server(t);
        if (srv == -2)
            return; /* queued, or answered 503 */
        if (srv < 0)
            break;
        /* a tunnel needs a connection of its own: a pooled one has
         * carried HTTP and the server expects more of it */
        if (t->hx != NULL) { /* HTTP/2: a stream on a shared connection */
            int err = h2up_connect(t, (unsigned)srv);
            if (err == 0)
                return;
            connect_failed(t, (unsigned)srv, err);
            continue;
        }
        struct uconn *uc = t->req.meth == H1_M_CONNECT
                               ? NULL
                               : ups_take_idle(t->ups, (unsigned)srv);
        if (uc != NULL) {
            attach(t, uc);
            uc->writable = true;
            t->phase = T_REQUEST;
            if (t->aj != NULL)
                ajp_attached(t);
            txn_pump(t);
            return;
        }
        int err = 0;
        uc = ups_connect(t->ups, (unsigned)srv, ups_event, &err);
        if (uc == NULL) {
            connect_failed(t, (unsigned)srv, err);
            continue;
        }
        attach(t, uc);
        t->phase = T_CONNECT;
        timer_set(w->loop, &uc->timer, cu->connect_timeout, ups_timeout);
        return;
    }
    pick_exhausted(t);
}

void txn_forward(struct txn *t)
{
    if (t->fx != NULL)
        fwd_connect(t); /* a forward destination is resolved first */
    else
        txn_connect(t);
}

/* Connect failed or timed out, or the connection broke before any response
 * byte reached the client. A pooled connection found dead is replaced once
 * by a fresh one when the request can be replayed (the server is fine, the
 * connection was stale). Otherwise the try failed: another server when
 * pick_retry() allows, else the error. */
static void upstream_failed(struct txn *t, int err, bool connecting)
{
    const struct cfg_upstream *cu = t->ups->cu;
    struct uconn *uc = t->uc;
    bool reused = uc != NULL && uc->reused;
    int srv = uc != NULL ? (int)uc->srv : -1;
    if (uc != NULL) {
        char name[80];
        log_warn("upstream %s: server %s: %s: %s", cu->name,
                 ups_srv_name(t->ups, uc->srv, name, sizeof(name)),
                 connecting ? "connect failed" : "connection broke",
                 strerror(-err));
        t->uc = NULL;
        ups_close(uc);
    }
    if (connecting && srv >= 0)
        ups_note_connect(t->ups, (unsigned)srv, err);
    bool can_replay = t->reqf.kind == H1_B_NONE && idempotent(t->req.meth);
    if (!connecting && !t->resp_started && reused && can_replay && !t->replayed) {
        t->replayed = true;
        pick_release(t, false);
        if (srv >= 0) {
            t->tried &= ~(1ull << srv);
            t->attempts--; /* the same try, on a fresh connection */
        }
        t->uout.head_off = 0;
        txn_connect(t);
        return;
    }
    pick_release(t, true);
    t->last_err = err;
    enum pick_fail f = !connecting          ? PF_BROKEN
                       : err == -ETIMEDOUT ? PF_CONNECT_TIMEOUT
                                           : PF_REFUSED;
    if (pick_retry(t, f)) {
        txn_connect(t);
        return;
    }
    pick_exhausted(t);
}

static ssize_t ups_read(struct uconn *uc)
{
    if (buf_get(&uc->rbuf) < 0)
        return -ENOMEM;
    if (buf_room(&uc->rbuf) == 0) {
        buf_compact(&uc->rbuf);
        if (buf_room(&uc->rbuf) == 0)
            return -ENOBUFS;
    }
    ssize_t n = ups_recv(uc, buf_tail(&uc->rbuf), buf_room(&uc->rbuf));
    if (n > 0)
        uc->rbuf.end += (uint32_t)n;
    return n;
}

static void ups_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    struct uconn *uc = container_of(e, struct uconn, ev);
    if (uc->ev.fd < 0)
        return;
    CHECK_OBJ(uc, UCONN_MAGIC);
    struct txn *t = uc->owner;
    int rc = ups_ready(uc, events, !uc->connected);
    if (rc > 0)
        return;
    if (rc < 0) {
        upstream_failed(t, rc, true);
        return;
    }
    if (!uc->connected) {
        ups_note_connect(uc->ups, uc->srv, 0);
        uc->connected = true;
        timer_cancel(l, &uc->timer);
        t->phase = T_REQUEST;
        t->try_us = loop_now_us(l); /* latency (ewma) counts from here */
        if (t->req.meth == H1_M_CONNECT && fwd_tunnel_open(t) < 0)
            return;
    }
    txn_pump(t);
}

static void ups_timeout(struct loop *l, struct timer *tm)
{
    (void)l;
    struct uconn *uc = container_of(tm, struct uconn, timer);
    struct txn *t = uc->owner;
    if (!uc->connected) {
        upstream_failed(t, -ETIMEDOUT, true);
        return;
    }
    txn_timeout(t, false);
}

/* ---- timers ---- */

static void arm_upstream_timer(struct txn *t)
{
    struct uconn *uc = t->uc;
    if (uc == NULL || !uc->connected)
        return;
    const struct cfg_upstream *cu = t->ups->cu;
    bool sending = outq_pending(&t->uout) || t->reqf.fwd > 0;
    timer_set(t->c->w->loop, &uc->timer,
              sending ? cu->send_timeout : cu->read_timeout, ups_timeout);
}

static void arm_client_timer(struct txn *t, bool sending)
{
    const struct cfg_timeouts *to = &t->c->cl->timeouts;
    cli_timer(t, sending ? to->send : to->client_body);
}

/* ---- client -> upstream ---- */

/* Moves request head and body bytes upstream. Returns 0, or -1 when the
 * transaction was ended (failed). */
static int pump_request(struct txn *t)
{
    struct buf *rb = t->rb;
    struct uconn *uc = t->uc;
    bool progress = false;
    int rc = 0;
    for (;;) {
        /* classify first, so the head and the first body bytes leave in
         * one writev */
        if (t->reqf.fwd == 0 && !t->reqf.done && buf_len(rb) > 0) {
            if (flow_take(&t->reqf, rb) < 0) {
                t->keepalive = false;
                txn_error(t, 400, "http_request_error", "Malformed chunked request body.");
                return -1;
            }
            uint64_t limit = body_limit(t);
            if (limit != 0 && t->reqf.bytes > limit) {
                t->keepalive = false;
                txn_error(t, 413, "http_request_denied", "The request body is too large.");
                return -1;
            }
        }
        if (outq_pending(&t->uout) || t->reqf.fwd > 0 || outq_pending(&t->reqf.chunk)) {
            if (!uc->writable)
                break;
            ssize_t n = uconn_send(uc, &t->uout, &t->reqf.chunk, buf_head(rb),
                                 t->reqf.fwd);
            if (n == -EAGAIN)
                break;
            if (n < 0) {
                if (t->resp_started) { /* it answered early: stop sending */
                    t->reqf.done = true;
                    t->reqf.fwd = 0;
                    t->keepalive = false;
                    uc->rdhup = true; /* never reuse */
                    break;
                }
                upstream_failed(t, (int)n, false);
                return -1;
            }
            flow_sent(&t->reqf, rb, (size_t)n);
            if (t->reqf.term && !outq_pending(&t->reqf.chunk))
                t->reqf.done = true;
            progress = true;
            continue;
        }
        if (t->reqf.done) {
            /* nothing more to read from the client: until the response
             * starts, only the upstream's timeouts apply */
            if (!t->head_sent)
                cli_timer_stop(t);
            break;
        }
        if (!cli_readable(t))
            break;
        ssize_t n = cli_read(t);
        if (n == -EAGAIN)
            break;
        if (n == 0 && t->reqf.encode && !t->reqf.term) {
            flow_end_chunks(&t->reqf);
            continue;
        }
        if (n <= 0) {
            /* the client went away in the middle of its body */
            t->reason = "client_closed";
            rc = -1;
            cli_abort(t);
            return rc;
        }
        progress = true;
        arm_client_timer(t, false);
    }
    if (progress)
        arm_upstream_timer(t);
    return rc;
}

/* ---- driving ---- */

/* The client hung up while we wait for the upstream: like nginx, take EOF
 * as "gone" (a half-close cannot be told apart) and stop the work, logged
 * 499. Pipelined bytes still waiting mean it is not gone. */
static bool client_gone(struct txn *t)
{
    struct conn *c = t->c;
    if (!c->rdhup || t->head_sent || !t->reqf.done || t->rdhup_seen ||
        t->h2 != NULL)
        return false;
    t->rdhup_seen = true;
    if (!conn_peer_gone(c))
        return false; /* pipelined bytes, or a spurious wake-up */
    t->reason = "client_closed";
    cli_abort(t);
    return true;
}

static void txn_pump(struct txn *t)
{
    if (client_gone(t))
        return;
    switch (t->phase) {
    case T_REQUEST:
    case T_RESPONSE:
        if (t->aj != NULL) {
            ajp_pump(t);
            return;
        }
        if (t->hx != NULL) {
            h2up_pump(t);
            return;
        }
        if (pump_request(t) < 0)
            return;
        if (t->phase == T_TUNNEL)
            break;
        txn_pump_response(t);
        return;
    case T_LOCAL:
        if (txn_flush_local(t) == 0)
            cli_done(t);
        return;
    case T_CACHE:
        cglue_pump(t);
        return;
    case T_FILE:
        static_pump(t);
        return;
    default:
        break;
    }
    if (t->phase == T_TUNNEL)
        tunnel_pump(t);
}

void txn_client_event(struct txn *t)
{
    CHECK_OBJ(t, TXN_MAGIC);
    if (t->phase == T_CONNECT) {
        client_gone(t); /* client bytes wait until we have an upstream */
        return;
    }
    txn_pump(t);
}

void txn_abort(struct txn *t)
{
    struct conn *c = t->c;
    if (t->cx != NULL)
        cglue_abort(t); /* may take over the upstream connection */
    if (t->h2 != NULL || c->state == C_BUSY) {
        if (t->reason == NULL)
            t->reason = "client_closed";
        if (!t->head_sent && t->phase != T_LOCAL)
            t->status = 499; /* nginx's "client closed request" */
        alog_write(t);
        stats_txn(t);
    }
    if (t->uc != NULL) {
        ups_close(t->uc);
        t->uc = NULL;
    }
    pick_end(t);
    if (t->h2 == NULL)
        c->txn = NULL;
    t->magic = 0;
    pool_free(t->pool);
}

void txn_timeout(struct txn *t, bool client_side)
{
    if (t->phase == T_CACHE) {
        cglue_timeout(t);
        return;
    }
    if (client_side) {
        bool sending = t->phase == T_LOCAL || t->head_sent;
        if (!sending && !t->reqf.done) {
            t->keepalive = false;
            txn_error(t, 408, "http_request_error", "The request body did not arrive in time.");
            return;
        }
        t->reason = "client_send_timeout";
        cli_abort(t);
        return;
    }
    struct uconn *uc = t->uc;
    if (t->aj != NULL && ajp_timeout(t))
        return; /* a CPING probe went unanswered: a fresh connection */
    if (t->phase == T_TUNNEL) { /* idle both ways: routine, not a failure */
        t->reason = "tunnel_idle_timeout";
        txn_finish(t);
        return;
    }
    bool sending = uc != NULL && (outq_pending(&t->uout) || t->reqf.fwd > 0);
    if (uc != NULL) {
        char name[80];
        log_warn("upstream %s: server %s: %s timed out", t->ups->cu->name,
                 ups_srv_name(t->ups, uc->srv, name, sizeof(name)),
                 sending ? "sending the request" : "reading the response");
    }
    if (!t->head_sent) {
        if (uc != NULL) {
            t->uc = NULL;
            ups_close(uc);
        }
        pick_release(t, true);
        if (pick_retry(t, sending ? PF_WRITE_TIMEOUT : PF_READ_TIMEOUT)) {
            txn_connect(t);
            return;
        }
        pick_exhausted(t);
        return;
    }
    t->reason = "connection_read_timeout";
    cli_abort(t);
}

/* ---- for the other pipelines (static.c, ajp_txn.c) ---- */

void txn_upstream_failed(struct txn *t, int err, bool connecting)
{
    upstream_failed(t, err, connecting);
}

void txn_reconnect(struct txn *t)
{
    txn_connect(t);
}

ssize_t txn_ups_read(struct uconn *uc)
{
    return ups_read(uc);
}

void txn_arm_timers(struct txn *t, bool upstream, bool client_sending)
{
    if (upstream)
        arm_upstream_timer(t);
    if (client_sending)
        arm_client_timer(t, true);
}

void txn_done_upstream(struct txn *t)
{
    txn_finish(t);
}

void txn_flow_init_resp(struct txn *t, enum h1_body kind, uint64_t len)
{
    flow_init(&t->resf, kind, len);
}

void txn_arm_upstream(struct txn *t, int64_t ms)
{
    timer_set(t->c->w->loop, &t->uc->timer, ms, ups_timeout);
}
