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

struct lsock {
    struct ev ev;
    struct worker *w;
    const struct cfg_listener *cl;
};

struct conn;
struct fcache;

struct worker {
    int id;
    pthread_t thread;
    struct loop *loop;
    struct cfg *cfg; /* pinned snapshot */
    struct ups_set *ups;
    struct lsock *ls;
    size_t nls;
    struct ev wake; /* eventfd: the main thread asks us to stop */
    struct logsink alog;
    bool alog_on;
    enum cfg_log_format alog_fmt;
    char date[32];       /* IMF-fixdate of date_sec */
    char clf_date[96];   /* 26/Nov/2026:21:30:00 +0000 */
    int64_t date_sec;
    struct conn *conns;  /* every open client connection */
    unsigned nconns;
    bool draining;
    struct timer drain_timer;
    uint64_t seq;
    struct fcache *fcache; /* static.c: open files, created on first use */
};

enum conn_state {
    C_IDLE = 0, /* keep-alive: waiting for the first byte of a request */
    C_HEAD,     /* reading a request head */
    C_BUSY,     /* a transaction is running */
    C_LINGER,   /* answered and closing: discarding input briefly */
};

struct txn;

struct conn {
    unsigned magic;
    struct ev ev;
    struct timer timer;
    struct defer defer;
    struct worker *w;
    const struct cfg_listener *cl;
    struct buf rbuf;
    struct txn *txn;
    struct conn *prev, *next;
    union sockaddr_any peer;
    uint32_t nreq;
    uint8_t state;
    bool readable, writable, rdhup, eof, dead;
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
};

/* Output to one side: a serialized head from the arena, then body bytes. */
struct outq {
    char *head;
    size_t head_len, head_off;
};

enum txn_phase {
    T_CONNECT = 0, /* waiting for an upstream connection */
    T_REQUEST,     /* sending head/body upstream, awaiting response head */
    T_RESPONSE,    /* response head sent/being sent, streaming the body */
    T_TUNNEL,      /* after 101: raw bytes both ways */
    T_LOCAL,       /* answering ourselves (return route, error) */
    T_DONE,
    T_FILE,        /* serving a static file (static.c) */
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
    /* the web server's parts (static.c, compress.c, bodyout.c, ajp_txn.c) */
    struct bodyout *bo;     /* re-framed or compressed body, or NULL */
    struct sfile *sf;       /* static response (T_FILE), or NULL */
    struct ajx *aj;         /* AJP exchange, or NULL */
    struct str accept_enc;  /* Accept-Encoding, when the route compresses */
    unsigned zenc;          /* coding applied (HTTP_ENC_*), 0 for none */
    bool zvary;             /* add Vary: Accept-Encoding */
    bool has_range;         /* the request has a Range field */
};

/* ---- server.c ---- */
const char *worker_date(struct worker *w);

/* ---- session.c ---- */
void conn_accept(struct worker *w, const struct cfg_listener *cl, int fd,
                 const union sockaddr_any *peer);
void conn_close(struct conn *c);
/* Called when c->txn finished: log, free, keep-alive or close. */
void conn_txn_done(struct conn *c);
/* Client I/O (plain or TLS). conn_recv: bytes read, 0 on EOF, -EAGAIN or
 * -errno. conn_sendv: bytes written, -EAGAIN or -errno. Both clear
 * c->readable / c->writable themselves when the socket would block. */
ssize_t conn_recv(struct conn *c, char *p, size_t len);
ssize_t conn_sendv(struct conn *c, const struct iovec *iov, int n);
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
    return conn_read(t->c);
}

static inline bool cli_readable(const struct txn *t)
{
    return t->c->readable;
}

static inline bool cli_writable(const struct txn *t)
{
    return t->c->writable;
}

/* Sends the rest of <q>'s head and up to <len> body bytes at <data> to the
 * client. Returns the body bytes taken (the caller consumes them), -EAGAIN
 * or -errno. */
ssize_t cli_send(struct txn *t, struct outq *q, const char *data, size_t len);

/* Arms the client-side timer of <t> (body or send timeout) ... */
static inline void cli_timer(struct txn *t, int64_t ms)
{
    timer_set(t->c->w->loop, &t->c->timer, ms, t->c->timer.cb);
}

/* ... or stops it. */
static inline void cli_timer_stop(struct txn *t)
{
    timer_cancel(t->c->w->loop, &t->c->timer);
}

/* The response went out whole: log, free <t>, go on with the client. */
static inline void cli_done(struct txn *t)
{
    conn_txn_done(t->c);
}

/* The client cannot be answered properly any more (it went away, or the
 * response broke after its head was sent): cut it off; <t> is freed
 * (and logged, with t->reason) on the way. */
static inline void cli_abort(struct txn *t)
{
    conn_close(t->c);
}

/* ---- respond.c ---- */
/* Answers with <status> and a short body, a Proxy-Status naming <error>
 * (an RFC 9209 error type, or NULL for none). */
void txn_error(struct txn *t, int status, const char *error, const char *msg);
/* Starts a local response (T_LOCAL) with the given body. */
void txn_local(struct txn *t, int status, const char *ctype,
               const char *body, size_t len, const char *extra_headers);
/* Writes cout + local body to the client. Returns 0 when all is written,
 * -EAGAIN, or -errno. */
int txn_flush_local(struct txn *t);
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

/* ---- txn.c, for the other pipelines (static.c, ajp_txn.c) ---- */
/* writev of the pending head and <len> bytes at <data> to an upstream
 * socket. Returns the number of <data> bytes written (>= 0), -EAGAIN or
 * -errno. (The client side goes through cli_send.) */
ssize_t txn_send_up(int fd, struct outq *q, const char *data, size_t len);
/* The upstream connection broke or could not be made (see txn.c). */
void txn_upstream_failed(struct txn *t, int err, bool connecting);
/* Picks a server and connects again (the current one was dropped). */
void txn_reconnect(struct txn *t);
/* Reads from the upstream into uc->rbuf: bytes, 0 on EOF, -EAGAIN, -errno */
ssize_t txn_ups_read(struct uconn *uc);
void txn_arm_timers(struct txn *t, bool upstream, bool client_sending);
/* Classifies body bytes of <f> at the start of <b> (see struct flow). */
int txn_flow_take(struct flow *f, struct buf *b);
void txn_flow_sent(struct flow *f, struct buf *b, size_t n);
/* The response is complete: upstream connection back to the pool (or
 * closed), then conn_txn_done(). */
void txn_done_upstream(struct txn *t);
void txn_flow_init_resp(struct txn *t, enum h1_body kind, uint64_t len);
/* Arms the upstream connection's timer for <ms>. */
void txn_arm_upstream(struct txn *t, int64_t ms);

/* ---- bodyout.c: bodies compressed or re-framed on the way out ---- */
enum z_op {
    ZOP_RUN = 0, /* compress what is given */
    ZOP_FLUSH,   /* and make everything so far decodable (input stalled) */
    ZOP_FINISH,  /* and end the stream */
};
struct zstream;

struct bodyout {
    struct zstream *z;  /* compressor, or NULL (framing only) */
    bool chunked;       /* chunked framing (HTTP/1.1 client) */
    bool dirty;         /* input since the last flush */
    bool z_done;        /* compressor finished */
    bool last_queued;   /* the last chunk is in ch */
    struct buf zb;      /* compressed bytes not yet written */
    char ch[24];        /* the current chunk's header, or the last chunk */
    uint8_t ch_len, ch_off;
    uint8_t crlf_left;  /* of the CRLF after the current chunk's data */
    size_t ch_left;     /* data bytes of the current chunk to write */
};

/* Attaches a body writer to <t> (chunked for HTTP/1.1 clients). Returns it,
 * or NULL on out of memory. Freed with the arena. */
struct bodyout *bodyout_new(struct txn *t);
/* Writes the rest of t->cout, then <data> compressed and/or framed, to the
 * client (cli_send; conn_sendv for chunk framing, HTTP/1.1 only). Returns
 * the input bytes taken (>= 0), -EAGAIN or -errno. */
ssize_t bodyout_write(struct txn *t, const char *data, size_t len);
/* Makes everything given so far reach the client (input stalled). 0 when
 * written, -EAGAIN or -errno. */
int bodyout_flush(struct txn *t);
/* Ends the body (compressor end, last chunk). 0 when written, -EAGAIN or
 * -errno. */
int bodyout_finish(struct txn *t);
/* True when output is waiting for the socket. */
bool bodyout_pending(const struct txn *t);

/* ---- compress.c ---- */
/* A compressor for coding <enc> (HTTP_ENC_*) in <p>. NULL on failure. */
struct zstream *z_new(struct pool *p, unsigned enc, const struct cfg_compress *cz);
/* Compresses from in/inlen into out/room, advancing both. Returns 1
 * when <op> is complete (ZOP_FLUSH: all output produced; ZOP_FINISH: the stream
 * ended; ZOP_RUN: always), 0 when it needs more room, -errno on failure. */
int z_step(struct zstream *z, enum z_op op, const char **in, size_t *inlen,
           char **out, size_t *room);
/* True when a <ctype> response of the route may be compressed (status 200,
 * type listed, not below min_size when the length is known). */
bool compress_candidate(const struct txn *t, struct str ctype, bool has_len,
                        uint64_t len);
/* Compresses t's response with <enc>: sets t->bo, t->zenc. 0 or -ENOMEM. */
int compress_start(struct txn *t, unsigned enc);
/* Decides for a proxied response head <r> with body <kind>: sets t->zvary,
 * and t->bo / t->zenc when compressing. 0 or -ENOMEM. */
int compress_decide(struct txn *t, const struct h1_msg *r, enum h1_body kind);

/* ---- static.c ---- */
struct sfile;
/* Copies what the static handler needs from the request head (its views
 * die with the read buffer). 0 or -ENOMEM. */
int static_prepare(struct txn *t, const struct h1_msg *req);
/* Answers the request from the route's directory. */
void static_start(struct txn *t);
/* Moves file bytes to the client (T_FILE). */
void static_pump(struct txn *t);
/* Frees the worker's open-file cache (at worker exit). */
void static_worker_fini(struct worker *w);
/* static_list.c: answers with an HTML list of the directory <dirfd>, whose
 * request path (decoded, NUL-terminated) is <path>. */
void static_list(struct txn *t, int dirfd, struct str path, bool hidden);

/* ---- ajp_txn.c ---- */
struct ajx;
/* Serializes the AJP forward-request for <req> (instead of hdr_request).
 * 0, -ENOMEM, or -E2BIG when the head does not fit one AJP packet. */
int ajp_request(struct txn *t, const struct h1_msg *req);
/* Drives both directions of an AJP exchange (instead of the HTTP pumps). */
void ajp_pump(struct txn *t);
/* A pooled AJP connection was attached: probe it first (CPING) if
 * configured. */
void ajp_attached(struct txn *t);
/* The upstream timer fired: true when it was a CPING probe's (handled). */
bool ajp_timeout(struct txn *t);

#endif
