/* Address ranges (IPv4, IPv6, IPv4-mapped), port ranges, host patterns and
 * the addresses never connected to. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/macros.h"
#include "security/acl.h"

static struct sockaddr_storage ss;

static const struct sockaddr *addr(const char *text)
{
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return (const struct sockaddr *)&ss;
}

static struct cfg_cidr cidr(const char *net, unsigned bits)
{
    struct cfg_cidr c = { 0 };
    c.bits = (uint8_t)bits;
    c.text = net;
    if (inet_pton(AF_INET, net, c.addr) == 1)
        c.family = AF_INET;
    else {
        assert_int_equal(inet_pton(AF_INET6, net, c.addr), 1);
        c.family = AF_INET6;
    }
    return c;
}

static void test_cidr(void **state)
{
    (void)state;
    struct cfg_cidr l[] = {
        cidr("10.0.0.0", 8),       cidr("172.16.0.0", 12),
        cidr("169.254.0.0", 16),   cidr("fe80::", 10),
        cidr("192.0.2.7", 32),     cidr("2001:db8::", 32),
    };
    size_t n = ARRAY_LEN(l);
    assert_ptr_equal(acl_cidr_find(l, n, addr("10.255.1.2")), &l[0]);
    assert_null(acl_cidr_find(l, n, addr("11.0.0.1")));
    assert_ptr_equal(acl_cidr_find(l, n, addr("172.31.255.255")), &l[1]);
    assert_null(acl_cidr_find(l, n, addr("172.32.0.0")));
    assert_null(acl_cidr_find(l, n, addr("172.15.255.255")));
    assert_ptr_equal(acl_cidr_find(l, n, addr("169.254.169.254")), &l[2]);
    assert_ptr_equal(acl_cidr_find(l, n, addr("febf::1")), &l[3]);
    assert_null(acl_cidr_find(l, n, addr("fec0::1")));
    assert_ptr_equal(acl_cidr_find(l, n, addr("192.0.2.7")), &l[4]);
    assert_null(acl_cidr_find(l, n, addr("192.0.2.8")));
    assert_ptr_equal(acl_cidr_find(l, n, addr("2001:db8:ffff::1")), &l[5]);
    /* an IPv4-mapped IPv6 address is the IPv4 address */
    assert_ptr_equal(acl_cidr_find(l, n, addr("::ffff:169.254.169.254")), &l[2]);
    assert_ptr_equal(acl_cidr_find(l, n, addr("::ffff:10.1.2.3")), &l[0]);
    assert_null(acl_cidr_find(l, n, addr("::ffff:11.1.2.3")));
    /* /0 matches its whole family */
    struct cfg_cidr all4 = cidr("0.0.0.0", 0);
    assert_non_null(acl_cidr_find(&all4, 1, addr("203.0.113.9")));
    assert_null(acl_cidr_find(&all4, 1, addr("::1")));
    assert_null(acl_cidr_find(l, 0, addr("10.0.0.1")));
}

static void test_ports(void **state)
{
    (void)state;
    struct cfg_ports p[] = { { 443, 443 }, { 1025, 65535 } };
    assert_true(acl_port_in(p, 2, 443));
    assert_false(acl_port_in(p, 2, 444));
    assert_false(acl_port_in(p, 2, 25));
    assert_true(acl_port_in(p, 2, 1025));
    assert_true(acl_port_in(p, 2, 65535));
    assert_false(acl_port_in(p, 2, 1024));
    assert_false(acl_port_in(p, 0, 443));
}

static void test_hosts(void **state)
{
    (void)state;
    const char *pats[] = { "example.com", "*.example.org", "[::1]" };
    assert_string_equal(acl_host_find(pats, 3, STR_LIT("example.com")),
                        "example.com");
    assert_null(acl_host_find(pats, 3, STR_LIT("www.example.com")));
    assert_null(acl_host_find(pats, 3, STR_LIT("xexample.com")));
    assert_string_equal(acl_host_find(pats, 3, STR_LIT("a.example.org")),
                        "*.example.org");
    assert_string_equal(acl_host_find(pats, 3, STR_LIT("a.b.example.org")),
                        "*.example.org");
    assert_null(acl_host_find(pats, 3, STR_LIT("example.org")));
    assert_null(acl_host_find(pats, 3, STR_LIT("badexample.org")));
    assert_non_null(acl_host_find(pats, 3, STR_LIT("[::1]")));
    assert_null(acl_host_find(pats, 0, STR_LIT("example.com")));
}

static void test_reserved(void **state)
{
    (void)state;
    assert_true(acl_addr_reserved(addr("0.0.0.0")));
    assert_true(acl_addr_reserved(addr("0.1.2.3")));
    assert_true(acl_addr_reserved(addr("224.0.0.1")));
    assert_true(acl_addr_reserved(addr("255.255.255.255")));
    assert_true(acl_addr_reserved(addr("::")));
    assert_true(acl_addr_reserved(addr("ff02::1")));
    assert_true(acl_addr_reserved(addr("::ffff:0.0.0.0")));
    assert_false(acl_addr_reserved(addr("127.0.0.1")));
    assert_false(acl_addr_reserved(addr("192.0.2.1")));
    assert_false(acl_addr_reserved(addr("::1")));
    assert_false(acl_addr_reserved(addr("2001:db8::1")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_reserved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
