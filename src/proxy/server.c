/*
 * Process model: the main thread binds every listener once per worker
 * (SO_REUSEPORT, so the kernel spreads connections over workers), starts
 * the workers and the admin thread, then waits for signals with
 * sigwaitinfo(). Workers never see a signal; the main thread talks to them
 * through an eventfd and an inbox each.
 *
 *   SIGTERM, SIGQUIT  graceful stop (worker.c)
 *   SIGINT            stop now
 *   SIGHUP            reload the configuration file
 *   SIGUSR1           reopen the log files (after logrotate moved them)
 *   SIGUSR2           binary upgrade: hand the listening sockets to a new
 *                     process, then finish (upgrade.c)
 *
 * Reload, on the main thread: load and validate the file; give its
 * listeners, routes and servers their metrics slots; open, for each worker,
 * a socket for every listener address that is new; let the admin listener
 * prepare likewise. Only when all of that worked is anything committed:
 * each worker gets a message (worker.c switches generations), the admin
 * thread gets the snapshot. Any failure before that closes what was opened
 * and leaves the running configuration serving, with the reason in the
 * error log and in /status. Capabilities with per-snapshot resources that
 * can fail to load (TLS certificates, issue 6) prepare them in
 * reload_prepare() too, so that a bad certificate refuses the reload like
 * a bad file.
 *
 * Log files are reopened with dup2() onto the descriptors in use: a worker
 * writing at that instant writes to the old file or to the new one, never
 * to a closed descriptor, and no thread has to be told.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cluster/node.h"
#include "cluster/shared.h"
#include "core/macros.h"
#include "core/notify.h"
#include "core/sock.h"
#include "proxy/proxy.h"
#include "proxy/cache_glue.h"
#include "proxy/proxy_int.h"
#include "proxy/upgrade.h"
#include "proxy/worker.h"
#include "tls/tls.h"

struct server {
    struct cfg *cur;     /* the snapshot the workers were last given */
    const char *file;    /* what SIGHUP reloads; NULL: the built-in one */
    struct worker *ws;
    int n;
    struct metrics *m;
    struct admin *admin;
    unsigned gen;        /* generation of cur */
    int alog_fd;         /* -1 when off */
    const char *alog_path; /* the file behind alog_fd, or NULL */
    const char *elog_path;
    int *lfds;           /* worker x listener of cur: the listening sockets */
    int admin_fd;        /* the admin listener's socket, -1 when none */
    char **argv;         /* to start the binary anew (upgrade) */
    bool upgraded;       /* a new process took over: leave the pid file */
    struct ups_state *st;      /* upstream state of cur (health, in flight) */
    struct ups_health *health; /* the health thread of st, or NULL */
    struct cache *cache;       /* shared by the workers; NULL: no caching
                                  (built at start: a reload keeps it) */
    bool sandboxed;      /* the seccomp sandbox is on: no exec (upgrade) */
    int inited, started; /* workers prepared / running (for the teardown) */
    bool admin_up;       /* the admin thread runs */
};

/* ---- listeners ---- */

static int open_listener(const struct cfg_listener *cl)
{
    int fd = sock_listen((const struct sockaddr *)&cl->addr.ss, cl->addr.len,
                         cl->backlog, true);
    if (fd < 0)
        log_err("listen %s: %s", cl->addr.text, strerror(-fd));
    return fd;
}

static bool addr_in(const struct cfg *c, const struct cfg_addr *a)
{
    for (size_t i = 0; c != NULL && i < c->nlisteners; i++) {
        const struct cfg_addr *b = &c->listeners[i].addr;
        if (a->len == b->len && strcmp(a->text, b->text) == 0 &&
            memcmp(&a->ss, &b->ss, a->len) == 0)
            return true;
    }
    return false;
}

/* fds[w * nl + i]: worker w's socket for listener i of <n>, or -1 when
 * <old> already listens there. At start (old NULL) a socket handed over
 * by a previous process is used first. Returns 0 or -errno with all
 * closed. */
static int open_listeners(const struct cfg *old, const struct cfg *n, int nw,
                          int *fds)
{
    size_t nl = n->nlisteners;
    for (size_t k = 0; k < (size_t)nw * nl; k++)
        fds[k] = -1;
    for (int w = 0; w < nw; w++) {
        for (size_t i = 0; i < nl; i++) {
            if (addr_in(old, &n->listeners[i].addr))
                continue;
            const struct cfg_addr *a = &n->listeners[i].addr;
            int fd = old == NULL ? upgrade_take(a->text, a) : -1;
            if (fd < 0)
                fd = open_listener(&n->listeners[i]);
            if (fd < 0) {
                for (size_t k = 0; k < (size_t)nw * nl; k++)
                    if (fds[k] >= 0)
                        close(fds[k]);
                return fd;
            }
            fds[(size_t)w * nl + i] = fd;
        }
    }
    return 0;
}

/* ---- logs ---- */

static bool is_file(const char *dest)
{
    return dest != NULL && strcmp(dest, "stdout") != 0 &&
           strcmp(dest, "stderr") != 0 && strcmp(dest, "off") != 0;
}

/* Opens <path> and puts it behind <fd> (dup2). 0 or -errno. */
static int reopen_onto(const char *path, int fd)
{
    int off = 0;
    int nfd = log_open(path, &off);
    if (nfd < 0)
        return nfd;
    int rc = dup2(nfd, fd) == -1 ? -errno : 0;
    close(nfd);
    return rc;
}

static void reopen_logs(struct server *s)
{
    if (s->alog_path != NULL && s->alog_fd > 2) {
        int rc = reopen_onto(s->alog_path, s->alog_fd);
        if (rc < 0)
            log_err("reopen access log %s: %s", s->alog_path, strerror(-rc));
    }
    int efd = log_error_fd();
    if (s->elog_path != NULL && efd > 2) {
        int rc = reopen_onto(s->elog_path, efd);
        if (rc < 0)
            log_err("reopen error log %s: %s", s->elog_path, strerror(-rc));
    }
    log_info("SIGUSR1: log files reopened");
}

/* The access log of <n>: the same descriptor when the destination did not
 * change, the file reopened behind it when it did. Returns the fd workers
 * should use (-1: off), or -2 on failure (the reload is refused). */
static int access_log_for(struct server *s, const struct cfg *n)
{
    const char *dest = n->log.access;
    if (strcmp(dest, "off") == 0)
        return -1;
    if (!is_file(dest))
        return strcmp(dest, "stderr") == 0 ? 2 : 1;
    if (s->alog_path != NULL && strcmp(s->alog_path, dest) == 0)
        return s->alog_fd;
    int off = 0;
    int fd = log_open(dest, &off);
    if (fd < 0) {
        log_err("reload: access log %s: %s", dest, strerror(-fd));
        return -2;
    }
    if (s->alog_fd > 2 && s->alog_path != NULL) { /* keep the fd number */
        if (dup2(fd, s->alog_fd) == -1) {
            close(fd);
            return -2;
        }
        close(fd);
        fd = s->alog_fd;
    }
    return fd;
}

/* ---- reload ---- */

/* After a reload: the sockets each worker will listen on, in <lfds>
 * (replacing s->lfds): the new ones in <fds>, the others taken over from
 * the current table. */
static void track_listeners(struct server *s, const struct cfg *n,
                           const int *fds, int *lfds)
{
    size_t nl = n->nlisteners, ol = s->cur->nlisteners;
    for (int w = 0; w < s->n; w++) {
        for (size_t i = 0; i < nl; i++) {
            size_t k = (size_t)w * nl + i;
            lfds[k] = fds[k];
            for (size_t j = 0; lfds[k] < 0 && j < ol; j++) {
                const struct cfg_addr *a = &n->listeners[i].addr;
                const struct cfg_addr *b = &s->cur->listeners[j].addr;
                if (a->len == b->len && strcmp(a->text, b->text) == 0 &&
                    memcmp(&a->ss, &b->ss, a->len) == 0)
                    lfds[k] = s->lfds[(size_t)w * ol + j];
            }
        }
    }
    free(s->lfds);
    s->lfds = lfds;
}

static void refuse(struct server *s, const char *why)
{
    log_err("reload refused: %s; generation %u keeps serving", why, s->gen);
    admin_note_reload(s->admin, false, s->gen, why);
}

static void warn_fixed(const struct server *s, const struct cfg *n)
{
    if (n->workers != s->n)
        log_warn("reload: \"workers\" changed to %d; a restart applies it "
                 "(%d keep running)", n->workers, s->n);
    const char *a = s->cur->pid_file, *b = n->pid_file;
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
        log_warn("reload: \"pid_file\" changed; a restart applies it");
    if (!shared_cfg_same(&s->cur->cluster.redis, &n->cluster.redis))
        log_warn("reload: \"cluster.redis\" changed; a restart applies it");
}

/* Everything that can fail, before anything is committed. */
static int reload_prepare(struct server *s, struct cfg *n, int *fds,
                          int *admin_fd, int *alog_fd, char *why, size_t whylen)
{
    if (metrics_register(s->m, n) < 0) {
        snprintf(why, whylen, "out of memory for metrics");
        return -ENOMEM;
    }
    int rc = open_listeners(s->cur, n, s->n, fds);
    if (rc < 0) {
        snprintf(why, whylen, "cannot listen: %s (see above)", strerror(-rc));
        return rc;
    }
    rc = admin_prepare(s->admin, n, admin_fd);
    if (rc < 0) {
        snprintf(why, whylen, "admin listener %s: %s", n->admin.addr.text,
                 strerror(-rc));
        goto Close;
    }
    *alog_fd = access_log_for(s, n);
    if (*alog_fd == -2) {
        snprintf(why, whylen, "cannot open the access log %s", n->log.access);
        rc = -EIO;
        if (*admin_fd >= 0)
            close(*admin_fd);
        goto Close;
    }
    return 0;
Close:
    for (size_t k = 0; k < (size_t)s->n * n->nlisteners; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    return rc;
}

/* The new snapshot <n> goes to every worker with its listening sockets
 * (<fds>, worker x listener), and becomes the current one. Nothing here
 * fails in a way that keeps the old snapshot. */
static void reload_commit(struct server *s, struct cfg *n, const int *fds, int *lfds,
                          int admin_fd, int alog_fd, struct ups_state *st,
                          struct ups_health *health)
{
    size_t nl = n->nlisteners;
    track_listeners(s, n, fds, lfds);
    if (admin_fd >= 0 || admin_fd == -2)
        s->admin_fd = admin_fd >= 0 ? admin_fd : -1;
    s->gen++;
    for (int w = 0; w < s->n; w++) {
        struct reload_msg *m = calloc(1, sizeof(*m));
        int *wfds = malloc((nl ? nl : 1) * sizeof(*wfds));
        AN(m); /* a few bytes: out of memory here is fatal, as at start */
        AN(wfds);
        memcpy(wfds, fds + (size_t)w * nl, nl * sizeof(*wfds));
        *m = (struct reload_msg){ .cfg = cfg_ref(n), .st = st, .id = s->gen,
                                  .fds = wfds, .alog_fd = alog_fd,
                                  .alog_fmt = n->log.format };
        worker_post(&s->ws[w], m);
    }
    if (is_file(n->log.access)) {
        s->alog_fd = alog_fd;
        s->alog_path = n->log.access;
    }
    log_set_level(n->log.level);
    admin_commit(s->admin, n, admin_fd);
    /* the old generations keep their state until their last connection
     * goes; its health thread stops now. The state points into its
     * snapshot (and holds no reference): let go of it first. */
    ups_health_stop(s->health);
    ups_state_unref(s->st);
    s->st = st;
    s->health = health;
    cfg_unref(s->cur);
    s->cur = n;
    if (!is_file(n->log.access) && s->alog_path != NULL)
        s->alog_path = NULL; /* its fd stays open, unused */
    log_info("reloaded %s: generation %u", n->file, s->gen);
    admin_note_reload(s->admin, true, s->gen, NULL);
}

static void reload_config(struct server *s)
{
    char err[1024] = "";
    struct cfg *n = s->file != NULL
                        ? cfg_load_file(s->file, err, sizeof(err))
                        : cfg_load_string(cfg_default_yaml, strlen(cfg_default_yaml),
                                          "<default>", err, sizeof(err));
    if (n == NULL) {
        refuse(s, err);
        return;
    }
    size_t nl = n->nlisteners;
    int *fds = calloc((size_t)s->n * (nl ? nl : 1), sizeof(*fds));
    int admin_fd = -1, alog_fd = -1;
    char why[512];
    if (fds == NULL) {
        refuse(s, "out of memory");
        cfg_unref(n);
        return;
    }
    if (reload_prepare(s, n, fds, &admin_fd, &alog_fd, why, sizeof(why)) < 0) {
        refuse(s, why);
        free(fds);
        cfg_unref(n);
        return;
    }
    warn_fixed(s, n);
    int *lfds = malloc((size_t)s->n * (nl ? nl : 1) * sizeof(*lfds));
    /* servers kept by name and address keep their health and load */
    struct ups_state *st = lfds != NULL ? ups_state_new(n, s->st) : NULL;
    struct ups_health *health = NULL;
    if (st != NULL && ups_health_start(st, &health) < 0) {
        ups_state_unref(st);
        st = NULL;
    }
    if (lfds == NULL || st == NULL) {
        refuse(s, "out of memory");
        free(lfds);
        for (size_t k = 0; k < (size_t)s->n * nl; k++)
            if (fds[k] >= 0)
                close(fds[k]);
        if (admin_fd >= 0)
            close(admin_fd);
        free(fds);
        cfg_unref(n);
        return;
    }
    reload_commit(s, n, fds, lfds, admin_fd, alog_fd, st, health);
    free(fds);
}

/* SIGHUP, told to systemd (Type=notify) as it happens. */
static void reload(struct server *s)
{
    notify_send("RELOADING=1\nSTATUS=reloading %s", s->file ? s->file : "<default>");
    reload_config(s);
    notify_send("READY=1\nSTATUS=generation %u", s->gen);
}

/* ---- signals ---- */

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void notify_workers(struct server *s, int mode)
{
    worker_set_stop_mode(mode);
    for (int i = 0; i < s->n; i++)
        worker_wake(&s->ws[i]);
}

/* Waits for signals until one asks us to stop. After a graceful stop began
 * it goes on until the workers are done, so that SIGTERM again (skip the
 * rest of cluster.drain_delay) or SIGINT can still cut a drain short. */
static void wait_signals(struct server *s, const sigset_t *set)
{
    bool stopping = false;
    for (;;) {
        siginfo_t si;
        int sig;
        if (stopping) {
            if (worker_running() == 0)
                return;
            struct timespec ts = { 0, 100 * 1000 * 1000 };
            sig = sigtimedwait(set, &si, &ts);
        } else {
            sig = sigwaitinfo(set, &si);
        }
        if (sig == -1)
            continue;
        if (stopping && sig != SIGTERM && sig != SIGQUIT && sig != SIGINT)
            continue; /* no reload or upgrade while stopping */
        switch (sig) {
        case SIGTERM:
        case SIGQUIT:
            if (stopping) {
                log_info("signal %d again: no more new connections", sig);
                worker_skip_delay();
                notify_workers(s, WSTOP_GRACEFUL);
                break;
            }
            stopping = true;
            node_drain_begin();
            if (s->cur->cluster.drain_delay > 0)
                log_info("signal %d: draining: health checks fail from now on, "
                         "new connections accepted for %lldms more, then a "
                         "graceful stop", sig,
                         (long long)s->cur->cluster.drain_delay);
            else
                log_info("signal %d: graceful stop", sig);
            notify_send("STOPPING=1");
            admin_set_draining(s->admin);
            notify_workers(s, WSTOP_GRACEFUL);
            break;
        case SIGINT:
            log_info("SIGINT: stopping now");
            notify_send("STOPPING=1");
            notify_workers(s, WSTOP_NOW);
            return;
        case SIGHUP:
            log_info("SIGHUP: reloading %s", s->file ? s->file : "<default>");
            reload(s);
            break;
        case SIGUSR1:
            reopen_logs(s);
            break;
        case SIGUSR2:
            if (s->sandboxed) { /* docs/security.md "Binary upgrade" */
                log_err("SIGUSR2: binary upgrade refused: the sandbox forbids "
                        "starting a program (security.sandbox: false allows "
                        "it)");
                break;
            }
            log_info("SIGUSR2: binary upgrade");
            if (upgrade_start(s->argv, s->cur, s->n, s->lfds, s->admin_fd) > 0) {
                s->upgraded = true;
                admin_commit(s->admin, s->cur, -2); /* the new one has it */
                notify_workers(s, WSTOP_UPGRADE);
                return;
            }
            break;
        default:
            break;
        }
    }
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

/* Binds listener sockets for every worker and prepares them. */
static int start_workers(struct server *s, struct cfg *cfg, int *inited)
{
    size_t nl = cfg->nlisteners;
    int *fds = calloc((size_t)s->n * (nl ? nl : 1), sizeof(*fds));
    if (fds == NULL)
        return -ENOMEM;
    int rc = open_listeners(NULL, cfg, s->n, fds);
    if (rc < 0) {
        free(fds);
        return rc;
    }
    s->lfds = malloc((size_t)s->n * (nl ? nl : 1) * sizeof(*s->lfds));
    if (s->lfds == NULL) {
        for (size_t k = 0; k < (size_t)s->n * nl; k++)
            close(fds[k]);
        free(fds);
        return -ENOMEM;
    }
    memcpy(s->lfds, fds, (size_t)s->n * nl * sizeof(*fds));
    for (; *inited < s->n; (*inited)++) {
        int w = *inited;
        rc = worker_init(&s->ws[w], w + 1, cfg, s->st, s->cache, s->alog_fd,
                         metrics_worker(s->m, w), fds + (size_t)w * nl);
        if (rc < 0) {
            (*inited)++;
            for (size_t k = (size_t)(w + 1) * nl; k < (size_t)s->n * nl; k++)
                close(fds[k]);
            break;
        }
    }
    free(fds);
    return rc;
}

/* Says once whether kernel TLS can take over the record layer. */
static void log_tls(const struct cfg *cfg)
{
    bool want = false;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        want |= cfg->listeners[i].tls != NULL && cfg->listeners[i].tls->ktls;
    if (want)
        log_info("kernel TLS: %s", tls_ktls_available()
                                       ? "offered by the kernel (used when the cipher allows)"
                                       : "not offered by this kernel (no \"tls\" TCP ULP); "
                                         "OpenSSL does the records");
}

/* The access log, and the paths a reopen (SIGUSR1) needs. */
static int open_access_log(struct server *s, const struct cfg *cfg)
{
    int off = 0;
    s->alog_fd = log_open(cfg->log.access, &off);
    if (s->alog_fd < 0 && !off) {
        log_err("access log %s: %s", cfg->log.access, strerror(-s->alog_fd));
        return -1;
    }
    if (off)
        s->alog_fd = -1;
    if (is_file(cfg->log.access))
        s->alog_path = cfg->log.access;
    if (is_file(cfg->log.error))
        s->elog_path = cfg->log.error;
    return 0;
}

/* What the workers share: metrics, the admin listener, the upstream state
 * (health, in flight) and the cache. */
static int make_shared(struct server *s, struct cfg *cfg, struct guard *gd)
{
    s->ws = calloc((size_t)s->n, sizeof(*s->ws));
    s->m = metrics_new(s->n);
    if (s->ws == NULL || s->m == NULL || metrics_register(s->m, cfg) < 0)
        return -1;
    for (int i = 0; i < s->n; i++)
        s->ws[i].gd = gd;
    s->admin = admin_new(s->m, cfg, s->n,
                         cfg->admin.enabled ? upgrade_take("@admin", &cfg->admin.addr) : -1);
    if (s->admin == NULL)
        return -1;
    s->admin_fd = admin_listen_fd(s->admin);
    s->st = ups_state_new(cfg, NULL);
    if (s->st == NULL)
        return -1;
    ups_state_set_metrics(s->st, metrics_health(s->m));
    if (cfg->cache.enabled && (s->cache = cglue_cache_new(cfg, &gd->plan)) == NULL)
        return -1;
    return 0;
}

/* The worker threads, each in its sandbox, then this thread's sandbox,
 * then the health and admin threads, which inherit it. On a failure the
 * workers already running are told to stop. */
static int start_threads(struct server *s, struct cfg *cfg, struct guard *gd)
{
    for (; s->started < s->n; s->started++) {
        int rc = pthread_create(&s->ws[s->started].thread, NULL, worker_main,
                                &s->ws[s->started]);
        if (rc != 0) {
            log_err("cannot start worker: %s", strerror(rc));
            goto Fail;
        }
    }
    if (harden_main(gd, cfg, s->n) < 0)
        goto Fail;
    s->sandboxed = cfg->security.sandbox;
    /* The health thread probes servers and may resolve their names: it
     * runs in the main thread's list, inherited, as those a reload starts
     * do. Started earlier, it would run with no filter at all. */
    int hrc = ups_health_start(s->st, &s->health);
    if (hrc < 0) {
        log_err("cannot start the health thread: %s", strerror(-hrc));
        goto Fail;
    }
    if (admin_start(s->admin) < 0)
        goto Fail;
    s->admin_up = true;
    return 0;
Fail:
    notify_workers(s, WSTOP_NOW);
    return -1;
}

/* Undoes whatever part of server_run's start happened. */
static void server_teardown(struct server *s, const struct cfg *cfg, struct guard *gd,
                            bool clean)
{
    for (int i = 0; i < s->started; i++)
        pthread_join(s->ws[i].thread, NULL);
    ups_health_stop(s->health);
    if (s->admin_up)
        admin_stop(s->admin);
    admin_free(s->admin);
    for (int i = 0; i < s->inited; i++)
        worker_fini(&s->ws[i]);
    ups_state_unref(s->st);
    cache_free(s->cache); /* after the workers: writes what is queued for disk */
    free(s->ws);
    metrics_free(s->m);
    harden_fini(gd);
    if (cfg->pid_file != NULL && clean && !s->upgraded &&
        unlink(cfg->pid_file) == -1) /* it was written as root, maybe */
        log_warn("pid file %s: %s", cfg->pid_file, strerror(errno));
    upgrade_inherit_done();
    free(s->lfds);
    cfg_unref(s->cur);
    if (s->alog_fd > 2)
        close(s->alog_fd);
}

int server_run(struct cfg *cfg, const char *file, char **argv)
{
    struct server srv = { .file = file, .n = cfg->workers, .gen = 1,
                          .argv = argv, .admin_fd = -1 };
    struct server *s = &srv;
    struct guard gd;
    if (harden_prepare(&gd, cfg) < 0 || /* open-file limit, tables, user */
        open_access_log(s, cfg) < 0) {
        harden_fini(&gd);
        return 1;
    }
    sigset_t set;
    block_signals(&set);
    upgrade_inherit_init();
    int nrc = notify_init();
    if (nrc < 0)
        log_warn("NOTIFY_SOCKET: %s; systemd will not hear from us", strerror(-nrc));
    s->cur = cfg_ref(cfg);
    bool ok = make_shared(s, cfg, &gd) == 0 && start_workers(s, cfg, &s->inited) == 0;
    if (ok) {
        upgrade_inherit_done();
        /* chroot, user, no_new_privs: listeners are bound */
        ok = write_pid(cfg->pid_file) == 0 && harden_drop(&gd, cfg) == 0 &&
             start_threads(s, cfg, &gd) == 0;
    }
    if (ok) {
        for (size_t i = 0; i < cfg->nlisteners; i++)
            log_info("listening on %s%s (%d workers)", cfg->listeners[i].addr.text,
                     cfg->listeners[i].tls != NULL ? " with TLS" : "", s->n);
        log_tls(cfg);
        upgrade_ready();
        /* after an upgrade this is a new process: systemd follows it (the
         * unit says NotifyAccess=all), the old one then exits */
        notify_send("MAINPID=%ld\nREADY=1\nSTATUS=generation 1", (long)getpid());
        wait_signals(s, &set);
    }
    server_teardown(s, cfg, &gd, ok);
    log_info("stopped");
    return ok ? 0 : 1;
}
