/*
 * Value syntaxes shared by the whole configuration: durations, sizes and
 * addresses (docs/config.md "Values").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "config/config.h"

static void test_duration_ok(void **state)
{
    static const struct {
        const char *in;
        cfg_ms ms;
    } ok[] = {
        { "0", 0 },
        { "1", 1000 },
        { "30", 30000 },
        { "500ms", 500 },
        { "0ms", 0 },
        { "30s", 30000 },
        { "5m", 300000 },
        { "1h", 3600000 },
        { "2d", 172800000 },
        { "007s", 7000 },
        { "9223372036854775807ms", INT64_MAX },
        { "9223372036854775s", INT64_C(9223372036854775000) },
        { "106751991167d", INT64_C(106751991167) * 86400000 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cfg_ms ms = -1;
        assert_int_equal(cfg_parse_duration(str_cstr(ok[i].in), &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
}

static void test_duration_bad(void **state)
{
    static const char *const bad[] = {
        "", "s", "ms", "-1s", "+1s", "-0", " 1s", "1s ", "1 s", "1.5s",
        "1S", "1sec", "1us", "1w", "1h30m", "0x10", "1e3", "abc", "30s0",
        "9223372036854775808ms", "9223372036854776s", "106751991168d",
        "99999999999999999999", "18446744073709551616ms",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg_ms ms = 42;
        assert_int_equal(cfg_parse_duration(str_cstr(bad[i]), &ms), -EINVAL);
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    cfg_ms ms;
    assert_int_equal(cfg_parse_duration(STR_NULL, &ms), -EINVAL);
    /* the view's length is what counts, not a NUL */
    assert_int_equal(cfg_parse_duration(str_make("30sXX", 3), &ms), 0);
    assert_int_equal(ms, 30000);
}

static void test_size_ok(void **state)
{
    static const struct {
        const char *in;
        uint64_t n;
    } ok[] = {
        { "0", 0 },
        { "512", 512 },
        { "64KiB", 64 << 10 },
        { "1MiB", 1 << 20 },
        { "2GiB", 2ULL << 30 },
        { "3TiB", 3ULL << 40 },
        { "1k", 1024 },
        { "1K", 1024 },
        { "1KB", 1024 },
        { "2m", 2 << 20 },
        { "2M", 2 << 20 },
        { "2MB", 2 << 20 },
        { "4g", 4ULL << 30 },
        { "4G", 4ULL << 30 },
        { "4GB", 4ULL << 30 },
        { "18446744073709551615", UINT64_MAX },
        { "16777215TiB", 16777215ULL << 40 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t n = 1;
        assert_int_equal(cfg_parse_size(str_cstr(ok[i].in), &n), 0);
        assert_int_equal(n, ok[i].n);
    }
}

static void test_size_bad(void **state)
{
    static const char *const bad[] = {
        "", "KiB", "-1", "+1", " 1", "1 KiB", "1.5MiB", "1kib", "1KIB",
        "1Ki", "1b", "1B", "1T", "1TB", "1PiB", "1kb", "0x100", "1e6",
        "18446744073709551616", "16777216TiB", "17179869184GiB", "lots",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t n = 42;
        assert_int_equal(cfg_parse_size(str_cstr(bad[i]), &n), -EINVAL);
        assert_int_equal(n, 42);
    }
}

static void check_addr(const char *in, int family, const char *text,
                       unsigned port)
{
    struct cfg_addr a;

    assert_int_equal(cfg_parse_addr(str_cstr(in), &a), 0);
    assert_string_equal(a.text, text);
    assert_int_equal(a.ss.ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a.ss;
        assert_int_equal(a.len, sizeof(struct sockaddr_in));
        assert_int_equal(ntohs(in4->sin_port), port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;
        assert_int_equal(a.len, sizeof(struct sockaddr_in6));
        assert_int_equal(ntohs(in6->sin6_port), port);
    }
}

static void test_addr_ok(void **state)
{
    (void)state;
    check_addr("127.0.0.1:8080", AF_INET, "127.0.0.1:8080", 8080);
    check_addr("1.2.3.4:80", AF_INET, "1.2.3.4:80", 80);
    check_addr("0.0.0.0:1", AF_INET, "0.0.0.0:1", 1);
    check_addr("255.255.255.255:65535", AF_INET, "255.255.255.255:65535",
               65535);
    check_addr("*:80", AF_INET, "0.0.0.0:80", 80);
    check_addr("127.0.0.1:08080", AF_INET, "127.0.0.1:8080", 8080);
    check_addr("[::1]:8080", AF_INET6, "[::1]:8080", 8080);
    check_addr("[::]:443", AF_INET6, "[::]:443", 443);
    check_addr("[2001:DB8:0:0::1]:80", AF_INET6, "[2001:db8::1]:80", 80);
    check_addr("[::ffff:10.0.0.1]:80", AF_INET6, "[::ffff:10.0.0.1]:80", 80);
    /* names resolve at load, preferring IPv4 */
    check_addr("localhost:80", AF_INET, "127.0.0.1:80", 80);

    struct cfg_addr a;
    assert_int_equal(cfg_parse_addr(str_cstr("1.2.3.4:80"), &a), 0);
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a.ss;
    assert_int_equal(ntohl(in4->sin_addr.s_addr), 0x01020304);
    assert_int_equal(cfg_parse_addr(str_cstr("*:80"), &a), 0);
    assert_int_equal(in4->sin_addr.s_addr, htonl(INADDR_ANY));
}

static void test_addr_bad(void **state)
{
    static const char *const bad[] = {
        "",
        ":80",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:80x",
        "127.0.0.1: 80",
        " 127.0.0.1:80",
        "127.0.0.256:80",
        "127.1:80", /* inet_aton would take it; we do not */
        "1.2.3:80",
        "01.2.3.4:80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[::1:80",
        "[127.0.0.1]:80",
        "[localhost]:80",
        "[*]:80",
        "[]:80",
        "**:80",
        "http://x:80",
        "host name:80",
        "no-such-host.invalid:80",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cfg_addr a;
        memset(&a, 0x5a, sizeof(a));
        assert_int_equal(cfg_parse_addr(str_cstr(bad[i]), &a), -EINVAL);
        assert_int_equal(a.len, 0); /* cleared on failure */
        assert_string_equal(a.text, "");
    }
}

static void test_addr_view_length(void **state)
{
    struct cfg_addr a;
    (void)state;
    /* only <len> bytes are read: no NUL is needed after the view */
    char buf[] = { '1', '.', '2', '.', '3', '.', '4', ':', '8', '0', '0' };
    assert_int_equal(cfg_parse_addr(str_make(buf, 10), &a), 0);
    assert_string_equal(a.text, "1.2.3.4:80");
    assert_int_equal(cfg_parse_addr(STR_NULL, &a), -EINVAL);
    /* a host name longer than DNS allows */
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big + sizeof(big) - 3, ":80", 3);
    assert_int_equal(cfg_parse_addr(str_make(big, sizeof(big)), &a), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_ok),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_size_ok),
        cmocka_unit_test(test_size_bad),
        cmocka_unit_test(test_addr_ok),
        cmocka_unit_test(test_addr_bad),
        cmocka_unit_test(test_addr_view_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
