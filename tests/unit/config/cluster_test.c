/*
 * The "cluster" section (issue 9): defaults, both spellings of redis, and
 * a precise file:line:col message for each mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config/config.h"

#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

static char err[512];

static struct cfg *load(const char *yaml)
{
    return cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
}

static void expect_error(const char *yaml, const char *want)
{
    struct cfg *c = load(yaml);
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, but expected: %s", want);
    }
    assert_string_equal(err, want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load(LISTENER);
    assert_non_null(c);
    assert_false(c->cluster.redis.enabled);
    assert_int_equal(c->cluster.drain_delay, 0);
    assert_string_equal(c->cluster.redis.prefix, "gh:");
    assert_int_equal(c->cluster.redis.timeout, 200);
    assert_int_equal(c->cluster.redis.reconnect_max, 5000);
    cfg_unref(c);
}

static void test_short_and_long_forms(void **state)
{
    (void)state;
    struct cfg *c = load("cluster:\n  drain_delay: 3s\n  redis: 10.77.2.50:6379\n" LISTENER);
    assert_non_null(c);
    assert_true(c->cluster.redis.enabled);
    assert_string_equal(c->cluster.redis.addr.text, "10.77.2.50:6379");
    assert_int_equal(c->cluster.drain_delay, 3000);
    assert_null(c->cluster.redis.password);
    cfg_unref(c);
    c = load("cluster:\n"
             "  redis:\n"
             "    address: 127.0.0.1:6380\n"
             "    password: s3cret\n"
             "    prefix: \"edge1:\"\n"
             "    timeout: 50ms\n"
             "    reconnect_max: 2s\n" LISTENER);
    assert_non_null(c);
    assert_true(c->cluster.redis.enabled);
    assert_string_equal(c->cluster.redis.password, "s3cret");
    assert_string_equal(c->cluster.redis.prefix, "edge1:");
    assert_int_equal(c->cluster.redis.timeout, 50);
    assert_int_equal(c->cluster.redis.reconnect_max, 2000);
    cfg_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("cluster:\n  redis: nowhere\n" LISTENER,
                 "t.yaml:2:10: \"redis\": expected an address such as "
                 "127.0.0.1:8080, [::1]:8080 or *:8080");
    expect_error("cluster:\n  redis: { password: x }\n" LISTENER,
                 "t.yaml:2:10: missing \"address\" in redis");
    expect_error("cluster:\n  redis: { address: 127.0.0.1:6379, prefix: \"a b\" }\n" LISTENER,
                 "t.yaml:2:45: \"prefix\": must be printable ASCII without spaces");
    expect_error("cluster:\n  redis: { address: 127.0.0.1:6379, timeout: 10s, "
                 "reconnect_max: 1s }\n" LISTENER,
                 "t.yaml:2:10: \"redis\": timeout must not exceed reconnect_max");
    expect_error("cluster:\n  drain_delay: forever\n" LISTENER,
                 "t.yaml:2:16: \"drain_delay\": expected a duration such as 30s "
                 "or 500ms");
    expect_error("cluster:\n  sticky: yes\n" LISTENER,
                 "t.yaml:2:3: unknown key \"sticky\" in cluster (expected one "
                 "of: redis, drain_delay)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_short_and_long_forms),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
