/*
 * Internals shared by the files of src/proxy/.
 *
 * A worker owns a loop, its own SO_REUSEPORT copy of every listener, its
 * client connections (struct conn) and its upstream state (struct ups_set).
 * A client connection carries at most one transaction (struct txn) at a
 * time; pipelined requests wait in the connection's read buffer until the
 * current response is complete, which keeps responses in order for free.
 */
#ifndef GH_PROXY_PROXY_INT_H
#define GH_PROXY_PROXY_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "admin/metrics.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/pool.h"
#include "http/h1.h"
#include "upstream/ups.h"

#define CONN_MAGIC 0xc0de0c11u
#define TXN_MAGIC 0x7a11c0deu

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct worker;
struct gen;

struct lsock {
    struct ev ev;
    struct worker *w;
    struct gen *g;
    const struct cfg_listener *cl;
};

struct conn;
struct shared;

/*
 * A configuration generation inside one worker: the snapshot it was given,
 * the upstream state built from it, its listening sockets, and how many
 * client connections were accepted under it. A connection pins its
 * generation (one plain counter, no atomic per connection); the generation
 * holds the snapshot's reference. On reload a new generation takes over the
 * listeners, the old one is retired (its connections close after their
 * next response, or at their idle timeout) and freed when its last
 * connection closes. Per-generation state of later capabilities (TLS
 * contexts, issue 6) belongs here, built in gen_new() and freed in
 * gen_free().
 */
struct gen {
    struct worker *w;
    struct cfg *cfg; /* a reference */
    struct ups_set *ups;
    struct lsock *ls; /* listeners, while current */
    size_t nls;
    unsigned nconns;
    unsigned id;      /* 1, 2, ... per process: the reload count + 1 */
    bool retired;
    struct gen *next; /* in worker->old */
};

/* What the main thread hands a worker on reload. */
struct reload_msg {
    struct cfg *cfg; /* a reference, for the worker */
    unsigned id;
    int *fds;        /* per listener of cfg: a socket opened for this
                        worker, or -1: take over the current one at the
                        same address */
    int alog_fd;     /* access log after the reload, -1 when off */
    enum cfg_log_format alog_fmt;
    struct reload_msg *next;
};

struct worker {
    int id;
    pthread_t thread;
    struct loop *loop;
    struct cfg *cfg; /* the current generation's snapshot (new connections);
                        a request uses its connection's c->gen->cfg */
    struct ups_set *ups; /* the current generation's */
    struct gen *gen;     /* current generation */
    struct gen *old;     /* retired generations with connections left */
    struct mworker *m;   /* this worker's counters */
    pthread_mutex_t mu;  /* guards inbox */
    struct reload_msg *inbox;
    struct ev wake; /* eventfd: the main thread asks us to stop or reload */
    struct logsink alog;
    bool alog_on;
    enum cfg_log_format alog_fmt;
    char date[32];       /* IMF-fixdate of date_sec */
    char clf_date[96];   /* 26/Nov/2026:21:30:00 +0000 */
    int64_t date_sec;
    struct conn *conns;  /* every open client connection */
    unsigned nconns;
    bool draining;
    bool ls_closed;      /* listeners closed: no more accepting */
    struct timer drain_timer;
    struct shared *shared; /* cluster state in Redis; NULL without it */
    uint64_t seq;
};

enum conn_state {
    C_IDLE = 0, /* keep-alive: waiting for the first byte of a request */
    C_HEAD,     /* reading a request head */
    C_BUSY,     /* a transaction is running */
    C_LINGER,   /* answered and closing: discarding input briefly */
    C_HANDSHAKE, /* TLS handshake in progress */
    C_H2,       /* HTTP/2: streams and their transactions in c->h2 */
};

struct txn;
struct tls_conn;
struct h2c;

struct conn {
    unsigned magic;
    struct ev ev;
    struct timer timer;
    struct defer defer;
    struct worker *w;
    struct gen *gen; /* pinned: the generation it was accepted under */
    const struct cfg_listener *cl;
    struct buf rbuf;
    struct txn *txn;
    struct tls_conn *tls; /* NULL on a plain connection */
    struct h2c *h2;       /* HTTP/2 state (C_H2), else NULL */
    struct conn *prev, *next;
    union sockaddr_any peer;
    uint32_t nreq;
    uint8_t state;
    bool readable, writable, rdhup, eof, dead;
    bool pp_wait;   /* a PROXY header must come first */
    union sockaddr_any *pp_dst; /* the address a PROXY header said the
                                   client talked to (malloc'd), or NULL */
    bool hs_wants_write;  /* C_HANDSHAKE: blocked on writing, not reading */
};

/* The connection closes after its current response: graceful stop, or its
 * generation was retired by a reload. */
static inline bool conn_closing(const struct conn *c)
{
    return c->w->draining || c->gen->retired;
}
/* Output to one side: a serialized head from the arena, then body bytes. */
struct outq {
    char *head;
    size_t head_len, head_off;
};

/* Direction of body bytes in a transaction. */
struct flow {
    enum h1_body kind;
    uint64_t left;         /* H1_B_LENGTH: bytes still to come */
    struct h1_chunked ch;  /* H1_B_CHUNKED */
    bool decode;           /* chunked in, raw out (HTTP/1.0 client) */
    bool done;             /* the last byte was seen */
    size_t fwd;            /* bytes at the buffer's start ready to send */
    size_t skip;           /* bytes after them to drop (chunk framing) */
    uint64_t bytes;        /* body bytes sent on */
    bool encode;           /* raw in, chunked out (an HTTP/2 request body
                              without Content-Length) */
    bool term;             /* encode: the last chunk is in <chunk> */
    struct outq chunk;     /* encode: chunk framing to send before fwd */
    char chunk_buf[24];
};

enum txn_phase {
    T_CONNECT = 0, /* waiting for an upstream connection */
    T_REQUEST,     /* sending head/body upstream, awaiting response head */
    T_RESPONSE,    /* response head sent/being sent, streaming the body */
    T_TUNNEL,      /* after 101: raw bytes both ways */
    T_LOCAL,       /* answering ourselves (return route, error) */
    T_DONE,
};

struct h2s;

struct txn {
    unsigned magic;
    struct pool *pool;
    struct conn *c;
    struct h2s *h2;   /* the HTTP/2 stream carrying it; NULL on HTTP/1 */
    struct buf *rb;   /* request body bytes from the client (c->rbuf on
                         HTTP/1, the stream's buffer on HTTP/2) */
    enum txn_phase phase;
    int64_t t0_us;
    /* the request, copied out of the read buffer into the arena */
    struct h1_msg req;
    struct str host; /* lower case, without port */
    const struct cfg_site *site;
    const struct cfg_route *route;
    struct ups *ups;
    struct uconn *uc;
    uint64_t tried;   /* servers tried (bitmask) */
    unsigned attempts;
    int last_err;     /* of the last failed connect */
    bool replayed;    /* already retried after a stale pooled connection */
    struct flow reqf; /* client -> upstream */
    struct flow resf; /* upstream -> client */
    struct outq uout; /* head to upstream */
    struct outq cout; /* head (and local body) to client */
    const char *local_body; /* T_LOCAL body (static or arena) */
    size_t local_len, local_off;
    struct h1_msg resp;
    int status;             /* sent to the client */
    int ustatus;            /* from the upstream, 0 if none */
    const char *reason;     /* log reason / Proxy-Status error, or NULL */
    bool keepalive;         /* the client connection persists after this */
    bool head_sent;         /* a final response head went to the client */
    bool upgrade;           /* websocket upgrade requested */
    bool resp_started;      /* any response byte read from upstream */
    bool up_eof, c_shut, u_shut; /* tunnel half-closes */
    bool rdhup_seen;        /* the client's hang-up was looked at */
};

/* ---- server.c / worker.c ---- */
const char *worker_date(struct worker *w);
/* A connection of retired generation <g> closed: free it when empty. */
void gen_conn_closed(struct gen *g);

/* ---- stats.c (metrics and PROXY protocol glue) ---- */
/* Counts the finished request <t> (where alog_write() logs it). */
void stats_txn(struct txn *t);
/* Consumes a PROXY header from c->rbuf. Returns 1 when done (c->peer now
 * carries the client's address), 0 when more bytes are needed, -1 when the
 * connection was closed. */
int pp_accept(struct conn *c);
/* Puts a PROXY header in front of t->uout when the upstream wants one.
 * 0 or -ENOMEM. */
int pp_upstream(struct txn *t);

/* ---- session.c ---- */
/* A transaction (arena, parser state) for a request on <c>, not attached to
 * it; NULL when out of memory. */
struct txn *txn_alloc(struct conn *c);
void conn_accept(struct worker *w, struct lsock *ls, int fd,
                 const union sockaddr_any *peer);
void conn_close(struct conn *c);
/* Called when c->txn finished: log, free, keep-alive or close. */
void conn_txn_done(struct conn *c);
/* Client I/O (plain or TLS). conn_recv: bytes read, 0 on EOF, -EAGAIN or
 * -errno. conn_sendv: bytes written, -EAGAIN or -errno. Both clear
 * c->readable / c->writable themselves when the socket would block. */
ssize_t conn_recv(struct conn *c, char *p, size_t len);
ssize_t conn_sendv(struct conn *c, const struct iovec *iov, int n);
/* The client hung up (checked when the socket reported RDHUP): no more
 * request bytes are waiting, only the end. */
bool conn_peer_gone(struct conn *c);
/* Ends our sending side (TLS close_notify, then FIN). */
void conn_shutdown(struct conn *c);
/* Reads from the client into c->rbuf. Returns bytes read, 0 on EOF,
 * -EAGAIN, -ENOBUFS when the buffer is full, or -errno. */
ssize_t conn_read(struct conn *c);
void conn_drain_idle(struct worker *w);

/* ---- txn.c ---- */
/* Starts transaction <t> for its parsed request head <req> (== &t->req). */
void txn_start(struct txn *t, struct h1_msg *req);
/* Something changed on the client connection. */
void txn_client_event(struct txn *t);
void txn_abort(struct txn *t); /* client went away: free everything */
void txn_timeout(struct txn *t, bool client_side);
/* Takes up to <max> response body bytes that are ready for the client into
 * <dst> (for HTTP/2, where the client side pulls). Returns their number,
 * with *eof at the end of the body, or -EAGAIN when none are ready. */
ssize_t txn_pull(struct txn *t, char *dst, size_t max, bool *eof);

/* ---- h2conn.c: HTTP/2 connections ---- */
/* Switches <c> to HTTP/2 (after ALPN h2, or an h2c preface in c->rbuf,
 * which is fed first). Returns 0, or -errno: close the connection. */
int h2c_start(struct conn *c);
void h2c_event(struct conn *c);
/* Frees the HTTP/2 state, aborting the streams' transactions. */
void h2c_close(struct conn *c);
/* Graceful stop: GOAWAY, finish the open streams, then close. */
void h2c_drain(struct conn *c);
/* Whether <b> starts with the HTTP/2 client preface: 1 yes, 0 not yet
 * known (a prefix of it), -1 no. */
int h2c_preface(const struct buf *b);
/* The cli_* calls for a transaction on an HTTP/2 stream. */
ssize_t h2s_send(struct txn *t, struct outq *q, const char *data, size_t len);
ssize_t h2s_read(struct txn *t);
void h2s_timer(struct txn *t, int64_t ms); /* ms < 0: stop */
void h2s_done(struct txn *t);
void h2s_abort(struct txn *t);

/* ---- the client side of a transaction ----
 *
 * What a transaction needs from its client, whatever carries it: request
 * body bytes in, the response head and body out with backpressure, a
 * timer, and an end (done, or cut short). On HTTP/1 the client is the
 * connection itself; these wrappers are then the calls the pipeline made
 * before, at the cost of one branch. */

/* Reads more request body bytes into t->rb: bytes read, 0 at the end of
 * the client's input, -EAGAIN, or -errno. Call while cli_readable(). */
static inline ssize_t cli_read(struct txn *t)
{
    if (t->h2 != NULL)
        return h2s_read(t);
    return conn_read(t->c);
}

static inline bool cli_readable(const struct txn *t)
{
    return t->h2 != NULL || t->c->readable;
}

static inline bool cli_writable(const struct txn *t)
{
    return t->h2 != NULL || t->c->writable;
}

/* Sends the rest of <q>'s head and up to <len> body bytes at <data> to the
 * client. Returns the body bytes taken (the caller consumes them), -EAGAIN
 * or -errno. */
ssize_t cli_send(struct txn *t, struct outq *q, const char *data, size_t len);

/* Arms the client-side timer of <t> (body or send timeout) ... */
static inline void cli_timer(struct txn *t, int64_t ms)
{
    if (t->h2 != NULL)
        h2s_timer(t, ms);
    else
        timer_set(t->c->w->loop, &t->c->timer, ms, t->c->timer.cb);
}

/* ... or stops it. */
static inline void cli_timer_stop(struct txn *t)
{
    if (t->h2 != NULL)
        h2s_timer(t, -1);
    else
        timer_cancel(t->c->w->loop, &t->c->timer);
}

/* The response went out whole: log, free <t>, go on with the client. */
static inline void cli_done(struct txn *t)
{
    if (t->h2 != NULL)
        h2s_done(t);
    else
        conn_txn_done(t->c);
}

/* The client cannot be answered properly any more (it went away, or the
 * response broke after its head was sent): cut it off; <t> is freed
 * (and logged, with t->reason) on the way. */
static inline void cli_abort(struct txn *t)
{
    if (t->h2 != NULL)
        h2s_abort(t);
    else
        conn_close(t->c);
}

/* ---- respond.c ---- */
/* Answers with <status> and a short body, a Proxy-Status naming <error>
 * (an RFC 9209 error type, or NULL for none). */
void txn_error(struct txn *t, int status, const char *error, const char *msg);
/* Starts a local response (T_LOCAL) with the given body. */
void txn_local(struct txn *t, int status, const char *ctype,
               const char *body, size_t len, const char *extra_headers);
/* Answers 301 (GET, HEAD) or 308 with Location: https://host[:port]/path,
 * for a site with redirect_https. */
void txn_redirect_https(struct txn *t);
/* Writes cout + local body to the client. Returns 0 when all is written,
 * -EAGAIN, or -errno. */
int txn_flush_local(struct txn *t);
/* Answers a request whose head was refused (<status> 400, 408, 414, 431,
 * 501, 505) with the matching short message. */
void txn_reject(struct txn *t, int status, const char *error, const char *reason);
/* Answers a request that never became a transaction (bad head) and closes. */
void conn_reject(struct conn *c, int status, const char *error,
                 const char *reason, const struct h1_msg *m);

/* ---- headers.c ---- */
/* Serializes the request head for the upstream into t->uout. 0 or -ENOMEM */
int hdr_request(struct txn *t, const struct h1_msg *req);
/* Serializes the response head for the client into t->cout. */
int hdr_response(struct txn *t, const struct h1_msg *resp);

/* ---- route.c ---- */
const struct cfg_site *route_site(const struct cfg_listener *cl, struct str host);
const struct cfg_route *route_match(const struct cfg_site *s, struct str path,
                                    struct pool *p);
/* Lower-cases <authority> and strips a port; returns a view into the pool. */
struct str route_host(struct pool *p, struct str authority);

/* ---- accesslog.c ---- */
void alog_write(struct txn *t);

#endif
