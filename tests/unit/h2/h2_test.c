/*
 * The HTTP/2 session (src/h2/) driven by hand-made frames: what reaches
 * the owner's callbacks, what goes out, and each defence ending the
 * connection with GOAWAY ENHANCE_YOUR_CALM (issue 6).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2/h2.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/* ---- a recording owner ---- */

struct rec {
    int begins, heads, datas, ends, closes;
    int last_status;
    bool last_end;
    uint32_t last_code;
    size_t data_bytes;
    char fields[1024];
    size_t flen;
    int nfields;
    bool refuse;
    const char *body; /* for pull */
    size_t body_len, body_off;
};

static struct rec R;
static int stream_token; /* the sud given out */

static void *cb_begin(void *ud, int32_t id)
{
    (void)ud, (void)id;
    R.begins++;
    return R.refuse ? NULL : &stream_token;
}

static void cb_field(void *sud, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)sud;
    R.nfields++;
    if (R.flen >= sizeof(R.fields) - 1)
        return;
    int k = snprintf(R.fields + R.flen, sizeof(R.fields) - R.flen, "%.*s=%.*s;",
                     (int)nl, n, (int)vl, v);
    R.flen += (size_t)k < sizeof(R.fields) - R.flen ? (size_t)k
                                                     : sizeof(R.fields) - R.flen - 1;
}

static void cb_head(void *sud, bool end, int status)
{
    (void)sud;
    R.heads++;
    R.last_end = end;
    R.last_status = status;
}

static void cb_data(void *sud, const uint8_t *p, size_t len)
{
    (void)sud, (void)p;
    R.datas++;
    R.data_bytes += len;
}

static void cb_end(void *sud)
{
    (void)sud;
    R.ends++;
}

static void cb_close(void *sud, uint32_t code)
{
    (void)sud;
    R.closes++;
    R.last_code = code;
}

static ssize_t cb_pull(void *sud, uint8_t *buf, size_t len, bool *eof)
{
    (void)sud;
    size_t n = R.body_len - R.body_off;
    if (n > len)
        n = len;
    memcpy(buf, R.body + R.body_off, n);
    R.body_off += n;
    *eof = R.body_off == R.body_len;
    return (ssize_t)n;
}

static const struct h2_cbs cbs = { cb_begin, cb_field, cb_head, cb_data,
                                   cb_end, cb_close, cb_pull, NULL, NULL };

static const struct h2_limits lim = {
    .max_streams = 100, .stream_window = 65536, .conn_window = 1 << 20,
    .max_header_list = 8192, .max_fields = 50, .max_resets = 20,
    .reset_rate = 1, .max_glitches = 30,
};

/* ---- frames ---- */

static uint8_t in[1 << 20];
static size_t inlen;
static uint8_t out[1 << 16];

static void put(const void *p, size_t n)
{
    assert_true(inlen + n <= sizeof(in));
    memcpy(in + inlen, p, n);
    inlen += n;
}

static void frame(uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
    uint8_t h[9] = { (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, type, flags,
                     (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8),
                     (uint8_t)sid };
    put(h, 9);
    if (n > 0)
        put(p, n);
}

/* HPACK: GET, http, /, then ":authority: localhost" as a literal
 * (static name 1, not indexed). */
static const uint8_t get_block[] = { 0x82, 0x86, 0x84, 0x01, 0x09, 'l', 'o', 'c', 'a',
                                     'l', 'h', 'o', 's', 't' };

static struct h2_sess *start(void)
{
    memset(&R, 0, sizeof(R));
    inlen = 0;
    struct h2_sess *s = h2_sess_new(&lim, &cbs, NULL);
    assert_non_null(s);
    put(PREFACE, sizeof(PREFACE) - 1);
    frame(4, 0, 0, NULL, 0); /* SETTINGS */
    return s;
}

/* Feeds what was put, returns h2_recv's result. */
static int feed(struct h2_sess *s)
{
    int rc = h2_recv(s, in, inlen);
    inlen = 0;
    return rc;
}

/* Finds a frame of <type> in <p>; returns its payload or NULL. */
static const uint8_t *find(const uint8_t *p, size_t n, uint8_t type, uint32_t *len,
                           uint8_t *flags)
{
    size_t i = 0;
    while (i + 9 <= n) {
        uint32_t l = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        if (p[i + 3] == type) {
            *len = l;
            if (flags)
                *flags = p[i + 4];
            return p + i + 9;
        }
        i += 9 + l;
    }
    return NULL;
}

static size_t drain(struct h2_sess *s)
{
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        ssize_t k = h2_send(s, out + n, sizeof(out) - n);
        assert_true(k >= 0);
        if (k == 0)
            break;
        n += (size_t)k;
    }
    return n;
}

static uint32_t goaway_code(const uint8_t *p, size_t n)
{
    uint32_t len;
    const uint8_t *g = find(p, n, 7, &len, NULL);
    if (g == NULL)
        return 0xffffffffu;
    return (uint32_t)g[4] << 24 | (uint32_t)g[5] << 16 | (uint32_t)g[6] << 8 | g[7];
}

/* ---- tests ---- */

static void test_request_and_response(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    frame(1, 0x4 | 0x1, 1, get_block, sizeof(get_block)); /* END_HEADERS|END_STREAM */
    assert_int_equal(feed(s), 0);
    assert_int_equal(R.begins, 1);
    assert_int_equal(R.heads, 1);
    assert_true(R.last_end);
    assert_int_equal(R.last_status, 0);
    assert_string_equal(R.fields, ":method=GET;:scheme=http;:path=/;:authority=localhost;");
    static const struct h2_nv nv[] = { { ":status", 7, "200", 3 },
                                       { "content-length", 14, "5", 1 } };
    R.body = "hello";
    R.body_len = 5;
    assert_int_equal(h2_submit(s, 1, nv, 2, true, false), 0);
    size_t n = drain(s);
    uint32_t len;
    uint8_t flags;
    assert_non_null(find(out, n, 4, &len, NULL)); /* our SETTINGS */
    assert_non_null(find(out, n, 1, &len, NULL)); /* HEADERS */
    const uint8_t *d = find(out, n, 0, &len, &flags);
    assert_non_null(d);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "hello", 5);
    assert_true(flags & 0x1);
    assert_int_equal(R.closes, 1);
    assert_int_equal(R.last_code, 0);
    assert_int_equal(h2_streams(s), 0);
    h2_sess_free(s);
}

static void test_body_and_windows(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    static const uint8_t post[] = { 0x83, 0x86, 0x84, 0x01, 0x01, 'x' };
    frame(1, 0x4, 3, post, sizeof(post));
    static uint8_t body[16384];
    memset(body, 'b', sizeof(body));
    for (int i = 0; i < 3; i++)
        frame(0, i == 2 ? 0x1 : 0, 3, body, sizeof(body));
    drain(s); /* our SETTINGS and connection window */
    assert_int_equal(feed(s), 0);
    assert_false(R.last_end);
    assert_int_equal(R.data_bytes, 3 * 16384);
    assert_int_equal(R.ends, 1);
    /* no WINDOW_UPDATE until the owner says the bytes moved on */
    size_t n = drain(s);
    uint32_t len;
    assert_null(find(out, n, 8, &len, NULL));
    h2_consume(s, 3, 3 * 16384);
    n = drain(s);
    assert_non_null(find(out, n, 8, &len, NULL));
    h2_sess_free(s);
}

static void test_rapid_reset(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    static const uint8_t cancel[] = { 0, 0, 0, 8 };
    for (uint32_t id = 1; id < 2 * 200; id += 2) {
        frame(1, 0x4 | 0x1, id, get_block, sizeof(get_block));
        frame(3, 0, id, cancel, 4);
    }
    assert_int_equal(feed(s), 0);
    assert_int_equal(h2_ended(s), H2_END_RESETS);
    /* stopped at the bucket's size, not after all 200 */
    assert_true(R.begins <= 22);
    size_t n = drain(s);
    assert_int_equal(goaway_code(out, n), 0xb); /* ENHANCE_YOUR_CALM */
    assert_false(h2_want_read(s));
    /* what comes after is ignored */
    frame(1, 0x4 | 0x1, 1001, get_block, sizeof(get_block));
    int before = R.begins;
    assert_int_equal(feed(s), 0);
    assert_int_equal(R.begins, before);
    h2_sess_free(s);
}

static void test_continuation_flood(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    frame(1, 0, 1, get_block, sizeof(get_block)); /* no END_HEADERS */
    static const uint8_t filler[] = { 0x40, 0x01, 'x', 0x01, 'y' };
    for (int i = 0; i < 100; i++)
        frame(9, 0, 1, filler, sizeof(filler));
    assert_int_equal(feed(s), 0);
    assert_int_equal(h2_ended(s), H2_END_HEADERS);
    assert_int_equal(R.heads, 0);
    size_t n = drain(s);
    assert_int_equal(goaway_code(out, n), 0xb);
    h2_sess_free(s);
}

static void test_hpack_bomb_is_431(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    /* insert "x: <4000 bytes>" into the dynamic table, then name it 100
     * times: 400 KB decoded from 100 bytes */
    static uint8_t block[4200 + 200];
    size_t n = 0;
    memcpy(block, get_block, sizeof(get_block));
    n = sizeof(get_block);
    block[n++] = 0x40;
    block[n++] = 0x01;
    block[n++] = 'x';
    block[n++] = 0x7f; /* value length 4000: 127 + 3873 */
    block[n++] = 0x80 | (uint8_t)((4000 - 127) & 0x7f);
    block[n++] = (uint8_t)((4000 - 127) >> 7);
    memset(block + n, 'v', 4000);
    n += 4000;
    for (int i = 0; i < 100; i++)
        block[n++] = 0xbe; /* indexed 62: the entry just added */
    frame(1, 0x4 | 0x1, 1, block, n);
    assert_int_equal(feed(s), 0);
    assert_int_equal(R.heads, 1);
    assert_int_equal(R.last_status, 431);
    assert_true(R.nfields < 10); /* the fields stopped coming */
    assert_int_equal(h2_ended(s), H2_END_NONE); /* the connection lives */
    h2_sess_free(s);
}

static void test_empty_data_flood(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    static const uint8_t post[] = { 0x83, 0x86, 0x84, 0x01, 0x01, 'x' };
    frame(1, 0x4, 1, post, sizeof(post));
    for (int i = 0; i < 100; i++)
        frame(0, 0, 1, NULL, 0);
    assert_int_equal(feed(s), 0);
    assert_int_equal(h2_ended(s), H2_END_GLITCHES);
    size_t n = drain(s);
    assert_int_equal(goaway_code(out, n), 0xb);
    h2_sess_free(s);
}

static void test_refused_and_bad_preface(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    R.refuse = true;
    frame(1, 0x4 | 0x1, 1, get_block, sizeof(get_block));
    assert_int_equal(feed(s), 0);
    assert_int_equal(R.heads, 0);
    size_t n = drain(s);
    uint32_t len;
    const uint8_t *r = find(out, n, 3, &len, NULL); /* RST_STREAM */
    assert_non_null(r);
    assert_int_equal(r[3], 0x7); /* REFUSED_STREAM */
    h2_sess_free(s);

    s = h2_sess_new(&lim, &cbs, NULL);
    assert_int_equal(h2_recv(s, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), -EPROTO);
    h2_sess_free(s);
}

static void test_graceful_goaway(void **state)
{
    (void)state;
    struct h2_sess *s = start();
    frame(1, 0x4 | 0x1, 1, get_block, sizeof(get_block));
    assert_int_equal(feed(s), 0);
    h2_goaway(s);
    size_t n = drain(s);
    assert_int_equal(goaway_code(out, n), 0); /* NO_ERROR */
    assert_int_equal(h2_streams(s), 1);        /* stream 1 still open */
    h2_sess_free(s);                           /* with it: no leak */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_response),
        cmocka_unit_test(test_body_and_windows),
        cmocka_unit_test(test_rapid_reset),
        cmocka_unit_test(test_continuation_flood),
        cmocka_unit_test(test_hpack_bomb_is_431),
        cmocka_unit_test(test_empty_data_flood),
        cmocka_unit_test(test_refused_and_bad_preface),
        cmocka_unit_test(test_graceful_goaway),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
