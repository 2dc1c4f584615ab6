/*
 * The rules of HTTP caching (RFC 9111, RFC 5861), as pure functions: parse
 * Cache-Control and HTTP-dates, decide whether a response may be stored,
 * compute its freshness lifetime and current age, and decide whether a
 * stored response may answer a request as it is, stale, or only after
 * validation. No I/O, no allocation, no clock: "now" is an argument.
 *
 * Times are unix seconds (wall clock); durations are seconds. This is a
 * shared cache (RFC 9111 §1): s-maxage and proxy-revalidate apply, private
 * responses are not stored.
 */
#ifndef GH_CACHE_FRESH_H
#define GH_CACHE_FRESH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"

/* RFC 9111 §1.2.2: a delta-seconds too large to represent is 2^31. */
#define CC_DELTA_MAX INT64_C(2147483648)
/* A directive given without its argument (max-stale) or with one that is
 * not a delta-seconds. */
#define CC_ABSENT INT64_C(-1)
#define CC_ANY INT64_C(-2)     /* max-stale without a value */
#define CC_INVALID INT64_C(-3) /* present, but not a valid delta-seconds */
#define DATE_NONE INT64_MIN    /* no such field, or an invalid date */

/* Response directives, RFC 9111 §5.2.2 and RFC 5861. */
#define CC_NO_STORE (1u << 0)
#define CC_NO_CACHE (1u << 1)        /* unqualified: revalidate every use */
#define CC_NO_CACHE_F (1u << 2)      /* qualified: listed fields only */
#define CC_PRIVATE (1u << 3)         /* unqualified: a shared cache never stores */
#define CC_PRIVATE_F (1u << 4)       /* qualified: listed fields not stored */
#define CC_PUBLIC (1u << 5)
#define CC_MUST_REVALIDATE (1u << 6)
#define CC_PROXY_REVALIDATE (1u << 7)
#define CC_MUST_UNDERSTAND (1u << 8)
#define CC_NO_TRANSFORM (1u << 9)
#define CC_IMMUTABLE (1u << 10)

/* Request directives, RFC 9111 §5.2.1. */
#define CCQ_NO_CACHE (1u << 0)
#define CCQ_NO_STORE (1u << 1)
#define CCQ_ONLY_IF_CACHED (1u << 2)
#define CCQ_NO_TRANSFORM (1u << 3)

struct cc_resp {
    int64_t max_age;  /* CC_ABSENT, CC_INVALID or 0..CC_DELTA_MAX */
    int64_t s_maxage; /* same */
    int64_t swr;      /* stale-while-revalidate (RFC 5861 §3) */
    int64_t sie;      /* stale-if-error (RFC 5861 §4) */
    uint32_t flags;   /* CC_* */
    struct str no_cache_fields; /* argument of the first qualified no-cache
                                   (a list of field names, unquoted) */
    struct str private_fields;  /* same for private */
};

struct cc_req {
    int64_t max_age;   /* CC_ABSENT, CC_INVALID or a value */
    int64_t max_stale; /* CC_ABSENT, CC_ANY or a value */
    int64_t min_fresh;
    int64_t sie;       /* stale-if-error in a request (RFC 5861 §4) */
    uint32_t flags;    /* CCQ_* */
};

void cc_resp_init(struct cc_resp *cc);
void cc_req_init(struct cc_req *cc);

/* Parses one Cache-Control field line <value> into <cc>. Call once per line,
 * in order: the first occurrence of a directive wins (RFC 9111 §4.2.1). A
 * freshness directive (max-age, s-maxage) whose argument is not a
 * delta-seconds, or that is written with spaces around "=", is recorded as
 * CC_INVALID, which makes the response stale. Quoted arguments are accepted
 * (§5.2). <cc>'s field lists point into <value>. */
void cc_parse_resp(struct cc_resp *cc, struct str value);
void cc_parse_req(struct cc_req *cc, struct str value);

/* Parses a delta-seconds (1*DIGIT, RFC 9111 §1.2.2), clamping at
 * CC_DELTA_MAX. Returns the value or CC_INVALID. */
int64_t cc_delta(struct str s);

/* Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7
 * (IMF-fixdate, rfc850-date, asctime-date). A two-digit rfc850 year more
 * than 50 years after <now> is in the previous century. Returns unix
 * seconds or DATE_NONE when the value is not a valid date. */
int64_t http_date_parse(struct str s, int64_t now);

/* True when <status> is heuristically cacheable (RFC 9110 §15.1). */
bool status_heuristic(int status);
/* True when we understand <status>'s caching requirements (the status codes
 * RFC 9110 defines): a response with must-understand is stored only then. */
bool status_understood(int status);

/* What a stored response carries for freshness and validation. */
struct cache_meta {
    int status;
    int64_t date;          /* Date; the response time when absent/invalid */
    int64_t expires;       /* DATE_NONE when absent; invalid -> 0 (expired) */
    bool has_expires;
    int64_t last_modified; /* DATE_NONE when absent or invalid */
    int64_t age;           /* Age field value, 0 when absent/invalid */
    int64_t req_time;      /* when the request that got it was sent */
    int64_t resp_time;     /* when the response head was received */
    struct cc_resp cc;     /* views are not kept once stored */
    bool has_etag;
};

/* Heuristics and defaults an operator may set (config). */
struct fresh_policy {
    unsigned heuristic_pct; /* % of (Date - Last-Modified); RFC suggests 10 */
    int64_t heuristic_max;  /* cap on a heuristic lifetime, seconds */
    int64_t swr;            /* stale-while-revalidate when the origin says
                               nothing; 0: none */
    int64_t sie;            /* stale-if-error when the origin says nothing */
};

/* Freshness lifetime, RFC 9111 §4.2.1 (shared cache): s-maxage, max-age,
 * Expires - Date, else a heuristic (§4.2.2) for heuristically cacheable
 * statuses or a public response with Last-Modified. 0 when invalid. */
int64_t fresh_lifetime(const struct cache_meta *m, const struct fresh_policy *p);

/* True when the lifetime came from the origin (not a heuristic). */
bool fresh_explicit(const struct cache_meta *m);

/* Current age, RFC 9111 §4.2.3. */
int64_t fresh_age(const struct cache_meta *m, int64_t now);

/* Why a response is not stored (0: it may be). */
enum store_why {
    STORE_OK = 0,
    STORE_METHOD,     /* only GET responses are stored */
    STORE_STATUS,     /* 206, 304, 1xx, or not understood with must-understand */
    STORE_REQ_NO_STORE,
    STORE_NO_STORE,
    STORE_PRIVATE,
    STORE_AUTH,       /* Authorization without public/s-maxage/must-revalidate */
    STORE_NO_FRESH,   /* nothing makes it cacheable, or useless (no lifetime,
                         no validator) */
    STORE_VARY_STAR,
    STORE_TOO_BIG,
    STORE_RANGE,      /* a partial answer */
    STORE_BODY,       /* the request had a body */
};

/* What the store decision needs from the exchange. */
struct store_in {
    bool get;            /* the request method is GET */
    bool req_no_store;   /* CCQ_NO_STORE */
    bool req_auth;       /* the request had Authorization */
    int status;
    const struct cache_meta *m;
    bool vary_star;      /* Vary: * */
    bool has_validator;  /* ETag or Last-Modified */
};

/* RFC 9111 §3 and §3.5 for a shared cache. */
enum store_why fresh_storable(const struct store_in *in,
                              const struct fresh_policy *p);
const char *store_why_name(enum store_why w);

/* How a stored response may be used for a request (RFC 9111 §4, §4.2.4,
 * §5.2; RFC 5861). */
enum fresh_use {
    USE_FRESH = 0,   /* serve as is */
    USE_STALE,       /* serve stale: the client allowed it (max-stale) */
    USE_SWR,         /* serve stale and revalidate in the background */
    USE_REVALIDATE,  /* validate with the origin first */
};

/* Decides how <m> may answer a request with directives <rq> at <now>.
 * *ttl is the remaining freshness (negative when stale). */
enum fresh_use fresh_decide(const struct cache_meta *m, const struct cc_req *rq,
                            const struct fresh_policy *p, int64_t now,
                            int64_t *ttl);

/* True when a stale <m> may still be served because the origin failed
 * (stale-if-error from the response, the request, or the policy), and
 * nothing forbids serving it stale. */
bool fresh_stale_if_error(const struct cache_meta *m, const struct cc_req *rq,
                          const struct fresh_policy *p, int64_t now);

/* True when no directive forbids serving <m> stale (must-revalidate,
 * proxy-revalidate, s-maxage, no-cache; RFC 9111 §4.2.4). */
bool fresh_stale_allowed(const struct cache_meta *m);

/* ---- validators (RFC 9110 §8.8, §13) ---- */

/* True when entity-tags <a> and <b> match: weak comparison ignores W/. */
bool etag_weak_eq(struct str a, struct str b);
bool etag_strong_eq(struct str a, struct str b);

/* True when an If-None-Match field value <inm> ("*" or a list of
 * entity-tags) matches <etag> by weak comparison (RFC 9110 §13.1.2). */
bool inm_matches(struct str inm, struct str etag);

#endif
