/*
 * I/O buffers from a per-thread pool. A connection holds a buffer only while
 * it has bytes in flight: an idle keep-alive connection gives its buffer
 * back, which is what keeps 10,000 idle clients cheap.
 *
 * Bytes live in data[start, end); free room is data[end, cap).
 */
#ifndef GH_CORE_BUF_H
#define GH_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUF_SIZE 16384

/* Bulk streams (tunnels moving megabytes) read into buffers of this size:
 * fewer, larger system calls and, on loopback, far fewer wakeups of the
 * ends (bench/README.md, scenario "connect"). A few are kept per thread. */
#define BUF_BULK (1024 * 1024)

struct buf {
    char *data; /* NULL when no memory is attached */
    uint32_t cap, start, end;
};

/* Attaches a BUF_SIZE block from the thread's pool to <b> if it has none.
 * Returns 0 or -ENOMEM. */
int buf_get(struct buf *b);

/* Gives the memory back to the pool (or to malloc when oversized). */
void buf_put(struct buf *b);

/* Grows <b> to hold at least <cap> bytes, keeping its contents.
 * Returns 0 or -ENOMEM. */
int buf_grow(struct buf *b, size_t cap);

/* Frees the thread's cache of blocks (at thread exit). */
void buf_thread_cleanup(void);

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}

static inline size_t buf_room(const struct buf *b)
{
    return b->cap - b->end;
}

static inline char *buf_head(const struct buf *b)
{
    return b->data + b->start;
}

static inline char *buf_tail(const struct buf *b)
{
    return b->data + b->end;
}

static inline void buf_consume(struct buf *b, size_t n)
{
    b->start += (uint32_t)n;
    if (b->start == b->end)
        b->start = b->end = 0;
}

/* Moves pending bytes to the front to make room at the end. */
void buf_compact(struct buf *b);

/* Returns the memory when the buffer is empty (idle connections). */
static inline void buf_release_if_empty(struct buf *b)
{
    if (b->data != NULL && b->start == b->end)
        buf_put(b);
}

#endif
