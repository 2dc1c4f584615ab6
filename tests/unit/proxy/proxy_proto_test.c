/* PROXY protocol v1/v2 parsing and writing (HAProxy's proxy-protocol.txt):
 * valid headers, every prefix is -EAGAIN, garbage is refused at once,
 * round trips through pp_write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "proxy/proxy_proto.h"

static const char v2sig[] = "\r\n\r\n\0\r\nQUIT\n";

static void ip_eq(const union pp_addr *a, const char *ip, unsigned port)
{
    char buf[64];
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, buf, sizeof(buf));
        assert_int_equal(ntohs(a->in.sin_port), port);
    } else {
        assert_int_equal(a->sa.sa_family, AF_INET6);
        inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, sizeof(buf));
        assert_int_equal(ntohs(a->in6.sin6_port), port);
    }
    assert_string_equal(buf, ip);
}

/* Every strict prefix of a complete header asks for more. */
static void prefixes_again(const char *h, size_t len)
{
    struct pp_info pi;
    for (size_t i = 0; i < len; i++)
        assert_int_equal(pp_parse(h, i, &pi), -EAGAIN);
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char h[] = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n";
    size_t hl = strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
    struct pp_info pi;
    assert_int_equal(pp_parse(h, sizeof(h) - 1, &pi), (int)hl);
    assert_int_equal(pi.version, 1);
    assert_false(pi.local);
    ip_eq(&pi.src, "192.0.2.1", 56324);
    ip_eq(&pi.dst, "198.51.100.7", 443);
    prefixes_again(h, hl);
}

static void test_v1_tcp6_unknown(void **state)
{
    (void)state;
    const char h[] = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    struct pp_info pi;
    assert_int_equal(pp_parse(h, sizeof(h) - 1, &pi), (int)sizeof(h) - 1);
    ip_eq(&pi.src, "2001:db8::1", 1);
    ip_eq(&pi.dst, "::1", 65535);
    const char u[] = "PROXY UNKNOWN ffff::1 ::1 1 2\r\n";
    assert_int_equal(pp_parse(u, sizeof(u) - 1, &pi), (int)sizeof(u) - 1);
    assert_true(pi.local);
    assert_int_equal(pp_parse("PROXY UNKNOWN\r\n", 15, &pi), 15);
    assert_true(pi.local);
}

static void test_v1_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 \r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 056324 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n",
        "PROXY TCP4 ::1 198.51.100.7 1 443\r\n",
        "PROXY TCP6 192.0.2.1 ::1 1 443\r\n",
        "PROXY TCP5 192.0.2.1 198.51.100.7 1 443\r\n",
        "PROXY TCP4 192.0.2.1  198.51.100.7 1 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\rX",
        "proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n\r\n",
    };
    struct pp_info pi;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = pp_parse(bad[i], strlen(bad[i]), &pi);
        if (rc != -EBADMSG)
            fail_msg("accepted (%d): %s", rc, bad[i]);
    }
    /* no CRLF within 107 bytes */
    char longl[200];
    memset(longl, '1', sizeof(longl));
    memcpy(longl, "PROXY TCP4 ", 11);
    assert_int_equal(pp_parse(longl, sizeof(longl), &pi), -EBADMSG);
    /* the very first wrong byte is enough */
    assert_int_equal(pp_parse("G", 1, &pi), -EBADMSG);
    assert_int_equal(pp_parse("PR0", 3, &pi), -EBADMSG);
    assert_int_equal(pp_parse("\r\n\r\nX", 5, &pi), -EBADMSG);
}

static size_t v2(unsigned char *b, unsigned vc, unsigned fp, const void *addr,
                 size_t alen, size_t extra)
{
    memcpy(b, v2sig, 12);
    b[12] = (unsigned char)vc;
    b[13] = (unsigned char)fp;
    b[14] = (unsigned char)((alen + extra) >> 8);
    b[15] = (unsigned char)(alen + extra);
    memcpy(b + 16, addr, alen);
    memset(b + 16 + alen, 0xee, extra);
    return 16 + alen + extra;
}

static void test_v2_inet(void **state)
{
    (void)state;
    unsigned char b[512];
    const unsigned char a4[12] = { 203, 0, 113, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 80 };
    size_t n = v2(b, 0x21, 0x11, a4, 12, 0);
    struct pp_info pi;
    assert_int_equal(pp_parse((char *)b, n, &pi), (int)n);
    assert_int_equal(pi.version, 2);
    assert_false(pi.local);
    ip_eq(&pi.src, "203.0.113.7", 12345);
    ip_eq(&pi.dst, "10.0.0.1", 80);
    prefixes_again((char *)b, n);
    /* TLVs after the addresses are skipped */
    n = v2(b, 0x21, 0x11, a4, 12, 100);
    assert_int_equal(pp_parse((char *)b, n + 5, &pi), (int)n);
    ip_eq(&pi.src, "203.0.113.7", 12345);
    unsigned char a6[36] = { 0x20, 0x01, 0x0d, 0xb8 };
    a6[15] = 1;
    a6[31] = 1;
    a6[32] = 1;
    a6[35] = 2;
    n = v2(b, 0x21, 0x21, a6, 36, 0);
    assert_int_equal(pp_parse((char *)b, n, &pi), (int)n);
    ip_eq(&pi.src, "2001:db8::1", 256);
    ip_eq(&pi.dst, "::1", 2);
}

static void test_v2_local_and_bad(void **state)
{
    (void)state;
    unsigned char b[PP_MAX_V2 + 64];
    struct pp_info pi;
    size_t n = v2(b, 0x20, 0x00, "", 0, 0); /* LOCAL: a health check */
    assert_int_equal(pp_parse((char *)b, n, &pi), 16);
    assert_true(pi.local);
    unsigned char ux[216] = { 0 };
    n = v2(b, 0x21, 0x31, ux, 216, 0); /* AF_UNIX: keep our addresses */
    assert_int_equal(pp_parse((char *)b, n, &pi), (int)n);
    assert_true(pi.local);
    const unsigned char a4[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
    n = v2(b, 0x11, 0x11, a4, 12, 0); /* version 1 in a v2 header */
    assert_int_equal(pp_parse((char *)b, n, &pi), -EBADMSG);
    n = v2(b, 0x22, 0x11, a4, 12, 0); /* command 2 */
    assert_int_equal(pp_parse((char *)b, n, &pi), -EBADMSG);
    n = v2(b, 0x21, 0x41, a4, 12, 0); /* family 4 */
    assert_int_equal(pp_parse((char *)b, n, &pi), -EBADMSG);
    n = v2(b, 0x21, 0x21, a4, 12, 0); /* INET6 needs 36 bytes */
    assert_int_equal(pp_parse((char *)b, n, &pi), -EBADMSG);
    n = v2(b, 0x21, 0x11, a4, 12, PP_MAX_V2); /* too long */
    assert_int_equal(pp_parse((char *)b, 16, &pi), -EBADMSG);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    union pp_addr s = { 0 }, d = { 0 };
    s.in.sin_family = d.in.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.9", &s.in.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &d.in.sin_addr);
    s.in.sin_port = htons(40000);
    d.in.sin_port = htons(8080);
    char out[PP_MAX_V1 + 1];
    int n = pp_write(out, sizeof(out), 1, &s.sa, &d.sa);
    assert_int_equal(n, (int)strlen("PROXY TCP4 192.0.2.9 127.0.0.1 40000 8080\r\n"));
    assert_memory_equal(out, "PROXY TCP4 192.0.2.9 127.0.0.1 40000 8080\r\n", (size_t)n);
    for (int ver = 1; ver <= 2; ver++) {
        n = pp_write(out, sizeof(out), ver, &s.sa, &d.sa);
        assert_true(n > 0);
        struct pp_info pi;
        assert_int_equal(pp_parse(out, (size_t)n, &pi), n);
        assert_int_equal(pi.version, ver);
        ip_eq(&pi.src, "192.0.2.9", 40000);
        ip_eq(&pi.dst, "127.0.0.1", 8080);
    }
    union pp_addr s6 = { 0 };
    s6.in6.sin6_family = AF_INET6;
    n = pp_write(out, sizeof(out), 1, &s6.sa, &d.sa); /* mixed families */
    assert_memory_equal(out, "PROXY UNKNOWN\r\n", (size_t)n);
    n = pp_write(out, sizeof(out), 2, &s6.sa, &d.sa);
    struct pp_info pi;
    assert_int_equal(pp_parse(out, (size_t)n, &pi), 16);
    assert_true(pi.local);
    assert_int_equal(pp_write(out, 10, 1, &s.sa, &d.sa), -ENOSPC);
    assert_int_equal(pp_write(out, 20, 2, &s.sa, &d.sa), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6_unknown),
        cmocka_unit_test(test_v1_bad),
        cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_local_and_bad),
        cmocka_unit_test(test_write_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
