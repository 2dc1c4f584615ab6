/*
 * The event loop: one per worker thread. Edge-triggered epoll, a timer heap,
 * a deferred-call queue and a clock read once per iteration.
 *
 * Every fd is registered once for EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET and
 * never modified: the owner remembers readiness itself and works until
 * EAGAIN. That costs no epoll_ctl on the request path.
 */
#ifndef GH_CORE_LOOP_H
#define GH_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct ev;
struct timer;
struct defer;

typedef void ev_fn(struct loop *l, struct ev *e, uint32_t events);
typedef void timer_fn(struct loop *l, struct timer *t);
typedef void defer_fn(struct loop *l, struct defer *d);

struct ev {
    int fd;
    ev_fn *cb;
};

/* A timer is armed when idx_ != 0. <due> may move later without touching
 * the heap: the heap entry fires at <at_>, sees due is later and re-arms
 * (the lazy reset that makes per-read timeout refreshes cheap). */
struct timer {
    int64_t due; /* ms, loop clock */
    int64_t at_;
    uint32_t idx_; /* 1-based heap slot, 0 when not armed */
    timer_fn *cb;
};

struct defer {
    struct defer *next_;
    bool queued_;
    defer_fn *cb;
};

/* Creates a loop. Returns NULL with errno set on failure. */
struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Registers <e> (e->fd, e->cb set by the caller) for edge-triggered
 * read+write+rdhup. Returns 0 or -errno. */
int loop_add(struct loop *l, struct ev *e);
/* Removes e->fd from the loop (call before close). */
void loop_del(struct loop *l, struct ev *e);
/* Registers <e> for level-triggered EPOLLIN only (listeners, eventfds). */
int loop_add_read(struct loop *l, struct ev *e);
/* Level-triggered interest in reading (<in>) and/or writing (<out>), for
 * sockets whose owner cannot work until EAGAIN (c-ares). The first call
 * registers <e> (<added> false), later ones change the set. Returns 0 or
 * -errno. */
int loop_watch(struct loop *l, struct ev *e, bool added, bool in, bool out);

/* Arms <t> to fire <ms> from now (replaces an earlier arming). */
void timer_set(struct loop *l, struct timer *t, int64_t ms, timer_fn *cb);
void timer_cancel(struct loop *l, struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
    return t->idx_ != 0;
}

/* Queues <d> to run at the end of this iteration (once, however often it
 * is queued). */
void loop_defer(struct loop *l, struct defer *d, defer_fn *cb);
void loop_undefer(struct loop *l, struct defer *d);

/* Runs until loop_stop(). Returns 0, or -errno if epoll fails. It can be
 * run again afterwards. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Called once per iteration after events, timers and deferred calls (for
 * flushing batched logs). */
void loop_on_idle(struct loop *l, void (*fn)(void *), void *arg);

/* Frees <p> (malloc'd) after this iteration's events and timers have run:
 * an object closed in one callback may still have an event waiting in the
 * same batch. Its owner marks it dead (ev.fd = -1) so that event is
 * ignored. */
void loop_free_later(struct loop *l, void *p);

/* Cached clocks, read once per iteration. */
int64_t loop_now(const struct loop *l);      /* monotonic ms */
int64_t loop_now_us(const struct loop *l);   /* monotonic µs */
int64_t loop_wall(const struct loop *l);     /* unix seconds */
int64_t loop_wall_ms(const struct loop *l);  /* unix ms */
void loop_update_clock(struct loop *l);

/* Number of armed timers (tests, metrics). */
unsigned loop_timers(const struct loop *l);

/* Per-loop user data (the worker). */
void loop_set_data(struct loop *l, void *data);
void *loop_data(const struct loop *l);

#endif
