/*
 * The stick table (docs/upstreams.md "Sticky sessions"): a bounded map from
 * a session key (the hash of an application's session cookie, or of a
 * client address) to the server it sticks to (the server's token), shared
 * by every worker of the process, with idle expiry and the least recently
 * used entry evicted when full (HAProxy's stick tables).
 *
 * Thread-safe: one mutex per table, held for O(1) work. Times are
 * monotonic milliseconds (loop_now()).
 */
#ifndef GH_UPSTREAM_STICKTAB_H
#define GH_UPSTREAM_STICKTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sticktab;

/* Counters over every table of the process (for /metrics). */
struct sticktab_stats {
    uint64_t entries;  /* entries held right now */
    uint64_t hits;     /* lookups that found a live entry */
    uint64_t misses;   /* lookups that found none (or an expired one) */
    uint64_t learnt;   /* entries added or changed */
    uint64_t expired;  /* entries dropped because <ttl_ms> passed unused */
    uint64_t evicted;  /* entries dropped to make room (the table was full) */
    uint64_t fallbacks; /* lookups the cluster (Redis) could not answer,
                           decided by the local table */
};

/* A table of at most <cap> (>= 1) entries that expire <ttl_ms> (>= 1)
 * after their last use, with one reference. NULL when out of memory. */
struct sticktab *sticktab_new(uint32_t cap, int64_t ttl_ms);
/* Another reference (a reload keeps the table of a pool). */
struct sticktab *sticktab_ref(struct sticktab *t);
/* Drops a reference; the last one frees the table. NULL is a no-op. */
void sticktab_unref(struct sticktab *t);

/* True when <t> was made with these settings. */
bool sticktab_same(const struct sticktab *t, uint32_t cap, int64_t ttl_ms);

/* The value of <key> into *val: true when it is there and was used less
 * than ttl ago; the use restarts its expiry and makes it the most recently
 * used. An expired entry is dropped. */
bool sticktab_get(struct sticktab *t, uint64_t key, int64_t now_ms,
                  uint64_t *val);

/* Sets <key> to <val> (a use, as above). A new key in a full table evicts
 * the least recently used entry. Returns true when the table changed (new
 * key or another value), false when it only refreshed the entry. */
bool sticktab_put(struct sticktab *t, uint64_t key, uint64_t val,
                  int64_t now_ms);

/* Removes <key>; true when it was there. */
bool sticktab_del(struct sticktab *t, uint64_t key);

/* Entries held (expired ones not yet dropped included). */
size_t sticktab_count(struct sticktab *t);

/* Counts a lookup the cluster could not answer (sticktab_stats). */
void sticktab_note_fallback(void);

/* Sums the counters of every table of the process into <out>. */
void sticktab_stats(struct sticktab_stats *out);

/* Writes them in the Prometheus text format (gatehouse_sticky_*) into
 * <buf> (size <cap>, NUL-terminated). Returns the length, or 0 when it
 * does not fit. */
size_t sticktab_stats_prometheus(char *buf, size_t cap);

#endif
