#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/macros.h"

static atomic_int err_fd = 2;
static atomic_int min_level = GH_LOG_INFO;
static _Thread_local char tag[16] = "main";

static const char *level_name(int level)
{
    switch (level) {
    case GH_LOG_ERR:
        return "error";
    case GH_LOG_WARN:
        return "warn";
    case GH_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void log_set_error_fd(int fd)
{
    atomic_store(&err_fd, fd);
}

int log_error_fd(void)
{
    return atomic_load(&err_fd);
}

void log_set_level(int level)
{
    atomic_store(&min_level, level);
}

int log_level(void)
{
    return atomic_load_explicit(&min_level, memory_order_relaxed);
}

void log_set_thread_tag(const char *t)
{
    snprintf(tag, sizeof(tag), "%s", t);
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level > log_level())
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_name(level), tag);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&err_fd), line, len);
    (void)w; /* nowhere to report a failure to log */
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void gh_panic(const char *file, int line, const char *cond)
{
    log_msg(GH_LOG_ERR, "assertion failed at %s:%d: %s", file, line, cond);
    abort();
}

void logsink_init(struct logsink *s, int fd)
{
    s->fd = fd;
    s->len = 0;
}

void logsink_flush(struct logsink *s)
{
    size_t off = 0;
    while (off < s->len && s->fd >= 0) {
        ssize_t w = write(s->fd, s->buf + off, s->len - off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            break; /* a full disk must not stop the proxy */
        }
        off += (size_t)w;
    }
    s->len = 0;
}

char *logsink_reserve(struct logsink *s, size_t n)
{
    if (n > sizeof(s->buf))
        return NULL;
    if (s->len + n > sizeof(s->buf))
        logsink_flush(s);
    return s->buf + s->len;
}

void logsink_commit(struct logsink *s, size_t n)
{
    DASSERT(s->len + n <= sizeof(s->buf));
    s->len += n;
}

int log_open(const char *dest, int *off)
{
    *off = 0;
    if (dest == NULL || strcmp(dest, "stdout") == 0)
        return 1;
    if (strcmp(dest, "stderr") == 0)
        return 2;
    if (strcmp(dest, "off") == 0) {
        *off = 1;
        return -1;
    }
    int fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1)
        return -errno;
    return fd;
}
