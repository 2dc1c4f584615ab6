/*
 * The admin thread: a small HTTP/1.1 server for operators, with its own
 * allow list, and the sampler that keeps a few minutes of history for the
 * dashboard.
 *
 * It shares the request parser with the proxy (the same strictness) but
 * nothing else: requests are GET or HEAD without a body, responses are
 * built whole in memory (the largest, /metrics, is proportional to the
 * number of routes), and connections are few. Who may ask is decided by
 * the admin section's "allow" list, on the client address, or on the one a
 * PROXY header carries when the admin listener expects one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "core/log.h"
#include "core/macros.h"
#include "core/sock.h"
#include "http/h1.h"
#include "proxy/proxy_proto.h"
#include "security/security.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_IN 8192
#define ADMIN_TIMEOUT_MS 30000
#define ADMIN_FIELDS 64

struct aconn {
    struct ev ev;
    struct timer timer;
    struct admin *a;
    struct aconn *prev, *next;
    union pp_addr peer;
    char in[ADMIN_IN];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
    bool pp_wait, close_after, dead;
};

int64_t admin_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct aconn *c)
{
    if (c->dead)
        return;
    struct admin *a = c->a;
    c->dead = true;
    timer_cancel(a->loop, &c->timer);
    close(c->ev.fd);
    c->ev.fd = -1;
    FREE_NULL(c->out);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->nconns--;
    loop_free_later(a->loop, c);
}

static void conn_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    conn_close(container_of(t, struct aconn, timer));
}

/* Queues a whole response; the body is copied. */
static void respond(struct aconn *c, int status, const char *ctype,
                    const char *body, size_t len, bool head, const char *extra)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "%s%s\r\n",
                     status, h1_reason(status), ctype, len, extra ? extra : "",
                     c->close_after ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(hdr)) {
        conn_close(c);
        return;
    }
    size_t blen = head ? 0 : len;
    c->out = malloc((size_t)n + blen);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (blen > 0)
        memcpy(c->out + n, body, blen);
    c->outlen = (size_t)n + blen;
    c->outoff = 0;
}

static void text(struct aconn *c, int status, const char *msg, bool head)
{
    respond(c, status, "text/plain; charset=utf-8", msg, strlen(msg), head, NULL);
}

static void serve(struct aconn *c, const struct h1_msg *req)
{
    struct admin *a = c->a;
    bool head = req->meth == H1_M_HEAD;
    if (!cfg_cidr_match(a->cfg->admin.allow, a->cfg->admin.nallow, &c->peer.sa)) {
        char ip[64];
        sock_ntop(&c->peer.sa, ip, sizeof(ip));
        log_warn("admin: %s is not in the allow list", ip);
        c->close_after = true;
        text(c, 403, "403 Forbidden\nThis address may not use the admin listener.\n", head);
        return;
    }
    if (req->meth != H1_M_GET && req->meth != H1_M_HEAD) {
        c->close_after = req->body != H1_B_NONE;
        respond(c, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23,
                false, "Allow: GET, HEAD\r\n");
        return;
    }
    struct str p = req->path;
    const char *q = memchr(p.p, '?', p.len);
    if (q != NULL)
        p.len = (size_t)(q - p.p);
    if (str_eq(p, STR_LIT("/healthz"))) {
        pthread_mutex_lock(&a->mu);
        bool draining = a->draining;
        pthread_mutex_unlock(&a->mu);
        text(c, draining ? 503 : 200, draining ? "draining\n" : "ok\n", head);
    } else if (str_eq(p, STR_LIT("/metrics"))) {
        struct sbuf extra = { 0 };
        status_prometheus(a, &extra);
        size_t elen = 0;
        char *e = sb_take(&extra, &elen);
        size_t len = 0;
        char *body = metrics_prometheus(a->m, a->cfg, e, &len);
        free(e);
        if (body == NULL) {
            text(c, 503, "out of memory\n", head);
            return;
        }
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, head, NULL);
        free(body);
    } else if (str_eq(p, STR_LIT("/status"))) {
        size_t len = 0;
        char *body = status_json(a, &len);
        if (body == NULL) {
            text(c, 503, "out of memory\n", head);
            return;
        }
        respond(c, 200, "application/json", body, len, head, NULL);
        free(body);
    } else if (str_eq(p, STR_LIT("/"))) {
        respond(c, 200, "text/html; charset=utf-8", dashboard_html, dashboard_html_len,
                head, "Content-Security-Policy: default-src 'self'; "
                      "script-src 'unsafe-inline'; style-src 'unsafe-inline'\r\n");
    } else {
        text(c, 404, "404 Not Found\nTry /, /status, /metrics or /healthz.\n", head);
    }
}

/* Parses and answers what is in c->in. Returns false when the connection
 * was closed or must wait for more bytes. */
static bool handle_input(struct aconn *c)
{
    if (c->pp_wait) {
        struct pp_info pi;
        int rc = pp_parse(c->in, c->inlen, &pi);
        if (rc == -EAGAIN)
            return false;
        if (rc < 0) {
            conn_close(c);
            return false;
        }
        if (!pi.local)
            c->peer = pi.src;
        memmove(c->in, c->in + rc, c->inlen - (size_t)rc);
        c->inlen -= (size_t)rc;
        c->pp_wait = false;
    }
    if (c->inlen == 0)
        return false;
    struct h1_field f[ADMIN_FIELDS];
    struct h1_msg m;
    struct h1_limits lim = { ADMIN_IN, ADMIN_FIELDS, 2048 };
    h1_msg_init(&m, f, ADMIN_FIELDS);
    int rc = h1_parse_request(c->in, c->inlen, &m, &lim);
    if (rc == -EAGAIN) {
        if (c->inlen == sizeof(c->in)) {
            c->close_after = true;
            text(c, 431, "431 Request Header Fields Too Large\n", false);
            return true;
        }
        return false;
    }
    if (rc < 0) {
        c->close_after = true;
        text(c, m.err_status ? m.err_status : 400, "400 Bad Request\n", false);
        return true;
    }
    c->close_after = !h1_keepalive(&m) || m.body != H1_B_NONE;
    serve(c, &m);
    if (c->dead)
        return false;
    memmove(c->in, c->in + rc, c->inlen - (size_t)rc);
    c->inlen -= (size_t)rc;
    return true;
}

/* Writes what is queued. Returns false when it must wait or closed. */
static bool flush_out(struct aconn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = write(c->ev.fd, c->out + c->outoff, c->outlen - c->outoff);
        if (n > 0) {
            c->outoff += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return false;
        conn_close(c);
        return false;
    }
    FREE_NULL(c->out);
    c->outlen = c->outoff = 0;
    if (c->close_after) {
        shutdown(c->ev.fd, SHUT_WR);
        conn_close(c);
        return false;
    }
    return true;
}

static void conn_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct aconn *c = container_of(e, struct aconn, ev);
    if (c->dead)
        return;
    timer_set(c->a->loop, &c->timer, ADMIN_TIMEOUT_MS, conn_timeout);
    for (int rounds = 0; rounds < 64; rounds++) {
        if (c->out != NULL && !flush_out(c))
            return;
        if (handle_input(c))
            continue;
        if (c->dead)
            return;
        if (c->inlen == sizeof(c->in))
            return;
        ssize_t n = read(c->ev.fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
        if (n > 0) {
            c->inlen += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_close(c); /* EOF or error */
        return;
    }
}

static void accept_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)l;
    (void)events;
    struct admin *a = container_of(e, struct admin, lsn);
    for (int i = 0; i < 16; i++) {
        union pp_addr peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(e->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        struct aconn *c = a->nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->a = a;
        c->peer = peer;
        c->pp_wait = a->cfg->admin.proxy_protocol;
        c->ev = (struct ev){ fd, conn_event };
        if (loop_add(a->loop, &c->ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = a->conns;
        if (a->conns != NULL)
            a->conns->prev = c;
        a->conns = c;
        a->nconns++;
        timer_set(a->loop, &c->timer, ADMIN_TIMEOUT_MS, conn_timeout);
    }
}

/* ---- listener and snapshot ---- */

static int open_admin(const struct cfg *cfg)
{
    const struct cfg_addr *ad = &cfg->admin.addr;
    int fd = sock_listen((const struct sockaddr *)&ad->ss, ad->len, 64, false);
    if (fd < 0)
        log_err("admin listener %s: %s", ad->text, strerror(-fd));
    return fd;
}

static void set_listener(struct admin *a, int fd)
{
    if (a->lsn.fd >= 0) {
        loop_del(a->loop, &a->lsn);
        close(a->lsn.fd);
    }
    a->lsn = (struct ev){ fd, accept_event };
    if (fd >= 0 && loop_add_read(a->loop, &a->lsn) < 0)
        log_err("admin: cannot watch the listener");
}

static void tick(struct loop *l, struct timer *t)
{
    struct admin *a = container_of(t, struct admin, tick);
    status_sample(a);
    timer_set(l, t, 1000, tick);
}

static void wake_event(struct loop *l, struct ev *e, uint32_t events)
{
    (void)events;
    struct admin *a = container_of(e, struct admin, wake);
    uint64_t v;
    if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&a->mu);
    struct cfg *n = a->pending;
    int fd = a->pending_fd;
    bool stop = a->stop;
    a->pending = NULL;
    a->pending_fd = -1;
    pthread_mutex_unlock(&a->mu);
    if (n != NULL) {
        cfg_unref(a->cfg);
        a->cfg = n;
        if (fd >= 0 || fd == -2)
            set_listener(a, fd >= 0 ? fd : -1);
        if (fd >= 0)
            log_info("admin listener on %s", n->admin.addr.text);
    }
    if (stop)
        loop_stop(l);
}

int admin_listen_fd(const struct admin *a)
{
    return a->lsn.fd;
}

struct admin *admin_new(struct metrics *m, struct cfg *cfg, int nworkers, int fd)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->m = m;
    a->nworkers = nworkers;
    a->lsn.fd = -1;
    a->wake.fd = -1;
    a->pending_fd = -1;
    a->generation = 1;
    if (!cfg->admin.enabled && fd >= 0)
        close(fd);
    pthread_mutex_init(&a->mu, NULL);
    a->cfg = cfg_ref(cfg);
    a->loop = loop_new();
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->loop == NULL || efd == -1) {
        if (efd >= 0)
            close(efd);
        goto Fail;
    }
    a->wake = (struct ev){ efd, wake_event };
    if (loop_add_read(a->loop, &a->wake) < 0)
        goto Fail;
    a->start_ms = admin_wall_ms();
    if (cfg->admin.enabled) {
        if (fd < 0)
            fd = open_admin(cfg);
        if (fd < 0)
            goto Fail;
        set_listener(a, fd);
        a->main_enabled = true;
        a->main_addr = cfg->admin.addr;
    }
    return a;
Fail:
    admin_free(a);
    return NULL;
}

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    log_set_thread_tag("admin");
    /* it reads requests from the network: a worker's sandbox, on top of
     * the main thread's it inherited (docs/security.md) */
    if (a->cfg->security.sandbox && sandbox_enter(SB_WORKER) < 0) {
        log_err("admin: cannot enter the sandbox; the admin listener is off");
        return NULL;
    }
    if (a->lsn.fd >= 0)
        log_info("admin listener on %s", a->cfg->admin.addr.text);
    timer_set(a->loop, &a->tick, 1000, tick);
    status_sample(a);
    int rc = loop_run(a->loop);
    if (rc < 0)
        log_err("admin: event loop failed: %s", strerror(-rc));
    while (a->conns != NULL)
        conn_close(a->conns);
    return NULL;
}

int admin_start(struct admin *a)
{
    int rc = pthread_create(&a->thread, NULL, admin_main, a);
    if (rc != 0) {
        log_err("cannot start the admin thread: %s", strerror(rc));
        return -rc;
    }
    return 0;
}

void admin_stop(struct admin *a)
{
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_mutex_unlock(&a->mu);
    uint64_t one = 1;
    if (write(a->wake.fd, &one, sizeof(one)) < 0)
        log_err("cannot wake the admin thread: %s", strerror(errno));
    pthread_join(a->thread, NULL);
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    if (a->loop != NULL) {
        set_listener(a, -1);
        if (a->wake.fd >= 0)
            close(a->wake.fd);
        loop_free(a->loop);
    }
    if (a->pending_fd >= 0)
        close(a->pending_fd);
    cfg_unref(a->pending);
    cfg_unref(a->cfg);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int admin_prepare(struct admin *a, const struct cfg *n, int *fd)
{
    *fd = -1;
    if (!n->admin.enabled) {
        *fd = a->main_enabled ? -2 : -1;
        return 0;
    }
    const struct cfg_addr *x = &a->main_addr, *y = &n->admin.addr;
    if (a->main_enabled && x->len == y->len && memcmp(&x->ss, &y->ss, x->len) == 0)
        return 0;
    int s = open_admin(n);
    if (s < 0)
        return s;
    *fd = s;
    return 0;
}

void admin_commit(struct admin *a, struct cfg *n, int fd)
{
    a->main_enabled = n->admin.enabled;
    if (n->admin.enabled)
        a->main_addr = n->admin.addr;
    pthread_mutex_lock(&a->mu);
    if (a->pending != NULL) { /* the thread has not taken the last one yet */
        cfg_unref(a->pending);
        if (a->pending_fd >= 0 && fd == -1)
            fd = a->pending_fd; /* still the newest socket */
        else if (a->pending_fd >= 0)
            close(a->pending_fd);
        else if (a->pending_fd == -2 && fd == -1)
            fd = -2;
    }
    a->pending = cfg_ref(n);
    a->pending_fd = fd;
    pthread_mutex_unlock(&a->mu);
    uint64_t one = 1;
    if (write(a->wake.fd, &one, sizeof(one)) < 0)
        log_err("cannot wake the admin thread: %s", strerror(errno));
}

void admin_note_reload(struct admin *a, bool ok, unsigned generation,
                       const char *error)
{
    pthread_mutex_lock(&a->mu);
    a->generation = generation;
    a->last_reload_ok = ok;
    a->last_reload_ms = admin_wall_ms();
    if (ok) {
        a->reloads_ok++;
        a->last_error[0] = '\0';
    } else {
        a->reloads_failed++;
        snprintf(a->last_error, sizeof(a->last_error), "%s", error ? error : "");
    }
    pthread_mutex_unlock(&a->mu);
}

void admin_set_draining(struct admin *a)
{
    pthread_mutex_lock(&a->mu);
    a->draining = true;
    pthread_mutex_unlock(&a->mu);
}
