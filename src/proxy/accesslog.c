/*
 * Access log lines, batched per worker (one write(2) per loop iteration).
 *
 * combined: the Apache/nginx combined format, then our fields:
 *   127.0.0.1 - - [26/Nov/2026:21:30:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.88.1" rt=0.001 ups=was srv=10.0.0.2:8080 reason=-
 * srv= names every server tried, in order ("a,b" after a retry; "-" when
 * none was).
 * (the second "-" is the authenticated user of a forward proxy)
 * json: one object per line with the same facts.
 */
#include <stdio.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/proxy_int.h"

#define LINE_MAX_ 4096

static struct str field_or_dash(const struct h1_msg *m, const char *name)
{
    const struct h1_field *f = h1_find(m, str_cstr(name));
    if (f == NULL || f->value.len == 0)
        return STR_LIT("-");
    return f->value;
}

/* Copies <s> escaping '"', '\\' and control bytes (\xHH), at most <max>
 * output bytes. Returns the bytes written. */
static size_t esc(char *out, size_t max, struct str s, bool json)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch == '"' || ch == '\\') {
            if (o + 2 > max)
                break;
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            if (o + 6 > max)
                break;
            out[o++] = '\\';
            if (json) {
                memcpy(out + o, "u00", 3);
                o += 3;
            } else {
                out[o++] = 'x';
            }
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            if (o + 1 > max)
                break;
            out[o++] = (char)ch;
        }
    }
    return o;
}

struct line {
    char *p;
    size_t len, cap;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...)
{
    if (l->len >= l->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len = MIN(l->len + (size_t)n, l->cap - 1);
}

static void add_esc(struct line *l, struct str s, size_t max, bool json)
{
    size_t room = l->cap - l->len - 1;
    l->len += esc(l->p + l->len, MIN(room, max), s, json);
}

static void combined(struct line *l, const struct txn *t, const char *ip,
                     double secs)
{
    const struct h1_msg *m = &t->req;
    add(l, "%s - ", ip);
    if (t->user.len > 0)
        add_esc(l, t->user, 128, false);
    else
        add(l, "-");
    add(l, " [%s] \"", t->c->w->clf_date);
    if (m->method.len > 0) {
        add_esc(l, m->method, 32, false);
        add(l, " ");
        add_esc(l, m->target, 1024, false);
        if (t->h2 != NULL)
            add(l, " HTTP/2.0\" ");
        else
            add(l, " HTTP/%d.%d\" ", m->version / 10, m->version % 10);
    } else {
        add(l, "-\" ");
    }
    add(l, "%d %llu \"", t->status, (unsigned long long)t->resf.bytes + t->local_off);
    add_esc(l, field_or_dash(m, "referer"), 512, false);
    add(l, "\" \"");
    add_esc(l, field_or_dash(m, "user-agent"), 512, false);
    char tried[512];
    if (pick_tried(t, tried, sizeof(tried)) == 0)
        tried[0] = '-', tried[1] = '\0';
    add(l, "\" rt=%.3f ups=%s srv=%s reason=%s\n", secs,
        t->ups ? t->ups->cu->name : "-", tried, t->reason ? t->reason : "-");
}

static void json(struct line *l, const struct txn *t, const char *ip, double secs)
{
    const struct h1_msg *m = &t->req;
    char ts[96];
    int64_t ms = loop_wall_ms(t->c->w->loop);
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    add(l, "{\"time\":\"%s\",\"client\":\"%s\",\"user\":\"", ts, ip);
    add_esc(l, t->user, 128, true);
    add(l, "\",\"method\":\"");
    add_esc(l, m->method, 32, true);
    add(l, "\",\"target\":\"");
    add_esc(l, m->target, 1024, true);
    add(l, "\",\"protocol\":\"HTTP/%d.%d\",\"host\":\"",
        t->h2 != NULL ? 2 : m->version / 10, t->h2 != NULL ? 0 : m->version % 10);
    add_esc(l, t->host, 256, true);
    add(l, "\",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,"
           "\"upstream\":\"%s\",\"upstream_status\":%d,\"reason\":\"%s\","
           "\"referer\":\"",
        t->status, (unsigned long long)t->resf.bytes + t->local_off, secs * 1000,
        t->ups ? t->ups->cu->name : "", t->ustatus, t->reason ? t->reason : "");
    struct str ref = field_or_dash(m, "referer");
    add_esc(l, ref, 512, true);
    add(l, "\",\"user_agent\":\"");
    add_esc(l, field_or_dash(m, "user-agent"), 512, true);
    char tried[512];
    size_t n = pick_tried(t, tried, sizeof(tried));
    add(l, "\",\"upstream_servers\":[");
    for (size_t i = 0, start = 0; i <= n && n > 0; i++) {
        if (i < n && tried[i] != ',')
            continue;
        add(l, "%s\"%.*s\"", start ? "," : "", (int)(i - start), tried + start);
        start = i + 1;
    }
    add(l, "]}\n");
}

void alog_write(struct txn *t)
{
    struct worker *w = t->c->w;
    if (!w->alog_on)
        return;
    (void)worker_date(w); /* refresh clf_date */
    char *p = logsink_reserve(&w->alog, LINE_MAX_);
    if (p == NULL)
        return;
    char ip[64];
    sock_ntop(&t->c->peer.sa, ip, sizeof(ip));
    double secs = (double)(loop_now_us(w->loop) - t->t0_us) / 1e6;
    struct line l = { p, 0, LINE_MAX_ };
    if (w->alog_fmt == CFG_LOG_JSON)
        json(&l, t, ip, secs);
    else
        combined(&l, t, ip, secs);
    if (l.len > 0 && l.p[l.len - 1] != '\n') /* truncated: keep it one line */
        l.p[l.len - 1] = '\n';
    logsink_commit(&w->alog, l.len);
}
