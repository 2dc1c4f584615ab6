/* The stick table (src/upstream/sticktab.c): lookups, idle expiry, the
 * bound with the least recently used entry evicted, and many threads at
 * once (issue 9: the sticky-session table without cookies). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "upstream/sticktab.h"

static void test_get_put(void **state)
{
    (void)state;
    struct sticktab *t = sticktab_new(8, 1000);
    assert_non_null(t);
    uint64_t v = 0;
    assert_false(sticktab_get(t, 42, 0, &v));
    assert_true(sticktab_put(t, 42, 7, 0));
    assert_true(sticktab_get(t, 42, 10, &v));
    assert_int_equal(v, 7);
    assert_false(sticktab_put(t, 42, 7, 20)); /* a refresh, no change */
    assert_true(sticktab_put(t, 42, 9, 30));  /* re-learnt elsewhere */
    assert_true(sticktab_get(t, 42, 40, &v));
    assert_int_equal(v, 9);
    assert_true(sticktab_del(t, 42));
    assert_false(sticktab_del(t, 42));
    assert_false(sticktab_get(t, 42, 50, &v));
    assert_int_equal(sticktab_count(t), 0);
    /* keys that share a bucket (8 buckets: same low bits) */
    for (uint64_t k = 0; k < 8; k++)
        sticktab_put(t, (k << 32) | 5, k + 100, 60);
    for (uint64_t k = 0; k < 8; k++) {
        assert_true(sticktab_get(t, (k << 32) | 5, 70, &v));
        assert_int_equal(v, k + 100);
    }
    assert_true(sticktab_del(t, (3ull << 32) | 5));
    assert_true(sticktab_get(t, (4ull << 32) | 5, 70, &v));
    assert_false(sticktab_get(t, (3ull << 32) | 5, 70, &v));
    sticktab_unref(t);
}

static void test_expiry(void **state)
{
    (void)state;
    struct sticktab *t = sticktab_new(16, 1000);
    struct sticktab_stats before, after;
    sticktab_stats(&before);
    uint64_t v;
    sticktab_put(t, 1, 11, 0);
    sticktab_put(t, 2, 22, 0);
    /* a use restarts the expiry: 1 is used at 900, 2 is not */
    assert_true(sticktab_get(t, 1, 900, &v));
    assert_false(sticktab_get(t, 2, 1000, &v)); /* exactly ttl: gone */
    assert_true(sticktab_get(t, 1, 1899, &v));
    assert_false(sticktab_get(t, 1, 2899, &v));
    assert_int_equal(sticktab_count(t), 0);
    /* a put drops what expired at the tail without being asked for */
    sticktab_put(t, 3, 33, 3000);
    sticktab_put(t, 4, 44, 3500);
    sticktab_put(t, 5, 55, 4200); /* 3 died at 4000 */
    assert_int_equal(sticktab_count(t), 2);
    assert_true(sticktab_put(t, 4, 44, 4600)); /* dead at 4500: learnt anew */
    sticktab_stats(&after);
    assert_int_equal(after.expired - before.expired, 4);
    sticktab_unref(t);
}

static void test_bound(void **state)
{
    (void)state;
    struct sticktab_stats before, after;
    sticktab_stats(&before);
    struct sticktab *t = sticktab_new(100, 60000);
    uint64_t v;
    for (uint64_t k = 0; k < 100; k++)
        sticktab_put(t, k * 7919, k, (int64_t)k);
    /* 0 is used again: the least recently used is now 1 */
    assert_true(sticktab_get(t, 0, 200, &v));
    for (uint64_t k = 100; k < 150; k++)
        sticktab_put(t, k * 7919, k, 300);
    assert_int_equal(sticktab_count(t), 100);
    assert_true(sticktab_get(t, 0, 400, &v));
    for (uint64_t k = 1; k <= 50; k++)
        assert_false(sticktab_get(t, k * 7919, 400, &v));
    for (uint64_t k = 51; k < 150; k++) {
        assert_true(sticktab_get(t, k * 7919, 400, &v));
        assert_int_equal(v, k);
    }
    sticktab_stats(&after);
    assert_int_equal(after.evicted - before.evicted, 50);
    assert_int_equal(after.entries - before.entries, 100);
    sticktab_unref(t);
    sticktab_stats(&after);
    assert_int_equal(after.entries, before.entries);
}

static void test_same_ref(void **state)
{
    (void)state;
    struct sticktab *t = sticktab_new(10, 5000);
    assert_true(sticktab_same(t, 10, 5000));
    assert_false(sticktab_same(t, 11, 5000));
    assert_false(sticktab_same(t, 10, 5001));
    struct sticktab *r = sticktab_ref(t);
    sticktab_put(r, 1, 2, 0);
    sticktab_unref(t);
    uint64_t v;
    assert_true(sticktab_get(r, 1, 1, &v)); /* still alive */
    sticktab_unref(r);
    assert_null(sticktab_new(0, 1000));
    assert_null(sticktab_new(10, 0));
}

#define NTHREADS 4
#define NOPS 20000

static void *hammer(void *arg)
{
    struct sticktab *t = arg;
    uint64_t v;
    for (uint64_t i = 0; i < NOPS; i++) {
        uint64_t k = (i * 2654435761u) % 300;
        if (!sticktab_get(t, k, (int64_t)i, &v))
            sticktab_put(t, k, k + 1, (int64_t)i);
        else if (v != k + 1)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct sticktab *t = sticktab_new(256, 100000);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, t), 0);
    for (int i = 0; i < NTHREADS; i++) {
        void *rv = (void *)2;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    assert_int_equal(sticktab_count(t), 256);
    sticktab_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_same_ref),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
