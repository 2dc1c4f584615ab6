/*
 * The cache state of one transaction (t->cx), shared by cache_glue.c
 * (deciding, storing) and cache_serve.c (answering from an object). It
 * lives in the transaction's arena; a cleanup registered on the arena
 * drops its references and cancels its waits.
 */
#ifndef GH_PROXY_CACHE_CTX_H
#define GH_PROXY_CACHE_CTX_H

#include "proxy/cache_glue.h"

enum cact {
    A_NONE = 0, /* not for the cache: forwarded as is */
    A_METHOD,   /* an unsafe method: forwarded, invalidates on success */
    A_HIT,      /* answered from a stored response */
    A_WAIT,     /* waits for a fill in flight (collapsed) */
    A_REVAL,    /* a stored response is validated with the origin */
    A_MISS,     /* fetched from the origin (and stored if it may be) */
    A_504,      /* only-if-cached and nothing usable */
    A_PURGE,    /* a PURGE request */
};

/* Answering from a stored object. */
struct serve {
    struct cache_obj *o;   /* cx->obj */
    bool started;
    struct str head[3];    /* status line, fields, the rest */
    size_t head_off, head_len;
    bool body;             /* send body bytes */
    uint64_t end;          /* body bytes up to here (range end, exclusive);
                              UINT64_MAX: to the end of the body */
    bool chunked;          /* chunked framing (length unknown, HTTP/1.1) */
    struct cache_reader rd;
    char cline[24];        /* current chunk: size line */
    size_t cl_len;
    uint64_t c_data;       /* data bytes in the current chunk */
    uint64_t c_sent;       /* bytes of [line][data][CRLF] written */
    bool c_active, last;   /* a chunk is being written; "0\r\n\r\n" is */
    bool last_sent;
    bool blocked;          /* waiting for the client (not for the fill) */
    uint64_t sent;         /* body bytes written */
};

struct ctx {
    struct txn *t;
    struct cache *c;
    const struct cfg_cache_policy *pol;
    struct fresh_policy fp;
    struct cache_key key;
    enum cact act;
    /* the request */
    struct cc_req rq;
    bool get, head, auth, cond, ranged;
    struct str inm, ims, range, if_range; /* copied */
    struct h1_field *fields;              /* copied when needed (Vary) */
    size_t nfields;
    int64_t req_time;
    /* what the lookup found */
    struct cache_obj *obj;  /* a stored response we answer from or
                               revalidate (referenced) */
    struct cache_obj *busy; /* a fill we wait on, or that we are the writer
                               of until we publish (referenced) */
    bool writer;
    bool swr;               /* revalidate in the background */
    const char *fwd;        /* Cache-Status fwd=, NULL for a hit */
    int fwd_status;
    const char *detail;
    bool collapsed, stored;
    bool stale_hit;         /* the hit is served stale (max-stale, SWR) */
    /* storing the body as it streams */
    struct cache_obj *fill;
    struct h1_chunked ch; /* decodes a chunked body the flow forwards raw */
    /* waiting and answering */
    struct serve sv;
    struct cache_waiter wt;
    struct defer d;
    bool waiting_head;
    /* PURGE */
    int purge_how;
    struct str purge_what;
};

/* ---- cache_glue.c ---- */

/* Counts a lookup's outcome for /metrics (MG_CACHE_HIT, _MISS, _STALE). */
void cglue_count(struct ctx *cx, int id);

/* A copy of <s> in <p> (never a NULL view), or STR_NULL when out of memory. */
struct str cglue_dup(struct pool *p, struct str s);
/* Keys of responses fetched by a forward proxy begin with this: they never
 * meet a site's keys for the same URL. */
#define CGLUE_FWD_NS "forward "
/* The cache key of <req> (of <t>'s listener) in <t>'s pool. 0 or -ENOMEM. */
int cglue_key(struct txn *t, const struct h1_msg *req, struct cache_key *k);

/* ---- cache_purge.c ---- */

/* A PURGE request: what to remove (URL, prefix, tags). 0 or -ENOMEM. */
int cglue_purge_prepare(struct ctx *cx, const struct h1_msg *req);
/* Checks the client against the allow list, removes, answers. */
void cglue_purge_answer(struct ctx *cx);
/* After a non-error answer to an unsafe method: the target URI, and the
 * same-origin Location and Content-Location of <r>. */
void cglue_invalidate(struct txn *t, const struct h1_msg *r);

/* ---- cache_serve.c ---- */

/* Prepares the answer from <o> (cx->obj): status (304 for a matching
 * conditional, 206/416 for a range of a complete 200, else as stored),
 * the head, the framing. No I/O. Returns 0 or -ENOMEM. */
int cserve_setup(struct ctx *cx, struct cache_obj *o);
/* Writes what can be written; ends the transaction when all is sent. */
void cserve_pump(struct ctx *cx);
/* HTTP/2: up to <max> body bytes into <dst> for the session; *eof at the
 * end. -EAGAIN while the fill has no more yet. */
ssize_t cserve_pull(struct ctx *cx, char *dst, size_t max, bool *eof);
/* Waits for the busy object's head, then answers from it or forwards. */
void cserve_wait_head(struct ctx *cx);
/* "Cache-Status: <name>; ...\r\n" into the arena (RFC 9211): hit, or
 * fwd=cx->fwd with fwd-status, stored, collapsed; ttl when <has_ttl>. */
struct str cserve_status(struct ctx *cx, bool hit, bool has_ttl, int64_t ttl);

#endif
