/*
 * Process model: the main thread binds every listener once per worker
 * (SO_REUSEPORT, so the kernel spreads connections over workers), starts
 * the workers, then waits for signals with sigwaitinfo(). Workers never see
 * a signal; the main thread tells them to stop through an eventfd each.
 *
 * Graceful stop (SIGTERM): workers close their listeners (new connections
 * are refused), close idle keep-alive connections, finish what is in flight
 * with "Connection: close", and exit when nothing is left or when
 * graceful_timeout runs out. SIGINT stops at once.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

enum { STOP_NONE = 0, STOP_GRACEFUL = 1, STOP_NOW = 2 };
static atomic_int stop_mode;

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

static void accept_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct lsock *ls = container_of(e, struct lsock, ev);
    struct worker *w = ls->w;
    for (int i = 0; i < 64 && !w->draining; i++) {
        union sockaddr_any peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(e->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            int err = errno;
            if (err == EAGAIN || err == EINTR)
                return;
            if (err == EMFILE || err == ENFILE) {
                log_err("accept: %s", strerror(err));
                return;
            }
            continue; /* ECONNABORTED and friends */
        }
        conn_accept(w, ls->cl, fd, &peer);
    }
}

static void flush_logs(void *arg)
{
    struct worker *w = arg;
    if (w->alog.len > 0)
        logsink_flush(&w->alog);
    if (w->draining && w->nconns == 0)
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

static void start_draining(struct worker *w, bool now)
{
    if (!w->draining) {
        w->draining = true;
        for (size_t i = 0; i < w->nls; i++) {
            loop_del(w->loop, &w->ls[i].ev);
            close(w->ls[i].ev.fd);
            w->ls[i].ev.fd = -1;
        }
        conn_drain_idle(w);
        timer_set(w->loop, &w->drain_timer, w->cfg->graceful_timeout, drain_deadline);
    }
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
    int mode = atomic_load(&stop_mode);
    if (mode != STOP_NONE)
        start_draining(w, mode == STOP_NOW);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char tag[16];
    snprintf(tag, sizeof(tag), "w%d", w->id);
    log_set_thread_tag(tag);
    int rc = loop_run(w->loop);
    if (rc < 0)
        log_err("worker %d: event loop failed: %s", w->id, strerror(-rc));
    logsink_flush(&w->alog);
    ups_set_free(w->ups);
    w->ups = NULL;
    fwd_worker_free(w);
    pool_thread_cleanup();
    buf_thread_cleanup();
    return NULL;
}

static int worker_init(struct worker *w, int id, struct cfg *cfg, int alog_fd)
{
    w->id = id;
    w->cfg = cfg;
    w->loop = loop_new();
    if (w->loop == NULL)
        return -errno;
    loop_set_data(w->loop, w);
    w->ups = ups_set_new(cfg, w->loop);
    if (w->ups == NULL)
        return -ENOMEM;
    int frc = fwd_worker_new(w);
    if (frc < 0) {
        log_err("worker %d: forward proxy: %s", id, strerror(-frc));
        return frc;
    }
    w->alog_on = alog_fd >= 0;
    w->alog_fmt = cfg->log.format;
    logsink_init(&w->alog, alog_fd);
    loop_on_idle(w->loop, flush_logs, w);
    w->date_sec = -1;
    (void)worker_date(w);

    w->ls = calloc(cfg->nlisteners, sizeof(*w->ls));
    if (w->ls == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = &cfg->listeners[i];
        int fd = sock_listen((const struct sockaddr *)&cl->addr.ss, cl->addr.len,
                             cl->backlog, true);
        if (fd < 0) {
            log_err("listen %s: %s", cl->addr.text, strerror(-fd));
            return fd;
        }
        w->ls[i] = (struct lsock){ .ev = { fd, accept_event }, .w = w, .cl = cl };
        w->nls++;
        int rc = loop_add_read(w->loop, &w->ls[i].ev);
        if (rc < 0)
            return rc;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1)
        return -errno;
    w->wake = (struct ev){ efd, wake_event };
    return loop_add_read(w->loop, &w->wake);
}

static void worker_fini(struct worker *w)
{
    for (size_t i = 0; i < w->nls; i++)
        if (w->ls[i].ev.fd >= 0)
            close(w->ls[i].ev.fd);
    free(w->ls);
    if (w->wake.fd > 0)
        close(w->wake.fd);
    ups_set_free(w->ups);
    fwd_worker_free(w);
    loop_free(w->loop);
}

static void notify_workers(struct worker *ws, int n, int mode)
{
    atomic_store(&stop_mode, mode);
    uint64_t one = 1;
    for (int i = 0; i < n; i++)
        if (write(ws[i].wake.fd, &one, sizeof(one)) < 0)
            log_err("cannot wake worker %d: %s", i, strerror(errno));
}

static int write_pid(const char *path)
{
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "we");
    if (f == NULL) {
        log_err("pid file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    return 0;
}

/* Waits for signals until one asks us to stop; returns the stop mode. */
static int wait_signals(struct worker *ws, int n)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig == -1)
            continue;
        switch (sig) {
        case SIGTERM:
        case SIGQUIT:
            log_info("signal %d: graceful stop", sig);
            notify_workers(ws, n, STOP_GRACEFUL);
            return STOP_GRACEFUL;
        case SIGINT:
            log_info("SIGINT: stopping now");
            notify_workers(ws, n, STOP_NOW);
            return STOP_NOW;
        default:
            log_info("signal %d ignored (reload and log reopen are not built yet)", sig);
            break;
        }
    }
}

int server_run(struct cfg *cfg)
{
    int status = 1;
    int off = 0;
    int alog_fd = log_open(cfg->log.access, &off);
    if (alog_fd < 0 && !off) {
        log_err("access log %s: %s", cfg->log.access, strerror(-alog_fd));
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int n = cfg->workers;
    struct worker *ws = calloc((size_t)n, sizeof(*ws));
    if (ws == NULL)
        return 1;
    int started = 0, inited = 0;
    for (; inited < n; inited++) {
        if (worker_init(&ws[inited], inited + 1, cfg, off ? -1 : alog_fd) < 0) {
            inited++;
            goto Exit;
        }
    }
    if (write_pid(cfg->pid_file) < 0)
        goto Exit;
    for (; started < n; started++) {
        int rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
        if (rc != 0) {
            log_err("cannot start worker: %s", strerror(rc));
            notify_workers(ws, started, STOP_NOW);
            goto Exit;
        }
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        log_info("listening on %s (%d workers)", cfg->listeners[i].addr.text, n);
    wait_signals(ws, n);
    status = 0;
Exit:
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    for (int i = 0; i < inited; i++)
        worker_fini(&ws[i]);
    free(ws);
    if (cfg->pid_file != NULL && status == 0)
        unlink(cfg->pid_file);
    if (alog_fd > 2)
        close(alog_fd);
    log_info("stopped");
    return status;
}
