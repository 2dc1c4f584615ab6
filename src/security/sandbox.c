/*
 * The sandbox: a seccomp-bpf allow list per thread role (libseccomp).
 *
 * If a bug in the HTTP parser or a library ever lets a client run code in
 * a worker, what that code can do is bounded by the system calls the
 * kernel lets the thread make. A worker, once serving, only needs to move
 * bytes between sockets it already has or makes to upstreams, wait on
 * epoll, read the clock and manage memory. It never needs to exec, fork,
 * open a file, ptrace, map executable memory, or open a socket other than
 * TCP over IPv4/IPv6. Anything outside the list kills the whole process
 * (SECCOMP_RET_KILL_PROCESS): a worker that tries is compromised, and a
 * dead proxy is better than a pivot into the DMZ.
 *
 * Filters are per thread. Each worker installs the worker list on itself
 * before it serves anything; the main thread, which handles no client
 * bytes, installs a wider list (it may open files, for reload and log
 * reopening) once every worker has its own. Threads a later feature starts
 * from the main thread inherit the main list and must enter their own.
 *
 * THE POLICY IS THE TABLE BELOW. To let a feature make a new system call:
 * add a row naming the call, the roles that may make it, the argument
 * conditions if any (rows for one call are alternatives), and why. Keep
 * worker rows as narrow as the feature allows (the socket row admits
 * AF_INET/AF_INET6 only, mmap only without PROT_EXEC), run the tests:
 * debug builds name a forbidden call in the error log before dying
 * ("sandbox: system call 257 (openat) is not allowed in w1"), and
 * docs/security.md "Extending the sandbox" says the rest.
 *
 * Sanitizer builds (ASan/UBSan, the test builds) add the calls the
 * sanitizer runtime makes to write a report and to check for leaks at
 * exit; release builds never have them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "security/security.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define GH_SANITIZE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define GH_SANITIZE 1
#endif
#endif
#ifndef GH_SANITIZE
#define GH_SANITIZE 0
#endif
#ifndef GH_DEBUG
#define GH_DEBUG 0
#endif

enum {
    W = 1 << SB_WORKER,
    M = 1 << SB_MAIN,
    F = 1 << SB_WORKER_FILES, /* added to W's rows for SB_WORKER_FILES */
    WM = W | M,
    SAN = 1 << 4,   /* only in sanitizer builds */
    NOSAN = 1 << 5, /* only in other builds */
};

/* What a row does when it matches. */
enum act {
    ALLOW = 0,
    EACCES_, /* refused with EACCES: a library may probe, the caller copes */
    ENOSYS_, /* "not implemented": glibc falls back to another call */
};

enum cond_op {
    C_NONE = 0,
    C_EQ,     /* arg == a */
    C_MASKED, /* (arg & a) == b */
};

struct cond {
    unsigned char arg;
    unsigned char op;
    uint64_t a, b;
};

struct rule {
    int nr;
    unsigned roles;
    enum act act;
    struct cond c[2];
    const char *why;
};

#define SYS(name) SCMP_SYS(name)
#define ANY { { 0 } }
#define EQ(n, v) { (n), C_EQ, (uint64_t)(v), 0 }
#define MASKED(n, m, v) { (n), C_MASKED, (uint64_t)(m), (uint64_t)(v) }
#define PID_SELF UINT64_MAX /* EQ(0, PID_SELF): the process's own pid */
#define RDONLY_MASK (O_ACCMODE | O_CREAT | O_TRUNC)

static const struct rule policy[] = {
    /* moving bytes */
    { SYS(read), WM, ALLOW, ANY, "sockets, eventfds" },
    { SYS(write), WM, ALLOW, ANY, "sockets, logs" },
    { SYS(readv), WM, ALLOW, ANY, "sockets" },
    { SYS(writev), WM, ALLOW, ANY, "responses: head and body in one call" },
    { SYS(recvfrom), WM, ALLOW, ANY, "recv(MSG_PEEK) for client hang-ups" },
    { SYS(sendto), WM, ALLOW, ANY, "send()" },
    { SYS(recvmsg), WM, ALLOW, ANY, "sockets" },
    { SYS(sendmsg), WM, ALLOW, ANY, "sockets" },
    { SYS(sendfile), WM, ALLOW, ANY, "file bodies (static files, cache)" },
    { SYS(ioctl), WM, ALLOW, { EQ(1, FIONREAD) },
      "c-ares sizes a DNS answer before reading it" },
    { SYS(ioctl), WM, ALLOW, { EQ(1, FIONBIO) },
      "c-ares makes its sockets non-blocking" },
    { SYS(splice), WM, ALLOW, ANY, "tunnels without copies" },
    { SYS(close), WM, ALLOW, ANY, "every fd" },
    { SYS(shutdown), WM, ALLOW, ANY, "half-close in tunnels" },
    { SYS(pipe2), W, ALLOW, ANY, "splice tunnels: a pipe per direction" },
    /* sockets: TCP over IPv4 and IPv6 (UDP too in workers, for DNS); no
     * AF_UNIX to local daemons, no netlink, no raw or packet sockets */
    { SYS(socket), WM, ALLOW, { EQ(0, AF_INET), MASKED(1, 0xf, SOCK_STREAM) },
      "upstream connections" },
    { SYS(socket), WM, ALLOW, { EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_STREAM) },
      "upstream connections" },
    { SYS(socket), WM, ALLOW, { EQ(0, AF_INET), MASKED(1, 0xf, SOCK_DGRAM) },
      "DNS: c-ares in workers, getaddrinfo on reload" },
    { SYS(socket), WM, ALLOW, { EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_DGRAM) },
      "DNS: c-ares in workers, getaddrinfo on reload" },
    { SYS(socket), M, ALLOW, { EQ(0, AF_UNIX), MASKED(1, 0xf, SOCK_DGRAM) },
      "sd_notify: READY, RELOADING, STOPPING to systemd" },
    { SYS(socket), M, EACCES_, { EQ(0, AF_UNIX), MASKED(1, 0xf, SOCK_STREAM) },
      "glibc asks nscd (getaddrinfo on reload), and copes without" },
    { SYS(sendmmsg), WM, ALLOW, ANY, "glibc's resolver: A and AAAA at once" },
    { SYS(poll), M, ALLOW, ANY, "glibc's resolver waits with poll" },
    { SYS(connect), WM, ALLOW, ANY, "upstream connections" },
    { SYS(accept4), WM, ALLOW, ANY, "clients" },
    { SYS(getsockopt), WM, ALLOW, ANY, "SO_ERROR after connect" },
    { SYS(setsockopt), WM, ALLOW, ANY, "TCP_NODELAY" },
    { SYS(getsockname), WM, ALLOW, ANY, "addresses for logs" },
    { SYS(getpeername), WM, ALLOW, ANY, "addresses for logs" },
    { SYS(bind), M, ALLOW, ANY, "listeners on reload" },
    { SYS(listen), M, ALLOW, ANY, "listeners on reload" },
    { SYS(fcntl), WM, ALLOW, ANY, "O_NONBLOCK" },
    { SYS(dup2), M, ALLOW, ANY, "log reopening: the new file behind the same fd" },
    { SYS(dup3), M, ALLOW, ANY, "log reopening (dup2 on arm64)" },
    /* waiting */
    { SYS(epoll_wait), WM, ALLOW, ANY, "the event loop" },
    { SYS(epoll_pwait), WM, ALLOW, ANY, "the event loop (glibc)" },
    { SYS(epoll_ctl), WM, ALLOW, ANY, "the event loop" },
    { SYS(epoll_create1), M, ALLOW, ANY, "the loop of a thread started later "
                                         "(health checks, at start and on "
                                         "reload)" },
    { SYS(eventfd2), M, ALLOW, ANY, "its wake-up fd" },
    { SYS(futex), WM, ALLOW, ANY, "mutexes (shared limit tables), joins" },
    { SYS(sched_yield), WM, ALLOW, ANY, "contended locks" },
    { SYS(nanosleep), WM, ALLOW, ANY, "short sleeps" },
    { SYS(clock_nanosleep), WM, ALLOW, ANY, "short sleeps" },
    { SYS(rt_sigtimedwait), M, ALLOW, ANY, "sigwaitinfo: the main loop" },
    { SYS(restart_syscall), WM, ALLOW, ANY, "interrupted sleeps" },
    /* clocks and ids (usually the vDSO, but the fallback is a call) */
    { SYS(clock_gettime), WM, ALLOW, ANY, "the loop clock" },
    { SYS(gettimeofday), WM, ALLOW, ANY, "the loop clock" },
    { SYS(getpid), WM, ALLOW, ANY, "logs, abort()" },
    { SYS(gettid), WM, ALLOW, ANY, "abort()" },
    { SYS(getrandom), WM, ALLOW, ANY, "OpenSSL, hash seeds" },
    /* memory: never executable */
    { SYS(mmap), WM, ALLOW, { MASKED(2, PROT_EXEC, 0) }, "malloc, buffers" },
    { SYS(mprotect), WM, ALLOW, { MASKED(2, PROT_EXEC, 0) }, "malloc arenas" },
    { SYS(munmap), WM, ALLOW, ANY, "free" },
    { SYS(mremap), WM, ALLOW, ANY, "realloc" },
    { SYS(brk), WM, ALLOW, ANY, "malloc" },
    { SYS(madvise), WM, ALLOW, ANY, "free, thread exit" },
    /* signals: only to ourselves */
    { SYS(rt_sigprocmask), WM, ALLOW, ANY, "abort(), thread start" },
    { SYS(rt_sigaction), WM, ALLOW, ANY, "abort(); debug sandbox reports" },
    { SYS(rt_sigreturn), WM, ALLOW, ANY, "return from a handler" },
    { SYS(tgkill), WM, ALLOW, { EQ(0, PID_SELF) }, "abort(), raise()" },
    /* threads: the main thread starts workers, workers start nothing */
    { SYS(clone), M, ALLOW, { MASKED(0, CLONE_THREAD, CLONE_THREAD) },
      "pthread_create (threads only: no fork)" },
    { SYS(clone3), M, ENOSYS_, ANY, "glibc falls back to clone, whose flags "
                                    "the row above can check" },
    { SYS(set_robust_list), M, ALLOW, ANY, "new threads" },
    { SYS(rseq), M, ALLOW, ANY, "new threads" },
    { SYS(seccomp), WM, ALLOW, ANY, "a thread started later (admin) adds its "
                                    "own list: filters only ever narrow" },
    { SYS(prctl), WM, ALLOW, { EQ(0, PR_SET_NO_NEW_PRIVS) },
      "libseccomp sets it again before each filter" },
    { SYS(exit), WM, ALLOW, ANY, "thread exit" },
    { SYS(exit_group), WM, ALLOW, ANY, "process exit" },
    /* files, main thread: reload reads the configuration, log reopening
     * opens logs, stop removes the pid file */
    { SYS(openat), M, ALLOW, ANY, "reload, log reopening" },
    { SYS(dup2), M, ALLOW, ANY, "log reopening: the new file behind the old fd" },
    { SYS(dup3), M, ALLOW, ANY, "log reopening" },
    { SYS(newfstatat), M, ALLOW, ANY, "reload" },
    { SYS(fstat), M, ALLOW, ANY, "reload" },
    { SYS(lseek), M, ALLOW, ANY, "reload" },
    { SYS(unlink), M, ALLOW, ANY, "the pid file at stop" },
    { SYS(unlinkat), M, ALLOW, ANY, "the pid file at stop" },
    { SYS(sched_getaffinity), M, ALLOW, ANY, "workers: auto on reload" },
    { SYS(prlimit64), M, ALLOW, ANY, "getrlimit" },
    /* files, workers that serve them (static routes, the disk cache). These
     * come before the refusals below: the first row for a call wins. */
    { SYS(openat), F, ALLOW, ANY, "static files, disk cache" },
    { SYS(openat2), F, ALLOW, ANY, "static files under their root" },
    { SYS(newfstatat), F, ALLOW, ANY, "stat of files served" },
    { SYS(statx), F, ALLOW, ANY, "stat of files served" },
    { SYS(fstat), F, ALLOW, ANY, "files served" },
    { SYS(lseek), F, ALLOW, ANY, "files served" },
    { SYS(pread64), F, ALLOW, ANY, "files served" },
    { SYS(getdents64), F, ALLOW, ANY, "directory listings, cache index" },
    { SYS(readlinkat), F, ALLOW, ANY, "symlink checks under a root" },
    { SYS(rename), F, ALLOW, ANY, "disk cache: temp file, then rename" },
    { SYS(renameat), F, ALLOW, ANY, "disk cache" },
    { SYS(renameat2), F, ALLOW, ANY, "disk cache" },
    { SYS(unlink), F, ALLOW, ANY, "disk cache eviction" },
    { SYS(unlinkat), F, ALLOW, ANY, "disk cache eviction" },
    { SYS(mkdir), F, ALLOW, ANY, "disk cache directories" },
    { SYS(mkdirat), F, ALLOW, ANY, "disk cache directories" },
    { SYS(fdatasync), F, ALLOW, ANY, "disk cache sync" },
    { SYS(fsync), F, ALLOW, ANY, "disk cache sync" },
    { SYS(ftruncate), F, ALLOW, ANY, "disk cache" },
    /* files, workers: none. Libraries look at a file now and then (glibc's
     * malloc reads /proc/sys/vm/overcommit_memory the first time it
     * shrinks a thread's heap), and cope when they cannot; a kill there
     * would let a client crash the proxy by shaping its load. So these are
     * refused with EACCES, not fatal: still no file is opened. */
    { SYS(openat), W, EACCES_, ANY, "libraries probing files" },
    { SYS(open), W | NOSAN, EACCES_, ANY, "libraries probing files" },
    { SYS(newfstatat), W, ALLOW, { MASKED(3, AT_EMPTY_PATH, AT_EMPTY_PATH) },
      "fstat(2) of an fd, as glibc makes it" },
    { SYS(newfstatat), W, EACCES_, { MASKED(3, AT_EMPTY_PATH, 0) },
      "stat(2) of a path" },
    { SYS(statx), W, EACCES_, ANY, "stat(2) of a path" },
    { SYS(access), W, EACCES_, ANY, "libraries probing files" },
    { SYS(faccessat), W, EACCES_, ANY, "libraries probing files" },
    { SYS(faccessat2), W, EACCES_, ANY, "libraries probing files" },
    { SYS(readlink), W | NOSAN, EACCES_, ANY, "libraries probing files" },
    { SYS(readlinkat), W | NOSAN, EACCES_, ANY, "libraries probing files" },

    /* sanitizer builds only: writing a report, checking for leaks. The
     * sanitizer runtime makes raw open(2) calls, not openat(2). */
    { SYS(open), W | SAN, ALLOW, { MASKED(1, RDONLY_MASK, O_RDONLY) },
      "ASan reads /proc/self/maps and the binary for a report" },
    { SYS(open), M | SAN, ALLOW, ANY, "LeakSanitizer: /proc/self/task" },
    { SYS(getdents), WM | SAN, ALLOW, ANY, "LeakSanitizer: /proc/self/task" },
    { SYS(getdents64), WM | SAN, ALLOW, ANY, "LeakSanitizer" },
    { SYS(fstat), W | SAN, ALLOW, ANY, "ASan report" },
    { SYS(lseek), W | SAN, ALLOW, ANY, "ASan report" },
    { SYS(pread64), WM | SAN, ALLOW, ANY, "ASan report (debug info)" },
    { SYS(readlink), WM | SAN, ALLOW, ANY, "ASan report (/proc/self/exe)" },
    { SYS(readlinkat), WM | SAN, ALLOW, ANY, "ASan report" },
    { SYS(sigaltstack), WM | SAN, ALLOW, ANY, "ASan thread setup and exit" },
    { SYS(prctl), WM | SAN, ALLOW, ANY, "LeakSanitizer: PR_SET_PTRACER" },
    { SYS(prlimit64), W | SAN, ALLOW, ANY, "ASan" },
    { SYS(sched_getaffinity), W | SAN, ALLOW, ANY, "ASan" },
    { SYS(uname), WM | SAN, ALLOW, ANY, "ASan" },
    { SYS(getppid), WM | SAN, ALLOW, ANY, "LeakSanitizer" },
    { SYS(clone), M | SAN, ALLOW, ANY, "LeakSanitizer's tracer task" },
    { SYS(ptrace), M | SAN, ALLOW, ANY, "LeakSanitizer stops threads" },
    { SYS(wait4), M | SAN, ALLOW, ANY, "LeakSanitizer's tracer task" },
    { SYS(kill), M | SAN, ALLOW, ANY, "LeakSanitizer's tracer task" },
    { SYS(tgkill), M | SAN, ALLOW, ANY, "LeakSanitizer's tracer task" },
};

/* ---- reporting (debug builds: SCMP_ACT_TRAP, then die of SIGSYS) ---- */

static const char *names[512];
static void load_names(void);

const char *sandbox_syscall_name(int nr)
{
    load_names(); /* done before any filter is on: safe in the handler */
    if (nr >= 0 && (size_t)nr < sizeof(names) / sizeof(names[0]) &&
        names[nr] != NULL)
        return names[nr];
    return "?";
}

static void resolve_names(void)
{
    for (int nr = 0; (size_t)nr < sizeof(names) / sizeof(names[0]); nr++)
        names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

static void load_names(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, resolve_names);
}

static size_t put(char *b, size_t at, size_t cap, const char *s)
{
    while (*s != '\0' && at + 1 < cap)
        b[at++] = *s++;
    return at;
}

static size_t put_int(char *b, size_t at, size_t cap, int v)
{
    char d[16];
    int n = 0;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do {
        d[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0 && n < 15);
    if (v < 0 && at + 1 < cap)
        b[at++] = '-';
    while (n > 0 && at + 1 < cap)
        b[at++] = d[--n];
    return at;
}

/* Async-signal-safe: formats by hand, writes, dies of SIGSYS. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char msg[160];
    size_t n = put(msg, 0, sizeof(msg), "gatehouse: sandbox: system call ");
    n = put_int(msg, n, sizeof(msg), si->si_syscall);
    n = put(msg, n, sizeof(msg), " (");
    n = put(msg, n, sizeof(msg), sandbox_syscall_name(si->si_syscall));
    n = put(msg, n, sizeof(msg), ") is not allowed; stopping\n");
    int efd = log_error_fd();
    if (write(2, msg, n) < 0 || (efd > 2 && write(efd, msg, n) < 0))
        n = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSYS, &sa, NULL);
    raise(SIGSYS); /* SA_NODEFER: delivered now, with the default action */
    _exit(128 + SIGSYS);
}

static int trap_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    return sigaction(SIGSYS, &sa, NULL) == -1 ? -errno : 0;
}

/* ---- building the filter ---- */

static int add_rule(scmp_filter_ctx ctx, const struct rule *r)
{
    struct scmp_arg_cmp args[2];
    unsigned n = 0;
    uint32_t action = r->act == EACCES_   ? SCMP_ACT_ERRNO(EACCES)
                      : r->act == ENOSYS_ ? SCMP_ACT_ERRNO(ENOSYS)
                                          : SCMP_ACT_ALLOW;
    for (int i = 0; i < 2; i++) {
        const struct cond *c = &r->c[i];
        if (c->op == C_NONE)
            continue;
        uint64_t a = c->a == PID_SELF ? (uint64_t)getpid() : c->a;
        if (c->op == C_EQ)
            args[n++] = (struct scmp_arg_cmp){ c->arg, SCMP_CMP_EQ, a, 0 };
        else
            args[n++] = (struct scmp_arg_cmp){ c->arg, SCMP_CMP_MASKED_EQ, a, c->b };
    }
    int rc = seccomp_rule_add_array(ctx, action, r->nr, n, args);
    if (rc == -EEXIST) /* an unconditional row already allows it */
        rc = 0;
    return rc;
}

/* Whether row <r> is part of the policy of <role> in this build. */
static bool in_policy(const struct rule *r, unsigned role_bit, bool san)
{
    if (!(r->roles & role_bit))
        return false;
    if ((r->roles & SAN) && !san)
        return false;
    return !((r->roles & NOSAN) && san);
}

int sandbox_enter(enum sandbox_role role)
{
    return sandbox__enter(role, 0);
}

int sandbox__enter(enum sandbox_role role, unsigned flags)
{
    /* a worker serving files: every worker row, and the file rows */
    unsigned want = role == SB_WORKER_FILES ? (W | F) : 1u << role;
    bool trap = GH_DEBUG && !(flags & SB_F_KILL);
    bool san = GH_SANITIZE && !(flags & SB_F_RELEASE);
    uint32_t deny = trap ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS;
    load_names();
    if (trap) {
        int rc = trap_handler();
        if (rc < 0)
            return rc;
    }
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (ctx == NULL)
        return -ENOMEM;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc == 0) /* a binary search over the calls, not a linear scan */
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; rc == 0 && i < sizeof(policy) / sizeof(policy[0]); i++) {
        const struct rule *r = &policy[i];
        if (!in_policy(r, want, san))
            continue;
        rc = add_rule(ctx, r);
        if (rc < 0)
            log_err("sandbox: rule for %s: %s", sandbox_syscall_name(r->nr),
                    strerror(-rc));
    }
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}
