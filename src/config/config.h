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
    CFG_BAL_ROUND_ROBIN = 0, /* smooth weighted round robin */
    CFG_BAL_LEAST_CONN,      /* fewest in flight / weight, all workers */
    CFG_BAL_HASH,            /* consistent hash of <hash_key> */
    CFG_BAL_RANDOM_TWO,      /* power of two choices on in-flight */
    CFG_BAL_EWMA,            /* peak-EWMA latency x in-flight */
};

enum cfg_hash_key {
    CFG_HK_CLIENT = 0, /* the client's IP address */
    CFG_HK_URI,        /* the request target as sent */
    CFG_HK_HEADER,     /* the value of the field <hash_name> */
    CFG_HK_COOKIE,     /* the value of the cookie <hash_name> */
};

/* At most this many servers per upstream, counting every address slot of
 * the names that are re-resolved (see cfg_server.host). */
#define CFG_MAX_SERVERS 64

/* What a pool's connections speak. */
enum cfg_proto {
    CFG_PROTO_HTTP = 0, /* HTTP/1.1 ("host:port" or "http://host:port") */
    CFG_PROTO_AJP,      /* AJP/1.3 ("ajp://host:port"), see docs/ajp.md */
};

struct cfg_server {
    struct cfg_addr addr; /* len 0: a DNS slot not filled at load time */
    int weight; /* 1..1000, default 1 */
    uint32_t mslot; /* metrics slot, set before the snapshot is shared */
    bool backup;         /* used only when no primary server is usable */
    unsigned max_conns;  /* requests in flight to it across all workers;
                            0: no limit */
    /* resolve: true. <host> is re-resolved at its TTL and its addresses
     * fill the <nslots> consecutive servers starting at <slot0> (this one
     * is slot <slot> of them); NULL otherwise. */
    const char *host;
    uint16_t port;
    unsigned slot, slot0, nslots;
    enum cfg_proto proto;
};

/* Active health checks, run by one thread for the whole process. */
struct cfg_health {
    bool on;
    bool tcp;            /* a TCP connect only; else an HTTP GET of <path> */
    const char *path;    /* default "/" */
    const char *host;    /* Host field; default the server's address */
    int status_lo, status_hi; /* accepted statuses; default 200..399 */
    cfg_ms interval;     /* default 2s */
    cfg_ms timeout;      /* default 1s */
    unsigned rise;       /* passes in a row to mark a down server up; 2 */
    unsigned fall;       /* failures in a row to mark it down; 3 */
};

/* Passive checks: failures seen by real requests eject a server. */
struct cfg_passive {
    bool on;
    unsigned failures;   /* consecutive failures that eject; default 3 */
    cfg_ms window;       /* ... when they all fall within this; 10s */
    cfg_ms eject;        /* first ejection; doubled on each repeat; 10s */
    cfg_ms eject_max;    /* ceiling of the doubling; 5m */
    bool status_5xx;     /* a 5xx response counts as a failure; true */
};

struct cfg_retries {
    unsigned tries;      /* servers tried per request, the first included;
                            0: each server once (default) */
    unsigned budget_pct; /* retries after a request was sent, as % of
                            recent requests; default 20 */
    unsigned budget_min; /* ... but always this many per second; 10 */
};

enum cfg_sticky_by {
    CFG_STICK_COOKIE = 0, /* a cookie the proxy sets names the server */
    CFG_STICK_LEARN,      /* the table, learnt from the app's cookie */
    CFG_STICK_SOURCE,     /* the table, by client address */
};

struct cfg_sticky {
    const char *cookie;  /* cookie naming the server; NULL: no proxy cookie */
    const char *path;    /* its Path; default "/" */
    cfg_ms max_age;      /* its Max-Age; 0: a session cookie (default) */
    /* the stick table (learn or by: source; docs/upstreams.md) */
    enum cfg_sticky_by by;
    const char *learn;   /* the application's session cookie (LEARN) */
    cfg_ms expire;       /* an entry unused this long is gone; 30m */
    unsigned size;       /* entries at most, oldest evicted; 100000 */
};

struct tls_cli; /* src/tls/: the client context built from a cfg_upstream_tls */

/* TLS to the servers of an upstream (src/config/tls.c). */
struct cfg_upstream_tls {
    bool verify;       /* check the server's certificate; default true */
    const char *ca;    /* PEM CAs to trust; NULL: the system's */
    const char *name;  /* SNI and the name checked in the certificate;
                          NULL: each server's IP address is checked */
    const char *cert;  /* client certificate (PEM), or NULL */
    const char *key;   /* its key; default: the cert file */
    struct tls_cli *cli; /* built at load, freed with the snapshot */
    bool alpn_h2;      /* offer ALPN "h2" only (the pool's protocol: h2) */
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
    int proxy_protocol; /* PROXY header sent on each new connection: 0 off
                           (default), 1 or 2 (version); pooling is off then */
    struct cfg_upstream_tls *tls; /* NULL: plain HTTP to the servers */
    /* pools (docs/upstreams.md) */
    unsigned max_conns;       /* default of the servers' max_conns; 0 */
    enum cfg_hash_key hash_key;
    const char *hash_name;    /* field or cookie name for CFG_HK_HEADER/COOKIE */
    cfg_ms ewma_decay;        /* peak-EWMA time constant; default 10s */
    cfg_ms slow_start;        /* ramp-up of a server that came back; 0 */
    unsigned queue;           /* requests waiting for a max_conns slot,
                                 all workers; 0: answer 503 at once */
    cfg_ms queue_timeout;     /* longest wait in the queue; default 5s */
    cfg_ms retry_after;       /* Retry-After of those 503s; default 1s */
    struct cfg_health health;
    struct cfg_passive passive;
    struct cfg_retries retries;
    struct cfg_sticky sticky;
    struct cfg_resolve {
        struct cfg_addr *servers; /* DNS servers; none: /etc/resolv.conf */
        size_t nservers;
        cfg_ms min_ttl, max_ttl;  /* TTL clamp; defaults 1s, 1h */
    } resolve;
    enum cfg_proto proto;     /* of every server (one protocol per pool) */
    struct cfg_ajp ajp;       /* CFG_PROTO_AJP */
    bool h2;                  /* "protocol: h2": HTTP/2 to the servers
                                 (h2c, or ALPN h2 over TLS); false:
                                 HTTP/1.1 (default). docs/tls.md */
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

/* A rate limit: a token bucket of <burst> tokens refilled at one token per
 * <period_ns>, one bucket per key (see docs/security.md). */
enum cfg_rate_by {
    CFG_RATE_ADDRESS = 0, /* the client address (IPv6: its /64) */
    CFG_RATE_ROUTE,       /* all clients of the route together */
    CFG_RATE_USER,        /* the authenticated user (none: not counted) */
};

struct cfg_rate {
    enum cfg_rate_by by;
    uint32_t id;       /* names the rule's buckets; the same rule keeps its
                          id across reloads (a hash of where it is) */
    int64_t period_ns; /* one request per period, on average */
    uint32_t burst;    /* requests allowed at once; default: the count in
                          "rate" */
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
    uint32_t mslot;       /* metrics slot, set before the snapshot is shared */
    const struct cfg_cache_policy *cache; /* NULL: this route does not cache */
    const char **exts;    /* "ext": only paths ending in .<ext> match */
    size_t nexts;
    struct cfg_static *stat;         /* CFG_ACT_STATIC */
    const struct cfg_compress *compress; /* NULL: responses as they are */
    struct cfg_rate *rates; /* rate_limits, checked in order */
    size_t nrates;
};

struct cfg_site {
    const char **hosts; /* "example.com", "*.example.com"; lower case,
                           no port */
    size_t nhosts;
    bool is_default;    /* used when no host matches */
    struct cfg_route *routes; /* in config order; the longest matching
                                 prefix wins, an exact match beats all */
    size_t nroutes;
    /* site options for TLS (src/config/tls.c) */
    unsigned redirect_https; /* plain requests get 301/308 to https on this
                                port; 0: no redirect */
    const char *hsts;        /* "Strict-Transport-Security: ...\r\n" added
                                to responses over TLS, or NULL */
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
    const struct cfg_cache_policy *cache; /* absolute-form GETs through the
                                             shared cache; NULL: off */
};

/* The resolver used for forward destinations (c-ares, one per worker). */
struct cfg_dns {
    const char *servers;  /* "1.2.3.4:53,[::1]:53"; NULL: /etc/resolv.conf */
    const char *hosts;    /* the hosts file, read at start; "/etc/hosts" */
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
    unsigned conns_per_addr; /* open connections per client address (IPv6:
                                per /64); 0 = unlimited (default) */
};

/* ---- TLS and HTTP/2 on a listener (src/config/tls.c) ---- */

struct tls_srv; /* src/tls/: the OpenSSL contexts built from a cfg_tls */

struct cfg_tls_cert {
    const char *cert;  /* PEM: the certificate, then optionally its chain */
    const char *key;   /* PEM private key; default: the cert file */
    const char *chain; /* PEM intermediates, or NULL */
    const char *ocsp;  /* DER OCSP response to staple, or NULL */
    bool is_default;   /* served without SNI or when no name matches */
};

enum cfg_verify {
    CFG_VERIFY_OFF = 0,  /* no client certificate asked for */
    CFG_VERIFY_OPTIONAL, /* asked for; verified when sent */
    CFG_VERIFY_REQUIRED, /* a verified client certificate is required */
};

struct cfg_tls {
    struct cfg_tls_cert *certs;
    size_t ncerts;
    int min_version, max_version; /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
    const char *ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax) */
    const char *ciphersuites; /* TLS 1.3 suites */
    const char *groups;       /* key exchange groups */
    bool alpn_h2, alpn_http11;
    bool tickets;             /* session tickets; default true */
    cfg_ms ticket_rotate;     /* new ticket key every; default 1h */
    const char *client_ca;    /* PEM CAs for client certificates, or NULL */
    enum cfg_verify verify;   /* default: required with client_ca, else off */
    int verify_depth;         /* default 4 */
    bool ktls;                /* kernel TLS when available; default true */
    cfg_ms handshake_timeout; /* default 10s */
    struct tls_srv *srv;      /* built at load, freed with the snapshot */
};

struct cfg_http2 {
    bool h2c;                   /* HTTP/2 with prior knowledge on a plain
                                   listener; default false */
    unsigned max_streams;       /* SETTINGS_MAX_CONCURRENT_STREAMS; 100 */
    uint32_t stream_window;     /* request body bytes buffered per stream;
                                   64KiB */
    uint32_t conn_window;       /* ... per connection; 1MiB */
    unsigned max_resets;        /* client RST_STREAMs in a burst; 200 */
    unsigned reset_rate;        /* ... allowed per second after it; 100 */
    unsigned max_glitches;      /* protocol misbehaviours before GOAWAY;
                                   100 */
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
    bool proxy_protocol; /* a PROXY v1/v2 header starts every connection */
    uint32_t mslot;      /* metrics slot, set before the snapshot is shared */
    struct cfg_tls *tls;     /* NULL: plain TCP */
    struct cfg_http2 http2;  /* used with ALPN h2, or h2c */
    struct cfg_rate *rates; /* rate_limits for every request, before
                               routing; by address or user */
    size_t nrates;
    uint32_t id; /* a hash of the address: names its per-address counts */
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

/* The admin listener: /metrics, /status, /healthz and the dashboard. */
struct cfg_admin {
    bool enabled;           /* an "admin" section is present */
    struct cfg_addr addr;   /* default 127.0.0.1:9090 */
    struct cfg_cidr *allow; /* who may ask; default loopback only */
    size_t nallow;
    bool proxy_protocol;    /* a PROXY v1/v2 header starts every connection */
};

/* Optional Redis for state the nodes of a cluster share (rate limits,
 * cache purges, the sticky-session table): docs/cluster.md. */
struct cfg_redis {
    bool enabled;              /* "cluster.redis" is present */
    struct cfg_addr addr;      /* host:port of the Redis server */
    const char *password;      /* AUTH before anything else; NULL: none */
    const char *prefix;        /* prepended to every key; default "gh:" */
    cfg_ms timeout;            /* connect, and each reply; default 200ms */
    cfg_ms reconnect_max;      /* ceiling of the reconnect backoff; 5s */
};

struct cfg_cluster {
    struct cfg_redis redis;
    cfg_ms drain_delay; /* drain: keep accepting this long after /healthz
                           turns 503, so the balancer notices; default 0 */
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

/* Process-wide defences (docs/security.md). */
struct cfg_security {
    const char *user;     /* drop to this user when started as root; NULL:
                             "nobody" */
    const char *group;    /* NULL: the user's primary group */
    bool run_as_root;     /* may keep running as root (user: root) */
    const char *chroot;   /* NULL: none */
    bool sandbox;         /* seccomp allow list after start-up; true */
    uint64_t open_files;  /* RLIMIT_NOFILE to set; 0 = auto */
    uint64_t max_connections; /* client connections, all workers; at the
                                 limit accepting pauses; 0 = auto */
    uint64_t rate_entries; /* rate-limit table slots; default 65536 */
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
    struct cfg_cache cache;
    struct cfg_security security;
    bool has_rates;      /* some rule under rate_limits exists */
    bool has_conn_limit; /* some listener limits connections per address */
    struct cfg_dns dns;
    void *arena_; /* private */
    struct cfg_admin admin;
    struct cfg_cluster cluster;
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

/* Parses "10.0.0.0/8", "::1", "[::1]/128" (host bits must be zero).
 * Returns 0 or -EINVAL. */
int cfg_parse_cidr(struct str s, struct cfg_cidr *out);

/* True when <sa> (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of the <n>
 * blocks of <list>. */
bool cfg_cidr_match(const struct cfg_cidr *list, size_t n,
                    const struct sockaddr *sa);

#endif
