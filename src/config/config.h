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
    CFG_L_FORWARD, /* has a "forward:" mapping (docs/forward-proxy.md) */
};

/* An address range: "10.0.0.0/8", "::1/128", or one range of a named set
 * ("link-local"), whose name is then the text. */
struct cfg_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16]; /* network byte order, host bits zero */
    const char *text; /* as written, for logs and Proxy-Status */
};

/* A port range lo..hi (a single port has lo == hi). */
struct cfg_ports {
    uint16_t lo, hi;
};

/* One htpasswd entry: bcrypt ($2y$, $2b$), SHA-512 ($6$), SHA-256 ($5$)
 * or yescrypt ($y$); other schemes are refused at load. */
struct cfg_htuser {
    const char *user;
    const char *hash;
};

/* A forward listener's rules (the "forward:" mapping). */
struct cfg_forward {
    const struct cfg_cidr *allow;   /* clients that may use the proxy; default
                                 loopback (127.0.0.0/8, ::1) */
    size_t nallow;
    const struct cfg_cidr *deny;    /* clients refused even when allowed */
    size_t ndeny;
    const struct cfg_ports *connect_ports; /* CONNECT targets; default 443 */
    size_t nconnect_ports;
    const struct cfg_ports *http_ports;   /* absolute-form targets; default 80,
                                        1025-65535 */
    size_t nhttp_ports;
    const char **allow_hosts; /* destination name patterns; none: any */
    size_t nallow_hosts;
    const char **deny_hosts;  /* destination name patterns refused */
    size_t ndeny_hosts;
    const struct cfg_cidr *deny_addrs; /* destination addresses refused after
                                    DNS; default link-local */
    size_t ndeny_addrs;
    bool anonymous;           /* drop what identifies the client */
    bool splice;              /* CONNECT tunnels with splice(2); true */
    /* Basic authentication; no users: none */
    const char *htpasswd;     /* path, as written */
    const char *realm;        /* default "Gatehouse" */
    struct cfg_htuser *users; /* sorted by user name */
    size_t nusers;
    /* proxy auto-config at /proxy.pac and /wpad.dat */
    bool pac;                 /* default true */
    const char *pac_body;     /* pac.file's contents, NULL: generated */
    size_t pac_len;
    const char *pac_proxy;    /* "host:port" to advertise; NULL: the
                                 address the client connected to */
    const char **pac_direct;  /* host patterns sent DIRECT */
    size_t npac_direct;
    /* Settings of the per-worker origin pools: <origin> for absolute-form
     * requests, <tunnel> for CONNECT (read_timeout is the tunnel's idle
     * timeout, no keep-alive). Neither has servers: each origin gets its
     * own one-server copy at run time. */
    struct cfg_upstream origin;
    struct cfg_upstream tunnel;
    unsigned max_origins;     /* origins kept per worker; default 1024 */
};

/* The resolver used for forward destinations (c-ares, one per worker). */
struct cfg_dns {
    const char *servers;  /* "1.2.3.4:53,[::1]:53"; NULL: /etc/resolv.conf */
    cfg_ms timeout;       /* a whole lookup; default 5s */
    unsigned cache_size;  /* names cached per worker; default 4096 */
    cfg_ms min_ttl;       /* answers kept at least this long; 1s */
    cfg_ms max_ttl;       /* and at most this long; 1h */
    cfg_ms negative_ttl;  /* failures kept this long; 5s */
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
    struct cfg_forward *forward; /* CFG_L_FORWARD, else NULL */
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
    struct cfg_dns dns;
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
