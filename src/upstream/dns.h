/*
 * Asynchronous name resolution for one worker: c-ares driven by the
 * worker's loop, the hosts file (read once, at dns_new()) first, and a cache that keeps each answer for
 * its TTL (clamped to dns.min_ttl..dns.max_ttl) and each failure for
 * dns.negative_ttl. Lookups of the same name in flight at the same time
 * share one query. Nothing here is shared between threads.
 *
 *   struct dns_result r;
 *   if (dns_cached(d, "example.com", 443, &r) == 0)     fast path
 *       use(&r);
 *   else
 *       q = dns_resolve(d, "example.com", 443, done, arg, &err);
 *   ...
 *   dns_cancel(q);            the caller went away: done() is never called
 */
#ifndef GH_UPSTREAM_DNS_H
#define GH_UPSTREAM_DNS_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/loop.h"

#define DNS_MAX_ADDRS 8

union dns_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct dns_result {
    int err;           /* 0; -ENOENT no such name or no address; -ETIMEDOUT;
                          -EIO the server failed; -ENOMEM */
    const char *rcode; /* on error, the RFC 9209 dns_error rcode to report:
                          "NXDOMAIN", "NODATA", "SERVFAIL", "REFUSED",
                          "TIMEOUT", ... (static) */
    unsigned n;        /* addresses: IPv4 ones first, in answer order */
    union dns_addr addr[DNS_MAX_ADDRS]; /* with the port asked for */
};

struct dns;
struct dns_query;

/* Called once per dns_resolve(), from the loop. <r> lives only during the
 * call. */
typedef void dns_done_fn(void *arg, const struct dns_result *r);

/* Creates the resolver of the thread running <l>. Returns NULL with *err =
 * -errno (-ENOMEM, or -EINVAL when c-ares refused the servers). */
struct dns *dns_new(struct loop *l, const struct cfg_dns *c, int *err);

/* Stops every lookup (their callbacks are never called) and frees <d>. */
void dns_free(struct dns *d);

/* Answers at once when no lookup is needed: <name> is an IP address
 * (IPv6 without brackets), a special-use name that never resolves
 * ("invalid" and names under it, RFC 6761 §6.4), or a cached answer.
 * Returns 0 with *out filled (out->err may be a cached failure), or
 * -EAGAIN when dns_resolve() is needed. */
int dns_cached(struct dns *d, const char *name, int port,
               struct dns_result *out);

/* Looks <name> up (joining a lookup in flight for it) and calls cb(arg,
 * result) later from the loop, never from inside this call. Returns the
 * query, owned by <d> until the callback returns or dns_cancel(); NULL
 * with *err = -ENOMEM on failure, and then <cb> is never called. */
struct dns_query *dns_resolve(struct dns *d, const char *name, int port,
                              dns_done_fn *cb, void *arg, int *err);

/* Withdraws <q> before its callback ran: the callback is never called and
 * <q> is freed. The lookup itself goes on and fills the cache. */
void dns_cancel(struct dns_query *q);

/* Counters for tests and metrics: lookups sent to c-ares, answers served
 * from the cache. */
struct dns_stats {
    unsigned long lookups, hits, entries;
};
void dns_stats(const struct dns *d, struct dns_stats *out);

#endif
