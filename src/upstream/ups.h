/*
 * Upstream pools at run time, per worker: which server gets the next
 * request (smooth weighted round robin) and the idle keep-alive connections
 * to each server.
 *
 * A worker builds one struct ups_set from its configuration snapshot; every
 * struct cfg_upstream of the snapshot has a struct ups at the same index.
 * Nothing here is shared between threads.
 */
#ifndef GH_UPSTREAM_UPS_H
#define GH_UPSTREAM_UPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "admin/metrics.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/loop.h"

#define UCONN_MAGIC 0x55c0a11u

struct ups;

/* One connection to an upstream server. Owned by a transaction while it
 * carries a request, by the idle pool otherwise. */
struct uconn {
    unsigned magic;
    struct ev ev;
    struct timer timer;
    struct ups *ups;
    unsigned srv;        /* index in ups->cu->servers */
    struct buf rbuf;     /* response bytes not yet forwarded */
    void *owner;         /* the transaction, NULL when idle */
    struct uconn *next;  /* idle list */
    uint32_t nreq;       /* requests sent on this connection */
    bool connected, readable, writable, rdhup, reused;
    bool busy;           /* owned by a request (counted in flight) */
    struct tls_conn *tls; /* TLS to the server (cu->tls), else NULL */
    bool tls_started;     /* TCP connected, handshake under way */
    bool tls_ready;       /* its handshake completed */
};

struct ups_server {
    struct mslot *m;     /* this server's counters (MS_*) */
    int cw;              /* smooth WRR current weight */
    struct uconn *idle;  /* most recently used first */
    unsigned nidle;
};

struct ups {
    const struct cfg_upstream *cu;
    struct ups_server *srv; /* cu->nservers entries */
    struct loop *loop;
};

struct ups_set {
    struct ups *ups; /* one per cfg->upstreams entry */
    size_t n;
};

/* Builds the run-time state for every upstream of <cfg>. Returns NULL on
 * out of memory. */
struct ups_set *ups_set_new(const struct cfg *cfg, struct loop *loop);
/* Points every server's counters at its slot in <m> (until then they go
 * to a scratch slot). */
void ups_set_metrics(struct ups_set *s, struct mworker *m);
/* Records the outcome of a connection attempt to server <srv>: 0 for
 * connected, else the -errno it failed with. */
void ups_note_connect(struct ups *u, unsigned srv, int err);

/* Closes every idle connection and frees the set. */
void ups_set_free(struct ups_set *s);

/* The run-time state of <cu>, which must belong to the snapshot the set was
 * built from. */
struct ups *ups_of(struct ups_set *s, const struct cfg *cfg,
                   const struct cfg_upstream *cu);

/* Picks a server by smooth weighted round robin (nginx), skipping those whose
 * bit is set in <tried>. Returns the index or -1 when all were tried. */
int ups_pick(struct ups *u, uint64_t tried);

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

/* Ends our sending side (TLS close_notify, then FIN). */
void ups_shutdown(struct uconn *uc);

#endif
