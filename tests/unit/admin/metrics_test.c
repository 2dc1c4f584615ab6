/* Metrics (issue 8): slots by labels survive a new snapshot, per-worker
 * counters sum, the Prometheus text has the expected series, quantiles
 * interpolate within buckets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "admin/metrics.h"
#include "admin/sbuf.h"
#include "config/config.h"

static char err[512];

static struct cfg *load(const char *yaml)
{
    struct cfg *c = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (c == NULL)
        fail_msg("load failed: %s", err);
    return c;
}

#define CFG_A                                                                  \
    "upstreams:\n  was: { servers: [127.0.0.1:9001, 127.0.0.1:9002] }\n"       \
    "listeners:\n  - listen: 127.0.0.1:8080\n    sites:\n"                     \
    "      - hosts: [a.test]\n        routes: [{ path: /, upstream: was },"     \
    " { exact: /x, return: { status: 204 } }]\n"

#define CFG_B                                                                  \
    "upstreams:\n  was: { servers: [127.0.0.1:9002] }\n"                       \
    "listeners:\n  - listen: 127.0.0.1:8080\n    sites:\n"                     \
    "      - hosts: [a.test]\n        routes: [{ path: /new/, upstream: was }," \
    " { path: /, upstream: was }]\n"

static void test_slots_survive_reload(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    struct cfg *a = load(CFG_A), *b = load(CFG_B);
    assert_int_equal(metrics_register(m, a), 0);
    assert_int_equal(metrics_register(m, b), 0);
    /* same labels, same slot */
    assert_int_equal(a->listeners[0].mslot, b->listeners[0].mslot);
    assert_int_equal(a->listeners[0].sites[0].routes[0].mslot,
                     b->listeners[0].sites[0].routes[1].mslot);
    assert_int_equal(a->upstreams[0].servers[1].mslot, b->upstreams[0].servers[0].mslot);
    assert_int_not_equal(b->listeners[0].sites[0].routes[0].mslot,
                         b->listeners[0].sites[0].routes[1].mslot);
    /* counts in two workers sum */
    uint32_t r = a->listeners[0].sites[0].routes[0].mslot;
    m_request(m_slot(metrics_worker(m, 0), r), 200, 10, 100, 300);
    m_request(m_slot(metrics_worker(m, 1), r), 503, 0, 50, 2000000);
    m_request(m_slot(metrics_worker(m, 1), r), 0, 0, 0, 1);
    assert_int_equal(metrics_slot_sum(m, r, MR_2XX), 1);
    assert_int_equal(metrics_slot_sum(m, r, MR_5XX), 1);
    assert_int_equal(metrics_slot_sum(m, r, MR_OTHER), 1);
    /* indexes that are clocks in a server slot still sum in a route slot
     * (MR_5XX, MR_OTHER, MR_HIST + 1 share MS_LAST_* indexes) */
    m_request(m_slot(metrics_worker(m, 0), r), 502, 0, 0, 200);
    m_request(m_slot(metrics_worker(m, 0), r), 0, 0, 0, 200);
    m_request(m_slot(metrics_worker(m, 1), r), 0, 0, 0, 200);
    assert_int_equal(metrics_slot_sum(m, r, MR_5XX), 2);
    assert_int_equal(metrics_slot_sum(m, r, MR_OTHER), 3);
    assert_int_equal(metrics_slot_sum(m, r, MR_HIST + 1), 3);
    assert_int_equal(metrics_slot_sum(m, r, MR_BYTES_OUT), 150);
    uint64_t tot[MR_END];
    metrics_requests_total(m, tot);
    assert_int_equal(tot[MR_2XX] + tot[MR_5XX] + tot[MR_OTHER], 6);
    /* last-connect clocks are a max, not a sum */
    uint32_t s = a->upstreams[0].servers[0].mslot;
    m_max(&m_slot(metrics_worker(m, 0), s)->v[MS_LAST_FAIL_MS], 5000);
    m_max(&m_slot(metrics_worker(m, 1), s)->v[MS_LAST_FAIL_MS], 7000);
    assert_int_equal(metrics_slot_max(m, s, MS_LAST_FAIL_MS), 7000);

    size_t len;
    char *text = metrics_prometheus(m, b, "# extra\n", &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(strncmp(text, "# extra\n", 8) == 0);
    assert_non_null(strstr(text, "gatehouse_requests_total{listener=\"127.0.0.1:8080\","
                                 "site=\"a.test\",route=\"/\",code=\"2xx\"} 1\n"));
    assert_non_null(strstr(text, "gatehouse_requests_total{listener=\"127.0.0.1:8080\","
                                 "site=\"a.test\",route=\"/\",code=\"other\"} 3\n"));
    assert_non_null(strstr(text, "gatehouse_request_duration_seconds_bucket{listener="
                                 "\"127.0.0.1:8080\",site=\"a.test\",route=\"/\","
                                 "le=\"0.0005\"} 5\n"));
    assert_non_null(strstr(text, "le=\"+Inf\"} 6\n"));
    /* b has no server 9001 and no exact route /x: not listed */
    assert_null(strstr(text, "127.0.0.1:9001"));
    assert_null(strstr(text, "route=\"= /x\""));
    assert_non_null(strstr(text, "route=\"/new/\""));
    assert_non_null(strstr(text, "# TYPE gatehouse_cache_requests_total counter\n"
                                 "gatehouse_cache_requests_total{result=\"hit\"} 0\n"));
    free(text);
    text = metrics_prometheus(m, a, NULL, &len);
    assert_non_null(strstr(text, "route=\"= /x\""));
    free(text);
    cfg_unref(a);
    cfg_unref(b);
    metrics_free(m);
}

#define CFG_H                                                                  \
    "upstreams:\n  was: { servers: [127.0.0.1:9001, 127.0.0.1:9002],"           \
    " health: { path: /h, interval: 1s } }\n"                                    \
    "  plain: { servers: [127.0.0.1:9003] }\n"                                   \
    "listeners:\n  - listen: 127.0.0.1:8080\n    sites:\n"                      \
    "      - routes: [{ path: /, upstream: was }]\n"

/* The health thread's counters sum with the workers'; active checks decide
 * a server's state when its pool has them. */
static void test_health_state(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    struct cfg *c = load(CFG_H);
    assert_int_equal(metrics_register(m, c), 0);
    const struct cfg_upstream *was = &c->upstreams[0], *plain = &c->upstreams[1];
    const struct cfg_server *s1 = &was->servers[0], *s2 = &was->servers[1];
    const struct cfg_server *s3 = &plain->servers[0];
    struct mworker *hm = metrics_health(m), *w0 = metrics_worker(m, 0);
    assert_ptr_not_equal(hm, w0);
    assert_ptr_not_equal(hm, metrics_worker(m, 1));
    assert_int_equal(metrics_server_state(m, was, s1), M_SRV_UNKNOWN);
    /* a good connect, then checks failing without reaching fall: up */
    m_max(&m_slot(w0, s1->mslot)->v[MS_LAST_OK_MS], 1000);
    m_hc_result(m_slot(hm, s1->mslot), false, false, 1100);
    assert_int_equal(metrics_server_state(m, was, s1), M_SRV_UP);
    /* down by the checks, even after a good connect */
    m_hc_result(m_slot(hm, s1->mslot), false, true, 1200);
    m_max(&m_slot(w0, s1->mslot)->v[MS_LAST_OK_MS], 1300);
    assert_int_equal(metrics_server_state(m, was, s1), M_SRV_DOWN);
    /* up again: a passed check is newer than the last failed connect */
    m_max(&m_slot(w0, s1->mslot)->v[MS_LAST_FAIL_MS], 1400);
    m_hc_result(m_slot(hm, s1->mslot), true, false, 1500);
    assert_int_equal(metrics_server_state(m, was, s1), M_SRV_UP);
    assert_int_equal(metrics_slot_sum(m, s1->mslot, MS_HEALTH_OK), 1);
    assert_int_equal(metrics_slot_sum(m, s1->mslot, MS_HEALTH_FAIL), 2);
    assert_int_equal(metrics_slot_max(m, s1->mslot, MS_HEALTH_LAST_MS), 1500);
    /* a failed connect after the last pass: down until something passes */
    m_max(&m_slot(w0, s1->mslot)->v[MS_LAST_FAIL_MS], 1600);
    assert_int_equal(metrics_server_state(m, was, s1), M_SRV_DOWN);
    /* a pool without checks ignores stale health gauges */
    m_max(&m_slot(w0, s3->mslot)->v[MS_LAST_OK_MS], 1000);
    m_hc_result(m_slot(hm, s3->mslot), false, true, 1100);
    assert_int_equal(metrics_server_state(m, plain, s3), M_SRV_UP);

    size_t len;
    char *text = metrics_prometheus(m, c, NULL, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "gatehouse_upstream_health_checks_total{upstream=\"was\","
                                 "server=\"127.0.0.1:9001\",result=\"failed\"} 2\n"));
    assert_non_null(strstr(text, "gatehouse_upstream_health_last_check_passed{upstream="
                                 "\"was\",server=\"127.0.0.1:9001\"} 1\n"));
    assert_non_null(strstr(text, "gatehouse_upstream_health_last_check_timestamp_seconds"
                                 "{upstream=\"was\",server=\"127.0.0.1:9001\"} 1.500\n"));
    assert_non_null(strstr(text, "gatehouse_upstream_up{upstream=\"was\",server="
                                 "\"127.0.0.1:9001\"} 0\n"));
    /* never checked, or no checks: no last-check series */
    assert_null(strstr(text, "last_check_passed{upstream=\"was\",server=\"127.0.0.1:9002\"}"));
    assert_null(strstr(text, "last_check_passed{upstream=\"plain\""));
    assert_non_null(strstr(text, "gatehouse_denied_total{reason=\"conn_limit\"} 0\n"));
    (void)s2;
    free(text);
    cfg_unref(c);
    metrics_free(m);
}

static void test_quantile(void **state)
{
    (void)state;
    uint64_t h[M_HIST_N] = { 0 };
    assert_true(metrics_quantile(h, 0.5) == 0);
    h[0] = 100; /* 100 requests in [0, 100us] */
    double q = metrics_quantile(h, 0.5);
    assert_true(q >= 49 && q <= 51);
    h[0] = 0;
    h[3] = 10; /* (500us, 1ms] */
    q = metrics_quantile(h, 0.99);
    assert_true(q > 500 && q <= 1000);
    h[M_HIST_N - 1] = 1000; /* +Inf bucket dominates */
    q = metrics_quantile(h, 0.99);
    assert_true(q >= (double)m_hist_le_us[M_HIST_N - 2]);
}

static void test_sbuf_escapes(void **state)
{
    (void)state;
    struct sbuf b = { 0 };
    sb_label(&b, "a\"b\\c\nd");
    sb_puts(&b, " ");
    sb_json(&b, "q\"\\\x01");
    size_t len;
    char *s = sb_take(&b, &len);
    assert_string_equal(s, "a\\\"b\\\\c\\nd \"q\\\"\\\\\\u0001\"");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_survive_reload),
        cmocka_unit_test(test_health_state),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_sbuf_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
