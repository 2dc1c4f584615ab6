/*
 * A transaction and its upstream pool: which server, what happens when it
 * fails, and waiting for a slot (docs/upstreams.md).
 *
 * Every successful pick holds one of the server's in-flight slots until
 * pick_release(); every path that ends a try goes through it (txn.c on
 * success, failure and retry; txn_abort and conn_txn_done as the net).
 *
 * Retries. A try that failed before any byte of the response reached the
 * client goes to another server when the request was never sent (connect
 * refused or timed out: always safe) or is idempotent without a body (the
 * body was streamed from the client buffer and is gone). At most
 * retries.tries servers are tried (0: each once). A retry of a request that
 * reached a server also needs the pool's retry budget, so that in an
 * outage retries cannot multiply the load; a refused connect costs the
 * server nothing and is not counted against it (nginx's next_upstream on
 * error, Envoy's budget for the rest).
 *
 * The queue. When every usable server is at max_conns, the request waits
 * in the worker's queue for the pool (ups_wait), bounded by the pool's
 * queue size across all workers and by queue_timeout; a full queue or a
 * wait that timed out is answered 503 with Retry-After.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

static bool idempotent(enum h1_method m)
{
    return m == H1_M_GET || m == H1_M_HEAD || m == H1_M_PUT ||
           m == H1_M_DELETE || m == H1_M_OPTIONS || m == H1_M_TRACE;
}

static void busy(struct txn *t, const char *why)
{
    char ra[64];
    snprintf(ra, sizeof(ra), "Retry-After: %lld\r\n",
             (long long)((t->ups->cu->retry_after + 999) / 1000));
    t->reason = why;
    txn_error_hdr(t, 503, "connection_limit_reached",
                  "Every server of this service is busy; try again later.", ra);
}

static void woken(struct ups_waiter *w, bool timed_out)
{
    struct txn *t = container_of(w, struct txn, wait);
    CHECK_OBJ(t, TXN_MAGIC);
    if (timed_out) {
        ups_unwait(t->ups, w);
        busy(t, "queue_timeout");
        return;
    }
    txn_connect(t);
}

int pick_server(struct txn *t)
{
    struct ups *u = t->ups;
    const struct cfg_upstream *cu = u->cu;
    if (cu->retries.tries > 0 && t->attempts >= cu->retries.tries)
        return -1;
    /* first come, first served: while others wait, a newcomer queues */
    bool behind = u->nwait > 0 && !t->wait.counted;
    int srv = behind ? UPS_FULL : ups_pick(u, &t->key, t->tried);
    if (srv == UPS_FULL) {
        if (cu->queue > 0 && ups_wait(u, &t->wait, woken, t->wait.counted) == 0) {
            t->phase = T_CONNECT; /* waiting, with no connection */
            return -2;
        }
        if (t->wait.counted)
            ups_unwait(u, &t->wait);
        busy(t, cu->queue > 0 ? "queue_full" : "max_conns");
        return -2;
    }
    if (srv < 0)
        return -1;
    if (t->wait.counted)
        ups_unwait(u, &t->wait);
    t->tried |= 1ull << srv;
    t->attempts++;
    t->held = srv + 1;
    t->reported = false;
    t->try_us = loop_now_us(t->c->w->loop);
    t->set_cookie = ups_sticky_cookie(u, &t->key, (unsigned)srv);
    if (t->ntrylog == 0 || t->trylog[t->ntrylog - 1] != srv) {
        if (t->ntrylog < ARRAY_LEN(t->trylog))
            t->trylog[t->ntrylog++] = (uint8_t)srv;
    }
    return srv;
}

void pick_observe(struct txn *t, int status)
{
    if (t->held == 0 || t->reported)
        return;
    t->reported = true;
    int64_t lat = loop_now_us(t->c->w->loop) - t->try_us;
    ups_report(t->ups, (unsigned)(t->held - 1), status >= 500 ? UPS_5XX : UPS_OK,
               lat);
}

void pick_release(struct txn *t, bool failed)
{
    if (t->held == 0)
        return;
    unsigned srv = (unsigned)(t->held - 1);
    t->held = 0;
    if (failed && !t->reported)
        ups_report(t->ups, srv, UPS_FAIL, -1);
    t->reported = false;
    ups_unhold(t->ups, srv);
}

bool pick_retry(struct txn *t, enum pick_fail f)
{
    t->last_fail = (int)f;
    if (f == PF_REFUSED || f == PF_CONNECT_TIMEOUT)
        return true; /* never sent; txn_connect bounds the tries */
    /* cout.head: an interim response (103) already went to the client */
    if (t->head_sent || t->cout.head != NULL || t->reqf.kind != H1_B_NONE ||
        !idempotent(t->req.meth))
        return false;
    const struct cfg_upstream *cu = t->ups->cu;
    if (cu->retries.tries > 0 && t->attempts >= cu->retries.tries)
        return false;
    if (!ups_retry_allowed(t->ups)) {
        log_warn("upstream %s: retry budget spent; not retrying", cu->name);
        return false;
    }
    t->uout.head_off = 0; /* the head goes out again, whole */
    if (t->resp.fields != NULL) /* forget a partial response head */
        h1_msg_init(&t->resp, t->resp.fields, t->c->cl->limits.header_count);
    t->resp_started = false;
    return true;
}

void pick_exhausted(struct txn *t)
{
    if (t->last_err == -EKEYREJECTED) {
        txn_error(t, 502, "tls_certificate_error",
                  "The upstream server's certificate was not accepted.");
        return;
    }
    if (t->last_err == -EPROTO) {
        txn_error(t, 502, "tls_protocol_error",
                  "The TLS handshake with the upstream server failed.");
        return;
    }
    switch (t->last_fail) {
    case PF_CONNECT_TIMEOUT:
        txn_error(t, 504, "connection_timeout",
                  "The upstream server did not accept the connection in time.");
        break;
    case PF_BROKEN:
        txn_error(t, 502, "connection_terminated",
                  "The upstream server closed the connection.");
        break;
    case PF_READ_TIMEOUT:
    case PF_WRITE_TIMEOUT:
        txn_error(t, 504, t->last_fail == PF_READ_TIMEOUT ? "connection_read_timeout"
                                                          : "connection_write_timeout",
                  "The upstream server did not answer in time.");
        break;
    default:
        txn_error(t, 502, "connection_refused",
                  "The upstream server refused the connection.");
        break;
    }
}

void pick_end(struct txn *t)
{
    if (t->ups == NULL)
        return;
    if (t->wait.counted || t->wait.queued)
        ups_unwait(t->ups, &t->wait);
    pick_release(t, false);
}

size_t pick_tried(const struct txn *t, char *buf, size_t len)
{
    size_t o = 0;
    if (len == 0)
        return 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < t->ntrylog && o + 1 < len; i++) {
        char name[80];
        ups_srv_name(t->ups, t->trylog[i], name, sizeof(name));
        int n = snprintf(buf + o, len - o, "%s%s", i ? "," : "", name);
        if (n < 0)
            break;
        o = MIN(o + (size_t)n, len - 1);
    }
    return o;
}
