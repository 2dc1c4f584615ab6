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

/* What a pool's connections speak. */
enum cfg_proto {
    CFG_PROTO_HTTP = 0, /* HTTP/1.1 ("host:port" or "http://host:port") */
    CFG_PROTO_AJP,      /* AJP/1.3 ("ajp://host:port"), see docs/ajp.md */
};

struct cfg_server {
    struct cfg_addr addr;
    int weight; /* 1..1000, default 1 */
    enum cfg_proto proto;
};

/* AJP settings of an upstream whose servers are ajp:// (docs/ajp.md). */
struct cfg_ajp {
    const char *secret;     /* required: Tomcat's AJP connector "secret" */
    size_t secret_len;
    unsigned packet_size;   /* 8192 (Tomcat's default) .. 65536 */
    bool cping;             /* CPING a pooled connection before reuse; true */
    cfg_ms cping_timeout;   /* wait for CPONG; 2s */
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
    enum cfg_proto proto;     /* of every server (one protocol per pool) */
    struct cfg_ajp ajp;       /* CFG_PROTO_AJP */
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
    CFG_ACT_STATIC,    /* serve files from <stat->root> (docs/static.md) */
};

/* A static route: files under a directory (docs/static.md). */
struct cfg_static {
    const char *root;       /* directory, absolute or relative to the cwd */
    const char *index;      /* file served for a directory; "index.html";
                               NULL when "index: off" */
    bool strip_prefix;      /* the route path is not part of the file path */
    bool listing;           /* HTML listing of a directory without index;
                               false */
    bool hidden;            /* serve names starting with '.'; false */
    bool outside_symlinks;  /* follow symlinks leading out of root; false */
    bool precompressed;     /* serve x.br / x.gz for x when accepted; true */
    bool sendfile;          /* sendfile(2) on plain connections; true */
    cfg_ms cache_valid;     /* open-file cache: re-check after; 1s */
    unsigned cache_entries; /* open-file cache slots per worker; 1024 */
};

/* Compression of responses (docs/compression.md). */
#define CFG_ENC_GZIP 1u
#define CFG_ENC_BR 2u
#define CFG_ENC_ZSTD 4u
struct cfg_compress {
    unsigned encodings;     /* CFG_ENC_* the route may use; all three */
    const char **types;     /* media types (no parameters), lower case;
                               "text/..." with a star matches every text type */
    size_t ntypes;
    uint64_t min_size;      /* Content-Length below this: as is; 256 */
    int gzip_level;         /* 1..9; 5 */
    int br_quality;         /* 0..11; 4 */
    int zstd_level;         /* 1..19; 3 */
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
    const char **exts;    /* "ext": only paths ending in .<ext> match */
    size_t nexts;
    struct cfg_static *stat;         /* CFG_ACT_STATIC */
    const struct cfg_compress *compress; /* NULL: responses as they are */
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
