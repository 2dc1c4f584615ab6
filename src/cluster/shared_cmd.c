/*
 * The calls of shared.h: each is one command (a Lua script where the
 * read-modify-write must be atomic across nodes) on the command
 * connection, and a struct shared_call_ that carries the caller's request
 * to the reply. Calls come from a free list, so the steady state costs no
 * malloc, and their number is capped: a Redis that answers slowly cannot
 * make a node queue without bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/shared_int.h"
#include "core/log.h"
#include "core/macros.h"

enum call_kind { K_FIRE = 0, K_GCRA, K_INCR, K_GET };

/* GCRA with Redis's clock, in µs. ARGV: period, burst - 1. Returns
 * { 0, next } and counts the request, or { wait, wait } (not counted):
 * wait is the µs until this request would pass, next the µs until the
 * following one would (0: at once), so a node can refuse without asking
 * until then. Numbers are formatted with %.0f: Lua's default %.14g would
 * round µs timestamps. */
static const char gcra_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local period = tonumber(ARGV[1])\n"
    "local tau = tonumber(ARGV[2]) * period\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or now)\n"
    "if tat < now then tat = now end\n"
    "local wait = tat - tau - now\n"
    "if wait > 0 then wait = math.ceil(wait) return { wait, wait } end\n"
    "tat = tat + period\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
    "           string.format('%.0f', math.ceil((tat - now) / 1000) + 1))\n"
    "local nxt = tat - tau - now\n"
    "if nxt < 0 then nxt = 0 end\n"
    "return { 0, math.ceil(nxt) }\n";

/* A fixed window: INCRBY, with the expiry set by the first increment.
 * Returns { count, ms left }. */
static const char incr_lua[] =
    "local n = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if ttl < 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  ttl = tonumber(ARGV[2])\n"
    "end\n"
    "return { n, ttl }\n";

/* ---- calls ---- */

static struct shared_call_ *call_get(struct shared *s, struct shared_req *q,
                                     int kind)
{
    if (s->live >= SHARED_MAX_PENDING)
        return NULL;
    struct shared_call_ *c = s->free_calls;
    if (c != NULL) {
        s->free_calls = c->next;
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL)
            return NULL;
        s->ncalls++;
    }
    c->next = NULL;
    c->s = s;
    c->q = q;
    c->kind = kind;
    s->live++;
    if (q != NULL)
        q->call_ = c;
    return c;
}

static void call_put(struct shared_call_ *c)
{
    struct shared *s = c->s;
    c->q = NULL;
    c->next = s->free_calls;
    s->free_calls = c;
    s->live--;
}

void shared__calls_free(struct shared *s)
{
    ASSERT(s->live == 0); /* the connections are gone: every call ended */
    while (s->free_calls != NULL) {
        struct shared_call_ *c = s->free_calls;
        s->free_calls = c->next;
        free(c);
    }
    s->ncalls = 0;
}

void shared_cancel(struct shared_req *q)
{
    if (q->call_ != NULL) {
        q->call_->q = NULL;
        q->call_ = NULL;
    }
}

static void parse_reply(int kind, const redisReply *r, struct shared_res *res)
{
    switch (kind) {
    case K_GCRA:
    case K_INCR:
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            res->n = r->element[0]->integer;
            res->n2 = r->element[1]->integer;
        } else {
            res->err = -EPROTO;
        }
        break;
    case K_GET:
        if (r->type == REDIS_REPLY_STRING) {
            res->str = r->str;
            res->len = r->len;
        } else if (r->type != REDIS_REPLY_NIL) {
            res->err = -EPROTO;
        }
        break;
    default:
        break;
    }
}

static void reply_done(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct shared_call_ *c = priv;
    struct shared *s = c->s;
    const redisReply *r = reply;
    struct shared_res res = { 0 };

    shared__rc_replied(&s->cmd);
    if (r == NULL)
        res.err = s->cmd.why != 0 ? s->cmd.why : -ENOTCONN;
    else if (r->type == REDIS_REPLY_ERROR)
        res.err = -EPROTO;
    else
        parse_reply(c->kind, r, &res);
    if (res.err != 0) {
        atomic_fetch_add_explicit(&shared__cnt.failed, 1, memory_order_relaxed);
        /* at most one line in 10 s: a Redis refusing every write (a
         * replica, out of memory) must not flood the log */
        int64_t now = loop_now(s->l);
        if (res.err == -EPROTO && (s->proto_logged == 0 || now - s->proto_logged >= 10000)) {
            s->proto_logged = now;
            log_warn("redis %s: unexpected reply: %s; using local state for "
                     "such calls", s->addr_text,
                     r->type == REDIS_REPLY_ERROR ? r->str : "wrong type");
        }
    }
    struct shared_req *q = c->q;
    call_put(c);
    if (q != NULL) {
        q->call_ = NULL;
        q->cb(q, &res);
    }
}

/* Sends argv on the command connection for <q> (NULL: fire and forget). */
static int send_call(struct shared *s, struct shared_req *q, int kind,
                     int argc, const char **argv, const size_t *argvlen)
{
    if (s->cmd.state != RC_UP || s->closing) {
        atomic_fetch_add_explicit(&shared__cnt.fallbacks, 1, memory_order_relaxed);
        return -ENOTCONN;
    }
    struct shared_call_ *c = call_get(s, q, kind);
    if (c == NULL)
        return -ENOBUFS;
    int rc = shared__rc_send(&s->cmd, reply_done, c, true, argc, argv, argvlen);
    if (rc < 0) {
        if (q != NULL)
            q->call_ = NULL;
        call_put(c);
        atomic_fetch_add_explicit(&shared__cnt.fallbacks, 1, memory_order_relaxed);
    }
    return rc;
}

/* prefix + key into <buf> (SHARED_MAX_KEY + prefix room). */
static int mkkey(const struct shared *s, struct str key, char *buf,
                 size_t *len)
{
    if (key.len > SHARED_MAX_KEY)
        return -ENAMETOOLONG;
    memcpy(buf, s->prefix, s->plen);
    if (key.len > 0)
        memcpy(buf + s->plen, key.p, key.len);
    *len = s->plen + key.len;
    return 0;
}

/* Formats <v> as decimal into <buf>; returns its length. */
static size_t fmt_i64(char *buf, size_t size, int64_t v)
{
    int n = snprintf(buf, size, "%lld", (long long)v);
    return n > 0 ? (size_t)n : 0;
}

#define KEYBUF (SHARED_MAX_KEY + sizeof(((struct shared *)0)->prefix))

int shared_gcra(struct shared *s, struct shared_req *q, struct str key,
                int64_t period_us, uint32_t burst)
{
    char k[KEYBUF], a1[24], a2[24];
    size_t klen;
    int rc = mkkey(s, key, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[6] = { "EVAL", gcra_lua, "1", k, a1, a2 };
    size_t argvlen[6] = { 4, sizeof(gcra_lua) - 1, 1, klen,
                          fmt_i64(a1, sizeof(a1), MAX(period_us, 1)),
                          fmt_i64(a2, sizeof(a2), burst > 0 ? burst - 1 : 0) };
    return send_call(s, q, K_GCRA, 6, argv, argvlen);
}

int shared_incr(struct shared *s, struct shared_req *q, struct str key,
                int64_t by, int64_t window_ms)
{
    char k[KEYBUF], a1[24], a2[24];
    size_t klen;
    int rc = mkkey(s, key, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[6] = { "EVAL", incr_lua, "1", k, a1, a2 };
    size_t argvlen[6] = { 4, sizeof(incr_lua) - 1, 1, klen,
                          fmt_i64(a1, sizeof(a1), by),
                          fmt_i64(a2, sizeof(a2), MAX(window_ms, 1)) };
    return send_call(s, q, K_INCR, 6, argv, argvlen);
}

int shared_get(struct shared *s, struct shared_req *q, struct str key)
{
    char k[KEYBUF];
    size_t klen;
    int rc = mkkey(s, key, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[2] = { "GET", k };
    size_t argvlen[2] = { 3, klen };
    return send_call(s, q, K_GET, 2, argv, argvlen);
}

int shared_getex(struct shared *s, struct shared_req *q, struct str key,
                 int64_t ttl_ms)
{
    char k[KEYBUF], a[24];
    size_t klen;
    int rc = mkkey(s, key, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[4] = { "GETEX", k, "PX", a };
    size_t argvlen[4] = { 5, klen, 2, fmt_i64(a, sizeof(a), MAX(ttl_ms, 1)) };
    return send_call(s, q, K_GET, 4, argv, argvlen);
}

int shared_set(struct shared *s, struct str key, struct str val,
               int64_t ttl_ms)
{
    char k[KEYBUF], a[24];
    size_t klen;
    int rc = mkkey(s, key, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[5] = { "SET", k, val.len > 0 ? val.p : "", "PX", a };
    size_t argvlen[5] = { 3, klen, val.len, 2, 0 };
    if (ttl_ms > 0)
        argvlen[4] = fmt_i64(a, sizeof(a), ttl_ms);
    return send_call(s, NULL, K_FIRE, ttl_ms > 0 ? 5 : 3, argv, argvlen);
}

int shared_publish(struct shared *s, struct str channel, struct str msg)
{
    char k[KEYBUF];
    size_t klen;
    int rc = mkkey(s, channel, k, &klen);
    if (rc < 0)
        return rc;
    const char *argv[3] = { "PUBLISH", k, msg.len > 0 ? msg.p : "" };
    size_t argvlen[3] = { 7, klen, msg.len };
    return send_call(s, NULL, K_FIRE, 3, argv, argvlen);
}

/* ---- subscriptions ---- */

static void sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct shared_sub *sub = priv;
    const redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *what = r->element[0]->str;
    if (strcmp(what, "subscribe") == 0) {
        if (sub->ever) /* it was down: whatever was published meanwhile is lost */
            sub->fn(sub->arg, STR_NULL, STR_NULL);
        sub->ever = true;
        return;
    }
    if (strcmp(what, "message") != 0 || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    struct str ch = str_make(r->element[1]->str, r->element[1]->len);
    if (ch.len >= sub->plen) {
        ch.p += sub->plen;
        ch.len -= sub->plen;
    }
    sub->fn(sub->arg, ch, str_make(r->element[2]->str, r->element[2]->len));
}

static int send_subscribe(struct shared *s, struct shared_sub *sub)
{
    const char *argv[2] = { "SUBSCRIBE", sub->channel };
    size_t argvlen[2] = { 9, strlen(sub->channel) };
    return shared__rc_send(&s->sub, sub_msg, sub, false, 2, argv, argvlen);
}

void shared__resubscribe(struct shared *s)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (send_subscribe(s, &s->subs[i]) < 0)
            return; /* the connection died: the next connect resends */
}

int shared_subscribe(struct shared *s, struct str channel, shared_msg_fn *fn,
                     void *arg)
{
    char k[KEYBUF];
    size_t klen;
    int rc = mkkey(s, channel, k, &klen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < s->nsubs; i++)
        if (strlen(s->subs[i].channel) == klen &&
            memcmp(s->subs[i].channel, k, klen) == 0)
            return -EEXIST;
    if (s->nsubs == SHARED_MAX_SUBS)
        return -ENOMEM;
    struct shared_sub *sub = &s->subs[s->nsubs];
    sub->channel = strndup(k, klen);
    if (sub->channel == NULL)
        return -ENOMEM;
    sub->plen = s->plen;
    sub->fn = fn;
    sub->arg = arg;
    sub->ever = false;
    s->nsubs++;
    if (s->sub.state == RC_OFF) {
        s->sub.state = RC_DOWN;
        shared__rc_start(&s->sub);
    } else if (s->sub.state == RC_UP) {
        (void)send_subscribe(s, sub);
    }
    return 0;
}
