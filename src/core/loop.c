/*
 * Event loop: epoll in edge-triggered mode plus a binary min-heap of timers.
 *
 * Timers are reset far more often than they fire (every read pushes a
 * connection's deadline back), so a reset to a later time only writes
 * t->due; the heap keeps the old position and, when it comes up, the timer is
 * pushed back to its real due time instead of firing. A reset to an earlier
 * time moves the entry at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/macros.h"

#define MAX_EVENTS 256

struct loop {
    int epfd;
    bool stop;
    int64_t now_ms, now_us, wall_ms;
    struct timer **heap; /* 1-based */
    uint32_t nheap, capheap;
    struct defer *dhead, **dtail;
    struct defer *running; /* what is left of the batch being run */
    void (*idle_fn)(void *);
    void *idle_arg;
    void *data;
    void **graveyard;
    size_t ngrave, capgrave;
};

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1) {
        int err = errno;
        free(l);
        errno = err;
        return NULL;
    }
    l->capheap = 64;
    l->heap = malloc(sizeof(*l->heap) * (l->capheap + 1));
    if (l->heap == NULL) {
        close(l->epfd);
        free(l);
        errno = ENOMEM;
        return NULL;
    }
    l->dtail = &l->dhead;
    loop_update_clock(l);
    return l;
}

void loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    close(l->epfd);
    for (size_t i = 0; i < l->ngrave; i++)
        free(l->graveyard[i]);
    free(l->graveyard);
    free(l->heap);
    free(l);
}

void loop_free_later(struct loop *l, void *p)
{
    if (l->ngrave == l->capgrave) {
        size_t cap = l->capgrave ? l->capgrave * 2 : 64;
        void **g = realloc(l->graveyard, cap * sizeof(*g));
        AN(g);
        l->graveyard = g;
        l->capgrave = cap;
    }
    l->graveyard[l->ngrave++] = p;
}

static void bury(struct loop *l)
{
    for (size_t i = 0; i < l->ngrave; i++)
        free(l->graveyard[i]);
    l->ngrave = 0;
}

void loop_update_clock(struct loop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    l->now_ms = l->now_us / 1000;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    l->wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_now(const struct loop *l)
{
    return l->now_ms;
}

int64_t loop_now_us(const struct loop *l)
{
    return l->now_us;
}

int64_t loop_wall(const struct loop *l)
{
    return l->wall_ms / 1000;
}

int64_t loop_wall_ms(const struct loop *l)
{
    return l->wall_ms;
}

void loop_set_data(struct loop *l, void *data)
{
    l->data = data;
}

void *loop_data(const struct loop *l)
{
    return l->data;
}

unsigned loop_timers(const struct loop *l)
{
    return l->nheap;
}

void loop_on_idle(struct loop *l, void (*fn)(void *), void *arg)
{
    l->idle_fn = fn;
    l->idle_arg = arg;
}

int loop_add(struct loop *l, struct ev *e)
{
    struct epoll_event ee = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = e,
    };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, e->fd, &ee) == -1)
        return -errno;
    return 0;
}

int loop_add_read(struct loop *l, struct ev *e)
{
    struct epoll_event ee = { .events = EPOLLIN, .data.ptr = e };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, e->fd, &ee) == -1)
        return -errno;
    return 0;
}

int loop_watch(struct loop *l, struct ev *e, bool added, bool in, bool out)
{
    struct epoll_event ee = {
        .events = (in ? EPOLLIN : 0u) | (out ? EPOLLOUT : 0u),
        .data.ptr = e,
    };
    if (epoll_ctl(l->epfd, added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, e->fd,
                  &ee) == -1)
        return -errno;
    return 0;
}

void loop_del(struct loop *l, struct ev *e)
{
    if (e->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
}

/* ---- timer heap ---- */

static inline void heap_place(struct loop *l, uint32_t i, struct timer *t)
{
    l->heap[i] = t;
    t->idx_ = i;
}

static void sift_up(struct loop *l, uint32_t i)
{
    struct timer *t = l->heap[i];
    while (i > 1 && l->heap[i / 2]->at_ > t->at_) {
        heap_place(l, i, l->heap[i / 2]);
        i /= 2;
    }
    heap_place(l, i, t);
}

static void sift_down(struct loop *l, uint32_t i)
{
    struct timer *t = l->heap[i];
    for (;;) {
        uint32_t c = i * 2;
        if (c > l->nheap)
            break;
        if (c + 1 <= l->nheap && l->heap[c + 1]->at_ < l->heap[c]->at_)
            c++;
        if (l->heap[c]->at_ >= t->at_)
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

static void heap_remove(struct loop *l, struct timer *t)
{
    uint32_t i = t->idx_;
    struct timer *last = l->heap[l->nheap--];
    t->idx_ = 0;
    if (last == t)
        return;
    heap_place(l, i, last);
    if (i > 1 && l->heap[i / 2]->at_ > last->at_)
        sift_up(l, i);
    else
        sift_down(l, i);
}

void timer_set(struct loop *l, struct timer *t, int64_t ms, timer_fn *cb)
{
    int64_t due = l->now_ms + (ms < 0 ? 0 : ms);
    t->cb = cb;
    t->due = due;
    if (t->idx_ != 0) {
        if (due >= t->at_)
            return; /* lazy: fires at at_, then re-arms to due */
        t->at_ = due;
        sift_up(l, t->idx_);
        return;
    }
    if (l->nheap == l->capheap) {
        uint32_t cap = l->capheap * 2;
        struct timer **h = realloc(l->heap, sizeof(*h) * (cap + 1));
        AN(h); /* out of memory for a timer slot: nothing sane to do */
        l->heap = h;
        l->capheap = cap;
    }
    t->at_ = due;
    l->nheap++;
    heap_place(l, l->nheap, t);
    sift_up(l, l->nheap);
}

void timer_cancel(struct loop *l, struct timer *t)
{
    if (t->idx_ != 0)
        heap_remove(l, t);
}

static void run_timers(struct loop *l)
{
    while (l->nheap > 0 && l->heap[1]->at_ <= l->now_ms) {
        struct timer *t = l->heap[1];
        if (t->due > l->now_ms) {
            t->at_ = t->due;
            sift_down(l, 1);
            continue;
        }
        heap_remove(l, t);
        t->cb(l, t);
    }
}

static int next_timeout(const struct loop *l)
{
    if (l->dhead != NULL)
        return 0;
    if (l->nheap == 0)
        return 1000;
    int64_t d = l->heap[1]->at_ - l->now_ms;
    if (d <= 0)
        return 0;
    return d > 1000 ? 1000 : (int)d;
}

/* ---- deferred calls ---- */

void loop_defer(struct loop *l, struct defer *d, defer_fn *cb)
{
    d->cb = cb;
    if (d->queued_)
        return;
    d->queued_ = true;
    d->next_ = NULL;
    *l->dtail = d;
    l->dtail = &d->next_;
}

/* Unlinks <d> from the list at <pp>; returns whether it was there. */
static bool unlink_defer(struct defer **pp, struct defer *d, struct defer ***tail)
{
    for (; *pp != NULL; pp = &(*pp)->next_) {
        if (*pp == d) {
            *pp = d->next_;
            if (tail != NULL && *tail == &d->next_)
                *tail = pp;
            return true;
        }
    }
    return false;
}

void loop_undefer(struct loop *l, struct defer *d)
{
    if (!d->queued_)
        return;
    /* queued for the next batch, or still waiting in the one being run (a
     * callback undoing another's: its owner may be gone after it) */
    if (!unlink_defer(&l->dhead, d, &l->dtail))
        (void)unlink_defer(&l->running, d, NULL);
    d->queued_ = false;
    d->next_ = NULL;
}

static void run_deferred(struct loop *l)
{
    /* Only what was queued before we started: a callback that queues more
     * work runs it next iteration, after fresh I/O events. */
    l->running = l->dhead;
    l->dhead = NULL;
    l->dtail = &l->dhead;
    while (l->running != NULL) {
        struct defer *d = l->running;
        l->running = d->next_;
        d->queued_ = false;
        d->next_ = NULL;
        d->cb(l, d);
    }
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

int loop_run(struct loop *l)
{
    struct epoll_event evs[MAX_EVENTS];
    while (!l->stop) {
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, next_timeout(l));
        if (n == -1) {
            int err = errno;
            if (err == EINTR)
                continue;
            return -err;
        }
        loop_update_clock(l);
        for (int i = 0; i < n; i++) {
            struct ev *e = evs[i].data.ptr;
            e->cb(l, e, evs[i].events);
        }
        run_timers(l);
        run_deferred(l);
        if (l->idle_fn != NULL)
            l->idle_fn(l->idle_arg);
        bury(l);
    }
    l->stop = false; /* the loop can run again (tests drive it in steps) */
    return 0;
}
