/*
 * The "forward:" mapping of a listener and the top-level "dns:" mapping:
 * defaults, every option, named address sets, and the exact message of
 * each mistake. htpasswd files are written at run time with hashes made by
 * libcrypt, so nothing secret-looking is committed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"

static char err[1024];

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

#define FWD(body)                                                              \
    "listeners:\n"                                                             \
    "  - listen: 127.0.0.1:3128\n"                                             \
    "    forward:\n" body

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *c = load("listeners:\n"
                         "  - listen: 127.0.0.1:3128\n"
                         "    forward: {}\n");
    const struct cfg_listener *l = &c->listeners[0];
    assert_int_equal(l->kind, CFG_L_FORWARD);
    assert_int_equal(l->nsites, 0);
    const struct cfg_forward *f = l->forward;
    assert_non_null(f);
    assert_int_equal(f->nallow, 2);
    assert_int_equal(f->allow[0].family, AF_INET);
    assert_int_equal(f->allow[0].bits, 8);
    assert_int_equal(f->allow[0].addr[0], 127);
    assert_int_equal(f->allow[1].family, AF_INET6);
    assert_int_equal(f->allow[1].bits, 128);
    assert_int_equal(f->allow[1].addr[15], 1);
    assert_int_equal(f->ndeny, 0);
    assert_int_equal(f->nconnect_ports, 1);
    assert_int_equal(f->connect_ports[0].lo, 443);
    assert_int_equal(f->connect_ports[0].hi, 443);
    assert_int_equal(f->nhttp_ports, 2);
    assert_int_equal(f->http_ports[1].lo, 1025);
    assert_int_equal(f->http_ports[1].hi, 65535);
    assert_int_equal(f->ndeny_addrs, 2);
    assert_string_equal(f->deny_addrs[0].text, "link-local");
    assert_int_equal(f->deny_addrs[0].addr[0], 169);
    assert_int_equal(f->deny_addrs[1].addr[0], 0xfe);
    assert_int_equal(f->deny_addrs[1].bits, 10);
    assert_false(f->anonymous);
    assert_true(f->splice);
    assert_true(f->pac);
    assert_null(f->pac_body);
    assert_int_equal(f->nusers, 0);
    assert_string_equal(f->realm, "Gatehouse");
    assert_int_equal(f->max_origins, 1024);
    assert_int_equal(f->origin.connect_timeout, 5000);
    assert_int_equal(f->origin.read_timeout, 60000);
    assert_int_equal(f->origin.keepalive, 8);
    assert_int_equal(f->origin.keepalive_timeout, 30000);
    assert_int_equal(f->tunnel.read_timeout, 300000);
    assert_int_equal(f->tunnel.keepalive, 0);
    assert_int_equal(f->tunnel.connect_timeout, 5000);
    /* a forward proxy's origin sees the request itself */
    assert_false(l->headers.x_forwarded_proto);
    assert_false(l->headers.x_forwarded_host);
    assert_true(l->headers.via);
    assert_int_equal(l->headers.x_forwarded_for, CFG_XFF_APPEND);
    /* dns */
    assert_null(c->dns.servers);
    assert_string_equal(c->dns.hosts, "/etc/hosts");
    assert_int_equal(c->dns.timeout, 5000);
    assert_int_equal(c->dns.cache_size, 4096);
    assert_int_equal(c->dns.min_ttl, 1000);
    assert_int_equal(c->dns.max_ttl, 3600000);
    assert_int_equal(c->dns.negative_ttl, 5000);
    cfg_unref(c);
}

static void test_all_options(void **state)
{
    (void)state;
    struct cfg *c = load(
        "dns:\n"
        "  servers: [127.0.0.1:5353, \"[::1]:53\"]\n"
        "  hosts: /srv/hosts\n"
        "  timeout: 2s\n"
        "  cache_size: 10\n"
        "  min_ttl: 0s\n"
        "  max_ttl: 10m\n"
        "  negative_ttl: 1s\n"
        FWD("      allow: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7]\n"
            "      deny: [10.1.0.0/16]\n"
            "      connect_ports: [443, 8443-8445]\n"
            "      http_ports: [80]\n"
            "      allow_hosts: [example.com, \"*.example.org\"]\n"
            "      deny_hosts: [bad.example.org]\n"
            "      deny_addresses: [private, link-local, 203.0.113.0/24]\n"
            "      anonymous: true\n"
            "      splice: false\n"
            "      pac: { enabled: false, proxy: proxy.example.com:3128, "
            "direct: [\"*.corp.example\", intranet.example] }\n"
            "      connect_timeout: 1s\n"
            "      read_timeout: 2s\n"
            "      send_timeout: 3s\n"
            "      tunnel_idle_timeout: 1h\n"
            "      keepalive: 2\n"
            "      keepalive_timeout: 4s\n"
            "      keepalive_requests: 5\n"
            "      origins: 7\n"));
    const struct cfg_forward *f = c->listeners[0].forward;
    assert_int_equal(f->nallow, 3);
    assert_int_equal(f->allow[1].family, AF_INET6);
    assert_int_equal(f->allow[1].bits, 32);
    assert_int_equal(f->allow[2].bits, 32);
    assert_string_equal(f->allow[2].text, "192.0.2.7");
    assert_int_equal(f->ndeny, 1);
    assert_int_equal(f->nconnect_ports, 2);
    assert_int_equal(f->connect_ports[1].lo, 8443);
    assert_int_equal(f->connect_ports[1].hi, 8445);
    assert_int_equal(f->nhttp_ports, 1);
    assert_int_equal(f->nallow_hosts, 2);
    assert_string_equal(f->allow_hosts[1], "*.example.org");
    assert_int_equal(f->ndeny_hosts, 1);
    /* private (4 ranges) + link-local (2) + one */
    assert_int_equal(f->ndeny_addrs, 7);
    assert_string_equal(f->deny_addrs[0].text, "private");
    assert_int_equal(f->deny_addrs[1].addr[0], 172);
    assert_int_equal(f->deny_addrs[1].addr[1], 16);
    assert_int_equal(f->deny_addrs[1].bits, 12);
    assert_string_equal(f->deny_addrs[6].text, "203.0.113.0/24");
    assert_true(f->anonymous);
    assert_false(f->splice);
    assert_false(f->pac);
    assert_string_equal(f->pac_proxy, "proxy.example.com:3128");
    assert_int_equal(f->npac_direct, 2);
    assert_string_equal(f->pac_direct[0], "*.corp.example");
    assert_int_equal(f->origin.connect_timeout, 1000);
    assert_int_equal(f->origin.read_timeout, 2000);
    assert_int_equal(f->origin.send_timeout, 3000);
    assert_int_equal(f->origin.keepalive, 2);
    assert_int_equal(f->origin.keepalive_timeout, 4000);
    assert_int_equal(f->origin.keepalive_requests, 5);
    assert_int_equal(f->tunnel.read_timeout, 3600000);
    assert_int_equal(f->tunnel.send_timeout, 3000);
    assert_int_equal(f->tunnel.keepalive, 0);
    assert_int_equal(f->max_origins, 7);
    assert_string_equal(c->dns.servers, "127.0.0.1:5353,[::1]:53");
    assert_string_equal(c->dns.hosts, "/srv/hosts");
    assert_int_equal(c->dns.timeout, 2000);
    assert_int_equal(c->dns.cache_size, 10);
    assert_int_equal(c->dns.min_ttl, 0);
    assert_int_equal(c->dns.max_ttl, 600000);
    assert_int_equal(c->dns.negative_ttl, 1000);
    cfg_unref(c);
}

/* A forward listener may also have sites: origin-form requests go there. */
static void test_forward_with_sites(void **state)
{
    (void)state;
    struct cfg *c = load(FWD("      allow: [loopback]\n"
                             "    sites:\n"
                             "      - routes: [{ path: /, return: { status: 204 } }]\n"));
    assert_int_equal(c->listeners[0].kind, CFG_L_FORWARD);
    assert_int_equal(c->listeners[0].nsites, 1);
    cfg_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(FWD("      allow: [10.0.0.1/8]\n"),
                 "t.yaml:4:15: has bits set after the /8 prefix");
    expect_error(FWD("      allow: [10.0.0.0/33]\n"),
                 "t.yaml:4:15: prefix length must be 0..32");
    expect_error(FWD("      deny: [intranet]\n"),
                 "t.yaml:4:14: expected an address range such as "
                 "10.0.0.0/8 or ::1/128, or one of: loopback, link-local, "
                 "private");
    expect_error(FWD("      allow: 10.0.0.0/8\n"),
                 "t.yaml:4:14: \"allow\": expected a list");
    expect_error(FWD("      connect_ports: [0]\n"),
                 "t.yaml:4:23: expected a port 1..65535 or "
                 "a range such as 1025-65535");
    expect_error(FWD("      connect_ports: [70000]\n"),
                 "t.yaml:4:23: expected a port 1..65535 or "
                 "a range such as 1025-65535");
    expect_error(FWD("      http_ports: [200-100]\n"),
                 "t.yaml:4:20: a range goes from the lower "
                 "port to the higher");
    expect_error(FWD("      allow_hosts: [\"*\"]\n"),
                 "t.yaml:4:21: \"*\" is not a host pattern: "
                 "an empty or absent list already means any host");
    expect_error(FWD("      deny_hosts: [\"a.*.com\"]\n"),
                 "t.yaml:4:20: \"*\" is only allowed as a "
                 "leading \"*.\", as in *.example.com");
    expect_error(FWD("      alow: []\n"),
                 "t.yaml:4:7: unknown key \"alow\" in forward (expected one "
                 "of: allow, deny, connect_ports, http_ports, allow_hosts, "
                 "deny_hosts, deny_addresses, anonymous, auth, pac, "
                 "connect_timeout, read_timeout, send_timeout, "
                 "tunnel_idle_timeout, keepalive, keepalive_timeout, "
                 "keepalive_requests, origins, splice, cache)");
    expect_error(FWD("      auth: { realm: x }\n"),
                 "t.yaml:4:13: missing \"htpasswd\" in auth");
    expect_error(FWD("      auth: { htpasswd: /nonexistent/htpasswd }\n"),
                 "t.yaml:4:25: \"htpasswd\": /nonexistent/htpasswd: No such "
                 "file or directory");
    expect_error(FWD("      pac: { proxy: \"proxy.example.com\" }\n"),
                 "t.yaml:4:21: \"proxy\": expected host:port, such as "
                 "proxy.example.com:3128");
    expect_error(FWD("      pac: { file: /nonexistent.pac }\n"),
                 "t.yaml:4:20: \"file\": /nonexistent.pac: No such file or "
                 "directory");
    expect_error(FWD("      tunnel_idle_timeout: 0s\n"),
                 "t.yaml:4:28: \"tunnel_idle_timeout\": must be 1ms..1d");
    expect_error("dns: { servers: [dns.example.com:53] }\n" FWD("      {}\n"),
                 "t.yaml:1:18: expected an IP address and port "
                 "such as 192.0.2.53:53 or [2001:db8::53]:53");
    expect_error("dns: { min_ttl: 2h, max_ttl: 1h }\n" FWD("      {}\n"),
                 "t.yaml:1:6: dns: min_ttl must not exceed max_ttl");
    expect_error("dns: { servers: [] }\n" FWD("      {}\n"),
                 "t.yaml:1:17: \"servers\": must list at least one server "
                 "(leave it out to use /etc/resolv.conf)");
}

/* ---- htpasswd ---- */

static char path[64];

static void write_htpasswd(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/gh-htpasswd-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static char *hashed(const char *prefix, const char *pw)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_gensalt_rn(prefix, strcmp(prefix, "$2b$") ? 0 : 4,
                                     NULL, 0, salt, sizeof(salt)));
    const char *h = crypt_r(pw, salt, &cd);
    assert_non_null(h);
    return strdup(h);
}

static struct cfg *load_auth(char *msg, size_t msglen)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             FWD("      auth: { htpasswd: %s, realm: \"Office proxy\" }\n"),
             path);
    return cfg_load_string(yaml, strlen(yaml), "t.yaml", msg, msglen);
}

static void test_htpasswd_good(void **state)
{
    (void)state;
    char *b = hashed("$2b$", "secret1");
    char *s = hashed("$6$", "secret2");
    char text[512];
    snprintf(text, sizeof(text),
             "# users\n\nzoe:%s\r\nadam:%s\n", b, s);
    write_htpasswd(text);
    struct cfg *c = load_auth(err, sizeof(err));
    unlink(path);
    if (c == NULL)
        fail_msg("%s", err);
    const struct cfg_forward *f = c->listeners[0].forward;
    assert_int_equal(f->nusers, 2);
    assert_string_equal(f->users[0].user, "adam"); /* sorted */
    assert_string_equal(f->users[0].hash, s);
    assert_string_equal(f->users[1].user, "zoe");
    assert_string_equal(f->users[1].hash, b);
    assert_string_equal(f->realm, "Office proxy");
    cfg_unref(c);
    free(b);
    free(s);
}

static void expect_htpasswd_error(const char *text, const char *want_tail)
{
    write_htpasswd(text);
    struct cfg *c = load_auth(err, sizeof(err));
    unlink(path);
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("loaded, but expected: %s", want_tail);
    }
    char want[600];
    snprintf(want, sizeof(want), "t.yaml:4:25: \"htpasswd\": %s%s", path,
             want_tail);
    assert_string_equal(err, want);
}

static void test_htpasswd_refused(void **state)
{
    (void)state;
    expect_htpasswd_error("bob:$apr1$abcdefgh$0123456789abcdefghijkl\n",
                          ":1: the entry of user \"bob\" is an MD5 hash, "
                          "which is refused (too fast to resist guessing); "
                          "make it with htpasswd -B (bcrypt)");
    expect_htpasswd_error("\nbob:secret\n",
                          ":2: the entry of user \"bob\" is not a bcrypt "
                          "($2y$) or SHA-512 ($6$) hash: plain-text "
                          "passwords are refused; make it with htpasswd -B "
                          "(bcrypt)");
    expect_htpasswd_error("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
                          ":1: the entry of user \"bob\" is an unsalted "
                          "SHA-1 hash, which is refused; make it with "
                          "htpasswd -B (bcrypt)");
    expect_htpasswd_error("bob:rl0H7kH3YW8Dk\n",
                          ":1: the entry of user \"bob\" looks like a DES "
                          "crypt hash, which is refused; make it with "
                          "htpasswd -B (bcrypt)");
    expect_htpasswd_error("bob:$6$\n",
                          ":1: the entry of user \"bob\" is not a valid hash "
                          "of its kind");
    expect_htpasswd_error("no colon here\n", ":1: expected user:hash");
    expect_htpasswd_error("# only a comment\n", ": no users in the file");
    char *s = hashed("$6$", "x");
    char text[400];
    snprintf(text, sizeof(text), "bob:%s\nbob:%s\n", s, s);
    expect_htpasswd_error(text, ":2: user \"bob\" is listed twice");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_forward_with_sites),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_htpasswd_good),
        cmocka_unit_test(test_htpasswd_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
