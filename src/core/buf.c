#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define BUF_CACHE_MAX 128
#define BULK_CACHE_MAX 4

struct free_blk {
    struct free_blk *next;
};

static _Thread_local struct free_blk *cache;
static _Thread_local unsigned ncache;
static _Thread_local struct free_blk *bulk_cache;
static _Thread_local unsigned nbulk;

int buf_get(struct buf *b)
{
    if (b->data != NULL)
        return 0;
    if (cache != NULL) {
        b->data = (char *)cache;
        cache = cache->next;
        ncache--;
    } else {
        b->data = malloc(BUF_SIZE);
        if (b->data == NULL)
            return -ENOMEM;
    }
    b->cap = BUF_SIZE;
    b->start = b->end = 0;
    return 0;
}

void buf_put(struct buf *b)
{
    if (b->data == NULL)
        return;
    if (b->cap == BUF_SIZE && ncache < BUF_CACHE_MAX) {
        struct free_blk *f = (struct free_blk *)(void *)b->data;
        f->next = cache;
        cache = f;
        ncache++;
    } else if (b->cap == BUF_BULK && nbulk < BULK_CACHE_MAX) {
        struct free_blk *f = (struct free_blk *)(void *)b->data;
        f->next = bulk_cache;
        bulk_cache = f;
        nbulk++;
    } else {
        free(b->data);
    }
    b->data = NULL;
    b->cap = b->start = b->end = 0;
}

int buf_grow(struct buf *b, size_t cap)
{
    if (b->data != NULL && b->cap >= cap)
        return 0;
    char *m;
    if (cap == BUF_BULK && bulk_cache != NULL) {
        m = (char *)bulk_cache;
        bulk_cache = bulk_cache->next;
        nbulk--;
    } else if ((m = malloc(cap)) == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    if (b->data != NULL) {
        len = buf_len(b);
        memcpy(m, buf_head(b), len);
        buf_put(b);
    }
    b->data = m;
    b->cap = (uint32_t)cap;
    b->start = 0;
    b->end = (uint32_t)len;
    return 0;
}

void buf_compact(struct buf *b)
{
    if (b->start == 0)
        return;
    size_t len = buf_len(b);
    memmove(b->data, b->data + b->start, len);
    b->start = 0;
    b->end = (uint32_t)len;
}

void buf_thread_cleanup(void)
{
    while (cache != NULL) {
        struct free_blk *f = cache;
        cache = f->next;
        free(f);
    }
    ncache = 0;
    while (bulk_cache != NULL) {
        struct free_blk *f = bulk_cache;
        bulk_cache = f->next;
        free(f);
    }
    nbulk = 0;
}
