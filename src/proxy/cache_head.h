/*
 * Stored heads (cache_head.c): what the cache keeps of a response, and how
 * a 304 updates it. Strings are allocated in the given pool.
 */
#ifndef GH_PROXY_CACHE_HEAD_H
#define GH_PROXY_CACHE_HEAD_H

#include "cache/cache.h"
#include "core/pool.h"
#include "http/h1.h"

struct chead_in {
    const struct h1_msg *resp;        /* its views valid */
    int64_t req_time, resp_time;      /* unix seconds */
    const struct h1_field *req_fields; /* the request's, for Vary */
    size_t req_nfields;
    const struct fresh_policy *fp;
    bool get, req_no_store, req_auth;
    uint64_t max_object;
    uint64_t body_len;                /* or CACHE_LEN_UNKNOWN */
};

/* Freshness metadata from response fields <f>. */
void chead_meta(const struct h1_field *f, size_t n, int status, int64_t req_time,
                int64_t resp_time, struct cache_meta *m);

/* Decides whether the response may be stored (RFC 9111 §3) and, when it
 * may, fills <h>. Returns STORE_OK or why not. */
enum store_why chead_build(struct pool *pl, const struct chead_in *in,
                           struct cache_head *h);

/* The head of <old> updated by the 304 <r> (RFC 9111 §3.2, §4.3.4).
 * Returns 0 or -ENOMEM. */
int chead_update(struct pool *pl, const struct cache_view *old, const struct h1_msg *r,
                 int64_t req_time, int64_t resp_time, struct cache_head *h);

/* Splits stored "Name: value\r\n" lines into <*out>; returns the count. */
size_t chead_fields(struct pool *pl, struct str text, struct h1_field **out);

/* The value of the first stored field <name> (lower case), or empty. */
struct str chead_find(struct str text, const char *name);

#endif
