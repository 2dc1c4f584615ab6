/*
 * S3-FIFO eviction (Yang et al., "FIFO queues are all you need for cache
 * eviction", SOSP 2023), by bytes.
 *
 * Three FIFO queues: a small one (10% of the budget) where new objects
 * land, a main one, and a ghost queue of the hashes of objects recently
 * evicted from the small queue. A hit only bumps a 2-bit counter (no list
 * surgery, so a hit costs no write to shared lists). Eviction from the
 * small queue moves objects that were hit since they arrived to the main
 * queue and drops the others (remembering them in the ghost); eviction from
 * the main queue reinserts objects with a non-zero counter (decrementing
 * it) and drops the others. An object whose hash is in the ghost goes
 * straight to the main queue. One-hit wonders and scans thus pass through
 * the small queue without displacing the main queue.
 *
 * Not thread-safe: the caller holds its shard's lock.
 */
#ifndef GH_CACHE_S3FIFO_H
#define GH_CACHE_S3FIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { S3_NONE = 0, S3_SMALL, S3_MAIN };

struct s3_node {
    struct s3_node *prev, *next;
    uint64_t size;
    uint64_t hash;
    uint8_t freq;  /* 0..3 */
    uint8_t where; /* S3_NONE, S3_SMALL, S3_MAIN */
};

struct s3_list {
    struct s3_node *head, *tail; /* insert at head, evict at tail */
    uint64_t bytes;
    size_t count;
};

struct s3_ghost {
    uint64_t hash;
    uint64_t seq; /* insertion number, for aging */
};

struct s3 {
    struct s3_list small, main;
    uint64_t cap;         /* bytes */
    uint64_t small_cap;   /* 10% of cap */
    struct s3_ghost *ghost; /* open table, indexed by hash */
    size_t ghost_mask;
    uint64_t ghost_seq;   /* insertions so far */
    uint64_t ghost_keep;  /* entries older than this many insertions are gone */
    unsigned move_at;     /* small -> main when freq >= move_at (1) */
};

/* <cap> bytes; the ghost remembers about <ghost_entries> hashes (rounded up
 * to a power of two). Returns 0 or -ENOMEM. */
int s3_init(struct s3 *s, uint64_t cap, size_t ghost_entries);
void s3_fini(struct s3 *s);

static inline uint64_t s3_used(const struct s3 *s)
{
    return s->small.bytes + s->main.bytes;
}

/* Adds <n> (size and hash set): to the main queue when its hash is in the
 * ghost, else to the small queue. The caller then evicts while over. */
void s3_insert(struct s3 *s, struct s3_node *n);
/* A hit: the counter goes up, saturating at 3. */
static inline void s3_hit(struct s3_node *n)
{
    if (n->freq < 3)
        n->freq++;
}
/* Changes the size of a queued node. */
void s3_resize(struct s3 *s, struct s3_node *n, uint64_t size);
/* Removes <n> from its queue (purge, replacement). */
void s3_remove(struct s3 *s, struct s3_node *n);
/* Picks a victim and removes it from its queue; NULL when empty. The caller
 * frees what the node belongs to. */
struct s3_node *s3_evict(struct s3 *s);

#endif
