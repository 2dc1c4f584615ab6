/*
 * S3-FIFO by bytes; see s3fifo.h. The ghost queue is a hash-indexed table
 * of (hash, insertion number): an entry is "in the ghost" while fewer than
 * ghost_keep insertions (the number of objects the cache holds) happened
 * since it was added, which is a FIFO of that length without the list. A
 * collision overwrites an older entry, so the ghost is approximate, as in
 * the paper's implementation.
 */
#include <errno.h>
#include <stdlib.h>

#include "cache/s3fifo.h"

int s3_init(struct s3 *s, uint64_t cap, size_t ghost_entries)
{
    *s = (struct s3){ 0 };
    s->cap = cap;
    s->small_cap = cap / 10;
    s->move_at = 1;
    size_t n = 64;
    while (n < ghost_entries * 2 && n < ((size_t)1 << 26))
        n <<= 1;
    s->ghost = calloc(n, sizeof(*s->ghost));
    if (s->ghost == NULL)
        return -ENOMEM;
    s->ghost_mask = n - 1;
    return 0;
}

void s3_fini(struct s3 *s)
{
    free(s->ghost);
    s->ghost = NULL;
}

static void push_head(struct s3_list *l, struct s3_node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
    l->bytes += n->size;
    l->count++;
}

static void unlink_node(struct s3_list *l, struct s3_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    l->bytes -= n->size;
    l->count--;
}

static struct s3_list *list_of(struct s3 *s, const struct s3_node *n)
{
    return n->where == S3_SMALL ? &s->small : &s->main;
}

static uint64_t ghost_keep(const struct s3 *s)
{
    size_t objs = s->small.count + s->main.count;
    return objs > 16 ? objs : 16;
}

static bool ghost_take(struct s3 *s, uint64_t h)
{
    struct s3_ghost *g = &s->ghost[h & s->ghost_mask];
    if (g->hash != h || g->seq == 0 || s->ghost_seq - g->seq >= ghost_keep(s))
        return false;
    g->hash = 0;
    g->seq = 0;
    return true;
}

static void ghost_add(struct s3 *s, uint64_t h)
{
    struct s3_ghost *g = &s->ghost[h & s->ghost_mask];
    g->hash = h;
    g->seq = ++s->ghost_seq;
}

void s3_insert(struct s3 *s, struct s3_node *n)
{
    n->freq = 0;
    if (ghost_take(s, n->hash)) {
        n->where = S3_MAIN;
        push_head(&s->main, n);
    } else {
        n->where = S3_SMALL;
        push_head(&s->small, n);
    }
}

void s3_resize(struct s3 *s, struct s3_node *n, uint64_t size)
{
    if (n->where == S3_NONE) {
        n->size = size;
        return;
    }
    struct s3_list *l = list_of(s, n);
    l->bytes = l->bytes - n->size + size;
    n->size = size;
}

void s3_remove(struct s3 *s, struct s3_node *n)
{
    if (n->where == S3_NONE)
        return;
    unlink_node(list_of(s, n), n);
    n->where = S3_NONE;
}

struct s3_node *s3_evict(struct s3 *s)
{
    for (;;) {
        struct s3_node *t;
        if (s->small.tail != NULL &&
            (s->small.bytes > s->small_cap || s->main.tail == NULL)) {
            t = s->small.tail;
            unlink_node(&s->small, t);
            if (t->freq >= s->move_at) {
                t->where = S3_MAIN;
                t->freq = 0;
                push_head(&s->main, t);
                continue;
            }
            ghost_add(s, t->hash);
            t->where = S3_NONE;
            return t;
        }
        t = s->main.tail;
        if (t == NULL)
            return NULL;
        unlink_node(&s->main, t);
        if (t->freq > 0) {
            t->freq--;
            push_head(&s->main, t);
            continue;
        }
        t->where = S3_NONE;
        return t;
    }
}
