/*
 * c-ares on the worker's loop, with a cache.
 *
 * getaddrinfo() blocks, and a worker that blocks stalls every connection
 * it owns, so names are resolved with c-ares: its sockets are watched by
 * the loop (level-triggered: c-ares reads one datagram per call, it does
 * not drain until EAGAIN), its retry deadlines by one loop timer.
 *
 * /etc/hosts is read once, when the resolver is made (before the worker
 * enters its sandbox, where it could not open the file), into a sorted
 * table that answers before the cache; c-ares itself only asks DNS.
 *
 * Three layers keep lookups rare and callers simple:
 *   - the cache: a name's answer is kept for its TTL, clamped to
 *     min_ttl..max_ttl (answers from /etc/hosts carry no TTL and get
 *     min_ttl); a failure for negative_ttl. LRU beyond cache_size names.
 *   - lookups in flight are shared: a burst of requests for one new name
 *     sends one query, and every waiter gets its answer.
 *   - delivery is always deferred to the end of the loop iteration (even
 *     for cache hits through dns_resolve, and for c-ares answering from
 *     /etc/hosts inside ares_getaddrinfo), so a callback never runs inside
 *     the caller's own call. A waiter that goes away cancels; c-ares has no
 *     per-query cancel, so the lookup goes on and only fills the cache.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/log.h"
#include "core/macros.h"
#include "upstream/dns.h"

#define PENDING_BUCKETS 64
#define MAX_NAME 253
#define HOSTS_MAX_BYTES (64 * 1024 * 1024)

/* One name -> address line of /etc/hosts (names point into <hosts_text>). */
struct hent {
    const char *name;
    size_t order;         /* line order, to keep the file's order */
    union dns_addr addr;  /* port 0 */
};

struct centry {
    struct centry *hnext;      /* hash chain */
    struct centry *prev, *next; /* LRU, most recent first */
    uint32_t hash;
    int64_t expires;           /* loop ms */
    struct dns_result res;     /* ports 0 */
    char name[];
};

struct lookup {
    struct lookup *hnext;      /* pending chain, then the done list */
    struct dns *d;
    uint32_t hash;
    struct dns_query *waiters;
    struct dns_result res;
    char name[];
};

struct dns_query {
    struct dns_query *prev, *next;
    struct dns *d;
    struct lookup *lk;         /* NULL while on d->ready */
    dns_done_fn *cb;
    void *arg;
    int port;
    struct dns_result res;     /* answered from the cache */
};

struct dns_sock {
    struct ev ev;
    struct dns *d;
    struct dns_sock *next;
    bool added;
};

struct dns {
    struct loop *loop;
    ares_channel ch;
    struct timer tm;
    struct defer defer;
    struct dns_sock *socks;
    struct cfg_dns cfg;
    struct lookup *pending[PENDING_BUCKETS];
    struct lookup *done;       /* answered, waiters not yet called */
    struct dns_query *ready;   /* cache hits not yet delivered */
    struct centry **tab;       /* cache hash table, <mask> + 1 buckets */
    uint32_t mask;
    struct centry *lru_head, *lru_tail;
    unsigned nentries;
    bool closing;
    struct dns_stats stats;
    struct hent *hosts;    /* sorted by name, then file order */
    size_t nhosts;
    char *hosts_text;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Lower case, without a trailing dot. Returns the length or -1. */
static int norm(const char *name, char *out)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > MAX_NAME)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = ascii_lower(name[i]);
    out[n] = '\0';
    return (int)n;
}

static void set_port(struct dns_result *r, int port)
{
    for (unsigned i = 0; i < r->n; i++) {
        if (r->addr[i].sa.sa_family == AF_INET)
            r->addr[i].in.sin_port = htons((uint16_t)port);
        else
            r->addr[i].in6.sin6_port = htons((uint16_t)port);
    }
}

static void fail_result(struct dns_result *r, int err, const char *rcode)
{
    memset(r, 0, sizeof(*r));
    r->err = err;
    r->rcode = rcode;
}

/* ---- the cache ---- */

static void lru_unlink(struct dns *d, struct centry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        d->lru_head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        d->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct dns *d, struct centry *e)
{
    e->next = d->lru_head;
    e->prev = NULL;
    if (d->lru_head != NULL)
        d->lru_head->prev = e;
    d->lru_head = e;
    if (d->lru_tail == NULL)
        d->lru_tail = e;
}

static void centry_free(struct dns *d, struct centry *e)
{
    struct centry **pp = &d->tab[e->hash & d->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(d, e);
    d->nentries--;
    free(e);
}

static struct centry *cache_find(struct dns *d, const char *name, uint32_t h)
{
    if (d->tab == NULL)
        return NULL;
    for (struct centry *e = d->tab[h & d->mask]; e != NULL; e = e->hnext) {
        if (e->hash != h || strcmp(e->name, name) != 0)
            continue;
        if (e->expires <= loop_now(d->loop)) {
            centry_free(d, e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

static void cache_put(struct dns *d, const char *name, uint32_t h,
                      const struct dns_result *r, int64_t ttl_ms)
{
    if (d->tab == NULL || d->cfg.cache_size == 0 || ttl_ms <= 0)
        return;
    struct centry *old = cache_find(d, name, h);
    if (old != NULL)
        centry_free(d, old);
    if (d->nentries >= d->cfg.cache_size)
        centry_free(d, d->lru_tail);
    size_t len = strlen(name);
    struct centry *e = malloc(sizeof(*e) + len + 1);
    if (e == NULL)
        return; /* a cache that cannot grow is still correct */
    memcpy(e->name, name, len + 1);
    e->hash = h;
    e->res = *r;
    e->expires = loop_now(d->loop) + ttl_ms;
    e->hnext = d->tab[h & d->mask];
    d->tab[h & d->mask] = e;
    lru_front(d, e);
    d->nentries++;
}

/* ---- answers ---- */

static const char *rcode_of(int status, int *err)
{
    *err = -EIO;
    switch (status) {
    case ARES_ENOTFOUND:
        *err = -ENOENT;
        return "NXDOMAIN";
    case ARES_ENODATA:
        *err = -ENOENT;
        return "NODATA";
    case ARES_ETIMEOUT:
        *err = -ETIMEDOUT;
        return "TIMEOUT";
    case ARES_ESERVFAIL:
        return "SERVFAIL";
    case ARES_EREFUSED:
        return "REFUSED";
    case ARES_ENOMEM:
        *err = -ENOMEM;
        return "NOMEM";
    case ARES_ECONNREFUSED:
        return "CONNREFUSED";
    default:
        return "ERROR";
    }
}

/* Fills <r> from c-ares' answer, IPv4 first; returns the smallest TTL
 * in seconds. */
static int fill(struct dns_result *r, const struct ares_addrinfo *ai)
{
    int ttl = -1;
    memset(r, 0, sizeof(*r));
    for (const struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next)
        if (ttl < 0 || c->ttl < ttl)
            ttl = c->ttl;
    for (int pass = 0; pass < 2; pass++) {
        int fam = pass == 0 ? AF_INET : AF_INET6;
        for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
            if (n->ai_family != fam || r->n == DNS_MAX_ADDRS)
                continue;
            size_t len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                        : sizeof(struct sockaddr_in6);
            if (n->ai_addrlen < len)
                continue;
            memcpy(&r->addr[r->n++], n->ai_addr, len);
            if (ttl < 0 || n->ai_ttl < ttl)
                ttl = n->ai_ttl;
        }
    }
    if (r->n == 0) {
        r->err = -ENOENT;
        r->rcode = "NODATA";
    }
    return ttl < 0 ? 0 : ttl;
}

static void deliver(struct loop *l, struct defer *df);

static void unlink_pending(struct dns *d, struct lookup *lk)
{
    struct lookup **pp = &d->pending[lk->hash % PENDING_BUCKETS];
    while (*pp != NULL && *pp != lk)
        pp = &(*pp)->hnext;
    if (*pp == lk)
        *pp = lk->hnext;
    lk->hnext = NULL;
}

static void free_waiters(struct lookup *lk)
{
    while (lk->waiters != NULL) {
        struct dns_query *q = lk->waiters;
        lk->waiters = q->next;
        free(q);
    }
}

static void on_answer(void *arg, int status, int timeouts,
                      struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct lookup *lk = arg;
    struct dns *d = lk->d;
    unlink_pending(d, lk);
    if (d->closing || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        free_waiters(lk);
        free(lk);
        if (ai != NULL)
            ares_freeaddrinfo(ai);
        return;
    }
    int64_t keep;
    if (status == ARES_SUCCESS && ai != NULL) {
        int64_t ttl = (int64_t)fill(&lk->res, ai) * 1000;
        keep = lk->res.err == 0 ? MIN(MAX(ttl, d->cfg.min_ttl), d->cfg.max_ttl)
                                : d->cfg.negative_ttl;
    } else {
        int err;
        const char *rc = rcode_of(status, &err);
        fail_result(&lk->res, err, rc);
        keep = err == -ENOMEM ? 0 : d->cfg.negative_ttl;
    }
    if (ai != NULL)
        ares_freeaddrinfo(ai);
    cache_put(d, lk->name, lk->hash, &lk->res, keep);
    if (lk->waiters == NULL) {
        free(lk);
        return;
    }
    lk->hnext = d->done;
    d->done = lk;
    loop_defer(d->loop, &d->defer, deliver);
}

static void call(struct dns_query *q, struct dns_result *r)
{
    dns_done_fn *cb = q->cb;
    void *arg = q->arg;
    set_port(r, q->port);
    free(q);
    cb(arg, r);
}

static void deliver(struct loop *l, struct defer *df)
{
    (void)l;
    struct dns *d = container_of(df, struct dns, defer);
    struct dns_result r;
    while (d->ready != NULL) {
        struct dns_query *q = d->ready;
        d->ready = q->next;
        if (d->ready != NULL)
            d->ready->prev = NULL;
        r = q->res;
        call(q, &r);
    }
    while (d->done != NULL) {
        struct lookup *lk = d->done;
        d->done = lk->hnext;
        while (lk->waiters != NULL) {
            struct dns_query *q = lk->waiters;
            lk->waiters = q->next;
            if (lk->waiters != NULL)
                lk->waiters->prev = NULL;
            r = lk->res;
            call(q, &r);
        }
        free(lk);
    }
}

/* ---- c-ares on the loop ---- */

static void on_timer(struct loop *l, struct timer *t);

static void arm(struct dns *d)
{
    struct timeval tv;
    if (ares_timeout(d->ch, NULL, &tv) == NULL) {
        timer_cancel(d->loop, &d->tm);
        return;
    }
    int64_t ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    timer_set(d->loop, &d->tm, ms, on_timer);
}

static void on_timer(struct loop *l, struct timer *t)
{
    (void)l;
    struct dns *d = container_of(t, struct dns, tm);
    ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm(d);
}

static void on_sock(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    if (e->fd < 0)
        return; /* closed by c-ares earlier in this iteration */
    struct dns_sock *s = container_of(e, struct dns_sock, ev);
    struct dns *d = s->d;
    int fd = e->fd;
    bool rd = events & (EPOLLIN | EPOLLERR | EPOLLHUP);
    bool wr = events & (EPOLLOUT | EPOLLERR | EPOLLHUP);
    ares_process_fd(d->ch, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
    arm(d);
}

static void sock_state(void *data, ares_socket_t fd, int readable,
                       int writable)
{
    struct dns *d = data;
    struct dns_sock **pp = &d->socks;
    while (*pp != NULL && (*pp)->ev.fd != fd)
        pp = &(*pp)->next;
    struct dns_sock *s = *pp;
    if (!readable && !writable) {
        if (s == NULL)
            return;
        loop_del(d->loop, &s->ev);
        *pp = s->next;
        s->ev.fd = -1;
        loop_free_later(d->loop, s); /* an event may wait in this batch */
        return;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            log_err("dns: out of memory watching a socket");
            return; /* the query times out */
        }
        s->ev = (struct ev){ fd, on_sock };
        s->d = d;
        s->next = d->socks;
        d->socks = s;
    }
    int rc = loop_watch(d->loop, &s->ev, s->added, readable, writable);
    if (rc == 0)
        s->added = true;
    else
        log_err("dns: cannot watch socket %d: %s", fd, strerror(-rc));
}

/* ---- /etc/hosts ---- */

static int cmp_hent(const void *a, const void *b)
{
    const struct hent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

/* The next blank-separated word of *p (NUL-terminated in place), or NULL. */
static char *word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    if (*s == '\0')
        return NULL;
    char *e = s;
    while (*e != '\0' && *e != ' ' && *e != '\t' && *e != '\r')
        e++;
    *p = *e != '\0' ? e + 1 : e;
    *e = '\0';
    return s;
}

/* Parses "address name [aliases]" lines (# comments) of <text>, which it
 * modifies (names lower-cased and NUL-terminated in place). */
static int hosts_parse(struct dns *d, char *text)
{
    size_t cap = 0;
    for (char *line = text, *next; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *rest = line;
        char *ip = word(&rest);
        if (ip == NULL)
            continue;
        union dns_addr a;
        memset(&a, 0, sizeof(a));
        if (inet_pton(AF_INET, ip, &a.in.sin_addr) == 1)
            a.in.sin_family = AF_INET;
        else if (inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1)
            a.in6.sin6_family = AF_INET6;
        else
            continue; /* scoped (fe80::1%eth0) or not an address */
        for (char *n; (n = word(&rest)) != NULL;) {
            size_t len = strlen(n);
            if (len > 0 && n[len - 1] == '.')
                n[--len] = '\0';
            if (len == 0 || len > MAX_NAME)
                continue;
            for (size_t i = 0; i < len; i++)
                n[i] = ascii_lower(n[i]);
            if (d->nhosts == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct hent *h = realloc(d->hosts, nc * sizeof(*h));
                if (h == NULL)
                    return -ENOMEM;
                d->hosts = h;
                cap = nc;
            }
            d->hosts[d->nhosts] = (struct hent){ n, d->nhosts, a };
            d->nhosts++;
        }
    }
    qsort(d->hosts, d->nhosts, sizeof(*d->hosts), cmp_hent);
    return 0;
}

/* Reads <path>; a missing or unreadable file is an empty table. */
static int hosts_load(struct dns *d, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t cap = 64 * 1024, len = 0;
    char *text = malloc(cap);
    int rc = text == NULL ? -ENOMEM : 0;
    while (rc == 0) {
        if (len + 1 == cap) {
            char *t = cap < HOSTS_MAX_BYTES ? realloc(text, cap * 2) : NULL;
            if (t == NULL) {
                rc = -ENOMEM;
                break;
            }
            text = t;
            cap *= 2;
        }
        size_t n = fread(text + len, 1, cap - 1 - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    if (rc == 0) {
        text[len] = '\0';
        d->hosts_text = text;
        rc = hosts_parse(d, text);
    } else {
        free(text);
    }
    if (rc < 0)
        log_err("dns: %s: %s", path, strerror(-rc));
    return rc;
}

/* The addresses /etc/hosts gives <name> (lower case), IPv4 first. */
static bool hosts_find(const struct dns *d, const char *name,
                       struct dns_result *out)
{
    size_t lo = 0, hi = d->nhosts;
    while (lo < hi) { /* the first entry >= name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->hosts[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    memset(out, 0, sizeof(*out));
    for (int pass = 0; pass < 2; pass++) {
        int fam = pass == 0 ? AF_INET : AF_INET6;
        for (size_t i = lo; i < d->nhosts && strcmp(d->hosts[i].name, name) == 0;
             i++) {
            if (d->hosts[i].addr.sa.sa_family == fam && out->n < DNS_MAX_ADDRS)
                out->addr[out->n++] = d->hosts[i].addr;
        }
    }
    return out->n > 0;
}

/* ---- API ---- */

struct dns *dns_new(struct loop *l, const struct cfg_dns *c, int *err)
{
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        *err = -ENOMEM;
        return NULL;
    }
    struct dns *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    d->loop = l;
    d->cfg = *c;
    if (c->cache_size > 0) {
        uint32_t n = 64;
        while (n < c->cache_size && n < (1u << 20))
            n <<= 1;
        d->tab = calloc(n, sizeof(*d->tab));
        if (d->tab == NULL) {
            free(d);
            *err = -ENOMEM;
            return NULL;
        }
        d->mask = n - 1;
    }
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = d;
    /* two tries, the second with twice the wait (c-ares backs off), fit
     * in dns.timeout */
    o.timeout = (int)MAX(c->timeout / 3, 50);
    o.tries = 2;
    o.lookups = (char *)"b"; /* DNS only: /etc/hosts is read here, once */
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_LOOKUPS;
    int st = ares_init_options(&d->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        log_err("dns: cannot start c-ares: %s", ares_strerror(st));
        free(d->tab);
        free(d);
        *err = st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
        return NULL;
    }
    if (c->hosts != NULL && hosts_load(d, c->hosts) < 0) {
        d->closing = true;
        ares_destroy(d->ch);
        free(d->hosts);
        free(d->hosts_text);
        free(d->tab);
        free(d);
        *err = -ENOMEM;
        return NULL;
    }
    if (c->servers != NULL) {
        st = ares_set_servers_ports_csv(d->ch, c->servers);
        if (st != ARES_SUCCESS) {
            log_err("dns: servers %s: %s", c->servers, ares_strerror(st));
            d->closing = true;
            ares_destroy(d->ch);
            free(d->hosts);
            free(d->hosts_text);
            free(d->tab);
            free(d);
            *err = -EINVAL;
            return NULL;
        }
    }
    return d;
}

void dns_free(struct dns *d)
{
    if (d == NULL)
        return;
    d->closing = true;
    timer_cancel(d->loop, &d->tm);
    loop_undefer(d->loop, &d->defer);
    ares_destroy(d->ch); /* pending lookups end in on_answer, freed there */
    while (d->ready != NULL) {
        struct dns_query *q = d->ready;
        d->ready = q->next;
        free(q);
    }
    while (d->done != NULL) {
        struct lookup *lk = d->done;
        d->done = lk->hnext;
        free_waiters(lk);
        free(lk);
    }
    while (d->lru_head != NULL)
        centry_free(d, d->lru_head);
    while (d->socks != NULL) { /* c-ares normally reported them closed */
        struct dns_sock *s = d->socks;
        d->socks = s->next;
        loop_del(d->loop, &s->ev);
        s->ev.fd = -1;
        loop_free_later(d->loop, s);
    }
    free(d->hosts);
    free(d->hosts_text);
    free(d->tab);
    free(d);
}

/* The answers that need no lookup: addresses, and RFC 6761 "invalid". */
static bool answer_now(const char *name, size_t len, struct dns_result *out)
{
    memset(out, 0, sizeof(*out));
    union dns_addr *a = &out->addr[0];
    if (inet_pton(AF_INET, name, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        out->n = 1;
        return true;
    }
    if (inet_pton(AF_INET6, name, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        out->n = 1;
        return true;
    }
    if ((len == 7 && memcmp(name, "invalid", 7) == 0) ||
        (len > 8 && memcmp(name + len - 8, ".invalid", 8) == 0)) {
        fail_result(out, -ENOENT, "NXDOMAIN");
        return true;
    }
    return false;
}

int dns_cached(struct dns *d, const char *name, int port,
               struct dns_result *out)
{
    char n[MAX_NAME + 1];
    int len = norm(name, n);
    if (len < 0) {
        fail_result(out, -ENOENT, "NXDOMAIN"); /* no such name can exist */
        return 0;
    }
    if (answer_now(n, (size_t)len, out) || hosts_find(d, n, out)) {
        set_port(out, port);
        return 0;
    }
    struct centry *e = cache_find(d, n, hash_name(n));
    if (e == NULL)
        return -EAGAIN;
    d->stats.hits++;
    if (e != d->lru_head) {
        lru_unlink(d, e);
        lru_front(d, e);
    }
    *out = e->res;
    set_port(out, port);
    return 0;
}

struct dns_query *dns_resolve(struct dns *d, const char *name, int port,
                              dns_done_fn *cb, void *arg, int *err)
{
    struct dns_query *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    q->d = d;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    if (dns_cached(d, name, 0, &q->res) == 0) {
        q->next = d->ready;
        if (d->ready != NULL)
            d->ready->prev = q;
        d->ready = q;
        loop_defer(d->loop, &d->defer, deliver);
        return q;
    }
    char n[MAX_NAME + 1];
    size_t len = (size_t)norm(name, n); /* dns_cached() checked it */
    uint32_t h = hash_name(n);
    struct lookup *lk = d->pending[h % PENDING_BUCKETS];
    while (lk != NULL && (lk->hash != h || strcmp(lk->name, n) != 0))
        lk = lk->hnext;
    bool start = lk == NULL;
    if (start) {
        lk = calloc(1, sizeof(*lk) + len + 1);
        if (lk == NULL) {
            free(q);
            *err = -ENOMEM;
            return NULL;
        }
        memcpy(lk->name, n, len + 1);
        lk->d = d;
        lk->hash = h;
        lk->hnext = d->pending[h % PENDING_BUCKETS];
        d->pending[h % PENDING_BUCKETS] = lk;
    }
    q->lk = lk;
    q->next = lk->waiters;
    if (lk->waiters != NULL)
        lk->waiters->prev = q;
    lk->waiters = q;
    if (start) {
        struct ares_addrinfo_hints hints = { .ai_flags = ARES_AI_NOSORT,
                                             .ai_family = AF_UNSPEC };
        d->stats.lookups++;
        /* may answer at once (from /etc/hosts): on_answer only queues */
        ares_getaddrinfo(d->ch, lk->name, NULL, &hints, on_answer, lk);
        arm(d);
    }
    return q;
}

void dns_cancel(struct dns_query *q)
{
    if (q == NULL)
        return;
    struct dns *d = q->d;
    struct dns_query **head = q->lk != NULL ? &q->lk->waiters : &d->ready;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        *head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    free(q);
}

void dns_stats(const struct dns *d, struct dns_stats *out)
{
    *out = d->stats;
    out->entries = d->nentries;
}
