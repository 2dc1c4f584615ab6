/*
 * Worker threads, for server.c (the main thread). See worker.c.
 */
#ifndef GH_PROXY_WORKER_H
#define GH_PROXY_WORKER_H

#include "admin/metrics.h"
#include "config/config.h"
#include "proxy/proxy_int.h"

/* WSTOP_UPGRADE: a new process took the listening sockets over; stop
 * accepting, finish every connection, including idle keep-alive ones
 * (one more request each, with "Connection: close"). */
enum { WSTOP_NONE = 0, WSTOP_GRACEFUL = 1, WSTOP_NOW = 2, WSTOP_UPGRADE = 3 };

/* Prepares worker <id> (1-based) on <cfg> (takes its own reference) with
 * the listening sockets <fds> (one per listener of cfg, owned by the worker
 * from now on, even on failure) and the access log <alog_fd> (-1: off).
 * Runs on the main thread. Returns 0 or -errno. */
int worker_init(struct worker *w, int id, struct cfg *cfg,
                struct ups_state *st, struct cache *cache, int alog_fd,
                struct mworker *m, const int *fds);
/* The thread's body: runs the loop until stopped, then frees what the
 * thread owns. */
void *worker_main(void *arg);
/* After the thread was joined (or never started). */
void worker_fini(struct worker *w);

/* Hands <m> (malloc'd, with its fds and cfg reference) to the worker, which
 * applies messages in the order they were posted. */
void worker_post(struct worker *w, struct reload_msg *m);
/* Makes the worker look at its inbox and at the stop mode. */
void worker_wake(struct worker *w);

void worker_set_stop_mode(int mode);
int worker_stop_mode(void);
/* A graceful stop skips what is left of cluster.drain_delay. */
void worker_skip_delay(void);
/* Worker threads still running (or prepared and not finished). */
int worker_running(void);

#endif
