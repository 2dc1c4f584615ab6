/*
 * Request arenas. A pool is a chain of blocks; the first block carries the
 * pool header itself. Default blocks are POOL_BLOCK bytes and are recycled
 * through a small per-thread cache; oversized requests get a block of their
 * own which goes back to malloc.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "core/pool.h"

#ifndef POOL_EMULATE
#define POOL_EMULATE 0
#endif

#define POOL_BLOCK 8192
#define POOL_CACHE_MAX 64
#define ALIGN 16

struct block {
    struct block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
};

struct cleanup {
    struct cleanup *next;
    pool_cleanup_fn *fn;
    void *arg;
};

struct pool {
    struct block *cur;   /* allocation happens here */
    struct block *first; /* all blocks, for freeing */
    struct cleanup *cleanups;
#if POOL_EMULATE
    void **emu;
    size_t nemu, capemu;
#endif
};

static _Thread_local struct block *cache;
static _Thread_local unsigned ncache;
static atomic_long fail_every;
static atomic_long fail_count;

void pool_fail_init(void)
{
    const char *s = getenv("FAIL_ALLOC");
    if (s != NULL)
        atomic_store(&fail_every, strtol(s, NULL, 10));
}

static bool inject_failure(void)
{
    long every = atomic_load_explicit(&fail_every, memory_order_relaxed);
    if (every <= 0)
        return false;
    return atomic_fetch_add(&fail_count, 1) % every == every - 1;
}

static inline size_t align_up(size_t n)
{
    return (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
}

#define HDR align_up(sizeof(struct block))

static struct block *block_get(size_t need)
{
    struct block *b;
    if (need <= POOL_BLOCK - HDR && cache != NULL) {
        b = cache;
        cache = b->next;
        ncache--;
    } else {
        size_t size = need <= POOL_BLOCK - HDR ? POOL_BLOCK - HDR : need;
        b = malloc(HDR + size);
        if (b == NULL)
            return NULL;
        b->size = size;
    }
    b->next = NULL;
    b->used = 0;
    return b;
}

static void block_put(struct block *b)
{
    if (b->size == POOL_BLOCK - HDR && ncache < POOL_CACHE_MAX) {
        b->next = cache;
        cache = b;
        ncache++;
        return;
    }
    free(b);
}

void pool_thread_cleanup(void)
{
    while (cache != NULL) {
        struct block *b = cache;
        cache = b->next;
        free(b);
    }
    ncache = 0;
}

struct pool *pool_new(size_t hint)
{
    struct block *b = block_get(align_up(sizeof(struct pool)) + hint);
    if (b == NULL)
        return NULL;
    struct pool *p = (struct pool *)(void *)((char *)b + HDR);
    b->used = align_up(sizeof(struct pool));
    memset(p, 0, sizeof(*p));
    p->cur = b;
    p->first = b;
    return p;
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    while (p->cleanups != NULL) {
        struct cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->arg);
    }
#if POOL_EMULATE
    for (size_t i = 0; i < p->nemu; i++)
        free(p->emu[i]);
    free(p->emu);
#endif
    struct block *b = p->first;
    while (b != NULL) {
        struct block *next = b->next;
        block_put(b);
        b = next;
    }
}

#if POOL_EMULATE
void *pool_alloc(struct pool *p, size_t n)
{
    if (inject_failure())
        return NULL;
    if (p->nemu == p->capemu) {
        size_t cap = p->capemu ? p->capemu * 2 : 16;
        void **e = realloc(p->emu, cap * sizeof(*e));
        if (e == NULL)
            return NULL;
        p->emu = e;
        p->capemu = cap;
    }
    void *m = malloc(n ? n : 1);
    if (m != NULL)
        p->emu[p->nemu++] = m;
    return m;
}
#else
void *pool_alloc(struct pool *p, size_t n)
{
    if (UNLIKELY(inject_failure()))
        return NULL;
    n = align_up(n ? n : 1);
    struct block *b = p->cur;
    if (UNLIKELY(b->used + n > b->size)) {
        struct block *nb = block_get(n);
        if (nb == NULL)
            return NULL;
        /* Keep the current block for small allocations when the new one is
         * a private oversized block. */
        nb->next = p->first->next;
        p->first->next = nb;
        if (nb->size == POOL_BLOCK - HDR)
            p->cur = nb;
        else {
            nb->used = n;
            return (char *)nb + HDR;
        }
        b = nb;
    }
    void *m = (char *)b + HDR + b->used;
    b->used += n;
    return m;
}
#endif

void *pool_calloc(struct pool *p, size_t n)
{
    void *m = pool_alloc(p, n);
    if (m != NULL)
        memset(m, 0, n);
    return m;
}

char *pool_strndup(struct pool *p, const char *s, size_t n)
{
    char *m = pool_alloc(p, n + 1);
    if (m == NULL)
        return NULL;
    memcpy(m, s, n);
    m[n] = '\0';
    return m;
}

int pool_on_destroy(struct pool *p, pool_cleanup_fn *fn, void *arg)
{
    struct cleanup *c = pool_alloc(p, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
    return 0;
}
