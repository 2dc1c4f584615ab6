/* Shared state on a real redis-server (started here on a free loopback
 * port): GCRA and window counters agree across two clients (two nodes),
 * pub/sub reaches the other client, key/value; and with Redis stopped,
 * stalled or absent, calls fail at once or within the timeout, the
 * counters say so, and the client comes back by itself. Issue 9. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/crl.h"
#include "cluster/shared.h"
#include "core/log.h"
#include "core/macros.h"

static pid_t redis_pid = -1;
static int redis_port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
        getsockname(fd, (struct sockaddr *)&a, &len) == -1)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Starts redis-server on <port> (with a password unless NULL). */
static pid_t spawn_redis(int port_n, const char *password)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", port_n);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "/tmp",
               "--loglevel", "warning", "--requirepass",
               password != NULL ? password : "", (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    for (int i = 0; i < 250 && !port_open(port_n); i++)
        sleep_ms(20);
    assert_true(port_open(port_n));
    return pid;
}

static void kill_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void redis_start(void)
{
    redis_pid = spawn_redis(redis_port, NULL);
}

static void redis_stop(void)
{
    if (redis_pid <= 0)
        return;
    kill_redis(redis_pid);
    redis_pid = -1;
}

/* ---- driving the loop ---- */

static struct timer guard;

static void guard_fire(struct loop *l, struct timer *t)
{
    (void)t;
    loop_stop(l);
}

/* Runs <l> until something calls loop_stop() or <ms> pass. Returns the
 * ms it ran. */
static int64_t run_for(struct loop *l, int64_t ms)
{
    loop_update_clock(l);
    int64_t t0 = loop_now(l);
    timer_set(l, &guard, ms, guard_fire);
    assert_int_equal(loop_run(l), 0);
    timer_cancel(l, &guard);
    loop_update_clock(l);
    return loop_now(l) - t0;
}

struct waiter {
    struct shared_req q;
    struct loop *l;
    bool done;
    struct shared_res res;
    char str[64];
};

static void waiter_done(struct shared_req *q, const struct shared_res *r)
{
    struct waiter *w = container_of(q, struct waiter, q);
    w->done = true;
    w->res = *r;
    if (r->str != NULL)
        snprintf(w->str, sizeof(w->str), "%.*s", (int)r->len, r->str);
    w->res.str = r->str != NULL ? w->str : NULL;
    loop_stop(w->l);
}

static void waiter_init(struct waiter *w, struct loop *l)
{
    memset(w, 0, sizeof(*w));
    w->q.cb = waiter_done;
    w->l = l;
}

static struct cfg_redis redis_cfg(const char *prefix)
{
    struct cfg_redis c = { .enabled = true, .prefix = prefix, .timeout = 300,
                           .reconnect_max = 400 };
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%d", redis_port);
    assert_int_equal(cfg_parse_addr(str_cstr(text), &c.addr), 0);
    return c;
}

/* Waits (bounded) until <s> is connected. */
static void wait_up(struct loop *l, struct shared *s, int64_t ms)
{
    for (int64_t t = 0; t < ms && !shared_up(s); t += 20)
        run_for(l, 20);
    assert_true(shared_up(s));
}

static char prefix_buf[32];

static const char *fresh_prefix(void)
{
    snprintf(prefix_buf, sizeof(prefix_buf), "t%ld%d:", (long)getpid(), rand() % 100000);
    return prefix_buf;
}

/* ---- tests ---- */

static int setup(void **state)
{
    (void)state;
    log_set_level(GH_LOG_ERR);
    srand((unsigned)time(NULL));
    redis_port = free_port();
    redis_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    redis_stop();
    return 0;
}

/* The same client counted once across two nodes: burst 3, then refused,
 * whichever node asks. */
static void test_gcra_across_nodes(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c), *b = shared_new(l, &c);
    wait_up(l, a, 2000);
    wait_up(l, b, 2000);
    struct waiter w;
    int allowed = 0;
    for (int i = 0; i < 6; i++) {
        waiter_init(&w, l);
        assert_int_equal(shared_gcra(i % 2 ? b : a, &w.q, STR_LIT("rl:1.2.3.4"),
                                     10 * 1000 * 1000, 3), 0);
        run_for(l, 2000);
        assert_true(w.done);
        assert_int_equal(w.res.err, 0);
        if (w.res.n == 0) {
            allowed++;
            /* the third fills the burst: the next must wait ~10 s */
            if (allowed < 3)
                assert_int_equal(w.res.n2, 0);
            else
                assert_true(w.res.n2 > 9 * 1000 * 1000);
        } else {
            assert_true(w.res.n > 0 && w.res.n <= 10 * 1000 * 1000);
            assert_int_equal(w.res.n2, w.res.n);
        }
    }
    assert_int_equal(allowed, 3);
    shared_free(a);
    shared_free(b);
    loop_free(l);
}

static void test_window_counter(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c), *b = shared_new(l, &c);
    wait_up(l, a, 2000);
    wait_up(l, b, 2000);
    struct waiter w;
    for (int i = 1; i <= 4; i++) {
        waiter_init(&w, l);
        assert_int_equal(shared_incr(i % 2 ? a : b, &w.q, STR_LIT("win"), 2, 60000), 0);
        run_for(l, 2000);
        assert_true(w.done);
        assert_int_equal(w.res.err, 0);
        assert_int_equal(w.res.n, 2 * i);
        assert_true(w.res.n2 > 0 && w.res.n2 <= 60000);
    }
    shared_free(a);
    shared_free(b);
    loop_free(l);
}

static void test_kv(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c), *b = shared_new(l, &c);
    wait_up(l, a, 2000);
    wait_up(l, b, 2000);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_get(b, &w.q, STR_LIT("sticky:abc")), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_int_equal(w.res.err, 0);
    assert_null(w.res.str);
    assert_int_equal(shared_set(a, STR_LIT("sticky:abc"), STR_LIT("10.77.3.2:8080"), 60000), 0);
    /* SET has no reply to wait for; a GET behind it on the same connection
     * answers only once Redis has applied it. Without this, b's GET may reach
     * Redis first (two connections are not ordered). */
    waiter_init(&w, l);
    assert_int_equal(shared_get(a, &w.q, STR_LIT("sticky:abc")), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_string_equal(w.str, "10.77.3.2:8080");
    waiter_init(&w, l);
    assert_int_equal(shared_get(b, &w.q, STR_LIT("sticky:abc")), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_string_equal(w.str, "10.77.3.2:8080");
    /* a key too long is refused at once */
    char big[300];
    memset(big, 'k', sizeof(big));
    assert_int_equal(shared_get(b, &w.q, str_make(big, sizeof(big))), -ENAMETOOLONG);
    shared_free(a);
    shared_free(b);
    loop_free(l);
}

/* A cancelled call's callback never runs. */
static void test_cancel(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c);
    wait_up(l, a, 2000);
    struct waiter w, w2;
    waiter_init(&w, l);
    waiter_init(&w2, l);
    assert_int_equal(shared_get(a, &w.q, STR_LIT("x")), 0);
    assert_int_equal(shared_get(a, &w2.q, STR_LIT("y")), 0);
    shared_cancel(&w.q);
    run_for(l, 2000);
    assert_true(w2.done);
    assert_false(w.done);
    shared_free(a);
    loop_free(l);
}

struct inbox {
    struct loop *l;
    int n, gaps;
    char last[64], chan[32];
};

static void on_msg(void *arg, struct str ch, struct str msg)
{
    struct inbox *ib = arg;
    if (ch.p == NULL) {
        ib->gaps++;
        return;
    }
    ib->n++;
    snprintf(ib->chan, sizeof(ib->chan), "%.*s", STR_FMT(ch));
    snprintf(ib->last, sizeof(ib->last), "%.*s", STR_FMT(msg));
    loop_stop(ib->l);
}

/* Publishes <msg> from <pub> until <ib> got one more message (a SUBSCRIBE
 * may still be on its way). Returns the ms it took. */
static int64_t publish_until(struct loop *l, struct shared *pub, struct inbox *ib,
                             const char *msg, int64_t ms)
{
    int before = ib->n;
    int64_t t = 0;
    while (ib->n == before && t < ms) {
        (void)shared_publish(pub, STR_LIT("purge"), str_cstr(msg));
        t += run_for(l, 50);
    }
    return t;
}

static void test_pubsub_and_restart(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c), *b = shared_new(l, &c);
    struct inbox ib = { .l = l };
    assert_int_equal(shared_subscribe(a, STR_LIT("purge"), on_msg, &ib), 0);
    assert_int_equal(shared_subscribe(a, STR_LIT("purge"), on_msg, &ib), -EEXIST);
    wait_up(l, a, 2000);
    wait_up(l, b, 2000);
    publish_until(l, b, &ib, "/img/logo.png", 2000);
    assert_true(ib.n >= 1);
    assert_string_equal(ib.chan, "purge");
    assert_string_equal(ib.last, "/img/logo.png");
    assert_int_equal(ib.gaps, 0);

    /* Redis dies: a call in flight fails, later calls fail at once and
     * are counted as fallbacks. */
    struct shared_stats s0, s1;
    shared_stats(&s0);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_get(b, &w.q, STR_LIT("k")), 0);
    redis_stop();
    run_for(l, 1000);
    assert_true(w.done);
    /* the reply may have beaten the kill; otherwise it failed */
    if (w.res.err != 0)
        assert_true(w.res.err == -ENOTCONN || w.res.err == -ETIMEDOUT);
    for (int i = 0; i < 50 && shared_up(b); i++)
        run_for(l, 20);
    assert_false(shared_up(b));
    waiter_init(&w, l);
    loop_update_clock(l);
    assert_int_equal(shared_gcra(b, &w.q, STR_LIT("rl"), 1000, 1), -ENOTCONN);
    assert_int_equal(shared_publish(b, STR_LIT("purge"), STR_LIT("x")), -ENOTCONN);
    assert_false(w.done);
    shared_stats(&s1);
    assert_true(s1.fallbacks >= s0.fallbacks + 2);
    assert_true(s1.lost > s0.lost);

    /* Back: both clients reconnect by themselves (backoff capped at
     * 400ms here), the subscriber resubscribes and reports the gap. */
    redis_start();
    wait_up(l, a, 3000);
    wait_up(l, b, 3000);
    publish_until(l, b, &ib, "/after", 3000);
    assert_string_equal(ib.last, "/after");
    assert_int_equal(ib.gaps, 1);
    shared_stats(&s1);
    assert_true(s1.connects >= s0.connects + 2);
    char prom[2048];
    assert_true(shared_stats_prometheus(prom, sizeof(prom)) > 0);
    char want[64];
    snprintf(want, sizeof(want), "\ngatehouse_redis_fallbacks_total %llu\n",
             (unsigned long long)s1.fallbacks);
    assert_non_null(strstr(prom, want));
    assert_non_null(strstr(prom, "# TYPE gatehouse_redis_up gauge\n"));
    assert_int_equal(shared_stats_prometheus(prom, 16), 0);
    shared_free(a);
    shared_free(b);
    loop_free(l);
}

/* A Redis that accepts but never answers (SIGSTOP): the call completes
 * with -ETIMEDOUT after about the timeout, not later, and the client
 * recovers when Redis does; so does its subscriber, which reports the gap
 * (it could not have noticed the stall by itself). */
static void test_stalled_redis_times_out(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c);
    struct inbox box = { .l = l }, *ib = &box;
    assert_int_equal(shared_subscribe(a, STR_LIT("purge"), on_msg, ib), 0);
    wait_up(l, a, 2000);
    publish_until(l, a, ib, "/before", 2000);
    kill(redis_pid, SIGSTOP);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_gcra(a, &w.q, STR_LIT("rl"), 1000, 5), 0);
    int64_t took = run_for(l, 3000);
    kill(redis_pid, SIGCONT);
    assert_true(w.done);
    assert_int_equal(w.res.err, -ETIMEDOUT);
    assert_true(took >= 250 && took < 1500);
    wait_up(l, a, 3000);
    waiter_init(&w, l);
    assert_int_equal(shared_gcra(a, &w.q, STR_LIT("rl"), 1000, 5), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_int_equal(w.res.err, 0);
    publish_until(l, a, ib, "/after", 3000);
    assert_int_equal(ib->gaps, 1);
    assert_string_equal(ib->last, "/after");
    shared_free(a);
    loop_free(l);
}

/* A stopped Redis still completes TCP handshakes (the kernel does): after
 * the first timeout the client reconnects, but is not up until Redis
 * answers, so later calls fail at once instead of each waiting out the
 * timeout. */
static void test_stalled_redis_stays_down(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c);
    wait_up(l, a, 2000);
    kill(redis_pid, SIGSTOP);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_gcra(a, &w.q, STR_LIT("rl"), 1000, 5), 0);
    run_for(l, 3000);
    assert_true(w.done);
    assert_int_equal(w.res.err, -ETIMEDOUT);
    /* reconnects go on in the background (backoff from 100 ms) */
    int fast = 0, up = 0;
    for (int i = 0; i < 10; i++) {
        run_for(l, 150);
        up += shared_up(a);
        waiter_init(&w, l);
        int rc = shared_gcra(a, &w.q, STR_LIT("rl"), 1000, 5);
        if (rc == 0)
            run_for(l, 1000);
        if (rc != 0 || (w.done && w.res.err != -ETIMEDOUT))
            fast++;
    }
    kill(redis_pid, SIGCONT); /* before judging: the next tests need it */
    assert_int_equal(up, 0);
    assert_int_equal(fast, 10);
    wait_up(l, a, 3000);
    shared_free(a);
    loop_free(l);
}

/* Nothing listens: the client never blocks, never says up, and a call
 * fails at once. */
static void test_no_redis(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg("x:");
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%d", free_port());
    assert_int_equal(cfg_parse_addr(str_cstr(text), &c.addr), 0);
    struct shared *a = shared_new(l, &c);
    run_for(l, 300);
    assert_false(shared_up(a));
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_incr(a, &w.q, STR_LIT("n"), 1, 1000), -ENOTCONN);
    shared_free(a);
    loop_free(l);
}

/* A password: the right one works; a wrong one never makes the client
 * usable (calls fail at once), and says so. */
static void test_password(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = spawn_redis(port, "s3cret");
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg("pw:");
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%d", port);
    assert_int_equal(cfg_parse_addr(str_cstr(text), &c.addr), 0);
    c.password = "s3cret";
    struct shared *good = shared_new(l, &c);
    c.password = "wrong";
    struct shared *bad = shared_new(l, &c);
    wait_up(l, good, 2000);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_incr(good, &w.q, STR_LIT("n"), 1, 1000), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_int_equal(w.res.err, 0);
    assert_int_equal(w.res.n, 1);
    run_for(l, 300);
    assert_false(shared_up(bad));
    assert_int_equal(shared_incr(bad, &w.q, STR_LIT("n"), 1, 1000), -ENOTCONN);
    shared_free(good);
    shared_free(bad);
    loop_free(l);
    kill_redis(pid);
}

static int ncompleted, nfailed;

static void count_done(struct shared_req *q, const struct shared_res *r)
{
    (void)q;
    ncompleted++;
    if (r->err != 0)
        nfailed++;
}

/* A stalled Redis cannot make a node queue without bound: past 4096
 * pending calls, calls are refused at once (-ENOBUFS); every pending one
 * completes (timed out). An error reply completes its call with -EPROTO. */
static void test_pending_cap_and_error_reply(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *a = shared_new(l, &c);
    wait_up(l, a, 2000);
    /* a string value makes INCRBY fail inside the script */
    assert_int_equal(shared_set(a, STR_LIT("str"), STR_LIT("abc"), 60000), 0);
    struct waiter w;
    waiter_init(&w, l);
    assert_int_equal(shared_incr(a, &w.q, STR_LIT("str"), 1, 1000), 0);
    run_for(l, 2000);
    assert_true(w.done);
    assert_int_equal(w.res.err, -EPROTO);

    kill(redis_pid, SIGSTOP);
    enum { N = 4200 };
    static struct shared_req qs[N];
    int queued = 0, refused = 0;
    ncompleted = nfailed = 0;
    for (int i = 0; i < N; i++) {
        qs[i] = (struct shared_req){ .cb = count_done };
        int rc = shared_get(a, &qs[i], STR_LIT("k"));
        if (rc == 0)
            queued++;
        else if (rc == -ENOBUFS)
            refused++;
    }
    assert_int_equal(queued, 4096);
    assert_int_equal(refused, N - 4096);
    for (int i = 0; i < 50 && ncompleted < queued; i++)
        run_for(l, 100);
    kill(redis_pid, SIGCONT);
    assert_int_equal(ncompleted, queued);
    assert_int_equal(nfailed, queued);
    wait_up(l, a, 3000);
    shared_free(a);
    loop_free(l);
}

/* A client sending 100 requests/s alternately to two nodes, under a rule
 * of 10/s with a burst of 5, is held to the cluster-wide rate: about
 * 5 + 10/s over 2 s pass, not twice that. Each node asks Redis and waits
 * for the verdict, and remembers refusals (crl) so that it does not ask
 * again for every request of a client it knows is over. */
static void test_cluster_wide_rate(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct cfg_redis c = redis_cfg(fresh_prefix());
    struct shared *node[2] = { shared_new(l, &c), shared_new(l, &c) };
    struct crl *seen[2] = { crl_new(0), crl_new(0) };
    wait_up(l, node[0], 2000);
    wait_up(l, node[1], 2000);
    int allowed = 0, asked = 0;
    loop_update_clock(l);
    int64_t t0 = loop_now(l);
    struct waiter w;
    for (int i = 0; loop_now(l) - t0 < 2000; i++) {
        int k = i % 2;
        int64_t now = loop_now_us(l);
        if (crl_blocked(seen[k], STR_LIT("rl:10.77.1.10"), now) == 0) {
            waiter_init(&w, l);
            assert_int_equal(shared_gcra(node[k], &w.q, STR_LIT("rl:10.77.1.10"),
                                         100 * 1000, 5), 0);
            asked++;
            run_for(l, 1000);
            assert_true(w.done);
            assert_int_equal(w.res.err, 0);
            loop_update_clock(l);
            crl_learn(seen[k], STR_LIT("rl:10.77.1.10"), loop_now_us(l), w.res.n2);
            allowed += w.res.n == 0;
        }
        run_for(l, 10);
    }
    print_message("cluster-wide rate: %d passed of ~%d, Redis asked %d times\n",
                  allowed, (int)((loop_now(l) - t0) / 10), asked);
    assert_in_range(allowed, 23, 27);
    assert_true(asked < 60); /* refusals were not asked about */
    crl_free(seen[0]);
    crl_free(seen[1]);
    shared_free(node[0]);
    shared_free(node[1]);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_across_nodes),
        cmocka_unit_test(test_window_counter),
        cmocka_unit_test(test_cluster_wide_rate),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_pubsub_and_restart),
        cmocka_unit_test(test_stalled_redis_times_out),
        cmocka_unit_test(test_stalled_redis_stays_down),
        cmocka_unit_test(test_no_redis),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_pending_cap_and_error_reply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
