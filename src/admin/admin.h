/*
 * The admin listener: /metrics (Prometheus), /status (JSON), /healthz (for
 * an L4 balancer: 503 while draining) and / (the live dashboard), served by
 * a thread of its own.
 *
 * Why its own thread rather than a worker's loop: /healthz must keep
 * answering 503 while the workers drain and leave their loops; rendering a
 * scrape or the status page (tens of KiB) must not add latency to the
 * proxied requests of the worker that would carry it; and the once-a-second
 * sampler that feeds the dashboard's history needs a clock nobody else
 * depends on. The thread sleeps in epoll between requests.
 */
#ifndef GH_ADMIN_ADMIN_H
#define GH_ADMIN_ADMIN_H

#include <stdbool.h>

#include "admin/metrics.h"
#include "config/config.h"

struct admin;

/* Creates the admin state for <cfg> and, when the config has an admin
 * section, uses <fd> as its listener (a socket handed over by a previous
 * process) or binds one when <fd> is -1. Main thread, before the workers
 * start. Returns NULL (with the reason logged) when the listener cannot be
 * bound or out of memory. */
struct admin *admin_new(struct metrics *m, struct cfg *cfg, int nworkers, int fd);
/* The listening socket admin_new() set up, -1 when none. */
int admin_listen_fd(const struct admin *a);
/* Starts the thread. 0 or -errno. */
int admin_start(struct admin *a);
/* Stops and joins the thread. */
void admin_stop(struct admin *a);
void admin_free(struct admin *a);

/* Reload, main thread. admin_prepare() opens what <n> needs: *fd is a new
 * listening socket, -1 to keep the current one, -2 to close it. Returns 0
 * or -errno (nothing kept open). admin_commit() hands <n> (a new reference
 * is taken) and <fd> to the thread. */
int admin_prepare(struct admin *a, const struct cfg *n, int *fd);
void admin_commit(struct admin *a, struct cfg *n, int fd);

/* What /status reports about the process. */
void admin_note_reload(struct admin *a, bool ok, unsigned generation,
                       const char *error);
void admin_set_draining(struct admin *a);

#endif
