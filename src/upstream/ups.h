/*
 * Upstream pools at run time (docs/upstreams.md, docs/internals/upstream.md).
 *
 * Two levels of state:
 *   - struct ups_state: one per process and configuration snapshot, shared
 *     by every worker and the health thread: per server in-flight counts,
 *     health, ejections, latency EWMA, DNS-filled addresses; per pool the
 *     retry budget and the wait-queue length. Only C11 atomics, no locks.
 *   - struct ups_set: one per worker, built from the snapshot and the
 *     shared state; every struct cfg_upstream of the snapshot has a struct
 *     ups at the same index, with the worker's balancer state, idle
 *     keep-alive connections and waiting requests. Never shared.
 *
 * A request asks ups_pick() for a server, which also takes one of the
 * server's in-flight slots; it reports what happened (ups_report) and gives
 * the slot back (ups_unhold) exactly once per successful pick.
 */
#ifndef GH_UPSTREAM_UPS_H
#define GH_UPSTREAM_UPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>

#include "admin/metrics.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/str.h"

#define UCONN_MAGIC 0x55c0a11u

struct ups;
struct ups_state;
struct ups_shared;
struct ups_balancer;
struct h1_msg;

/* One connection to an upstream server. Owned by a transaction while it
 * carries a request, by the idle pool otherwise. */
struct uconn {
    unsigned magic;
    struct ev ev;
    struct timer timer;
    struct ups *ups;
    unsigned srv;        /* index in ups->cu->servers */
    uint32_t gen;        /* the server's address generation at connect */
    struct buf rbuf;     /* response bytes not yet forwarded */
    void *owner;         /* the transaction, NULL when idle */
    struct uconn *next;  /* idle list */
    uint32_t nreq;       /* requests sent on this connection */
    int64_t idle_since;  /* loop ms when it went idle */
    bool connected, readable, writable, rdhup, reused;
    bool busy;           /* owned by a request (counted in flight) */
    struct tls_conn *tls; /* TLS to the server (cu->tls), else NULL */
    bool tls_started;     /* TCP connected, handshake under way */
    bool tls_ready;       /* its handshake completed */
    void *proto;          /* protocol state living with the connection (the
                             h2 session of a protocol: h2 pool), or NULL */
    void (*proto_free)(void *proto); /* frees it with the connection */
};

struct ups_server {
    struct mslot *m;     /* this server's counters (MS_*) */
    int64_t cw;          /* smooth WRR current weight (per worker) */
    struct uconn *idle;  /* most recently used first */
    unsigned nidle;
    void *h2;            /* HTTP/2 connections carrying streams (owned by
                            src/proxy/h2mux.c; empty when none is busy) */
};

/* A request waiting for a max_conns slot (embedded in the transaction). */
struct ups_waiter;
typedef void ups_wait_fn(struct ups_waiter *w, bool timed_out);
struct ups_waiter {
    struct ups_waiter *next, *prev;
    struct timer timer;  /* queue_timeout, from the first wait */
    ups_wait_fn *cb;
    struct ups *u;
    bool queued;         /* in the worker's list */
    bool counted;        /* in the pool's count (until ups_unwait) */
};

struct ups {
    const struct cfg_upstream *cu;
    struct ups_shared *sh;       /* process-wide state of this pool */
    const struct ups_balancer *bal;
    struct ups_server *srv;      /* cu->nservers entries */
    struct loop *loop;
    uint64_t rng;                /* xorshift state (random_two) */
    int64_t deposit;             /* retry budget not yet added to sh */
    unsigned ndeposit;
    struct ups_waiter *qhead, *qtail; /* this worker's waiting requests */
    unsigned nwait;
    struct defer wake;           /* wakes waiters after a slot came free */
    struct timer poll;           /* ... or after another worker freed one */
};

struct ups_set {
    struct ups *ups; /* one per cfg->upstreams entry */
    size_t n;
    struct ups_state *st;
};

/* ---- process-wide state ---- */

/* Builds the shared state for every upstream of <cfg>. When <prev> (the
 * state of an earlier snapshot) has a pool of the same name, servers with
 * the same address keep their health, ejection and latency. Returns NULL
 * on out of memory. */
struct ups_state *ups_state_new(const struct cfg *cfg,
                                const struct ups_state *prev);
void ups_state_free(struct ups_state *st);
/* Where the health thread counts its checks (metrics_health()); states
 * made from <st> by ups_state_new() inherit it. Before the thread starts. */
void ups_state_set_metrics(struct ups_state *st, struct mworker *hm);
/* References for the generations that use a state (reload): the last
 * unref frees it. ups_state_new() returns it with one reference. */
struct ups_state *ups_state_ref(struct ups_state *st);
void ups_state_unref(struct ups_state *st);

/* The health thread (health.c): active checks, the end of ejections, and
 * re-resolving names, once for the whole process. */
struct ups_health;

/* Starts the health thread for <st> when some pool needs it. Returns 0
 * with *out set (NULL when no pool needs one), or -errno. */
int ups_health_start(struct ups_state *st, struct ups_health **out);
/* Stops and joins the thread and frees it; NULL is a no-op. */
void ups_health_stop(struct ups_health *h);

/* Shared state for one upstream outside any snapshot (the forward proxy's
 * per-origin pools). NULL on out of memory. */
struct ups_shared *ups_shared_new(const struct cfg_upstream *cu);
void ups_shared_free(struct ups_shared *sh);

/* ---- per worker ---- */

/* Sets up <u> for <cu> on its own (outside a set): <sh> from
 * ups_shared_new(), <srv> an array of cu->nservers zeroed entries. */
void ups_init_one(struct ups *u, const struct cfg_upstream *cu,
                  struct ups_shared *sh, struct ups_server *srv,
                  struct loop *loop);

/* Builds the run-time state for every upstream of <cfg> on top of <st>.
 * Returns NULL on out of memory. */
struct ups_set *ups_set_new(const struct cfg *cfg, struct ups_state *st,
                            struct loop *loop);
/* Points every server's counters at its slot in <m> (until then they go
 * to a scratch slot). */
void ups_set_metrics(struct ups_set *s, struct mworker *m);
/* Records the outcome of a connection attempt to server <srv>: 0 for
 * connected, else the -errno it failed with. */
void ups_note_connect(struct ups *u, unsigned srv, int err);

/* Closes every idle connection and frees the set. Requests still waiting
 * must have been dropped before. */
void ups_set_free(struct ups_set *s);

/* The run-time state of <cu>, which must belong to the snapshot the set was
 * built from. */
struct ups *ups_of(struct ups_set *s, const struct cfg *cfg,
                   const struct cfg_upstream *cu);

/* What a balancer may look at in a request. The caller fills the views;
 * they must stay valid during ups_prepare() only. */
struct ups_req {
    const struct sockaddr *client;
    struct str uri;           /* the request target as sent */
    const struct h1_msg *msg; /* for fields and cookies */
};

/* What ups_prepare() derived from a request, kept by the transaction. */
struct ups_key {
    uint64_t hash;
    bool has_hash;           /* hash balancing and the key was present */
    int sticky;              /* server named by the sticky cookie or the
                                stick table, or -1 */
    bool has_skey;           /* the pool has a stick table and the request
                                a key for it */
    uint64_t skey;           /* that key (hash of the session cookie's
                                value, or of the client address) */
    uint64_t stok;           /* the token of the server the table (or the
                                cluster) named for it; 0: none */
};

/* Derives the hash key and the sticky server of <r> for pool <u>. */
void ups_prepare(struct ups *u, const struct ups_req *r, struct ups_key *k);

enum {
    UPS_NONE = -1, /* every server was tried */
    UPS_FULL = -2, /* the servers left are all at max_conns */
};

/* Picks a server for a request (balancer, health, ejections, backups,
 * max_conns), skipping those whose bit is set in <tried>, and takes one of
 * its in-flight slots. Returns its index, UPS_NONE or UPS_FULL. */
int ups_pick(struct ups *u, const struct ups_key *k, uint64_t tried);

enum ups_outcome {
    UPS_OK = 0,       /* a response head arrived */
    UPS_FAIL,         /* connect failed, connection broke, timed out */
    UPS_5XX,          /* a 5xx response head arrived */
};

/* Reports what happened to a request on <srv>: feeds passive checks and
 * the latency EWMA (<latency_us> from the pick to the response head; only
 * for UPS_OK/UPS_5XX). */
void ups_report(struct ups *u, unsigned srv, enum ups_outcome o,
                int64_t latency_us);

/* Gives back the in-flight slot ups_pick() took on <srv>. */
void ups_unhold(struct ups *u, unsigned srv);

/* True when the retry budget of the pool allows one more retry of a
 * request that reached a server (and takes it). */
bool ups_retry_allowed(struct ups *u);

/* The Set-Cookie field line ("Set-Cookie: ...\r\n") naming <srv> when the
 * pool is sticky and the request did not already name it; else NULL. The
 * text lives as long as the state. */
const char *ups_sticky_cookie(struct ups *u, const struct ups_key *k,
                              unsigned srv);

/* ---- the stick table (learn, by: source; sticky.c) ---- */

/* True when <u> sticks through a table. */
bool ups_stick_table(const struct ups *u);

/* The Redis key of table key <key> of <u> ("s:" and 32 hex digits: the
 * pool's name hashed, then the key), the same on every node with the same
 * configuration. <buf> holds UPS_STICK_KEYLEN + 1 bytes. */
#define UPS_STICK_KEYLEN 34
struct str ups_stick_rkey(const struct ups *u, uint64_t key, char *buf);

/* The token naming <srv> (16 hex digits, the value kept in Redis). */
struct str ups_stick_token(const struct ups *u, unsigned srv);

/* The cluster's answer for k->skey: <tok> names the server (STR_NULL: the
 * cluster knows nothing). A known token replaces what the local table
 * said, and the local table learns it; an unknown one (a server removed)
 * or none leaves k->sticky as the local table set it, with k->stok cleared
 * so that what this request learns is told to the cluster. */
void ups_stick_told(struct ups *u, struct ups_key *k, struct str tok);

/* A response head from <srv> (status < 500) to a request with <k>: the
 * local table learns the keys that now stick to <srv>: the request's own
 * key unless the table already sent it there (then its use was
 * refreshed), and in learn mode the session cookie <resp> sets. Writes
 * those the cluster must be told into <out> and returns how many (0..2). */
size_t ups_stick_learn(struct ups *u, const struct ups_key *k, unsigned srv,
                       const struct h1_msg *resp, uint64_t out[2]);

/* Writes the current address of <srv> ("127.0.0.1:8080") into <buf> and
 * returns <buf>. */
const char *ups_srv_name(struct ups *u, unsigned srv, char *buf, size_t len);

/* ---- the wait queue (max_conns) ---- */

/* Queues <w> until a slot may be free or the pool's queue_timeout has
 * passed since the first wait (then cb(w, true)). <front>: put back at the
 * head (a woken request that found no slot after all). Returns 0, or
 * -EBUSY when the pool's queue is full (cb is not called). */
int ups_wait(struct ups *u, struct ups_waiter *w, ups_wait_fn *cb, bool front);
/* Removes <w> from the queue (the request went away). */
void ups_unwait(struct ups *u, struct ups_waiter *w);

/* ---- connections ---- */

/* Takes an idle connection to server <srv>, or NULL. The caller owns it. */
struct uconn *ups_take_idle(struct ups *u, unsigned srv);

/* Opens a new connection to server <srv> (connect in progress). The caller
 * owns it and must set uc->ev.cb before the loop runs. Returns NULL with
 * *err = -errno on failure. */
struct uconn *ups_connect(struct ups *u, unsigned srv, ev_fn *cb, int *err);

/* Returns a connection to the idle pool (or closes it when the pool is
 * full or keep-alive is off). Takes ownership. */
void ups_release(struct ups *u, struct uconn *uc);

/* Closes and frees a connection that is not in the idle pool. */
void ups_close(struct uconn *uc);

/* I/O on a connected upstream connection, plain or TLS, keeping
 * uc->readable/writable as conn_recv/conn_sendv do for clients.
 * ups_recv: bytes read, 0 on EOF, -EAGAIN or -errno. ups_sendv: bytes
 * written, -EAGAIN or -errno. */
ssize_t ups_recv(struct uconn *uc, char *p, size_t len);
ssize_t ups_sendv(struct uconn *uc, const struct iovec *iov, int n);

/* Drives the TLS handshake of a connection whose TCP connect completed:
 * 0 when it is done (or there is no TLS), -EAGAIN, -EPROTO when the
 * handshake failed, -EKEYREJECTED when the server's certificate did (the
 * reason is logged). */
int ups_handshake(struct uconn *uc);

/* An epoll event on <uc>: records its readiness and, while <connecting>,
 * takes the connection one step (the connect's result, then the TLS
 * handshake, all within connect_timeout). 0 when the connection is usable
 * (it was already, or this event finished it), 1 when the connect is not
 * done yet (wait for the next event), -errno when it failed. */
int ups_ready(struct uconn *uc, uint32_t events, bool connecting);

/* Ends our sending side (TLS close_notify, then FIN). */
void ups_shutdown(struct uconn *uc);

#endif
