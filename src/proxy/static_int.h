/*
 * What static.c (the request, the file) and static_send.c (the response,
 * its ranges and its bytes) share; docs/static.md.
 */
#ifndef GH_PROXY_STATIC_INT_H
#define GH_PROXY_STATIC_INT_H

#include "proxy/fcache.h"
#include "proxy/proxy_int.h"

/* What the request said that the handler needs, copied into the arena. */
struct sreq {
    struct str path; /* percent-decoded, without the query */
    struct str query; /* with its '?', or empty */
    struct str raw_path; /* as sent, without the query */
    struct str range, if_range, inm, ims, im, ius;
};

struct seg {
    const char *mem; /* sent first */
    size_t mlen;
    uint64_t foff, flen; /* then this file range */
};

struct sfile {
    struct sreq rq;
    struct fentry *e;
    int fd;              /* the representation sent (identity, .gz, .br) */
    struct seg *segs;
    size_t nsegs, cur;
    size_t moff;         /* in segs[cur].mem */
    uint64_t fdone;      /* of segs[cur].flen */
    bool use_sendfile;
    struct buf rb;       /* file bytes read (copy and compress modes) */
    uint64_t body_bytes; /* for the access log */
};

/* static_send.c: answers with <e> (conditional requests, ranges, the
 * precompressed or compressed representation), then sends it. */
void static_respond(struct txn *t, struct fentry *e);

/* static_send.c: lets go of what the request holds (its buffer, its file
 * entry); registered on the transaction's pool. */
void static_sf_release(void *arg);

#endif
