/*
 * HTTP/2 upstreams (protocol: h2), shared by h2up.c (a transaction's
 * stream: request, response, trailers) and h2mux.c (the connections many
 * streams share: connect, I/O, failures).
 */
#ifndef GH_PROXY_H2UP_H
#define GH_PROXY_H2UP_H

#include "h2/h2_client.h"
#include "proxy/proxy_int.h"

#define H2UP_STREAM_WINDOW (256u * 1024u)
#define H2UP_CONN_WINDOW (64u * 1024u * 1024u)
#define H2UP_MAX_STREAMS 100u /* per connection, whatever the server allows */
#define H2UP_OUT_CAP 16384

struct h2uc;

/* A transaction's stream (t->hx), in its arena. */
struct h2x {
    struct txn *t;
    struct h2uc *hc;       /* the connection it is on, NULL when none */
    struct h2x *prev, *next; /* hc's streams */
    struct h2x *qnext;     /* hc's run queue */
    bool queued;
    struct timer timer;    /* upstream read/send timeout */
    struct h2_nv *nv;      /* the request head */
    size_t nnv;
    int32_t id;            /* 0: not submitted yet */
    bool body;             /* the request has a body */
    bool te_trailers;      /* the client sent TE: trailers */
    struct buf rb;         /* response body not yet passed on */
    struct h1_field *f;    /* the response head's fields */
    size_t nf, maxf;
    struct h2_nv *tr;      /* the response trailers */
    size_t ntr;
    struct outq tq;        /* HTTP/1.1: the last chunk and the trailers */
    int status;
    uint32_t code;         /* the stream's close code */
    bool head_in, ended, closed, deferred, cli_eof, eof_pulled, bad_head;
    bool too_big;          /* the request body passed the route's limit */
    bool up_prog;          /* upstream progress since the timer was armed */
};

/* One upstream connection and its session (uc->proto). */
struct h2uc {
    struct uconn *uc;
    struct h2_cli *cli;    /* NULL until connected */
    struct h2x *streams;
    unsigned n;
    struct h2x *q, *qtail; /* streams to pump */
    struct h2uc *prev, *next; /* the server's connections in use */
    struct defer defer;
    uint8_t ob[H2UP_OUT_CAP]; /* frames the socket has not taken */
    size_t olen, ooff;
    unsigned busy;         /* inside h2mux code: do not free */
    bool connected, dead, listed;
    bool pooled;           /* in the keep-alive pool (no stream) */
    bool gone;             /* closed; freed at the end of the iteration */
};

/* ---- h2mux.c ---- */
/* Puts <t>'s stream on a connection to server <srv> (one with room, an
 * idle one, or a new one). 0, or -errno when no connection could be
 * opened (the caller tries another server). */
int h2mux_attach(struct txn *t, unsigned srv);
/* Takes <x> off its connection (resetting the stream when it is open). */
void h2mux_detach(struct h2x *x);
/* Queues <x> to be pumped after the connection's events. */
void h2mux_wake(struct h2x *x);
/* Frames were submitted outside the connection's events: write them
 * soon. */
void h2mux_flush_later(struct h2uc *hc);
/* Opens <x>'s stream on its (connected) connection. 0 or -errno. */
int h2mux_submit(struct h2x *x);

/* ---- h2up.c, for h2mux.c ---- */
extern const struct h2_cli_cbs h2up_cbs;
/* The connection of <x> failed with <err> (<connecting>: it never came
 * up): <x> was detached; end or retry its transaction. */
void h2up_conn_failed(struct h2x *x, int err, bool connecting, bool goaway);
/* Arms <x>'s upstream timer. */
void h2up_arm(struct h2x *x);

#endif
