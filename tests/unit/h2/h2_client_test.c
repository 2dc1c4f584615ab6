/*
 * The HTTP/2 client session (src/h2/h2_client.c) talking to our own
 * server session (src/h2/h2.c) in memory: request heads and bodies up
 * (with flow control), response heads, bodies and trailers down, stream
 * resets and GOAWAY as the client sees them (issue 6, protocol: h2).
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
#include "h2/h2_client.h"

/* ---- the server side: records the request, answers as told ---- */

enum answer { A_FULL = 0, A_RESET, A_NONE };

struct srv {
    struct h2_sess *s;
    int32_t id;
    char fields[2048];
    size_t flen;
    char trailers[256];
    size_t tlen;
    size_t body;
    bool head, end;
    enum answer answer;
    size_t off; /* of the response body pulled */
};

static struct srv S;
static int token;

static void rec(char *buf, size_t cap, size_t *len, const char *n, size_t nl,
                const char *v, size_t vl)
{
    int k = snprintf(buf + *len, cap - *len, "%.*s=%.*s;", (int)nl, n, (int)vl, v);
    if (k > 0 && (size_t)k < cap - *len)
        *len += (size_t)k;
}

static void *s_begin(void *ud, int32_t id)
{
    (void)ud;
    S.id = id;
    return &token;
}

static void s_field(void *sud, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)sud;
    rec(S.fields, sizeof(S.fields), &S.flen, n, nl, v, vl);
}

static const char RBODY[] = "hello from the server";

static void answer(void)
{
    static const struct h2_nv nv[] = { { ":status", 7, "200", 3 },
                                       { "content-type", 12, "text/plain", 10 } };
    if (S.answer == A_FULL)
        assert_int_equal(h2_submit(S.s, S.id, nv, 2, true, false), 0);
    else if (S.answer == A_RESET)
        h2_reset(S.s, S.id, H2_INTERNAL_ERROR);
}

static void s_head(void *sud, bool end, int status)
{
    (void)sud;
    assert_int_equal(status, 0);
    S.head = true;
    S.end = end;
    if (end)
        answer();
}

static void s_data(void *sud, const uint8_t *p, size_t len)
{
    (void)sud, (void)p;
    S.body += len;
    h2_consume(S.s, S.id, len); /* passed on at once */
}

static void s_end(void *sud)
{
    (void)sud;
    S.end = true;
    answer();
}

static void s_close(void *sud, uint32_t code)
{
    (void)sud, (void)code;
}

static ssize_t s_pull(void *sud, uint8_t *buf, size_t len, bool *eof)
{
    (void)sud;
    size_t n = sizeof(RBODY) - 1 - S.off;
    if (n > len)
        n = len;
    memcpy(buf, RBODY + S.off, n);
    S.off += n;
    *eof = S.off == sizeof(RBODY) - 1;
    return (ssize_t)n;
}

static size_t s_trailers(void *sud, const struct h2_nv **nv)
{
    (void)sud;
    static const struct h2_nv tr[] = { { "grpc-status", 11, "5", 1 },
                                       { "grpc-message", 12, "not found", 9 } };
    *nv = tr;
    return 2;
}

static void s_trailer(void *sud, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)sud;
    rec(S.trailers, sizeof(S.trailers), &S.tlen, n, nl, v, vl);
}

static const struct h2_cbs scbs = { s_begin, s_field, s_head, s_data, s_end,
                                    s_close, s_pull, s_trailers, s_trailer };

static const struct h2_limits lim = {
    .max_streams = 100, .stream_window = 65536, .conn_window = 1 << 20,
    .max_header_list = 8192, .max_fields = 50, .max_resets = 20,
    .reset_rate = 1, .max_glitches = 30,
};

/* ---- the client side ---- */

struct cli {
    int heads, ends, closes, status;
    bool head_end;
    uint32_t code;
    char fields[1024], trailers[1024];
    size_t flen, tlen;
    char data[256];
    size_t dlen;
    size_t body, body_off; /* request body to send */
};

static struct cli C;
static int ctoken;

static void c_field(void *sud, const char *n, size_t nl, const char *v, size_t vl,
                    bool trailer)
{
    (void)sud;
    if (trailer)
        rec(C.trailers, sizeof(C.trailers), &C.tlen, n, nl, v, vl);
    else
        rec(C.fields, sizeof(C.fields), &C.flen, n, nl, v, vl);
}

static void c_head(void *sud, int status, bool end)
{
    (void)sud;
    C.heads++;
    C.status = status;
    C.head_end = end;
}

static struct h2_cli *CL;
static int32_t CID;

static void c_data(void *sud, const uint8_t *p, size_t len)
{
    (void)sud;
    if (C.dlen + len < sizeof(C.data)) {
        memcpy(C.data + C.dlen, p, len);
        C.dlen += len;
    }
    h2_cli_consume(CL, CID, len);
}

static void c_end(void *sud)
{
    (void)sud;
    C.ends++;
}

static void c_close(void *sud, uint32_t code)
{
    (void)sud;
    C.closes++;
    C.code = code;
}

static ssize_t c_pull(void *sud, uint8_t *buf, size_t len, bool *eof)
{
    (void)sud;
    size_t n = C.body - C.body_off;
    if (n > len)
        n = len;
    memset(buf, 'b', n);
    C.body_off += n;
    *eof = C.body_off == C.body;
    return (ssize_t)n;
}

static size_t c_trailers(void *sud, const struct h2_nv **nv)
{
    (void)sud;
    static const struct h2_nv tr[] = { { "x-req-trailer", 13, "yes", 3 } };
    *nv = tr;
    return C.body > 0 ? 1 : 0;
}

static const struct h2_cli_cbs ccbs = { c_field, c_head, c_data, c_end, c_close, c_pull,
                                        c_trailers };

/* ---- the wire ---- */

static uint8_t buf[1 << 16];

/* Moves bytes both ways until neither side has anything to say. */
static void pump(void)
{
    for (int i = 0; i < 1000; i++) {
        ssize_t a = h2_cli_send(CL, buf, sizeof(buf));
        assert_true(a >= 0);
        if (a > 0)
            assert_int_equal(h2_recv(S.s, buf, (size_t)a), 0);
        ssize_t b = h2_send(S.s, buf, sizeof(buf));
        assert_true(b >= 0);
        if (b > 0)
            assert_int_equal(h2_cli_recv(CL, buf, (size_t)b), 0);
        if (a == 0 && b == 0)
            return;
    }
    fail_msg("the sessions never went quiet");
}

static void setup_pair(enum answer a)
{
    memset(&S, 0, sizeof(S));
    memset(&C, 0, sizeof(C));
    S.answer = a;
    S.s = h2_sess_new(&lim, &scbs, NULL);
    CL = h2_cli_new(&ccbs, 65535, 1 << 20);
    assert_non_null(S.s);
    assert_non_null(CL);
}

static void teardown_pair(void)
{
    h2_cli_free(CL);
    h2_sess_free(S.s);
}

static const struct h2_nv req[] = {
    { ":method", 7, "POST", 4 },     { ":scheme", 7, "http", 4 },
    { ":authority", 10, "a.test", 6 }, { ":path", 5, "/svc/M", 6 },
    { "te", 2, "trailers", 8 },      { "content-type", 12, "application/grpc", 16 },
};

static void test_request_response_trailers(void **state)
{
    (void)state;
    setup_pair(A_FULL);
    C.body = 200000; /* more than the server's 64 KiB stream window */
    CID = h2_cli_request(CL, req, 6, true, &ctoken);
    assert_int_equal(CID, 1);
    pump();
    assert_true(S.head && S.end);
    assert_int_equal(S.body, 200000);
    assert_non_null(strstr(S.fields, ":path=/svc/M;"));
    assert_non_null(strstr(S.fields, "te=trailers;"));
    assert_string_equal(S.trailers, "x-req-trailer=yes;"); /* after the body */
    assert_int_equal(C.heads, 1);
    assert_int_equal(C.status, 200);
    assert_false(C.head_end);
    assert_non_null(strstr(C.fields, "content-type=text/plain;"));
    assert_int_equal(C.dlen, sizeof(RBODY) - 1);
    assert_memory_equal(C.data, RBODY, C.dlen);
    assert_string_equal(C.trailers, "grpc-status=5;grpc-message=not found;");
    assert_int_equal(C.ends, 1);
    assert_int_equal(C.closes, 1);
    assert_int_equal(C.code, 0);
    assert_int_equal(h2_cli_streams(CL), 0);
    assert_true(h2_cli_usable(CL));
    /* the session carries the next request */
    CID = h2_cli_request(CL, req, 4, false, &ctoken);
    assert_int_equal(CID, 3);
    teardown_pair();
}

static void test_reset_reaches_the_client(void **state)
{
    (void)state;
    setup_pair(A_RESET);
    CID = h2_cli_request(CL, req, 4, false, &ctoken);
    assert_true(CID > 0);
    pump();
    assert_int_equal(C.heads, 0);
    assert_int_equal(C.closes, 1);
    assert_int_equal(C.code, H2_INTERNAL_ERROR);
    assert_true(h2_cli_usable(CL)); /* the connection is fine */
    teardown_pair();
}

static void test_goaway_refuses_the_stream(void **state)
{
    (void)state;
    setup_pair(A_NONE);
    h2_goaway(S.s); /* last stream 0: nothing was processed */
    ssize_t b = h2_send(S.s, buf, sizeof(buf));
    assert_true(b > 0);
    CID = h2_cli_request(CL, req, 4, false, &ctoken);
    assert_true(CID > 0);
    assert_int_equal(h2_cli_recv(CL, buf, (size_t)b), 0);
    pump();
    assert_int_equal(C.closes, 1);
    assert_int_equal(C.code, H2_REFUSED_STREAM);
    assert_int_equal(h2_cli_goaway(CL), 0);
    assert_false(h2_cli_usable(CL));
    assert_int_equal(h2_cli_request(CL, req, 4, false, &ctoken), -EAGAIN);
    teardown_pair();
}

static void test_garbage_breaks_the_session(void **state)
{
    (void)state;
    setup_pair(A_NONE);
    CID = h2_cli_request(CL, req, 4, false, &ctoken);
    assert_true(h2_cli_send(CL, buf, sizeof(buf)) > 0);
    static const uint8_t junk[] = "HTTP/1.1 200 OK\r\n\r\n";
    /* an HTTP/1.1 server answering our preface, in two pieces */
    assert_int_equal(h2_cli_recv(CL, junk, 2), 0);
    assert_int_equal(h2_cli_recv(CL, junk + 2, sizeof(junk) - 3), -EPROTO);
    assert_false(h2_cli_usable(CL));
    teardown_pair();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_response_trailers),
        cmocka_unit_test(test_reset_reaches_the_client),
        cmocka_unit_test(test_goaway_refuses_the_stream),
        cmocka_unit_test(test_garbage_breaks_the_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
