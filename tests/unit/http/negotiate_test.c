/* Accept-Encoding negotiation, HTTP-dates, entity tags, byte ranges and
 * media type lists (src/http/negotiate.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "http/negotiate.h"

#define ALL (HTTP_ENC_GZIP | HTTP_ENC_BR | HTTP_ENC_ZSTD)

static unsigned pick(const char *ae, unsigned allowed)
{
    return http_pick_encoding(str_cstr(ae), allowed);
}

static void test_pick(void **state)
{
    (void)state;
    assert_int_equal(pick("", ALL), 0);
    assert_int_equal(pick("gzip", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("gzip, deflate, br", ALL), HTTP_ENC_BR);
    assert_int_equal(pick("gzip, deflate, br, zstd", ALL), HTTP_ENC_BR);
    assert_int_equal(pick("gzip, zstd", ALL), HTTP_ENC_ZSTD);
    assert_int_equal(pick("gzip, br", HTTP_ENC_GZIP), HTTP_ENC_GZIP);
    assert_int_equal(pick("br;q=0.5, gzip", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("br;q=0, gzip;q=0", ALL), 0);
    assert_int_equal(pick("*", ALL), HTTP_ENC_BR);
    assert_int_equal(pick("*;q=0.1, gzip;q=0.2", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("*, br;q=0", ALL), HTTP_ENC_ZSTD);
    assert_int_equal(pick("identity", ALL), 0);
    assert_int_equal(pick("GZIP", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("x-gzip", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("gzip;q=1.0", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("gzip;q=1.5, br;q=bad", ALL), 0); /* malformed */
    assert_int_equal(pick(" , ,gzip ; q=0.001", ALL), HTTP_ENC_GZIP);
    assert_int_equal(pick("gzip;level=1;q=0.9, br;q=0.8", ALL), HTTP_ENC_GZIP);
    assert_string_equal(http_enc_name(HTTP_ENC_ZSTD), "zstd");
    assert_string_equal(http_enc_name(0), "identity");
}

static void test_date(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(http_parse_date(STR_LIT("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(http_parse_date(STR_LIT("Thu, 01 Jan 1970 00:00:00 GMT"), &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(http_parse_date(STR_LIT("Tue, 29 Feb 2028 12:00:00 GMT"), &t), 0);
    assert_int_equal(t, 1835438400);
    assert_int_equal(http_parse_date(STR_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), &t), -EINVAL);
    assert_int_equal(http_parse_date(STR_LIT("Sun, 06 Foo 1994 08:49:37 GMT"), &t), -EINVAL);
    assert_int_equal(http_parse_date(STR_LIT("Sun, 06 Nov 1994 25:49:37 GMT"), &t), -EINVAL);
    assert_int_equal(http_parse_date(STR_LIT("Sun, 06 Nov 1994 08:49:37 UTC"), &t), -EINVAL);
    assert_int_equal(http_parse_date(STR_LIT(""), &t), -EINVAL);
}

static void test_etag(void **state)
{
    (void)state;
    struct str e = STR_LIT("\"abc-12\"");
    assert_true(http_etag_match(STR_LIT("\"abc-12\""), e, true));
    assert_true(http_etag_match(STR_LIT("\"x\", \"abc-12\""), e, false));
    assert_true(http_etag_match(STR_LIT("W/\"abc-12\""), e, true));
    assert_false(http_etag_match(STR_LIT("W/\"abc-12\""), e, false));
    assert_true(http_etag_match(STR_LIT(" * "), e, false));
    assert_false(http_etag_match(STR_LIT("\"abc-1\""), e, true));
    assert_false(http_etag_match(STR_LIT("\"abc-12\""), STR_LIT("W/\"abc-12\""), false));
    assert_true(http_etag_match(STR_LIT("\"abc-12\""), STR_LIT("W/\"abc-12\""), true));
    assert_false(http_etag_match(STR_LIT(""), e, true));
}

static void test_range(void **state)
{
    (void)state;
    struct http_range r[HTTP_RANGE_MAX];
    assert_int_equal(http_parse_range(STR_LIT("bytes=0-99"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 99);
    assert_int_equal(http_parse_range(STR_LIT("bytes=-100"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(r[0].first, 900);
    assert_int_equal(r[0].last, 999);
    assert_int_equal(http_parse_range(STR_LIT("bytes=-5000"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(http_parse_range(STR_LIT("bytes=990-"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(r[0].last, 999);
    assert_int_equal(http_parse_range(STR_LIT("bytes=500-5000"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(r[0].last, 999);
    assert_int_equal(http_parse_range(STR_LIT("bytes=0-0, 10-19, -1"), 1000, r, HTTP_RANGE_MAX), 3);
    assert_int_equal(r[2].first, 999);
    /* unsatisfiable parts are dropped; none left is 416 */
    assert_int_equal(http_parse_range(STR_LIT("bytes=2000-3000, 0-1"), 1000, r, HTTP_RANGE_MAX), 1);
    assert_int_equal(http_parse_range(STR_LIT("bytes=1000-"), 1000, r, HTTP_RANGE_MAX), 0);
    assert_int_equal(http_parse_range(STR_LIT("bytes=-0"), 1000, r, HTTP_RANGE_MAX), 0);
    assert_int_equal(http_parse_range(STR_LIT("bytes=0-"), 0, r, HTTP_RANGE_MAX), 0);
    /* invalid: ignored by the caller */
    assert_int_equal(http_parse_range(STR_LIT("bytes=5-1"), 1000, r, HTTP_RANGE_MAX), -EINVAL);
    assert_int_equal(http_parse_range(STR_LIT("items=0-1"), 1000, r, HTTP_RANGE_MAX), -EINVAL);
    assert_int_equal(http_parse_range(STR_LIT("bytes="), 1000, r, HTTP_RANGE_MAX), -EINVAL);
    assert_int_equal(http_parse_range(STR_LIT("bytes=a-b"), 1000, r, HTTP_RANGE_MAX), -EINVAL);
    assert_int_equal(http_parse_range(STR_LIT("bytes=1"), 1000, r, HTTP_RANGE_MAX), -EINVAL);
    assert_int_equal(http_parse_range(STR_LIT("bytes=99999999999999999999-"), 1000, r,
                                      HTTP_RANGE_MAX), -EINVAL);
    /* overlapping or too many: ignored */
    assert_int_equal(http_parse_range(STR_LIT("bytes=0-10, 5-20"), 1000, r, HTTP_RANGE_MAX), -E2BIG);
    assert_int_equal(http_parse_range(STR_LIT("bytes=0-1,2-3,4-5"), 1000, r, 2), -E2BIG);
}

static void test_types(void **state)
{
    (void)state;
    static const char *const types[] = { "text/*", "application/json" };
    assert_true(http_type_match(STR_LIT("text/html; charset=utf-8"), types, 2));
    assert_true(http_type_match(STR_LIT("Application/JSON"), types, 2));
    assert_true(http_type_match(STR_LIT("text/css"), types, 2));
    assert_false(http_type_match(STR_LIT("image/png"), types, 2));
    assert_false(http_type_match(STR_LIT("textual/x"), types, 2));
    assert_false(http_type_match(STR_LIT("application/jsonx"), types, 2));
    assert_false(http_type_match(STR_LIT(""), types, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick),   cmocka_unit_test(test_date),
        cmocka_unit_test(test_etag),   cmocka_unit_test(test_range),
        cmocka_unit_test(test_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
