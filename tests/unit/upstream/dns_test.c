/*
 * The resolver against a real DNS server: a small UDP responder in this
 * process, on the same loop, that answers A queries from a table (with the
 * TTL given there), NXDOMAIN for *.nx.test, nothing at all for
 * *.silent.test, and counts what it is asked. c-ares talks to it over
 * loopback, so TTLs, sharing, negative caching, timeouts and cancellation
 * are all observed from the outside.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/macros.h"
#include "upstream/dns.h"

struct rec {
    const char *name;
    uint8_t last;  /* answers 192.0.2.<last> */
    uint32_t ttl;
    unsigned asked; /* A queries seen */
};

static struct rec recs[] = {
    { "a.gh.test", 1, 1, 0 },     { "b.gh.test", 2, 300, 0 },
    { "c.gh.test", 3, 300, 0 },   { "long.gh.test", 4, 3600, 0 },
    { "zero.gh.test", 5, 0, 0 },
};
static unsigned nx_asked, silent_asked;

static struct loop *lp;
static struct ev responder;
static int dns_port;

static struct rec *find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(recs); i++)
        if (strcmp(recs[i].name, name) == 0)
            return &recs[i];
    return NULL;
}

static void on_query(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    unsigned char q[512], r[600];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(e->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
    if (n < 17)
        return;
    /* the question: labels from offset 12, then type and class */
    char name[256];
    size_t o = 12, nl = 0;
    while (o < (size_t)n && q[o] != 0) {
        unsigned len = q[o++];
        if (nl > 0)
            name[nl++] = '.';
        memcpy(name + nl, q + o, len);
        nl += len;
        o += len;
    }
    name[nl] = '\0';
    size_t qend = o + 5;
    if (qend > (size_t)n)
        return;
    unsigned qtype = (unsigned)q[o + 1] << 8 | q[o + 2];
    if (strstr(name, ".silent.test") != NULL) {
        silent_asked++;
        return; /* never answer */
    }
    memcpy(r, q, qend);
    r[2] = 0x81; /* response, recursion desired */
    r[3] = 0x80; /* recursion available, rcode 0 */
    r[6] = r[7] = 0; /* no answers yet */
    r[8] = r[9] = r[10] = r[11] = 0;
    size_t len = qend;
    struct rec *rec = find(name);
    if (strstr(name, ".nx.test") != NULL || rec == NULL) {
        if (qtype == 1)
            nx_asked++;
        r[3] = 0x83; /* NXDOMAIN */
    } else if (qtype == 1) {
        rec->asked++;
        r[7] = 1;
        unsigned char ans[] = { 0xc0, 0x0c, 0, 1, 0, 1,
                                (unsigned char)(rec->ttl >> 24),
                                (unsigned char)(rec->ttl >> 16),
                                (unsigned char)(rec->ttl >> 8),
                                (unsigned char)rec->ttl, 0, 4, 192, 0, 2,
                                rec->last };
        memcpy(r + len, ans, sizeof(ans));
        len += sizeof(ans);
    } /* AAAA: no data, NOERROR */
    sendto(e->fd, r, len, 0, (struct sockaddr *)&from, flen);
}

static struct dns *d;
static char hosts_path[64];

/* A hosts file: comments, aliases, IPv6 before IPv4 in the file (answers
 * still give IPv4 first), a scoped address that is skipped, a trailing dot,
 * upper case, CRLF. */
static const char hosts_text[] =
    "# test hosts file\n"
    "::1        both.gh.test\n"
    "127.0.0.1  localhost  Both.GH.test. alias.gh.test  # comment\r\n"
    "fe80::1%eth0 scoped.gh.test\n"
    "\n"
    "192.0.2.77\ttab.gh.test\n"
    "192.0.2.78 tab.gh.test\n"
    "not-an-address bad.gh.test\n";

static int setup(void **state)
{
    (void)state;
    lp = loop_new();
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    dns_port = ntohs(a.sin_port);
    responder = (struct ev){ fd, on_query };
    assert_int_equal(loop_add_read(lp, &responder), 0);
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", dns_port);
    static char keep[64];
    memcpy(keep, servers, sizeof(keep));
    snprintf(hosts_path, sizeof(hosts_path), "/tmp/gh-hosts-XXXXXX");
    int hfd = mkstemp(hosts_path);
    assert_true(hfd >= 0);
    assert_int_equal(write(hfd, hosts_text, sizeof(hosts_text) - 1),
                     (ssize_t)sizeof(hosts_text) - 1);
    close(hfd);
    struct cfg_dns c = { .servers = keep, .hosts = hosts_path, .timeout = 600,
                         .cache_size = 3, .min_ttl = 0, .max_ttl = 2000,
                         .negative_ttl = 400 };
    int err = 0;
    d = dns_new(lp, &c, &err);
    unlink(hosts_path); /* read once, at dns_new() */
    assert_non_null(d);
    for (size_t i = 0; i < ARRAY_LEN(recs); i++)
        recs[i].asked = 0;
    nx_asked = silent_asked = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dns_free(d);
    loop_del(lp, &responder);
    close(responder.fd);
    loop_free(lp);
    return 0;
}

/* ---- running the loop ---- */

struct got {
    int calls;
    struct dns_result r;
};

static void done(void *arg, const struct dns_result *r)
{
    struct got *g = arg;
    g->calls++;
    g->r = *r;
}

static int *until_flag;
static int until_want;
static struct timer tick, deadline;

static void on_tick(struct loop *l, struct timer *t)
{
    if (until_flag != NULL && *until_flag >= until_want) {
        loop_stop(l);
        return;
    }
    timer_set(l, t, 5, on_tick);
}

static void on_deadline(struct loop *l, struct timer *t)
{
    (void)t;
    loop_stop(l);
}

/* Runs the loop until *flag >= want or <ms> passed. */
static void run(int *flag, int want, int64_t ms)
{
    until_flag = flag;
    until_want = want;
    timer_set(lp, &tick, 0, on_tick);
    timer_set(lp, &deadline, ms, on_deadline);
    loop_run(lp);
    timer_cancel(lp, &tick);
    timer_cancel(lp, &deadline);
}

static const char *ip_of(const struct dns_result *r, unsigned i, int *port)
{
    static char buf[64];
    const union dns_addr *a = &r->addr[i];
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, buf, sizeof(buf));
        *port = ntohs(a->in.sin_port);
    } else {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, sizeof(buf));
        *port = ntohs(a->in6.sin6_port);
    }
    return buf;
}

static void test_immediate(void **state)
{
    (void)state;
    struct dns_result r;
    int port;
    assert_int_equal(dns_cached(d, "192.0.2.9", 80, &r), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(ip_of(&r, 0, &port), "192.0.2.9");
    assert_int_equal(port, 80);
    assert_int_equal(dns_cached(d, "2001:db8::7", 443, &r), 0);
    assert_string_equal(ip_of(&r, 0, &port), "2001:db8::7");
    assert_int_equal(port, 443);
    /* RFC 6761: "invalid" never resolves, and nobody is asked */
    assert_int_equal(dns_cached(d, "host.INVALID.", 80, &r), 0);
    assert_int_equal(r.err, -ENOENT);
    assert_string_equal(r.rcode, "NXDOMAIN");
    assert_int_equal(dns_cached(d, "a.gh.test", 80, &r), -EAGAIN);
    assert_int_equal(recs[0].asked, 0);
}

static void test_hosts_file(void **state)
{
    (void)state;
    struct got g = { 0 };
    int err = 0, port;
    struct dns_query *q = dns_resolve(d, "localhost", 8080, done, &g, &err);
    assert_non_null(q);
    assert_int_equal(g.calls, 0); /* never from inside dns_resolve() */
    run(&g.calls, 1, 2000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, 0);
    assert_string_equal(ip_of(&g.r, 0, &port), "127.0.0.1");
    assert_int_equal(port, 8080);
    /* at once, without asking DNS (the file was deleted after loading) */
    struct dns_result r;
    assert_int_equal(dns_cached(d, "BOTH.gh.test.", 1, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(ip_of(&r, 0, &port), "127.0.0.1"); /* IPv4 first */
    assert_string_equal(ip_of(&r, 1, &port), "::1");
    assert_int_equal(port, 1);
    assert_int_equal(dns_cached(d, "alias.gh.test", 2, &r), 0);
    assert_string_equal(ip_of(&r, 0, &port), "127.0.0.1");
    assert_int_equal(dns_cached(d, "tab.gh.test", 3, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(ip_of(&r, 0, &port), "192.0.2.77"); /* file order */
    assert_string_equal(ip_of(&r, 1, &port), "192.0.2.78");
    assert_int_equal(dns_cached(d, "scoped.gh.test", 80, &r), -EAGAIN);
    assert_int_equal(dns_cached(d, "bad.gh.test", 80, &r), -EAGAIN);
    assert_int_equal(dns_cached(d, "comment", 80, &r), -EAGAIN);
    struct dns_stats st;
    dns_stats(d, &st);
    assert_int_equal(st.lookups, 0);
}

static void test_ttl(void **state)
{
    (void)state;
    struct got g = { 0 };
    int err = 0, port;
    assert_non_null(dns_resolve(d, "a.gh.test", 80, done, &g, &err));
    run(&g.calls, 1, 2000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, 0);
    assert_string_equal(ip_of(&g.r, 0, &port), "192.0.2.1");
    assert_int_equal(port, 80);
    assert_int_equal(recs[0].asked, 1);
    /* within the TTL (1 s): from the cache, with the port asked now */
    struct dns_result r;
    assert_int_equal(dns_cached(d, "A.gh.test", 81, &r), 0);
    assert_string_equal(ip_of(&r, 0, &port), "192.0.2.1");
    assert_int_equal(port, 81);
    /* after it: asked again */
    usleep(1100 * 1000);
    loop_update_clock(lp);
    assert_int_equal(dns_cached(d, "a.gh.test", 80, &r), -EAGAIN);
    g.calls = 0;
    assert_non_null(dns_resolve(d, "a.gh.test", 80, done, &g, &err));
    run(&g.calls, 1, 2000);
    assert_int_equal(recs[0].asked, 2);
    /* max_ttl (2 s) caps a 3600 s TTL */
    g.calls = 0;
    assert_non_null(dns_resolve(d, "long.gh.test", 80, done, &g, &err));
    run(&g.calls, 1, 2000);
    assert_int_equal(dns_cached(d, "long.gh.test", 80, &r), 0);
    usleep(2100 * 1000);
    loop_update_clock(lp);
    assert_int_equal(dns_cached(d, "long.gh.test", 80, &r), -EAGAIN);
    /* TTL 0 with min_ttl 0: not cached at all */
    g.calls = 0;
    assert_non_null(dns_resolve(d, "zero.gh.test", 80, done, &g, &err));
    run(&g.calls, 1, 2000);
    assert_int_equal(g.r.err, 0);
    assert_int_equal(dns_cached(d, "zero.gh.test", 80, &r), -EAGAIN);
}

static void test_shared_and_cancel(void **state)
{
    (void)state;
    struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
    int err = 0, port;
    assert_non_null(dns_resolve(d, "b.gh.test", 1, done, &g1, &err));
    assert_non_null(dns_resolve(d, "b.gh.test", 2, done, &g2, &err));
    struct dns_query *q3 = dns_resolve(d, "b.gh.test", 3, done, &g3, &err);
    dns_cancel(q3);
    run(&g2.calls, 1, 2000);
    assert_int_equal(recs[1].asked, 1); /* one query for three waiters */
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g3.calls, 0);
    assert_string_equal(ip_of(&g1.r, 0, &port), "192.0.2.2");
    assert_int_equal(port, 1);
    ip_of(&g2.r, 0, &port);
    assert_int_equal(port, 2);
    /* every waiter cancelled: the answer still fills the cache */
    struct got g4 = { 0 };
    struct dns_query *q4 = dns_resolve(d, "c.gh.test", 80, done, &g4, &err);
    dns_cancel(q4);
    int never = 0;
    run(&never, 1, 300);
    assert_int_equal(g4.calls, 0);
    assert_int_equal(recs[2].asked, 1);
    struct dns_result r;
    assert_int_equal(dns_cached(d, "c.gh.test", 80, &r), 0);
    /* a cache hit through dns_resolve() is delivered later too */
    struct got g5 = { 0 };
    assert_non_null(dns_resolve(d, "c.gh.test", 80, done, &g5, &err));
    assert_int_equal(g5.calls, 0);
    run(&g5.calls, 1, 1000);
    assert_int_equal(g5.calls, 1);
    assert_int_equal(recs[2].asked, 1);
}

static void test_negative(void **state)
{
    (void)state;
    struct got g = { 0 };
    int err = 0;
    assert_non_null(dns_resolve(d, "x.nx.test", 80, done, &g, &err));
    run(&g.calls, 1, 2000);
    assert_int_equal(g.r.err, -ENOENT);
    assert_string_equal(g.r.rcode, "NXDOMAIN");
    unsigned asked = nx_asked;
    assert_true(asked >= 1);
    struct dns_result r;
    assert_int_equal(dns_cached(d, "x.nx.test", 80, &r), 0);
    assert_int_equal(r.err, -ENOENT);
    usleep(450 * 1000); /* negative_ttl 400 ms */
    loop_update_clock(lp);
    assert_int_equal(dns_cached(d, "x.nx.test", 80, &r), -EAGAIN);
}

static void test_timeout(void **state)
{
    (void)state;
    struct got g = { 0 };
    int err = 0;
    loop_update_clock(lp);
    int64_t t0 = loop_now(lp);
    assert_non_null(dns_resolve(d, "x.silent.test", 80, done, &g, &err));
    run(&g.calls, 1, 3000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, -ETIMEDOUT);
    assert_string_equal(g.r.rcode, "TIMEOUT");
    int64_t took = loop_now(lp) - t0;
    assert_true(took >= 400 && took < 1500); /* dns.timeout is 600 ms */
    assert_int_equal(silent_asked >= 2, 1); /* tried twice */
}

static void test_cache_bound(void **state)
{
    (void)state;
    struct got g = { 0 };
    int err = 0;
    const char *names[] = { "a.gh.test", "b.gh.test", "c.gh.test",
                            "long.gh.test" };
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        g.calls = 0;
        assert_non_null(dns_resolve(d, names[i], 80, done, &g, &err));
        run(&g.calls, 1, 2000);
    }
    struct dns_stats st;
    dns_stats(d, &st);
    assert_int_equal(st.entries, 3); /* cache_size 3 */
    struct dns_result r;
    /* the least recently used (a) went */
    assert_int_equal(dns_cached(d, "a.gh.test", 80, &r), -EAGAIN);
    assert_int_equal(dns_cached(d, "long.gh.test", 80, &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_immediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
