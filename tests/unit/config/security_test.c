/* The "security" block, connections_per_address and rate_limits: values,
 * defaults, rule ids, and exact messages for mistakes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config/config.h"

static char err[512];

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err,
                                    sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s", err);
    return c;
}

static void expect_error(const char *yaml, const char *want)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err,
                                    sizeof(err));
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, but expected: %s", want);
    }
    assert_string_equal(err, want);
}

#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

static void test_security_defaults(void **state)
{
    (void)state;
    struct cfg *c = load(LISTENER);
    const struct cfg_security *s = &c->security;
    assert_null(s->user);
    assert_null(s->group);
    assert_null(s->chroot);
    assert_false(s->run_as_root);
    assert_true(s->sandbox);
    assert_int_equal(s->open_files, 0);
    assert_int_equal(s->max_connections, 0);
    assert_int_equal(s->rate_entries, 65536);
    assert_false(c->has_rates);
    assert_false(c->has_conn_limit);
    assert_int_equal(c->listeners[0].limits.conns_per_addr, 0);
    assert_int_equal(c->listeners[0].nrates, 0);
    cfg_unref(c);
}

static void test_security_values(void **state)
{
    (void)state;
    struct cfg *c = load("security:\n"
                         "  user: www-data\n"
                         "  group: \"33\"\n"
                         "  chroot: /var/empty\n"
                         "  sandbox: false\n"
                         "  open_files: 100000\n"
                         "  max_connections: 5000\n"
                         "  rate_limit_entries: 1MiB\n" LISTENER);
    const struct cfg_security *s = &c->security;
    assert_string_equal(s->user, "www-data");
    assert_string_equal(s->group, "33");
    assert_string_equal(s->chroot, "/var/empty");
    assert_false(s->sandbox);
    assert_int_equal(s->open_files, 100000);
    assert_int_equal(s->max_connections, 5000);
    assert_int_equal(s->rate_entries, 1 << 20);
    cfg_unref(c);
    c = load("security: { user: root, run_as_root: true, open_files: auto, "
             "max_connections: auto }\n" LISTENER);
    assert_string_equal(c->security.user, "root");
    assert_true(c->security.run_as_root);
    assert_int_equal(c->security.open_files, 0);
    cfg_unref(c);
}

static void test_security_errors(void **state)
{
    (void)state;
    expect_error("security: { user: root }\n" LISTENER,
                 "t.yaml:1:19: \"user\": running as root needs "
                 "\"run_as_root: true\" as well");
    expect_error("security: { user: \"a b\" }\n" LISTENER,
                 "t.yaml:1:19: \"user\": expected a user or group name "
                 "(letters, digits, '_', '-', '.') or a number");
    expect_error("security: { chroot: var/empty }\n" LISTENER,
                 "t.yaml:1:21: \"chroot\": must be an absolute path");
    expect_error("security: { max_connections: 0 }\n" LISTENER,
                 "t.yaml:1:30: \"max_connections\": expected auto or a number "
                 "1..1073741824");
    expect_error("security: { open_files: lots }\n" LISTENER,
                 "t.yaml:1:25: \"open_files\": expected auto or a number "
                 "64..1073741824");
    expect_error("security: { sandbox: maybe }\n" LISTENER,
                 "t.yaml:1:22: \"sandbox\": expected true or false");
    expect_error("security: { usr: x }\n" LISTENER,
                 "t.yaml:1:13: unknown key \"usr\" in security (expected one "
                 "of: user, group, run_as_root, chroot, sandbox, open_files, "
                 "max_connections, rate_limit_entries)");
}

#define RATED                                                                  \
    "upstreams: { was: { servers: [127.0.0.1:9001] } }\n"                      \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    limits: { connections_per_address: 16 }\n"                           \
    "    rate_limits:\n"                                                       \
    "      - { by: address, rate: 100/s, burst: 200 }\n"                       \
    "      - { by: user, rate: 10/m }\n"                                       \
    "    sites:\n"                                                             \
    "      - routes:\n"                                                        \
    "          - path: /login\n"                                               \
    "            upstream: was\n"                                              \
    "            rate_limits: [{ rate: 5/m, burst: 5 }, { by: route, rate: "   \
    "1000/h }]\n"                                                              \
    "          - { path: /, upstream: was }\n"

static void test_rates(void **state)
{
    (void)state;
    struct cfg *c = load(RATED);
    assert_true(c->has_rates);
    assert_true(c->has_conn_limit);
    const struct cfg_listener *l = &c->listeners[0];
    assert_int_equal(l->limits.conns_per_addr, 16);
    assert_int_equal(l->nrates, 2);
    assert_int_equal(l->rates[0].by, CFG_RATE_ADDRESS);
    assert_int_equal(l->rates[0].period_ns, 10000000);
    assert_int_equal(l->rates[0].burst, 200);
    assert_int_equal(l->rates[1].by, CFG_RATE_USER);
    assert_int_equal(l->rates[1].period_ns, 6000000000);
    assert_int_equal(l->rates[1].burst, 10); /* default: the count */
    const struct cfg_route *r = &l->sites[0].routes[0];
    assert_int_equal(r->nrates, 2);
    assert_int_equal(r->rates[0].by, CFG_RATE_ADDRESS); /* the default */
    assert_int_equal(r->rates[0].period_ns, 12000000000);
    assert_int_equal(r->rates[1].by, CFG_RATE_ROUTE);
    assert_int_equal(r->rates[1].period_ns, 3600000000);
    assert_int_equal(l->sites[0].routes[1].nrates, 0);
    /* every rule has its own id, and the same file gives the same ids */
    uint32_t ids[4] = { l->rates[0].id, l->rates[1].id, r->rates[0].id,
                        r->rates[1].id };
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_true(ids[i] != ids[j]);
    struct cfg *c2 = load(RATED);
    assert_int_equal(c2->listeners[0].rates[0].id, ids[0]);
    assert_int_equal(c2->listeners[0].sites[0].routes[0].rates[1].id, ids[3]);
    assert_int_equal(c2->listeners[0].id, l->id);
    cfg_unref(c2);
    cfg_unref(c);
}

#define RATE_LISTENER(rates)                                                   \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    rate_limits: " rates "\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

static void test_rate_errors(void **state)
{
    (void)state;
    expect_error(RATE_LISTENER("[{ rate: 10 }]"),
                 "t.yaml:3:27: \"rate\": expected a rate such as 10/s, 600/m "
                 "or 1000/h");
    expect_error(RATE_LISTENER("[{ rate: 10/w }]"),
                 "t.yaml:3:27: \"rate\": expected a rate such as 10/s, 600/m "
                 "or 1000/h");
    expect_error(RATE_LISTENER("[{ rate: 0/s }]"),
                 "t.yaml:3:27: \"rate\": the count must be 1..1000000 "
                 "(expected a rate such as 10/s, 600/m or 1000/h)");
    expect_error(RATE_LISTENER("[{ by: route, rate: 1/s }]"),
                 "t.yaml:3:25: \"by\": \"route\" is for a route's "
                 "rate_limits; a listener's rate limits go by address or "
                 "user");
    expect_error(RATE_LISTENER("[{ by: host, rate: 1/s }]"),
                 "t.yaml:3:25: \"by\": expected one of: address, route, user");
    expect_error(RATE_LISTENER("[{ burst: 5 }]"),
                 "t.yaml:3:19: missing \"rate\" in rate limit");
    expect_error(RATE_LISTENER("[{ rate: 1/s, burst: 0 }]"),
                 "t.yaml:3:39: \"burst\": expected a number 1..1000000");
    expect_error(RATE_LISTENER("{ rate: 1/s }"),
                 "t.yaml:3:18: \"rate_limits\": expected a list");
    expect_error(RATE_LISTENER("[{ rate: 1/s, per: ip }]"),
                 "t.yaml:3:32: unknown key \"per\" in rate limit (expected one "
                 "of: by, rate, burst)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_security_defaults),
        cmocka_unit_test(test_security_values),
        cmocka_unit_test(test_security_errors),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_rate_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
