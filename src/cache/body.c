/*
 * Bodies: a chain of chunks that one writer appends to while any number of
 * readers, on any thread, follow it.
 *
 * A known Content-Length gets one chunk of exactly that size (so a small
 * object is one contiguous body); otherwise chunks grow from 4 KiB to
 * 64 KiB. The writer fills the last chunk and publishes with a release add
 * on the committed length; a new chunk's pointer is published (release)
 * before any byte in it is committed. Readers load the committed length
 * with acquire and read up to it, so they need no lock; the writer takes
 * the body mutex only to wake waiters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/macros.h"

#define CHUNK_MIN 4096
#define CHUNK_MAX 65536

/* ---- bodies ---- */

struct cache_body *cache__body_new(void)
{
    struct cache_body *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    atomic_init(&b->len, 0);
    atomic_init(&b->state, CB_FILLING);
    atomic_init(&b->first, NULL);
    atomic_init(&b->alloc, 0);
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void cache__body_unref(struct cache_body *b)
{
    if (b == NULL || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct cache_chunk *ck = atomic_load_explicit(&b->first, memory_order_acquire);
    while (ck != NULL) {
        struct cache_chunk *next = atomic_load_explicit(&ck->next, memory_order_relaxed);
        free(ck);
        ck = next;
    }
    AZ(b->waiters != NULL);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static struct cache_chunk *chunk_new(size_t cap)
{
    struct cache_chunk *ck = malloc(sizeof(*ck) + cap);
    if (ck == NULL)
        return NULL;
    atomic_init(&ck->next, NULL);
    atomic_init(&ck->len, 0);
    ck->cap = (uint32_t)cap;
    return ck;
}

char *cache_reserve(struct cache *c, struct cache_obj *o, size_t n)
{
    struct cache_body *b = o->body;
    struct cache_chunk *last = b->last;
    uint64_t have = atomic_load_explicit(&b->len, memory_order_relaxed);
    if (have + n > c->max_object) {
        cache_abort(c, o, false);
        return NULL;
    }
    if (last != NULL) {
        uint32_t used = atomic_load_explicit(&last->len, memory_order_relaxed);
        if (last->cap - used >= n)
            return last->data + used;
    }
    size_t cap;
    if (o->body_len != CACHE_LEN_UNKNOWN && o->body_len >= have + n &&
        o->body_len - have <= CHUNK_MAX * 16) {
        cap = (size_t)(o->body_len - have); /* the rest, in one piece */
    } else {
        cap = last == NULL ? CHUNK_MIN : (size_t)last->cap * 2;
        if (cap > CHUNK_MAX)
            cap = CHUNK_MAX;
    }
    if (cap < n)
        cap = n;
    struct cache_chunk *ck = chunk_new(cap);
    if (ck == NULL) {
        cache_abort(c, o, false);
        return NULL;
    }
    atomic_fetch_add_explicit(&b->alloc, sizeof(*ck) + cap, memory_order_relaxed);
    if (last == NULL)
        atomic_store_explicit(&b->first, ck, memory_order_release);
    else
        atomic_store_explicit(&last->next, ck, memory_order_release);
    b->last = ck;
    return ck->data;
}

void cache_commit(struct cache_obj *o, size_t n)
{
    struct cache_body *b = o->body;
    if (n == 0)
        return;
    struct cache_chunk *last = b->last;
    atomic_store_explicit(&last->len,
                          atomic_load_explicit(&last->len, memory_order_relaxed) + (uint32_t)n,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&b->len, n, memory_order_release);
    pthread_mutex_lock(&b->lock);
    cache__wake_locked(b);
    pthread_mutex_unlock(&b->lock);
}

int cache_append(struct cache *c, struct cache_obj *o, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        struct cache_chunk *last = o->body->last;
        size_t piece = n;
        if (last != NULL) {
            size_t room = last->cap - atomic_load_explicit(&last->len, memory_order_relaxed);
            if (room > 0 && room < piece)
                piece = room;
        }
        if (piece > CHUNK_MAX)
            piece = CHUNK_MAX;
        char *dst = cache_reserve(c, o, piece);
        if (dst == NULL)
            return -EFBIG;
        memcpy(dst, s, piece);
        cache_commit(o, piece);
        s += piece;
        n -= piece;
    }
    return 0;
}

/* ---- reading ---- */

void cache_reader_init(struct cache_obj *o, struct cache_reader *rd, uint64_t pos)
{
    (void)o;
    rd->ck_ = NULL;
    rd->off_ = 0;
    rd->pos = pos;  /* the next byte to read */
    rd->skip_ = pos; /* bytes before it the chunk pointer has not passed */
}

/* Moves the chunk pointer over the skipped bytes that exist. True when it
 * is on rd->pos. */
static bool settle(struct cache_body *b, struct cache_reader *rd)
{
    if (rd->ck_ == NULL) {
        rd->ck_ = atomic_load_explicit(&b->first, memory_order_acquire);
        if (rd->ck_ == NULL)
            return false;
    }
    while (rd->skip_ > 0) {
        const struct cache_chunk *ck = rd->ck_;
        struct cache_chunk *next = atomic_load_explicit(&ck->next, memory_order_acquire);
        uint32_t len = atomic_load_explicit(&ck->len, memory_order_relaxed);
        size_t in = len - rd->off_;
        if (rd->skip_ < in || (next == NULL && rd->skip_ <= in)) {
            rd->off_ += (size_t)rd->skip_;
            rd->skip_ = 0;
            break;
        }
        if (next == NULL) { /* the rest is not written yet */
            rd->off_ += in;
            rd->skip_ -= in;
            return false;
        }
        rd->skip_ -= in;
        rd->ck_ = next;
        rd->off_ = 0;
    }
    return true;
}

int cache_read_iov(struct cache_obj *o, struct cache_reader *rd,
                   struct iovec *iov, int max, uint64_t limit)
{
    struct cache_body *b = o->body;
    uint64_t len = atomic_load_explicit(&b->len, memory_order_acquire);
    if (len <= rd->pos || !settle(b, rd))
        return 0;
    uint64_t avail = len - rd->pos;
    if (avail > limit)
        avail = limit;
    const struct cache_chunk *ck = rd->ck_;
    size_t off = rd->off_;
    int n = 0;
    while (avail > 0 && n < max && ck != NULL) {
        struct cache_chunk *next = atomic_load_explicit(&ck->next, memory_order_acquire);
        size_t clen = atomic_load_explicit(&ck->len, memory_order_relaxed);
        size_t piece = clen > off ? clen - off : 0;
        if (next == NULL || piece > avail)
            piece = (size_t)avail;
        if (piece > 0) {
            iov[n++] = (struct iovec){ (void *)(ck->data + off), piece };
            avail -= piece;
        }
        ck = next;
        off = 0;
    }
    return n;
}

void cache_read_skip(struct cache_obj *o, struct cache_reader *rd, size_t n)
{
    rd->pos += n;
    rd->skip_ += n;
    (void)settle(o->body, rd);
}
