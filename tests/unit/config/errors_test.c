/*
 * Every kind of configuration mistake gives one exact message, naming the
 * file:line:col of the offending node. Failing loads are run under ASan/LSan
 * too: whatever was built before the error must be freed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config/config.h"

static char err[512];

static void expect_error(const char *yaml, const char *want)
{
    memset(err, 'x', sizeof(err));
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err,
                                    sizeof(err));
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, but expected: %s", want);
    }
    assert_string_equal(err, want);
}

/* A minimal valid tail: one listener, one site, one route. */
#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

static void test_err_yaml(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - listen: [127.0.0.1:8080\n"
                 "    sites: []\n",
                 "t.yaml:3:10: did not find expected ',' or ']' (while "
                 "parsing a flow sequence at 2:13)");
    expect_error("log:\n"
                 "  access: stdout\n"
                 " format: json\n",
                 "t.yaml:3:2: did not find expected key (while parsing a "
                 "block mapping at 1:1)");
    expect_error("log:\n\taccess: stdout\n",
                 "t.yaml:2:1: found character that cannot start any token "
                 "(while scanning for the next token at 2:1)");
    expect_error("via_name: \"\xff\"\n",
                 "t.yaml:1:12: invalid leading UTF-8 octet");
    expect_error("base: &b { x: 1 }\n",
                 "t.yaml:1:7: anchors (&b) are not supported");
    expect_error("a: 1\nb: *b\n",
                 "t.yaml:2:4: aliases (*b) are not supported");
    expect_error("workers: !!int 4\n",
                 "t.yaml:1:10: tag \"tag:yaml.org,2002:int\" is not "
                 "supported on a scalar (only !!str is)");
    expect_error("log: !custom { access: off }\n",
                 "t.yaml:1:6: tag \"!custom\" is not supported on a mapping "
                 "(only !!str is)");
    expect_error("workers: 1\nlog: {}\nworkers: 2\n",
                 "t.yaml:3:1: duplicate key \"workers\" (first at 1:1)");
    expect_error("? [a, b]\n: 1\n",
                 "t.yaml:1:3: a mapping key must be a plain string, not a "
                 "sequence");
    expect_error("workers: 1\n---\nworkers: 2\n",
                 "t.yaml:2:1: only one YAML document is allowed");
}

static void test_err_top(void **state)
{
    (void)state;
    expect_error("", "t.yaml:1:1: the configuration is empty (it needs at "
                     "least \"listeners\")");
    expect_error("# nothing\n", "t.yaml:1:1: the configuration is empty (it "
                                "needs at least \"listeners\")");
    expect_error("- a\n- b\n", "t.yaml:1:1: the configuration must be a "
                               "mapping of keys such as listeners and "
                               "upstreams");
    expect_error("workers: 2\n",
                 "t.yaml:1:1: no \"listeners\": nothing to serve");
    expect_error("workers: 1\nlisteners: []\n",
                 "t.yaml:2:12: \"listeners\": must list at least one "
                 "listener");
    expect_error("listener:\n",
                 "t.yaml:1:1: unknown key \"listener\" in the configuration "
                 "(expected one of: workers, pid_file, via_name, "
                 "graceful_timeout, log, upstreams, listeners, admin, cluster, "
                 "cache, security, dns)");
    expect_error("workers: 257\n" LISTENER,
                 "t.yaml:1:10: \"workers\": expected auto or a number "
                 "1..256");
    expect_error("workers: many\n" LISTENER,
                 "t.yaml:1:10: \"workers\": expected auto or a number "
                 "1..256");
    expect_error("workers: [1]\n" LISTENER,
                 "t.yaml:1:10: \"workers\": expected auto or a number "
                 "1..256");
    expect_error("via_name: my proxy\n" LISTENER,
                 "t.yaml:1:11: \"via_name\": must be a single token (letters, "
                 "digits and !#$%&'*+-.^_`|~)");
    expect_error("graceful_timeout: 2d\n" LISTENER,
                 "t.yaml:1:19: \"graceful_timeout\": must be 0ms..1d");
    expect_error("pid_file: \"\"\n" LISTENER,
                 "t.yaml:1:11: \"pid_file\": must not be empty");
    expect_error("listeners: [127.0.0.1:8080]\n",
                 "t.yaml:1:13: each listener must be a mapping");
}

static void test_err_log(void **state)
{
    (void)state;
    expect_error("log: stdout\n" LISTENER,
                 "t.yaml:1:6: \"log\": expected a mapping");
    expect_error("log:\n  format: text\n" LISTENER,
                 "t.yaml:2:11: \"format\": expected one of: combined, json");
    expect_error("log: { level: verbose }\n" LISTENER,
                 "t.yaml:1:15: \"level\": expected one of: error, warn, "
                 "info, debug");
    expect_error("log: { error: stdout }\n" LISTENER,
                 "t.yaml:1:15: \"error\": expected stderr or a file path");
    expect_error("log: { acess: stdout }\n" LISTENER,
                 "t.yaml:1:8: unknown key \"acess\" in log (expected one of: "
                 "access, format, error, level)");
}

static void test_err_upstreams(void **state)
{
    (void)state;
    expect_error("upstreams:\n"
                 "  was:\n"
                 "    servers: [127.0.0.1:9001]\n"
                 "    connect_timeout: soon\n" LISTENER,
                 "t.yaml:4:22: \"connect_timeout\": expected a duration such "
                 "as 30s or 500ms");
    expect_error("upstreams:\n"
                 "  was:\n"
                 "    servers: [127.0.0.1:9001]\n"
                 "    read_timeout: 0s\n" LISTENER,
                 "t.yaml:4:19: \"read_timeout\": must be 1ms..1d");
    expect_error("upstreams:\n"
                 "  was:\n"
                 "    servers:\n"
                 "      - { address: 127.0.0.1:9001, weight: 1001 }\n" LISTENER,
                 "t.yaml:4:44: \"weight\": expected a number 1..1000");
    expect_error("upstreams:\n"
                 "  was:\n"
                 "    servers:\n"
                 "      - { address: 127.0.0.1:9001, weight: 0 }\n" LISTENER,
                 "t.yaml:4:44: \"weight\": expected a number 1..1000");
    expect_error("upstreams:\n"
                 "  was: { servers: [{ weight: 2 }] }\n" LISTENER,
                 "t.yaml:2:20: missing \"address\" in server");
    expect_error("upstreams:\n"
                 "  was: { servers: [127.0.0.1:9001, 127.0.0.1:9001] }\n"
                 LISTENER,
                 "t.yaml:2:36: server 127.0.0.1:9001 is listed twice in "
                 "upstream \"was\" (use weight)");
    expect_error("upstreams:\n"
                 "  was: { servers: [] }\n" LISTENER,
                 "t.yaml:2:3: upstream \"was\" has no servers");
    expect_error("upstreams:\n"
                 "  was: { balance: round_robin }\n" LISTENER,
                 "t.yaml:2:3: upstream \"was\" has no servers");
    expect_error("upstreams:\n"
                 "  was: { servers: 127.0.0.1:9001 }\n" LISTENER,
                 "t.yaml:2:19: \"servers\": expected a list");
    expect_error("upstreams:\n"
                 "  was: { servers: [127.0.0.1:99999] }\n" LISTENER,
                 "t.yaml:2:20: port must be 1..65535");
    expect_error("upstreams:\n"
                 "  was: { servers: [[1]] }\n" LISTENER,
                 "t.yaml:2:20: expected an address, or a mapping with "
                 "address and weight");
    expect_error("upstreams:\n"
                 "  was: { servers: [127.0.0.1:1], balance: random }\n"
                 LISTENER,
                 "t.yaml:2:43: \"balance\": expected one of: round_robin, "
                 "least_conn, hash, random_two, ewma");
    expect_error("upstreams:\n"
                 "  \"w a s\": { servers: [127.0.0.1:1] }\n" LISTENER,
                 "t.yaml:2:3: upstream name \"w a s\" must be 1..64 letters, "
                 "digits, '_', '-' or '.'");
    expect_error("upstreams:\n"
                 "  was: { servers: [127.0.0.1:1], keepalive: -1 }\n"
                 LISTENER,
                 "t.yaml:2:45: \"keepalive\": expected a number 0..10000");
    expect_error("upstreams:\n"
                 "  was: { servers: [\"*:9001\"] }\n" LISTENER,
                 "t.yaml:2:20: 0.0.0.0:9001 is not a server address (a "
                 "server needs a real address to connect to)");
    expect_error("upstreams:\n"
                 "  was: { servers: [{ address: \"[::]:80\" }] }\n" LISTENER,
                 "t.yaml:2:31: \"address\": [::]:80 is not a server address "
                 "(a server needs a real address to connect to)");
}

static void test_err_listeners(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - listn: 127.0.0.1:8080\n",
                 "t.yaml:2:5: unknown key \"listn\" in listener (expected one "
                 "of: listen, sites, backlog, headers, timeouts, limits, "
                 "proxy_protocol, tls, http2, rate_limits, forward)");
    expect_error("listeners:\n"
                 "  - sites: [{ routes: [{ path: /, return: { status: 200 } "
                 "}] }]\n",
                 "t.yaml:2:5: missing \"listen\" in listener");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n",
                 "t.yaml:2:5: listener 127.0.0.1:8080 has no sites (and no "
                 "\"forward\")");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    sites: []\n",
                 "t.yaml:3:12: listener 127.0.0.1:8080 has no sites (and no "
                 "\"forward\")");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:99999\n",
                 "t.yaml:2:13: \"listen\": port must be 1..65535");
    expect_error("listeners:\n"
                 "  - listen: 8080\n",
                 "t.yaml:2:13: \"listen\": expected an address such as "
                 "127.0.0.1:8080, [::1]:8080 or *:8080");
    expect_error("listeners:\n"
                 "  - listen: ::1:8080\n",
                 "t.yaml:2:13: \"listen\": an IPv6 address needs brackets, "
                 "as in [::1]:8080");
    expect_error(LISTENER
                 "  - listen: 127.0.0.1:8080\n"
                 "    sites: [{ routes: [{ path: /, return: { status: 200 } "
                 "}] }]\n",
                 "t.yaml:5:13: \"listen\": 127.0.0.1:8080 is already used by "
                 "the listener at 2:13");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    backlog: 0\n",
                 "t.yaml:3:14: \"backlog\": expected a number 1..65535");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    headers: { via: yes }\n",
                 "t.yaml:3:21: \"via\": expected true or false");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    headers: { x_forwarded_for: false }\n",
                 "t.yaml:3:33: \"x_forwarded_for\": expected one of: "
                 "append, replace, off");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    timeouts: { client_header: 10 s }\n",
                 "t.yaml:3:32: \"client_header\": expected a duration such as "
                 "30s or 500ms");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    limits: { header_bytes: 512 }\n",
                 "t.yaml:3:29: \"header_bytes\": must be 1KiB..1MiB");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    limits: { body_bytes: 12parsecs }\n",
                 "t.yaml:3:27: \"body_bytes\": expected a size such as 64KiB "
                 "or 10MiB");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    limits: { header_bytes: 4KiB, target_length: 8KiB }\n",
                 "t.yaml:3:50: \"target_length\": must not exceed "
                 "header_bytes (4KiB)");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    timeouts: [10s]\n",
                 "t.yaml:3:15: \"timeouts\": expected a mapping");
}

#define SITE_HEAD                                                              \
    "upstreams:\n"                                                             \
    "  was: { servers: [127.0.0.1:9001] }\n"                                   \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"

static void test_err_sites(void **state)
{
    (void)state;
    expect_error(SITE_HEAD
                 "      - { host: a.example, default: true, routes: [{ path: "
                 "/, upstream: was }] }\n"
                 "      - { host: b.example, default: true, routes: [{ path: "
                 "/, upstream: was }] }\n",
                 "t.yaml:7:37: \"default\": only one site of a listener can "
                 "be the default (the first is at 6:37)");
    expect_error(SITE_HEAD
                 "      - { host: a.example, routes: [{ path: /, upstream: was "
                 "}] }\n"
                 "      - { default: false, routes: [{ path: /, upstream: was }] }\n",
                 "t.yaml:7:9: site has no hosts and is not the default");
    expect_error(SITE_HEAD
                 "      - { routes: [{ path: /, upstream: was }] }\n"
                 "      - { routes: [{ path: /, upstream: was }] }\n",
                 "t.yaml:7:9: a site without hosts is the default, but this "
                 "listener already has one (at 6:9)");
    expect_error(SITE_HEAD
                 "      - { routes: [{ path: /, upstream: was }] }\n"
                 "      - { host: a.example, default: true, routes: [{ path: "
                 "/, upstream: was }] }\n",
                 "t.yaml:7:37: \"default\": only one site of a listener can "
                 "be the default (the first is at 6:9)");
    expect_error(SITE_HEAD
                 "      - { host: a.example, routes: [] }\n",
                 "t.yaml:6:36: site has no routes");
    expect_error(SITE_HEAD
                 "      - { host: a.example }\n",
                 "t.yaml:6:9: site has no routes");
    expect_error(SITE_HEAD
                 "      - hosts: [a.example, \"a*.example\"]\n",
                 "t.yaml:6:28: \"*\" is only allowed as a leading \"*.\", as "
                 "in *.example.com");
    expect_error(SITE_HEAD
                 "      - host: \"*\"\n",
                 "t.yaml:6:15: \"host\": \"*\" is not a host name: to catch "
                 "every host, give the site \"default: true\"");
    expect_error(SITE_HEAD
                 "      - host: a/b\n",
                 "t.yaml:6:15: \"host\": expected a host name such as "
                 "example.com or *.example.com");
    expect_error(SITE_HEAD
                 "      - { host: a.example, hosts: [b.example] }\n",
                 "t.yaml:6:35: \"hosts\": use \"host\" or \"hosts\", not both");
    expect_error(SITE_HEAD
                 "      - { hosts: [a.example, b.example], routes: [{ path: /, "
                 "upstream: was }] }\n"
                 "      - { hosts: [c.example, B.Example:80], routes: [{ path: "
                 "/, upstream: was }] }\n",
                 "t.yaml:7:30: host b.example is listed twice in this "
                 "listener");
    expect_error(SITE_HEAD
                 "      - { hosts: [], routes: [] }\n",
                 "t.yaml:6:18: \"hosts\": must list at least one host");
    expect_error(SITE_HEAD
                 "      - { hots: [a.example] }\n",
                 "t.yaml:6:11: unknown key \"hots\" in site (expected one of: "
                 "host, hosts, default, routes, redirect_https, hsts)");
    expect_error(SITE_HEAD "      - a.example\n",
                 "t.yaml:6:9: each site must be a mapping");
}

static void test_err_routes(void **state)
{
    (void)state;
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - path: /\n"
                 "            upstream: wass\n",
                 "t.yaml:8:23: \"upstream\": no upstream named \"wass\" "
                 "(defined: was)");
    expect_error("listeners:\n"
                 "  - listen: 127.0.0.1:8080\n"
                 "    sites: [{ routes: [{ path: /, upstream: was }] }]\n",
                 "t.yaml:3:45: \"upstream\": no upstream named \"was\" (none "
                 "are defined under \"upstreams\")");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - path: /\n"
                 "            upstream: was\n"
                 "            return: { status: 200 }\n",
                 "t.yaml:9:21: \"return\": use \"upstream\" or \"return\", "
                 "not both");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - path: /\n"
                 "            return: { status: 200 }\n"
                 "            upstream: was\n",
                 "t.yaml:9:23: \"upstream\": use \"upstream\" or \"return\", "
                 "not both");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - path: /\n"
                 "            max_body: 1MiB\n",
                 "t.yaml:7:13: route / needs \"upstream\", \"return\" or \"static\"");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - upstream: was\n",
                 "t.yaml:7:13: missing \"path\" (or \"exact\") in route");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /a, exact: /a, upstream: was }\n",
                 "t.yaml:7:32: \"exact\": use \"path\" or \"exact\", not both");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: api, upstream: was }\n",
                 "t.yaml:7:21: \"path\": must start with \"/\"");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /a?b=1, upstream: was }\n",
                 "t.yaml:7:21: \"path\": must not contain \"?\" or \"#\" "
                 "(routes match the path only)");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /a/../b, upstream: was }\n",
                 "t.yaml:7:21: \"path\": must not contain \".\" or \"..\" "
                 "segments (request paths are matched without them)");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { exact: /a/., upstream: was }\n",
                 "t.yaml:7:22: \"exact\": must not contain \".\" or \"..\" "
                 "segments (request paths are matched without them)");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /api/, upstream: was }\n"
                 "          - { exact: /api/, upstream: was }\n"
                 "          - { path: /api/, return: { status: 404 } }\n",
                 "t.yaml:9:21: \"path\": route /api/ is already defined at "
                 "7:21");
}

static void test_err_return(void **state)
{
    (void)state;
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, return: { status: 600 } }\n",
                 "t.yaml:7:42: \"status\": expected a number 100..599");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, return: { status: 99 } }\n",
                 "t.yaml:7:42: \"status\": expected a number 100..599");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, return: { body: hi } }\n",
                 "t.yaml:7:32: missing \"status\" in return");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, return: { status: 204, body: hi } }\n",
                 "t.yaml:7:53: \"body\": a 204 response cannot have a body");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, return: 200 }\n",
                 "t.yaml:7:32: \"return\": expected a mapping");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, upstream: was, max_body: big }\n",
                 "t.yaml:7:49: \"max_body\": expected a size such as 64KiB or "
                 "10MiB");
    expect_error(SITE_HEAD
                 "      - routes:\n"
                 "          - { path: /, upstream: was, cahce: true }\n",
                 "t.yaml:7:39: unknown key \"cahce\" in route (expected one "
                 "of: path, exact, upstream, return, max_body, cache, static, "
                 "ext, compress, rate_limits)");
}

/* The first error wins, the message is cut to fit, and NULL is allowed. */
static void test_err_buffer(void **state)
{
    (void)state;
    char small[12];
    const char *yaml = "workers: 0\nvia_name: \"\"\n";
    memset(small, 'x', sizeof(small));
    assert_null(cfg_load_string(yaml, strlen(yaml), "t.yaml", small,
                                sizeof(small)));
    assert_string_equal(small, "t.yaml:1:10");
    assert_null(cfg_load_string(yaml, strlen(yaml), "t.yaml", NULL, 0));
    assert_null(cfg_load_string("a: [", 4, "t.yaml", NULL, 0));
    /* a name is optional */
    assert_null(cfg_load_string("workers: 0\n", 11, NULL, err, sizeof(err)));
    assert_string_equal(err, "<string>:1:10: \"workers\": expected auto or "
                             "a number 1..256");
    /* the text need not be NUL-terminated: only <len> bytes are read */
    char buf[sizeof(LISTENER) + 8];
    memcpy(buf, LISTENER, sizeof(LISTENER) - 1);
    memset(buf + sizeof(LISTENER) - 1, '{', 9);
    struct cfg *c = cfg_load_string(buf, sizeof(LISTENER) - 1, "t.yaml", err,
                                    sizeof(err));
    assert_non_null(c);
    cfg_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_yaml),
        cmocka_unit_test(test_err_top),
        cmocka_unit_test(test_err_log),
        cmocka_unit_test(test_err_upstreams),
        cmocka_unit_test(test_err_listeners),
        cmocka_unit_test(test_err_sites),
        cmocka_unit_test(test_err_routes),
        cmocka_unit_test(test_err_return),
        cmocka_unit_test(test_err_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
