/*
 * Defences against abuse, and containment if Gatehouse itself is broken
 * into (docs/security.md has the table of each defence, the attack it stops
 * and the test that proves it):
 *
 *   key.c        what a limit counts by: a client address (IPv6 by /64), a
 *                route, a user name, hashed with a secret key
 *   ratelimit.c  token buckets (GCRA) in a sharded table shared by workers
 *   connlimit.c  open connections: process-wide and per client address
 *   privdrop.c   open-file limit, chroot, user and group, no_new_privs
 *   sandbox.c    the seccomp-bpf allow lists of workers and main thread
 *
 * The tables are shared by every worker thread; each shard has a short
 * mutex held for a few dozen instructions. Nothing here allocates after
 * creation.
 */
#ifndef GH_SECURITY_SECURITY_H
#define GH_SECURITY_SECURITY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/str.h"

/* ---- key.c ---- */

/* What one bucket or counter is for. Compared as 24 bytes. */
struct sec_key {
    uint32_t rule;    /* a rate rule's id, or a listener's id */
    uint32_t kind;    /* enum cfg_rate_by */
    uint8_t data[16]; /* an address, or a hash of a user name */
};

/* A key for client address <sa>: IPv4 (also IPv4-mapped IPv6) as 4 bytes,
 * IPv6 as its first 64 bits (one subscriber usually holds a /64). */
void sec_key_addr(struct sec_key *k, uint32_t rule, const struct sockaddr *sa);
/* A key for user name <name> (a 128-bit hash of it) or for a route (no
 * data). */
void sec_key_user(struct sec_key *k, uint32_t rule, struct str name);
void sec_key_route(struct sec_key *k, uint32_t rule);

/* SipHash-2-4 of <k> under the 128-bit secret <seed>. */
uint64_t sec_hash(const struct sec_key *k, const uint64_t seed[2]);

/* ---- ratelimit.c ---- */

struct rl_table;

/* A table of about <entries> buckets (rounded up; at least 512). Returns
 * NULL when out of memory. Caller owns the result. */
struct rl_table *rl_new(size_t entries);
void rl_free(struct rl_table *t);

/* Takes one request's token from the bucket of <k> under a rule letting
 * <burst> requests through at once and one per <period_ns> on average, at
 * monotonic time <now_ns>. Returns 0 when the request may pass, else the
 * nanoseconds until it would (the request is then not counted). */
int64_t rl_take(struct rl_table *t, const struct sec_key *k,
                int64_t period_ns, uint32_t burst, int64_t now_ns);

/* Buckets not yet back to full at <now_ns> (tests, metrics). */
size_t rl_live(struct rl_table *t, int64_t now_ns);
/* Slots in the table. */
size_t rl_capacity(const struct rl_table *t);

/* ---- connlimit.c ---- */

/* Client connections: a process-wide count against a ceiling, and counts
 * per client address. */
struct connlimit {
    atomic_ulong open; /* reserved or open, all workers */
    unsigned long max;
    struct cl_table *addrs; /* NULL when no listener limits per address */
};

/* Sets up <cl> for <max> connections; per-address counts when
 * <per_addr>. Returns 0 or -ENOMEM. */
int connlimit_init(struct connlimit *cl, unsigned long max, bool per_addr);
void connlimit_fini(struct connlimit *cl);

/* Reserves room for one more connection before accept(2). False at the
 * ceiling: stop accepting until connlimit_release(). */
bool connlimit_reserve(struct connlimit *cl);
void connlimit_release(struct connlimit *cl);
static inline bool connlimit_full(struct connlimit *cl)
{
    return atomic_load_explicit(&cl->open, memory_order_relaxed) >= cl->max;
}

/* Counts one more connection from <sa> on listener <lid>, if fewer than
 * <limit> are open. Returns a handle (>= 0) for connlimit_addr_put(), or
 * -EMFILE at the limit (nothing counted), -ENOSPC when the table has no
 * room. */
int connlimit_addr_get(struct connlimit *cl, uint32_t lid,
                       const struct sockaddr *sa, unsigned limit);
void connlimit_addr_put(struct connlimit *cl, int handle);
/* Open connections counted for <sa> on <lid> (tests). */
unsigned connlimit_addr_count(struct connlimit *cl, uint32_t lid,
                              const struct sockaddr *sa);

/* ---- privdrop.c ---- */

/* Who to become, resolved before chroot (the user database is outside). */
struct priv_plan {
    bool drop;           /* started as root and not staying root */
    uid_t uid;
    gid_t gid;
    char user[65], group[65];
    unsigned long nofile; /* RLIMIT_NOFILE in force after priv_limits() */
};

/* Raises RLIMIT_NOFILE as <s> asks (auto: as root to at least 65536, the
 * soft limit to the hard one), and resolves the user and group to drop to.
 * Returns 0, or -1 with a message for people in <err>. */
int priv_prepare(const struct cfg_security *s, struct priv_plan *p,
                 char *err, size_t errlen);

/* chroot (when configured), then the groups, gid and uid of <p> (when
 * p->drop), then no_new_privs; checks that root cannot be regained.
 * Returns 0, or -1 with the message in <err>. */
int priv_drop(const struct cfg_security *s, const struct priv_plan *p,
              char *err, size_t errlen);

/* ---- sandbox.c ---- */

enum sandbox_role {
    SB_WORKER = 0, /* serves clients: sockets and memory, no files */
    SB_MAIN,       /* waits for signals, reloads: may open files */
    SB_WORKER_FILES, /* a worker that also serves files: static routes, the
                        disk cache (open, stat, rename, unlink; no exec) */
};

/* Installs the seccomp allow list of <role> on the calling thread (threads
 * it creates inherit it). A system call outside the list kills the
 * process (debug builds: a message naming the call first). Returns 0 or
 * -errno. */
int sandbox_enter(enum sandbox_role role);

/* For tests: sandbox_enter() with the release build's rows whatever the
 * build (SB_F_RELEASE: no sanitizer rows), and with the release build's
 * action (SB_F_KILL: SECCOMP_RET_KILL_PROCESS, no message). */
#define SB_F_RELEASE 1u
#define SB_F_KILL 2u
int sandbox__enter(enum sandbox_role role, unsigned flags);

/* The name of syscall <nr> for messages ("openat"), or "?". */
const char *sandbox_syscall_name(int nr);

#endif
