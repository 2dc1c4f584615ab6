/*
 * The disk tier: one file per stored response, written by one thread.
 *
 * When a response is complete in memory, the disk thread writes it to
 * <dir>/tmp/<n>.tmp (a header with the key, the stored head and the
 * freshness metadata, a checksum of the header, then the body) and renames
 * it to <dir>/<hh>/<hash>-<vhash>. rename(2) is atomic: a reader of the
 * directory sees the old file, the new one, or none, never a part of one;
 * a process killed while writing leaves only a temporary file, and every
 * temporary file is deleted at start. With "sync" the file is also
 * fdatasync'd before the rename, which makes the same hold across a power
 * loss.
 *
 * At start the index is rebuilt from the files: each header is read and
 * checked (magic, checksum, size = header + body), and a file that fails
 * is deleted. The index (key, secondary key, tags and size per file) lives
 * in memory under one lock, which only memory-tier misses, the disk thread
 * and purges take; a memory hit never does. Its eviction is S3-FIFO too.
 *
 * A memory miss that finds a file inserts a busy object and queues a load:
 * the disk thread reads the file into it, and the requests waiting on the
 * busy object stream it as it is read, as from a fill from the origin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache_int.h"
#include "core/log.h"
#include "core/macros.h"

#define MAGIC "GHCACHE1"
#define MAX_HDR (1u << 20)
#define IO_PIECE 65536
#define NSTR 9

struct dhdr {
    char magic[8];
    uint32_t hdr_len; /* this struct and the strings after it */
    uint32_t nstr;
    uint64_t check;   /* cache_hash of the header with check = 0 */
    uint64_t body_len;
    uint64_t hash, vhash;
    int64_t date, expires, last_modified, age, req_time, resp_time;
    int64_t max_age, s_maxage, swr, sie;
    uint32_t cc_flags;
    int32_t status;
    uint8_t has_expires, has_etag, pad[6];
    uint32_t len[NSTR]; /* key, status line, fields, server, via, vary,
                           etag, tags, no-cache fields */
    uint32_t pad2;
};

struct dentry {
    struct s3_node node;
    struct dentry *hnext;
    uint64_t hash, vhash;
    uint32_t key_len, vary_len, tags_len;
    char data[]; /* key, vary, tags */
};

enum { J_STORE = 0, J_LOAD };

struct djob {
    struct djob *next;
    int kind;
    struct cache_obj *o;
    uint64_t vhash;
};

struct disk {
    char *path;
    bool sync;
    bool chown;
    uid_t uid;
    gid_t gid;
    int (*thread_init)(void *arg);
    void *thread_arg;
    bool broken; /* thread_init failed: no file I/O at all */
    unsigned slow_ms; /* GH_CACHE_SLOW_DISK: tests kill us mid-write */
    pthread_mutex_t lock; /* the index */
    struct dentry **tab;
    size_t mask, count;
    struct s3 s3;
    uint64_t writes, loads;
    pthread_mutex_t qlock; /* the job queue */
    pthread_cond_t qcond, qidle;
    struct djob *qhead, *qtail;
    bool busy, stop;
    pthread_t thread;
    bool started;
    uint64_t tmpseq;
};

/* ---- paths ---- */

static void file_path(const struct disk *d, uint64_t hash, uint64_t vhash,
                      char *out, size_t cap)
{
    snprintf(out, cap, "%s/%02x/%016" PRIx64 "-%016" PRIx64, d->path,
             (unsigned)(hash >> 56), hash, vhash);
}

/* ---- the index (disk lock held) ---- */

static struct dentry *dentry_new(uint64_t hash, uint64_t vhash, struct str key,
                                 struct str vary, struct str tags, uint64_t size)
{
    struct dentry *e = calloc(1, sizeof(*e) + key.len + vary.len + tags.len + 1);
    if (e == NULL)
        return NULL;
    e->hash = hash;
    e->vhash = vhash;
    e->key_len = (uint32_t)key.len;
    e->vary_len = (uint32_t)vary.len;
    e->tags_len = (uint32_t)tags.len;
    memcpy(e->data, key.p, key.len);
    if (vary.len)
        memcpy(e->data + key.len, vary.p, vary.len);
    if (tags.len)
        memcpy(e->data + key.len + vary.len, tags.p, tags.len);
    e->node.size = size;
    e->node.hash = hash ^ vhash;
    return e;
}

static struct str e_key(const struct dentry *e)
{
    return str_make(e->data, e->key_len);
}

static struct str e_vary(const struct dentry *e)
{
    return str_make(e->data + e->key_len, e->vary_len);
}

static struct str e_tags(const struct dentry *e)
{
    return str_make(e->data + e->key_len + e->vary_len, e->tags_len);
}

static void index_grow(struct disk *d)
{
    size_t n = (d->mask + 1) * 2;
    struct dentry **t = calloc(n, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i <= d->mask; i++) {
        struct dentry *e = d->tab[i];
        while (e != NULL) {
            struct dentry *next = e->hnext;
            e->hnext = t[e->hash & (n - 1)];
            t[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(d->tab);
    d->tab = t;
    d->mask = n - 1;
}

static void index_remove(struct disk *d, struct dentry *e, bool unlink_file)
{
    struct dentry **pp = &d->tab[e->hash & d->mask];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp != NULL) {
        *pp = e->hnext;
        d->count--;
    }
    s3_remove(&d->s3, &e->node);
    if (unlink_file) {
        char p[4096];
        file_path(d, e->hash, e->vhash, p, sizeof(p));
        unlink(p);
    }
    free(e);
}

/* Adds <e>, replacing an entry for the same file, and evicts to budget. */
static void index_add(struct disk *d, struct dentry *e)
{
    for (struct dentry *x = d->tab[e->hash & d->mask]; x; x = x->hnext) {
        if (x->hash == e->hash && x->vhash == e->vhash) {
            index_remove(d, x, false); /* the file was replaced by rename */
            break;
        }
    }
    if (d->count >= d->mask + 1)
        index_grow(d);
    e->hnext = d->tab[e->hash & d->mask];
    d->tab[e->hash & d->mask] = e;
    d->count++;
    s3_insert(&d->s3, &e->node);
    while (s3_used(&d->s3) > d->s3.cap) {
        struct s3_node *n = s3_evict(&d->s3);
        if (n == NULL)
            break;
        index_remove(d, container_of(n, struct dentry, node), true);
    }
}

bool cache__disk_find(struct cache *c, const struct cache_key *k,
                      cache_match_fn *match, void *arg, uint64_t *vhash)
{
    struct disk *d = c->disk;
    bool found = false;
    pthread_mutex_lock(&d->lock);
    for (struct dentry *e = d->tab[k->hash & d->mask]; e; e = e->hnext) {
        if (e->hash != k->hash || !str_eq(e_key(e), str_make(k->p, k->len)))
            continue;
        struct str v = e_vary(e);
        if (match(arg, v.p, v.len)) {
            s3_hit(&e->node);
            *vhash = e->vhash;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

size_t cache__disk_purge(struct cache *c, int how, struct str what, uint64_t hash)
{
    struct disk *d = c->disk;
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    size_t lo = how == PURGE_KEY ? (hash & d->mask) : 0;
    size_t hi = how == PURGE_KEY ? lo : d->mask;
    for (size_t i = lo; i <= hi; i++) {
        for (struct dentry *e = d->tab[i], *next; e; e = next) {
            next = e->hnext;
            struct str k = e_key(e);
            bool m = how == PURGE_KEY    ? e->hash == hash && str_eq(k, what)
                     : how == PURGE_PREFIX ? str_has_prefix(k, what)
                                           : cache__has_tag(e_tags(e), what);
            if (m) {
                index_remove(d, e, true);
                n++;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

void cache__disk_stats(struct cache *c, struct cache_stats *st)
{
    struct disk *d = c->disk;
    pthread_mutex_lock(&d->lock);
    st->disk_objects = d->count;
    st->disk_bytes = s3_used(&d->s3);
    st->disk_writes = d->writes;
    st->disk_loads = d->loads;
    pthread_mutex_unlock(&d->lock);
}

/* ---- files ---- */

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void slow(const struct disk *d)
{
    if (d->slow_ms == 0)
        return;
    struct timespec ts = { d->slow_ms / 1000, (long)(d->slow_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static char *build_header(const struct cache_obj *o, uint64_t body_len, size_t *len)
{
    struct str s[NSTR] = { str_make(o->key, o->key_len), o->status_line,
                           o->fields, o->server, o->via, o->vary, o->etag,
                           o->tags, o->ncf };
    size_t n = sizeof(struct dhdr);
    for (int i = 0; i < NSTR; i++)
        n += s[i].len;
    if (n > MAX_HDR)
        return NULL;
    char *buf = calloc(1, n);
    if (buf == NULL)
        return NULL;
    struct dhdr h = { 0 };
    memcpy(h.magic, MAGIC, 8);
    h.hdr_len = (uint32_t)n;
    h.nstr = NSTR;
    h.body_len = body_len;
    h.hash = o->hash;
    h.vhash = o->vhash;
    const struct cache_meta *m = &o->meta;
    h.date = m->date;
    h.expires = m->expires;
    h.last_modified = m->last_modified;
    h.age = m->age;
    h.req_time = m->req_time;
    h.resp_time = m->resp_time;
    h.max_age = m->cc.max_age;
    h.s_maxage = m->cc.s_maxage;
    h.swr = m->cc.swr;
    h.sie = m->cc.sie;
    h.cc_flags = m->cc.flags;
    h.status = o->status;
    h.has_expires = m->has_expires;
    h.has_etag = m->has_etag;
    size_t off = sizeof(h);
    for (int i = 0; i < NSTR; i++) {
        h.len[i] = (uint32_t)s[i].len;
        if (s[i].len)
            memcpy(buf + off, s[i].p, s[i].len);
        off += s[i].len;
    }
    memcpy(buf, &h, sizeof(h));
    uint64_t check = cache_hash(buf, n);
    memcpy(buf + offsetof(struct dhdr, check), &check, sizeof(check));
    *len = n;
    return buf;
}

/* Reads and checks the header of an open file; caller frees. */
static char *read_header(int fd, struct dhdr *h, uint64_t *fsize)
{
    struct stat st;
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size < sizeof(*h))
        return NULL;
    if (pread(fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h) ||
        memcmp(h->magic, MAGIC, 8) != 0 || h->nstr != NSTR ||
        h->hdr_len < sizeof(*h) || h->hdr_len > MAX_HDR ||
        (uint64_t)st.st_size != h->hdr_len + h->body_len)
        return NULL;
    uint64_t sum = 0;
    for (int i = 0; i < NSTR; i++)
        sum += h->len[i];
    if (sum != h->hdr_len - sizeof(*h))
        return NULL;
    char *buf = malloc(h->hdr_len);
    if (buf == NULL)
        return NULL;
    if (pread(fd, buf, h->hdr_len, 0) != (ssize_t)h->hdr_len)
        goto Bad;
    uint64_t check = h->check, zero = 0;
    memcpy(buf + offsetof(struct dhdr, check), &zero, sizeof(zero));
    if (cache_hash(buf, h->hdr_len) != check)
        goto Bad;
    *fsize = (uint64_t)st.st_size;
    return buf;
Bad:
    free(buf);
    return NULL;
}

/* The strings of a header buffer, in order. */
static void header_strs(const char *buf, const struct dhdr *h, struct str *s)
{
    size_t off = sizeof(*h);
    for (int i = 0; i < NSTR; i++) {
        s[i] = str_make(buf + off, h->len[i]);
        off += h->len[i];
    }
}

static void store_job(struct disk *d, struct cache_obj *o)
{
    uint64_t blen = 0;
    if (atomic_load(&o->dead) || cache_obj_state(o, &blen) != CB_COMPLETE)
        return;
    size_t hl;
    char *hdr = build_header(o, blen, &hl);
    if (hdr == NULL)
        return;
    char tmp[4096], fin[4096];
    snprintf(tmp, sizeof(tmp), "%s/tmp/%" PRIu64 ".tmp", d->path, ++d->tmpseq);
    file_path(d, o->hash, o->vhash, fin, sizeof(fin));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        log_warn("cache: %s: %s", tmp, strerror(errno));
        free(hdr);
        return;
    }
    int rc = write_all(fd, hdr, hl);
    free(hdr);
    slow(d);
    struct cache_reader rd;
    cache_reader_init(o, &rd, 0);
    uint64_t left = blen;
    while (rc == 0 && left > 0) {
        struct iovec iov[16];
        int n = cache_read_iov(o, &rd, iov, 16, left < IO_PIECE ? left : IO_PIECE);
        if (n == 0) {
            rc = -EIO;
            break;
        }
        size_t got = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            rc = write_all(fd, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        cache_read_skip(o, &rd, got);
        left -= got;
        slow(d);
    }
    if (rc == 0 && d->sync && fdatasync(fd) == -1)
        rc = -errno;
    if (close(fd) == -1 && rc == 0)
        rc = -errno;
    if (rc != 0) {
        log_warn("cache: writing %s: %s", tmp, strerror(-rc));
        unlink(tmp);
        return;
    }
    struct dentry *e = dentry_new(o->hash, o->vhash, str_make(o->key, o->key_len),
                                  o->vary, o->tags, hl + blen);
    pthread_mutex_lock(&d->lock);
    /* a purge after we started wins: the file must not appear */
    if (e == NULL || atomic_load(&o->dead) || rename(tmp, fin) == -1) {
        pthread_mutex_unlock(&d->lock);
        unlink(tmp);
        free(e);
        return;
    }
    index_add(d, e);
    d->writes++;
    pthread_mutex_unlock(&d->lock);
    atomic_store(&o->on_disk, true);
}

static void drop_entry(struct disk *d, uint64_t hash, uint64_t vhash)
{
    pthread_mutex_lock(&d->lock);
    for (struct dentry *e = d->tab[hash & d->mask]; e; e = e->hnext) {
        if (e->hash == hash && e->vhash == vhash) {
            index_remove(d, e, true);
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static void meta_from(struct cache_meta *m, const struct dhdr *h)
{
    memset(m, 0, sizeof(*m));
    m->status = h->status;
    m->date = h->date;
    m->expires = h->expires;
    m->has_expires = h->has_expires;
    m->last_modified = h->last_modified;
    m->age = h->age;
    m->req_time = h->req_time;
    m->resp_time = h->resp_time;
    cc_resp_init(&m->cc);
    m->cc.max_age = h->max_age;
    m->cc.s_maxage = h->s_maxage;
    m->cc.swr = h->swr;
    m->cc.sie = h->sie;
    m->cc.flags = h->cc_flags;
    m->has_etag = h->has_etag;
}

static void load_job(struct cache *c, struct disk *d, struct cache_obj *o,
                     uint64_t vhash)
{
    char p[4096];
    file_path(d, o->hash, vhash, p, sizeof(p));
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct dhdr h;
    uint64_t fsize = 0;
    char *buf = fd == -1 ? NULL : read_header(fd, &h, &fsize);
    struct str s[NSTR];
    if (buf != NULL)
        header_strs(buf, &h, s);
    if (buf == NULL || h.hash != o->hash || h.vhash != vhash ||
        !str_eq(s[0], str_make(o->key, o->key_len)) || h.body_len > c->max_object) {
        if (fd != -1)
            log_warn("cache: %s: not a valid cache file; removed", p);
        drop_entry(d, o->hash, vhash);
        goto Fail;
    }
    struct cache_head hd = { 0 };
    meta_from(&hd.meta, &h);
    hd.status = h.status;
    /* "HTTP/1.1 200 OK\r\n" -> the reason */
    struct str sl = s[1];
    hd.reason = sl.len > 15 ? str_make(sl.p + 13, sl.len - 15) : STR_NULL;
    hd.fields = s[2];
    hd.server = s[3];
    hd.via = s[4];
    hd.vary = s[5];
    hd.etag = s[6];
    hd.tags = s[7];
    hd.nocache_fields = s[8];
    hd.body_len = h.body_len;
    atomic_store(&o->on_disk, true);
    if (cache_publish(c, o, &hd) != 0) {
        free(buf);
        close(fd);
        return; /* publish abandoned it */
    }
    uint64_t off = h.hdr_len, left = h.body_len;
    while (left > 0) {
        size_t piece = left < IO_PIECE ? (size_t)left : IO_PIECE;
        char *dst = cache_reserve(c, o, piece);
        if (dst == NULL)
            goto Out;
        ssize_t r = pread(fd, dst, piece, (off_t)off);
        if (r <= 0) {
            log_warn("cache: %s: read failed", p);
            drop_entry(d, o->hash, vhash);
            cache_abort(c, o, false);
            goto Out;
        }
        cache_commit(o, (size_t)r);
        off += (uint64_t)r;
        left -= (uint64_t)r;
    }
    cache_complete(c, o);
    pthread_mutex_lock(&d->lock);
    d->loads++;
    pthread_mutex_unlock(&d->lock);
Out:
    free(buf);
    close(fd);
    return;
Fail:
    free(buf);
    if (fd != -1)
        close(fd);
    cache_abort(c, o, true);
}

/* ---- the thread ---- */

static void enqueue(struct disk *d, int kind, struct cache_obj *o, uint64_t vhash)
{
    struct djob *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        if (kind == J_LOAD)
            cache_abort(o->c, o, true);
        return;
    }
    j->kind = kind;
    j->o = cache_obj_ref(o);
    j->vhash = vhash;
    pthread_mutex_lock(&d->qlock);
    if (d->qtail != NULL)
        d->qtail->next = j;
    else
        d->qhead = j;
    d->qtail = j;
    pthread_cond_signal(&d->qcond);
    pthread_mutex_unlock(&d->qlock);
}

void cache__disk_load(struct cache *c, struct cache_obj *o, uint64_t vhash)
{
    enqueue(c->disk, J_LOAD, o, vhash);
}

void cache__disk_store(struct cache *c, struct cache_obj *o)
{
    enqueue(c->disk, J_STORE, o, 0);
}

static void *disk_main(void *arg)
{
    struct cache *c = arg;
    struct disk *d = c->disk;
    bool inited = false;
    log_set_thread_tag("cache-disk");
    pthread_mutex_lock(&d->qlock);
    for (;;) {
        while (d->qhead == NULL && !d->stop) {
            d->busy = false;
            pthread_cond_broadcast(&d->qidle);
            pthread_cond_wait(&d->qcond, &d->qlock);
        }
        struct djob *j = d->qhead;
        if (j == NULL)
            break;
        d->qhead = j->next;
        if (d->qhead == NULL)
            d->qtail = NULL;
        d->busy = true;
        bool stopping = d->stop;
        pthread_mutex_unlock(&d->qlock);
        if (!inited) {
            inited = true;
            if (d->thread_init != NULL && d->thread_init(d->thread_arg) != 0) {
                log_err("cache: the disk thread cannot enter its sandbox; the disk "
                        "tier is off");
                d->broken = true;
            }
        }
        if (j->kind == J_LOAD) {
            if (stopping || d->broken)
                cache_abort(c, j->o, true);
            else
                load_job(c, d, j->o, j->vhash);
        } else if (!d->broken) {
            store_job(d, j->o); /* also when stopping: keep what we have */
        }
        cache_obj_unref(j->o);
        free(j);
        pthread_mutex_lock(&d->qlock);
    }
    d->busy = false;
    pthread_cond_broadcast(&d->qidle);
    pthread_mutex_unlock(&d->qlock);
    return NULL;
}

void cache__disk_flush(struct cache *c)
{
    struct disk *d = c->disk;
    pthread_mutex_lock(&d->qlock);
    while (d->qhead != NULL || d->busy)
        pthread_cond_wait(&d->qidle, &d->qlock);
    pthread_mutex_unlock(&d->qlock);
}

/* ---- start ---- */

/* Gives <path> to the user the process becomes (started as root). */
static void give(const struct disk *d, const char *path)
{
    if (d->chown && chown(path, d->uid, d->gid) == -1)
        log_warn("cache: chown %s: %s", path, strerror(errno));
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) == -1 && errno != EEXIST)
            return -errno;
        buf[i] = saved;
    }
    return 0;
}

static void clean_tmp(const struct disk *d)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/tmp", d->path);
    DIR *dir = opendir(p);
    if (dir == NULL)
        return;
    struct dirent *de;
    unsigned n = 0;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char f[4096 + 256];
        snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
        if (unlink(f) == 0)
            n++;
    }
    closedir(dir);
    if (n > 0)
        log_info("cache: removed %u unfinished file(s) from %s", n, p);
}

static void scan_file(struct disk *d, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return;
    struct dhdr h;
    uint64_t fsize = 0;
    char *buf = read_header(fd, &h, &fsize);
    close(fd);
    if (buf == NULL) {
        log_warn("cache: %s: not a valid cache file; removed", path);
        unlink(path);
        return;
    }
    struct str s[NSTR];
    header_strs(buf, &h, s);
    char want[4096];
    file_path(d, h.hash, h.vhash, want, sizeof(want));
    struct dentry *e = NULL;
    if (strcmp(want, path) == 0 && cache_hash(s[0].p, s[0].len) == h.hash) {
        e = dentry_new(h.hash, h.vhash, s[0], s[5], s[7], fsize);
        give(d, path);
    }
    free(buf);
    if (e == NULL) {
        unlink(path);
        return;
    }
    index_add(d, e);
}

static int rebuild(struct disk *d, char *err, size_t errlen)
{
    for (unsigned i = 0; i < 256; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%02x", d->path, i);
        if (mkdir(p, 0700) == -1 && errno != EEXIST) {
            snprintf(err, errlen, "cache: disk path %s: %s", p, strerror(errno));
            return -1;
        }
        give(d, p);
        DIR *dir = opendir(p);
        if (dir == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char f[4096 + 256];
            snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
            scan_file(d, f);
        }
        closedir(dir);
    }
    return 0;
}

int cache__disk_open(struct cache *c, const struct cache_params *p, char *err,
                     size_t errlen)
{
    struct disk *d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto Oom;
    c->disk = d;
    d->path = strdup(p->disk_path);
    if (d->path == NULL)
        goto Oom;
    size_t n = strlen(d->path);
    while (n > 1 && d->path[n - 1] == '/')
        d->path[--n] = '\0';
    d->sync = p->disk_sync;
    d->chown = p->chown;
    d->uid = p->uid;
    d->gid = p->gid;
    d->thread_init = p->thread_init;
    d->thread_arg = p->thread_arg;
    const char *slow_env = getenv("GH_CACHE_SLOW_DISK");
    if (slow_env != NULL) {
        unsigned v = 0;
        for (const char *q = slow_env; *q >= '0' && *q <= '9' && v < 100000; q++)
            v = v * 10 + (unsigned)(*q - '0');
        d->slow_ms = v;
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->qlock, NULL);
    pthread_cond_init(&d->qcond, NULL);
    pthread_cond_init(&d->qidle, NULL);
    d->mask = 1023;
    d->tab = calloc(d->mask + 1, sizeof(*d->tab));
    if (d->tab == NULL || s3_init(&d->s3, p->disk_bytes, (size_t)(p->disk_bytes / 16384)) != 0)
        goto Oom;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/tmp", d->path);
    int rc = mkdir_p(tmp);
    if (rc != 0) {
        snprintf(err, errlen, "cache: disk path %s: %s", d->path, strerror(-rc));
        return -1;
    }
    give(d, d->path);
    give(d, tmp);
    clean_tmp(d);
    if (rebuild(d, err, errlen) != 0)
        return -1;
    if (d->count > 0)
        log_info("cache: %zu object(s) on disk in %s", d->count, d->path);
    if (pthread_create(&d->thread, NULL, disk_main, c) != 0) {
        snprintf(err, errlen, "cache: cannot start the disk thread");
        return -1;
    }
    d->started = true;
    return 0;
Oom:
    snprintf(err, errlen, "cache: out of memory");
    return -1;
}

void cache__disk_close(struct cache *c)
{
    struct disk *d = c->disk;
    if (d == NULL)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->qlock);
        d->stop = true;
        pthread_cond_signal(&d->qcond);
        pthread_mutex_unlock(&d->qlock);
        pthread_join(d->thread, NULL);
    }
    for (size_t i = 0; d->tab != NULL && i <= d->mask; i++) {
        struct dentry *e = d->tab[i];
        while (e != NULL) {
            struct dentry *next = e->hnext;
            free(e);
            e = next;
        }
    }
    free(d->tab);
    s3_fini(&d->s3);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->qlock);
    pthread_cond_destroy(&d->qcond);
    pthread_cond_destroy(&d->qidle);
    free(d->path);
    free(d);
    c->disk = NULL;
}
