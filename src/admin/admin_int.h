/* Internals shared by the files of src/admin/. */
#ifndef GH_ADMIN_ADMIN_INT_H
#define GH_ADMIN_ADMIN_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/admin.h"
#include "admin/metrics.h"
#include "admin/sbuf.h"
#include "core/loop.h"

/* One second of history, as the dashboard draws it. */
struct sample {
    int64_t t_ms; /* wall clock */
    double rps, err_ps, p50_ms, p90_ms, p99_ms, out_bps;
    uint64_t conns;
};

#define HISTORY_LEN 300

struct history {
    struct sample s[HISTORY_LEN];
    unsigned head, n; /* ring: the newest is s[(head + n - 1) % LEN] */
    uint64_t prev[MR_END];
    int64_t prev_ms;
    bool have_prev;
};

struct aconn;

struct admin {
    struct metrics *m;
    int nworkers;
    pthread_t thread;
    struct loop *loop;
    struct ev wake;  /* eventfd: a new snapshot, or stop */
    struct ev lsn;   /* the listening socket, fd -1 when none */
    struct timer tick;
    struct cfg *cfg; /* the thread's snapshot (a reference) */
    struct aconn *conns;
    unsigned nconns;
    struct history hist;
    int64_t start_ms;
    /* main thread's view, for admin_prepare() */
    bool main_enabled;
    struct cfg_addr main_addr;
    /* shared with the main thread, under <mu> */
    pthread_mutex_t mu;
    struct cfg *pending;
    int pending_fd;
    bool stop, draining;
    unsigned generation;
    uint64_t reloads_ok, reloads_failed;
    int64_t last_reload_ms;
    bool last_reload_ok;
    char last_error[512];
};

/* ---- admin.c ---- */
int64_t admin_wall_ms(void);

/* ---- status.c ---- */
/* Takes one sample of the counters into the history (once a second). */
void status_sample(struct admin *a);
/* The /status document (JSON) into a malloc'd string; NULL when out of
 * memory. */
char *status_json(struct admin *a, size_t *len);
/* Process lines for /metrics (reloads, generation, draining, uptime). */
void status_prometheus(struct admin *a, struct sbuf *b);

/* ---- dashboard.c ---- */
extern const char dashboard_html[];
extern const unsigned dashboard_html_len;

#endif
