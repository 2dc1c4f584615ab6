/*
 * Loading configurations: the built-in default, a full file with every
 * option, the defaults of what is left out, files, and the snapshot's
 * reference count. The messages for mistakes are in errors_test.c. Run
 * under ASan/LSan, every load is also checked for leaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config/config.h"

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static char err[512];

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err,
                                    sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s", err);
    return c;
}

/* A minimal valid tail: one listener, one site, one route. */
#define LISTENER                                                               \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:8080\n"                                             \
    "    sites:\n"                                                             \
    "      - routes: [{ path: /, return: { status: 204 } }]\n"

/* ---- good configurations ---- */

static void test_default_config(void **state)
{
    (void)state;
    struct cfg *c = cfg_load_string(cfg_default_yaml, strlen(cfg_default_yaml),
                                    "<default>", err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->file, "<default>");
    assert_string_equal(c->log.access, "stdout");
    assert_int_equal(c->log.format, CFG_LOG_COMBINED);
    assert_int_equal(c->nupstreams, 0);
    assert_int_equal(c->nlisteners, 2);
    const struct cfg_listener *fl = &c->listeners[0];
    assert_string_equal(fl->addr.text, "127.0.0.1:3128");
    assert_int_equal(fl->kind, CFG_L_FORWARD);
    assert_non_null(fl->forward);
    assert_int_equal(fl->forward->nconnect_ports, 2);
    assert_int_equal(fl->forward->connect_ports[1].lo, 8443);
    assert_int_equal(fl->nsites, 0);
    const struct cfg_listener *l = &c->listeners[1];
    assert_string_equal(l->addr.text, "127.0.0.1:8080");
    assert_int_equal(l->kind, CFG_L_REVERSE);
    assert_null(l->forward);
    assert_int_equal(l->nsites, 1);
    assert_true(l->sites[0].is_default);
    assert_int_equal(l->sites[0].nhosts, 0);
    assert_int_equal(l->sites[0].nroutes, 1);
    const struct cfg_route *r = &l->sites[0].routes[0];
    assert_string_equal(r->path, "/");
    assert_false(r->exact);
    assert_int_equal(r->action, CFG_ACT_RETURN);
    assert_int_equal(r->ret_status, 200);
    assert_string_equal(r->ret_type, "text/plain; charset=utf-8");
    assert_int_equal(r->ret_body_len, strlen(r->ret_body));
    assert_non_null(strstr(r->ret_body, "built-in default configuration"));
    assert_non_null(strstr(r->ret_body, "gatehouse -c examples/reverse.yaml"));
    assert_non_null(strstr(r->ret_body, "    upstreams:\n"));
    assert_non_null(strstr(r->ret_body, "upstream: app"));
    assert_non_null(strstr(r->ret_body, "curl -x http://127.0.0.1:3128"));
    cfg_unref(c);
}

/* The YAML snippet the default page shows is itself a valid config. */
static void test_default_page_snippet_loads(void **state)
{
    (void)state;
    struct cfg *d = load(cfg_default_yaml);
    const char *body = d->listeners[1].sites[0].routes[0].ret_body;
    const char *from = strstr(body, "    upstreams:\n");
    const char *to = strstr(body, "\n\nEvery option");
    assert_non_null(from);
    assert_non_null(to);
    struct cfg *c = cfg_load_string(from, (size_t)(to - from) + 1, "snippet",
                                    err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->nupstreams, 1);
    assert_int_equal(c->upstreams[0].nservers, 2);
    assert_ptr_equal(c->listeners[0].sites[0].routes[0].upstream,
                     &c->upstreams[0]);
    cfg_unref(c);
    cfg_unref(d);
}

static const char full_yaml[] =
    "workers: 4\n"
    "pid_file: /run/gatehouse.pid\n"
    "via_name: edge-1\n"
    "graceful_timeout: 45s\n"
    "log:\n"
    "  access: /var/log/gatehouse/access.log\n"
    "  format: json\n"
    "  error: /var/log/gatehouse/error.log\n"
    "  level: debug\n"
    "upstreams:\n"
    "  was:\n"
    "    servers:\n"
    "      - 127.0.0.1:9001\n"
    "      - { address: 127.0.0.1:9002, weight: 2 }\n"
    "    balance: round_robin\n"
    "    connect_timeout: 2s\n"
    "    read_timeout: 90s\n"
    "    send_timeout: 15s\n"
    "    keepalive: 8\n"
    "    keepalive_timeout: 2m\n"
    "    keepalive_requests: 500\n"
    "  static:\n"
    "    servers: [\"[::1]:9100\"]\n"
    "listeners:\n"
    "  - listen: 127.0.0.1:8080\n"
    "    backlog: 1024\n"
    "    headers:\n"
    "      via: false\n"
    "      x_forwarded_for: replace\n"
    "      x_forwarded_proto: false\n"
    "      x_forwarded_host: false\n"
    "      forwarded: true\n"
    "      hide_server: true\n"
    "    timeouts: { client_header: 5s, client_body: 30s, client_idle: 2m, "
    "send: 500ms }\n"
    "    limits: { header_bytes: 64KiB, header_count: 50, target_length: "
    "4KiB, body_bytes: 10MiB }\n"
    "    sites:\n"
    "      - hosts: [Example.COM, \"*.example.com\", www.example.org:8080]\n"
    "        routes:\n"
    "          - path: /api/\n"
    "            upstream: was\n"
    "            max_body: 10MiB\n"
    "          - exact: /health\n"
    "            return: { status: 200, body: \"ok\\n\", content_type: "
    "text/plain }\n"
    "          - path: /.well-known/...x/\n"
    "            upstream: static\n"
    "      - host: other.example\n"
    "        default: true\n"
    "        routes:\n"
    "          - path: /\n"
    "            return: { status: 404 }\n"
    "  - listen: \"[::1]:8081\"\n"
    "    sites:\n"
    "      - routes: [{ path: /, upstream: was }]\n";

static void check_full_top(const struct cfg *c)
{
    assert_string_equal(c->file, "t.yaml");
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->pid_file, "/run/gatehouse.pid");
    assert_string_equal(c->via_name, "edge-1");
    assert_int_equal(c->graceful_timeout, 45000);
    assert_string_equal(c->log.access, "/var/log/gatehouse/access.log");
    assert_int_equal(c->log.format, CFG_LOG_JSON);
    assert_string_equal(c->log.error, "/var/log/gatehouse/error.log");
    assert_int_equal(c->log.level, LOG_DEBUG);

    assert_int_equal(c->nupstreams, 2);
    const struct cfg_upstream *u = &c->upstreams[0];
    assert_string_equal(u->name, "was");
    assert_int_equal(u->nservers, 2);
    assert_string_equal(u->servers[0].addr.text, "127.0.0.1:9001");
    assert_int_equal(u->servers[0].weight, 1);
    assert_string_equal(u->servers[1].addr.text, "127.0.0.1:9002");
    assert_int_equal(u->servers[1].weight, 2);
    assert_int_equal(u->balance, CFG_BAL_ROUND_ROBIN);
    assert_int_equal(u->connect_timeout, 2000);
    assert_int_equal(u->read_timeout, 90000);
    assert_int_equal(u->send_timeout, 15000);
    assert_int_equal(u->keepalive, 8);
    assert_int_equal(u->keepalive_timeout, 120000);
    assert_int_equal(u->keepalive_requests, 500);
    u = &c->upstreams[1];
    assert_string_equal(u->name, "static");
    assert_int_equal(u->nservers, 1);
    assert_string_equal(u->servers[0].addr.text, "[::1]:9100");
    assert_int_equal(u->connect_timeout, 5000); /* defaults */
    assert_int_equal(u->keepalive, 32);
}

static void check_full_listener(const struct cfg *c)
{
    const struct cfg_listener *l = &c->listeners[0];
    assert_string_equal(l->addr.text, "127.0.0.1:8080");
    assert_int_equal(l->backlog, 1024);
    assert_false(l->headers.via);
    assert_int_equal(l->headers.x_forwarded_for, CFG_XFF_REPLACE);
    assert_false(l->headers.x_forwarded_proto);
    assert_false(l->headers.x_forwarded_host);
    assert_true(l->headers.forwarded);
    assert_true(l->headers.hide_server);
    assert_int_equal(l->timeouts.client_header, 5000);
    assert_int_equal(l->timeouts.client_body, 30000);
    assert_int_equal(l->timeouts.client_idle, 120000);
    assert_int_equal(l->timeouts.send, 500);
    assert_int_equal(l->limits.header_bytes, 64 * KIB);
    assert_int_equal(l->limits.header_count, 50);
    assert_int_equal(l->limits.target_length, 4 * KIB);
    assert_int_equal(l->limits.body_bytes, 10 * MIB);
    assert_int_equal(l->nsites, 2);

    const struct cfg_site *s = &l->sites[0];
    assert_false(s->is_default);
    assert_int_equal(s->nhosts, 3);
    assert_string_equal(s->hosts[0], "example.com");
    assert_string_equal(s->hosts[1], "*.example.com");
    assert_string_equal(s->hosts[2], "www.example.org");
    assert_int_equal(s->nroutes, 3);
    const struct cfg_route *r = &s->routes[0];
    assert_string_equal(r->path, "/api/");
    assert_int_equal(r->path_len, 5);
    assert_false(r->exact);
    assert_int_equal(r->action, CFG_ACT_PROXY);
    assert_ptr_equal(r->upstream, &c->upstreams[0]);
    assert_int_equal(r->max_body, 10 * MIB);
    r = &s->routes[1];
    assert_string_equal(r->path, "/health");
    assert_true(r->exact);
    assert_int_equal(r->action, CFG_ACT_RETURN);
    assert_null(r->upstream);
    assert_int_equal(r->ret_status, 200);
    assert_int_equal(r->ret_body_len, 3);
    assert_memory_equal(r->ret_body, "ok\n", 3);
    assert_string_equal(r->ret_type, "text/plain");
    assert_int_equal(r->max_body, 0);
    r = &s->routes[2];
    assert_string_equal(r->path, "/.well-known/...x/");
    assert_ptr_equal(r->upstream, &c->upstreams[1]);

    s = &l->sites[1];
    assert_true(s->is_default);
    assert_int_equal(s->nhosts, 1);
    assert_string_equal(s->hosts[0], "other.example");
    r = &s->routes[0];
    assert_int_equal(r->ret_status, 404);
    assert_int_equal(r->ret_body_len, 0);
    assert_string_equal(r->ret_body, "");
    assert_string_equal(r->ret_type, "text/plain; charset=utf-8");
}

static void test_full_config(void **state)
{
    (void)state;
    struct cfg *c = load(full_yaml);
    check_full_top(c);
    check_full_listener(c);

    assert_int_equal(c->nlisteners, 2);
    const struct cfg_listener *l = &c->listeners[1];
    assert_string_equal(l->addr.text, "[::1]:8081");
    assert_int_equal(l->addr.ss.ss_family, AF_INET6);
    assert_int_equal(l->nsites, 1);
    assert_true(l->sites[0].is_default); /* no hosts: the default */
    assert_int_equal(l->sites[0].nhosts, 0);
    cfg_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load("upstreams:\n"
                         "  u: { servers: [127.0.0.1:1] }\n" LISTENER);
    assert_true(c->workers >= 1 && c->workers <= 256); /* auto */
    assert_null(c->pid_file);
    assert_string_equal(c->via_name, "gatehouse");
    assert_int_equal(c->graceful_timeout, 30000);
    assert_string_equal(c->log.access, "stdout");
    assert_int_equal(c->log.format, CFG_LOG_COMBINED);
    assert_string_equal(c->log.error, "stderr");
    assert_int_equal(c->log.level, LOG_INFO);
    const struct cfg_upstream *u = &c->upstreams[0];
    assert_int_equal(u->servers[0].weight, 1);
    assert_int_equal(u->balance, CFG_BAL_ROUND_ROBIN);
    assert_int_equal(u->connect_timeout, 5000);
    assert_int_equal(u->read_timeout, 60000);
    assert_int_equal(u->send_timeout, 60000);
    assert_int_equal(u->keepalive, 32);
    assert_int_equal(u->keepalive_timeout, 60000);
    assert_int_equal(u->keepalive_requests, 10000);
    const struct cfg_listener *l = &c->listeners[0];
    assert_int_equal(l->backlog, 511);
    assert_true(l->headers.via);
    assert_int_equal(l->headers.x_forwarded_for, CFG_XFF_APPEND);
    assert_true(l->headers.x_forwarded_proto);
    assert_true(l->headers.x_forwarded_host);
    assert_false(l->headers.forwarded);
    assert_false(l->headers.hide_server);
    assert_int_equal(l->timeouts.client_header, 10000);
    assert_int_equal(l->timeouts.client_body, 60000);
    assert_int_equal(l->timeouts.client_idle, 60000);
    assert_int_equal(l->timeouts.send, 60000);
    assert_int_equal(l->limits.header_bytes, 32 * KIB);
    assert_int_equal(l->limits.header_count, 100);
    assert_int_equal(l->limits.target_length, 8 * KIB);
    assert_int_equal(l->limits.body_bytes, 1 * GIB);
    assert_true(l->sites[0].is_default);
    cfg_unref(c);
}

/* An empty value, ~ or null is the same as leaving the key out. */
static void test_null_is_absent(void **state)
{
    (void)state;
    struct cfg *c = load("workers:\n"
                         "pid_file: ~\n"
                         "via_name: null\n"
                         "log:\n"
                         "listeners:\n"
                         "  - listen: 127.0.0.1:8080\n"
                         "    headers:\n"
                         "    limits: { body_bytes: }\n"
                         "    sites:\n"
                         "      - routes: [{ path: /, return: { status: 200, "
                         "body: ~ } }]\n");
    assert_null(c->pid_file);
    assert_string_equal(c->via_name, "gatehouse");
    assert_true(c->listeners[0].headers.via);
    assert_int_equal(c->listeners[0].limits.body_bytes, GIB);
    assert_int_equal(c->listeners[0].sites[0].routes[0].ret_body_len, 0);
    cfg_unref(c);
    /* quoted, "~" is a string */
    c = load("via_name: \"~\"\n" LISTENER);
    assert_string_equal(c->via_name, "~");
    cfg_unref(c);
}

static void test_hosts_and_misc(void **state)
{
    (void)state;
    struct cfg *c = load("workers: auto\n"
                         "log: { access: \"off\", error: stderr }\n"
                         "listeners:\n"
                         "  - listen: '*:8080'\n"
                         "    limits: { header_bytes: 4KiB }\n"
                         "    sites:\n"
                         "      - host: \"[::1]:8080\"\n"
                         "        routes: [{ path: /, return: { status: 200 } }]\n"
                         "      - host: WWW.Example.com.\n"
                         "        default: false\n"
                         "        routes: [{ path: /, return: { status: 200 } }]\n"
                         "      - hosts: [127.0.0.1, \"*.A.example\"]\n"
                         "        routes: [{ path: /, return: { status: 200 } }]\n");
    const struct cfg_listener *l = &c->listeners[0];
    assert_string_equal(c->log.access, "off");
    assert_string_equal(l->addr.text, "0.0.0.0:8080");
    /* the default target limit follows a smaller head limit */
    assert_int_equal(l->limits.header_bytes, 4 * KIB);
    assert_int_equal(l->limits.target_length, 4 * KIB);
    assert_string_equal(l->sites[0].hosts[0], "[::1]");
    assert_string_equal(l->sites[1].hosts[0], "www.example.com");
    assert_string_equal(l->sites[2].hosts[0], "127.0.0.1");
    assert_string_equal(l->sites[2].hosts[1], "*.a.example");
    for (size_t i = 0; i < 3; i++)
        assert_false(l->sites[i].is_default);
    cfg_unref(c);

    /* a site with hosts is the default only when it says so, even alone */
    c = load("listeners:\n"
             "  - listen: 127.0.0.1:8080\n"
             "    sites:\n"
             "      - { host: a.example, routes: [{ path: /, "
             "return: { status: 200 } }] }\n");
    assert_false(c->listeners[0].sites[0].is_default);
    cfg_unref(c);
}

static void test_refcount(void **state)
{
    (void)state;
    struct cfg *c = load(LISTENER);
    assert_ptr_equal(cfg_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    cfg_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->listeners[0].addr.text, "127.0.0.1:8080");
    cfg_unref(c); /* freed here; LSan would report otherwise */
    cfg_unref(NULL);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/gh_cfg_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd != -1);
    const char text[] = "workers: 2\n" LISTENER;
    assert_int_equal(write(fd, text, sizeof(text) - 1),
                     (ssize_t)sizeof(text) - 1);
    close(fd);
    struct cfg *c = cfg_load_file(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->file, path);
    assert_int_equal(c->workers, 2);
    cfg_unref(c);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd != -1);
    assert_int_equal(write(fd, "workers: 0\n", 11), 11);
    close(fd);
    char want[128];
    snprintf(want, sizeof(want), "%s:1:10: \"workers\": expected auto or a "
                                 "number 1..256", path);
    assert_null(cfg_load_file(path, err, sizeof(err)));
    assert_string_equal(err, want);
    unlink(path);

    assert_null(cfg_load_file(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err, want);
    assert_null(cfg_load_file("/tmp", err, sizeof(err)));
    assert_string_equal(err, "/tmp: not a regular file");
}

/* The example shipped in examples/ loads (tests run from the top). */
static void test_example_reverse(void **state)
{
    (void)state;
    struct cfg *c = cfg_load_file("examples/reverse.yaml", err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->nupstreams, 1);
    const struct cfg_upstream *u = &c->upstreams[0];
    assert_int_equal(u->nservers, 2);
    assert_string_equal(u->servers[0].addr.text, "127.0.0.1:9001");
    assert_string_equal(u->servers[1].addr.text, "127.0.0.1:9002");
    assert_int_equal(u->balance, CFG_BAL_ROUND_ROBIN);
    assert_int_equal(c->nlisteners, 1);
    const struct cfg_listener *l = &c->listeners[0];
    assert_string_equal(l->addr.text, "127.0.0.1:8080");
    assert_true(l->sites[0].is_default);
    const struct cfg_route *r = &l->sites[0].routes[l->sites[0].nroutes - 1];
    assert_string_equal(r->path, "/");
    assert_ptr_equal(r->upstream, u);
    cfg_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_default_page_snippet_loads),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_null_is_absent),
        cmocka_unit_test(test_hosts_and_misc),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_reverse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
