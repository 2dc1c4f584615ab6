/*
 * Upstream pools (issue 4): balancers, eligibility, slow start, passive
 * ejections, the retry budget and cookies, on a real configuration
 * snapshot, shared state and worker loop, without sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http/h1.h"
#include "upstream/ups_int.h"

struct fixture {
    struct cfg *cfg;
    struct ups_state *st;
    struct loop *loop;
    struct ups_set *set;
    struct ups *u;
};

/* Loads "upstreams: { was: { <body> } }" with a minimal listener. */
static void setup(struct fixture *f, const char *body)
{
    char yaml[2048], err[512];
    snprintf(yaml, sizeof(yaml),
             "upstreams:\n  was: { %s }\n"
             "listeners:\n  - listen: 127.0.0.1:8080\n"
             "    sites: [{ routes: [{ path: /, upstream: was }] }]\n",
             body);
    f->cfg = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (f->cfg == NULL)
        fail_msg("%s", err);
    f->st = ups_state_new(f->cfg, NULL);
    f->loop = loop_new();
    assert_non_null(f->st);
    assert_non_null(f->loop);
    f->set = ups_set_new(f->cfg, f->st, f->loop);
    assert_non_null(f->set);
    f->u = &f->set->ups[0];
}

static void teardown_(struct fixture *f)
{
    ups_set_free(f->set);
    ups_state_free(f->st);
    loop_free(f->loop);
    cfg_unref(f->cfg);
}

static const struct ups_key nokey = { .sticky = -1 };

static int pick1(struct ups *u)
{
    int s = ups_pick(u, &nokey, 0);
    if (s >= 0)
        ups_unhold(u, (unsigned)s);
    return s;
}

static void test_smooth_wrr(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [{ address: 10.0.0.1:80, weight: 5 }, 10.0.0.2:80, "
              "10.0.0.3:80]");
    char seq[15] = { 0 };
    for (int i = 0; i < 14; i++)
        seq[i] = (char)('a' + pick1(f.u));
    assert_string_equal(seq, "aabacaaaabacaa");
    teardown_(&f);
}

static void test_least_conn_and_ties(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80], "
              "balance: least_conn");
    int a = ups_pick(f.u, &nokey, 0), b = ups_pick(f.u, &nokey, 0),
        c = ups_pick(f.u, &nokey, 0);
    assert_true(a != b && b != c && a != c); /* ties go round */
    ups_unhold(f.u, (unsigned)b);
    assert_int_equal(ups_pick(f.u, &nokey, 0), b); /* the one with none */
    assert_int_equal(ups__inflight(f.u, (unsigned)b), 1);
    /* skipping a tried server */
    int d = ups_pick(f.u, &nokey, 1ull << a);
    assert_true(d != a);
    teardown_(&f);
}

static void test_max_conns_full_then_backup(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [{ address: 10.0.0.1:80, max_conns: 1 }, "
              "{ address: 10.0.0.2:80, max_conns: 1 }, "
              "{ address: 10.0.0.3:80, backup: true }]");
    int a = ups_pick(f.u, &nokey, 0), b = ups_pick(f.u, &nokey, 0);
    assert_true(a >= 0 && a < 2 && b >= 0 && b < 2 && a != b);
    /* primaries busy, not down: wait, never spill to the backup */
    assert_int_equal(ups_pick(f.u, &nokey, 0), UPS_FULL);
    ups__set_down(f.u->sh, 0, true, 0);
    ups__set_down(f.u->sh, 1, true, 0);
    assert_int_equal(ups_pick(f.u, &nokey, 0), 2);
    /* every server tried: none */
    assert_int_equal(ups_pick(f.u, &nokey, 7), UPS_NONE);
    teardown_(&f);
}

static void test_nothing_healthy_tries_anyway(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80]");
    ups__set_down(f.u->sh, 0, true, 0);
    ups__set_down(f.u->sh, 1, true, 0);
    int s = pick1(f.u);
    assert_true(s == 0 || s == 1);
    teardown_(&f);
}

static uint64_t key_hash(int i)
{
    char k[32];
    int n = snprintf(k, sizeof(k), "user-%d", i);
    return ups__hash(k, (size_t)n, 0);
}

static void test_ring_remap_and_spread(void **state)
{
    (void)state;
    struct fixture f3, f4;
    setup(&f3, "servers: [10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80], "
               "balance: hash, hash_key: uri");
    setup(&f4, "servers: [10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80, 10.0.0.4:80], "
               "balance: hash, hash_key: uri");
    int moved = 0, wrong = 0, share[4] = { 0 };
    for (int i = 0; i < 10000; i++) {
        unsigned a = ups__ring_pick(&f3.u->sh->ring, key_hash(i), 7);
        unsigned b = ups__ring_pick(&f4.u->sh->ring, key_hash(i), 15);
        share[b]++;
        if (a != b) {
            moved++;
            wrong += b != 3;
        }
    }
    assert_int_equal(wrong, 0); /* keys only move to the new server */
    assert_in_range(moved, 2000, 3000);
    for (int i = 0; i < 4; i++)
        assert_in_range(share[i], 1700, 3300);
    /* a server out of the set passes its keys on, spread over the others */
    int to[4] = { 0 };
    for (int i = 0; i < 10000; i++) {
        if (ups__ring_pick(&f4.u->sh->ring, key_hash(i), 15) != 0)
            continue;
        to[ups__ring_pick(&f4.u->sh->ring, key_hash(i), 14)]++;
    }
    assert_int_equal(to[0], 0);
    assert_true(to[1] > 200 && to[2] > 200 && to[3] > 200);
    teardown_(&f3);
    teardown_(&f4);
}

static void test_slow_start_ramp(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [{ address: 10.0.0.1:80, weight: 2 }, 10.0.0.2:80], "
              "slow_start: 10s");
    loop_update_clock(f.loop);
    int64_t now = loop_now(f.loop);
    assert_int_equal(ups__weight(f.u, 0, now), 2 * UPS_WSCALE);
    atomic_store(&f.u->sh->srv[0].back_at, now - 5000);
    assert_int_equal(ups__weight(f.u, 0, now), UPS_WSCALE); /* half way */
    atomic_store(&f.u->sh->srv[0].back_at, now);
    assert_int_equal(ups__weight(f.u, 0, now), 2 * UPS_WSCALE / 10); /* 10% */
    atomic_store(&f.u->sh->srv[0].back_at, now - 10000);
    assert_int_equal(ups__weight(f.u, 0, now), 2 * UPS_WSCALE);
    teardown_(&f);
}

static void test_passive_ejection_doubles(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80], passive: { failures: 2, "
              "eject: 1s, eject_max: 3s }");
    loop_update_clock(f.loop);
    int64_t now = loop_now(f.loop);
    struct ups_srv_sh *s = &f.u->sh->srv[0];
    int64_t want[] = { 1000, 2000, 3000, 3000 };
    for (int k = 0; k < 4; k++) {
        ups_report(f.u, 0, UPS_FAIL, -1);
        assert_int_equal(atomic_load(&s->eject_until), 0);
        ups_report(f.u, 0, UPS_OK, 100); /* a success breaks the run */
        ups_report(f.u, 0, UPS_FAIL, -1);
        assert_int_equal(atomic_load(&s->eject_until), 0);
        ups_report(f.u, 0, UPS_5XX, 100);
        assert_int_equal(atomic_load(&s->eject_until), now + want[k]);
        assert_false(ups__usable(f.u->sh, 0, now));
        assert_int_equal(pick1(f.u), 1);
        atomic_store(&s->eject_until, 0); /* as if it ran out */
    }
    /* long well behaved: start over */
    atomic_store(&s->eject_end, now - 10000);
    ups_report(f.u, 0, UPS_FAIL, -1);
    ups_report(f.u, 0, UPS_FAIL, -1);
    assert_int_equal(atomic_load(&s->eject_until), now + 1000);
    teardown_(&f);
}

static void test_retry_budget(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80], retries: { budget: 20%, budget_min: 0 }");
    struct h1_field fl[1];
    struct h1_msg m;
    h1_msg_init(&m, fl, 1);
    struct ups_req r = { NULL, STR_LIT("/"), &m };
    struct ups_key k;
    assert_false(ups_retry_allowed(f.u));
    for (int i = 0; i < 10; i++)
        ups_prepare(f.u, &r, &k); /* 10 requests: 2 retries */
    assert_true(ups_retry_allowed(f.u));
    assert_true(ups_retry_allowed(f.u));
    assert_false(ups_retry_allowed(f.u));
    teardown_(&f);
}

static void test_cookies_and_sticky(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80], sticky: { cookie: S }");
    struct ups_srv_sh *s1 = &f.u->sh->srv[1];
    assert_int_equal(strlen(s1->token), 16);
    assert_string_not_equal(s1->token, f.u->sh->srv[0].token);
    char want[128];
    snprintf(want, sizeof(want), "Set-Cookie: S=%s; Path=/; HttpOnly\r\n", s1->token);
    assert_string_equal(s1->set_cookie, want);

    char cookie[128];
    snprintf(cookie, sizeof(cookie), "a=1;S = \"%s\" ;b=2", s1->token);
    struct h1_field fl[2] = {
        { STR_LIT("Cookie"), STR_LIT("SS=x; aS=y") },
        { STR_LIT("cookie"), str_cstr(cookie) },
    };
    struct h1_msg m;
    h1_msg_init(&m, fl, 2);
    m.nfields = 2;
    struct str v;
    assert_true(ups__cookie(&m, STR_LIT("S"), &v));
    assert_int_equal(v.len, 16);
    assert_memory_equal(v.p, s1->token, 16);
    assert_true(ups__cookie(&m, STR_LIT("aS"), &v));
    assert_memory_equal(v.p, "y", 1);
    assert_false(ups__cookie(&m, STR_LIT("b2"), &v));

    struct ups_req r = { NULL, STR_LIT("/"), &m };
    struct ups_key k;
    ups_prepare(f.u, &r, &k);
    assert_int_equal(k.sticky, 1);
    for (int i = 0; i < 4; i++) {
        int p = ups_pick(f.u, &k, 0);
        assert_int_equal(p, 1);
        assert_null(ups_sticky_cookie(f.u, &k, 1)); /* already named */
        ups_unhold(f.u, 1);
    }
    assert_string_equal(ups_sticky_cookie(f.u, &k, 0), f.u->sh->srv[0].set_cookie);
    ups__set_down(f.u->sh, 1, true, 0); /* its server goes: another one */
    assert_int_equal(pick1(f.u), 0);
    teardown_(&f);
}

/* sticky: { learn } (issue 9): Set-Cookie parsing, what is learnt and
 * told to the cluster, a removed or unknown token ignored. */
static void test_stick_learn(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80], "
              "sticky: { learn: JSESSIONID }");
    assert_true(ups_stick_table(f.u));
    assert_null(f.u->sh->srv[0].set_cookie); /* no proxy cookie */
    loop_update_clock(f.loop);
    /* a first request, no session: no key; the response sets one */
    struct h1_field none[1] = { { STR_LIT("Accept"), STR_LIT("*/*") } };
    struct h1_msg m;
    h1_msg_init(&m, none, 1);
    m.nfields = 1;
    struct ups_req r = { NULL, STR_LIT("/"), &m };
    struct ups_key k;
    ups_prepare(f.u, &r, &k);
    assert_false(k.has_skey);
    struct h1_field rf[3] = {
        { STR_LIT("Set-Cookie"), STR_LIT("JSESSIONID=; Max-Age=0") }, /* a delete */
        { STR_LIT("Set-Cookie"), STR_LIT("OTHER=1; Path=/") },
        { STR_LIT("set-cookie"), STR_LIT("JSESSIONID=\"s1\"; Path=/; HttpOnly") },
    };
    struct h1_msg resp;
    h1_msg_init(&resp, rf, 3);
    resp.nfields = 3;
    uint64_t out[2];
    assert_int_equal(ups_stick_learn(f.u, &k, 2, &resp, out), 1);
    /* the next request carrying it goes to server 2, not the balancer's */
    struct h1_field cf[1] = { { STR_LIT("Cookie"), STR_LIT("a=b; JSESSIONID=s1") } };
    h1_msg_init(&m, cf, 1);
    m.nfields = 1;
    ups_prepare(f.u, &r, &k);
    assert_true(k.has_skey);
    assert_int_equal(k.skey, out[0]);
    assert_int_equal(k.sticky, 2);
    for (int i = 0; i < 4; i++) {
        int p = ups_pick(f.u, &k, 0);
        assert_int_equal(p, 2);
        ups_unhold(f.u, 2);
    }
    /* routed by the table and no new cookie: nothing to tell */
    h1_msg_init(&resp, rf, 0);
    assert_int_equal(ups_stick_learn(f.u, &k, 2, &resp, out), 0);
    /* server 2 is down: balanced elsewhere, then re-learnt there */
    ups__set_down(f.u->sh, 2, true, 0);
    int p = ups_pick(f.u, &k, 0);
    assert_true(p == 0 || p == 1);
    ups_unhold(f.u, (unsigned)p);
    assert_int_equal(ups_stick_learn(f.u, &k, (unsigned)p, &resp, out), 1);
    assert_int_equal(out[0], k.skey);
    ups_prepare(f.u, &r, &k);
    assert_int_equal(k.sticky, p);
    /* the cluster names another server: it wins, and is learnt locally */
    int q = p == 0 ? 1 : 0;
    ups_stick_told(f.u, &k, ups_stick_token(f.u, (unsigned)q));
    assert_int_equal(k.sticky, q);
    ups_prepare(f.u, &r, &k);
    assert_int_equal(k.sticky, q);
    /* an unknown token (a server removed): the local answer stays, and what
     * the request learns goes back to the cluster */
    ups_stick_told(f.u, &k, STR_LIT("0123456789abcdef"));
    assert_int_equal(k.sticky, q);
    assert_int_equal(k.stok, 0);
    assert_int_equal(ups_stick_learn(f.u, &k, (unsigned)q, &resp, out), 1);
    /* the Redis key: the same for the same pool and key, 34 bytes */
    char b1[UPS_STICK_KEYLEN + 1], b2[UPS_STICK_KEYLEN + 1];
    struct str k1 = ups_stick_rkey(f.u, k.skey, b1);
    struct str k2 = ups_stick_rkey(f.u, k.skey + 1, b2);
    assert_int_equal(k1.len, 34);
    assert_memory_equal(k1.p, "s:", 2);
    assert_memory_not_equal(k1.p, k2.p, 34);
    teardown_(&f);
}

/* sticky: { by: source }: the client address is the key. */
static void test_stick_source(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80], sticky: { by: source }");
    loop_update_clock(f.loop);
    struct sockaddr_in a = { .sin_family = AF_INET }, b = a;
    inet_pton(AF_INET, "192.0.2.7", &a.sin_addr);
    inet_pton(AF_INET, "192.0.2.8", &b.sin_addr);
    struct h1_msg m;
    h1_msg_init(&m, NULL, 0);
    struct ups_req ra = { (struct sockaddr *)&a, STR_LIT("/"), &m };
    struct ups_req rb = { (struct sockaddr *)&b, STR_LIT("/"), &m };
    struct ups_key ka, kb;
    ups_prepare(f.u, &ra, &ka);
    ups_prepare(f.u, &rb, &kb);
    assert_true(ka.has_skey && kb.has_skey);
    assert_int_not_equal(ka.skey, kb.skey);
    assert_int_equal(ka.sticky, -1);
    uint64_t out[2];
    assert_int_equal(ups_stick_learn(f.u, &ka, 1, NULL, out), 1);
    ups_prepare(f.u, &ra, &ka);
    ups_prepare(f.u, &rb, &kb);
    assert_int_equal(ka.sticky, 1);
    assert_int_equal(kb.sticky, -1);
    a.sin_port = htons(5555); /* another connection, the same client */
    ups_prepare(f.u, &ra, &ka);
    assert_int_equal(ka.sticky, 1);
    teardown_(&f);
}

static void test_ewma_avoids_slow(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80], balance: ewma");
    loop_update_clock(f.loop);
    ups_report(f.u, 0, UPS_OK, 200000);
    ups_report(f.u, 1, UPS_OK, 1000);
    ups_report(f.u, 2, UPS_OK, 1100);
    int n[3] = { 0 };
    for (int i = 0; i < 20; i++)
        n[pick1(f.u)]++;
    assert_int_equal(n[0], 0);
    assert_int_equal(n[1], 10); /* within 25%: shared */
    /* peak: one slow answer replaces the average at once */
    ups_report(f.u, 1, UPS_OK, 500000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pick1(f.u), 2);
    teardown_(&f);
}

static void test_state_carry_over(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, "servers: [10.0.0.1:80, 10.0.0.2:80]");
    ups__set_down(f.u->sh, 1, true, 0);
    const char *y = "upstreams:\n  was: { servers: [10.0.0.2:80, 10.0.0.9:80] }\n"
                    "listeners:\n  - listen: 127.0.0.1:8080\n"
                    "    sites: [{ routes: [{ path: /, upstream: was }] }]\n";
    struct cfg *c2 = cfg_load_string(y, strlen(y), "t2.yaml", NULL, 0);
    assert_non_null(c2);
    struct ups_state *st2 = ups_state_new(c2, f.st);
    assert_non_null(st2);
    assert_true(atomic_load(&st2->ups[0].srv[0].down)); /* 10.0.0.2 kept */
    assert_false(atomic_load(&st2->ups[0].srv[1].down));
    ups_state_free(st2);
    cfg_unref(c2);
    teardown_(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smooth_wrr),
        cmocka_unit_test(test_least_conn_and_ties),
        cmocka_unit_test(test_max_conns_full_then_backup),
        cmocka_unit_test(test_nothing_healthy_tries_anyway),
        cmocka_unit_test(test_ring_remap_and_spread),
        cmocka_unit_test(test_slow_start_ramp),
        cmocka_unit_test(test_passive_ejection_doubles),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_cookies_and_sticky),
        cmocka_unit_test(test_stick_learn),
        cmocka_unit_test(test_stick_source),
        cmocka_unit_test(test_ewma_avoids_slow),
        cmocka_unit_test(test_state_carry_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
