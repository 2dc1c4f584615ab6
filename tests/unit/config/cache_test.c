/*
 * The "cache" section and route "cache" keys: defaults, derived values
 * (max_object, the purge allow list), policies, and the purge address
 * check. Error messages are in the integration tests (test_cache_config.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "config/config.h"

#define MIB ((uint64_t)1024 * 1024)

static char err[512];

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s", err);
    return c;
}

#define ROUTES(cache)                                                          \
    "upstreams: { o: { servers: [127.0.0.1:9] } }\n"                           \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes:\n"                                                        \
    "          - { path: /a/, upstream: o, cache: " cache " }\n"               \
    "          - { path: /, upstream: o }\n"

static void test_no_cache(void **state)
{
    (void)state;
    struct cfg *c = load(ROUTES("false"));
    assert_false(c->cache.enabled);
    assert_null(c->listeners[0].sites[0].routes[0].cache);
    cfg_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load(ROUTES("true"));
    const struct cfg_cache *cc = &c->cache;
    assert_true(cc->enabled);
    assert_int_equal(cc->memory, 256 * MIB);
    assert_int_equal(cc->max_object, 8 * MIB);
    assert_null(cc->disk_path);
    assert_int_equal(cc->heuristic_pct, 10);
    assert_int_equal(cc->heuristic_max, 86400000);
    assert_int_equal(cc->npurge_allow, 2);
    const struct cfg_cache_policy *p = c->listeners[0].sites[0].routes[0].cache;
    assert_non_null(p);
    assert_true(p->collapse);
    assert_int_equal(p->swr, 0);
    assert_int_equal(p->sie, 0);
    assert_null(c->listeners[0].sites[0].routes[1].cache);
    cfg_unref(c);
}

static void test_section(void **state)
{
    (void)state;
    struct cfg *c = load("cache:\n"
                         "  memory: 64MiB\n"
                         "  disk: { path: /var/cache/g, size: 2GiB, sync: true }\n"
                         "  heuristic: 20\n"
                         "  heuristic_max: 2h\n"
                         "  purge: { allow: [10.0.0.0/8, 192.168.1.7, '2001:db8::/32'] }\n"
                         ROUTES("{ collapse: false, stale_while_revalidate: 5s, "
                                "stale_if_error: 1h }"));
    const struct cfg_cache *cc = &c->cache;
    assert_int_equal(cc->memory, 64 * MIB);
    assert_int_equal(cc->max_object, 2 * MIB); /* memory/32 */
    assert_string_equal(cc->disk_path, "/var/cache/g");
    assert_int_equal(cc->disk_size, 2048 * MIB);
    assert_true(cc->disk_sync);
    assert_int_equal(cc->heuristic_pct, 20);
    assert_int_equal(cc->heuristic_max, 7200000);
    const struct cfg_cache_policy *p = c->listeners[0].sites[0].routes[0].cache;
    assert_false(p->collapse);
    assert_int_equal(p->swr, 5000);
    assert_int_equal(p->sie, 3600000);

    struct sockaddr_in a4 = { .sin_family = AF_INET };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET, "10.200.3.4", &a4.sin_addr);
    assert_true(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "192.168.1.7", &a4.sin_addr);
    assert_true(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "192.168.1.8", &a4.sin_addr);
    assert_false(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr); /* the default is replaced */
    assert_false(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a4));
    inet_pton(AF_INET6, "2001:db8:1::1", &a6.sin6_addr);
    assert_true(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &a6.sin6_addr); /* v4-mapped */
    assert_true(cfg_cache_purge_allowed(cc, (struct sockaddr *)&a6));
    cfg_unref(c);
}

static void test_default_allow_is_loopback(void **state)
{
    (void)state;
    struct cfg *c = load("cache: { memory: 16MiB }\n" ROUTES("true"));
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET, "127.9.9.9", &a4.sin_addr);
    assert_true(cfg_cache_purge_allowed(&c->cache, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "10.0.0.1", &a4.sin_addr);
    assert_false(cfg_cache_purge_allowed(&c->cache, (struct sockaddr *)&a4));
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    assert_true(cfg_cache_purge_allowed(&c->cache, (struct sockaddr *)&a6));
    assert_int_equal(c->cache.max_object, MIB / 2); /* 16MiB / 32 */
    cfg_unref(c);
}

static void test_forward_cache(void **state)
{
    (void)state;
    static const char off[] = "listeners:\n"
                              "  - listen: 127.0.0.1:3128\n"
                              "    forward: {}\n";
    struct cfg *c = load(off);
    assert_false(c->cache.enabled);
    assert_null(c->listeners[0].forward->cache);
    cfg_unref(c);
    static const char on[] = "listeners:\n"
                             "  - listen: 127.0.0.1:3128\n"
                             "    forward:\n"
                             "      cache: { collapse: false, stale_if_error: 1m }\n";
    c = load(on);
    assert_true(c->cache.enabled);
    const struct cfg_cache_policy *p = c->listeners[0].forward->cache;
    assert_non_null(p);
    assert_false(p->collapse);
    assert_int_equal(p->sie, 60000);
    assert_int_equal(p->swr, 0);
    cfg_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_cache),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_section),
        cmocka_unit_test(test_default_allow_is_loopback),
        cmocka_unit_test(test_forward_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
