/* Event loop: timer order, lazy re-arming, cancel, deferred calls, I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/macros.h"

static int order[16];
static int norder;

struct tt {
    struct timer t;
    int id;
};

static void fire(struct loop *l, struct timer *t)
{
    struct tt *x = container_of(t, struct tt, t);
    order[norder++] = x->id;
    if (norder == 3)
        loop_stop(l);
}

static void test_timer_order(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct tt a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
    norder = 0;
    timer_set(l, &c.t, 30, fire);
    timer_set(l, &a.t, 10, fire);
    timer_set(l, &b.t, 20, fire);
    assert_int_equal(loop_timers(l), 3);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    assert_int_equal(loop_timers(l), 0);
    loop_free(l);
}

static void test_timer_reset_later_and_cancel(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct tt a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 }, d = { .id = 4 };
    norder = 0;
    timer_set(l, &a.t, 5, fire);
    timer_set(l, &b.t, 15, fire);
    timer_set(l, &c.t, 25, fire);
    timer_set(l, &d.t, 1, fire);
    timer_cancel(l, &d.t);
    assert_false(timer_armed(&d.t));
    timer_set(l, &a.t, 40, fire); /* later: lazily moved behind b and c */
    int64_t t0 = loop_now(l);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 1);
    assert_true(loop_now(l) - t0 >= 40);
    loop_free(l);
}

static void test_timer_reset_earlier(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct tt a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
    norder = 0;
    timer_set(l, &a.t, 50, fire);
    timer_set(l, &b.t, 20, fire);
    timer_set(l, &c.t, 30, fire);
    timer_set(l, &a.t, 1, fire); /* earlier: moved at once */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    loop_free(l);
}

static int ndefer;

static void deferred(struct loop *l, struct defer *d)
{
    (void)d;
    if (++ndefer == 2)
        loop_stop(l);
}

static void requeue(struct loop *l, struct defer *d)
{
    ndefer++;
    loop_defer(l, d, deferred); /* runs next iteration, not now */
}

static void test_defer_once_and_requeue(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct defer d = { 0 }, e = { 0 };
    ndefer = 0;
    loop_defer(l, &d, requeue);
    loop_defer(l, &d, requeue); /* queued twice: runs once */
    loop_defer(l, &e, requeue);
    loop_undefer(l, &e);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(ndefer, 2);
    loop_free(l);
}

/* A callback that undoes a later entry of the same batch: that entry must
 * not run (its owner may be gone), and queued anew it runs next time. */
struct owner {
    struct defer d;
    int runs;
    struct owner *other; /* undone by this one's callback */
    bool requeue_other;
};

static void owner_run(struct loop *l, struct defer *d)
{
    struct owner *o = (struct owner *)(void *)d;
    o->runs++;
    if (o->other != NULL) {
        loop_undefer(l, &o->other->d);
        if (o->requeue_other)
            loop_defer(l, &o->other->d, owner_run);
        o->other = NULL;
    }
}

static void stop_cb(struct loop *l, struct defer *d)
{
    (void)d;
    loop_stop(l);
}

static void guard_stop(struct loop *l, struct timer *t)
{
    (void)t;
    loop_stop(l); /* the stop entry was lost from its batch */
}

static void test_undefer_within_the_batch(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct owner a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
    struct defer stop = { 0 };
    struct timer guard = { 0 };
    timer_set(l, &guard, 2000, guard_stop);
    a.other = &b;                      /* b is undone: never runs */
    c.other = &d, c.requeue_other = 1; /* d moves to the next batch */
    loop_defer(l, &a.d, owner_run);
    loop_defer(l, &b.d, owner_run);
    loop_defer(l, &c.d, owner_run);
    loop_defer(l, &d.d, owner_run);
    loop_defer(l, &stop, stop_cb); /* stops after this batch's events */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 0);
    assert_int_equal(c.runs, 1);
    assert_int_equal(d.runs, 0); /* not in this batch any more */
    loop_defer(l, &stop, stop_cb);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(d.runs, 1);
    assert_int_equal(b.runs, 0);
    timer_cancel(l, &guard);
    loop_free(l);
}

static int got_events;

static void on_io(struct loop *l, struct ev *e, uint32_t events)
{
    char buf[8];
    (void)events;
    if (read(e->fd, buf, sizeof(buf)) == 3) {
        got_events++;
        loop_stop(l);
    }
}

static void test_io_edge(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct ev e = { sv[0], on_io };
    assert_int_equal(loop_add(l, &e), 0);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    got_events = 0;
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(got_events, 1);
    loop_del(l, &e);
    close(sv[0]);
    close(sv[1]);
    loop_free(l);
}

static void test_free_later(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    loop_free_later(l, malloc(10));
    loop_free_later(l, malloc(20));
    loop_free(l); /* LeakSanitizer checks the graveyard is freed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_reset_later_and_cancel),
        cmocka_unit_test(test_timer_reset_earlier),
        cmocka_unit_test(test_defer_once_and_requeue),
        cmocka_unit_test(test_undefer_within_the_batch),
        cmocka_unit_test(test_io_edge),
        cmocka_unit_test(test_free_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
