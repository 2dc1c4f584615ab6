/*
 * The RFC 9111 rules, section by section: Cache-Control parsing (§5.2,
 * §4.2.1 duplicates and invalid values), HTTP-dates (RFC 9110 §5.6.7),
 * freshness lifetime (§4.2.1, heuristics §4.2.2), current age (§4.2.3),
 * what may be stored (§3, §3.5), how a stored response may be used (§4,
 * §4.2.4, §5.2.1 request directives, RFC 5861), and validators (RFC 9110
 * §8.8.3, §13.1.2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cache/fresh.h"

#define NOW INT64_C(1700000000) /* 2023-11-14T22:13:20Z */

static struct cc_resp resp_cc(const char *v)
{
    struct cc_resp cc;
    cc_resp_init(&cc);
    cc_parse_resp(&cc, str_cstr(v));
    return cc;
}

static struct cc_req req_cc(const char *v)
{
    struct cc_req cc;
    cc_req_init(&cc);
    cc_parse_req(&cc, str_cstr(v));
    return cc;
}

static const struct fresh_policy pol = { .heuristic_pct = 10,
                                         .heuristic_max = 86400 };

/* A response received just now, with Date = now. */
static struct cache_meta meta(int status, const char *cc)
{
    struct cache_meta m;
    memset(&m, 0, sizeof(m));
    m.status = status;
    m.date = m.req_time = m.resp_time = NOW;
    m.expires = DATE_NONE;
    m.last_modified = DATE_NONE;
    m.cc = resp_cc(cc ? cc : "");
    return m;
}

/* ---- §1.2.2 delta-seconds ---- */

static void test_delta(void **state)
{
    (void)state;
    assert_int_equal(cc_delta(STR_LIT("0")), 0);
    assert_int_equal(cc_delta(STR_LIT("3600")), 3600);
    assert_int_equal(cc_delta(STR_LIT("007")), 7);
    assert_int_equal(cc_delta(STR_LIT("2147483648")), CC_DELTA_MAX);
    assert_int_equal(cc_delta(STR_LIT("2147483649")), CC_DELTA_MAX);
    assert_int_equal(cc_delta(STR_LIT("99999999999999999999999")), CC_DELTA_MAX);
    static const char *bad[] = { "", "-1", "+1", "1.0", "1a", "a1", " 1", "1 ",
                                 "0x10", "1e3" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cc_delta(str_cstr(bad[i])), CC_INVALID);
}

/* ---- §5.2 Cache-Control syntax ---- */

static void test_cc_resp_basic(void **state)
{
    (void)state;
    struct cc_resp cc = resp_cc("max-age=3600, public");
    assert_int_equal(cc.max_age, 3600);
    assert_true(cc.flags & CC_PUBLIC);
    cc = resp_cc("MAX-AGE=10,S-MAXAGE=20,No-Store");
    assert_int_equal(cc.max_age, 10);
    assert_int_equal(cc.s_maxage, 20);
    assert_true(cc.flags & CC_NO_STORE);
    cc = resp_cc("max-age=\"3600\"");         /* quoted form accepted */
    assert_int_equal(cc.max_age, 3600);
    cc = resp_cc("must-revalidate, proxy-revalidate, no-transform, immutable, must-understand");
    assert_true(cc.flags & CC_MUST_REVALIDATE);
    assert_true(cc.flags & CC_PROXY_REVALIDATE);
    assert_true(cc.flags & CC_NO_TRANSFORM);
    assert_true(cc.flags & CC_IMMUTABLE);
    assert_true(cc.flags & CC_MUST_UNDERSTAND);
    cc = resp_cc("stale-while-revalidate=30, stale-if-error=600");
    assert_int_equal(cc.swr, 30);
    assert_int_equal(cc.sie, 600);
    cc = resp_cc(",, ,max-age=5,,");          /* empty list elements */
    assert_int_equal(cc.max_age, 5);
    cc = resp_cc("foo=\"a,b\", max-age=7");    /* commas inside quotes */
    assert_int_equal(cc.max_age, 7);
    cc = resp_cc("x-ext, max-age=9");          /* unknown directives ignored */
    assert_int_equal(cc.max_age, 9);
}

static void test_cc_resp_invalid(void **state)
{
    (void)state;
    /* §4.2.1: invalid freshness information makes the response stale */
    static const char *bad[] = {
        "max-age=", "max-age", "max-age=-1", "max-age=+3600", "max-age=3600.0",
        "max-age=3600a", "max-age=a3600", "max-age = 3600", "max-age =3600",
        "max-age= 3600", "max-age=\"3600", "max-age=36 00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cc_resp cc = resp_cc(bad[i]);
        assert_int_equal(cc.max_age, CC_INVALID);
        struct cache_meta m = meta(200, bad[i]);
        assert_int_equal(fresh_lifetime(&m, &pol), 0);
    }
    struct cc_resp cc = resp_cc("s-maxage=x");
    assert_int_equal(cc.s_maxage, CC_INVALID);
}

static void test_cc_resp_duplicates(void **state)
{
    (void)state;
    /* §4.2.1: the first occurrence is used */
    struct cc_resp cc = resp_cc("max-age=3600, max-age=1");
    assert_int_equal(cc.max_age, 3600);
    cc = resp_cc("max-age=1, max-age=3600");
    assert_int_equal(cc.max_age, 1);
    /* across field lines too */
    cc_resp_init(&cc);
    cc_parse_resp(&cc, STR_LIT("max-age=10"));
    cc_parse_resp(&cc, STR_LIT("max-age=20, public"));
    assert_int_equal(cc.max_age, 10);
    assert_true(cc.flags & CC_PUBLIC);
    /* an invalid first occurrence wins: stale */
    cc = resp_cc("max-age=x, max-age=60");
    assert_int_equal(cc.max_age, CC_INVALID);
}

static void test_cc_resp_qualified(void **state)
{
    (void)state;
    struct cc_resp cc = resp_cc("no-cache=\"Set-Cookie, X-Foo\", max-age=60");
    assert_true(cc.flags & CC_NO_CACHE_F);
    assert_false(cc.flags & CC_NO_CACHE);
    assert_true(str_eq(cc.no_cache_fields, STR_LIT("Set-Cookie, X-Foo")));
    cc = resp_cc("no-cache=X-Foo");             /* token form */
    assert_true(cc.flags & CC_NO_CACHE_F);
    assert_true(str_eq(cc.no_cache_fields, STR_LIT("X-Foo")));
    cc = resp_cc("no-cache=\"X-Foo\", no-cache"); /* unqualified wins */
    assert_true(cc.flags & CC_NO_CACHE);
    assert_false(cc.flags & CC_NO_CACHE_F);
    cc = resp_cc("private=\"Set-Cookie\"");
    assert_true(cc.flags & CC_PRIVATE_F);
    assert_false(cc.flags & CC_PRIVATE);
    cc = resp_cc("private");
    assert_true(cc.flags & CC_PRIVATE);
}

static void test_cc_req(void **state)
{
    (void)state;
    struct cc_req cc = req_cc("max-age=0");
    assert_int_equal(cc.max_age, 0);
    cc = req_cc("max-stale");
    assert_int_equal(cc.max_stale, CC_ANY);
    cc = req_cc("max-stale=30, min-fresh=5");
    assert_int_equal(cc.max_stale, 30);
    assert_int_equal(cc.min_fresh, 5);
    cc = req_cc("no-cache, no-store, only-if-cached, no-transform, stale-if-error=9");
    assert_true(cc.flags & CCQ_NO_CACHE);
    assert_true(cc.flags & CCQ_NO_STORE);
    assert_true(cc.flags & CCQ_ONLY_IF_CACHED);
    assert_true(cc.flags & CCQ_NO_TRANSFORM);
    assert_int_equal(cc.sie, 9);
    cc = req_cc("max-age=abc");  /* ignored */
    assert_int_equal(cc.max_age, CC_ABSENT);
}

/* ---- RFC 9110 §5.6.7 HTTP-date ---- */

static void test_dates(void **state)
{
    (void)state;
    int64_t t = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(http_date_parse(STR_LIT("Sun, 06 Nov 1994 08:49:37 GMT"), NOW), t);
    assert_int_equal(http_date_parse(STR_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), NOW), t);
    assert_int_equal(http_date_parse(STR_LIT("Sun Nov  6 08:49:37 1994"), NOW), t);
    assert_int_equal(http_date_parse(STR_LIT("Thu, 01 Jan 1970 00:00:00 GMT"), NOW), 0);
    assert_int_equal(http_date_parse(STR_LIT("Tue, 29 Feb 2000 12:00:00 GMT"), NOW),
                     951825600);
    assert_int_equal(http_date_parse(STR_LIT("  Sun, 06 Nov 1994 08:49:37 GMT "), NOW), t);
    /* two-digit year: more than 50 years ahead means the last century */
    assert_int_equal(http_date_parse(STR_LIT("Thursday, 01-Jan-70 00:00:00 GMT"), NOW),
                     INT64_C(3155760000)); /* 2070: 47 years ahead */
    assert_int_equal(http_date_parse(STR_LIT("Tuesday, 01-Jan-74 00:00:00 GMT"), NOW),
                     INT64_C(126230400)); /* 2074 would be 51 years ahead: 1974 */
    assert_int_equal(http_date_parse(STR_LIT("Friday, 01-Jan-49 00:00:00 GMT"), NOW),
                     INT64_C(2493072000));
    static const char *bad[] = {
        "0", "", "-1", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:61:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT", "Tue, 29 Feb 2001 12:00:00 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994", "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(http_date_parse(str_cstr(bad[i]), NOW), DATE_NONE);
}

/* ---- §4.2.1 freshness lifetime ---- */

static void test_lifetime(void **state)
{
    (void)state;
    struct cache_meta m = meta(200, "max-age=100");
    assert_int_equal(fresh_lifetime(&m, &pol), 100);
    m = meta(200, "max-age=100, s-maxage=5"); /* shared cache: s-maxage wins */
    assert_int_equal(fresh_lifetime(&m, &pol), 5);
    m = meta(200, "");
    m.has_expires = true;
    m.expires = NOW + 60;
    assert_int_equal(fresh_lifetime(&m, &pol), 60);
    m.date = NOW - 30; /* Expires counts from Date, not from now */
    assert_int_equal(fresh_lifetime(&m, &pol), 90);
    m.expires = NOW - 3600;
    assert_int_equal(fresh_lifetime(&m, &pol), 0);
    m.expires = DATE_NONE; /* invalid Expires: already expired (§5.3) */
    assert_int_equal(fresh_lifetime(&m, &pol), 0);
    /* max-age beats Expires (§5.3) */
    m = meta(200, "max-age=10");
    m.has_expires = true;
    m.expires = NOW + 1000;
    assert_int_equal(fresh_lifetime(&m, &pol), 10);
    m = meta(200, "max-age=0");
    assert_int_equal(fresh_lifetime(&m, &pol), 0);
    m = meta(200, "max-age=99999999999");
    assert_int_equal(fresh_lifetime(&m, &pol), CC_DELTA_MAX);
    assert_true(fresh_explicit(&m));
}

static void test_heuristic(void **state)
{
    (void)state;
    /* §4.2.2: 10% of the time since Last-Modified, capped */
    struct cache_meta m = meta(200, "");
    m.last_modified = NOW - 1000;
    assert_int_equal(fresh_lifetime(&m, &pol), 100);
    assert_false(fresh_explicit(&m));
    m.last_modified = NOW - 100 * 86400;
    assert_int_equal(fresh_lifetime(&m, &pol), 86400);
    m.last_modified = NOW + 10; /* in the future: nothing */
    assert_int_equal(fresh_lifetime(&m, &pol), 0);
    /* heuristically cacheable statuses only, unless public */
    static const int yes[] = { 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501 };
    static const int no[] = { 201, 302, 303, 307, 400, 403, 500, 502, 503 };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        m = meta(yes[i], "");
        m.last_modified = NOW - 1000;
        assert_int_equal(fresh_lifetime(&m, &pol), 100);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        m = meta(no[i], "");
        m.last_modified = NOW - 1000;
        assert_int_equal(fresh_lifetime(&m, &pol), 0);
        m = meta(no[i], "public");
        m.last_modified = NOW - 1000;
        assert_int_equal(fresh_lifetime(&m, &pol), 100);
    }
    /* no heuristic when anything explicit is there */
    m = meta(200, "max-age=3");
    m.last_modified = NOW - 100000;
    assert_int_equal(fresh_lifetime(&m, &pol), 3);
}

/* ---- §4.2.3 age ---- */

static void test_age(void **state)
{
    (void)state;
    struct cache_meta m = meta(200, "max-age=100");
    assert_int_equal(fresh_age(&m, NOW), 0);
    assert_int_equal(fresh_age(&m, NOW + 7), 7); /* resident time */
    m.age = 30; /* an upstream cache held it 30 s */
    assert_int_equal(fresh_age(&m, NOW), 30);
    m.age = 0;
    m.date = NOW - 50; /* apparent age from Date */
    assert_int_equal(fresh_age(&m, NOW), 50);
    m.date = NOW + 500; /* a clock ahead: apparent age 0 */
    assert_int_equal(fresh_age(&m, NOW), 0);
    m.date = NOW;
    m.req_time = NOW - 3; /* response delay counts */
    m.age = 10;
    assert_int_equal(fresh_age(&m, NOW + 1), 14);
    m.age = 10;
    m.date = NOW - 40; /* the larger of apparent and corrected */
    assert_int_equal(fresh_age(&m, NOW), 40);
}

/* ---- §3 storing ---- */

static enum store_why storable(int status, const char *cc, bool auth,
                               bool validator, bool expires, bool lm)
{
    struct cache_meta m = meta(status, cc);
    if (expires) {
        m.has_expires = true;
        m.expires = NOW + 100;
    }
    if (lm)
        m.last_modified = NOW - 1000;
    struct store_in in = { .get = true, .req_auth = auth, .status = status,
                           .m = &m, .has_validator = validator || lm };
    return fresh_storable(&in, &pol);
}

static void test_storable(void **state)
{
    (void)state;
    assert_int_equal(storable(200, "max-age=60", false, false, false, false), STORE_OK);
    assert_int_equal(storable(200, "", false, true, false, false), STORE_OK);
    assert_int_equal(storable(200, "", false, false, false, true), STORE_OK);
    /* 200 with nothing at all: storable in principle but useless */
    assert_int_equal(storable(200, "", false, false, false, false), STORE_NO_FRESH);
    assert_int_equal(storable(200, "max-age=0", false, false, false, false), STORE_OK);
    assert_int_equal(storable(200, "no-store, max-age=60", false, false, false, false),
                     STORE_NO_STORE);
    assert_int_equal(storable(200, "private, max-age=60", false, false, false, false),
                     STORE_PRIVATE);
    assert_int_equal(storable(200, "private=\"x\", max-age=60", false, false, false, false),
                     STORE_OK);
    /* non-heuristic statuses need explicit freshness */
    assert_int_equal(storable(302, "", false, true, false, false), STORE_NO_FRESH);
    assert_int_equal(storable(302, "max-age=60", false, false, false, false), STORE_OK);
    assert_int_equal(storable(500, "", false, false, true, false), STORE_OK);
    assert_int_equal(storable(599, "max-age=60", false, false, false, false), STORE_OK);
    assert_int_equal(storable(307, "public", false, true, false, false), STORE_OK);
    /* 206 and 304 are never stored as such */
    assert_int_equal(storable(206, "max-age=60", false, false, false, false), STORE_RANGE);
    assert_int_equal(storable(304, "max-age=60", false, false, false, false), STORE_STATUS);
    /* §3.5 Authorization */
    assert_int_equal(storable(200, "max-age=60", true, false, false, false), STORE_AUTH);
    assert_int_equal(storable(200, "max-age=60, public", true, false, false, false), STORE_OK);
    assert_int_equal(storable(200, "s-maxage=60", true, false, false, false), STORE_OK);
    assert_int_equal(storable(200, "max-age=60, must-revalidate", true, false, false, false),
                     STORE_OK);
    /* §5.2.2.3 must-understand: stored only for understood statuses, and
     * then no-store is ignored */
    assert_int_equal(storable(200, "must-understand, no-store, max-age=60", false, false,
                              false, false), STORE_OK);
    assert_int_equal(storable(299, "must-understand, no-store, max-age=60", false, false,
                              false, false), STORE_STATUS);
    /* request no-store, non-GET, Vary: * */
    struct cache_meta m = meta(200, "max-age=60");
    struct store_in in = { .get = true, .req_no_store = true, .status = 200, .m = &m };
    assert_int_equal(fresh_storable(&in, &pol), STORE_REQ_NO_STORE);
    in.req_no_store = false;
    in.get = false;
    assert_int_equal(fresh_storable(&in, &pol), STORE_METHOD);
    in.get = true;
    in.vary_star = true;
    assert_int_equal(fresh_storable(&in, &pol), STORE_VARY_STAR);
    assert_string_equal(store_why_name(STORE_AUTH), "authorization");
}

/* ---- §4 reuse, §5.2.1 request directives, RFC 5861 ---- */

static enum fresh_use use(const char *rcc, const char *qcc, int64_t age_s)
{
    struct cache_meta m = meta(200, rcc);
    struct cc_req q = req_cc(qcc);
    int64_t ttl;
    return fresh_decide(&m, &q, &pol, NOW + age_s, &ttl);
}

static void test_decide(void **state)
{
    (void)state;
    assert_int_equal(use("max-age=100", "", 10), USE_FRESH);
    assert_int_equal(use("max-age=100", "", 100), USE_REVALIDATE);
    assert_int_equal(use("max-age=100", "", 200), USE_REVALIDATE);
    /* response no-cache: always validate */
    assert_int_equal(use("max-age=100, no-cache", "", 0), USE_REVALIDATE);
    /* request directives */
    assert_int_equal(use("max-age=100", "no-cache", 0), USE_REVALIDATE);
    assert_int_equal(use("max-age=100", "max-age=5", 10), USE_REVALIDATE);
    assert_int_equal(use("max-age=100", "max-age=50", 10), USE_FRESH);
    assert_int_equal(use("max-age=100", "max-age=0", 0), USE_FRESH);
    assert_int_equal(use("max-age=100", "max-age=0", 1), USE_REVALIDATE);
    assert_int_equal(use("max-age=100", "min-fresh=95", 10), USE_REVALIDATE);
    assert_int_equal(use("max-age=100", "min-fresh=50", 10), USE_FRESH);
    assert_int_equal(use("max-age=100", "max-stale", 1000), USE_STALE);
    assert_int_equal(use("max-age=100", "max-stale=50", 140), USE_STALE);
    assert_int_equal(use("max-age=100", "max-stale=50", 160), USE_REVALIDATE);
    /* §4.2.4: these forbid serving stale, whatever the client allows */
    assert_int_equal(use("max-age=100, must-revalidate", "max-stale", 200), USE_REVALIDATE);
    assert_int_equal(use("max-age=100, proxy-revalidate", "max-stale", 200), USE_REVALIDATE);
    assert_int_equal(use("s-maxage=100", "max-stale", 200), USE_REVALIDATE);
    /* RFC 5861 stale-while-revalidate */
    assert_int_equal(use("max-age=100, stale-while-revalidate=60", "", 150), USE_SWR);
    assert_int_equal(use("max-age=100, stale-while-revalidate=60", "", 170), USE_REVALIDATE);
    assert_int_equal(use("max-age=100, stale-while-revalidate=60, must-revalidate", "", 150),
                     USE_REVALIDATE);
    assert_int_equal(use("max-age=100, stale-while-revalidate=60", "no-cache", 150),
                     USE_REVALIDATE);
    /* the policy default applies when the origin is silent */
    struct fresh_policy p = pol;
    p.swr = 30;
    struct cache_meta m = meta(200, "max-age=10");
    struct cc_req q = req_cc("");
    int64_t ttl;
    assert_int_equal(fresh_decide(&m, &q, &p, NOW + 20, &ttl), USE_SWR);
    assert_int_equal(ttl, -10);
}

static void test_stale_if_error(void **state)
{
    (void)state;
    struct cache_meta m = meta(200, "max-age=10, stale-if-error=60");
    struct cc_req q = req_cc("");
    assert_true(fresh_stale_if_error(&m, &q, &pol, NOW + 50));
    assert_false(fresh_stale_if_error(&m, &q, &pol, NOW + 100));
    m = meta(200, "max-age=10");
    assert_false(fresh_stale_if_error(&m, &q, &pol, NOW + 50));
    q = req_cc("stale-if-error=100");
    assert_true(fresh_stale_if_error(&m, &q, &pol, NOW + 50));
    m = meta(200, "max-age=10, stale-if-error=60, must-revalidate");
    q = req_cc("");
    assert_false(fresh_stale_if_error(&m, &q, &pol, NOW + 50));
}

/* ---- validators ---- */

static void test_etags(void **state)
{
    (void)state;
    assert_true(etag_weak_eq(STR_LIT("\"a\""), STR_LIT("\"a\"")));
    assert_true(etag_weak_eq(STR_LIT("W/\"a\""), STR_LIT("\"a\"")));
    assert_false(etag_weak_eq(STR_LIT("\"a\""), STR_LIT("\"b\"")));
    assert_true(etag_strong_eq(STR_LIT("\"a\""), STR_LIT("\"a\"")));
    assert_false(etag_strong_eq(STR_LIT("W/\"a\""), STR_LIT("\"a\"")));
    assert_true(inm_matches(STR_LIT("*"), STR_LIT("\"x\"")));
    assert_true(inm_matches(STR_LIT("\"a\", \"x\""), STR_LIT("\"x\"")));
    assert_true(inm_matches(STR_LIT("W/\"x\""), STR_LIT("\"x\"")));
    assert_true(inm_matches(STR_LIT("\"x\""), STR_LIT("W/\"x\"")));
    assert_true(inm_matches(STR_LIT("\"a,b\", \"x\""), STR_LIT("\"x\"")));
    assert_false(inm_matches(STR_LIT("\"a,b\""), STR_LIT("\"a\"")));
    assert_false(inm_matches(STR_LIT("\"y\""), STR_LIT("\"x\"")));
    assert_false(inm_matches(STR_LIT("\"y\""), STR_NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_cc_resp_basic),
        cmocka_unit_test(test_cc_resp_invalid),
        cmocka_unit_test(test_cc_resp_duplicates),
        cmocka_unit_test(test_cc_resp_qualified),
        cmocka_unit_test(test_cc_req),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_heuristic),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_storable),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_stale_if_error),
        cmocka_unit_test(test_etags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
