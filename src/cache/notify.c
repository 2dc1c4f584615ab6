/*
 * Waking readers across threads.
 *
 * A reader that ran out of bytes (or waits for a head) links a struct
 * cache_waiter on the object's body. The writer, on whatever thread, takes
 * the body lock when it commits bytes or changes state, unlinks every
 * waiter and posts each to its thread's notifier: a queue under a small
 * mutex plus an eventfd that the waiter's event loop watches. The loop then
 * runs the waiters' functions on their own thread.
 *
 * Lifetime: a waiter is posted only while linked, and linking and posting
 * both happen under the body lock; cache_unwait() takes the body lock, then
 * the notifier lock, so once it returns no thread holds or will take a
 * pointer to the waiter, and its memory may go (it lives in a request
 * arena).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cache/cache_int.h"
#include "core/macros.h"

struct cache_notifier {
    int efd;
    pthread_mutex_t lock;
    struct cache_waiter *head, *tail;
    bool signaled; /* the eventfd was written and not yet drained */
};

struct cache_notifier *cache_notifier_new(void)
{
    struct cache_notifier *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->efd == -1) {
        free(n);
        return NULL;
    }
    pthread_mutex_init(&n->lock, NULL);
    return n;
}

void cache_notifier_free(struct cache_notifier *n)
{
    if (n == NULL)
        return;
    close(n->efd);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

int cache_notifier_fd(const struct cache_notifier *n)
{
    return n->efd;
}

void cache__post(struct cache_waiter *w)
{
    struct cache_notifier *n = w->nt;
    bool wake = false;
    pthread_mutex_lock(&n->lock);
    if (!w->queued_) {
        w->queued_ = true;
        w->qnext_ = NULL;
        w->qprev_ = n->tail;
        if (n->tail != NULL)
            n->tail->qnext_ = w;
        else
            n->head = w;
        n->tail = w;
        wake = !n->signaled;
        n->signaled = true;
    }
    pthread_mutex_unlock(&n->lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t r = write(n->efd, &one, sizeof(one));
        (void)r; /* EAGAIN: the counter is already non-zero */
    }
}

static void dequeue_locked(struct cache_notifier *n, struct cache_waiter *w)
{
    if (w->qprev_ != NULL)
        w->qprev_->qnext_ = w->qnext_;
    else
        n->head = w->qnext_;
    if (w->qnext_ != NULL)
        w->qnext_->qprev_ = w->qprev_;
    else
        n->tail = w->qprev_;
    w->qnext_ = w->qprev_ = NULL;
    w->queued_ = false;
}

void cache_notifier_run(struct cache_notifier *n)
{
    uint64_t v;
    ssize_t r = read(n->efd, &v, sizeof(v));
    (void)r;
    for (;;) {
        pthread_mutex_lock(&n->lock);
        struct cache_waiter *w = n->head;
        if (w == NULL) {
            n->signaled = false;
            pthread_mutex_unlock(&n->lock);
            return;
        }
        dequeue_locked(n, w);
        pthread_mutex_unlock(&n->lock);
        w->fn(w->arg); /* may free other waiters: each unwaits itself */
    }
}

void cache__wake_locked(struct cache_body *b)
{
    struct cache_waiter *w = b->waiters;
    b->waiters = NULL;
    while (w != NULL) {
        struct cache_waiter *next = w->next_;
        w->linked_ = false;
        w->next_ = w->prev_ = NULL;
        cache__post(w);
        w = next;
    }
}

int cache_wait(struct cache_obj *o, struct cache_waiter *w, uint64_t seen)
{
    struct cache_body *b = o->body;
    if (w->on_ != NULL && w->on_ != o)
        cache_unwait(w);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    int st = atomic_load_explicit(&b->state, memory_order_acquire);
    uint64_t len = atomic_load_explicit(&b->len, memory_order_acquire);
    bool ready = atomic_load_explicit(&o->ready, memory_order_acquire);
    if (st != CB_FILLING || (seen == CACHE_WAIT_HEAD ? ready : len > seen)) {
        rc = 1;
    } else if (!w->linked_) {
        w->on_ = o;
        w->linked_ = true;
        w->prev_ = NULL;
        w->next_ = b->waiters;
        if (b->waiters != NULL)
            b->waiters->prev_ = w;
        b->waiters = w;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void cache_unwait(struct cache_waiter *w)
{
    struct cache_obj *o = w->on_;
    if (o != NULL) {
        struct cache_body *b = o->body;
        pthread_mutex_lock(&b->lock);
        if (w->linked_) {
            if (w->prev_ != NULL)
                w->prev_->next_ = w->next_;
            else
                b->waiters = w->next_;
            if (w->next_ != NULL)
                w->next_->prev_ = w->prev_;
            w->linked_ = false;
            w->next_ = w->prev_ = NULL;
        }
        pthread_mutex_unlock(&b->lock);
        w->on_ = NULL;
    }
    if (w->nt != NULL) {
        struct cache_notifier *n = w->nt;
        pthread_mutex_lock(&n->lock);
        if (w->queued_)
            dequeue_locked(n, w);
        pthread_mutex_unlock(&n->lock);
    }
}
