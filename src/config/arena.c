/*
 * The snapshot arena.
 *
 * A configuration snapshot is built once, read by every worker for as long
 * as it is current, and dropped as a whole when the last request that
 * pinned it ends. So its memory is a chain of blocks that only grows and is
 * freed all at once by cfg_unref(): no per-object headers, no free lists.
 * Blocks come from calloc, so every allocation is zeroed.
 *
 * With -DPOOL_EMULATE each allocation is its own exact-size block, so ASan
 * sees a write past the end of one object (STYLE.md "Ownership").
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

#define BLOCK_BYTES 4096

struct block {
    struct block *next;
    size_t size; /* bytes in data */
    size_t used;
    max_align_t data[];
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct cfg__arena {
    struct block *head; /* the block being filled; full ones follow */
    struct cleanup *cleanups; /* newest first */
};

struct cfg__arena *cfg__arena_new(void)
{
    return calloc(1, sizeof(struct cfg__arena));
}

void cfg__arena_free(struct cfg__arena *a)
{
    if (a == NULL)
        return;
    for (struct cleanup *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->arg); /* the records themselves live in the blocks */
    struct block *b = a->head;
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

static struct block *block_new(size_t size)
{
    struct block *b = calloc(1, sizeof(*b) + size);
    if (b != NULL)
        b->size = size;
    return b;
}

void *cfg__arena_alloc(struct cfg__arena *a, size_t n)
{
    struct block *b;

    if (n > SIZE_MAX / 2)
        return NULL;
#ifdef POOL_EMULATE
    b = block_new(n);
    if (b == NULL)
        return NULL;
    b->used = n;
    b->next = a->head;
    a->head = b;
    return b->data;
#else
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    b = a->head;
    if (b == NULL || b->size - b->used < n) {
        size_t room = BLOCK_BYTES - sizeof(*b);
        b = block_new(n > room ? n : room);
        if (b == NULL)
            return NULL;
        if (n > room / 4 && a->head != NULL) {
            /* A big object gets a block of its own; keep filling the
               current one. */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    return p;
#endif
}

char *cfg__arena_strndup(struct cfg__arena *a, const char *p, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *s = cfg__arena_alloc(a, len + 1);
    if (s != NULL && len > 0)
        memcpy(s, p, len);
    return s;
}

int cfg__arena_on_free(struct cfg__arena *a, void (*fn)(void *), void *arg)
{
    struct cleanup *c = cfg__arena_alloc(a, sizeof(*c));
    if (c == NULL)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}
