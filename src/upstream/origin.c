/*
 * The per-worker table of origins (see origin.h): a hash table of
 * struct origin, plus an LRU list used only to choose which origin to drop
 * when the table is full. An origin held by a request (refs > 0) is never
 * dropped: its struct ups is what the request's connection points at. So
 * the bound is soft: with more origins in use at once than <max>, the
 * table grows, and shrinks back as they are released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "upstream/origin.h"

struct origin {
    struct ups u;                /* first, so a struct ups * is ours */
    struct ups_server srv;
    struct ups_shared *sh;       /* its balancing and health state */
    struct cfg_upstream cu;
    struct cfg_server server;
    const struct cfg_upstream *tpl;
    struct origin *hnext;
    struct origin *prev, *next;  /* LRU, most recent first */
    uint32_t hash;
    unsigned refs;
};

struct origins {
    struct loop *loop;
    struct origin **tab;
    uint32_t mask;
    unsigned n, max;
    struct origin *lru_head, *lru_tail;
};

static socklen_t sa_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
}

/* Address and port bytes of <sa> (not the padding or flow info). */
static size_t key_bytes(const struct sockaddr *sa, const void **p, int *port)
{
    *port = sock_port(sa);
    if (sa->sa_family == AF_INET) {
        *p = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        return 4;
    }
    *p = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return 16;
}

static uint32_t hash_key(const struct sockaddr *sa,
                         const struct cfg_upstream *tpl)
{
    const void *a;
    int port;
    size_t n = key_bytes(sa, &a, &port);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)a)[i]) * 16777619u;
    h = (h ^ (uint32_t)port) * 16777619u;
    h = (h ^ (uint32_t)((uintptr_t)tpl >> 4)) * 16777619u;
    return h;
}

static bool same(const struct origin *e, const struct sockaddr *sa,
                 const struct cfg_upstream *tpl)
{
    const struct sockaddr *b = (const struct sockaddr *)&e->server.addr.ss;
    const void *pa, *pb;
    int qa, qb;
    if (e->tpl != tpl || b->sa_family != sa->sa_family)
        return false;
    size_t n = key_bytes(sa, &pa, &qa);
    key_bytes(b, &pb, &qb);
    return qa == qb && memcmp(pa, pb, n) == 0;
}

static void lru_unlink(struct origins *o, struct origin *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        o->lru_head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        o->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct origins *o, struct origin *e)
{
    e->next = o->lru_head;
    if (o->lru_head != NULL)
        o->lru_head->prev = e;
    o->lru_head = e;
    if (o->lru_tail == NULL)
        o->lru_tail = e;
}

/* Drops <e>: its idle connections are closed; nothing else points at it
 * (refs == 0). */
static void drop(struct origins *o, struct origin *e)
{
    struct origin **pp = &o->tab[e->hash & o->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(o, e);
    while (e->srv.idle != NULL) {
        struct uconn *uc = e->srv.idle;
        e->srv.idle = uc->next;
        ups_close(uc);
    }
    timer_cancel(e->u.loop, &e->u.poll);
    loop_undefer(e->u.loop, &e->u.wake);
    ups_shared_free(e->sh);
    o->n--;
    free(e);
}

struct origins *origins_new(struct loop *l, unsigned max)
{
    struct origins *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    uint32_t n = 64;
    while (n < max * 2u && n < (1u << 20))
        n <<= 1;
    o->tab = calloc(n, sizeof(*o->tab));
    if (o->tab == NULL) {
        free(o);
        return NULL;
    }
    o->mask = n - 1;
    o->max = max ? max : 1;
    o->loop = l;
    return o;
}

void origins_free(struct origins *o)
{
    if (o == NULL)
        return;
    while (o->lru_head != NULL) {
        ASSERT(o->lru_head->refs == 0);
        drop(o, o->lru_head);
    }
    free(o->tab);
    free(o);
}

static struct origin *make(struct origins *o, const struct sockaddr *sa,
                           const struct cfg_upstream *tpl, uint32_t h)
{
    struct origin *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    struct cfg_addr *a = &e->server.addr;
    a->len = sa_len(sa);
    memcpy(&a->ss, sa, a->len);
    char ip[INET6_ADDRSTRLEN];
    sock_ntop(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET6)
        snprintf(a->text, sizeof(a->text), "[%s]:%d", ip, sock_port(sa));
    else
        snprintf(a->text, sizeof(a->text), "%s:%d", ip, sock_port(sa));
    e->server.weight = 1;
    e->cu = *tpl;
    e->cu.name = a->text; /* logs say "ups=192.0.2.7:80" */
    e->cu.servers = &e->server;
    e->cu.nservers = 1;
    e->sh = ups_shared_new(&e->cu);
    if (e->sh == NULL) {
        free(e);
        return NULL;
    }
    ups_init_one(&e->u, &e->cu, e->sh, &e->srv, o->loop);
    e->tpl = tpl;
    e->hash = h;
    return e;
}

struct ups *origins_get(struct origins *o, const struct sockaddr *sa,
                        const struct cfg_upstream *tpl)
{
    uint32_t h = hash_key(sa, tpl);
    struct origin *e = o->tab[h & o->mask];
    while (e != NULL && !(e->hash == h && same(e, sa, tpl)))
        e = e->hnext;
    if (e == NULL) {
        /* make room: the least recently used origins nobody holds */
        for (struct origin *v = o->lru_tail, *prev; v != NULL && o->n >= o->max;
             v = prev) {
            prev = v->prev;
            if (v->refs == 0)
                drop(o, v);
        }
        e = make(o, sa, tpl, h);
        if (e == NULL)
            return NULL;
        e->hnext = o->tab[h & o->mask];
        o->tab[h & o->mask] = e;
        o->n++;
    } else {
        lru_unlink(o, e);
    }
    lru_front(o, e);
    e->refs++;
    return &e->u;
}

void origins_put(struct origins *o, struct ups *u)
{
    (void)o;
    struct origin *e = container_of(u, struct origin, u);
    ASSERT(e->refs > 0);
    e->refs--;
}

void origins_set_max(struct origins *o, unsigned max)
{
    o->max = max ? max : 1;
}

unsigned origins_count(const struct origins *o)
{
    return o->n;
}
