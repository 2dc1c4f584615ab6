/*
 * Configuration: loading YAML (libyaml) into an immutable snapshot.
 *
 * A snapshot (struct cfg) is built in one go, validated, and never changed
 * afterwards; workers pin it with cfg_ref()/cfg_unref() so a reload can swap
 * in a new one while requests in flight finish on the old one. Every string
 * and array in a snapshot lives in its own arena and dies with it.
 *
 * Errors speak to people and name the place:
 *   gatehouse.yaml:12:9: "connect_timeout": expected a duration such as 5s or 500ms
 */
#ifndef GH_CONFIG_CONFIG_H
#define GH_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/str.h"

/* Durations are kept in milliseconds, sizes in bytes. */
typedef int64_t cfg_ms;

struct cfg_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* as written, normalised: "127.0.0.1:8080", "[::1]:80" */
};

enum cfg_balance {
    CFG_BAL_ROUND_ROBIN = 0,
};

struct cfg_server {
    struct cfg_addr addr;
    int weight; /* 1..1000, default 1 */
};

struct cfg_upstream {
    const char *name;
    struct cfg_server *servers;
    size_t nservers;
    enum cfg_balance balance;
    cfg_ms connect_timeout;   /* default 5s */
    cfg_ms read_timeout;      /* between bytes of the response; 60s */
    cfg_ms send_timeout;      /* between bytes written upstream; 60s */
    unsigned keepalive;       /* idle connections kept per worker per
                                 server; 0 disables reuse; default 32 */
    cfg_ms keepalive_timeout; /* idle pooled connection lifetime; 60s */
    unsigned keepalive_requests; /* requests per connection; default 10000 */
};

enum cfg_xff {
    CFG_XFF_APPEND = 0, /* append the client address (default) */
    CFG_XFF_REPLACE,    /* drop what the client sent, set ours */
    CFG_XFF_OFF,        /* pass the client's field untouched */
};

struct cfg_headers {
    bool via;               /* add "Via: 1.1 <via_name>"; default true */
    enum cfg_xff x_forwarded_for;
    bool x_forwarded_proto; /* default true */
    bool x_forwarded_host;  /* default true */
    bool forwarded;         /* RFC 7239; default false */
    bool hide_server;       /* drop Server and X-Powered-By; default false */
};

enum cfg_action {
    CFG_ACT_PROXY = 0, /* send to <upstream> */
    CFG_ACT_RETURN,    /* answer <ret_status> with <ret_body> ourselves */
};

struct cfg_route {
    const char *path; /* prefix, or exact when <exact> */
    size_t path_len;
    bool exact;
    enum cfg_action action;
    struct cfg_upstream *upstream; /* CFG_ACT_PROXY */
    int ret_status;                /* CFG_ACT_RETURN */
    const char *ret_body;
    size_t ret_body_len;
    const char *ret_type; /* Content-Type, default "text/plain; charset=utf-8" */
    uint64_t max_body;    /* 0: inherit the listener's limit */
    const struct cfg_cache_policy *cache; /* NULL: this route does not cache */
};

struct cfg_site {
    const char **hosts; /* "example.com", "*.example.com"; lower case,
                           no port */
    size_t nhosts;
    bool is_default;    /* used when no host matches */
    struct cfg_route *routes; /* in config order; the longest matching
                                 prefix wins, an exact match beats all */
    size_t nroutes;
};

enum cfg_listener_kind {
    CFG_L_REVERSE = 0,
};

struct cfg_timeouts {
    cfg_ms client_header; /* whole request head must arrive; 10s */
    cfg_ms client_body;   /* between reads of a request body; 60s */
    cfg_ms client_idle;   /* keep-alive idle between requests; 60s */
    cfg_ms send;          /* between writes to the client; 60s */
};

struct cfg_limits {
    size_t header_bytes;  /* request head; 32KiB -> 431 */
    size_t header_count;  /* field lines; 100 -> 431 */
    size_t target_length; /* request-target; 8KiB -> 414 */
    uint64_t body_bytes;  /* request body; 1GiB -> 413; 0 = unlimited */
};

struct cfg_listener {
    struct cfg_addr addr;
    enum cfg_listener_kind kind;
    struct cfg_site *sites;
    size_t nsites;
    struct cfg_headers headers;
    struct cfg_timeouts timeouts;
    struct cfg_limits limits;
    int backlog; /* default 511 */
};

enum cfg_log_format {
    CFG_LOG_COMBINED = 0,
    CFG_LOG_JSON,
};

struct cfg_log {
    const char *access; /* "stdout", "stderr", "off" or a path; default
                           "stdout" */
    enum cfg_log_format format;
    const char *error;  /* "stderr" or a path; default "stderr" */
    int level;          /* LOG_ERR..LOG_DEBUG (syslog numbers); default
                           LOG_INFO; names: error warn info debug */
};

/* ---- cache (src/config/cache.c, docs/config.md "cache") ---- */

/* How a route (or a forward listener) caches. */
struct cfg_cache_policy {
    bool collapse;  /* concurrent misses wait for one fetch; default true */
    cfg_ms swr;     /* stale-while-revalidate when the origin says nothing */
    cfg_ms sie;     /* stale-if-error when the origin says nothing */
};

/* An address block of the purge allow list. */
struct cfg_cache_net {
    int family;       /* AF_INET or AF_INET6 */
    unsigned bits;
    unsigned char addr[16];
};

struct cfg_cache {
    bool enabled;           /* a "cache" section, or a route with cache */
    uint64_t memory;        /* memory tier budget; 256MiB */
    uint64_t max_object;    /* largest body stored; memory/32, at most 8MiB */
    const char *disk_path;  /* NULL: no disk tier */
    uint64_t disk_size;     /* disk tier budget; 1GiB */
    bool disk_sync;         /* fdatasync each file; false */
    unsigned heuristic_pct; /* of (Date - Last-Modified); 10 */
    cfg_ms heuristic_max;   /* cap on heuristic freshness; 1d */
    struct cfg_cache_net *purge_allow; /* who may PURGE; loopback */
    size_t npurge_allow;
};

/* True when <sa> is in the purge allow list of <cc>. */
bool cfg_cache_purge_allowed(const struct cfg_cache *cc, const struct sockaddr *sa);

struct cfg {
    atomic_int refs;
    const char *file; /* path loaded, or "<default>" */
    int workers;      /* resolved: "auto" -> online CPUs */
    const char *pid_file; /* NULL when unset */
    const char *via_name; /* name in Via; default "gatehouse" */
    cfg_ms graceful_timeout; /* SIGTERM: finish in-flight work; 30s */
    struct cfg_log log;
    struct cfg_upstream *upstreams;
    size_t nupstreams;
    struct cfg_listener *listeners;
    size_t nlisteners;
    struct cfg_cache cache;
    void *arena_; /* private */
};

/* Loads and validates <path>. On success returns a snapshot with one
 * reference (caller owns it). On failure returns NULL and writes a message
 * "file:line:col: what was wrong" into <err> (size <errlen>). */
struct cfg *cfg_load_file(const char *path, char *err, size_t errlen);

/* Same, from YAML text in memory; <name> is used in messages. */
struct cfg *cfg_load_string(const char *yaml, size_t len, const char *name,
                            char *err, size_t errlen);

/* The built-in default configuration (YAML text, NUL-terminated). */
extern const char cfg_default_yaml[];

struct cfg *cfg_ref(struct cfg *c);
void cfg_unref(struct cfg *c); /* frees the snapshot at zero */

/* Value parsers shared by every part of the config, exposed for tests.
 * Each returns 0 or -EINVAL. */
int cfg_parse_duration(struct str s, cfg_ms *out);  /* 500ms 30s 5m 1h 2d; a
                                                       bare number is seconds */
int cfg_parse_size(struct str s, uint64_t *out);    /* 512 64KiB 1MiB 2GiB,
                                                       also k/K/KB/m/M/MB/g/G/GB
                                                       as powers of 1024 */
int cfg_parse_addr(struct str s, struct cfg_addr *out); /* 1.2.3.4:80,
                                                      [::1]:80, localhost:80
                                                      (resolved at load), *:80 */

#endif
