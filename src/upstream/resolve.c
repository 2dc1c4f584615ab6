/*
 * Re-resolving server names (resolve: true) with c-ares, on the health
 * thread.
 *
 * Each name has a fixed run of server slots (max_addresses) in its pool;
 * the answer's addresses fill them, so the pool's arrays never change
 * size while workers read them. When an answer comes, addresses still in
 * it keep their slot (and their connections and counters), addresses gone
 * from it empty theirs, and new ones take empty slots; every change is
 * logged. The next query is due at the answer's smallest TTL, clamped to
 * the pool's resolver min_ttl..max_ttl. A failed query keeps the addresses
 * there were (a resolver hiccup must not empty a pool) and is retried
 * after min_ttl.
 *
 * c-ares runs without its own thread: each tick of the health loop polls
 * the channel's sockets without waiting and lets c-ares process what is
 * ready (and its timeouts). Ticks come every 20 ms while a query is in
 * flight, so an answer waits at most that long, which is nothing against
 * TTLs of seconds.
 *
 * The first answers are awaited (2 s at most) before the workers start, so
 * a pool does not begin with empty slots.
 *
 * This is deliberately small and private to the pools; the forward proxy's
 * per-worker resolver (src/upstream/dns.c, issue 3) is the general one,
 * and the two may merge once both exist.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/macros.h"
#include "upstream/health_int.h"

struct resolver {
    struct ups_health *h;
    struct ups_shared *sh;
    const struct cfg_server *cs; /* the first slot's config */
    unsigned slot0, nslots;
    ares_channel ch;
    bool busy;                   /* a query in flight */
    bool failing;                /* the last query failed (logged once) */
    int64_t due;                 /* ms of the next query */
};

#define FIRST_WAIT_MS 2000

static bool lib_ready;

struct found {
    struct sockaddr_storage ss;
    socklen_t len;
};

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(&x->ss, &y->ss, x->len);
}

static bool same(const struct sockaddr_storage *a, socklen_t al,
                 const struct found *f)
{
    return al == f->len && memcmp(a, &f->ss, al) == 0;
}

static const char *ntop(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", ip, port);
    }
    return buf;
}

/* Collects the answer's addresses (port set, sorted, no duplicates, at
 * most <max>); returns how many and the smallest TTL in *ttl. */
static size_t collect(const struct ares_addrinfo *ai, uint16_t port,
                      struct found *out, size_t max, int *ttl)
{
    size_t n = 0;
    *ttl = -1;
    struct found all[CFG_MAX_SERVERS];
    for (const struct ares_addrinfo_node *nd = ai->nodes; nd != NULL;
         nd = nd->ai_next) {
        if (n == ARRAY_LEN(all))
            break;
        struct found f = { .len = 0 };
        memset(&f.ss, 0, sizeof(f.ss));
        if (nd->ai_family == AF_INET && nd->ai_addrlen >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in *in = (void *)&f.ss;
            memcpy(in, nd->ai_addr, sizeof(*in));
            in->sin_port = htons(port);
            f.len = sizeof(*in);
        } else if (nd->ai_family == AF_INET6 &&
                   nd->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 *in6 = (void *)&f.ss;
            memcpy(in6, nd->ai_addr, sizeof(*in6));
            in6->sin6_port = htons(port);
            in6->sin6_flowinfo = 0;
            f.len = sizeof(*in6);
        } else {
            continue;
        }
        if (*ttl < 0 || nd->ai_ttl < *ttl)
            *ttl = nd->ai_ttl;
        all[n++] = f;
    }
    qsort(all, n, sizeof(all[0]), cmp_found);
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        if (k == 0 || cmp_found(&out[k - 1], &all[i]) != 0)
            out[k++] = all[i];
    return k;
}

/* Fills the name's slots from <f> (n addresses). */
static void apply(struct resolver *r, const struct found *f, size_t n, int ttl)
{
    struct ups_shared *sh = r->sh;
    bool kept[CFG_MAX_SERVERS] = { false };
    bool empty[CFG_MAX_SERVERS] = { false };
    char a[80];
    for (unsigned k = 0; k < r->nslots; k++) {
        unsigned srv = r->slot0 + k;
        struct sockaddr_storage ss;
        uint32_t gen;
        socklen_t len = ups__addr(sh, srv, &ss, &gen);
        bool found = false;
        for (size_t i = 0; i < n && len > 0 && !found; i++) {
            if (!kept[i] && same(&ss, len, &f[i])) {
                kept[i] = true;
                found = true;
            }
        }
        if (found)
            continue;
        empty[k] = true;
        if (len > 0) {
            ups__set_addr(sh, srv, NULL, 0);
            log_info("upstream %s: %s: server %s removed (no longer in the "
                     "answer)", sh->cu->name, r->cs->host, ntop(&ss, a, sizeof(a)));
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (kept[i])
            continue;
        for (unsigned k = 0; k < r->nslots; k++) {
            if (!empty[k])
                continue;
            unsigned srv = r->slot0 + k;
            struct ups_srv_sh *s = &sh->srv[srv];
            empty[k] = false;
            /* a new server: nothing it inherits from the slot's last one */
            atomic_store_explicit(&s->down, false, RLX);
            atomic_store_explicit(&s->eject_until, 0, RLX);
            atomic_store_explicit(&s->fails, 0, RLX);
            atomic_store_explicit(&s->ewma_us, 0.0, RLX);
            if (r->h->dns_started) /* not at start: all begin together */
                atomic_store_explicit(&s->back_at, loop_now(r->h->loop), RLX);
            ups__set_addr(sh, srv, (const struct sockaddr *)&f[i].ss, f[i].len);
            log_info("upstream %s: %s: server %s added (ttl %ds)", sh->cu->name,
                     r->cs->host, ntop(&f[i].ss, a, sizeof(a)), ttl);
            break;
        }
    }
}

static void answered(void *arg, int status, int timeouts,
                     struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct resolver *r = arg;
    const struct cfg_resolve *rc = &r->sh->cu->resolve;
    int64_t now = loop_now(r->h->loop);
    r->busy = false;
    if (status == ARES_EDESTRUCTION)
        return; /* the channel is going away */
    struct found f[CFG_MAX_SERVERS];
    int ttl = -1;
    size_t n = status == ARES_SUCCESS && ai != NULL
                   ? collect(ai, r->cs->port, f, r->nslots, &ttl)
                   : 0;
    if (ai != NULL)
        ares_freeaddrinfo(ai);
    if (n == 0) {
        if (!r->failing)
            log_warn("upstream %s: cannot resolve %s: %s; keeping its "
                     "addresses", r->sh->cu->name, r->cs->host,
                     status == ARES_SUCCESS ? "no address" : ares_strerror(status));
        r->failing = true;
        r->due = now + rc->min_ttl;
        return;
    }
    if (r->failing)
        log_info("upstream %s: %s resolves again", r->sh->cu->name, r->cs->host);
    r->failing = false;
    apply(r, f, n, ttl);
    int64_t ms = (int64_t)MAX(ttl, 0) * 1000;
    r->due = now + MIN(MAX(ms, rc->min_ttl), rc->max_ttl);
}

static void query(struct resolver *r)
{
    struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC,
                                         .ai_socktype = SOCK_STREAM };
    r->busy = true; /* before: the callback may run at once (hosts file) */
    ares_getaddrinfo(r->ch, r->cs->host, NULL, &hints, answered, r);
}

/* Lets c-ares read what arrived and handle its timeouts, without waiting. */
static void process(struct resolver *r)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct pollfd pfd[ARES_GETSOCK_MAXNUM];
    /* bit i: readable, bit i + MAXNUM: writable (ARES_GETSOCK_WRITABLE
     * itself shifts a signed 1 into the sign bit) */
    unsigned bits = (unsigned)ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
    nfds_t n = 0;
    for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = (short)(((bits >> i) & 1u ? POLLIN : 0) |
                           ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u ? POLLOUT : 0));
        if (ev != 0)
            pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
    }
    if (n > 0 && poll(pfd, n, 0) > 0) {
        for (nfds_t i = 0; i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            ares_socket_t rd = pfd[i].revents & (POLLIN | POLLERR | POLLHUP)
                                   ? pfd[i].fd
                                   : ARES_SOCKET_BAD;
            ares_socket_t wr = pfd[i].revents & (POLLOUT | POLLERR | POLLHUP)
                                   ? pfd[i].fd
                                   : ARES_SOCKET_BAD;
            ares_process_fd(r->ch, rd, wr);
        }
    }
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
}

void ups__resolve_tick(struct ups_health *h, int64_t now)
{
    bool busy = false;
    for (size_t i = 0; i < h->nres; i++) {
        struct resolver *r = &h->res[i];
        if (!r->busy && now >= r->due)
            query(r);
        if (r->busy)
            process(r);
        busy |= r->busy;
    }
    h->dns_busy = busy;
}

static int channel(struct resolver *r)
{
    const struct cfg_resolve *rc = &r->sh->cu->resolve;
    struct ares_options o = { .timeout = 1000, .tries = 2 };
    int rv = ares_init_options(&r->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rv != ARES_SUCCESS) {
        log_err("upstream %s: c-ares: %s", r->sh->cu->name, ares_strerror(rv));
        return rv == ARES_ENOMEM ? -ENOMEM : -EINVAL;
    }
    if (rc->nservers == 0)
        return 0;
    char csv[1024];
    size_t off = 0;
    for (size_t i = 0; i < rc->nservers && off < sizeof(csv); i++) {
        int w = snprintf(csv + off, sizeof(csv) - off, "%s%s", i ? "," : "",
                         rc->servers[i].text);
        off += w > 0 ? (size_t)w : 0;
    }
    rv = ares_set_servers_ports_csv(r->ch, csv);
    if (rv != ARES_SUCCESS) {
        log_err("upstream %s: resolver servers %s: %s", r->sh->cu->name, csv,
                ares_strerror(rv));
        ares_destroy(r->ch);
        return -EINVAL;
    }
    return 0;
}

/* Before the workers take requests: the first answers, waiting at most
 * FIRST_WAIT_MS (a name that does not resolve then is retried later). */
static void first_answers(struct ups_health *h)
{
    for (size_t i = 0; i < h->nres; i++)
        query(&h->res[i]);
    for (int round = 0; round < FIRST_WAIT_MS / 10; round++) {
        bool busy = false;
        loop_update_clock(h->loop);
        for (size_t i = 0; i < h->nres; i++) {
            if (h->res[i].busy)
                process(&h->res[i]);
            busy |= h->res[i].busy;
        }
        if (!busy)
            return;
        poll(NULL, 0, 10);
    }
    log_warn("upstream names not resolved after %d ms; their servers wait "
             "for an answer", FIRST_WAIT_MS);
}

int ups__resolve_init(struct ups_health *h, struct ups_state *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n; i++)
        for (size_t s = 0; s < st->ups[i].cu->nservers; s++)
            n += st->ups[i].cu->servers[s].host != NULL &&
                 st->ups[i].cu->servers[s].slot == 0;
    if (n == 0)
        return 0;
    if (!lib_ready) {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
            return -ENOMEM;
        lib_ready = true;
    }
    h->res = calloc(n, sizeof(*h->res));
    if (h->res == NULL)
        return -ENOMEM;
    int64_t now = loop_now(h->loop);
    for (size_t i = 0; i < st->n; i++) {
        struct ups_shared *sh = &st->ups[i];
        for (size_t s = 0; s < sh->cu->nservers; s++) {
            const struct cfg_server *cs = &sh->cu->servers[s];
            if (cs->host == NULL || cs->slot != 0)
                continue;
            struct resolver *r = &h->res[h->nres];
            *r = (struct resolver){ .h = h, .sh = sh, .cs = cs,
                                    .slot0 = cs->slot0, .nslots = cs->nslots };
            r->due = now;
            int rc = channel(r);
            if (rc < 0)
                return rc;
            h->nres++;
        }
    }
    first_answers(h);
    h->dns_started = true; /* later answers are news */
    return 0;
}

void ups__resolve_fini(struct ups_health *h)
{
    for (size_t i = 0; i < h->nres; i++)
        ares_destroy(h->res[i].ch);
    FREE_NULL(h->res);
    h->nres = 0;
}
