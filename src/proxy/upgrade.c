/*
 * Binary upgrade without dropping a connection (SIGUSR2), as nginx and
 * HAProxy do it: the running process starts the binary anew (whatever file
 * is now at the path it was started from) and hands it its listening
 * sockets; once the new process says it serves, the old one stops
 * accepting and finishes its connections.
 *
 * Why the sockets are handed over rather than bound again: each
 * SO_REUSEPORT socket has its own accept queue, and a connection waiting
 * in the queue of a socket that is closed is reset. Passed over, the very
 * same sockets stay open in the new process, so no queue is ever closed:
 * the old process only closes its copies of the descriptors.
 *
 * The hand-over is two environment variables read at start:
 *   GATEHOUSE_INHERIT   "127.0.0.1:8080=5,6;[::1]:80=7,8;@admin=9"
 *                       (per listener address, one socket per worker)
 *   GATEHOUSE_READY_FD  a pipe: the new process writes one byte to it
 *                       when its workers run, or closes it by dying.
 * A new process checks each inherited socket (a listening TCP socket
 * bound to the address it claims) and binds what it does not inherit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/macros.h"
#include "proxy/upgrade.h"

extern char **environ;

#define ENV_INHERIT "GATEHOUSE_INHERIT"
#define ENV_READY "GATEHOUSE_READY_FD"
#define READY_WAIT_MS 30000

/* ---- the new process ---- */

struct inherit {
    char addr[72];
    int fd;
};

/* Start-up state of the main thread (no other thread exists yet or
 * touches it). */
static struct inherit *inh;
static size_t ninh;
static char exe[PATH_MAX];

static bool parse_fd(const char *s, size_t len, int *out)
{
    long v = 0;
    if (len == 0 || len > 9)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = (int)v;
    return v > 2;
}

void upgrade_inherit_init(void)
{
    /* the path, read now: a binary replaced later (rename over it) is
     * found under it, while /proc/self/exe would stay the old one */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *e = getenv(ENV_INHERIT);
    if (e == NULL || *e == '\0')
        return;
    size_t cap = 1;
    for (const char *p = e; *p; p++)
        cap += *p == ',' || *p == ';';
    inh = calloc(cap, sizeof(*inh));
    if (inh == NULL)
        return;
    while (*e) {
        const char *end = strchr(e, ';');
        size_t len = end ? (size_t)(end - e) : strlen(e);
        const char *eq = memchr(e, '=', len);
        if (eq != NULL && (size_t)(eq - e) < sizeof(inh[0].addr)) {
            const char *f = eq + 1, *lend = e + len;
            while (f < lend && ninh < cap) {
                const char *comma = memchr(f, ',', (size_t)(lend - f));
                size_t flen = comma ? (size_t)(comma - f) : (size_t)(lend - f);
                int fd;
                if (parse_fd(f, flen, &fd)) {
                    memcpy(inh[ninh].addr, e, (size_t)(eq - e));
                    inh[ninh].addr[eq - e] = '\0';
                    inh[ninh].fd = fd;
                    ninh++;
                }
                f += flen + (comma != NULL);
            }
        }
        e += len + (end != NULL);
    }
    unsetenv(ENV_INHERIT);
    log_info("upgrade: %zu sockets handed over by the previous process", ninh);
}

/* A listening TCP socket bound to <a>. */
static bool socket_is(int fd, const struct cfg_addr *a)
{
    struct stat st;
    int listening = 0;
    socklen_t ol = sizeof(listening);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) == -1 ||
        !listening || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
        return false;
    return sl == a->len && memcmp(&ss, &a->ss, sl) == 0;
}

int upgrade_take(const char *key, const struct cfg_addr *a)
{
    for (size_t i = 0; i < ninh; i++) {
        if (inh[i].fd < 0 || strcmp(inh[i].addr, key) != 0)
            continue;
        int fd = inh[i].fd;
        inh[i].fd = -1;
        if (socket_is(fd, a)) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
        log_warn("upgrade: inherited descriptor %d is not a socket listening on %s",
                 fd, a->text);
    }
    return -1;
}

void upgrade_inherit_done(void)
{
    for (size_t i = 0; i < ninh; i++) {
        if (inh[i].fd < 0)
            continue;
        /* a listener the new configuration dropped, or more sockets than
         * workers: closing may reset what waits in its queue */
        log_warn("upgrade: socket for %s not used; closing it", inh[i].addr);
        close(inh[i].fd);
    }
    FREE_NULL(inh);
    ninh = 0;
}

void upgrade_ready(void)
{
    const char *e = getenv(ENV_READY);
    int fd;
    if (e == NULL || !parse_fd(e, strlen(e), &fd))
        return;
    unsetenv(ENV_READY);
    if (write(fd, "1", 1) != 1)
        log_warn("upgrade: cannot tell the previous process: %s", strerror(errno));
    close(fd);
}

/* ---- the old process ---- */

/* "addr=fd,fd;...;@admin=fd" for the sockets in <fds>. */
static char *inherit_value(const struct cfg *cur, int nw, const int *fds,
                           int admin_fd)
{
    size_t cap = 64 + cur->nlisteners * (80 + (size_t)nw * 12);
    char *v = malloc(cap);
    if (v == NULL)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < cur->nlisteners; i++) {
        off += (size_t)snprintf(v + off, cap - off, "%s%s=", off ? ";" : "",
                                cur->listeners[i].addr.text);
        for (int w = 0; w < nw; w++)
            off += (size_t)snprintf(v + off, cap - off, "%s%d", w ? "," : "",
                                    fds[(size_t)w * cur->nlisteners + i]);
    }
    if (admin_fd >= 0)
        off += (size_t)snprintf(v + off, cap - off, "%s@admin=%d", off ? ";" : "",
                                admin_fd);
    ASSERT(off < cap);
    return v;
}

/* environ without our variables, plus <a> and <b>; NULL when out of
 * memory. The strings are environ's or the caller's. */
static char **child_env(char *a, char *b)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ENV_INHERIT "=", sizeof(ENV_INHERIT)) != 0 &&
            strncmp(environ[i], ENV_READY "=", sizeof(ENV_READY)) != 0)
            env[k++] = environ[i];
    env[k++] = a;
    env[k++] = b;
    return env;
}

pid_t upgrade_start(char **argv, const struct cfg *cur, int nw, const int *fds,
                    int admin_fd)
{
    int p[2];
    pid_t pid = -1;
    char *iv = inherit_value(cur, nw, fds, admin_fd);
    char *a = NULL, *b = NULL;
    char **env = NULL;
    if (iv == NULL || pipe2(p, O_CLOEXEC) == -1) {
        log_err("upgrade: %s", iv == NULL ? "out of memory" : strerror(errno));
        free(iv);
        return -1;
    }
    size_t alen = strlen(iv) + sizeof(ENV_INHERIT) + 1;
    a = malloc(alen);
    b = malloc(sizeof(ENV_READY) + 16);
    if (a != NULL && b != NULL) {
        snprintf(a, alen, "%s=%s", ENV_INHERIT, iv);
        snprintf(b, sizeof(ENV_READY) + 16, "%s=%d", ENV_READY, p[1]);
        env = child_env(a, b);
    }
    if (env == NULL) {
        log_err("upgrade: out of memory");
        goto Exit;
    }
    pid = fork();
    if (pid == 0) {
        /* only async-signal-safe calls from here to exec */
        size_t nfd = (size_t)nw * cur->nlisteners;
        for (size_t i = 0; i < nfd; i++)
            if (fds[i] >= 0)
                fcntl(fds[i], F_SETFD, 0);
        if (admin_fd >= 0)
            fcntl(admin_fd, F_SETFD, 0);
        fcntl(p[1], F_SETFD, 0);
        execve(exe[0] ? exe : "/proc/self/exe", argv, env);
        _exit(127);
    }
    if (pid == -1) {
        log_err("upgrade: fork: %s", strerror(errno));
        goto Exit;
    }
    close(p[1]);
    p[1] = -1;
    log_info("upgrade: started process %ld; waiting for it to serve", (long)pid);
    struct pollfd pf = { p[0], POLLIN, 0 };
    char c = 0;
    int rc = poll(&pf, 1, READY_WAIT_MS);
    if (rc == 1 && read(p[0], &c, 1) == 1 && c == '1') {
        log_info("upgrade: process %ld serves; this one stops accepting and "
                 "finishes its connections", (long)pid);
    } else {
        log_err("upgrade: the new process %s; this one keeps serving",
                rc == 0 ? "did not get ready in 30 s (stopped)" : "failed to start");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
Exit:
    close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    free(env);
    free(a);
    free(b);
    free(iv);
    return pid;
}
