/* Connection limits: the process-wide ceiling and counts per address. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "security/security.h"

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in s = { .sin_family = AF_INET };
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return s;
}

static void test_ceiling(void **state)
{
    (void)state;
    struct connlimit cl;
    assert_int_equal(connlimit_init(&cl, 3, false), 0);
    assert_null(cl.addrs);
    for (int i = 0; i < 3; i++)
        assert_true(connlimit_reserve(&cl));
    assert_true(connlimit_full(&cl));
    assert_false(connlimit_reserve(&cl));
    connlimit_release(&cl);
    assert_false(connlimit_full(&cl));
    assert_true(connlimit_reserve(&cl));
    assert_false(connlimit_reserve(&cl));
    connlimit_fini(&cl);
}

struct race {
    struct connlimit *cl;
    int got;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 10000; i++)
        if (connlimit_reserve(r->cl))
            __atomic_fetch_add(&r->got, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* However many workers race for the last places, the ceiling holds. */
static void test_ceiling_threads(void **state)
{
    (void)state;
    struct connlimit cl;
    assert_int_equal(connlimit_init(&cl, 1000, false), 0);
    struct race r = { .cl = &cl };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.got, 1000);
    assert_int_equal(atomic_load(&cl.open), 1000);
    connlimit_fini(&cl);
}

static void test_per_address(void **state)
{
    (void)state;
    struct connlimit cl;
    assert_int_equal(connlimit_init(&cl, 100, true), 0);
    assert_non_null(cl.addrs);
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
    int h[3];
    for (int i = 0; i < 3; i++) {
        h[i] = connlimit_addr_get(&cl, 9, (struct sockaddr *)&a, 3);
        assert_true(h[i] >= 0);
    }
    assert_int_equal(connlimit_addr_get(&cl, 9, (struct sockaddr *)&a, 3), -EMFILE);
    assert_int_equal(connlimit_addr_count(&cl, 9, (struct sockaddr *)&a), 3);
    /* another address, and the same address on another listener */
    assert_true(connlimit_addr_get(&cl, 9, (struct sockaddr *)&b, 3) >= 0);
    int other = connlimit_addr_get(&cl, 10, (struct sockaddr *)&a, 3);
    assert_true(other >= 0);
    connlimit_addr_put(&cl, h[1]);
    assert_int_equal(connlimit_addr_count(&cl, 9, (struct sockaddr *)&a), 2);
    h[1] = connlimit_addr_get(&cl, 9, (struct sockaddr *)&a, 3);
    assert_true(h[1] >= 0);
    for (int i = 0; i < 3; i++)
        connlimit_addr_put(&cl, h[i]);
    assert_int_equal(connlimit_addr_count(&cl, 9, (struct sockaddr *)&a), 0);
    connlimit_addr_put(&cl, other);
    connlimit_fini(&cl);
}

/* Slots are given back: many addresses coming and going fit a table sized
 * for 100 connections, as long as no more than 100 are open at once. */
static void test_slots_recycled(void **state)
{
    (void)state;
    struct connlimit cl;
    assert_int_equal(connlimit_init(&cl, 100, true), 0);
    int h[50];
    for (uint32_t round = 0; round < 200; round++) {
        for (int i = 0; i < 50; i++) {
            struct sockaddr_in s = { .sin_family = AF_INET };
            s.sin_addr.s_addr = htonl(0x0a000000u + round * 50 + (uint32_t)i);
            h[i] = connlimit_addr_get(&cl, 1, (struct sockaddr *)&s, 1);
            assert_true(h[i] >= 0);
        }
        for (int i = 0; i < 50; i++)
            connlimit_addr_put(&cl, h[i]);
    }
    connlimit_fini(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling),
        cmocka_unit_test(test_ceiling_threads),
        cmocka_unit_test(test_per_address),
        cmocka_unit_test(test_slots_recycled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
