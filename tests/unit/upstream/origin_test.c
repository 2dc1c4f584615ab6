/* The per-worker origin table: one origin per (address, port, settings),
 * references, and LRU eviction that spares held origins and closes the
 * idle connections of the ones it drops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream/origin.h"

static struct sockaddr_in sin4(const char *ip, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static const struct cfg_upstream tpl_a = { .name = "a", .keepalive = 4,
                                           .keepalive_requests = 100,
                                           .keepalive_timeout = 60000 };
static const struct cfg_upstream tpl_b = { .name = "b", .keepalive = 0 };

static void test_keys(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct origins *o = origins_new(l, 8);
    struct sockaddr_in x = sin4("192.0.2.1", 80), y = sin4("192.0.2.1", 81);
    struct ups *u1 = origins_get(o, (struct sockaddr *)&x, &tpl_a);
    struct ups *u2 = origins_get(o, (struct sockaddr *)&x, &tpl_a);
    struct ups *u3 = origins_get(o, (struct sockaddr *)&y, &tpl_a);
    struct ups *u4 = origins_get(o, (struct sockaddr *)&x, &tpl_b);
    assert_ptr_equal(u1, u2);
    assert_ptr_not_equal(u1, u3);
    assert_ptr_not_equal(u1, u4);
    assert_int_equal(origins_count(o), 3);
    assert_string_equal(u1->cu->name, "192.0.2.1:80");
    assert_int_equal(u1->cu->nservers, 1);
    assert_int_equal(u1->cu->keepalive, 4);
    assert_int_equal(u4->cu->keepalive, 0);
    struct ups_key k = { .sticky = -1 };
    int srv = ups_pick(u1, &k, 0);
    assert_int_equal(srv, 0);
    ups_unhold(u1, 0);
    assert_int_equal(ups_pick(u1, &k, 1), UPS_NONE);
    struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    struct ups *u5 = origins_get(o, (struct sockaddr *)&v6, &tpl_a);
    assert_string_equal(u5->cu->name, "[2001:db8::1]:443");
    origins_put(o, u1);
    origins_put(o, u2);
    origins_put(o, u3);
    origins_put(o, u4);
    origins_put(o, u5);
    origins_free(o);
    loop_free(l);
}

/* A listening socket on loopback; returns its fd, port in *port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = sin4("127.0.0.1", 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void nop(struct loop *l, struct ev *e, uint32_t ev)
{
    (void)l;
    (void)e;
    (void)ev;
}

static void test_evict(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct origins *o = origins_new(l, 2);
    int port;
    int lfd = listener(&port);
    struct sockaddr_in a = sin4("127.0.0.1", port);
    struct sockaddr_in b = sin4("192.0.2.2", 80), c = sin4("192.0.2.3", 80);
    /* origin a gets an idle pooled connection */
    struct ups *ua = origins_get(o, (struct sockaddr *)&a, &tpl_a);
    int err = 0;
    struct uconn *uc = ups_connect(ua, 0, nop, &err);
    assert_non_null(uc);
    int srv = accept(lfd, NULL, NULL);
    assert_true(srv >= 0);
    uc->connected = true;
    ups_release(ua, uc);
    origins_put(o, ua);
    /* b is held; c needs room: a (least recently used, not held) goes */
    struct ups *ub = origins_get(o, (struct sockaddr *)&b, &tpl_a);
    struct ups *uc2 = origins_get(o, (struct sockaddr *)&c, &tpl_a);
    assert_int_equal(origins_count(o), 2);
    /* a's idle connection was closed: the server reads EOF */
    struct pollfd p = { srv, POLLIN, 0 };
    assert_int_equal(poll(&p, 1, 2000), 1);
    char ch;
    assert_int_equal(read(srv, &ch, 1), 0);
    /* both held: a new origin grows the table instead of dropping them */
    struct ups *ua2 = origins_get(o, (struct sockaddr *)&a, &tpl_a);
    assert_int_equal(origins_count(o), 3);
    assert_int_equal(ua2->srv[0].nidle, 0);
    origins_put(o, ub);
    origins_put(o, uc2);
    origins_put(o, ua2);
    /* released: the next new one makes room again */
    struct sockaddr_in d = sin4("192.0.2.4", 80);
    origins_put(o, origins_get(o, (struct sockaddr *)&d, &tpl_a));
    assert_int_equal(origins_count(o), 2);
    origins_free(o);
    loop_free(l); /* frees what ups_close handed to the loop */
    close(srv);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_evict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
