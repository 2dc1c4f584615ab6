/* Rate-limit buckets (GCRA) in the shared table, and the keys they go by. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "security/security.h"

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)
#define T0 (1000 * SEC) /* a monotonic time well after boot */

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in s = { .sin_family = AF_INET };
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return s;
}

static struct sockaddr_in6 v6(const char *a)
{
    struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
    assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return s;
}

static struct sec_key addr_key(uint32_t rule, const char *a)
{
    struct sec_key k;
    struct sockaddr_in s = v4(a);
    sec_key_addr(&k, rule, (struct sockaddr *)&s);
    return k;
}

/* burst 3, 10/s: three at once, then one every 100ms; a refused request
 * is told how long to wait and is not counted. */
static void test_burst_then_rate(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(1024);
    assert_non_null(t);
    struct sec_key k = addr_key(1, "192.0.2.1");
    for (int i = 0; i < 3; i++)
        assert_int_equal(rl_take(t, &k, 100 * MS, 3, T0), 0);
    assert_int_equal(rl_take(t, &k, 100 * MS, 3, T0), 100 * MS);
    assert_int_equal(rl_take(t, &k, 100 * MS, 3, T0 + 40 * MS), 60 * MS);
    assert_int_equal(rl_take(t, &k, 100 * MS, 3, T0 + 100 * MS), 0);
    assert_true(rl_take(t, &k, 100 * MS, 3, T0 + 100 * MS) > 0);
    /* steady state: exactly one per period */
    int passed = 0;
    for (int64_t ms = 101; ms <= 1100; ms++)
        passed += rl_take(t, &k, 100 * MS, 3, T0 + ms * MS) == 0;
    assert_int_equal(passed, 10);
    rl_free(t);
}

/* Burst 1 is a plain rate: no two requests closer than the period. */
static void test_burst_one(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(1024);
    struct sec_key k = addr_key(1, "192.0.2.1");
    assert_int_equal(rl_take(t, &k, SEC, 1, T0), 0);
    assert_int_equal(rl_take(t, &k, SEC, 1, T0 + 999 * MS), 1 * MS);
    assert_int_equal(rl_take(t, &k, SEC, 1, T0 + SEC), 0);
    rl_free(t);
}

/* Different addresses and different rules have their own buckets. */
static void test_keys_are_separate(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(1024);
    struct sec_key a = addr_key(1, "192.0.2.1"), b = addr_key(1, "192.0.2.2");
    struct sec_key a2 = addr_key(2, "192.0.2.1");
    struct sec_key r, u1, u2;
    sec_key_route(&r, 1);
    sec_key_user(&u1, 1, STR_LIT("alice"));
    sec_key_user(&u2, 1, STR_LIT("bob"));
    assert_int_equal(rl_take(t, &a, SEC, 1, T0), 0);
    assert_true(rl_take(t, &a, SEC, 1, T0) > 0);
    assert_int_equal(rl_take(t, &b, SEC, 1, T0), 0);
    assert_int_equal(rl_take(t, &a2, SEC, 1, T0), 0);
    assert_int_equal(rl_take(t, &r, SEC, 1, T0), 0);
    assert_int_equal(rl_take(t, &u1, SEC, 1, T0), 0);
    assert_true(rl_take(t, &u1, SEC, 1, T0) > 0);
    assert_int_equal(rl_take(t, &u2, SEC, 1, T0), 0);
    rl_free(t);
}

/* A bucket back to full is gone: nothing to sweep, nothing kept. */
static void test_expiry(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(1024);
    for (int i = 0; i < 100; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.0.%d.%d", i / 250, i % 250 + 1);
        struct sec_key k = addr_key(7, a);
        assert_int_equal(rl_take(t, &k, 100 * MS, 5, T0), 0);
        assert_int_equal(rl_take(t, &k, 100 * MS, 5, T0), 0);
    }
    assert_int_equal(rl_live(t, T0), 100);
    assert_int_equal(rl_live(t, T0 + 199 * MS), 100);
    assert_int_equal(rl_live(t, T0 + 200 * MS), 0);
    rl_free(t);
}

/* A flood of distinct addresses cannot grow the table: it stays at its
 * size, and a client that keeps coming is still limited (its bucket is the
 * least likely to be dropped: the victim is the one nearest to full). */
static void test_bounded_under_flood(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(512);
    size_t cap = rl_capacity(t);
    assert_true(cap >= 512 && cap <= 1024);
    struct sec_key victim = addr_key(1, "198.51.100.7");
    /* the victim uses up its whole burst of 1000, for a day */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_take(t, &victim, 86400 * SEC, 1000, T0), 0);
    uint32_t n = 0;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 1000; i++, n++) {
            struct sockaddr_in s = { .sin_family = AF_INET };
            s.sin_addr.s_addr = htonl(0x0a000000u + n);
            struct sec_key k;
            sec_key_addr(&k, 1, (struct sockaddr *)&s);
            rl_take(t, &k, SEC, 10, T0 + round * MS);
        }
    }
    assert_true(rl_live(t, T0 + 200 * MS) <= cap);
    /* flood buckets each hold one token of ten; the victim is far from
     * full, so it was never the one dropped */
    assert_true(rl_take(t, &victim, 86400 * SEC, 1000, T0 + 200 * MS) > 0);
    rl_free(t);
}

/* Extreme rules do not overflow (UBSan would stop the test). */
static void test_extremes(void **state)
{
    (void)state;
    struct rl_table *t = rl_new(64);
    struct sec_key k = addr_key(1, "192.0.2.1");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_take(t, &k, 86400 * SEC, 1000000, T0), 0);
    struct sec_key k3 = addr_key(3, "192.0.2.1");
    assert_int_equal(rl_take(t, &k3, 1000, 1000000, T0), 0);
    struct sec_key k2 = addr_key(2, "192.0.2.1");
    assert_int_equal(rl_take(t, &k2, 1000, 1, 0), 0);
    rl_free(t);
}

struct race {
    struct rl_table *t;
    struct sec_key k;
    int passed;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 5000; i++)
        if (rl_take(r->t, &r->k, SEC, 100, T0) == 0)
            __atomic_fetch_add(&r->passed, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Four threads on one bucket at one instant: exactly the burst passes. */
static void test_threads_share_buckets(void **state)
{
    (void)state;
    struct race r = { .t = rl_new(1024), .k = addr_key(3, "203.0.113.9") };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.passed, 100);
    rl_free(r.t);
}

/* IPv6 by /64, IPv4-mapped IPv6 as IPv4, v4 and v6 never equal. */
static void test_address_keys(void **state)
{
    (void)state;
    struct sec_key a, b, c, d;
    struct sockaddr_in6 x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::9");
    struct sockaddr_in6 z = v6("2001:db8:1:3::1");
    sec_key_addr(&a, 1, (struct sockaddr *)&x);
    sec_key_addr(&b, 1, (struct sockaddr *)&y);
    sec_key_addr(&c, 1, (struct sockaddr *)&z);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_not_equal(&a, &c, sizeof(a));
    struct sockaddr_in6 m = v6("::ffff:192.0.2.1");
    struct sockaddr_in p = v4("192.0.2.1");
    sec_key_addr(&a, 1, (struct sockaddr *)&m);
    sec_key_addr(&b, 1, (struct sockaddr *)&p);
    assert_memory_equal(&a, &b, sizeof(a));
    struct sockaddr_in6 zero = v6("::");
    struct sockaddr_in zero4 = v4("0.0.0.0");
    sec_key_addr(&c, 1, (struct sockaddr *)&zero);
    sec_key_addr(&d, 1, (struct sockaddr *)&zero4);
    assert_memory_not_equal(&c, &d, sizeof(c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_burst_one),
        cmocka_unit_test(test_keys_are_separate),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bounded_under_flood),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_threads_share_buckets),
        cmocka_unit_test(test_address_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
