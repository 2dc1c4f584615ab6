/*
 * Worker threads and their configuration generations.
 *
 * A worker serves the connections it accepts on its own SO_REUSEPORT copy
 * of every listener. What it serves them with is a generation (struct gen):
 * a snapshot, the upstream state built from it, and the listening sockets.
 *
 * Reload, seen from a worker: the main thread has loaded and validated the
 * new snapshot, opened sockets for the addresses that are new, and left a
 * message in the worker's inbox. The worker builds a new generation, moves
 * the sockets whose address stays into it (the very same fds: no accept
 * queue is ever closed, so no connection is refused during the swap),
 * accepts what is waiting on the sockets that go away and then closes them,
 * and retires the old generation. Connections keep their generation: a
 * request in flight finishes on the configuration it started with, an idle
 * keep-alive connection serves its next request on it too, with
 * "Connection: close", or closes at its idle timeout. The old generation
 * (and through it the old snapshot and its upstream pools) is freed when
 * its last connection is gone.
 *
 * Graceful stop: workers close their listeners (new connections are
 * refused), close idle keep-alive connections, finish what is in flight
 * with "Connection: close", and exit when nothing is left or when
 * graceful_timeout runs out.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/cache_glue.h"
#include "proxy/cluster_glue.h"
#include "proxy/proxy_int.h"
#include "proxy/worker.h"
#include "tls/tls.h"

const char *worker_date(struct worker *w)
{
    int64_t now = loop_wall(w->loop);
    if (now != w->date_sec) {
        static const char *mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        w->date_sec = now;
        h1_fmt_date(w->date, now);
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(w->clf_date, sizeof(w->clf_date), "%02d/%s/%04d:%02d:%02d:%02d +0000",
                 tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    }
    return w->date;
}

/* Accepts up to <max> waiting connections on <ls>. */
static void accept_some(struct lsock *ls, int max)
{
    struct worker *w = ls->w;
    for (int i = 0; i < max; i++) {
        if (!lim_accept_begin(w))
            return; /* max_connections: paused until there is room */
        union sockaddr_any peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(ls->ev.fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            int err = errno;
            lim_accept_failed(w, err); /* EMFILE: paused for a while */
            if (err == EAGAIN || err == EINTR || w->paused)
                return;
            continue; /* ECONNABORTED and friends */
        }
        conn_accept(w, ls, fd, &peer);
    }
}

static void accept_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct lsock *ls = container_of(e, struct lsock, ev);
    if (!ls->w->ls_closed)
        accept_some(ls, 64);
}

/* ---- generations ---- */

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->nls; i++) {
        if (g->ls[i].ev.fd >= 0) {
            loop_del(g->w->loop, &g->ls[i].ev);
            close(g->ls[i].ev.fd);
        }
    }
    free(g->ls);
    ups_set_free(g->ups);
    ups_state_unref(g->st);
    static_gen_fini(g); /* its open files: keyed by this snapshot's routes */
    cfg_unref(g->cfg);
    free(g);
}

/* A new generation for <cfg> (takes the reference), listeners not open. */
static struct gen *gen_new(struct worker *w, struct cfg *cfg,
                           struct ups_state *st, unsigned id)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->w = w;
    g->cfg = cfg;
    g->id = id;
    g->st = ups_state_ref(st);
    g->ups = ups_set_new(cfg, st, w->loop);
    g->ls = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*g->ls));
    if (g->ups == NULL || g->ls == NULL) {
        g->cfg = NULL;
        gen_free(g);
        return NULL;
    }
    ups_set_metrics(g->ups, w->m);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        g->ls[i] = (struct lsock){ .ev = { -1, accept_event }, .w = w, .g = g,
                                   .cl = &cfg->listeners[i] };
    return g;
}

void gen_conn_closed(struct gen *g)
{
    g->nconns--;
    /* freed at the end of the loop iteration (free_old_gens): the caller
     * may still be inside a transaction that points into it */
}

static void free_old_gens(struct worker *w)
{
    for (struct gen **pp = &w->old; *pp != NULL;) {
        struct gen *g = *pp;
        if (g->nconns > 0) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        log_debug("configuration generation %u: last connection closed", g->id);
        gen_free(g);
    }
}

static bool same_addr(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->len == b->len && strcmp(a->text, b->text) == 0 &&
           memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Applies one reload message: a new current generation. */
static void gen_switch(struct worker *w, struct reload_msg *m)
{
    struct gen *old = w->gen;
    struct gen *g = gen_new(w, m->cfg, m->st, m->id);
    if (g == NULL) {
        log_err("reload: out of memory; generation %u keeps serving", old->id);
        for (size_t i = 0; i < m->cfg->nlisteners; i++)
            if (m->fds[i] >= 0)
                close(m->fds[i]);
        cfg_unref(m->cfg);
        return;
    }
    for (size_t i = 0; i < g->cfg->nlisteners; i++) {
        struct lsock *ls = &g->ls[i];
        int fd = m->fds[i];
        if (fd < 0) { /* same address: take the socket over */
            for (size_t j = 0; j < old->nls; j++) {
                struct lsock *o = &old->ls[j];
                if (o->ev.fd >= 0 && same_addr(&o->cl->addr, &ls->cl->addr)) {
                    loop_del(w->loop, &o->ev);
                    fd = o->ev.fd;
                    o->ev.fd = -1;
                    if (o->cl->backlog != ls->cl->backlog)
                        listen(fd, ls->cl->backlog);
                    break;
                }
            }
        }
        g->nls++;
        if (fd < 0) { /* only after a failed switch (out of memory) */
            log_err("reload: listener %s: no socket; not served", ls->cl->addr.text);
            continue;
        }
        ls->ev.fd = fd;
        if (loop_add_read(w->loop, &ls->ev) < 0)
            log_err("reload: listener %s: cannot watch it", ls->cl->addr.text);
    }
    /* Listeners that are gone: serve what already waits in their queues
     * (under the old configuration), then close them. */
    for (size_t j = 0; j < old->nls; j++) {
        struct lsock *o = &old->ls[j];
        if (o->ev.fd < 0)
            continue;
        accept_some(o, 1 << 20);
        loop_del(w->loop, &o->ev);
        close(o->ev.fd);
        o->ev.fd = -1;
    }
    old->retired = true;
    old->next = w->old;
    w->old = old;
    w->gen = g;
    w->cfg = g->cfg;
    w->ups = g->ups;
    if (m->alog_fd != w->alog.fd) {
        logsink_flush(&w->alog);
        logsink_init(&w->alog, m->alog_fd);
    }
    w->alog_on = m->alog_fd >= 0;
    w->alog_fmt = m->alog_fmt;
    /* Idle keep-alive connections of the old generation stay: closing one
     * now could cross a request the client is sending. They serve one
     * more request with "Connection: close", or time out. */
}

static void take_inbox(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct reload_msg *m = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->mu);
    while (m != NULL) {
        struct reload_msg *next = m->next;
        if (w->draining) { /* stopping anyway */
            for (size_t i = 0; i < m->cfg->nlisteners; i++)
                if (m->fds[i] >= 0)
                    close(m->fds[i]);
            cfg_unref(m->cfg);
        } else {
            gen_switch(w, m);
        }
        free(m->fds);
        free(m);
        m = next;
    }
}

/* ---- stop ---- */

static atomic_int stop_mode;
static atomic_bool skip_delay; /* a second SIGTERM: stop accepting now */
static atomic_int running;     /* worker threads not yet returned */

void worker_skip_delay(void)
{
    atomic_store(&skip_delay, true);
}

int worker_running(void)
{
    return atomic_load(&running);
}

void worker_set_stop_mode(int mode)
{
    atomic_store(&stop_mode, mode);
}

int worker_stop_mode(void)
{
    return atomic_load(&stop_mode);
}

static void on_idle(void *arg)
{
    struct worker *w = arg;
    if (w->alog.len > 0)
        logsink_flush(&w->alog);
    if (w->old != NULL)
        free_old_gens(w);
    if (w->draining && w->ls_closed && w->nconns == 0)
        loop_stop(w->loop);
}

static void drain_deadline(struct loop *l, struct timer *t)
{
    struct worker *w = container_of(t, struct worker, drain_timer);
    log_warn("graceful stop: %u connections still open after the deadline; closing", w->nconns);
    while (w->conns != NULL)
        conn_close(w->conns);
    loop_stop(l);
}

/* No new connections from here on; what is open has graceful_timeout. */
static void close_listeners(struct worker *w)
{
    if (w->ls_closed)
        return;
    w->ls_closed = true;
    struct gen *g = w->gen;
    for (size_t i = 0; i < g->nls; i++) {
        if (g->ls[i].ev.fd < 0)
            continue;
        loop_del(w->loop, &g->ls[i].ev);
        close(g->ls[i].ev.fd);
        g->ls[i].ev.fd = -1;
    }
    timer_set(w->loop, &w->drain_timer, g->cfg->graceful_timeout, drain_deadline);
}

static void drain_delay_over(struct loop *l, struct timer *t)
{
    (void)l;
    close_listeners(container_of(t, struct worker, drain_timer));
}

/* Stops keeping connections alive and lets them finish. <now>: close them
 * all at once. <keep_idle> (binary upgrade): idle keep-alive connections
 * are not closed under their clients either; like those of a retired
 * generation they serve one more request with "Connection: close" or time
 * out, since a new process now accepts on the same sockets. <delay> (a
 * cluster drain): ms to go on accepting before the listeners close, for
 * the balancer to see /healthz fail; 0: close them now. */
static void start_draining(struct worker *w, bool now, bool keep_idle, int64_t delay)
{
    if (!w->draining) {
        w->draining = true;
        if (!keep_idle)
            conn_drain_idle(w);
        if (delay > 0)
            timer_set(w->loop, &w->drain_timer, delay, drain_delay_over);
    }
    if (delay == 0)
        close_listeners(w);
    if (now) {
        while (w->conns != NULL)
            conn_close(w->conns);
        loop_stop(w->loop);
    }
}

static void wake_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct worker *w = container_of(e, struct worker, wake);
    uint64_t v;
    if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    take_inbox(w);
    int mode = worker_stop_mode();
    if (mode != WSTOP_NONE)
        start_draining(w, mode == WSTOP_NOW, mode == WSTOP_UPGRADE,
                       mode == WSTOP_GRACEFUL && !atomic_load(&skip_delay)
                           ? w->gen->cfg->cluster.drain_delay : 0);
}

/* ---- life cycle ---- */

void *worker_main(void *arg)
{
    struct worker *w = arg;
    char tag[16];
    snprintf(tag, sizeof(tag), "w%d", w->id);
    log_set_thread_tag(tag);
    if (harden_worker(w) < 0) /* sandboxed before serving, or not at all */
        return NULL;
    atomic_fetch_add(&running, 1);
    int rc = loop_run(w->loop);
    if (rc < 0)
        log_err("worker %d: event loop failed: %s", w->id, strerror(-rc));
    logsink_flush(&w->alog);
    clglue_worker_fini(w); /* needs the loop */
    cglue_worker_fini(w); /* background fetches hold upstream connections */
    /* Upstream connections use this thread's buffer cache: free them here. */
    while (w->old != NULL) {
        struct gen *g = w->old;
        w->old = g->next;
        gen_free(g);
    }
    if (w->gen != NULL)
        gen_free(w->gen);
    w->gen = NULL;
    w->cfg = NULL;
    w->ups = NULL;
    fwd_worker_free(w);
    pool_thread_cleanup();
    buf_thread_cleanup();
    tls_thread_cleanup();
    atomic_fetch_sub(&running, 1);
    return NULL;
}

int worker_init(struct worker *w, int id, struct cfg *cfg,
                struct ups_state *st, struct cache *cache, int alog_fd,
                struct mworker *m, const int *fds)
{
    w->id = id;
    w->m = m;
    pthread_mutex_init(&w->mu, NULL);
    w->wake.fd = -1;
    w->loop = loop_new();
    if (w->loop == NULL)
        return -errno;
    loop_set_data(w->loop, w);
    w->cache = cache;
    if (cache != NULL && cglue_worker_init(w) < 0)
        return -ENOMEM;
    w->gen = gen_new(w, cfg_ref(cfg), st, 1);
    if (w->gen == NULL) {
        cfg_unref(cfg);
        return -ENOMEM;
    }
    w->cfg = cfg;
    w->ups = w->gen->ups;
    int frc = fwd_worker_new(w);
    if (frc < 0) {
        log_err("worker %d: forward proxy: %s", id, strerror(-frc));
        return frc;
    }
    if (clglue_worker_init(w, cfg) < 0) /* Redis, when configured */
        return -ENOMEM;
    if (w->shared != NULL)
        cglue_cluster_init(w); /* purges from the other nodes */

    w->alog_on = alog_fd >= 0;
    w->alog_fmt = cfg->log.format;
    logsink_init(&w->alog, alog_fd);
    loop_on_idle(w->loop, on_idle, w);
    w->date_sec = -1;
    (void)worker_date(w);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct lsock *ls = &w->gen->ls[i];
        ls->ev.fd = fds[i];
        w->gen->nls++;
        int rc = loop_add_read(w->loop, &ls->ev);
        if (rc < 0)
            return rc;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1)
        return -errno;
    w->wake = (struct ev){ efd, wake_event };
    return loop_add_read(w->loop, &w->wake);
}

void worker_fini(struct worker *w)
{
    clglue_worker_fini(w); /* never started */
    cglue_worker_fini(w);
    fwd_worker_free(w);
    if (w->gen != NULL) /* never started */
        gen_free(w->gen);
    w->gen = NULL;
    if (w->wake.fd >= 0)
        close(w->wake.fd);
    pthread_mutex_lock(&w->mu);
    struct reload_msg *m = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->mu);
    while (m != NULL) {
        struct reload_msg *next = m->next;
        for (size_t i = 0; i < m->cfg->nlisteners; i++)
            if (m->fds[i] >= 0)
                close(m->fds[i]);
        cfg_unref(m->cfg);
        free(m->fds);
        free(m);
        m = next;
    }
    pthread_mutex_destroy(&w->mu);
    loop_free(w->loop);
}

void worker_post(struct worker *w, struct reload_msg *m)
{
    pthread_mutex_lock(&w->mu);
    struct reload_msg **pp = &w->inbox;
    while (*pp != NULL)
        pp = &(*pp)->next;
    m->next = NULL;
    *pp = m;
    pthread_mutex_unlock(&w->mu);
    worker_wake(w);
}

void worker_wake(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->wake.fd, &one, sizeof(one)) < 0)
        log_err("cannot wake worker %d: %s", w->id, strerror(errno));
}
