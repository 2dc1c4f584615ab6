/*
 * Internals of the health thread, shared by health.c and resolve.c (both
 * run on that thread only).
 */
#ifndef GH_UPSTREAM_HEALTH_INT_H
#define GH_UPSTREAM_HEALTH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "upstream/ups_int.h"

struct check;
struct watch;
struct resolver;

struct ups_health {
    pthread_t thread;
    struct loop *loop;
    struct ev stop;          /* eventfd: ups_health_stop() */
    struct timer tick;       /* ejection ends, DNS */
    struct ups_state *st;
    struct check *checks;    /* one per server with active checks */
    size_t nchecks;
    struct watch *watch;     /* one per pool with passive checks */
    size_t nwatch;
    struct resolver *res;    /* one per resolved name */
    size_t nres;
    bool dns_busy;           /* queries in flight: tick faster */
    bool dns_started;        /* the first answers are in */
};

/* ---- resolve.c ---- */

/* Sets up a c-ares channel per resolved name of <st>. Returns 0 or
 * -errno. */
int ups__resolve_init(struct ups_health *h, struct ups_state *st);
void ups__resolve_fini(struct ups_health *h);
/* Starts the queries that are due and processes answers; sets
 * h->dns_busy while queries are in flight. */
void ups__resolve_tick(struct ups_health *h, int64_t now);

#endif
