/* Reverse routing: host normalisation, site choice, path normalisation and
 * route choice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

static void test_host(void **state)
{
    (void)state;
    struct pool *p = pool_new(0);
    struct str h = route_host(p, STR_LIT("Example.COM:8080"));
    assert_int_equal(h.len, 11);
    assert_memory_equal(h.p, "example.com", 11);
    h = route_host(p, STR_LIT("example.com."));
    assert_memory_equal(h.p, "example.com", h.len);
    h = route_host(p, STR_LIT("[::1]:80"));
    assert_int_equal(h.len, 5);
    assert_memory_equal(h.p, "[::1]", 5);
    h = route_host(p, STR_LIT(""));
    assert_int_equal(h.len, 0);
    pool_free(p);
}

static const char *hosts_a[] = { "example.com" };
static const char *hosts_w[] = { "*.example.com" };
static const char *hosts_ww[] = { "*.deep.example.com" };

static void test_site(void **state)
{
    (void)state;
    struct cfg_site sites[4] = {
        { .hosts = hosts_w, .nhosts = 1 },
        { .hosts = hosts_a, .nhosts = 1 },
        { .hosts = hosts_ww, .nhosts = 1 },
        { .is_default = true },
    };
    struct cfg_listener cl = { .sites = sites, .nsites = 4 };
    assert_ptr_equal(route_site(&cl, STR_LIT("example.com")), &sites[1]);
    assert_ptr_equal(route_site(&cl, STR_LIT("a.example.com")), &sites[0]);
    assert_ptr_equal(route_site(&cl, STR_LIT("x.deep.example.com")), &sites[2]);
    assert_ptr_equal(route_site(&cl, STR_LIT("other.org")), &sites[3]);
    assert_ptr_equal(route_site(&cl, STR_LIT("xexample.com")), &sites[3]);
    cl.nsites = 3; /* no default */
    assert_null(route_site(&cl, STR_LIT("other.org")));
}

#define ROUTE(p, ex) { .path = (p), .path_len = sizeof(p) - 1, .exact = (ex) }

static void test_route(void **state)
{
    (void)state;
    struct cfg_route routes[] = {
        ROUTE("/", false),      ROUTE("/api/", false), ROUTE("/api/v2/", false),
        ROUTE("/health", true), ROUTE("/admin/", false),
    };
    struct cfg_site s = { .routes = routes, .nroutes = ARRAY_LEN(routes) };
    struct pool *p = pool_new(0);
    assert_ptr_equal(route_match(&s, STR_LIT("/x"), p), &routes[0]);
    assert_ptr_equal(route_match(&s, STR_LIT("/api/x?q=1"), p), &routes[1]);
    assert_ptr_equal(route_match(&s, STR_LIT("/api/v2/x"), p), &routes[2]);
    assert_ptr_equal(route_match(&s, STR_LIT("/health"), p), &routes[3]);
    assert_ptr_equal(route_match(&s, STR_LIT("/health?x"), p), &routes[3]);
    assert_ptr_equal(route_match(&s, STR_LIT("/healthz"), p), &routes[0]);
    /* dot segments are resolved before matching */
    assert_ptr_equal(route_match(&s, STR_LIT("/api/../admin/x"), p), &routes[4]);
    assert_ptr_equal(route_match(&s, STR_LIT("/api/%2e%2e/admin/x"), p), &routes[4]);
    assert_ptr_equal(route_match(&s, STR_LIT("/api/%2E%2E/admin/"), p), &routes[4]);
    assert_ptr_equal(route_match(&s, STR_LIT("/x/./api/./v2/y"), p), &routes[0]);
    assert_ptr_equal(route_match(&s, STR_LIT("/./api/./v2/y"), p), &routes[2]);
    assert_ptr_equal(route_match(&s, STR_LIT("/admin/../../../api/"), p), &routes[1]);
    assert_ptr_equal(route_match(&s, STR_LIT("/api/v2/.."), p), &routes[1]);
    struct cfg_site none = { .routes = routes + 1, .nroutes = 1 };
    assert_null(route_match(&none, STR_LIT("/other"), p));
    pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_site),
        cmocka_unit_test(test_route),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pool_thread_cleanup();
    return rc;
}
