/*
 * The start-up sequence that leaves a running proxy with as little power
 * as it can serve with (docs/security.md):
 *
 *   harden_prepare  raise RLIMIT_NOFILE, resolve the user and group, size
 *                   max_connections, create the shared limit tables
 *   (server.c binds every listener and opens the logs, as root if started
 *    so)
 *   harden_drop     chroot, setgroups/setgid/setuid, no_new_privs
 *   (server.c starts the workers)
 *   harden_worker   each worker enters its seccomp sandbox before it
 *                   serves anything
 *   harden_main     the main thread waits until all have, then enters its
 *                   own
 *
 * A worker that cannot enter its sandbox does not serve, and the process
 * exits 1: the sandbox is either on or, when the configuration says
 * "sandbox: false", off, never off by accident.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"
#include "security/security.h"

/* fds that are not client or upstream connections: listeners, epoll and
 * eventfds per worker, logs, stdio, and some slack */
static unsigned long reserved_fds(const struct cfg *cfg)
{
    return 64 + (unsigned long)cfg->workers * (cfg->nlisteners + 4);
}

int harden_prepare(struct guard *gd, const struct cfg *cfg)
{
    const struct cfg_security *s = &cfg->security;
    char err[512] = "";
    memset(gd, 0, sizeof(*gd));
    AZ(pthread_mutex_init(&gd->mu, NULL));
    AZ(pthread_cond_init(&gd->cv, NULL));
    if (priv_prepare(s, &gd->plan, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    unsigned long nofile = gd->plan.nofile, reserve = reserved_fds(cfg);
    /* each client connection may hold an upstream connection too */
    unsigned long fit = nofile > reserve + 2 ? (nofile - reserve) / 2 : 1;
    unsigned long max = s->max_connections != 0 ? s->max_connections : fit;
    if (max > fit)
        log_warn("max_connections %lu may need %lu file descriptors; the "
                 "limit is %lu (security.open_files)", max,
                 2 * max + reserve, nofile);
    /* Both tables exist even when no rule needs them yet: a reload may
     * add rules. Their pages cost memory only once touched. */
    if (connlimit_init(&gd->conns, max, true) < 0) {
        log_err("out of memory for the connection table");
        return -1;
    }
    gd->rl = rl_new(s->rate_entries);
    if (gd->rl == NULL) {
        log_err("out of memory for the rate-limit table");
        return -1;
    }
    log_info("open files limit %lu; max_connections %lu", nofile, max);
    return 0;
}

int harden_drop(struct guard *gd, const struct cfg *cfg)
{
    char err[512] = "";
    if (priv_drop(&cfg->security, &gd->plan, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    return 0;
}

#ifdef GH_DEBUG
/* Debug builds only: GATEHOUSE_SANDBOX_PROBE=<call> makes worker 1 (or,
 * with "main:<call>", the main thread) act compromised once its sandbox is
 * on, so a test can watch the sandbox kill the process. Release builds
 * have no such switch. */
static void probe(const char *who)
{
    const char *p = getenv("GATEHOUSE_SANDBOX_PROBE");
    if (p == NULL)
        return;
    bool main_probe = strncmp(p, "main:", 5) == 0;
    if (main_probe != (strcmp(who, "main") == 0))
        return;
    if (main_probe)
        p += 5;
    log_warn("sandbox probe: %s is about to call %s", who, p);
    if (strcmp(p, "execve") == 0) {
        char *argv[] = { "/bin/sh", "-c", "echo pwned", NULL };
        execve(argv[0], argv, NULL);
    } else if (strcmp(p, "open") == 0) { /* refused, not fatal */
        static const char *const files[] = { "/etc/passwd", "/tmp/gatehouse-probe" };
        for (size_t i = 0; i < 2; i++) {
            int fd = open(files[i], (i ? O_WRONLY | O_CREAT : O_RDONLY) | O_CLOEXEC,
                          0600);
            log_warn("sandbox probe: open %s: %s", files[i],
                     fd >= 0 ? "opened" : strerror(errno));
            if (fd >= 0)
                close(fd);
        }
        return;
    } else if (strcmp(p, "unix") == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0)
            close(fd);
    } else if (strcmp(p, "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
    }
    log_err("sandbox probe: %s survived %s", who, p);
}
#else
static void probe(const char *who)
{
    (void)who;
}
#endif

/* Whether workers open files: a static route or a disk cache tier. (A
 * forward listener does not: its resolver reads /etc/hosts once, at worker
 * start, before the sandbox.) */
static bool serves_files(const struct cfg *c)
{
    if (c->cache.enabled && c->cache.disk_path != NULL)
        return true;
    for (size_t i = 0; i < c->nlisteners; i++) {
        for (size_t j = 0; j < c->listeners[i].nsites; j++) {
            const struct cfg_site *s = &c->listeners[i].sites[j];
            for (size_t k = 0; k < s->nroutes; k++)
                if (s->routes[k].action == CFG_ACT_STATIC)
                    return true;
        }
    }
    return false;
}

int harden_worker(struct worker *w)
{
    struct guard *gd = w->gd;
    int rc = 0;
    if (w->cfg->security.sandbox) {
        rc = sandbox_enter(serves_files(w->cfg) ? SB_WORKER_FILES : SB_WORKER);
        if (rc < 0)
            log_err("worker %d: cannot enter the sandbox: %s", w->id,
                    strerror(-rc));
    }
    pthread_mutex_lock(&gd->mu);
    if (rc < 0)
        gd->failed++;
    else
        gd->ready++;
    pthread_cond_broadcast(&gd->cv);
    pthread_mutex_unlock(&gd->mu);
    if (rc == 0 && w->id == 1)
        probe("worker");
    return rc < 0 ? -1 : 0;
}

int harden_main(struct guard *gd, const struct cfg *cfg, int nworkers)
{
    pthread_mutex_lock(&gd->mu);
    while (gd->ready + gd->failed < nworkers)
        pthread_cond_wait(&gd->cv, &gd->mu);
    int failed = gd->failed;
    pthread_mutex_unlock(&gd->mu);
    if (failed > 0)
        return -1;
    if (!cfg->security.sandbox) {
        log_warn("sandbox: off (security.sandbox is false)");
        return 0;
    }
    int rc = sandbox_enter(SB_MAIN);
    if (rc < 0) {
        log_err("main thread: cannot enter the sandbox: %s", strerror(-rc));
        return -1;
    }
    log_info("sandbox: on (seccomp allow lists for workers and main thread)");
    probe("main");
    return 0;
}

void harden_fini(struct guard *gd)
{
    connlimit_fini(&gd->conns);
    rl_free(gd->rl);
    gd->rl = NULL;
    pthread_mutex_destroy(&gd->mu);
    pthread_cond_destroy(&gd->cv);
}
