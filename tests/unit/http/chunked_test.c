/*
 * Unit tests for the chunked transfer coding decoder (src/http/chunked.c).
 *
 * Every input goes through decode(), which decodes it in place in one shot,
 * then again split at every point in two pieces, one byte at a time and in
 * random pieces (each piece decoded in place in its own heap copy), and also
 * with <data> NULL, and checks that all of them agree.
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

#include "http/h1.h"

/* results of the last decode() */
static struct h1_chunked ch;
static char out[1 << 16];
static size_t outlen;

static uint32_t rnd_state = 777;

static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

/* Decodes s[0..n) in pieces whose sizes come from <mode> (0: one byte, 1:
   random, 2: two pieces split at <at>) and checks the outcome against the
   one-shot result <rc> (ch, out, outlen). */
static void pieces_same(const char *s, size_t n, ssize_t rc, int mode,
                        size_t at, const struct h1_chunked *lim)
{
    struct h1_chunked c = *lim;
    char *acc = malloc(n + 1);
    size_t acclen = 0, off = 0;
    bool err = false;

    assert_non_null(acc);
    while (off < n && c.state != H1_CH_DONE) {
        size_t step = mode == 0 ? 1 : mode == 1 ? 1 + rnd() % 23 : at - off;
        if (mode == 2 && off >= at)
            step = n - off;
        if (step == 0 || step > n - off)
            step = n - off;
        char *piece = malloc(step);
        assert_non_null(piece);
        memcpy(piece, s + off, step);
        size_t dl = (size_t)-1;
        ssize_t r = h1_chunked_scan(&c, piece, step, piece, &dl);
        if (r < 0) {
            assert_int_equal(r, -EBADMSG);
            free(piece);
            err = true;
            break;
        }
        assert_true((size_t)r == step || c.state == H1_CH_DONE);
        assert_true(dl <= (size_t)r);
        memcpy(acc + acclen, piece, dl);
        acclen += dl;
        off += (size_t)r;
        free(piece);
    }
    if (rc < 0) {
        assert_true(err);
    } else {
        assert_false(err);
        assert_int_equal(off, rc);
        assert_int_equal(c.state, ch.state);
        assert_int_equal(c.remaining, ch.remaining);
        assert_int_equal(acclen, outlen);
        if (acclen > 0)
            assert_memory_equal(acc, out, acclen);
    }
    free(acc);
}

/* Decodes s[0..n) with the limits in <lim> (or the defaults); returns what
   the one-shot scan returned. */
static ssize_t decode_lim(const char *s, size_t n, const struct h1_chunked *lim)
{
    struct h1_chunked init;
    if (lim == NULL) {
        h1_chunked_init(&init);
        lim = &init;
    }
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memcpy(buf, s, n);
    ch = *lim;
    outlen = (size_t)-1;
    ssize_t rc = h1_chunked_scan(&ch, buf, n, buf, &outlen);
    if (rc >= 0) {
        assert_true(outlen <= sizeof(out));
        memcpy(out, buf, outlen);
        /* the bytes after the body are left alone */
        assert_memory_equal(buf + rc, s + rc, n - (size_t)rc);
    }
    free(buf);

    /* without an output buffer: same verdict, same count */
    struct h1_chunked c2 = *lim;
    size_t dl2 = (size_t)-1;
    ssize_t rc2 = h1_chunked_scan(&c2, s, n, NULL, &dl2);
    assert_int_equal(rc2, rc);
    if (rc >= 0) {
        assert_int_equal(dl2, outlen);
        assert_int_equal(c2.state, ch.state);
    }

    if (n <= 2000) {
        pieces_same(s, n, rc, 0, 0, lim);
        for (size_t at = 1; at < n; at++)
            pieces_same(s, n, rc, 2, at, lim);
    }
    for (int k = 0; k < 8; k++)
        pieces_same(s, n, rc, 1, 0, lim);
    return rc;
}

#define DECODE(s) decode_lim(s, sizeof(s) - 1, NULL)
#define DECODEL(s, lim) decode_lim(s, sizeof(s) - 1, lim)

#define assert_done(rc, s, payload)                                            \
    do {                                                                       \
        assert_int_equal((rc), (ssize_t)sizeof(s) - 1);                        \
        assert_int_equal(ch.state, H1_CH_DONE);                                \
        assert_int_equal(outlen, sizeof(payload) - 1);                         \
        assert_memory_equal(out, payload, outlen);                             \
    } while (0)
#define assert_bad(rc) assert_int_equal((rc), -EBADMSG)

static void init_defaults(void **state)
{
    (void)state;
    struct h1_chunked c;
    memset(&c, 0xa5, sizeof(c));
    h1_chunked_init(&c);
    assert_int_equal(c.state, H1_CH_SIZE);
    assert_int_equal(c.remaining, 0);
    assert_int_equal(c.digits, 0);
    assert_int_equal(c.max_line, 4096);
    assert_int_equal(c.max_trailer, 16384);
}

static void simple(void **state)
{
    (void)state;
    assert_done(DECODE("5\r\nhello\r\n0\r\n\r\n"), "5\r\nhello\r\n0\r\n\r\n",
                "hello");
    assert_done(DECODE("0\r\n\r\n"), "0\r\n\r\n", "");
    assert_done(DECODE("3\r\nabc\r\nA\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n"),
                "3\r\nabc\r\nA\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n",
                "abc0123456789!");
    assert_done(DECODE("a\r\n0123456789\r\n000\r\n\r\n"),
                "a\r\n0123456789\r\n000\r\n\r\n", "0123456789");
    assert_done(DECODE("00005\r\n\r\n\r\n\0\r\n0\r\n\r\n"),
                "00005\r\n\r\n\r\n\0\r\n0\r\n\r\n", "\r\n\r\n\0");
}

static void incomplete(void **state)
{
    (void)state;
    assert_int_equal(DECODE("5\r\nhel"), 6);
    assert_int_equal(ch.state, H1_CH_DATA);
    assert_int_equal(ch.remaining, 2);
    assert_int_equal(outlen, 3);
    assert_int_equal(DECODE("5\r\nhello\r"), 9);
    assert_int_equal(ch.state, H1_CH_DATA_LF);
    assert_int_equal(DECODE("0\r\n"), 3);
    assert_int_equal(ch.state, H1_CH_TRAILER);
    assert_int_equal(DECODE("0\r\n\r"), 4);
    assert_int_equal(ch.state, H1_CH_FINAL_LF);
    assert_int_equal(DECODE("0;a=\"b"), 6);
    assert_int_equal(ch.state, H1_CH_EXT);
    assert_int_equal(DECODE(""), 0);
}

static void stops_at_end(void **state)
{
    (void)state;
    static const char s[] = "2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(DECODE(s), 12);
    assert_int_equal(ch.state, H1_CH_DONE);
    assert_int_equal(outlen, 2);
    /* once done, nothing more is consumed */
    size_t dl = 7;
    assert_int_equal(h1_chunked_scan(&ch, s + 12, 5, NULL, &dl), 0);
    assert_int_equal(dl, 0);
}

static void size_limits(void **state)
{
    (void)state;
    /* 16 digits is the most */
    assert_done(DECODE("000000000000000A\r\n0123456789\r\n0\r\n\r\n"),
                "000000000000000A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    assert_bad(DECODE("0000000000000000A\r\n0123456789\r\n0\r\n\r\n"));
    assert_bad(DECODE("00000000000000000\r\n\r\n"));
    /* below 2^63 */
    assert_int_equal(DECODE("7fffffffffffffff\r\nabc"), 21);
    assert_int_equal(ch.state, H1_CH_DATA);
    assert_int_equal(ch.remaining, INT64_MAX - 3);
    assert_bad(DECODE("8000000000000000\r\n"));
    assert_bad(DECODE("ffffffffffffffff\r\n"));
    assert_bad(DECODE("ffffffffffffffffff\r\n"));
    assert_bad(DECODE("10000000000000000\r\n"));
    assert_bad(DECODE("fffffffffffffffff"));
}

static void size_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0x5\r\nhello\r\n0\r\n\r\n", "x5\r\n", "-1\r\n", "+5\r\n", " 5\r\n",
        "\t5\r\n", "\r\n", "\n", ";a\r\n", "5\nhello\r\n0\r\n\r\n", "5\rX",
        "g\r\n", "5g\r\n", "5 5\r\n", "5 a\r\n", "5,5\r\n", "5.0\r\n",
        "5\r\r\n", "\xff\r\n", "0\n\r\n", "0\r\n\n", "0\r\n\rX",
        "0\r\n\r\r\n",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_bad(decode_lim(bad[k], strlen(bad[k]), NULL));
    assert_bad(DECODE("5\0\r\nhello\r\n0\r\n\r\n"));
    /* BWS after the size, before ';' or the end of the line */
    assert_done(DECODE("5 \t\r\nhello\r\n0  \r\n\r\n"),
                "5 \t\r\nhello\r\n0  \r\n\r\n", "hello");
}

static void data_framing(void **state)
{
    (void)state;
    assert_bad(DECODE("5\r\nhelloX\r\n0\r\n\r\n"));
    assert_bad(DECODE("5\r\nhello\n0\r\n\r\n"));
    assert_bad(DECODE("5\r\nhello\rX0\r\n\r\n"));
    assert_bad(DECODE("3\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5\r\nhel\r\n0\r\n\r\n")); /* short: "\r\n0\r\n" is data */
    assert_bad(DECODE("5\r\nhello\r\n\r\n"));
}

static void extensions(void **state)
{
    (void)state;
    assert_done(DECODE("5;a\r\nhello\r\n0\r\n\r\n"), "5;a\r\nhello\r\n0\r\n\r\n",
                "hello");
    assert_done(DECODE("5;a=b\r\nhello\r\n0;x=y\r\n\r\n"),
                "5;a=b\r\nhello\r\n0;x=y\r\n\r\n", "hello");
    assert_done(DECODE("5 ; a = b ;c;d=e\t\r\nhello\r\n0\r\n\r\n"),
                "5 ; a = b ;c;d=e\t\r\nhello\r\n0\r\n\r\n", "hello");
    assert_done(DECODE("5;a=b=c;;\r\nhello\r\n0\r\n\r\n"),
                "5;a=b=c;;\r\nhello\r\n0\r\n\r\n", "hello"); /* loose */
}

static void extensions_quoted(void **state)
{
    (void)state;
    assert_done(DECODE("5;a=\"x; y,\\\"z(\\\\)\"\r\nhello\r\n0\r\n\r\n"),
                "5;a=\"x; y,\\\"z(\\\\)\"\r\nhello\r\n0\r\n\r\n", "hello");
    assert_done(DECODE("5;a=\"\x80\xff\t \"\r\nhello\r\n0\r\n\r\n"),
                "5;a=\"\x80\xff\t \"\r\nhello\r\n0\r\n\r\n", "hello");
    /* a line break hidden in a quoted-string or escaped */
    assert_bad(DECODE("5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5;a=\"x\r\ny\"\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5;a=\"x\\\r\ny\"\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5;a=\"x\\\ny\"\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5;a=\"x\0\"\r\nhello\r\n0\r\n\r\n"));
    assert_bad(DECODE("5;a=\"x\x7f\"\r\nhello\r\n0\r\n\r\n"));
}

static void extensions_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "5;a\nhello\r\n0\r\n\r\n",     "5;a\n\r\nhello\r\n0\r\n\r\n",
        "5;a\rX\nhello\r\n0\r\n\r\n",  "5;a\x01\r\nhello\r\n0\r\n\r\n",
        "5;(a)\r\nhello\r\n0\r\n\r\n", "5;a@b\r\nhello\r\n0\r\n\r\n",
        "5;a/b\r\nhello\r\n0\r\n\r\n", "5 x\r\nhello\r\n0\r\n\r\n",
        "5 \n\r\nhello\r\n0\r\n\r\n",  "5;\x80\r\nhello\r\n0\r\n\r\n",
        "0;a\n\r\n",                   "0 ;a\n\r\n",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_bad(decode_lim(bad[k], strlen(bad[k]), NULL));
}

static void extension_limit(void **state)
{
    (void)state;
    struct h1_chunked lim;
    h1_chunked_init(&lim);
    lim.max_line = 8;
    /* ";abcdefg" is 8 bytes: the most */
    assert_done(DECODEL("1;abcdefg\r\nx\r\n0\r\n\r\n", &lim),
                "1;abcdefg\r\nx\r\n0\r\n\r\n", "x");
    assert_bad(DECODEL("1;abcdefgh\r\nx\r\n0\r\n\r\n", &lim));
    assert_done(DECODEL("1        \r\nx\r\n0\r\n\r\n", &lim),
                "1        \r\nx\r\n0\r\n\r\n", "x");
    assert_bad(DECODEL("1         \r\nx\r\n0\r\n\r\n", &lim));
    /* an endless extension is refused once too long, without its end */
    assert_bad(DECODEL("1;aaaaaaaaaaaaaaaaaaaaa", &lim));
}

static void trailers(void **state)
{
    (void)state;
    assert_done(DECODE("1\r\nx\r\n0\r\nA: b\r\nChecksum:\t\x80z \r\nE:\r\n\r\n"),
                "1\r\nx\r\n0\r\nA: b\r\nChecksum:\t\x80z \r\nE:\r\n\r\n", "x");
    static const char *const bad[] = {
        "0\r\nA : b\r\n\r\n", "0\r\n A: b\r\n\r\n", "0\r\nA: b\r\n c\r\n\r\n",
        "0\r\nA\r\n\r\n",     "0\r\n: b\r\n\r\n",   "0\r\nA: b\n\r\n",
        "0\r\nA: b\rX\r\n\r\n", "0\r\nA: \x01\r\n\r\n", "0\r\nA(: b\r\n\r\n",
        "0\r\nA: b\r\n\n",    "0\r\n\tA: b\r\n\r\n", "0\r\nA: \x7f\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_bad(decode_lim(bad[k], strlen(bad[k]), NULL));
    assert_bad(DECODE("0\r\nA: \0\r\n\r\n"));
}

static void trailer_limits(void **state)
{
    (void)state;
    struct h1_chunked lim;
    h1_chunked_init(&lim);
    lim.max_line = 8;
    /* "A: 1234" and its CR are 8 bytes: the most */
    assert_done(DECODEL("0\r\nA: 1234\r\n\r\n", &lim), "0\r\nA: 1234\r\n\r\n", "");
    assert_bad(DECODEL("0\r\nA: 12345\r\n\r\n", &lim));
    lim.max_line = 100;
    lim.max_trailer = 20;
    /* 10 + 10 bytes, CRLFs included */
    assert_done(DECODEL("0\r\nA: 12345\r\nB: 12345\r\n\r\n", &lim),
                "0\r\nA: 12345\r\nB: 12345\r\n\r\n", "");
    assert_bad(DECODEL("0\r\nA: 12345\r\nB: 123456\r\n\r\n", &lim));
    assert_bad(DECODEL("0\r\nA: 12345\r\nB: 12345\r\nC", &lim));
}

static void in_place(void **state)
{
    (void)state;
    char buf[] = "4\r\nWiki\r\n6;x=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n"
                 "0\r\nT: 1\r\n\r\nNEXT";
    static const char want[] = "Wikipedia in \r\n\r\nchunks.";
    struct h1_chunked c;
    size_t dl = 0, n = sizeof(buf) - 1;
    h1_chunked_init(&c);
    ssize_t r = h1_chunked_scan(&c, buf, n, buf, &dl);
    assert_int_equal(r, (ssize_t)n - 4);
    assert_int_equal(dl, sizeof(want) - 1);
    assert_memory_equal(buf, want, dl);
    assert_memory_equal(buf + r, "NEXT", 4);
    /* to another buffer, with no count asked for */
    char other[64];
    h1_chunked_init(&c);
    assert_int_equal(h1_chunked_scan(&c, "3\r\nabc\r\n", 8, other, NULL), 8);
    assert_memory_equal(other, "abc", 3);
}

static void large_body(void **state)
{
    (void)state;
    /* random chunk sizes, random extensions, fed in random pieces */
    size_t cap = 1 << 20, n = 0, plen = 0;
    char *body = malloc(cap), *payload = malloc(cap), *dec = malloc(cap);
    assert_non_null(body);
    assert_non_null(payload);
    assert_non_null(dec);
    while (plen < 200000) {
        size_t sz = rnd() % 5000 + 1;
        n += (size_t)snprintf(body + n, cap - n, "%zx%s\r\n", sz,
                              rnd() % 3 ? "" : ";ext=\"v\"");
        for (size_t k = 0; k < sz; k++) {
            char b = (char)rnd();
            body[n++] = b;
            payload[plen++] = b;
        }
        memcpy(body + n, "\r\n", 2);
        n += 2;
    }
    memcpy(body + n, "0\r\nX: y\r\n\r\n", 11);
    n += 11;

    struct h1_chunked c;
    size_t off = 0, dlen = 0;
    h1_chunked_init(&c);
    while (off < n) {
        size_t step = 1 + rnd() % 9000;
        if (step > n - off)
            step = n - off;
        size_t dl;
        ssize_t r = h1_chunked_scan(&c, body + off, step, body + off, &dl);
        assert_int_equal(r, (ssize_t)step);
        memcpy(dec + dlen, body + off, dl);
        dlen += dl;
        off += step;
    }
    assert_int_equal(c.state, H1_CH_DONE);
    assert_int_equal(dlen, plen);
    assert_memory_equal(dec, payload, plen);
    free(body);
    free(payload);
    free(dec);
}

static void bare_lf_everywhere(void **state)
{
    (void)state;
    /* replace each CRLF of a valid body by a bare LF, or its LF by a
       byte that is not LF: every one must be refused */
    static const char s[] = "5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n";
    size_t n = sizeof(s) - 1;
    for (size_t k = 0; k + 1 < n; k++) {
        if (s[k] != '\r')
            continue;
        char buf[64];
        memcpy(buf, s, k);
        memcpy(buf + k, s + k + 1, n - k - 1); /* drop the CR */
        assert_bad(decode_lim(buf, n - 1, NULL));
        memcpy(buf, s, n);
        buf[k + 1] = 'Z'; /* a bare CR */
        assert_bad(decode_lim(buf, n, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_defaults),
        cmocka_unit_test(simple),
        cmocka_unit_test(incomplete),
        cmocka_unit_test(stops_at_end),
        cmocka_unit_test(size_limits),
        cmocka_unit_test(size_syntax),
        cmocka_unit_test(data_framing),
        cmocka_unit_test(extensions),
        cmocka_unit_test(extensions_quoted),
        cmocka_unit_test(extensions_bad),
        cmocka_unit_test(extension_limit),
        cmocka_unit_test(trailers),
        cmocka_unit_test(trailer_limits),
        cmocka_unit_test(in_place),
        cmocka_unit_test(large_body),
        cmocka_unit_test(bare_lf_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
