/*
 * Internals of src/cluster/shared*.c: one Redis connection (struct rconn)
 * glued onto our event loop, and the client that owns two of them.
 *
 *   shared.c      connections: the hiredis adapter, connect, timeouts,
 *                 backoff, state changes, logs and counters
 *   shared_cmd.c  the calls of shared.h on top of a connection
 */
#ifndef GH_CLUSTER_SHARED_INT_H
#define GH_CLUSTER_SHARED_INT_H

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "cluster/shared.h"
#include "core/loop.h"

#define SHARED_MAX_KEY 200
#define SHARED_MAX_PENDING 4096
#define SHARED_MAX_SUBS 16

enum rc_state {
    RC_DOWN = 0,   /* waiting for the reconnect timer */
    RC_CONNECTING, /* connect(2) in progress */
    RC_UP,
    RC_OFF,        /* not wanted (subscriber without subscriptions) */
};

struct rconn {
    struct shared *s;
    const char *role;         /* "command" or "subscriber" (for logs) */
    redisAsyncContext *ac;    /* NULL unless CONNECTING or UP */
    struct ev ev;
    struct timer timer;       /* connect/reply deadline, or reconnect */
    struct defer defer;       /* write or read more, after this batch */
    enum rc_state state;
    bool connected;           /* TCP is up (AUTH may still be pending) */
    bool want_w, writable, readable, rdhup;
    bool was_up;              /* went down after being up: log recovery */
    bool warned;              /* the failure to connect was logged */
    int why;                  /* error given to calls failed by a free */
    unsigned npend;           /* commands awaiting a reply */
    int64_t backoff;          /* ms before the next attempt */
};

/* A call in flight: hiredis's privdata. <q> is NULL once cancelled. */
struct shared_call_ {
    struct shared_call_ *next; /* free list */
    struct shared *s;
    struct shared_req *q;
    int kind;
};

struct shared_sub {
    char *channel;  /* with the prefix, NUL-terminated */
    size_t plen;    /* prefix length */
    shared_msg_fn *fn;
    void *arg;
    bool ever;      /* was subscribed before: a new SUBSCRIBE means a gap */
};

struct shared {
    struct loop *l;
    char ip[INET6_ADDRSTRLEN];
    int port;
    char addr_text[64];
    char *password;
    char prefix[72];
    size_t plen;
    int64_t timeout;       /* ms */
    int64_t reconnect_max; /* ms */
    struct rconn cmd, sub;
    struct shared_sub subs[SHARED_MAX_SUBS];
    size_t nsubs;
    struct shared_call_ *free_calls;
    unsigned ncalls;       /* allocated */
    unsigned live;         /* in flight */
    bool closing;
    void **attached;       /* shared_attach() blocks */
    size_t nattached;
    int64_t proto_logged;  /* loop ms of the last "unexpected reply" line */
};

/* Process-wide counters (shared_stats). */
struct shared__counters {
    atomic_uint_fast64_t fallbacks, failed, timeouts, connects, lost, up;
};
extern struct shared__counters shared__cnt;

/* ---- shared.c ---- */
void shared__rc_init(struct rconn *rc, struct shared *s, const char *role);
/* Starts connecting now (from RC_DOWN or RC_OFF). */
void shared__rc_start(struct rconn *rc);
/* Tears the connection down (pending calls fail with <why>) and, unless
 * the client is closing, schedules a reconnect. Not from inside a hiredis
 * callback. */
void shared__rc_drop(struct rconn *rc, int why);
/* Sends one command on <rc>; <fn>(ac, reply, <priv>) gets the reply.
 * Returns 0 or -ENOTCONN. Counts it in rc->npend when <counted>. */
int shared__rc_send(struct rconn *rc, redisCallbackFn *fn, void *priv,
                    bool counted, int argc, const char **argv,
                    const size_t *argvlen);
/* A counted reply arrived (or its command failed). */
void shared__rc_replied(struct rconn *rc);

/* ---- shared_cmd.c ---- */
/* The subscriber connection is up: send every SUBSCRIBE. */
void shared__resubscribe(struct shared *s);
/* Frees the call pool (every call has completed). */
void shared__calls_free(struct shared *s);

#endif
