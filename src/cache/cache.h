/*
 * The response store shared by every worker thread: a memory tier (sharded
 * hash index, S3-FIFO eviction within a byte budget) and an optional disk
 * tier (one file per response, written to a temporary name and renamed, the
 * index rebuilt from the files at start).
 *
 * A stored response is a struct cache_obj: an immutable head (status line,
 * stored fields, freshness metadata) and a body made of chunks that a
 * writer appends to while readers follow it. Objects are reference counted;
 * whoever holds a reference may read the head and the committed body bytes
 * from any thread. The protocol rules (what to store, what is fresh) are in
 * fresh.h; this module stores what it is given.
 *
 * Request collapsing: a lookup that finds nothing may insert a "busy"
 * object (no head yet) for the key. Later lookups find it and wait on it;
 * its writer either publishes a head (the waiters then read the body as it
 * arrives) or abandons it (the waiters go to the origin themselves).
 *
 * Waiting: a reader that has consumed every committed byte, or that waits
 * for a head, registers a struct cache_waiter; the writer wakes it through
 * the waiter's thread's struct cache_notifier (an eventfd), whichever
 * thread the writer runs on.
 */
#ifndef GH_CACHE_CACHE_H
#define GH_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "cache/fresh.h"
#include "core/str.h"
#include "http/h1.h"

struct cache;
struct cache_obj;
struct cache_notifier;

#define CACHE_LEN_UNKNOWN UINT64_MAX

struct cache_params {
    uint64_t mem_bytes;   /* memory tier budget */
    uint64_t max_object;  /* largest body stored */
    const char *disk_path; /* NULL: no disk tier */
    uint64_t disk_bytes;  /* disk tier budget */
    bool disk_sync;       /* fdatasync before the rename */
    /* The process runs as another user once it has dropped root: the
     * directories and files of the disk tier are made that user's. */
    bool chown;
    uid_t uid;
    gid_t gid;
    /* Called by the disk thread before its first job (by then the process
     * has dropped its privileges): enters its sandbox. Nonzero: the disk
     * tier stops (nothing is read or written). May be NULL. */
    int (*thread_init)(void *arg);
    void *thread_arg;
};

/* The memory budget is split into shards of at least 4 MiB (at most 16
 * shards); an object must fit in one shard's budget. */
static inline unsigned cache_shards(uint64_t mem_bytes)
{
    unsigned n = 1;
    while (n < 16 && mem_bytes / (n * 2) >= 4 * 1024 * 1024)
        n *= 2;
    return n;
}

/* Creates the store (and, with a disk path, creates the directory if needed,
 * removes leftover temporary files and rebuilds the index from the files).
 * Returns NULL with a message in <err> on failure. The caller owns it. */
struct cache *cache_new(const struct cache_params *p, char *err, size_t errlen);
/* Frees the store; no reader or writer may remain. */
void cache_free(struct cache *c);

/* ---- keys ---- */

struct cache_key {
    const char *p; /* "http://host[:port]/path?query" */
    size_t len;
    uint64_t hash;
};

/* Writes the key of a request into <out> (room <cap>): the scheme, the
 * authority lower-cased without a default port, and the path and query as
 * received ("/" when empty). Returns the length, or 0 when it does not
 * fit. */
size_t cache_key_write(char *out, size_t cap, struct str scheme,
                       struct str authority, struct str path);
uint64_t cache_hash(const void *p, size_t len);
static inline void cache_key_set(struct cache_key *k, const char *p, size_t len)
{
    k->p = p;
    k->len = len;
    k->hash = cache_hash(p, len);
}

/* The secondary key (RFC 9111 §4.1): for each field name listed by Vary,
 * the request's values of that field, joined by "," with the whitespace
 * around each element removed; an absent field differs from an empty one.
 * Writes "name\0value\0..." (value "\1" for absent) for the names in
 * <vary> (a Vary field value; may be several lines joined by ","); returns
 * the length or -ENOBUFS, or -EINVAL for "*". Names are lower-cased. */
int cache_vary_key(char *out, size_t cap, struct str vary,
                   const struct h1_field *fields, size_t nfields);
/* True when <req>'s fields give the same secondary key as <vk> (a blob from
 * cache_vary_key) */
bool cache_vary_match(const char *vk, size_t vklen,
                      const struct h1_field *fields, size_t nfields);

/* ---- objects ---- */

/* Everything a writer gives when it publishes a head. Copied. */
struct cache_head {
    struct cache_meta meta;
    int status;
    struct str reason;
    struct str fields;   /* "Name: value\r\n" lines as stored */
    struct str server;   /* "Server: ..\r\nX-Powered-By: ..\r\n" lines that
                            hide_server removes */
    struct str via;      /* the upstream's Via values, merged, or empty */
    struct str vary;     /* secondary key blob, empty without Vary */
    struct str etag;     /* ETag value, or empty */
    struct str tags;     /* "tag\0tag\0" from Cache-Tag / Surrogate-Key */
    struct str nocache_fields; /* lower-cased names from no-cache="..." */
    uint64_t body_len;   /* Content-Length, or CACHE_LEN_UNKNOWN */
};

/* Read-only view of a published object. Valid while a reference is held. */
struct cache_view {
    const struct cache_meta *meta;
    int status;
    struct str status_line; /* "HTTP/1.1 200 OK\r\n" */
    struct str fields;
    struct str server;
    struct str via;
    struct str vary;
    struct str etag;
    struct str tags;
    struct str nocache_fields;
    struct str key;
    uint64_t body_len;       /* as published (may be unknown) */
};

void cache_obj_view(const struct cache_obj *o, struct cache_view *v);
struct cache_obj *cache_obj_ref(struct cache_obj *o);
void cache_obj_unref(struct cache_obj *o);
/* True once a head is published (not busy). */
bool cache_obj_ready(const struct cache_obj *o);

enum cache_bstate {
    CB_FILLING = 0,
    CB_COMPLETE,
    CB_FAILED, /* the fill broke (origin error, too big): never complete */
    CB_PASS,   /* a busy object abandoned: the response was not storable */
};

/* Body state and the bytes committed so far (acquire: bytes up to *len may
 * be read). */
enum cache_bstate cache_obj_state(const struct cache_obj *o, uint64_t *len);

/* Marks a stale object as being revalidated in the background; true for
 * the caller that got the mark (only one background revalidation). */
bool cache_obj_claim_revalidate(struct cache_obj *o);
void cache_obj_release_revalidate(struct cache_obj *o);

/* ---- lookup ---- */

/* Called under the index lock for each published variant of the key, most
 * recent first: true when the request selects it (Vary). */
typedef bool cache_match_fn(void *arg, const char *vary, size_t vary_len);

enum {
    CL_COLLAPSE = 1 << 0, /* insert a busy object when nothing is found */
};

struct cache_found {
    struct cache_obj *hit;  /* a published variant selected by the request */
    struct cache_obj *busy; /* a fill whose head is not known yet (wait on
                               it), or the one we inserted (we are its
                               writer) */
    bool mine;              /* busy was inserted by this lookup */
    bool uri_seen;          /* some variant of the URI exists (vary-miss) */
    bool from_disk;         /* busy is being loaded from the disk tier */
};

/* Looks up <k>. Every object returned holds a reference for the caller. */
void cache_lookup(struct cache *c, const struct cache_key *k,
                  cache_match_fn *match, void *arg, unsigned flags,
                  struct cache_found *out);

/* Creates an object for <k> that is not in the index yet (a replacement
 * found by revalidation, or a fill that did not collapse). The caller is
 * its writer and holds the reference. NULL on out of memory. */
struct cache_obj *cache_obj_new(struct cache *c, const struct cache_key *k);

/* ---- writing ---- */

/* Publishes <h> on <o> (busy or new) and lists it in the index, replacing
 * the published variants of the key with the same secondary key. Wakes the
 * waiters. Returns 0, -EFBIG when the known body length exceeds
 * max_object, -ENOMEM. On failure the object is abandoned (CB_FAILED) and
 * the waiters are woken. */
int cache_publish(struct cache *c, struct cache_obj *o, const struct cache_head *h);

/* Publishes a new version of <old> whose head is <h> and whose body is
 * <old>'s (a 304 update, RFC 9111 §4.3.4). Returns the new object
 * (referenced) or NULL. */
struct cache_obj *cache_update(struct cache *c, struct cache_obj *old,
                               const struct cache_head *h);

/* Returns room for at least <n> contiguous body bytes (n <= 64 KiB) or NULL
 * (out of memory, or max_object exceeded: the object is then failed). */
char *cache_reserve(struct cache *c, struct cache_obj *o, size_t n);
/* Makes <n> reserved bytes visible to readers and wakes them. */
void cache_commit(struct cache_obj *o, size_t n);
/* reserve + copy + commit; 0 or -EFBIG / -ENOMEM (object failed). */
int cache_append(struct cache *c, struct cache_obj *o, const void *p, size_t n);
/* The body is complete: final size accounted, readers woken, and the object
 * queued for the disk tier. */
void cache_complete(struct cache *c, struct cache_obj *o);
/* The fill ended without a complete body (<pass>: the response was not
 * storable). Unlists the object and wakes the readers. */
void cache_abort(struct cache *c, struct cache_obj *o, bool pass);

/* ---- reading ---- */

struct cache_reader {
    const void *ck_; /* private: current chunk */
    size_t off_;     /* private: offset in it */
    uint64_t skip_;  /* private: bytes the chunk pointer still has to pass */
    uint64_t pos;    /* the body offset of the next byte to read */
};

/* Starts <rd> at body offset <pos>. */
void cache_reader_init(struct cache_obj *o, struct cache_reader *rd, uint64_t pos);
/* Fills up to <max> iovecs with committed bytes from rd->pos, at most
 * <limit> bytes. Returns the number of iovecs (0: nothing available now). */
int cache_read_iov(struct cache_obj *o, struct cache_reader *rd,
                   struct iovec *iov, int max, uint64_t limit);
/* Consumes <n> bytes (after they were written somewhere). */
void cache_read_skip(struct cache_obj *o, struct cache_reader *rd, size_t n);

/* ---- waiting ---- */

typedef void cache_wake_fn(void *arg);

struct cache_waiter {
    cache_wake_fn *fn;
    void *arg;
    struct cache_notifier *nt;
    /* private */
    struct cache_obj *on_;
    struct cache_waiter *next_, *prev_;   /* on the object */
    struct cache_waiter *qnext_, *qprev_; /* in the notifier's queue */
    bool linked_, queued_;
};

/* One per thread that waits. Returns NULL on failure. */
struct cache_notifier *cache_notifier_new(void);
void cache_notifier_free(struct cache_notifier *n);
/* The eventfd to watch for reading. */
int cache_notifier_fd(const struct cache_notifier *n);
/* Runs the woken waiters' functions (call when the fd is readable). */
void cache_notifier_run(struct cache_notifier *n);

/* Registers <w> on <o> to be woken once when the object has a head, more
 * than <seen> body bytes, or reaches a final state. Returns 0 when
 * registered, 1 when that is already the case (not registered). */
int cache_wait(struct cache_obj *o, struct cache_waiter *w, uint64_t seen);
/* Cancels <w>; afterwards its function is not called. Idempotent. */
void cache_unwait(struct cache_waiter *w);

/* ---- invalidation and purge ---- */

/* Takes <o> out of the index (its readers keep reading it). */
void cache_obj_unlist(struct cache *c, struct cache_obj *o);

/* Removes every variant of <k> from both tiers. Returns how many. */
size_t cache_purge_key(struct cache *c, const struct cache_key *k);
/* Removes every object whose key starts with <prefix>. */
size_t cache_purge_prefix(struct cache *c, struct str prefix);
/* Removes every object tagged <tag> (Cache-Tag / Surrogate-Key). */
size_t cache_purge_tag(struct cache *c, struct str tag);

/* ---- statistics ---- */

struct cache_stats {
    uint64_t objects, bytes;           /* memory tier */
    uint64_t disk_objects, disk_bytes; /* disk tier */
    uint64_t evictions, disk_writes, disk_loads;
};
void cache_stats(struct cache *c, struct cache_stats *st);
/* Waits until the disk tier has written what was queued (tests, stop). */
void cache_flush(struct cache *c);

#endif
