/* AJP/1.3 packets (src/upstream/ajp.c): the forward-request bytes, the body
 * packet heads, and the container packets we decode, with the malformed
 * cases refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "upstream/ajp.h"

static size_t put_s(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    p[2 + n] = 0;
    return n + 3;
}

static void test_encode(void **state)
{
    (void)state;
    struct h1_field f[] = { { STR_LIT("Host"), STR_LIT("example.com") },
                            { STR_LIT("X-Custom"), STR_LIT("v") } };
    struct ajp_req r = {
        .method = STR_LIT("GET"), .protocol = STR_LIT("HTTP/1.1"),
        .uri = STR_LIT("/a/b"), .query = STR_LIT("x=1"),
        .remote_addr = STR_LIT("10.0.0.1"), .server_name = STR_LIT("example.com"),
        .server_port = 443, .fields = f, .nfields = 2,
        .secret = STR_LIT("sesame"), .remote_port = STR_LIT("5555"),
    };
    uint8_t out[512], want[512];
    int n = ajp_encode_request(&r, out, sizeof(out));
    assert_true(n > 0);
    size_t w = 4;
    want[w++] = 2;
    want[w++] = 2; /* GET */
    w += put_s(want + w, "HTTP/1.1");
    w += put_s(want + w, "/a/b");
    w += put_s(want + w, "10.0.0.1");
    w += put_s(want + w, "10.0.0.1");
    w += put_s(want + w, "example.com");
    want[w++] = 0x01;
    want[w++] = 0xbb;
    want[w++] = 0; /* is_ssl */
    want[w++] = 0;
    want[w++] = 2;
    want[w++] = 0xa0; /* host */
    want[w++] = 0x0b;
    w += put_s(want + w, "example.com");
    w += put_s(want + w, "X-Custom");
    w += put_s(want + w, "v");
    want[w++] = 0x05;
    w += put_s(want + w, "x=1");
    want[w++] = 0x0a;
    w += put_s(want + w, "AJP_REMOTE_PORT");
    w += put_s(want + w, "5555");
    want[w++] = 0x0c;
    w += put_s(want + w, "sesame");
    want[w++] = 0xff;
    want[0] = 0x12;
    want[1] = 0x34;
    want[2] = (uint8_t)((w - 4) >> 8);
    want[3] = (uint8_t)(w - 4);
    assert_int_equal((size_t)n, w);
    assert_memory_equal(out, want, w);
    /* too small a packet, NUL in a value */
    assert_int_equal(ajp_encode_request(&r, out, 40), -E2BIG);
    f[1].value = str_make("a\0b", 3);
    assert_int_equal(ajp_encode_request(&r, out, sizeof(out)), -EINVAL);
}

static void test_stored_method(void **state)
{
    (void)state;
    assert_int_equal(ajp_method_code(STR_LIT("POST")), 4);
    assert_int_equal(ajp_method_code(STR_LIT("MKACTIVITY")), 27);
    assert_int_equal(ajp_method_code(STR_LIT("PATCH")), 0);
    assert_int_equal(ajp_method_code(STR_LIT("get")), 0);
    struct ajp_req r = { .method = STR_LIT("PATCH"), .protocol = STR_LIT("HTTP/1.1"),
                         .uri = STR_LIT("/") };
    uint8_t out[256];
    int n = ajp_encode_request(&r, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(out[5], 0xff);
    /* ... 0x0d "PATCH" 0xff at the end */
    assert_memory_equal(out + n - 10, "\x0d\x00\x05PATCH\x00\xff", 10);
}

static void test_body_head(void **state)
{
    (void)state;
    uint8_t h[6];
    assert_int_equal(ajp_body_head(h, 0), 4);
    assert_memory_equal(h, "\x12\x34\x00\x00", 4);
    assert_int_equal(ajp_body_head(h, 8186), 6);
    assert_memory_equal(h, "\x12\x34\x1f\xfc\x1f\xfa", 6);
    assert_memory_equal(ajp_cping, "\x12\x34\x00\x01\x0a", 5);
}

static void test_packet_len(void **state)
{
    (void)state;
    assert_int_equal(ajp_packet_len((const uint8_t *)"AB\x00\x02\x05\x01", 6, 8192), 2);
    assert_int_equal(ajp_packet_len((const uint8_t *)"AB\x00", 3, 8192), -EAGAIN);
    assert_int_equal(ajp_packet_len((const uint8_t *)"HT\x00\x02", 4, 8192), -EBADMSG);
    assert_int_equal(ajp_packet_len((const uint8_t *)"AB\x00\x00", 4, 8192), -EBADMSG);
    assert_int_equal(ajp_packet_len((const uint8_t *)"AB\x20\x01", 4, 8192), -EBADMSG);
}

static int parse(const uint8_t *p, size_t len, struct h1_msg *m, struct h1_field *f, size_t nf)
{
    h1_msg_init(m, f, nf);
    return ajp_parse_headers(p, len, m);
}

static void test_headers(void **state)
{
    (void)state;
    uint8_t p[256];
    size_t w = 0;
    p[w++] = 4;
    p[w++] = 0x01; /* 404 */
    p[w++] = 0x94;
    w += put_s(p + w, "Not Found");
    p[w++] = 0;
    p[w++] = 3;
    p[w++] = 0xa0;
    p[w++] = 0x01;
    w += put_s(p + w, "text/html");
    p[w++] = 0xa0;
    p[w++] = 0x03;
    w += put_s(p + w, "12");
    w += put_s(p + w, "X-Thing");
    w += put_s(p + w, "ok");
    struct h1_field f[8];
    struct h1_msg m;
    assert_int_equal(parse(p, w, &m, f, 8), 0);
    assert_int_equal(m.status, 404);
    assert_true(str_eq(m.reason, STR_LIT("Not Found")));
    assert_int_equal(m.nfields, 3);
    assert_true(str_eq(m.fields[0].name, STR_LIT("Content-Type")));
    assert_true(str_eq(m.fields[2].name, STR_LIT("X-Thing")));
    assert_true(m.flags & H1_HAS_CL);
    assert_int_equal(m.content_length, 12);
    assert_int_equal(m.body, H1_B_LENGTH);
    /* too many fields for the room */
    assert_int_equal(parse(p, w, &m, f, 2), -E2BIG);
    /* truncated anywhere */
    for (size_t cut = 1; cut < w; cut++)
        assert_int_equal(parse(p, cut, &m, f, 8), -EBADMSG);
    /* a value with CR LF: response splitting */
    uint8_t q[64];
    size_t v = 0;
    q[v++] = 4;
    q[v++] = 0;
    q[v++] = 200;
    q[v++] = 0xff; /* null reason */
    q[v++] = 0xff;
    q[v++] = 0;
    q[v++] = 1;
    v += put_s(q + v, "X-A");
    size_t at = v;
    v += put_s(q + v, "a\r\nSet-Cookie: x");
    assert_int_equal(parse(q, v, &m, f, 8), -EBADMSG);
    /* a bad name, an unknown code, a missing NUL */
    v = at;
    v += put_s(q + v, "fine");
    assert_int_equal(parse(q, v, &m, f, 8), 0);
    assert_int_equal(m.reason.len, 0);
    q[at - 4] = ' ';
    assert_int_equal(parse(q, v, &m, f, 8), -EBADMSG);
    q[at - 4] = 'X';
    q[v - 1] = 'x';
    assert_int_equal(parse(q, v, &m, f, 8), -EBADMSG);
    q[v - 1] = 0;
    q[7] = 0xa0;
    q[8] = 0x0c;
    assert_int_equal(parse(q, v, &m, f, 8), -EBADMSG);
}

static void test_content_length_rules(void **state)
{
    (void)state;
    uint8_t p[64];
    size_t w = 0;
    p[w++] = 4;
    p[w++] = 0;
    p[w++] = 200;
    w += put_s(p + w, "OK");
    p[w++] = 0;
    p[w++] = 2;
    p[w++] = 0xa0;
    p[w++] = 0x03;
    w += put_s(p + w, "5");
    p[w++] = 0xa0;
    p[w++] = 0x03;
    size_t at = w;
    w += put_s(p + w, "6");
    struct h1_field f[8];
    struct h1_msg m;
    assert_int_equal(parse(p, w, &m, f, 8), -EBADMSG); /* 5 then 6 */
    w = at;
    w += put_s(p + w, "5");
    assert_int_equal(parse(p, w, &m, f, 8), 0);        /* 5 twice is 5 */
    w = at;
    w += put_s(p + w, "-1");
    assert_int_equal(parse(p, w, &m, f, 8), -EBADMSG);
    p[1] = 0;
    p[2] = 99; /* status below 100 */
    w = at;
    w += put_s(p + w, "5");
    assert_int_equal(parse(p, w, &m, f, 8), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),     cmocka_unit_test(test_stored_method),
        cmocka_unit_test(test_body_head),  cmocka_unit_test(test_packet_len),
        cmocka_unit_test(test_headers),    cmocka_unit_test(test_content_length_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
