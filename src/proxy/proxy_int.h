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
#include "security/security.h"
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
struct crl;

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
    struct ups_state *st; /* a reference: upstream state shared by workers */
    struct ups_set *ups;
    struct lsock *ls; /* listeners, while current */
    size_t nls;
    unsigned nconns;
    unsigned id;      /* 1, 2, ... per process: the reload count + 1 */
    bool retired;
    struct gen *next; /* in worker->old */
    struct fcache *fcache; /* static.c: open files of this generation's
                              static routes, created on first use */
};

/* What the main thread hands a worker on reload. */
struct reload_msg {
    struct cfg *cfg; /* a reference, for the worker */
    struct ups_state *st; /* the snapshot's upstream state (not a reference) */
    unsigned id;
    int *fds;        /* per listener of cfg: a socket opened for this
                        worker, or -1: take over the current one at the
                        same address */
    int alog_fd;     /* access log after the reload, -1 when off */
    enum cfg_log_format alog_fmt;
    struct reload_msg *next;
};
struct cache;
struct cwk;
struct ctx;
struct fcache;

/* What every worker shares for the defences: the limit tables (limits.c)
 * and the start-up handshake that puts each worker in its sandbox
 * (harden.c). Owned by server_run(). */
struct guard {
    struct connlimit conns;
    struct rl_table *rl; /* NULL when no rule is configured */
    struct priv_plan plan;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, failed; /* workers that entered / failed to enter the
                          sandbox */
};
struct fwd_worker;
struct fwd_txn;
struct tunnel_splice;

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
    struct crl *crl;       /* the cluster's rate-limit refusals we know */
    uint64_t seq;
    struct cache *cache; /* shared by all workers; NULL without a cache */
    struct cwk *cwk;     /* this worker's cache state (cache_glue.c) */
    struct guard *gd;
    bool paused;              /* at max_connections: listeners out of epoll */
    struct timer pause_timer; /* looks again whether there is room */
    int64_t warned_sec;       /* last "connections per address" warning */
    struct fwd_worker *fwd; /* forward proxy state (forward.c), or NULL */
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
    int addr_slot; /* connlimit handle of the client address, or -1 */
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
    T_CACHE,       /* answering from the cache, or waiting for it */
    T_FILE,        /* serving a static file (static.c) */
};

/* Request fields not forwarded (cache validation, headers.c). */
#define HDROP_COND (1u << 0)  /* If-None-Match, If-Modified-Since */
#define HDROP_RANGE (1u << 1) /* Range, If-Range */

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
    bool c_bulk, u_bulk;         /* tunnel directions reading BUF_BULK */
    bool rdhup_seen;        /* the client's hang-up was looked at */
    /* upstream pools (pick.c) */
    struct ups_key key;     /* hash key and sticky server of the request */
    struct ups_waiter wait; /* waiting for a max_conns slot */
    int held;               /* server whose in-flight slot we hold, + 1 */
    bool reported;          /* its outcome went to ups_report() */
    int last_fail;          /* enum pick_fail of the last failed try */
    int64_t try_us;         /* when the current try was picked */
    const char *set_cookie; /* sticky "Set-Cookie: ...\r\n", or NULL */
    uint8_t trylog[8];      /* servers tried, in order (access log) */
    uint8_t ntrylog;
    struct ctx *cx;         /* cache state (cache_glue.c), or NULL */
    struct clim *clim;      /* waiting for the cluster's rate-limit verdict
                               (cluster_glue.c), or NULL */
    struct str req_extra;   /* fields added to the upstream request head */
    struct str resp_extra;  /* fields added to the client response head */
    uint8_t req_drop;       /* HDROP_*: request fields not forwarded */
    /* the web server's parts (static.c, compress.c, bodyout.c, ajp_txn.c) */
    struct bodyout *bo;     /* re-framed or compressed body, or NULL */
    struct sfile *sf;       /* static response (T_FILE), or NULL */
    struct ajx *aj;         /* AJP exchange, or NULL */
    struct str accept_enc;  /* Accept-Encoding, when the route compresses */
    unsigned zenc;          /* coding applied (HTTP_ENC_*), 0 for none */
    bool zvary;             /* add Vary: Accept-Encoding */
    bool has_range;         /* the request has a Range field */
    struct str user;        /* the authenticated user, set by access
                               control; empty when none */
    bool anon;              /* forward.anonymous: hide the client */
    bool splice;            /* a tunnel that may switch to splice(2) */
    struct fwd_txn *fx;     /* forward request state, or NULL */
    struct tunnel_splice *spl; /* a tunnel in splice mode, or NULL */
    struct h2x *hx;         /* HTTP/2 upstream exchange (h2up.c), or NULL */
};

/* ---- server.c / worker.c ---- */
const char *worker_date(struct worker *w);
/* A connection of retired generation <g> closed: free it when empty. */
void gen_conn_closed(struct gen *g);

/* ---- stats.c (metrics and PROXY protocol glue) ---- */
/* Counts the finished request <t> (where alog_write() logs it). */
void stats_txn(struct txn *t);
/* Counts a completed TLS handshake with a client (and its resumption). */
void stats_tls(struct conn *c);
/* Counts a request (or for MG_DENIED_CONN a connection) refused: <id> is
 * one of the MG_DENIED_* counters of admin/metrics.h. */
void stats_denied(struct worker *w, int id);
/* Consumes a PROXY header from c->rbuf. Returns 1 when done (c->peer now
 * carries the client's address), 0 when more bytes are needed, -1 when the
 * connection was closed. */
int pp_accept(struct conn *c);
/* The same for a TLS listener, before the handshake: the header is read
 * from the socket itself (peeked, then exactly its bytes taken). 1 when
 * the header was taken, 0 when more must arrive, -1 when the connection
 * was closed. */
int pp_accept_raw(struct conn *c);
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
/* Copies what must outlive the read buffer (method, target, host, the
 * fields the access log wants) into the arena. 0 or -ENOMEM. */
int txn_keep_request(struct txn *t, const struct h1_msg *req);
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
/* The rate limits of <stage> (LIM_AT_*) passed after a wait: go on. */
void txn_limits_passed(struct txn *t, int stage);
/* Sends the request upstream (the cache found nothing it could use). */
void txn_forward(struct txn *t);

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

/* Sends <n> iovecs to the client in one call (the cache's hit path: stored
 * head, suffix and body chunks). Returns bytes written, -EAGAIN or -errno. */
static inline ssize_t cli_sendv(struct txn *t, const struct iovec *iov, int n)
{
    return conn_sendv(t->c, iov, n);
}

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

/* Picks a server and connects (or reuses a pooled connection); on no
 * server, waits in the queue or answers the error. */
void txn_connect(struct txn *t);

/* ---- pick.c ---- */
enum pick_fail {
    PF_REFUSED = 0, /* connect refused or failed */
    PF_CONNECT_TIMEOUT,
    PF_BROKEN,      /* the connection broke before the response head */
    PF_READ_TIMEOUT,
    PF_WRITE_TIMEOUT,
};
/* Picks a server for t (t->tried, t->key) and holds its slot. Returns the
 * server, or -1 when none is left (answer with pick_exhausted), or -2 when
 * the transaction now waits in the queue or was answered 503. */
int pick_server(struct txn *t);
/* The response head arrived from the held server: feeds passive checks
 * and the latency EWMA. */
void pick_observe(struct txn *t, int status);
/* Gives back the held server's slot, reporting a failure first when
 * <failed>. Idempotent. */
void pick_release(struct txn *t, bool failed);
/* After a failed try of kind <f> (the slot released): true when the
 * request may go to another server (idempotent or never sent, tries and
 * retry budget left). */
bool pick_retry(struct txn *t, enum pick_fail f);
/* No server left: the error for the last failure. */
void pick_exhausted(struct txn *t);
/* Drops the transaction's place in the queue and its slot (it ends). */
void pick_end(struct txn *t);
/* Writes the servers tried, "a,b", into <buf>; returns the length. */
size_t pick_tried(const struct txn *t, char *buf, size_t len);

/* ---- respond.c ---- */
/* Answers with <status> and a short body, a Proxy-Status naming <error>
 * (an RFC 9209 error type, or NULL for none). */
void txn_error(struct txn *t, int status, const char *error, const char *msg);
/* Same, with <extra> field lines ("Name: value\r\n"...) added. */
void txn_error_hdr(struct txn *t, int status, const char *error,
                   const char *msg, const char *extra);
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
/* hdr_request, then that head parsed back into <m> (fields in the arena),
 * for pipelines that frame it their own way (AJP, HTTP/2 upstreams).
 * Returns 0, -ENOMEM, or -E2BIG when it does not parse back. */
int hdr_request_fields(struct txn *t, const struct h1_msg *req, struct h1_msg *m);
/* Serializes the response head for the client into t->cout. */
int hdr_response(struct txn *t, const struct h1_msg *resp);

/* ---- route.c ---- */
const struct cfg_site *route_site(const struct cfg_listener *cl, struct str host);
const struct cfg_route *route_match(const struct cfg_site *s, struct str path,
                                    struct pool *p);
/* Lower-cases <authority> and strips a port; returns a view into the pool. */
struct str route_host(struct pool *p, struct str authority);

/* ---- limits.c ---- */
/* Before accept(2): false at max_connections, and the worker's listeners
 * are paused until there is room again. */
bool lim_accept_begin(struct worker *w);
/* accept(2) failed after lim_accept_begin(); <err> is its errno. */
void lim_accept_failed(struct worker *w, int err);
/* Counts a new connection from <peer> on <cl>. Returns its connlimit
 * handle, -1 when there is nothing to count, or LIM_REFUSED when the
 * client address has too many connections open (close it). */
#define LIM_REFUSED (-2)
int lim_conn_open(struct worker *w, const struct cfg_listener *cl,
                  const union sockaddr_any *peer);
/* A connection counted by lim_accept_begin() (and lim_conn_open(), which
 * gave <slot>) is gone. */
void lim_conn_gone(struct worker *w, int slot);
/* After a PROXY header gave <c> its client's address: counts it against
 * connections_per_address (accept counted nothing: the address was the
 * balancer's). Returns 0, or -1 when the client has too many (close). */
int lim_conn_pp(struct conn *c);
/* Checks <n> rate-limit rules for request <t>. Returns false when the
 * request may go on, true when it was answered 429. */
bool lim_request(struct txn *t, const struct cfg_rate *rs, size_t n, int stage);
/* <stage> of txn_start() that a rate check is for: it goes on there with
 * txn_limits_passed() when the check had to wait (the cluster's verdict). */
enum { LIM_AT_LISTENER = 0, LIM_AT_ROUTE = 1, LIM_AT_FORWARD = 2 };
struct sec_key;
/* For the cluster's verdicts (cluster_glue.c): rules <i>.. of <rs>; a 429
 * for rule <r>; one rule decided by this node alone. Each returns true when
 * the request was answered or waits. */
bool lim__from(struct txn *t, const struct cfg_rate *rs, size_t n, size_t i,
               int stage);
void lim__too_many(struct txn *t, const struct cfg_rate *r, int64_t wait_ns);
bool lim__local(struct txn *t, const struct cfg_rate *r, const struct sec_key *k);

/* ---- harden.c ---- */
/* Before binding: open-file limit, who to become, the limit tables.
 * Returns 0 or -1 (logged). */
int harden_prepare(struct guard *gd, const struct cfg *cfg);
/* After binding, before the workers: chroot, user, no_new_privs. */
int harden_drop(struct guard *gd, const struct cfg *cfg);
/* In a worker thread, before it serves: its sandbox. Returns 0 or -1 (the
 * worker must not serve). */
int harden_worker(struct worker *w);
/* In the main thread once the workers run: waits until each is in its
 * sandbox, then enters the main thread's. Returns 0 or -1. */
int harden_main(struct guard *gd, const struct cfg *cfg, int nworkers);
void harden_fini(struct guard *gd);
/* ---- forward.c ---- */
/* Per-worker forward state (resolver, origin pools, authentication) when
 * the configuration has a forward listener. 0 or -errno. */
int fwd_worker_new(struct worker *w);
void fwd_worker_free(struct worker *w);
/* Handles a request on a forward listener. Returns false when it is an
 * origin-form request for the listener's own sites (the reverse pipeline
 * goes on), true when handled (answered, refused, or on its way). */
bool fwd_start(struct txn *t, struct h1_msg *req);
/* The forward listener's rate limits passed after the cluster's verdict:
 * the rest of the checks, then resolve. */
void fwd_limits_passed(struct txn *t);
/* A forward request the cache answered no: resolve its destination and
 * connect (txn_forward() for a forward transaction). */
void fwd_connect(struct txn *t);
/* The upstream connection of a CONNECT is up: answer 200, become a
 * tunnel. 0, or -1 when the transaction ended. */
int fwd_tunnel_open(struct txn *t);

/* ---- tunnel.c ---- */
/* Switches a tunnel whose buffers are empty to splice(2). 0 or -errno (it
 * then stays buffered). */
int tunnel_splice_start(struct txn *t);
/* Moves bytes both ways. 1 when something moved, 0 when blocked, -1 when
 * a socket broke. Sets c_shut/u_shut as FINs are passed on. */
int tunnel_splice_pump(struct txn *t);
/* A tunnel after 101 Switching Protocols or a CONNECT's 200: the head
 * first, then bytes both ways, buffered until both buffers are empty,
 * then by splice when the transaction may (t->splice). */
void tunnel_pump(struct txn *t);

/* ---- accesslog.c ---- */
void alog_write(struct txn *t);

/* ---- flow.c: body framing and the upstream write path ---- */
void flow_init(struct flow *f, enum h1_body kind, uint64_t len);
/* Classifies the bytes at the start of <b> as body bytes to send on (fwd)
 * and framing to drop (skip). Call only when fwd and skip are both 0.
 * Returns 0 or -EBADMSG. */
int flow_take(struct flow *f, struct buf *b);
/* encode: the source ended; queue the last chunk. */
void flow_end_chunks(struct flow *f);
/* After <n> bytes of fwd were written. */
void flow_sent(struct flow *f, struct buf *b, size_t n);
static inline bool outq_pending(const struct outq *q)
{
    return q->head_off < q->head_len;
}
/* Advances <q> by up to <w> written bytes; returns what is left of <w>. */
size_t outq_advance(struct outq *q, size_t w);
/* writev of the pending head <q>, the pending chunk framing <ch> (or NULL)
 * and <len> bytes at <data> to an upstream (plain or TLS). Returns the
 * number of <data> bytes written (>= 0), -EAGAIN or -errno. (The client
 * side goes through cli_send.) */
ssize_t uconn_send(struct uconn *uc, struct outq *q, struct outq *ch,
                   const char *data, size_t len);

/* ---- txn_resp.c: upstream -> client ---- */
/* Reads the response head, then streams it and the body to the client.
 * Returns 0, or -1 when the transaction ended. */
int txn_pump_response(struct txn *t);
/* The exchange is over: upstream connection back to the pool (or closed),
 * then cli_done(). */
void txn_finish(struct txn *t);

/* ---- txn.c, for the other pipelines (static.c, ajp_txn.c, h2up.c) ---- */
/* The upstream connection broke or could not be made (see txn.c). */
void txn_upstream_failed(struct txn *t, int err, bool connecting);
/* Picks a server and connects again (the current one was dropped). */
void txn_reconnect(struct txn *t);
/* Reads from the upstream into uc->rbuf: bytes, 0 on EOF, -EAGAIN, -errno */
ssize_t txn_ups_read(struct uconn *uc);
void txn_arm_timers(struct txn *t, bool upstream, bool client_sending);
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
/* HTTP/2: copies up to <max> body bytes of a T_FILE response into <dst>
 * (the stream pulls them). Returns bytes, or -EAGAIN; *eof at the end. */
ssize_t static_pull(struct txn *t, char *dst, size_t max, bool *eof);
/* Frees a generation's open-file cache (gen_free). */
void static_gen_fini(struct gen *g);
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
/* HTTP/2: copies up to <max> bytes of the current AJP body chunk into
 * <dst>. Returns bytes or -EAGAIN (the end comes with END_RESPONSE). */
ssize_t ajp_pull(struct txn *t, char *dst, size_t max, bool *eof);
/* The upstream timer fired: true when it was a CPING probe's (handled). */
bool ajp_timeout(struct txn *t);

/* ---- h2up.c: HTTP/2 upstreams (protocol: h2) ---- */
struct h2_nv;
/* Builds the HEADERS of the request <req> (instead of hdr_request's
 * HTTP/1.1 head, from which they are made). 0 or -ENOMEM. */
int h2up_request(struct txn *t, const struct h1_msg *req);
/* A try on server <srv> (instead of a connection of its own): a stream on
 * a shared HTTP/2 connection. 0, or -errno when none could be opened. */
int h2up_connect(struct txn *t, unsigned srv);
/* Drives the transaction's stream (instead of the HTTP/1 pumps). */
void h2up_pump(struct txn *t);
/* HTTP/2 client: up to <max> response body bytes into <dst>; -EAGAIN when
 * none are ready; *eof at the end. */
ssize_t h2up_pull(struct txn *t, char *dst, size_t max, bool *eof);
/* The response trailers once the response ended: their number, the array
 * in *nv (valid while <t> lives). */
size_t h2up_trailers(struct txn *t, const struct h2_nv **nv);
/* h2conn.c: the request trailers of an HTTP/2 client's stream. */
size_t h2s_trailers(struct txn *t, const struct h2_nv **nv);

#endif
