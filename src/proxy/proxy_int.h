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
struct fwd_worker;
struct fwd_txn;
struct tunnel_splice;

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
    struct fwd_worker *fwd; /* forward proxy state (forward.c), or NULL */
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
    bool tls; /* bytes pass through TLS: a tunnel cannot splice them */
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
};

struct txn {
    unsigned magic;
    struct pool *pool;
    struct conn *c;
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
    bool anon;              /* forward.anonymous: hide the client */
    bool splice;            /* a tunnel that may switch to splice(2) */
    struct str user;        /* authenticated user, for the log */
    struct fwd_txn *fx;     /* forward request state, or NULL */
    struct tunnel_splice *spl; /* a tunnel in splice mode, or NULL */
};

/* ---- server.c ---- */
const char *worker_date(struct worker *w);

/* ---- session.c ---- */
void conn_accept(struct worker *w, const struct cfg_listener *cl, int fd,
                 const union sockaddr_any *peer);
void conn_close(struct conn *c);
/* Called when c->txn finished: log, free, keep-alive or close. */
void conn_txn_done(struct conn *c);
/* Reads from the client into c->rbuf. Returns bytes read, 0 on EOF,
 * -EAGAIN, -ENOBUFS when the buffer is full, or -errno. */
ssize_t conn_read(struct conn *c);
void conn_drain_idle(struct worker *w);

/* ---- txn.c ---- */
/* Starts a transaction for the parsed request head in c->rbuf. */
void txn_start(struct conn *c, struct h1_msg *req, struct h1_field *fields);
/* Copies what must outlive the read buffer (method, target, host, the
 * fields the access log wants) into the arena. 0 or -ENOMEM. */
int txn_keep_request(struct txn *t, const struct h1_msg *req);
/* Connects t->ups (a pooled connection when one is idle, never for
 * CONNECT) and runs the request; answers 502/504 when no server can be
 * reached. */
void txn_connect(struct txn *t);
/* Something changed on the client connection. */
void txn_client_event(struct txn *t);
void txn_abort(struct txn *t); /* client went away: free everything */
void txn_timeout(struct txn *t, bool client_side);

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

/* ---- forward.c ---- */
/* Per-worker forward state (resolver, origin pools, authentication) when
 * the configuration has a forward listener. 0 or -errno. */
int fwd_worker_new(struct worker *w);
void fwd_worker_free(struct worker *w);
/* Handles a request on a forward listener. Returns false when it is an
 * origin-form request for the listener's own sites (the reverse pipeline
 * goes on), true when handled (answered, refused, or on its way). */
bool fwd_start(struct txn *t, struct h1_msg *req);
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

/* ---- accesslog.c ---- */
void alog_write(struct txn *t);

#endif
