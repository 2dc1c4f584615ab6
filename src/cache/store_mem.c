/*
 * The memory tier: objects, their bodies, and the sharded index.
 *
 * The index is split into up to 16 shards by the top bits of the key hash;
 * each shard has its own mutex, hash table and S3-FIFO queues, and gets an
 * equal part of the byte budget. A lookup takes one shard lock for a few
 * hundred nanoseconds (walk a chain, bump a counter, take a reference), so
 * workers contend only when they hit the same shard at the same instant.
 * Everything after the lookup (reading the head, writing the body out)
 * needs no lock: the head is immutable once published, and body bytes up to
 * the committed length never change.
 *
 * Bodies (chunk chains a reader can follow while they are written) are in
 * body.c.
 *
 * The index holds one reference on each listed object; every lookup hands
 * out another. An evicted or replaced object leaves the index at once and
 * is freed when its last reader lets go.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/macros.h"

/* ---- objects ---- */

struct cache_obj *cache__obj_alloc(struct cache *c, const char *key, size_t len,
                                   uint64_t hash)
{
    struct cache_obj *o = calloc(1, sizeof(*o) + len + 1);
    if (o == NULL)
        return NULL;
    o->body = cache__body_new();
    if (o->body == NULL) {
        free(o);
        return NULL;
    }
    o->c = c;
    atomic_init(&o->refs, 1);
    atomic_init(&o->ready, false);
    atomic_init(&o->revalidating, false);
    atomic_init(&o->dead, false);
    atomic_init(&o->on_disk, false);
    o->hash = hash;
    o->shard = (uint8_t)((hash >> 56) & (c->nshards - 1));
    o->key_len = (uint32_t)len;
    memcpy(o->key, key, len);
    o->body_len = CACHE_LEN_UNKNOWN;
    return o;
}

struct cache_obj *cache_obj_new(struct cache *c, const struct cache_key *k)
{
    return cache__obj_alloc(c, k->p, k->len, k->hash);
}

struct cache_obj *cache_obj_ref(struct cache_obj *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}

void cache_obj_unref(struct cache_obj *o)
{
    if (o == NULL || atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    cache__body_unref(o->body);
    free(o->blob);
    free(o);
}

bool cache_obj_ready(const struct cache_obj *o)
{
    return atomic_load_explicit(&o->ready, memory_order_acquire);
}

enum cache_bstate cache_obj_state(const struct cache_obj *o, uint64_t *len)
{
    struct cache_body *b = o->body;
    /* state first: a final state implies every byte is committed */
    enum cache_bstate st = atomic_load_explicit(&b->state, memory_order_acquire);
    if (len != NULL)
        *len = atomic_load_explicit(&b->len, memory_order_acquire);
    return st;
}

bool cache_obj_claim_revalidate(struct cache_obj *o)
{
    bool f = false;
    return atomic_compare_exchange_strong(&o->revalidating, &f, true);
}

void cache_obj_release_revalidate(struct cache_obj *o)
{
    atomic_store(&o->revalidating, false);
}

void cache_obj_view(const struct cache_obj *o, struct cache_view *v)
{
    v->meta = &o->meta;
    v->status = o->status;
    v->status_line = o->status_line;
    v->fields = o->fields;
    v->server = o->server;
    v->via = o->via;
    v->vary = o->vary;
    v->etag = o->etag;
    v->tags = o->tags;
    v->nocache_fields = o->ncf;
    v->key = str_make(o->key, o->key_len);
    v->body_len = o->body_len;
}

static char *put(char *p, struct str *dst, struct str s)
{
    if (s.len > 0)
        memcpy(p, s.p, s.len);
    *dst = str_make(p, s.len);
    p[s.len] = '\0';
    return p + s.len + 1;
}

int cache__set_head(struct cache_obj *o, const struct cache_head *h)
{
    char sl[64];
    const char *reason = h->reason.len ? "" : h1_reason(h->status);
    struct str rs = h->reason.len ? h->reason : str_cstr(reason);
    if (rs.len > 32)
        rs.len = 32;
    int n = snprintf(sl, sizeof(sl), "HTTP/1.1 %03d %.*s\r\n", h->status,
                     (int)rs.len, rs.p);
    if (n < 0 || (size_t)n >= sizeof(sl))
        return -ENOMEM;
    size_t need = (size_t)n + h->fields.len + h->server.len + h->via.len +
                  h->vary.len + h->etag.len + h->tags.len +
                  h->nocache_fields.len + 8;
    char *blob = malloc(need);
    if (blob == NULL)
        return -ENOMEM;
    char *p = blob;
    p = put(p, &o->status_line, str_make(sl, (size_t)n));
    p = put(p, &o->fields, h->fields);
    p = put(p, &o->server, h->server);
    p = put(p, &o->via, h->via);
    p = put(p, &o->vary, h->vary);
    p = put(p, &o->etag, h->etag);
    p = put(p, &o->tags, h->tags);
    put(p, &o->ncf, h->nocache_fields);
    free(o->blob);
    o->blob = blob;
    o->meta = h->meta;
    o->meta.cc.no_cache_fields = STR_NULL; /* views into a gone head */
    o->meta.cc.private_fields = STR_NULL;
    o->status = h->status;
    o->body_len = h->body_len;
    o->vhash = o->vary.len ? cache_hash(o->vary.p, o->vary.len) : 0;
    return 0;
}

static uint64_t charge_of(const struct cache_obj *o, uint64_t body)
{
    return sizeof(*o) + o->key_len + sizeof(struct cache_body) +
           o->status_line.len + o->fields.len + o->server.len + o->via.len +
           o->vary.len + o->etag.len + o->tags.len + o->ncf.len + 8 + body;
}

/* ---- the index (shard lock held) ---- */

static bool same_key(const struct cache_obj *o, uint64_t hash, const char *k,
                     size_t len)
{
    return o->hash == hash && o->key_len == len && memcmp(o->key, k, len) == 0;
}

static int grow(struct shard *sh)
{
    size_t n = (sh->mask + 1) * 2;
    struct cache_obj **t = calloc(n, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    for (size_t i = 0; i <= sh->mask; i++) {
        struct cache_obj *o = sh->tab[i];
        while (o != NULL) {
            struct cache_obj *next = o->hnext;
            /* keep the order of each chain (most recent first) */
            struct cache_obj **pp = &t[o->hash & (n - 1)];
            while (*pp != NULL)
                pp = &(*pp)->hnext;
            o->hnext = NULL;
            *pp = o;
            o = next;
        }
    }
    free(sh->tab);
    sh->tab = t;
    sh->mask = n - 1;
    return 0;
}

static void link_obj(struct shard *sh, struct cache_obj *o)
{
    if (sh->count >= sh->mask + 1)
        (void)grow(sh); /* a longer chain is fine if memory is short */
    struct cache_obj **head = &sh->tab[o->hash & sh->mask];
    o->hnext = *head;
    *head = o;
    o->listed = true;
    sh->count++;
    cache_obj_ref(o);
}

/* Takes <o> out of the index; the index's reference goes to *<drop>. */
static void unlink_obj(struct shard *sh, struct cache_obj *o,
                       struct cache_obj ***drop)
{
    struct cache_obj **pp = &sh->tab[o->hash & sh->mask];
    while (*pp != NULL && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp == NULL)
        return;
    *pp = o->hnext;
    o->hnext = NULL;
    o->listed = false;
    sh->count--;
    s3_remove(&sh->s3, &o->node);
    **drop = o;
    (*drop)++;
}

/* Evicts until the shard is within its budget; the index references of the
 * victims go to *<drop> (room for <max>). */
static void evict(struct shard *sh, struct cache_obj ***drop, struct cache_obj **end)
{
    while (s3_used(&sh->s3) > sh->s3.cap && *drop < end) {
        struct s3_node *n = s3_evict(&sh->s3);
        if (n == NULL)
            break;
        struct cache_obj *o = container_of(n, struct cache_obj, node);
        unlink_obj(sh, o, drop);
        sh->evictions++;
    }
}

#define DROP_MAX 64

static void drop_all(struct cache_obj **v, struct cache_obj **end)
{
    for (; v < end; v++)
        cache_obj_unref(*v);
}

/* Secondary keys name the same fields (same Vary). */
static bool same_names(struct str a, struct str b)
{
    size_t i = 0, j = 0;
    for (;;) {
        bool ea = i >= a.len, eb = j >= b.len;
        if (ea || eb)
            return ea && eb;
        size_t na = strnlen(a.p + i, a.len - i), nb = strnlen(b.p + j, b.len - j);
        if (na != nb || memcmp(a.p + i, b.p + j, na) != 0)
            return false;
        i += na + 1;
        i += strnlen(a.p + i, a.len > i ? a.len - i : 0) + 1;
        j += nb + 1;
        j += strnlen(b.p + j, b.len > j ? b.len - j : 0) + 1;
    }
}

void cache_lookup(struct cache *c, const struct cache_key *k,
                  cache_match_fn *match, void *arg, unsigned flags,
                  struct cache_found *out)
{
    memset(out, 0, sizeof(*out));
    struct shard *sh = shard_of(c, k->hash);
    pthread_mutex_lock(&sh->lock);
    for (struct cache_obj *o = sh->tab[k->hash & sh->mask]; o; o = o->hnext) {
        if (!same_key(o, k->hash, k->p, k->len))
            continue;
        if (!atomic_load_explicit(&o->ready, memory_order_acquire)) {
            if (out->busy == NULL)
                out->busy = o;
            continue;
        }
        out->uri_seen = true;
        if (out->hit == NULL && match(arg, o->vary.p, o->vary.len)) {
            out->hit = o;
            s3_hit(&o->node);
        }
    }
    if (out->hit != NULL)
        cache_obj_ref(out->hit);
    if (out->busy != NULL) {
        cache_obj_ref(out->busy);
    } else if (out->hit == NULL) {
        uint64_t vh = 0;
        bool disk = c->disk != NULL && cache__disk_find(c, k, match, arg, &vh);
        if (disk || (flags & CL_COLLAPSE)) {
            struct cache_obj *o = cache__obj_alloc(c, k->p, k->len, k->hash);
            if (o != NULL) {
                link_obj(sh, o);
                out->busy = o;
                out->mine = !disk;
                out->from_disk = disk;
                if (disk)
                    cache__disk_load(c, o, vh);
            }
        }
    }
    pthread_mutex_unlock(&sh->lock);
}

/* ---- writing ---- */

int cache_publish(struct cache *c, struct cache_obj *o, const struct cache_head *h)
{
    int rc = 0;
    if (h->body_len != CACHE_LEN_UNKNOWN && h->body_len > c->max_object)
        rc = -EFBIG;
    if (rc == 0)
        rc = cache__set_head(o, h);
    if (rc != 0) {
        cache_abort(c, o, rc == -EFBIG);
        return rc;
    }
    struct shard *sh = &c->shard[o->shard];
    struct cache_obj *dropv[DROP_MAX], **drop = dropv;
    pthread_mutex_lock(&sh->lock);
    if (!o->listed && !atomic_load(&o->dead))
        link_obj(sh, o);
    /* replaced: older versions of this variant, and variants of an older
     * Vary (the origin changed which fields select) */
    for (struct cache_obj *x = sh->tab[o->hash & sh->mask], *next; x; x = next) {
        next = x->hnext;
        if (x == o || !same_key(x, o->hash, o->key, o->key_len) ||
            !atomic_load_explicit(&x->ready, memory_order_relaxed))
            continue;
        bool same_variant = x->vhash == o->vhash && str_eq(x->vary, o->vary);
        if ((same_variant || !same_names(x->vary, o->vary)) && drop < dropv + DROP_MAX) {
            atomic_store(&x->dead, true);
            unlink_obj(sh, x, &drop);
        }
    }
    o->node.hash = o->hash ^ o->vhash;
    o->node.size = o->charge =
        charge_of(o, h->body_len == CACHE_LEN_UNKNOWN ? 0 : h->body_len);
    if (o->listed)
        s3_insert(&sh->s3, &o->node);
    evict(sh, &drop, dropv + DROP_MAX);
    pthread_mutex_unlock(&sh->lock);
    drop_all(dropv, drop);

    struct cache_body *b = o->body;
    pthread_mutex_lock(&b->lock);
    atomic_store_explicit(&o->ready, true, memory_order_release);
    cache__wake_locked(b);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

struct cache_obj *cache_update(struct cache *c, struct cache_obj *old,
                               const struct cache_head *h)
{
    struct cache_obj *o = cache__obj_alloc(c, old->key, old->key_len, old->hash);
    if (o == NULL)
        return NULL;
    cache__body_unref(o->body);
    atomic_fetch_add(&old->body->refs, 1);
    o->body = old->body;
    struct cache_head nh = *h;
    nh.body_len = old->body_len;
    if (cache__set_head(o, &nh) != 0) {
        cache_obj_unref(o);
        return NULL;
    }
    struct shard *sh = &c->shard[o->shard];
    struct cache_obj *dropv[DROP_MAX], **drop = dropv;
    pthread_mutex_lock(&sh->lock);
    bool purged = atomic_load(&old->dead); /* purged or replaced meanwhile */
    if (old->listed) {
        atomic_store(&old->dead, true);
        unlink_obj(sh, old, &drop);
    }
    uint64_t blen = 0;
    enum cache_bstate st = cache_obj_state(old, &blen);
    o->node.hash = o->hash ^ o->vhash;
    o->node.size = o->charge = charge_of(o, atomic_load(&o->body->alloc));
    if (!purged) {
        link_obj(sh, o);
        s3_insert(&sh->s3, &o->node);
    }
    evict(sh, &drop, dropv + DROP_MAX);
    bool listed = o->listed;
    pthread_mutex_unlock(&sh->lock);
    drop_all(dropv, drop);
    atomic_store_explicit(&o->ready, true, memory_order_release);
    if (st == CB_COMPLETE && c->disk != NULL && listed)
        cache__disk_store(c, o);
    return o;
}

static void set_state(struct cache_obj *o, enum cache_bstate st)
{
    struct cache_body *b = o->body;
    pthread_mutex_lock(&b->lock);
    int cur = atomic_load_explicit(&b->state, memory_order_relaxed);
    if (cur == CB_FILLING)
        atomic_store_explicit(&b->state, st, memory_order_release);
    cache__wake_locked(b);
    pthread_mutex_unlock(&b->lock);
}

void cache_complete(struct cache *c, struct cache_obj *o)
{
    set_state(o, CB_COMPLETE);
    struct shard *sh = &c->shard[o->shard];
    struct cache_obj *dropv[DROP_MAX], **drop = dropv;
    bool listed;
    pthread_mutex_lock(&sh->lock);
    listed = o->listed;
    if (listed) {
        o->charge = charge_of(o, atomic_load(&o->body->alloc));
        s3_resize(&sh->s3, &o->node, o->charge);
        evict(sh, &drop, dropv + DROP_MAX);
    }
    pthread_mutex_unlock(&sh->lock);
    drop_all(dropv, drop);
    if (listed && c->disk != NULL && !atomic_load(&o->on_disk))
        cache__disk_store(c, o);
}

void cache_abort(struct cache *c, struct cache_obj *o, bool pass)
{
    struct shard *sh = &c->shard[o->shard];
    struct cache_obj *dropv[1], **drop = dropv;
    pthread_mutex_lock(&sh->lock);
    if (o->listed) {
        atomic_store(&o->dead, true);
        unlink_obj(sh, o, &drop);
    }
    pthread_mutex_unlock(&sh->lock);
    set_state(o, pass ? CB_PASS : CB_FAILED);
    drop_all(dropv, drop);
}

/* ---- purge ---- */

void cache_obj_unlist(struct cache *c, struct cache_obj *o)
{
    struct shard *sh = &c->shard[o->shard];
    struct cache_obj *dropv[1], **drop = dropv;
    pthread_mutex_lock(&sh->lock);
    if (o->listed) {
        atomic_store(&o->dead, true);
        unlink_obj(sh, o, &drop);
    }
    pthread_mutex_unlock(&sh->lock);
    drop_all(dropv, drop);
    if (c->disk != NULL && atomic_load(&o->on_disk)) {
        struct cache_key k;
        cache_key_set(&k, o->key, o->key_len);
        cache__disk_purge(c, PURGE_KEY, str_make(k.p, k.len), k.hash);
    }
}

bool cache__has_tag(struct str tags, struct str tag)
{
    size_t i = 0;
    while (i < tags.len) {
        size_t n = strnlen(tags.p + i, tags.len - i);
        if (n == tag.len && memcmp(tags.p + i, tag.p, n) == 0)
            return true;
        i += n + 1;
    }
    return false;
}

static bool purge_match(const struct cache_obj *o, int how, struct str what,
                        uint64_t hash)
{
    switch (how) {
    case PURGE_KEY:
        return same_key(o, hash, what.p, what.len);
    case PURGE_PREFIX:
        return o->key_len >= what.len && memcmp(o->key, what.p, what.len) == 0;
    default:
        return atomic_load_explicit(&o->ready, memory_order_acquire) &&
               cache__has_tag(o->tags, what);
    }
}

static size_t purge(struct cache *c, int how, struct str what, uint64_t hash)
{
    size_t n = 0;
    for (unsigned s = 0; s < c->nshards; s++) {
        struct shard *sh = &c->shard[s];
        if (how == PURGE_KEY && sh != shard_of(c, hash))
            continue;
        for (;;) {
            struct cache_obj *dropv[DROP_MAX], **drop = dropv;
            pthread_mutex_lock(&sh->lock);
            size_t lo = how == PURGE_KEY ? (hash & sh->mask) : 0;
            size_t hi = how == PURGE_KEY ? lo : sh->mask;
            for (size_t i = lo; i <= hi && drop < dropv + DROP_MAX; i++) {
                for (struct cache_obj *o = sh->tab[i], *next; o; o = next) {
                    next = o->hnext;
                    if (!purge_match(o, how, what, hash) || drop >= dropv + DROP_MAX)
                        continue;
                    bool busy = !atomic_load_explicit(&o->ready, memory_order_acquire);
                    atomic_store(&o->dead, true);
                    unlink_obj(sh, o, &drop);
                    if (!busy)
                        n++;
                }
            }
            pthread_mutex_unlock(&sh->lock);
            bool full = drop >= dropv + DROP_MAX;
            drop_all(dropv, drop);
            if (!full)
                break;
        }
    }
    if (c->disk != NULL)
        n += cache__disk_purge(c, how, what, hash);
    return n;
}

size_t cache_purge_key(struct cache *c, const struct cache_key *k)
{
    return purge(c, PURGE_KEY, str_make(k->p, k->len), k->hash);
}

size_t cache_purge_prefix(struct cache *c, struct str prefix)
{
    return purge(c, PURGE_PREFIX, prefix, 0);
}

size_t cache_purge_tag(struct cache *c, struct str tag)
{
    return purge(c, PURGE_TAG, tag, 0);
}

/* ---- life cycle ---- */

struct cache *cache_new(const struct cache_params *p, char *err, size_t errlen)
{
    struct cache *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "cache: out of memory");
        return NULL;
    }
    unsigned n = cache_shards(p->mem_bytes);
    c->nshards = n;
    c->max_object = p->max_object;
    for (unsigned i = 0; i < n; i++) {
        struct shard *sh = &c->shard[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->mask = 255;
        sh->tab = calloc(sh->mask + 1, sizeof(*sh->tab));
        uint64_t cap = p->mem_bytes / n;
        if (sh->tab == NULL || s3_init(&sh->s3, cap, (size_t)(cap / 2048)) != 0) {
            snprintf(err, errlen, "cache: out of memory");
            c->nshards = i + 1;
            cache_free(c);
            return NULL;
        }
    }
    if (p->disk_path != NULL && cache__disk_open(c, p, err, errlen) != 0) {
        cache_free(c);
        return NULL;
    }
    return c;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    cache__disk_close(c);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->shard[i];
        for (size_t j = 0; sh->tab != NULL && j <= sh->mask; j++) {
            struct cache_obj *o = sh->tab[j];
            while (o != NULL) {
                struct cache_obj *next = o->hnext;
                o->listed = false;
                cache_obj_unref(o);
                o = next;
            }
        }
        free(sh->tab);
        s3_fini(&sh->s3);
        pthread_mutex_destroy(&sh->lock);
    }
    free(c);
}

void cache_stats(struct cache *c, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->shard[i];
        pthread_mutex_lock(&sh->lock);
        st->objects += sh->s3.small.count + sh->s3.main.count;
        st->bytes += s3_used(&sh->s3);
        st->evictions += sh->evictions;
        pthread_mutex_unlock(&sh->lock);
    }
    if (c->disk != NULL)
        cache__disk_stats(c, st);
}

void cache_flush(struct cache *c)
{
    if (c->disk != NULL)
        cache__disk_flush(c);
}
