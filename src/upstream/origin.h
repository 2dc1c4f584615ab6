/*
 * Origins: upstreams made at run time, one per destination a forward proxy
 * sends to, so that absolute-form requests get the same connection code
 * and keep-alive pools as configured upstreams (ups_connect, ups_release,
 * ups_take_idle work on them unchanged).
 *
 * Each origin is a struct ups with a one-server struct cfg_upstream of its
 * own (owned by the table, not by any configuration snapshot), keyed by
 * (address, port, settings). A worker keeps at most <max> of them: when a
 * new one is needed, the least recently used origin that no request holds
 * is dropped with its idle connections.
 */
#ifndef GH_UPSTREAM_ORIGIN_H
#define GH_UPSTREAM_ORIGIN_H

#include <sys/socket.h>

#include "config/config.h"
#include "core/loop.h"
#include "upstream/ups.h"

struct origins;

/* An empty table for the worker running <l>. NULL on out of memory. */
struct origins *origins_new(struct loop *l, unsigned max);

/* Closes every idle connection and frees the table. No origin may be held
 * (origins_put) any more. */
void origins_free(struct origins *o);

/* The origin at <sa> (AF_INET or AF_INET6, port set) with the timeouts and
 * keep-alive settings of <tpl> (its servers are ignored), made on first
 * use. Takes a reference the caller gives back with origins_put(). Returns
 * NULL on out of memory. */
struct ups *origins_get(struct origins *o, const struct sockaddr *sa,
                        const struct cfg_upstream *tpl);

/* Changes the number of origins kept (at least 1); takes effect as new
 * origins are made. */
void origins_set_max(struct origins *o, unsigned max);

/* Gives back a reference taken by origins_get(). */
void origins_put(struct origins *o, struct ups *u);

/* Number of origins in the table (tests). */
unsigned origins_count(const struct origins *o);

#endif
