/*
 * The open-file cache of static routes, one per worker (no locks).
 *
 * Path safety is the kernel's: every open is openat2(2) relative to the
 * route's root directory with RESOLVE_BENEATH (no "..", no absolute path, no
 * symlink may take the walk out of the root) and RESOLVE_NO_MAGICLINKS
 * (no /proc/self/fd tricks). The static handler has already refused "." and
 * ".." segments and NUL bytes, so this is the second wall, and the one that
 * also covers symlinks planted inside the root.
 *
 * A cache belongs to a configuration generation (struct gen): entries are
 * keyed by the route's cfg_static, which lives as long as the generation's
 * snapshot, and a reload starts a fresh cache with the new generation.
 *
 * The cache is set-associative: a path hashes to a set of WAYS slots; a new
 * entry takes an empty slot or the least recently used one. An entry is
 * trusted for cs->cache_valid after it was opened or checked; after that the
 * next request opens the path again and compares device, inode, size and
 * mtime: the same file keeps its entry (and its validators), a replaced
 * file gets a new one. A transaction holds a reference while it sends, so
 * an entry evicted or replaced meanwhile is closed only when the last
 * sender is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/macros.h"
#include "http/h1.h"
#include "proxy/fcache.h"
#include "proxy/mime.h"
#include "proxy/proxy_int.h"

#define WAYS 4

struct froot {
    const struct cfg_static *cs;
    int fd;
};

struct fcache {
    struct fentry **slots; /* nsets * WAYS */
    unsigned nsets;
    struct froot *roots;
    size_t nroots;
};

static uint64_t hash_path(const struct cfg_static *cs, const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)cs;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int root_fd(struct fcache *fc, const struct cfg_static *cs)
{
    for (size_t i = 0; i < fc->nroots; i++)
        if (fc->roots[i].cs == cs)
            return fc->roots[i].fd;
    int fd = open(cs->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    struct froot *r = realloc(fc->roots, (fc->nroots + 1) * sizeof(*r));
    if (r == NULL) {
        close(fd);
        return -ENOMEM;
    }
    fc->roots = r;
    r[fc->nroots++] = (struct froot){ cs, fd };
    return fd;
}

static int open_beneath(int dirfd, const struct cfg_static *cs, const char *rel)
{
    struct open_how how = {
        /* O_NONBLOCK: a FIFO planted in the root must not block a worker */
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve = RESOLVE_NO_MAGICLINKS |
                   (cs->outside_symlinks ? 0 : RESOLVE_BENEATH),
    };
    for (;;) {
        long fd = syscall(SYS_openat2, dirfd, rel[0] ? rel : ".", &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        int err = errno;
        if (err == EINTR || err == EAGAIN) /* EAGAIN: a rename raced us */
            continue;
        return -err;
    }
}

static void set_validators(struct fvar *v, const struct stat *st)
{
    v->size = (uint64_t)st->st_size;
    int n = snprintf(v->etag, sizeof(v->etag), "\"%llx-%llx\"",
                     (unsigned long long)st->st_mtim.tv_sec,
                     (unsigned long long)st->st_size);
    v->etag_len = (uint8_t)MAX(n, 0);
}

/* Opens "<path>.<suffix>" as a sibling; absent or not a regular file is
 * fd -1. */
static void open_sibling(int dirfd, struct fentry *e, const char *suffix,
                         struct fvar *v)
{
    v->fd = -1;
    char p[PATH_MAX];
    int n = snprintf(p, sizeof(p), "%.*s%s", (int)e->plen, e->path, suffix);
    if (n < 0 || (size_t)n >= sizeof(p))
        return;
    int fd = open_beneath(dirfd, e->cs, p);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    v->fd = fd;
    set_validators(v, &st);
}

static void entry_free(struct fentry *e)
{
    struct fvar *vs[] = { &e->id, &e->gz, &e->br };
    for (size_t i = 0; i < ARRAY_LEN(vs); i++)
        if (vs[i]->fd >= 0)
            close(vs[i]->fd);
    free(e->path);
    free(e);
}

void fcache_unref(struct fentry *e)
{
    ASSERT(e->refs > 0);
    if (--e->refs == 0)
        entry_free(e);
}

/* A new entry for the open file <fd> (takes ownership of fd). */
static struct fentry *entry_new(int dirfd, const struct cfg_static *cs,
                                const char *rel, size_t len, int fd,
                                const struct stat *st, int *err)
{
    struct fentry *e = calloc(1, sizeof(*e));
    char *path = malloc(len + 1);
    if (e == NULL || path == NULL) {
        free(e);
        free(path);
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    memcpy(path, rel, len);
    path[len] = '\0';
    e->refs = 1;
    e->cs = cs;
    e->path = path;
    e->plen = len;
    e->id.fd = fd;
    e->gz.fd = e->br.fd = -1;
    e->is_dir = S_ISDIR(st->st_mode);
    e->regular = S_ISREG(st->st_mode);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->mtim = st->st_mtim;
    e->mtime = st->st_mtim.tv_sec;
    e->lastmod_len = (uint8_t)h1_fmt_date(e->lastmod, e->mtime);
    e->mime = mime_type(str_make(path, len));
    set_validators(&e->id, st);
    if (e->regular && cs->precompressed) {
        open_sibling(dirfd, e, ".gz", &e->gz);
        open_sibling(dirfd, e, ".br", &e->br);
    }
    return e;
}

static void unlink_slot(struct fentry **slot)
{
    struct fentry *e = *slot;
    *slot = NULL;
    e->in_table = false;
    fcache_unref(e);
}

static struct fcache *cache_of(struct gen *g, const struct cfg_static *cs)
{
    if (g->fcache != NULL)
        return g->fcache;
    const struct cfg *cfg = g->cfg;
    struct fcache *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    unsigned want = 1024;
    for (size_t i = 0; i < cfg->nlisteners; i++) /* the largest route */
        for (size_t j = 0; j < cfg->listeners[i].nsites; j++)
            for (size_t k = 0; k < cfg->listeners[i].sites[j].nroutes; k++) {
                const struct cfg_route *r = &cfg->listeners[i].sites[j].routes[k];
                if (r->stat != NULL && r->stat->cache_entries > want)
                    want = r->stat->cache_entries;
            }
    (void)cs;
    unsigned sets = 1;
    while (sets * WAYS < want)
        sets <<= 1;
    fc->slots = calloc((size_t)sets * WAYS, sizeof(*fc->slots));
    if (fc->slots == NULL) {
        free(fc);
        return NULL;
    }
    fc->nsets = sets;
    g->fcache = fc;
    return fc;
}

int fcache_open(struct gen *g, const struct cfg_static *cs, const char *rel,
                size_t len, struct fentry **out)
{
    struct fcache *fc = cache_of(g, cs);
    if (fc == NULL)
        return -ENOMEM;
    int dirfd = root_fd(fc, cs);
    if (dirfd < 0)
        return dirfd;
    int64_t now = loop_now(g->w->loop);
    uint64_t h = hash_path(cs, rel, len);
    struct fentry **set = &fc->slots[(h & (fc->nsets - 1)) * WAYS];
    struct fentry **slot = NULL;
    for (int i = 0; i < WAYS; i++) {
        struct fentry *e = set[i];
        if (e != NULL && e->hash == h && e->cs == cs && e->plen == len &&
            memcmp(e->path, rel, len) == 0) {
            slot = &set[i];
            break;
        }
    }
    if (slot != NULL && now - (*slot)->checked < cs->cache_valid) {
        struct fentry *e = *slot;
        e->used = now;
        e->refs++;
        *out = e;
        return 0;
    }
    char relz[PATH_MAX];
    if (len >= sizeof(relz))
        return -ENAMETOOLONG;
    memcpy(relz, rel, len);
    relz[len] = '\0';
    int fd = open_beneath(dirfd, cs, relz);
    if (fd < 0) {
        if (slot != NULL)
            unlink_slot(slot);
        return fd;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (slot != NULL) {
        struct fentry *e = *slot;
        /* With precompressed siblings, a new entry looks for them again
         * (a .gz added next to an unchanged file is found). */
        if (!cs->precompressed && e->dev == st.st_dev && e->ino == st.st_ino &&
            e->id.size == (uint64_t)st.st_size && e->mtim.tv_sec == st.st_mtim.tv_sec &&
            e->mtim.tv_nsec == st.st_mtim.tv_nsec) {
            close(fd); /* unchanged: keep the entry (and its siblings) */
            e->checked = e->used = now;
            e->refs++;
            *out = e;
            return 0;
        }
        unlink_slot(slot);
    }
    int err = 0;
    struct fentry *e = entry_new(dirfd, cs, relz, len, fd, &st, &err);
    if (e == NULL)
        return err;
    e->hash = h;
    e->checked = e->used = now;
    if (cs->cache_entries > 0) {
        if (slot == NULL) {
            slot = &set[0];
            for (int i = 0; i < WAYS; i++) {
                if (set[i] == NULL) {
                    slot = &set[i];
                    break;
                }
                if (set[i]->used < (*slot)->used)
                    slot = &set[i];
            }
            if (*slot != NULL)
                unlink_slot(slot);
        }
        *slot = e;
        e->in_table = true;
        e->refs++;
    }
    *out = e;
    return 0;
}

void fcache_free(struct gen *g)
{
    struct fcache *fc = g->fcache;
    if (fc == NULL)
        return;
    for (size_t i = 0; i < (size_t)fc->nsets * WAYS; i++)
        if (fc->slots[i] != NULL)
            unlink_slot(&fc->slots[i]);
    for (size_t i = 0; i < fc->nroots; i++)
        close(fc->roots[i].fd);
    free(fc->roots);
    free(fc->slots);
    free(fc);
    g->fcache = NULL;
}
