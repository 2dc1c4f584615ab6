/*
 * The cost of choosing a server, per balancer, without the network: what
 * each request pays in src/upstream/ for its pick, its report and its
 * release, over three servers. The "pools" scenario runs it next to the
 * proxies, because a difference of tens of nanoseconds is far below what
 * a loaded 2-core machine lets wrk resolve in µs/req.
 *
 *   cc -std=c17 -D_GNU_SOURCE -O2 -Isrc bench/lib/pick_cost.c \
 *      build/release/libgatehouse.a $(pkg-config --libs yaml-0.1 libcares) -lm -pthread
 *   ./pick_cost [iterations]
 *
 * Prints one line per balancer: "<name> <ns per request>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/h1.h"
#include "upstream/ups.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double measure(const char *balance, long iters)
{
    char yaml[1024], err[256];
    snprintf(yaml, sizeof(yaml),
             "upstreams:\n  was: { balance: %s, servers: [127.0.0.1:1, "
             "127.0.0.1:2, 127.0.0.1:3] }\n"
             "listeners:\n  - listen: 127.0.0.1:8080\n"
             "    sites: [{ routes: [{ path: /, upstream: was }] }]\n",
             balance);
    struct cfg *cfg = cfg_load_string(yaml, strlen(yaml), "pick", err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    struct ups_state *st = ups_state_new(cfg, NULL);
    struct loop *l = loop_new();
    struct ups_set *set = ups_set_new(cfg, st, l);
    if (st == NULL || l == NULL || set == NULL)
        exit(1);
    struct ups *u = &set->ups[0];
    struct h1_field f[1];
    struct h1_msg m;
    h1_msg_init(&m, f, 1);
    struct ups_req r = { NULL, STR_LIT("/1k"), &m };
    struct ups_key k;
    /* as a request does: prepare, pick (holds a slot), report at the
     * response head, release at the end; two in flight at a time so the
     * counters are not all zero */
    int prev = ups_pick(u, &(struct ups_key){ .sticky = -1 }, 0);
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        ups_prepare(u, &r, &k);
        int s = ups_pick(u, &k, 0);
        ups_report(u, (unsigned)prev, UPS_OK, 200 + (i & 63));
        ups_unhold(u, (unsigned)prev);
        prev = s;
        if ((i & 1023) == 0)
            loop_update_clock(l); /* the loop reads its clock per iteration */
    }
    double ns = (now_ns() - t0) / (double)iters;
    ups_unhold(u, (unsigned)prev);
    ups_set_free(set);
    ups_state_free(st);
    loop_free(l);
    cfg_unref(cfg);
    return ns;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 5000000;
    static const char *const b[] = { "round_robin", "least_conn", "random_two",
                                     "ewma", "hash" };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        measure(b[i], iters / 10); /* warm-up */
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        printf("%s %.1f\n", b[i], measure(b[i], iters));
    return 0;
}
