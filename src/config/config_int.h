/*
 * Internals shared by the files of the configuration module; nothing here is
 * part of the API in config.h.
 *
 *   arena.c      the snapshot arena (chain of blocks)
 *   yaml_tree.c  libyaml events -> node tree with line:column marks
 *   values.c     durations, sizes, addresses
 *   fields.c     the loader context, error messages, typed field readers
 *   load.c       top level, log, snapshot life cycle
 *   upstream.c   upstreams: servers, balancing, health, retries
 *   listener.c   listeners, sites, routes and their cross-checks
 *   security.c   the "security" block and rate_limits lists
 *   forward.c    a forward listener's "forward:" mapping
 *   dns.c        the top-level "dns:" mapping
 */
#ifndef GH_CONFIG_CONFIG_INT_H
#define GH_CONFIG_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/str.h"

#define CFG__FMT(a, b) __attribute__((format(printf, a, b)))

/* ---- arena.c ---- */

struct cfg__arena;

/* Returns an empty arena, or NULL when out of memory. */
struct cfg__arena *cfg__arena_new(void);
/* Frees <a> and every allocation made in it; NULL is a no-op. */
void cfg__arena_free(struct cfg__arena *a);
/* Returns <n> zeroed bytes aligned for any type, owned by <a>, or NULL when
 * out of memory. */
void *cfg__arena_alloc(struct cfg__arena *a, size_t n);
/* Copies <len> bytes of <p> and a NUL into <a>; NULL when out of memory. */
char *cfg__arena_strndup(struct cfg__arena *a, const char *p, size_t len);
/* Runs fn(arg) when <a> is freed (newest first): for objects outside the
 * arena that the snapshot owns, such as TLS contexts. Returns 0, or -1
 * when out of memory (fn is then not registered). */
int cfg__arena_on_free(struct cfg__arena *a, void (*fn)(void *), void *arg);

/* ---- yaml_tree.c ---- */

enum cfg__ntype {
    CFG_N_SCALAR = 0,
    CFG_N_SEQ,
    CFG_N_MAP,
};

struct cfg__node {
    enum cfg__ntype type;
    unsigned line, col;            /* start mark, 1-based */
    struct str val;                /* scalar text, NUL-terminated */
    bool plain;                    /* unquoted scalar: "", ~ and null are
                                      null */
    const struct cfg__node *key;   /* a mapping value's key (a scalar) */
    struct cfg__node *next;        /* next item / next mapping value */
    struct cfg__node *head, *tail; /* items, or mapping values in order */
    size_t n;                      /* number of items or values */
    struct cfg__node *parent;      /* used while building */
    struct cfg__node *pending;     /* while building: key awaiting a value */
};

/* Parses <len> bytes of YAML text into a tree allocated in <a>. Returns 0
 * and the root in <*root> (NULL for a stream with no document), -EINVAL
 * with "name:line:col: problem" written into <err> for bad or unsupported
 * YAML, or -ENOMEM. */
int cfg__yaml_parse(struct cfg__arena *a, const char *text, size_t len,
                    const char *name, const struct cfg__node **root,
                    char *err, size_t errlen);

/* True for a plain scalar written as nothing, "~" or "null". */
bool cfg__is_null(const struct cfg__node *n);

/* Returns the value of <key> in mapping <m> unless it is null; NULL when
 * absent or when <m> is not a mapping. */
const struct cfg__node *cfg__map_get(const struct cfg__node *m,
                                     const char *key);

/* ---- values.c ---- */

/* cfg_parse_addr() that also says why it failed in <why> (may be NULL):
 * "port must be 1..65535", "cannot resolve "x": ...". Returns 0 or
 * -EINVAL. */
int cfg__parse_addr(struct str s, struct cfg_addr *out, char *why,
                    size_t whylen);

/* Same family, address and port. */
bool cfg__addr_eq(const struct cfg_addr *a, const struct cfg_addr *b);

/* Writes <ms> as "500ms", "30s", "5m", "1h", "2d" (largest exact unit). */
void cfg__fmt_ms(cfg_ms ms, char *buf, size_t len);
/* Writes <n> as "512", "64KiB", "1MiB" ... (largest exact unit). */
void cfg__fmt_size(uint64_t n, char *buf, size_t len);

/* ---- fields.c ---- */

/* One load in progress. The first error wins: once <failed>, no further
 * message is written. */
struct cfg__ld {
    struct cfg__arena *a;
    struct cfg *c;
    const char *file;
    char *err;
    size_t errlen;
    bool failed;
    const struct cfg__node *listeners; /* read after the upstreams */
};

/* Writes "file:line:col: <fmt>" at node <at> (1:1 when NULL). Returns
 * -EINVAL. */
int cfg__fail(struct cfg__ld *ld, const struct cfg__node *at,
              const char *fmt, ...) CFG__FMT(3, 4);
/* Same, for a bad value: prefixes the message with "<key>": when <v> is a
 * mapping value. Returns -EINVAL. */
int cfg__bad(struct cfg__ld *ld, const struct cfg__node *v, const char *fmt,
             ...) CFG__FMT(3, 4);

/* Arena allocation that records "out of memory" on failure. */
void *cfg__alloc(struct cfg__ld *ld, size_t n);
void *cfg__array(struct cfg__ld *ld, size_t count, size_t size);

/* Decimal digits only, lo..hi; no message. */
bool cfg__num(struct str s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Typed readers for one value node. Each returns 0, or -EINVAL with the
 * error written ("expected ...", "must be ..."). */
int cfg__want(struct cfg__ld *ld, const struct cfg__node *v,
              enum cfg__ntype type);
int cfg__bool(struct cfg__ld *ld, const struct cfg__node *v, bool *out);
int cfg__uint(struct cfg__ld *ld, const struct cfg__node *v, uint64_t lo,
              uint64_t hi, uint64_t *out);
int cfg__ms(struct cfg__ld *ld, const struct cfg__node *v, cfg_ms lo,
            cfg_ms hi, cfg_ms *out);
int cfg__bytes(struct cfg__ld *ld, const struct cfg__node *v, uint64_t lo,
               uint64_t hi, uint64_t *out);
int cfg__str(struct cfg__ld *ld, const struct cfg__node *v, bool empty_ok,
             const char **out);
int cfg__enum(struct cfg__ld *ld, const struct cfg__node *v,
              const char *const *names, size_t n, size_t *idx);
int cfg__addr(struct cfg__ld *ld, const struct cfg__node *v,
              struct cfg_addr *out);

/* A key of a mapping and how to read its value into an object. */
enum cfg__ftype {
    CFG_F_FN = 0, /* call <fn> */
    CFG_F_BOOL,   /* bool */
    CFG_F_INT,    /* int, lo..hi */
    CFG_F_UINT,   /* unsigned, lo..hi */
    CFG_F_COUNT,  /* size_t, a number lo..hi */
    CFG_F_MS,     /* cfg_ms, a duration lo..hi */
    CFG_F_SIZE,   /* size_t, a size lo..hi */
    CFG_F_SIZE64, /* uint64_t, a size lo..hi */
};

typedef int cfg__field_fn(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj);

struct cfg__field {
    const char *name;
    enum cfg__ftype type;
    size_t off; /* of the member in the object */
    uint64_t lo, hi;
    cfg__field_fn *fn;
};

/* offsetof(T, m), and a compile error unless member m has type <type>. */
#define CFG__OFF(T, m, type)                                                   \
    (offsetof(T, m) + 0 * sizeof(_Generic(((T *)0)->m, type: 1)))

#define CFG__F_FN(name, fn) { (name), CFG_F_FN, 0, 0, 0, (fn) }
#define CFG__F_BOOL(name, T, m)                                                \
    { (name), CFG_F_BOOL, CFG__OFF(T, m, bool), 0, 1, NULL }
#define CFG__F_INT(name, T, m, lo, hi)                                         \
    { (name), CFG_F_INT, CFG__OFF(T, m, int), (lo), (hi), NULL }
#define CFG__F_UINT(name, T, m, lo, hi)                                        \
    { (name), CFG_F_UINT, CFG__OFF(T, m, unsigned), (lo), (hi), NULL }
#define CFG__F_COUNT(name, T, m, lo, hi)                                       \
    { (name), CFG_F_COUNT, CFG__OFF(T, m, size_t), (lo), (hi), NULL }
#define CFG__F_MS(name, T, m, lo, hi)                                          \
    { (name), CFG_F_MS, CFG__OFF(T, m, cfg_ms), (lo), (hi), NULL }
#define CFG__F_SIZE(name, T, m, lo, hi)                                        \
    { (name), CFG_F_SIZE, CFG__OFF(T, m, size_t), (lo), (hi), NULL }
#define CFG__F_SIZE64(name, T, m, lo, hi)                                      \
    { (name), CFG_F_SIZE64, CFG__OFF(T, m, uint64_t), (lo), (hi), NULL }

#define CFG__SEC ((cfg_ms)1000)
#define CFG__DAY ((cfg_ms)86400000)
#define CFG__KIB ((uint64_t)1024)
#define CFG__MIB ((uint64_t)1024 * 1024)
#define CFG__GIB ((uint64_t)1024 * 1024 * 1024)

/* Reads mapping <m> into <obj> through <fields>. A key not in <fields> is
 * an error naming <what> ("unknown key "x" in listener (expected one of:
 * ...)"); a null value is the same as an absent key. Returns 0 or -EINVAL
 * (-ENOMEM from a field function). */
int cfg__walk(struct cfg__ld *ld, const struct cfg__node *m, const char *what,
              const struct cfg__field *fields, size_t nfields, void *obj);

/* ---- upstream.c ---- */

/* Reads the "upstreams" mapping <v> into the struct cfg <obj>. Returns 0 or
 * a negative errno with the error written. */
int cfg__upstreams(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
/* ---- load.c ---- */

/* Reads all of <path> (at most 4MiB) into a malloc'd, NUL-terminated
 * buffer the caller frees; *len gets its length. Returns NULL with
 * "path: why" written into <err>. */
char *cfg__read_file(const char *path, size_t *len, char *err, size_t errlen);

/* ---- listener.c ---- */

/* Reads a host pattern ("example.com", "*.example.com", "[::1]") from <v>:
 * lower case, without port or trailing dot, into the arena. Returns 0 or
 * -EINVAL with the error written. */
int cfg__host(struct cfg__ld *ld, const struct cfg__node *v, const char **out);

/* ---- forward.c ---- */

/* The value of a listener's "forward" key; <obj> is the cfg_listener. */
int cfg__forward(struct cfg__ld *ld, const struct cfg__node *v, void *obj);

/* ---- dns.c ---- */

void cfg__dns_defaults(struct cfg_dns *d);
/* The value of the top-level "dns" key; <obj> is the struct cfg. */
int cfg__dns(struct cfg__ld *ld, const struct cfg__node *v, void *obj);

/* Reads the "listeners" sequence <v> into ld->c; the upstreams must be
 * loaded already. Returns 0 or a negative errno with the error written. */
int cfg__listeners(struct cfg__ld *ld, const struct cfg__node *v);

/* ---- admin.c ---- */

/* Reads the "admin" mapping <v> into ((struct cfg *)obj)->admin. */
int cfg__admin(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
/* Cross-checks the admin section against the listeners (loaded after). */
int cfg__admin_check(struct cfg__ld *ld, const struct cfg__node *root);
/* ---- tls.c ---- */

/* Listener keys "tls" and "http2", site keys "redirect_https" and "hsts";
 * field functions for the tables in listener.c. The listener's TLS
 * contexts (reading the certificates), owned by the snapshot, are built
 * once the listener is read (cfg__tls_build). */
int cfg__tls(struct cfg__ld *ld, const struct cfg__node *v, void *listener);
/* Builds the TLS contexts of listener <l> (read whole), <v> its "tls". */
int cfg__tls_build(struct cfg__ld *ld, const struct cfg__node *v,
                   struct cfg_listener *l);
int cfg__http2(struct cfg__ld *ld, const struct cfg__node *v, void *listener);
int cfg__redirect_https(struct cfg__ld *ld, const struct cfg__node *v, void *site);
int cfg__hsts(struct cfg__ld *ld, const struct cfg__node *v, void *site);
/* An upstream's "tls" (true or a mapping), read into u->tls; and, once
 * the upstream is read whole, its client context (cfg__upstream_tls_build,
 * <v> the upstream's node). */
int cfg__upstream_tls(struct cfg__ld *ld, const struct cfg__node *v, void *upstream);
int cfg__upstream_tls_build(struct cfg__ld *ld, const struct cfg__node *v,
                            struct cfg_upstream *u);
/* Defaults of the listener's "http2" mapping. */
void cfg__http2_defaults(struct cfg_http2 *h);
/* ---- cluster.c ---- */

/* Sets the defaults of the "cluster" section. */
void cfg__cluster_defaults(struct cfg_cluster *c);
/* Reads the "cluster" mapping <v> into ((struct cfg *)obj)->cluster. */
int cfg__cluster(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
/* ---- cache.c ---- */

/* The top-level "cache" section (a field function for cfg__walk). */
int cfg__cache(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
/* A route's "cache": true, false or a mapping (field function; obj is a
 * struct cfg_route). */
int cfg__route_cache(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
/* Reads a cache policy (true, false or a mapping) into *<out> (NULL for
 * false); for any part of the config that caches (the forward proxy). */
int cfg__cache_policy(struct cfg__ld *ld, const struct cfg__node *v,
                      const struct cfg_cache_policy **out);
void cfg__cache_defaults(struct cfg *c);
/* After everything is read: derived defaults and cross-checks. */
int cfg__cache_finish(struct cfg__ld *ld, const struct cfg__node *root);
/* ---- web.c ---- */

/* Route keys "static", "ext" and "compress" (field functions on a struct
 * cfg_route). */
int cfg__route_static(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj);
int cfg__route_ext(struct cfg__ld *ld, const struct cfg__node *v, void *obj);
int cfg__route_compress(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj);
/* A server address, "host:port", "http://host:port" or "ajp://host:port". */
int cfg__server_addr(struct cfg__ld *ld, const struct cfg__node *v,
                     struct cfg_server *s);
/* The upstream key "ajp" (field function on a struct cfg_upstream). */
int cfg__upstream_ajp(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj);
void cfg__upstream_web_defaults(struct cfg_upstream *u);
/* After an upstream <v> was read: one protocol per pool, AJP has a secret. */
int cfg__upstream_web_check(struct cfg__ld *ld, const struct cfg__node *v,
                            struct cfg_upstream *u);
/* h2up.c: the upstream key "protocol", and its checks once the upstream
 * <v> was read (before its TLS client context is built). */
int cfg__upstream_protocol(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj);
int cfg__upstream_h2_check(struct cfg__ld *ld, const struct cfg__node *v,
                           struct cfg_upstream *u);
/* ---- security.c ---- */

void cfg__security_defaults(struct cfg_security *s);
/* The top-level "security" block. */
int cfg__set_security(struct cfg__ld *ld, const struct cfg__node *v,
                      void *obj);
/* "rate_limits" of a listener (obj: struct cfg_listener) and of a route
 * (obj: struct cfg_route). */
int cfg__set_listener_rates(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj);
int cfg__set_route_rates(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj);
/* After the listeners: names every rate rule, sets has_rates and
 * has_conn_limit. */
void cfg__finish_security(struct cfg *c);

#endif
