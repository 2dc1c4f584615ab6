/*
 * Arenas (nginx pools, Varnish workspaces): one per request. Allocation is a
 * pointer bump; nothing is freed piece by piece; pool_free() releases
 * everything and runs the registered cleanups (fds, shared references).
 *
 * Blocks come from a per-thread cache, so a request in the steady state
 * costs no malloc at all. Build with -DPOOL_EMULATE=1 to make every
 * allocation its own malloc, so ASan sees overflows between allocations.
 */
#ifndef GH_CORE_POOL_H
#define GH_CORE_POOL_H

#include <stddef.h>

struct pool;

typedef void pool_cleanup_fn(void *arg);

/* Creates a pool whose first block holds at least <hint> bytes.
 * Returns NULL on out of memory. The caller owns the pool. */
struct pool *pool_new(size_t hint);

/* Frees every allocation of <p> and runs its cleanups, newest first. */
void pool_free(struct pool *p);

/* Returns <n> bytes aligned for any type, or NULL on out of memory. Lives
 * until pool_free(). */
void *pool_alloc(struct pool *p, size_t n);

/* Same, zeroed. */
void *pool_calloc(struct pool *p, size_t n);

/* Copies <n> bytes (plus a NUL) into the pool. */
char *pool_strndup(struct pool *p, const char *s, size_t n);

/* Runs fn(arg) when the pool is freed. Returns 0 or -ENOMEM. */
int pool_on_destroy(struct pool *p, pool_cleanup_fn *fn, void *arg);

/* Releases the calling thread's cache of free blocks (at thread exit). */
void pool_thread_cleanup(void);

/* Failure injection for tests: with the environment variable FAIL_ALLOC=N,
 * the Nth pool allocation of the process (and every later Nth) fails. */
void pool_fail_init(void);

#endif
