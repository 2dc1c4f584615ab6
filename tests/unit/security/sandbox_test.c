/*
 * The seccomp sandbox: a child process enters a role's allow list and then
 * makes one system call; forbidden calls must kill it with SIGSYS, allowed
 * ones must work. Each case runs twice: with the policy of this (debug,
 * sanitizer) build, and with exactly the release build's policy
 * (SB_F_RELEASE: no sanitizer rows, SECCOMP_RET_KILL_PROCESS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "security/security.h"

typedef int probe_fn(void);

static pid_t parent; /* the test process, seen from a child */

/* Runs <fn> in a child inside the sandbox of <role>. Returns the wait
 * status; the child's stderr goes to <err> (may be NULL). */
static int in_sandbox(enum sandbox_role role, unsigned flags, probe_fn *fn,
                      char *err, size_t errlen)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        if (sandbox__enter(role, flags) != 0)
            _exit(3);
        _exit(fn() == 0 ? 0 : 4);
    }
    close(p[1]);
    size_t got = 0;
    for (;;) {
        char tmp[256];
        ssize_t n = read(p[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && err != NULL && got + 1 < errlen; i++)
            err[got++] = tmp[i];
    }
    if (err != NULL)
        err[got] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static const char *policy_name(unsigned flags)
{
    return flags & SB_F_RELEASE ? "release" : "this build's";
}

/* <fn> must kill the child with SIGSYS, under both policies, and (debug
 * builds) the message must name <call>: it was that call, and not some
 * other one on the way, that the sandbox refused. */
static void expect_killed_flags(enum sandbox_role role, probe_fn *fn,
                                const char *call, unsigned flags)
{
    char err[2048], want[96];
    int st = in_sandbox(role, flags, fn, err, sizeof(err));
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
        fail_msg("%s (%s policy): expected death by SIGSYS, got status 0x%x",
                 call, policy_name(flags), st);
#ifdef GH_DEBUG
    snprintf(want, sizeof(want), "(%s) is not allowed", call);
    if (strcmp(call, "clone3") != 0 && strstr(err, want) == NULL)
        fail_msg("%s (%s policy): stderr does not say \"%s\": %s", call,
                 policy_name(flags), want, err);
#else
    (void)want;
#endif
}

static void expect_killed(enum sandbox_role role, probe_fn *fn,
                          const char *call)
{
    expect_killed_flags(role, fn, call, 0);
    expect_killed_flags(role, fn, call, SB_F_RELEASE);
}

/* Allowed work: this build's policy (the sanitizer runtime needs its rows
 * to run at all). */
static void expect_allowed(enum sandbox_role role, probe_fn *fn,
                           const char *what)
{
    char err[2048];
    int st = in_sandbox(role, 0, fn, err, sizeof(err));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: expected exit 0, got status 0x%x; stderr: %s", what, st,
                 err);
}

/* ---- forbidden everywhere ---- */

static int do_execve(void)
{
    char *argv[] = { "/bin/true", NULL };
    execve("/bin/true", argv, environ);
    return 0;
}

static int do_fork(void)
{
    pid_t p = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (p == 0)
        _exit(0);
    return 0;
}

#define TEST_FILE "/tmp/gatehouse-sandbox-test"

/* Opening files is refused with EACCES, not fatal (libraries probe files;
 * see sandbox.c): the child exits 0 only when nothing was opened. */
static int do_open_write(void)
{
    int fd = open(TEST_FILE, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0 || errno != EACCES)
        return 1;
    fd = openat(AT_FDCWD, TEST_FILE, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0 || errno != EACCES)
        return 2;
    struct stat st;
    if (stat("/etc/hostname", &st) == 0 || errno != EACCES)
        return 3;
    if (access("/etc/hostname", R_OK) == 0 || errno != EACCES)
        return 4;
    if (fstat(2, &st) != 0) /* an fd, not a path: fine */
        return 5;
    return 0;
}

static int do_unix_socket(void)
{
    return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 0;
}

static int do_raw_socket(void)
{
    return socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) >= 0 ? 0 : 0;
}

static int do_netlink(void)
{
    return socket(AF_NETLINK, SOCK_RAW, 0) >= 0 ? 0 : 0;
}

static int do_mmap_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p != MAP_FAILED ? 0 : 0;
}

static int do_mprotect_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    mprotect(p, 4096, PROT_READ | PROT_EXEC);
    return 0;
}

static int do_ptrace(void)
{
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    return 0;
}

static int do_kill_other(void)
{
    kill(parent, 0);
    return 0;
}

static int do_setuid(void)
{
    return syscall(SYS_setuid, 0) == 0 ? 0 : 0;
}

static void *thread_fn(void *arg)
{
    return arg;
}

static int do_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_fn, NULL) != 0)
        return 1;
    return pthread_join(t, NULL);
}

static void test_forbidden_in_workers(void **state)
{
    (void)state;
    expect_killed(SB_WORKER, do_execve, "execve");
    expect_killed(SB_WORKER, do_fork, "clone");
    /* glibc blocks every signal around clone3, so the debug handler
     * cannot run: the kernel kills with no message */
    expect_killed(SB_WORKER, do_thread, "clone3");
    expect_killed(SB_WORKER, do_unix_socket, "socket");
    expect_killed(SB_WORKER, do_raw_socket, "socket");
    expect_killed(SB_WORKER, do_netlink, "socket");
    expect_killed(SB_WORKER, do_mmap_exec, "mmap");
    expect_killed(SB_WORKER, do_mprotect_exec, "mprotect");
    expect_killed(SB_WORKER, do_ptrace, "ptrace");
    expect_killed(SB_WORKER, do_kill_other, "kill");
    expect_killed(SB_WORKER, do_setuid, "setuid");
}

static int do_open_read(void)
{
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd < 0)
        return 1;
    close(fd);
    return 0;
}

static int do_open_read_refused(void)
{
    int fd = open("/etc/hostname", O_RDONLY);
    return fd < 0 && errno == EACCES ? 0 : 1;
}

/* Workers open no file, read or write: refused with EACCES. (The
 * sanitizer runtime's own raw open(2) may read, for its reports.) */
static void test_files_refused_in_workers(void **state)
{
    (void)state;
    unlink(TEST_FILE);
    expect_allowed(SB_WORKER, do_open_write, "refusing file opens");
    assert_int_equal(access(TEST_FILE, F_OK), -1);
    expect_allowed(SB_WORKER, do_open_read_refused, "refusing file reads");
}

static void test_forbidden_in_main(void **state)
{
    (void)state;
    expect_killed(SB_MAIN, do_execve, "execve");
    /* UDP is allowed (getaddrinfo on reload) and an AF_UNIX stream socket
     * is refused with EACCES (glibc's nscd probe): other kinds are fatal */
    expect_killed(SB_MAIN, do_raw_socket, "socket");
    expect_killed(SB_MAIN, do_mmap_exec, "mmap");
    expect_killed(SB_MAIN, do_setuid, "setuid");
    /* the release policy only: LeakSanitizer needs a tracer task */
    expect_killed_flags(SB_MAIN, do_fork, "clone", SB_F_RELEASE);
    expect_killed_flags(SB_MAIN, do_ptrace, "ptrace", SB_F_RELEASE);
}

/* ---- what the proxy needs ---- */

static int do_proxy_work(void)
{
    /* an upstream socket */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int s6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0 || s6 < 0)
        return 1;
    close(s6);
    s6 = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s6 < 0) /* DNS */
        return 7;
    int pp[2];
    if (pipe2(pp, O_NONBLOCK | O_CLOEXEC) != 0) /* splice tunnels */
        return 8;
    close(pp[0]);
    close(pp[1]);
    int one = 1;
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return 2;
    close(s);
    close(s6);
    /* memory, big and small */
    for (int i = 0; i < 100; i++) {
        char *p = malloc((size_t)1 << (i % 22));
        if (p == NULL)
            return 3;
        p[0] = 1;
        p = realloc(p, (size_t)1 << ((i + 3) % 23));
        free(p);
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 4;
    if (getpid() <= 0)
        return 5;
    char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return 6;
    return 0;
}

static int do_main_work(void)
{
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        return 1;
    close(s);
    char *p = malloc(1 << 20);
    if (p == NULL)
        return 2;
    free(p);
    return 0;
}

static void test_allowed(void **state)
{
    (void)state;
    expect_allowed(SB_WORKER, do_proxy_work, "a worker's own work");
    expect_allowed(SB_MAIN, do_main_work, "the main thread's own work");
    expect_allowed(SB_MAIN, do_thread, "starting a worker thread");
    expect_allowed(SB_MAIN, do_open_read, "reading a file (reload)");
}

/* The release action: killed at once, no handler, no message. */
static void test_release_action(void **state)
{
    (void)state;
    char err[1024];
    int st = in_sandbox(SB_WORKER, SB_F_RELEASE | SB_F_KILL, do_execve, err,
                        sizeof(err));
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
    assert_null(strstr(err, "sandbox"));
#ifdef GH_DEBUG
    st = in_sandbox(SB_WORKER, 0, do_execve, err, sizeof(err));
    assert_non_null(strstr(err, "sandbox: system call 59 (execve) is not allowed"));
#endif
    assert_string_equal(sandbox_syscall_name(SYS_openat), "openat");
    assert_string_equal(sandbox_syscall_name(-1), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_in_workers),
        cmocka_unit_test(test_files_refused_in_workers),
        cmocka_unit_test(test_forbidden_in_main),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_release_action),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
