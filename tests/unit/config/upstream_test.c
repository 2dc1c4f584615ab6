/*
 * The pool options of "upstreams" (issue 4): values read into the
 * snapshot, defaults, and one exact message per kind of mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"

#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, upstream: was }]\n"

static char err[512];

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err,
                                    sizeof(err));
    if (c == NULL)
        fail_msg("did not load: %s", err);
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

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load("upstreams:\n  was: { servers: [127.0.0.1:1] }\n" LISTENER);
    const struct cfg_upstream *u = &c->upstreams[0];
    assert_int_equal(u->balance, CFG_BAL_ROUND_ROBIN);
    assert_false(u->health.on);
    assert_false(u->passive.on);
    assert_null(u->sticky.cookie);
    assert_int_equal(u->retries.tries, 0);
    assert_int_equal(u->retries.budget_pct, 20);
    assert_int_equal(u->retries.budget_min, 10);
    assert_int_equal(u->queue, 0);
    assert_int_equal(u->slow_start, 0);
    assert_int_equal(u->servers[0].max_conns, 0);
    assert_false(u->servers[0].backup);
    assert_null(u->servers[0].host);
    assert_int_equal(u->health.interval, 2000);
    assert_int_equal(u->health.status_lo, 200);
    assert_int_equal(u->health.status_hi, 399);
    assert_int_equal(u->passive.eject, 10000);
    cfg_unref(c);
}

static void test_everything(void **state)
{
    (void)state;
    struct cfg *c = load(
        "upstreams:\n"
        "  was:\n"
        "    balance: hash\n"
        "    hash_key: cookie:JSESSIONID\n"
        "    max_conns: 50\n"
        "    servers:\n"
        "      - { address: 127.0.0.1:1, weight: 3, max_conns: 7 }\n"
        "      - 127.0.0.1:2\n"
        "      - { address: 127.0.0.1:3, backup: true }\n"
        "      - { address: localhost:4, resolve: true, max_addresses: 3 }\n"
        "    queue: { size: 100, timeout: 2s, retry_after: 5s }\n"
        "    slow_start: 30s\n"
        "    ewma_decay: 5s\n"
        "    health: { path: /health, status: 200-204, interval: 1s, "
        "timeout: 500ms, rise: 3, fall: 4, host: app.local }\n"
        "    passive: { failures: 5, window: 5s, eject: 2s, eject_max: 1m, "
        "status_5xx: false }\n"
        "    retries: { tries: 2, budget: 50%, budget_min: 3 }\n"
        "    sticky: { cookie: WAS, path: /app, max_age: 1h }\n"
        "    resolver: { servers: [127.0.0.1:5353], min_ttl: 2s, max_ttl: 10m }\n"
        LISTENER);
    const struct cfg_upstream *u = &c->upstreams[0];
    assert_int_equal(u->balance, CFG_BAL_HASH);
    assert_int_equal(u->hash_key, CFG_HK_COOKIE);
    assert_string_equal(u->hash_name, "JSESSIONID");
    assert_int_equal(u->nservers, 6); /* 3 + 3 slots */
    assert_int_equal(u->servers[0].max_conns, 7);
    assert_int_equal(u->servers[1].max_conns, 50); /* the pool's default */
    assert_true(u->servers[2].backup);
    for (int i = 3; i < 6; i++) {
        assert_string_equal(u->servers[i].host, "localhost");
        assert_int_equal(u->servers[i].port, 4);
        assert_int_equal(u->servers[i].slot, i - 3);
        assert_int_equal(u->servers[i].slot0, 3);
        assert_int_equal(u->servers[i].nslots, 3);
    }
    assert_int_equal(u->servers[3].addr.len, 0); /* not resolved at load */
    assert_string_equal(u->servers[3].addr.text, "localhost:4");
    assert_int_equal(u->queue, 100);
    assert_int_equal(u->queue_timeout, 2000);
    assert_int_equal(u->retry_after, 5000);
    assert_int_equal(u->slow_start, 30000);
    assert_int_equal(u->ewma_decay, 5000);
    assert_true(u->health.on && !u->health.tcp);
    assert_string_equal(u->health.path, "/health");
    assert_string_equal(u->health.host, "app.local");
    assert_int_equal(u->health.status_lo, 200);
    assert_int_equal(u->health.status_hi, 204);
    assert_int_equal(u->health.rise, 3);
    assert_int_equal(u->health.fall, 4);
    assert_true(u->passive.on && !u->passive.status_5xx);
    assert_int_equal(u->passive.failures, 5);
    assert_int_equal(u->passive.eject_max, 60000);
    assert_int_equal(u->retries.tries, 2);
    assert_int_equal(u->retries.budget_pct, 50);
    assert_int_equal(u->retries.budget_min, 3);
    assert_string_equal(u->sticky.cookie, "WAS");
    assert_string_equal(u->sticky.path, "/app");
    assert_int_equal(u->sticky.max_age, 3600000);
    assert_int_equal(u->resolve.nservers, 1);
    assert_int_equal(u->resolve.min_ttl, 2000);
    cfg_unref(c);

    c = load("upstreams:\n  was: { servers: [127.0.0.1:1], health: true, "
             "passive: true, sticky: true, balance: ewma }\n" LISTENER);
    u = &c->upstreams[0];
    assert_true(u->health.on && u->passive.on);
    assert_string_equal(u->health.path, "/");
    assert_string_equal(u->sticky.cookie, "GH_SRV");
    assert_int_equal(u->balance, CFG_BAL_EWMA);
    cfg_unref(c);
    c = load("upstreams:\n  was: { servers: [127.0.0.1:1], health: { type: tcp }, "
             "sticky: false }\n" LISTENER);
    assert_true(c->upstreams[0].health.tcp);
    assert_null(c->upstreams[0].sticky.cookie);
    cfg_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], hash_key: uri }\n"
                 LISTENER,
                 "t.yaml:2:34: \"hash_key\" is used only with balance: hash");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], balance: hash, "
                 "hash_key: header }\n" LISTENER,
                 "t.yaml:2:59: \"hash_key\": expected client, uri, "
                 "header:<name> or cookie:<name>");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], balance: hash, "
                 "hash_key: \"cookie:a b\" }\n" LISTENER,
                 "t.yaml:2:59: \"hash_key\": \"a b\" is not a valid cookie name");
    expect_error("upstreams:\n  was: { servers: [{ address: 127.0.0.1:1, "
                 "backup: true }] }\n" LISTENER,
                 "t.yaml:2:3: every server of upstream \"was\" is a backup (at "
                 "least one must not be)");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], queue: { size: 5 } }\n"
                 LISTENER,
                 "t.yaml:2:34: a queue needs max_conns on the servers (nothing "
                 "would ever wait)");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], health: { status: "
                 "300-200 } }\n" LISTENER,
                 "t.yaml:2:52: \"status\": expected a status such as 200 or a "
                 "range such as 200-399 (100..599)");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], health: { interval: "
                 "1s, timeout: 2s } }\n" LISTENER,
                 "t.yaml:2:42: health \"timeout\" must not be longer than its "
                 "\"interval\"");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], health: { type: tcp, "
                 "path: /x } }\n" LISTENER,
                 "t.yaml:2:42: a tcp health check has no path, host or status");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], health: { path: x } }\n"
                 LISTENER,
                 "t.yaml:2:50: \"path\": must start with /");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], health: maybe }\n"
                 LISTENER,
                 "t.yaml:2:42: \"health\": expected true, false or a mapping");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], passive: { eject: "
                 "1m, eject_max: 1s } }\n" LISTENER,
                 "t.yaml:2:43: passive \"eject_max\" must not be shorter than "
                 "\"eject\"");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], retries: { budget: "
                 "20 } }\n" LISTENER,
                 "t.yaml:2:53: \"budget\": expected a percentage such as 20%");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], retries: { budget: "
                 "101% } }\n" LISTENER,
                 "t.yaml:2:53: \"budget\": expected a percentage such as 20%");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], sticky: { cookie: "
                 "\"a;b\" } }\n" LISTENER,
                 "t.yaml:2:52: \"cookie\": \"a;b\" is not a valid cookie name");
    expect_error("upstreams:\n  was: { servers: [{ address: 127.0.0.1:1, resolve: "
                 "true }] }\n" LISTENER,
                 "t.yaml:2:31: \"address\": resolve: true needs a host name, not "
                 "an address");
    expect_error("upstreams:\n  was: { servers: [{ address: app.test, resolve: "
                 "true }] }\n" LISTENER,
                 "t.yaml:2:31: \"address\": resolve: true needs a host name and "
                 "a port, such as app.internal:8080");
    expect_error("upstreams:\n  was: { servers: [{ address: \"[::1]:80\", "
                 "resolve: true }] }\n" LISTENER,
                 "t.yaml:2:31: \"address\": resolve: true needs a host name, not "
                 "an address");
    expect_error("upstreams:\n  was: { servers: [{ address: 127.0.0.1:1, "
                 "max_addresses: 2 }] }\n" LISTENER,
                 "t.yaml:2:44: \"max_addresses\" needs resolve: true");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], resolver: { "
                 "min_ttl: 1s } }\n" LISTENER,
                 "t.yaml:2:34: \"resolver\" is used only by servers with "
                 "resolve: true");
    expect_error("upstreams:\n  was: { servers: [{ address: localhost:1, resolve: "
                 "true, max_addresses: 64 }, 127.0.0.1:2] }\n" LISTENER,
                 "t.yaml:2:80: upstream \"was\" has more than 64 servers "
                 "(counting max_addresses of each resolved name)");
    expect_error("upstreams:\n  was: { servers: [127.0.0.1:1], queue: { size: 1, "
                 "wait: 1s } }\n" LISTENER,
                 "t.yaml:2:52: unknown key \"wait\" in queue (expected one of: "
                 "size, timeout, retry_after)");
    /* 65 plain servers */
    char yaml[4096];
    size_t off = (size_t)snprintf(yaml, sizeof(yaml), "upstreams:\n  was:\n    servers:\n");
    for (int i = 1; i <= 65; i++)
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
                                "      - 127.0.0.1:%d\n", i);
    snprintf(yaml + off, sizeof(yaml) - off, "%s", LISTENER);
    expect_error(yaml, "t.yaml:68:9: upstream \"was\" has more than 64 servers "
                       "(counting max_addresses of each resolved name)");
}

/* sticky: learn / by: source (issue 9, the stick table) */
static void test_sticky_table(void **state)
{
    (void)state;
    struct cfg *c = load("upstreams:\n  was: { servers: [127.0.0.1:1], "
                         "sticky: { learn: JSESSIONID } }\n" LISTENER);
    const struct cfg_sticky *k = &c->upstreams[0].sticky;
    assert_int_equal(k->by, CFG_STICK_LEARN);
    assert_string_equal(k->learn, "JSESSIONID");
    assert_null(k->cookie); /* no proxy cookie */
    assert_int_equal(k->expire, 30 * 60 * 1000);
    assert_int_equal(k->size, 100000);
    cfg_unref(c);
    c = load("upstreams:\n  was: { servers: [127.0.0.1:1], "
             "sticky: { by: source, expire: 10m, size: 500 } }\n" LISTENER);
    k = &c->upstreams[0].sticky;
    assert_int_equal(k->by, CFG_STICK_SOURCE);
    assert_null(k->cookie);
    assert_null(k->learn);
    assert_int_equal(k->expire, 600000);
    assert_int_equal(k->size, 500);
    cfg_unref(c);
    c = load("upstreams:\n  was: { servers: [127.0.0.1:1], "
             "sticky: { by: cookie } }\n" LISTENER);
    assert_string_equal(c->upstreams[0].sticky.cookie, "GH_SRV");
    cfg_unref(c);

#define UP "upstreams:\n  was: { servers: [127.0.0.1:1], sticky: "
    expect_error(UP "{ learn: JSESSIONID, cookie: GH_SRV } }\n" LISTENER,
                 "t.yaml:2:42: sticky \"learn\" uses no proxy cookie: \"cookie\", "
                 "\"path\" and \"max_age\" do not apply");
    expect_error(UP "{ learn: JSESSIONID, by: source } }\n" LISTENER,
                 "t.yaml:2:67: sticky \"by\" cannot be combined with \"learn\" "
                 "(learn is by the application's cookie)");
    expect_error(UP "{ by: source, max_age: 1h } }\n" LISTENER,
                 "t.yaml:2:42: sticky \"by: source\" uses no proxy cookie: "
                 "\"cookie\", \"path\" and \"max_age\" do not apply");
    expect_error(UP "{ cookie: X, expire: 1h } }\n" LISTENER,
                 "t.yaml:2:42: sticky \"expire\" and \"size\" are for the table "
                 "(\"learn\" or \"by: source\"), not the proxy cookie");
    expect_error(UP "{ by: address } }\n" LISTENER,
                 "t.yaml:2:48: \"by\": expected one of: cookie, source");
    expect_error(UP "{ learn: \"a b\" } }\n" LISTENER,
                 "t.yaml:2:51: \"learn\": \"a b\" is not a valid cookie name");
    expect_error(UP "{ by: source, size: 0 } }\n" LISTENER,
                 "t.yaml:2:62: \"size\": expected a number 1..10000000");
    expect_error(UP "{ by: source, expire: 10ms } }\n" LISTENER,
                 "t.yaml:2:64: \"expire\": must be 1s..30d");
#undef UP
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_everything),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sticky_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
