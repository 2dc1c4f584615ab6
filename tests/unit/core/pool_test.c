/* Arenas and I/O buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/buf.h"
#include "core/pool.h"

static int cleaned;

static void cleanup(void *arg)
{
    cleaned += *(int *)arg;
}

static void test_pool_alloc_align_and_big(void **state)
{
    (void)state;
    struct pool *p = pool_new(0);
    assert_non_null(p);
    for (int i = 1; i < 2000; i++) {
        char *m = pool_alloc(p, (size_t)(i % 97) + 1);
        assert_non_null(m);
        assert_int_equal((uintptr_t)m % 16, 0);
        memset(m, 'x', (size_t)(i % 97) + 1);
    }
    char *big = pool_alloc(p, 100000); /* its own block */
    assert_non_null(big);
    memset(big, 1, 100000);
    char *s = pool_strndup(p, "hello world", 5);
    assert_string_equal(s, "hello");
    char *z = pool_calloc(p, 64);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    pool_free(p);
}

static void test_pool_cleanups_newest_first(void **state)
{
    (void)state;
    struct pool *p = pool_new(128);
    static int one = 1, ten = 10;
    cleaned = 0;
    assert_int_equal(pool_on_destroy(p, cleanup, &one), 0);
    assert_int_equal(pool_on_destroy(p, cleanup, &ten), 0);
    pool_free(p);
    assert_int_equal(cleaned, 11);
    pool_thread_cleanup();
}

static void test_buf_cycle(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_get(&b), 0);
    assert_int_equal(b.cap, BUF_SIZE);
    memcpy(buf_tail(&b), "abcdef", 6);
    b.end += 6;
    buf_consume(&b, 2);
    assert_int_equal(buf_len(&b), 4);
    buf_compact(&b);
    assert_int_equal(b.start, 0);
    assert_memory_equal(buf_head(&b), "cdef", 4);
    assert_int_equal(buf_grow(&b, BUF_SIZE * 2), 0);
    assert_int_equal(b.cap, BUF_SIZE * 2);
    assert_memory_equal(buf_head(&b), "cdef", 4);
    buf_consume(&b, 4);
    assert_int_equal(buf_len(&b), 0);
    buf_release_if_empty(&b);
    assert_null(b.data);
    buf_thread_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_alloc_align_and_big),
        cmocka_unit_test(test_pool_cleanups_newest_first),
        cmocka_unit_test(test_buf_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
