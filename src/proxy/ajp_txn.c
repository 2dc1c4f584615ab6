/*
 * Proxying to an AJP/1.3 upstream (docs/ajp.md), as Apache's
 * mod_proxy_ajp does: the request head becomes one forward-request packet,
 * the body goes in data packets the container asks for, and the container's
 * SEND_HEADERS / SEND_BODY_CHUNK / END_RESPONSE become an HTTP/1.1 response
 * for the client.
 *
 * The forwarded header set is the one the HTTP path sends (hdr_request:
 * hop-by-hop fields dropped, X-Forwarded-*, Via), parsed back and coded as
 * AJP, so both protocols follow the same header rules. Request attributes
 * are only what we compute (query string, AJP_REMOTE_PORT, AJP_LOCAL_ADDR,
 * the secret): no field a client sends becomes an attribute, which is what
 * CVE-2020-1938 (Ghostcat) abused.
 *
 * Body flow control is the container's: after the first packet (sent at
 * once when Content-Length > 0) each further packet answers one
 * GET_BODY_CHUNK, and an empty packet says the body ended. Nothing is sent
 * unasked, so a servlet that reads nothing leaves the connection clean.
 *
 * A pooled connection is probed with CPING (and must answer CPONG within
 * cping_timeout) before a request is committed to it; a connection that
 * fails the probe is dropped and the request goes on a fresh one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/proxy_int.h"
#include "upstream/ajp.h"

#define BODY_MAX(ps) ((ps)-6) /* data bytes per body packet */

enum ajx_state {
    AJ_REQ = 0, /* forward-request sent or being sent */
    AJ_CPING,   /* probe sent, waiting for CPONG */
};

struct ajx {
    enum ajx_state st;
    char *req;            /* the forward-request packet */
    size_t req_len;
    bool first_pending;   /* the first body packet goes unasked */
    unsigned asked;       /* GET_BODY_CHUNK packets owed */
    size_t ask_len;       /* size asked by the latest */
    uint8_t ph[6];        /* head of the body packet being written */
    uint8_t ph_len, ph_off;
    size_t pkt_left;      /* its data bytes still to write */
    bool in_pkt;
    uint32_t chunk_left;  /* response data left in the current chunk */
    uint32_t skip_left;   /* bytes after it to drop */
    bool ended, reuse;
};

/* ---- the forward-request ---- */

static uint16_t port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

int ajp_request(struct txn *t, const struct h1_msg *req)
{
    const struct cfg_upstream *cu = t->ups->cu;
    struct h1_msg m; /* the HTTP head, by the HTTP rules */
    int rc = hdr_request_fields(t, req, &m);
    if (rc < 0)
        return rc;
    struct ajx *aj = pool_calloc(t->pool, sizeof(*aj));
    uint8_t *pkt = pool_alloc(t->pool, cu->ajp.packet_size);
    if (aj == NULL || pkt == NULL)
        return -ENOMEM;
    /* AJP frames the body itself; Tomcat reads until the empty packet */
    size_t keep = 0;
    for (size_t i = 0; i < m.nfields; i++)
        if (!str_ieq_lit(m.fields[i].name, "transfer-encoding"))
            m.fields[keep++] = m.fields[i];
    m.nfields = keep;
    struct str target = req->form == H1_F_ABSOLUTE ? req->path : req->target;
    const char *q = memchr(target.p, '?', target.len);
    struct str uri = str_make(target.p, q ? (size_t)(q - target.p) : target.len);
    if (uri.len == 0)
        uri = STR_LIT("/");
    char ip[64], lip[64], rport[8];
    size_t iplen = sock_ntop(&t->c->peer.sa, ip, sizeof(ip));
    const struct cfg_addr *la = &t->c->cl->addr;
    size_t liplen = sock_ntop((const struct sockaddr *)&la->ss, lip, sizeof(lip));
    int rpl = snprintf(rport, sizeof(rport), "%u", (unsigned)port_of(&t->c->peer.sa));
    struct ajp_req ar = {
        .method = req->method,
        .protocol = req->version >= 11 ? STR_LIT("HTTP/1.1") : STR_LIT("HTTP/1.0"),
        .uri = uri,
        .query = q ? str_make(q + 1, target.len - uri.len - 1) : STR_NULL,
        .remote_addr = str_make(ip, iplen),
        .server_name = t->host.len > 0 ? t->host : str_make(lip, liplen),
        .server_port = port_of((const struct sockaddr *)&la->ss),
        .is_ssl = false, /* TLS attributes come with the TLS layer */
        .fields = m.fields,
        .nfields = m.nfields,
        .secret = str_make(cu->ajp.secret, cu->ajp.secret_len),
        .remote_port = str_make(rport, (size_t)MAX(rpl, 0)),
        .local_addr = str_make(lip, liplen),
    };
    int n = ajp_encode_request(&ar, pkt, cu->ajp.packet_size);
    if (n < 0)
        return n == -EINVAL ? -E2BIG : n;
    aj->req = (char *)pkt;
    aj->req_len = (size_t)n;
    aj->st = AJ_REQ;
    aj->first_pending = req->body == H1_B_LENGTH && req->content_length > 0;
    t->aj = aj;
    t->uout = (struct outq){ aj->req, aj->req_len, 0 };
    return 0;
}

/* ---- CPING ---- */

static void use_request(struct txn *t)
{
    t->aj->st = AJ_REQ;
    t->uout = (struct outq){ t->aj->req, t->aj->req_len, 0 };
}

void ajp_attached(struct txn *t)
{
    const struct cfg_upstream *cu = t->ups->cu;
    if (!cu->ajp.cping) {
        use_request(t);
        return;
    }
    t->aj->st = AJ_CPING;
    t->uout = (struct outq){ (char *)ajp_cping, sizeof(ajp_cping), 0 };
    txn_arm_upstream(t, cu->ajp.cping_timeout);
}

/* The probed connection failed: drop it and send the request on a fresh
 * one (nothing of the request was sent, so any method may go again). */
static void cping_failed(struct txn *t, const char *why)
{
    const struct cfg_upstream *cu = t->ups->cu;
    struct uconn *uc = t->uc;
    char name[80];
    log_warn("upstream %s: server %s: CPING %s; trying a new connection", cu->name,
             ups_srv_name(t->ups, uc->srv, name, sizeof(name)), why);
    if (uc->srv < 64)
        t->tried &= ~(1ull << uc->srv);
    if (t->attempts > 0)
        t->attempts--; /* the same try, on a fresh connection */
    t->uc = NULL;
    ups_close(uc);
    pick_release(t, false); /* the server is fine, the connection was not */
    use_request(t);
    txn_reconnect(t);
}

/* ---- request body ---- */

/* Starts the next body packet if one is owed. Returns 1 when there is
 * something to write, 0 when waiting for client bytes or a request, -1 when
 * the transaction ended. */
static int next_packet(struct txn *t)
{
    struct ajx *aj = t->aj;
    struct conn *c = t->c;
    if (!aj->first_pending && aj->asked == 0)
        return 0;
    if (t->reqf.fwd == 0 && !t->reqf.done && buf_len(t->rb) > 0) {
        if (flow_take(&t->reqf, t->rb) < 0) {
            t->keepalive = false;
            txn_error(t, 400, "http_request_error", "Malformed chunked request body.");
            return -1;
        }
        uint64_t limit = t->route->max_body ? t->route->max_body : c->cl->limits.body_bytes;
        if (limit != 0 && t->reqf.bytes > limit) {
            t->keepalive = false;
            txn_error(t, 413, "http_request_denied", "The request body is too large.");
            return -1;
        }
    }
    size_t cap = BODY_MAX(t->ups->cu->ajp.packet_size);
    if (!aj->first_pending && aj->ask_len > 0 && aj->ask_len < cap)
        cap = aj->ask_len;
    if (t->reqf.fwd > 0) {
        size_t n = MIN(t->reqf.fwd, cap);
        aj->ph_len = (uint8_t)ajp_body_head(aj->ph, n);
        aj->pkt_left = n;
    } else if (t->reqf.done) {
        if (aj->first_pending) { /* Content-Length promised more: cannot be */
            aj->first_pending = false;
            return 0;
        }
        aj->ph_len = (uint8_t)ajp_body_head(aj->ph, 0); /* end of body */
        aj->pkt_left = 0;
    } else {
        return 0; /* wait for client bytes */
    }
    aj->ph_off = 0;
    aj->in_pkt = true;
    if (aj->first_pending)
        aj->first_pending = false;
    else
        aj->asked--;
    return 1;
}

/* Writes the current body packet. Returns 1 on progress, 0 when blocked,
 * -1 when the transaction ended. */
static int write_packet(struct txn *t)
{
    struct ajx *aj = t->aj;
    struct uconn *uc = t->uc;
    struct iovec iov[2];
    int n = 0;
    if (aj->ph_off < aj->ph_len)
        iov[n++] = (struct iovec){ aj->ph + aj->ph_off, (size_t)(aj->ph_len - aj->ph_off) };
    if (aj->pkt_left > 0)
        iov[n++] = (struct iovec){ buf_head(t->rb), aj->pkt_left };
    if (n == 0) {
        aj->in_pkt = false;
        return 1;
    }
    ssize_t w = ups_sendv(uc, iov, n);
    if (w < 0) {
        if (w == -EAGAIN)
            return 0; /* ups_sendv cleared the flag it waits on */
        txn_upstream_failed(t, (int)w, false);
        return -1;
    }
    size_t left = (size_t)w;
    size_t h = MIN(left, (size_t)(aj->ph_len - aj->ph_off));
    aj->ph_off = (uint8_t)(aj->ph_off + h);
    left -= h;
    if (left > 0) {
        aj->pkt_left -= left;
        flow_sent(&t->reqf, t->rb, left);
    }
    if (aj->ph_off == aj->ph_len && aj->pkt_left == 0)
        aj->in_pkt = false;
    return 1;
}

/* client -> upstream. Returns 0, or -1 when the transaction ended. */
static int pump_up(struct txn *t)
{
    struct uconn *uc = t->uc;
    for (;;) {
        if (t->uout.head_off < t->uout.head_len) {
            if (!uc->writable)
                return 0;
            ssize_t n = uconn_send(uc, &t->uout, NULL, NULL, 0);
            if (n == -EAGAIN) {
                uc->writable = false;
                return 0;
            }
            if (n < 0) {
                if (t->aj->st == AJ_CPING) {
                    cping_failed(t, "could not be sent");
                    return -1;
                }
                txn_upstream_failed(t, (int)n, false);
                return -1;
            }
            continue;
        }
        if (t->aj->st == AJ_CPING)
            return 0;
        if (t->aj->in_pkt) {
            if (!uc->writable)
                return 0;
            int r = write_packet(t);
            if (r <= 0)
                return r;
            continue;
        }
        int r = next_packet(t);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if (t->reqf.done || t->reqf.fwd > 0 || !cli_readable(t) ||
            (!t->aj->first_pending && t->aj->asked == 0))
            return 0;
        ssize_t n = cli_read(t);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            t->reason = "client_closed";
            cli_abort(t);
            return -1;
        }
    }
}

/* ---- response ---- */

static void bad_response(struct txn *t, const char *what)
{
    const struct cfg_upstream *cu = t->ups->cu;
    char name[80];
    log_warn("upstream %s: server %s: invalid AJP response (%s)", cu->name,
             ups_srv_name(t->ups, t->uc->srv, name, sizeof(name)), what);
    t->uc->rdhup = true;
    if (t->head_sent) {
        t->reason = "http_protocol_error";
        cli_abort(t);
        return;
    }
    txn_error(t, 502, "http_protocol_error", "The upstream server sent an invalid response.");
}

/* SEND_HEADERS: the client's response head. Returns 0 or -1. */
static int start_response(struct txn *t, const uint8_t *p, size_t len)
{
    size_t max = t->c->cl->limits.header_count;
    struct h1_field *f = pool_alloc(t->pool, max * sizeof(*f));
    if (f == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return -1;
    }
    struct h1_msg *r = &t->resp;
    h1_msg_init(r, f, max);
    int rc = ajp_parse_headers(p, len, r);
    if (rc < 0) {
        bad_response(t, rc == -E2BIG ? "too many headers" : "bad SEND_HEADERS");
        return -1;
    }
    /* the views point into uc->rbuf, which is consumed next: copy them */
    for (size_t i = 0; i < r->nfields; i++) {
        char *n = pool_strndup(t->pool, r->fields[i].name.p, r->fields[i].name.len);
        char *v = pool_strndup(t->pool, r->fields[i].value.p, r->fields[i].value.len);
        if (n == NULL || v == NULL) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return -1;
        }
        r->fields[i].name.p = n;
        r->fields[i].value.p = v;
    }
    char *reason = pool_strndup(t->pool, r->reason.p, r->reason.len);
    if (reason == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return -1;
    }
    r->reason.p = reason;
    /* Tomcat sends the code again as the message: use the standard phrase
     * (the reason phrase carries no meaning, RFC 9112 §4) */
    if (strcmp(h1_reason(r->status), "Unknown") != 0 || r->reason.len == 0)
        r->reason = str_cstr(h1_reason(r->status));
    /* hdr_response sizes its buffer from head_len: coded names grow */
    r->head_len = len + r->nfields * 32;
    t->ustatus = t->status = r->status;
    enum h1_body kind = h1_response_body(r, t->req.meth);
    if (kind == H1_B_EOF)
        kind = H1_B_CHUNKED; /* no length: we frame it */
    txn_flow_init_resp(t, kind, r->content_length);
    if (!t->reqf.done || t->c->w->draining)
        t->keepalive = false;
    if (t->route->compress != NULL && compress_decide(t, r, kind) < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return -1;
    }
    if (kind == H1_B_CHUNKED && t->bo == NULL && bodyout_new(t) == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return -1;
    }
    if (t->bo != NULL && !t->bo->chunked)
        t->keepalive = false; /* HTTP/1.0 client: the end is the close */
    if (hdr_response(t, r) < 0) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return -1;
    }
    t->head_sent = true;
    t->phase = T_RESPONSE;
    return 0;
}

static void end_response(struct txn *t)
{
    if (t->bo != NULL || t->cout.head_off < t->cout.head_len) {
        if (!cli_writable(t))
            return;
        int rc = t->bo != NULL ? bodyout_finish(t)
                               : (int)cli_send(t, &t->cout, NULL, 0);
        if (rc == -EAGAIN || (rc >= 0 && t->cout.head_off < t->cout.head_len)) {
            txn_arm_timers(t, false, true);
            return;
        }
        if (rc < 0) {
            t->reason = "client_closed";
            cli_abort(t);
            return;
        }
    }
    if (t->resf.kind == H1_B_LENGTH && t->resf.bytes != t->resp.content_length) {
        /* shorter than it announced: the client must see it cut */
        bad_response(t, "body shorter than Content-Length");
        return;
    }
    if (!t->aj->reuse || t->aj->in_pkt || t->aj->asked > 0)
        t->uc->rdhup = true; /* never reuse */
    t->resf.done = true;
    txn_done_upstream(t);
}

/* Body bytes of the current chunk to the client. Returns 1 on progress, 0
 * when blocked, -1 when the transaction ended. */
static int body_out(struct txn *t)
{
    struct ajx *aj = t->aj;
    struct uconn *uc = t->uc;
    size_t n = MIN((size_t)aj->chunk_left, buf_len(&uc->rbuf));
    if (t->resf.kind == H1_B_LENGTH && t->resf.bytes + n > t->resp.content_length) {
        /* more than it announced: the client would read the rest as the
         * next response */
        bad_response(t, "body longer than Content-Length");
        return -1;
    }
    if (!cli_writable(t))
        return 0;
    ssize_t w = t->bo != NULL ? bodyout_write(t, buf_head(&uc->rbuf), n)
                              : cli_send(t, &t->cout, buf_head(&uc->rbuf), n);
    if (w == -EAGAIN)
        return 0;
    if (w < 0) {
        t->reason = "client_closed";
        cli_abort(t);
        return -1;
    }
    buf_consume(&uc->rbuf, (size_t)w);
    aj->chunk_left -= (uint32_t)w;
    t->resf.bytes += (uint64_t)w;
    return 1;
}

/* The head of a SEND_BODY_CHUNK packet at <p> (<avail> bytes, <plen> the
 * packet's length): its bytes then go as the body, what pads it is
 * skipped. Returns as take_packet. */
static int body_chunk_head(struct txn *t, const uint8_t *p, size_t avail, int plen)
{
    struct ajx *aj = t->aj;
    if (avail < AJP_HEAD + 3)
        return 0;
    uint32_t clen = (uint32_t)p[AJP_HEAD + 1] << 8 | p[AJP_HEAD + 2];
    if (!t->head_sent || clen + 3 > (uint32_t)plen) {
        bad_response(t, "body chunk");
        return -1;
    }
    buf_consume(&t->uc->rbuf, AJP_HEAD + 3);
    aj->chunk_left = clen;
    aj->skip_left = (uint32_t)plen - 3 - clen; /* Tomcat adds a NUL */
    if (t->resf.kind == H1_B_NONE)
        aj->chunk_left = 0, aj->skip_left += clen; /* HEAD: drop */
    return 1;
}

/* A whole packet other than a body chunk, <type> with payload <pl> of
 * <plen> bytes. Returns 0, or -1 when the transaction ended. */
static int whole_packet(struct txn *t, uint8_t type, const uint8_t *pl, int plen)
{
    struct ajx *aj = t->aj;
    switch (type) {
    case AJP_SEND_HEADERS:
        if (t->head_sent) {
            bad_response(t, "second SEND_HEADERS");
            return -1;
        }
        return start_response(t, pl, (size_t)plen) < 0 ? -1 : 0;
    case AJP_END_RESPONSE:
        if (!t->head_sent) {
            bad_response(t, "END_RESPONSE without headers");
            return -1;
        }
        aj->reuse = plen >= 2 && pl[1] == 1;
        aj->ended = true;
        return 0;
    case AJP_GET_BODY_CHUNK:
        aj->ask_len = plen >= 3 ? ((size_t)pl[1] << 8 | pl[2]) : 0;
        aj->asked++;
        return 0;
    default:
        bad_response(t, "unknown packet type");
        return -1;
    }
}

/* One packet (or part of a body chunk) from the upstream buffer. Returns 1
 * on progress, 0 when more bytes are needed, -1 when the transaction ended
 * or is blocked on the client (then -2). */
static int take_packet(struct txn *t)
{
    struct ajx *aj = t->aj;
    struct uconn *uc = t->uc;
    const struct cfg_upstream *cu = t->ups->cu;
    if (aj->chunk_left > 0) {
        if (buf_len(&uc->rbuf) == 0)
            return 0;
        int r = body_out(t);
        return r == 0 ? -2 : r;
    }
    if (aj->skip_left > 0) {
        size_t k = MIN((size_t)aj->skip_left, buf_len(&uc->rbuf));
        if (k == 0)
            return 0;
        buf_consume(&uc->rbuf, k);
        aj->skip_left -= (uint32_t)k;
        return 1;
    }
    const uint8_t *p = (const uint8_t *)buf_head(&uc->rbuf);
    size_t avail = buf_len(&uc->rbuf);
    int plen = ajp_packet_len(p, avail, cu->ajp.packet_size);
    if (plen == -EAGAIN)
        return 0;
    if (plen < 0) {
        if (aj->st == AJ_CPING)
            cping_failed(t, "answered with something else");
        else
            bad_response(t, "bad packet head");
        return -1;
    }
    if (avail < AJP_HEAD + 1)
        return 0;
    uint8_t type = p[AJP_HEAD];
    if (aj->st == AJ_CPING) {
        if (type != AJP_CPONG_REPLY) {
            cping_failed(t, "answered with something else");
            return -1;
        }
        buf_consume(&uc->rbuf, AJP_HEAD + (size_t)plen);
        use_request(t);
        return 1;
    }
    if (type == AJP_SEND_BODY_CHUNK)
        return body_chunk_head(t, p, avail, plen);
    if (avail < AJP_HEAD + (size_t)plen) {
        if (buf_room(&uc->rbuf) == 0 && uc->rbuf.start == 0 &&
            buf_grow(&uc->rbuf, AJP_HEAD + (size_t)plen) < 0) {
            txn_error(t, 503, "proxy_internal_error", "Out of memory.");
            return -1;
        }
        return 0;
    }
    if (whole_packet(t, type, p + AJP_HEAD, plen) < 0)
        return -1;
    buf_consume(&uc->rbuf, AJP_HEAD + (size_t)plen);
    return 1;
}

/* upstream -> client. Returns 0, or -1 when the transaction ended. */
static int pump_down(struct txn *t)
{
    struct uconn *uc = t->uc;
    bool got = false;
    for (;;) {
        if (t->aj->ended) {
            end_response(t);
            return -1;
        }
        if (t->head_sent && cli_writable(t) &&
            (t->cout.head_off < t->cout.head_len || (t->bo != NULL && bodyout_pending(t)))) {
            ssize_t n = t->bo != NULL ? bodyout_write(t, NULL, 0)
                                      : cli_send(t, &t->cout, NULL, 0);
            if (n < 0 && n != -EAGAIN) {
                t->reason = "client_closed";
                cli_abort(t);
                return -1;
            }
        }
        int r = take_packet(t);
        if (r == -1)
            return -1;
        if (r == -2)
            break; /* the client is not taking more */
        if (r == 1) {
            /* a CPONG lets the request go, a GET_BODY_CHUNK a packet */
            if ((t->aj->asked > 0 || t->uout.head_off < t->uout.head_len) &&
                pump_up(t) < 0)
                return -1;
            continue;
        }
        if (!uc->readable) {
            if (t->bo != NULL && cli_writable(t)) {
                int rc = bodyout_flush(t);
                if (rc < 0 && rc != -EAGAIN) {
                    t->reason = "client_closed";
                    cli_abort(t);
                    return -1;
                }
            }
            break;
        }
        ssize_t n = txn_ups_read(uc);
        if (n == -EAGAIN)
            continue;
        if (n <= 0) {
            if (t->aj->st == AJ_CPING) {
                cping_failed(t, "got no answer (connection closed)");
                return -1;
            }
            if (!t->head_sent && !t->resp_started) {
                txn_upstream_failed(t, n == 0 ? -ECONNRESET : (int)n, false);
                return -1;
            }
            bad_response(t, "connection closed before END_RESPONSE");
            return -1;
        }
        t->resp_started = t->aj->st == AJ_REQ;
        got = true;
    }
    if (got)
        txn_arm_timers(t, true, false);
    if (t->cout.head_off < t->cout.head_len || (t->bo != NULL && bodyout_pending(t)) ||
        t->aj->chunk_left > 0)
        txn_arm_timers(t, false, true);
    return 0;
}

void ajp_pump(struct txn *t)
{
    if (pump_up(t) < 0)
        return;
    if (t->aj->st == AJ_REQ && t->uc != NULL)
        txn_arm_timers(t, true, false);
    pump_down(t);
}

ssize_t ajp_pull(struct txn *t, char *dst, size_t max, bool *eof)
{
    struct ajx *aj = t->aj;
    struct uconn *uc = t->uc;
    *eof = false;
    if (uc == NULL)
        return -EAGAIN;
    size_t n = MIN(MIN((size_t)aj->chunk_left, buf_len(&uc->rbuf)), max);
    if (n == 0)
        return -EAGAIN;
    if (t->resf.kind == H1_B_LENGTH && t->resf.bytes + n > t->resp.content_length)
        return -EPROTO; /* longer than announced: the stream is reset */
    memcpy(dst, buf_head(&uc->rbuf), n);
    buf_consume(&uc->rbuf, n);
    aj->chunk_left -= (uint32_t)n;
    t->resf.bytes += n;
    return (ssize_t)n;
}

bool ajp_timeout(struct txn *t)
{
    if (t->uc == NULL || t->aj->st != AJ_CPING)
        return false;
    cping_failed(t, "timed out");
    return true;
}
