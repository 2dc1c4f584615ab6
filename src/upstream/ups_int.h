/*
 * Internals shared by the files of src/upstream/.
 *
 *   state.c        the process-wide state: health, ejections, EWMA, budget,
 *                  DNS-filled addresses (atomics only)
 *   ups.c          per worker: eligibility, ups_pick(), the wait queue,
 *                  keep-alive pools
 *   balance_*.c    one balancer each, behind struct ups_balancer
 *   sticky.c       the sticky cookie and cookie parsing
 *   health.c       the health thread (active checks, ejection ends, DNS)
 *   resolve.c      re-resolving server names with c-ares (health thread)
 *
 * Who writes what in struct ups_srv_sh: workers write inflight, the
 * passive-check fields and the EWMA; the health thread writes <down>,
 * clears ejections it saw end and fills DNS slots. Every field is an atomic
 * so any thread may read it; relaxed order everywhere except the address
 * seqlock, since each field is a hint that is fine to see a little late.
 */
#ifndef GH_UPSTREAM_UPS_INT_H
#define GH_UPSTREAM_UPS_INT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/str.h"
#include "upstream/sticktab.h"
#include "upstream/ups.h"

#define RLX memory_order_relaxed

/* Weights are scaled so slow start can ramp a weight of 1 smoothly. */
#define UPS_WSCALE 1000

/* One server, shared by all threads; one cache line of hot fields. */
struct ups_srv_sh {
    alignas(64) _Atomic int32_t inflight;
    _Atomic bool down;             /* active checks say it is down */
    _Atomic bool live;             /* has an address (DNS slots) */
    _Atomic int64_t eject_until;   /* ms: ejected while now < this */
    _Atomic int64_t back_at;       /* ms it came back (slow start); 0 */
    _Atomic uint32_t fails;        /* consecutive failed requests */
    _Atomic int64_t fail_since;    /* ms of the first of them */
    _Atomic uint32_t ejections;    /* ejections in a row (period doubles) */
    _Atomic int64_t eject_end;     /* ms the last ejection ended */
    _Atomic double ewma_us;        /* peak EWMA of latency, µs */
    _Atomic int64_t ewma_at;       /* µs of its last update */
    /* DNS slot address, a seqlock (odd <seq>: being written) */
    alignas(64) _Atomic uint32_t seq;
    _Atomic uint64_t aw[3];        /* ip (16 bytes), family|port|scope */
    _Atomic uint32_t gen;          /* bumped when the address changes */
    char token[20];                /* sticky cookie value (immutable) */
    uint64_t tok;                  /* the same, as a number (immutable) */
    char *set_cookie;              /* "Set-Cookie: ...\r\n" (immutable) */
    char ident[80];                /* ring identity (immutable) */
};

struct ups_ring {
    uint64_t *pt;   /* sorted points */
    uint8_t *own;   /* server of each point */
    size_t n;
};

/* One pool, shared by all threads. */
struct ups_shared {
    const struct cfg_upstream *cu;
    struct ups_srv_sh *srv;        /* cu->nservers entries */
    bool dns;                      /* some servers are DNS slots */
    struct ups_ring ring;          /* balance: hash (immutable) */
    struct sticktab *stick;        /* learn / by: source (sticktab.h) */
    uint64_t stick_ns;             /* the pool's part of the Redis key */
    alignas(64) _Atomic int64_t budget;  /* retry budget, 1/1000 retry */
    _Atomic int64_t budget_at;     /* ms of its last refill */
    _Atomic int32_t queued;        /* requests waiting, all workers */
};

struct ups_state {
    atomic_int refs;               /* generations using it, and the server */
    const struct cfg *cfg;
    struct ups_shared *ups;        /* one per cfg->upstreams entry */
    size_t n;
    struct mworker *hm;            /* the health thread's counters, or NULL */
};

/* ---- balancers ---- */

struct ups_balancer {
    const char *name;
    /* Picks one server of <set>, a non-empty bitmask of servers that may
     * be used. */
    unsigned (*pick)(struct ups *u, const struct ups_key *k, uint64_t set);
};

extern const struct ups_balancer ups__bal_rr;
extern const struct ups_balancer ups__bal_lc;
extern const struct ups_balancer ups__bal_hash;
extern const struct ups_balancer ups__bal_p2c;
extern const struct ups_balancer ups__bal_ewma;

/* ---- state.c ---- */

/* The effective weight of <srv> (weight x UPS_WSCALE, ramped during slow
 * start), at least 1. */
int64_t ups__weight(const struct ups *u, unsigned srv, int64_t now_ms);

static inline int32_t ups__inflight(const struct ups *u, unsigned srv)
{
    return atomic_load_explicit(&u->sh->srv[srv].inflight, RLX);
}

/* A request arrived: adds its share to the pool's retry budget. */
void ups__budget_deposit(struct ups *u);

/* The latency EWMA of <srv> decayed to <now_us>, in µs (0: no history). */
double ups__ewma(const struct ups *u, unsigned srv, int64_t now_us);

/* True when <srv> may take requests: it has an address, health checks do
 * not say it is down, it is not ejected. */
bool ups__usable(const struct ups_shared *sh, unsigned srv, int64_t now_ms);

/* Reads the address of <srv> into <ss>; returns its length (0 when a DNS
 * slot is empty) and its generation in <gen>. */
socklen_t ups__addr(const struct ups_shared *sh, unsigned srv,
                    struct sockaddr_storage *ss, uint32_t *gen);

/* Health thread: sets the address of DNS slot <srv> (len 0 empties it). */
void ups__set_addr(struct ups_shared *sh, unsigned srv,
                   const struct sockaddr *sa, socklen_t len);

/* Health thread: active checks moved <srv> down or up at <now_ms>. */
void ups__set_down(struct ups_shared *sh, unsigned srv, bool down,
                   int64_t now_ms);

/* A 64-bit hash of <n> bytes (FNV-1a, then a murmur3 finalizer). */
uint64_t ups__hash(const void *p, size_t n, uint64_t seed);
uint64_t ups__mix(uint64_t x);

/* ---- balance_hash.c ---- */

/* Builds the ring of <sh> (about 160 points per server, in proportion to
 * weight). Returns 0 or -ENOMEM. */
int ups__ring_build(struct ups_shared *sh);
void ups__ring_free(struct ups_ring *r);
/* The server owning <hash> among <set> (walking on past the others). */
unsigned ups__ring_pick(const struct ups_ring *r, uint64_t hash, uint64_t set);

/* ---- sticky.c ---- */

/* Makes the token of every server of <sh>, and its Set-Cookie line when
 * the pool sets a cookie, or the pool's stick table (the one of the pool
 * of the same name in <prev> when its settings are the same: a reload
 * keeps what was learnt). Returns 0 or -ENOMEM. */
int ups__sticky_init(struct ups_shared *sh, const struct ups_state *prev);
void ups__sticky_free(struct ups_shared *sh);
/* The server whose token is <val>, or -1. */
int ups__sticky_find(const struct ups_shared *sh, struct str val);

/* The stick table's key for <r> (<client>: the hash of its address) and
 * what the local table says about it, into <k>. */
void ups__stick_prepare(struct ups *u, const struct ups_req *r,
                        uint64_t client, struct ups_key *k);

/* The value of cookie <name> in the Cookie fields of <m>. */
bool ups__cookie(const struct h1_msg *m, struct str name, struct str *val);

/* ---- bit sets ---- */

static inline unsigned ups__popcount(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

/* The index of the <k>-th (0-based) set bit of <x>; k < popcount(x). */
static inline unsigned ups__nth_bit(uint64_t x, unsigned k)
{
    while (k-- > 0)
        x &= x - 1;
    return (unsigned)__builtin_ctzll(x);
}

#endif
