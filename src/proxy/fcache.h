/*
 * Per-worker (per configuration generation) open-file cache for static routes (fcache.c): path -> open fd,
 * stat, validators and precompressed siblings, re-checked after the route's
 * cache_valid. A hot file costs no open(2) or stat(2) per request.
 */
#ifndef GH_PROXY_FCACHE_H
#define GH_PROXY_FCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "config/config.h"

struct gen;

/* One representation on disk: the file itself or a .gz/.br sibling. */
struct fvar {
    int fd;            /* -1: none */
    uint64_t size;
    char etag[48];     /* "<mtime hex>-<size hex>", quoted */
    uint8_t etag_len;
};

struct fentry {
    unsigned refs;
    struct fvar id;      /* the file (identity) */
    struct fvar gz, br;  /* precompressed siblings, fd -1 when absent */
    bool is_dir;
    bool regular;
    int64_t mtime;       /* seconds */
    char lastmod[32];    /* IMF-fixdate of mtime */
    uint8_t lastmod_len;
    const char *mime;    /* by the file name */
    /* private to fcache.c */
    const struct cfg_static *cs;
    uint64_t hash;
    char *path;
    size_t plen;
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    int64_t checked, used;
    bool in_table;
};

/* Opens <rel> (len bytes, no leading '/', no "." or ".." segments; "" is
 * the root) beneath the root of <cs>: symlinks may not lead out of it
 * unless cs->outside_symlinks. Returns 0 and a referenced entry in *out,
 * or -errno: -ENOENT/-ENOTDIR (no such file), -EXDEV/-ELOOP (a symlink
 * leads out, or loops), -EACCES, -ENAMETOOLONG, -ENOSYS (no openat2). */
int fcache_open(struct gen *g, const struct cfg_static *cs, const char *rel,
                size_t len, struct fentry **out);

/* Drops a reference taken by fcache_open. */
void fcache_unref(struct fentry *e);

/* Frees the generation's cache (closes every fd). */
void fcache_free(struct gen *g);

#endif
