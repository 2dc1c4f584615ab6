/*
 * Tunnel bytes with splice(2): CONNECT tunnels whose two sides are plain
 * TCP move their bytes socket -> pipe -> socket inside the kernel, without
 * copying them through our buffers (two copies per byte saved, and no
 * 16 KiB buffer per direction held while the tunnel idles).
 *
 * A tunnel starts in buffered mode (tunnel_pump(), at the end of this
 * file): the 200 goes out first, and bytes the client sent along with its
 * CONNECT are already in our read buffer. When the tunnel may splice, no
 * more is read into the buffers; once they are empty it switches for good.
 * A client side behind TLS (c->tls) never switches: its bytes must pass
 * through the TLS layer.
 *
 * Each direction owns a pipe; bytes read into it are written out before
 * anything more is read, so a pipe never holds more than one read and
 * backpressure works as with buffers. A FIN read from one side is passed
 * on (shutdown SHUT_WR) once the pipe is empty: half-closes go through.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/proxy_int.h"

#define PIPE_BYTES (256 * 1024)
#define PIPE_MIN_BYTES (64 * 1024) /* the kernel's default pipe */

struct spdir {
    int p[2];
    size_t inpipe;
};

struct tunnel_splice {
    struct spdir up;   /* client -> upstream */
    struct spdir down; /* upstream -> client */
};

static void close_pipes(void *arg)
{
    struct tunnel_splice *s = arg;
    for (int i = 0; i < 2; i++) {
        if (s->up.p[i] >= 0)
            close(s->up.p[i]);
        if (s->down.p[i] >= 0)
            close(s->down.p[i]);
    }
}

static int open_pipe(struct spdir *d)
{
    if (pipe2(d->p, O_NONBLOCK | O_CLOEXEC) == -1) {
        d->p[0] = d->p[1] = -1;
        return -errno;
    }
    /* fewer, larger splices for bulk transfers; the kernel may refuse (a
     * user's pipe-buffer quota), which only costs more system calls */
    (void)fcntl(d->p[1], F_SETPIPE_SZ, PIPE_BYTES);
    /* Once the quota (fs.pipe-user-pages-soft) is spent, new pipes get two
     * pages, and each splice moves two pages at most: the buffered path
     * does better. */
    if (fcntl(d->p[1], F_GETPIPE_SZ) < PIPE_MIN_BYTES)
        return -ENOBUFS;
    return 0;
}

static _Thread_local bool quota_told; /* said once per worker */

int tunnel_splice_start(struct txn *t)
{
    struct tunnel_splice *s = pool_alloc(t->pool, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->up = (struct spdir){ { -1, -1 }, 0 };
    s->down = s->up;
    if (pool_on_destroy(t->pool, close_pipes, s) < 0)
        return -ENOMEM;
    int rc = open_pipe(&s->up);
    if (rc == 0)
        rc = open_pipe(&s->down);
    if (rc < 0) { /* buffered mode goes on, without holding pipe quota */
        close_pipes(s);
        s->up = s->down = (struct spdir){ { -1, -1 }, 0 };
        if (rc == -ENOBUFS && !quota_told) {
            log_warn("splice: this user's pipe quota (fs.pipe-user-pages-soft) "
                     "is spent; new CONNECT tunnels copy their bytes instead");
            quota_told = true;
        }
        return rc;
    }
    t->spl = s;
    buf_put(&t->c->rbuf);
    buf_put(&t->uc->rbuf);
    return 0;
}

/* One direction: <from> -> pipe -> <to>. Returns 1 when something moved
 * (bytes, or a FIN passed on), 0 when blocked, -1 when a socket broke. */
static int splice_dir(int from, bool *readable, bool *eof, int to,
                      bool *writable, struct spdir *d, bool *shut,
                      uint64_t *bytes)
{
    int moved = 0;
    for (;;) {
        ssize_t n;
        if (d->inpipe > 0) {
            if (!*writable)
                break;
            n = splice(d->p[0], NULL, to, NULL, d->inpipe,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                d->inpipe -= (size_t)n;
                *bytes += (uint64_t)n;
                moved = 1;
                continue;
            }
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN) {
                *writable = false;
                break;
            }
            return -1;
        }
        if (*eof) {
            if (!*shut) {
                shutdown(to, SHUT_WR);
                *shut = true;
                moved = 1;
            }
            break;
        }
        if (!*readable)
            break;
        n = splice(from, NULL, d->p[1], NULL, PIPE_BYTES,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->inpipe += (size_t)n;
            moved = 1;
            continue;
        }
        if (n == 0) {
            *eof = true;
            *readable = false;
            moved = 1;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) { /* the pipe is empty: the socket is */
            *readable = false;
            break;
        }
        return -1;
    }
    return moved;
}

int tunnel_splice_pump(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    struct tunnel_splice *s = t->spl;
    int a = splice_dir(c->ev.fd, &c->readable, &c->eof, uc->ev.fd,
                       &uc->writable, &s->up, &t->c_shut, &t->reqf.bytes);
    if (a < 0)
        return -1;
    int b = splice_dir(uc->ev.fd, &uc->readable, &t->up_eof, c->ev.fd,
                       &c->writable, &s->down, &t->u_shut, &t->resf.bytes);
    if (b < 0)
        return -1;
    return a | b;
}

/* ---- buffered mode (and the 101 head, before splice) ---- */

/* One direction of raw bytes from <b>, written to the client of <t>, or to
 * the upstream <uc> when <t> is NULL; <bytes> counts them. Returns 1 on
 * progress, 0 when blocked, -1 on a broken socket. */
static int tunnel_dir(struct txn *t, struct uconn *uc, struct buf *b, size_t *fwd,
                      uint64_t *bytes)
{
    if (*fwd == 0)
        *fwd = buf_len(b);
    if (*fwd == 0 || !(t != NULL ? cli_writable(t) : uc->writable))
        return 0;
    struct outq none = { 0 };
    ssize_t n = t != NULL ? cli_send(t, &none, buf_head(b), *fwd)
                          : uconn_send(uc, &none, NULL, buf_head(b), *fwd);
    if (n == -EAGAIN)
        return 0;
    if (n < 0)
        return -1;
    *fwd -= (size_t)n;
    *bytes += (uint64_t)n;
    buf_consume(b, (size_t)n);
    return 1;
}

/* A read that fills a tunnel's buffer marks its direction bulk: from then
 * on it reads into a BUF_BULK buffer (fewer system calls, fewer wakeups of
 * both ends), until a read brings less than a small buffer's worth. */
static void bulk_before_read(struct buf *b, bool bulk)
{
    if (bulk && buf_len(b) == 0)
        (void)buf_grow(b, BUF_BULK); /* no memory: read small */
}

static void bulk_after_read(struct buf *b, ssize_t n, bool *bulk)
{
    if (n <= 0)
        return;
    if (buf_room(b) == 0 && b->cap < BUF_BULK)
        *bulk = true;
    else if (b->cap == BUF_BULK && (size_t)n < BUF_SIZE)
        *bulk = false;
}

/* Bulk buffers are big: an empty one goes back to the thread's cache
 * whenever the tunnel waits, so an idle tunnel holds none. */
static void bulk_idle(struct buf *b)
{
    if (b->cap == BUF_BULK)
        buf_release_if_empty(b);
}

/* Buffered, client -> upstream: what the buffer holds, then the client's
 * FIN or a fresh read. 1 progress, 0 blocked, -1 a socket broke. */
static int pump_up(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    int r = tunnel_dir(NULL, uc, &c->rbuf, &t->reqf.fwd, &t->reqf.bytes);
    if (r < 0 || buf_len(&c->rbuf) > 0 || t->c_shut)
        return r;
    if (c->eof) {
        ups_shutdown(uc);
        t->c_shut = true;
    } else if (c->readable && !t->splice) {
        bulk_before_read(&c->rbuf, t->c_bulk);
        ssize_t n = conn_read(c);
        bulk_after_read(&c->rbuf, n, &t->c_bulk);
        if (n >= 0)
            return 1;
        if (n != -EAGAIN)
            return -1;
    }
    return r;
}

/* Buffered, upstream -> client: the same the other way. */
static int pump_down(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    int r = tunnel_dir(t, NULL, &uc->rbuf, &t->resf.fwd, &t->resf.bytes);
    if (r < 0 || buf_len(&uc->rbuf) > 0 || t->u_shut)
        return r;
    if (t->up_eof) {
        conn_shutdown(c);
        t->u_shut = true;
    } else if (uc->readable && !t->splice) {
        bulk_before_read(&uc->rbuf, t->u_bulk);
        ssize_t n = txn_ups_read(uc);
        bulk_after_read(&uc->rbuf, n, &t->u_bulk);
        if (n == 0)
            t->up_eof = true;
        if (n >= 0)
            return 1;
        if (n != -EAGAIN)
            return -1;
    }
    return r;
}

void tunnel_pump(struct txn *t)
{
    struct conn *c = t->c;
    struct uconn *uc = t->uc;
    bool progress = false;
    for (;;) {
        bool moved = false;
        if (outq_pending(&t->cout)) { /* the 101 head first */
            if (!cli_writable(t))
                break;
            ssize_t n = cli_send(t, &t->cout, NULL, 0);
            if (n == -EAGAIN)
                break;
            if (n < 0)
                goto Broken;
            continue;
        }
        /* splice wanted: nothing more is read into the buffers (below),
         * so they empty and the switch happens right after what came with
         * the CONNECT, not whenever a busy stream happens to pause */
        if (t->splice && t->spl == NULL && buf_len(&c->rbuf) == 0 &&
            buf_len(&uc->rbuf) == 0 && tunnel_splice_start(t) < 0)
            t->splice = false; /* no pipes: stay buffered */
        if (t->spl != NULL) {
            int r = tunnel_splice_pump(t);
            if (r < 0)
                goto Broken;
            moved = r > 0;
            goto Moved;
        }
        int up = pump_up(t), down = up < 0 ? 0 : pump_down(t);
        if (up < 0 || down < 0)
            goto Broken;
        moved = up > 0 || down > 0;
    Moved:
        if (t->c_shut && t->u_shut) {
            txn_done_upstream(t);
            return;
        }
        if (!moved)
            break;
        progress = true;
    }
    bulk_idle(&c->rbuf);
    bulk_idle(&uc->rbuf);
    if (progress)
        txn_arm_upstream(t, t->ups->cu->read_timeout);
    return;
Broken:
    txn_done_upstream(t);
}
