/*
 * Error log (levels, one line per event) and batched line sinks for the
 * access log.
 *
 * Error log lines: "2026-11-26T21:30:00.123Z [warn] w1: upstream was: ..."
 * The worker tag comes from log_set_thread_tag().
 */
#ifndef GH_CORE_LOG_H
#define GH_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* syslog(3) numbering */
#define GH_LOG_ERR 3
#define GH_LOG_WARN 4
#define GH_LOG_INFO 6
#define GH_LOG_DEBUG 7

/* Sets where error lines go (an open fd; 2 by default) and the lowest level
 * written. Safe to call while workers log (both are atomics). */
void log_set_error_fd(int fd);
int log_error_fd(void);
void log_set_level(int level);
int log_level(void);

/* Tags this thread's lines, e.g. "main", "w1". Copies <tag>. */
void log_set_thread_tag(const char *tag);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_err(...) log_msg(GH_LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(GH_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(GH_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_level() >= GH_LOG_DEBUG)                                       \
            log_msg(GH_LOG_DEBUG, __VA_ARGS__);                                \
    } while (0)

/* A batched line sink: lines are appended to a per-thread buffer and written
 * with one write(2) per loop iteration (or when the buffer fills). */
struct logsink {
    int fd; /* -1: discard */
    size_t len;
    char buf[32768];
};

void logsink_init(struct logsink *s, int fd);
/* Reserves <n> bytes at the end of the batch; returns NULL if n is too big.
 * Flushes first when needed. Commit with logsink_commit(). */
char *logsink_reserve(struct logsink *s, size_t n);
void logsink_commit(struct logsink *s, size_t n);
void logsink_flush(struct logsink *s);

/* Opens a log destination: "stdout", "stderr", "off" (returns -1 with
 * *off set), or a path opened O_APPEND|O_CREAT. Returns fd or -errno. */
int log_open(const char *dest, int *off);

#endif
