/*
 * Internals shared by the files of src/cache/ (not part of cache.h).
 *
 *   key.c        keys, hashes, secondary keys
 *   fresh.c      the RFC 9111 rules
 *   s3fifo.c     eviction
 *   body.c       chunked bodies: writing, following
 *   store_mem.c  objects, the sharded memory index, purge
 *   notify.c     waiters and per-thread notifiers
 *   store_disk.c the disk tier: files, index, its thread
 *
 * Locks, in the order they may be taken: shard lock, then the disk lock,
 * then a body lock, then a notifier lock. The disk thread never takes a
 * shard lock while it holds the disk lock.
 */
#ifndef GH_CACHE_CACHE_INT_H
#define GH_CACHE_CACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache.h"
#include "cache/s3fifo.h"

#define CACHE_MAX_SHARDS 16
#define CACHE_WAIT_HEAD UINT64_MAX

struct cache_chunk {
    _Atomic(struct cache_chunk *) next;
    _Atomic uint32_t len; /* bytes written and committed in this chunk */
    uint32_t cap;
    char data[];
};

struct cache_body {
    atomic_uint refs;
    pthread_mutex_t lock;           /* waiters, state changes */
    _Atomic uint64_t len;           /* committed bytes (release/acquire) */
    _Atomic int state;              /* enum cache_bstate */
    _Atomic(struct cache_chunk *) first;
    struct cache_chunk *last;       /* writer only */
    _Atomic uint64_t alloc;         /* bytes of chunks allocated */
    struct cache_waiter *waiters;   /* under lock */
};

struct cache_obj {
    struct s3_node node;     /* shard queues (shard lock) */
    struct cache_obj *hnext; /* hash chain (shard lock) */
    struct cache *c;
    atomic_uint refs;
    atomic_bool ready;       /* head published (release) */
    atomic_bool revalidating;
    atomic_bool dead;        /* purged/replaced: never to reach the disk */
    atomic_bool on_disk;     /* this version has a file */
    bool listed;             /* in the index (shard lock) */
    uint8_t shard;
    uint64_t hash;
    uint64_t vhash;          /* hash of the secondary key */
    uint64_t charge;         /* bytes charged to the shard (shard lock) */
    struct cache_body *body;
    /* the head: written once, before ready is set */
    struct cache_meta meta;
    int status;
    uint64_t body_len;
    char *blob;              /* every string below lives here */
    struct str status_line, fields, server, via, vary, etag, tags, ncf;
    uint32_t key_len;
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    struct cache_obj **tab;
    size_t mask, count;
    struct s3 s3;
    uint64_t evictions;
} __attribute__((aligned(64)));

struct disk;

struct cache {
    struct shard shard[CACHE_MAX_SHARDS];
    unsigned nshards;
    uint64_t max_object;
    struct disk *disk;
};

static inline struct shard *shard_of(struct cache *c, uint64_t hash)
{
    return &c->shard[(hash >> 56) & (c->nshards - 1)];
}

/* ---- body.c ---- */

struct cache_body *cache__body_new(void);
void cache__body_unref(struct cache_body *b);

/* ---- store_mem.c ---- */

/* A busy object for <k> (no head), one reference for the caller. */
struct cache_obj *cache__obj_alloc(struct cache *c, const char *key, size_t len,
                                   uint64_t hash);
/* Wakes every waiter of <b>; the caller holds b->lock. */
void cache__wake_locked(struct cache_body *b);
/* Copies a head into <o> (not yet published). 0 or -ENOMEM. */
int cache__set_head(struct cache_obj *o, const struct cache_head *h);

/* ---- notify.c ---- */

/* Queues <w> on its notifier (any thread). Caller holds the body lock. */
void cache__post(struct cache_waiter *w);

/* ---- store_disk.c ---- */

int cache__disk_open(struct cache *c, const struct cache_params *p, char *err,
                     size_t errlen);
void cache__disk_close(struct cache *c);
/* Under the shard lock: true when a file for <k> matches (Vary); then
 * *vhash says which. */
bool cache__disk_find(struct cache *c, const struct cache_key *k,
                      cache_match_fn *match, void *arg, uint64_t *vhash);
/* Queues the load of (<o>'s key, <vhash>) into busy object <o>. Takes a
 * reference. */
void cache__disk_load(struct cache *c, struct cache_obj *o, uint64_t vhash);
/* Queues a complete object for writing. Takes a reference. */
void cache__disk_store(struct cache *c, struct cache_obj *o);
size_t cache__disk_purge(struct cache *c, int how, struct str what,
                         uint64_t hash);
void cache__disk_stats(struct cache *c, struct cache_stats *st);
void cache__disk_flush(struct cache *c);

enum { PURGE_KEY = 0, PURGE_PREFIX, PURGE_TAG };

/* True when the "tag\0tag\0" list <tags> holds <tag>. */
bool cache__has_tag(struct str tags, struct str tag);

#endif
