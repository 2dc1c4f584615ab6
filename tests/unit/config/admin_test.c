/* The admin section, address blocks (CIDR) and the proxy_protocol keys of
 * listeners and upstreams (issue 8): defaults, values, and the messages for
 * mistakes (file:line:col). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "config/config.h"

static char err[512];

#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s", err);
    return c;
}

static void expect_error(const char *yaml, const char *want)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, but expected: %s", want);
    }
    assert_string_equal(err, want);
}

static bool match(const struct cfg_admin *a, const char *ip)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u;
    memset(&u, 0, sizeof(u));
    if (inet_pton(AF_INET, ip, &u.in.sin_addr) == 1)
        u.in.sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &u.in6.sin6_addr) == 1)
        u.in6.sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", ip);
    return cfg_cidr_match(a->allow, a->nallow, &u.sa);
}

static void test_absent_is_off(void **state)
{
    (void)state;
    struct cfg *c = load(LISTENER);
    assert_false(c->admin.enabled);
    assert_false(c->listeners[0].proxy_protocol);
    cfg_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load("admin: {}\n" LISTENER);
    assert_true(c->admin.enabled);
    assert_string_equal(c->admin.addr.text, "127.0.0.1:9090");
    assert_false(c->admin.proxy_protocol);
    assert_true(match(&c->admin, "127.0.0.1"));
    assert_true(match(&c->admin, "127.200.1.1"));
    assert_true(match(&c->admin, "::1"));
    assert_true(match(&c->admin, "::ffff:127.0.0.1")); /* v4-mapped */
    assert_false(match(&c->admin, "10.0.0.1"));
    assert_false(match(&c->admin, "::2"));
    cfg_unref(c);
}

static void test_allow_list(void **state)
{
    (void)state;
    struct cfg *c = load("admin:\n  listen: 127.0.0.1:9191\n"
                         "  allow: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\", "
                         "172.16.0.0/12, 0.0.0.0/0]\n"
                         "  proxy_protocol: true\n" LISTENER);
    assert_string_equal(c->admin.addr.text, "127.0.0.1:9191");
    assert_true(c->admin.proxy_protocol);
    assert_int_equal(c->admin.nallow, 5);
    assert_true(match(&c->admin, "10.255.0.1"));
    assert_true(match(&c->admin, "2001:db8:1::1"));
    assert_false(match(&c->admin, "2001:db9::1"));
    assert_true(match(&c->admin, "8.8.8.8")); /* 0.0.0.0/0 */
    cfg_unref(c);
    c = load("admin:\n  allow: [172.16.0.0/12]\n" LISTENER);
    assert_true(match(&c->admin, "172.31.255.255"));
    assert_false(match(&c->admin, "172.32.0.0"));
    assert_false(match(&c->admin, "127.0.0.1")); /* the list replaces loopback */
    cfg_unref(c);
}

static void test_cidr_parse(void **state)
{
    (void)state;
    struct cfg_cidr x;
    assert_int_equal(cfg_parse_cidr(STR_LIT("10.0.0.0/8"), &x), 0);
    assert_int_equal(x.bits, 8);
    assert_int_equal(cfg_parse_cidr(STR_LIT("[::1]"), &x), 0);
    assert_int_equal(x.bits, 128);
    assert_int_equal(cfg_parse_cidr(STR_LIT("[2001:db8::]/32"), &x), 0);
    static const char *const bad[] = { "10.1.0.0/8", "10.0.0.0/33", "10.0.0.0/",
                                       "10.0.0.0/08x", "::1/129", "host", "",
                                       "1.2.3.4/-1", "/8", "10.0.0.256" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cfg_parse_cidr(str_cstr(bad[i]), &x) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
}

static void test_proxy_protocol_keys(void **state)
{
    (void)state;
    struct cfg *c = load("upstreams:\n  a: { servers: [127.0.0.1:1], proxy_protocol: v2 }\n"
                         "  b: { servers: [127.0.0.1:2], proxy_protocol: v1 }\n"
                         "  c: { servers: [127.0.0.1:3] }\n"
                         "listeners:\n  - listen: 127.0.0.1:8080\n"
                         "    proxy_protocol: true\n"
                         "    sites: [{ routes: [{ path: /, upstream: a }] }]\n");
    assert_int_equal(c->upstreams[0].proxy_protocol, 2);
    assert_int_equal(c->upstreams[1].proxy_protocol, 1);
    assert_int_equal(c->upstreams[2].proxy_protocol, 0);
    assert_true(c->listeners[0].proxy_protocol);
    cfg_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("admin:\n  allow: [10.1.0.0/8]\n" LISTENER,
                 "t.yaml:2:11: \"allow\": expected an address or an address block "
                 "such as 10.0.0.0/8 or ::1/128 (host bits zero)");
    expect_error("admin:\n  allow: 10.0.0.0/8\n" LISTENER,
                 "t.yaml:2:10: \"allow\": expected a list");
    expect_error("admin:\n  listn: 127.0.0.1:1\n" LISTENER,
                 "t.yaml:2:3: unknown key \"listn\" in admin (expected one of: "
                 "listen, allow, proxy_protocol)");
    expect_error("admin: { listen: 127.0.0.1:8080 }\n" LISTENER,
                 "t.yaml:1:18: admin address 127.0.0.1:8080 is also a listener's");
    expect_error("upstreams:\n  a: { servers: [127.0.0.1:1], proxy_protocol: v3 }\n" LISTENER,
                 "t.yaml:2:48: \"proxy_protocol\": expected one of: off, v1, v2");
    expect_error("listeners:\n  - listen: 127.0.0.1:8080\n    proxy_protocol: yes\n"
                 "    sites:\n      - routes: [{ path: /, return: { status: 204 } }]\n",
                 "t.yaml:3:21: \"proxy_protocol\": expected true or false");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_is_off),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_proxy_protocol_keys),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
