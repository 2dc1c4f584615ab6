/*
 * The "tls" and "http2" listener keys and the site keys "redirect_https"
 * and "hsts" (issue 6): defaults, values, and mistakes at file:line:col.
 * Certificates come from scripts/test-ca.sh, made once into a temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char err[1024];
static char dir[] = "/tmp/gh-tls-test-XXXXXX";
static char yaml[4096];

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "scripts/test-ca.sh init %s >/dev/null 2>&1 && "
                               "scripts/test-ca.sh leaf %s other a.test '*.b.test' >/dev/null 2>&1",
             dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A listener with <tls> (the inside of "tls: {...}", %s = the dir) and
 * <more> listener keys, and a site with <site> keys. */
static const char *conf(const char *tls, const char *more, const char *site)
{
    char t[2048] = "";
    if (tls != NULL) {
        int n = snprintf(t, sizeof(t), "    tls: { ");
        n += snprintf(t + n, sizeof(t) - (size_t)n, tls, dir, dir, dir, dir);
        snprintf(t + n, sizeof(t) - (size_t)n, " }\n");
    }
    snprintf(yaml, sizeof(yaml),
             "listeners:\n"
             "  - listen: 127.0.0.1:8443\n"
             "%s%s"
             "    sites:\n"
             "      - { %s routes: [{ path: /, return: { status: 204 } }] }\n",
             t, more ? more : "", site ? site : "");
    return yaml;
}

#define CERT "certificates: [{ cert: %s/localhost.pem, key: %s/localhost.key }]"

static struct cfg *load_ok(const char *y)
{
    struct cfg *c = cfg_load_string(y, strlen(y), "t.yaml", err, sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s\n%s", err, y);
    return c;
}

static void expect_error(const char *y, const char *want)
{
    struct cfg *c = cfg_load_string(y, strlen(y), "t.yaml", err, sizeof(err));
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, expected: %s\n%s", want, y);
    }
    if (strstr(err, want) == NULL)
        fail_msg("got \"%s\", expected it to contain \"%s\"", err, want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load_ok(conf(CERT, NULL, NULL));
    const struct cfg_listener *l = &c->listeners[0];
    assert_non_null(l->tls);
    assert_non_null(l->tls->srv);
    assert_int_equal(l->tls->ncerts, 1);
    assert_int_equal(l->tls->min_version, 0x0303);
    assert_int_equal(l->tls->max_version, 0x0304);
    assert_true(l->tls->alpn_h2 && l->tls->alpn_http11);
    assert_true(l->tls->tickets);
    assert_int_equal(l->tls->ticket_rotate, 3600 * 1000);
    assert_int_equal(l->tls->verify, CFG_VERIFY_OFF);
    assert_true(l->tls->ktls);
    assert_non_null(strstr(l->tls->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    assert_null(strstr(l->tls->ciphers, "CBC"));
    /* http2 defaults are there with or without tls */
    assert_false(l->http2.h2c);
    assert_int_equal(l->http2.max_streams, 100);
    assert_int_equal(l->http2.stream_window, 65536);
    assert_int_equal(l->http2.conn_window, 1024 * 1024);
    assert_int_equal(l->http2.max_resets, 200);
    assert_null(l->sites[0].hsts);
    assert_int_equal(l->sites[0].redirect_https, 0);
    cfg_unref(c);
    c = load_ok(conf(NULL, NULL, NULL));
    assert_null(c->listeners[0].tls);
    cfg_unref(c);
}

static void test_values(void **state)
{
    (void)state;
    struct cfg *c = load_ok(conf("certificates: [{ cert: %s/localhost.pem, key: "
                                 "%s/localhost.key }, { cert: %s/other.pem, key: "
                                 "%s/other.key, default: true }], protocols: "
                                 "[TLSv1.3], alpn: [http/1.1], tickets: false, "
                                 "ticket_rotate: 5m, ktls: false",
                                 "    http2: { max_concurrent_streams: 7, "
                                 "stream_window: 1MiB, connection_window: 8MiB, "
                                 "max_resets: 10, resets_per_second: 5 }\n",
                                 "hsts: { max_age: 2d, include_subdomains: true },"));
    const struct cfg_listener *l = &c->listeners[0];
    assert_int_equal(l->tls->ncerts, 2);
    assert_true(l->tls->certs[1].is_default);
    assert_int_equal(l->tls->min_version, 0x0304);
    assert_int_equal(l->tls->max_version, 0x0304);
    assert_false(l->tls->alpn_h2);
    assert_true(l->tls->alpn_http11);
    assert_false(l->tls->tickets);
    assert_int_equal(l->tls->ticket_rotate, 300 * 1000);
    assert_int_equal(l->http2.max_streams, 7);
    assert_int_equal(l->http2.stream_window, 1024 * 1024);
    assert_int_equal(l->http2.conn_window, 8 * 1024 * 1024);
    assert_int_equal(l->http2.max_resets, 10);
    assert_int_equal(l->http2.reset_rate, 5);
    assert_string_equal(l->sites[0].hsts,
                        "Strict-Transport-Security: max-age=172800; "
                        "includeSubDomains\r\n");
    cfg_unref(c);
    c = load_ok(conf(CERT, NULL, "hsts: true,"));
    assert_string_equal(c->listeners[0].sites[0].hsts,
                        "Strict-Transport-Security: max-age=31536000\r\n");
    cfg_unref(c);
    c = load_ok(conf(NULL, "    http2: { h2c: true }\n", "redirect_https: true,"));
    assert_true(c->listeners[0].http2.h2c);
    assert_int_equal(c->listeners[0].sites[0].redirect_https, 443);
    cfg_unref(c);
    c = load_ok(conf(NULL, NULL, "redirect_https: 8443,"));
    assert_int_equal(c->listeners[0].sites[0].redirect_https, 8443);
    cfg_unref(c);
    c = load_ok(conf(CERT ", client_ca: %s/ca.pem", NULL, NULL));
    assert_int_equal(c->listeners[0].tls->verify, CFG_VERIFY_REQUIRED);
    cfg_unref(c);
    c = load_ok(conf(CERT ", client_ca: %s/ca.pem, verify: optional", NULL, NULL));
    assert_int_equal(c->listeners[0].tls->verify, CFG_VERIFY_OPTIONAL);
    cfg_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(conf("certificates: [{ key: x }]", NULL, NULL),
                 "t.yaml:3:27: missing \"cert\" in certificate");
    expect_error(conf("certificates: [{ cert: %s/nope.pem }]", NULL, NULL),
                 "\"cert\": cannot open");
    expect_error(conf("certificates: [{ cert: %s/localhost.pem, key: %s/other.key }]",
                      NULL, NULL),
                 "\"key\": the key in");
    expect_error(conf("certificates: [{ cert: %s/localhost.pem, key: %s/localhost.key, "
                      "default: true }, { cert: %s/other.pem, key: %s/other.key, "
                      "default: true }]", NULL, NULL),
                 "only one certificate can be the default");
    expect_error(conf(CERT ", protocols: [TLSv1.1]", NULL, NULL),
                 "TLSv1.1 is obsolete");
    expect_error(conf(CERT ", protocols: [TLSv1.3], ciphers: HIGH", NULL, NULL),
                 "\"ciphers\": only applies to TLSv1.2");
    expect_error(conf(CERT ", alpn: [spdy]", NULL, NULL),
                 "expected one of: h2, http/1.1");
    expect_error(conf(CERT ", groups: nope", NULL, NULL), "\"groups\": unknown group");
    expect_error(conf(CERT ", verify: sometimes", NULL, NULL),
                 "expected one of: off, optional, required");
    expect_error(conf(CERT ", ticket_rotate: 10ms", NULL, NULL),
                 "\"ticket_rotate\": must be 1s..1d");
    expect_error(conf(CERT ", client_ca: %s/none.pem", NULL, NULL),
                 "\"client_ca\": cannot load CA certificates");
    expect_error(conf(CERT, NULL, "hsts: { preload: true },"),
                 "\"preload\": preload lists require include_subdomains");
    expect_error(conf(NULL, NULL, "redirect_https: 70000,"),
                 "\"redirect_https\": expected true (port 443), false, or a port");
    expect_error(conf(NULL, "    http2: { stream_window: 2MiB, connection_window: 1MiB }\n",
                      NULL),
                 "\"connection_window\": must be at least stream_window");
    expect_error(conf(NULL, "    http2: { stream_window: 1KiB }\n", NULL),
                 "\"stream_window\": must be");
    expect_error(conf(NULL, "    http2: { push: true }\n", NULL),
                 "unknown key \"push\" in http2");
}

static const char *ups(const char *tls)
{
    snprintf(yaml, sizeof(yaml),
             "upstreams:\n"
             "  u:\n"
             "    servers: [127.0.0.1:9443, 127.0.0.1:9444]\n"
             "    tls: %s\n"
             "listeners:\n"
             "  - listen: 127.0.0.1:8080\n"
             "    sites: [{ routes: [{ path: /, upstream: u }] }]\n",
             tls);
    return yaml;
}

static void test_upstream_tls(void **state)
{
    (void)state;
    char t[512];
    struct cfg *c = load_ok(ups("true"));
    const struct cfg_upstream_tls *ut = c->upstreams[0].tls;
    assert_non_null(ut);
    assert_true(ut->verify);
    assert_null(ut->ca);
    assert_null(ut->name);
    assert_non_null(ut->cli);
    cfg_unref(c);
    c = load_ok(ups("false"));
    assert_null(c->upstreams[0].tls);
    cfg_unref(c);
    snprintf(t, sizeof(t), "{ ca: %s/ca.pem, name: app.internal, cert: %s/localhost.pem, "
                           "key: %s/localhost.key }", dir, dir, dir);
    c = load_ok(ups(t));
    ut = c->upstreams[0].tls;
    assert_string_equal(ut->name, "app.internal");
    assert_non_null(ut->cli);
    cfg_unref(c);
    c = load_ok(ups("{ verify: false }"));
    assert_false(c->upstreams[0].tls->verify);
    cfg_unref(c);
    expect_error(ups("{ key: x.key }"), "t.yaml:4:17: \"key\": needs \"cert\"");
    expect_error(ups("{ verify: false, ca: x.pem }"), "\"ca\": is not used with verify: false");
    expect_error(ups("{ ca: /nonexistent.pem }"), "\"ca\": cannot load CA certificates from /nonexistent.pem");
    expect_error(ups("{ name: \"a b\" }"), "\"name\": expected a host name");
    snprintf(t, sizeof(t), "{ cert: %s/localhost.pem, key: %s/other.key }", dir, dir);
    expect_error(ups(t), "\"key\": cannot load a PEM private key");
    expect_error(ups("{ sni: x }"), "unknown key \"sni\" in tls");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_upstream_tls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
