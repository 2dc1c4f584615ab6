/*
 * Header rules for messages passing through (RFC 9110 §7.6): hop-by-hop
 * fields stay behind, Via is added, X-Forwarded-* / Forwarded are set as the
 * listener says, and framing fields are rewritten to match how we send the
 * body on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/proxy_int.h"

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->len + n > o->cap) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static inline void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static inline void putstr(struct out *o, struct str s)
{
    put(o, s.p, s.len);
}

static void put_field(struct out *o, struct str name, struct str value)
{
    putstr(o, name);
    put(o, ": ", 2);
    putstr(o, value);
    put(o, "\r\n", 2);
}

/* RFC 9110 §7.6.1 plus the Proxy-* fields meant for us. */
static bool hop_by_hop(struct str n)
{
    switch (n.len) {
    case 2:
        return str_ieq_lit(n, "te");
    case 7:
        return str_ieq_lit(n, "trailer") || str_ieq_lit(n, "upgrade");
    case 10:
        return str_ieq_lit(n, "connection") || str_ieq_lit(n, "keep-alive");
    case 16:
        return str_ieq_lit(n, "proxy-connection");
    case 17:
        return str_ieq_lit(n, "transfer-encoding");
    case 18:
        return str_ieq_lit(n, "proxy-authenticate");
    case 19:
        return str_ieq_lit(n, "proxy-authorization");
    default:
        return false;
    }
}

/* True when a Connection field of <m> names <name>. */
static bool connection_lists(const struct h1_msg *m, struct str name)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (f->name.len == 10 && str_ieq_lit(f->name, "connection") &&
            h1_list_has(f->value, name))
            return true;
    }
    return false;
}

/* Writes "Name: v1, v2, <last>" merging every field <name> of <m>. */
static void put_merged(struct out *o, const struct h1_msg *m, const char *name,
                       struct str last)
{
    puts_(o, name);
    put(o, ": ", 2);
    struct str lname = str_cstr(name);
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (str_ieq(f->name, lname) && f->value.len > 0) {
            putstr(o, f->value);
            put(o, ", ", 2);
        }
    }
    putstr(o, last);
    put(o, "\r\n", 2);
}

static void put_content_length(struct out *o, uint64_t n)
{
    char cl[48];
    int len = snprintf(cl, sizeof(cl), "Content-Length: %llu\r\n", (unsigned long long)n);
    put(o, cl, (size_t)len);
}

static size_t client_ip(const struct conn *c, char *out, size_t len)
{
    return sock_ntop(&c->peer.sa, out, len);
}

/* Fields that tell an origin who the client is or which proxies it went
 * through: a forward listener with "anonymous" drops them all. */
static bool identifying(struct str n)
{
    static const char *const names[] = {
        "from", "via", "forwarded", "x-forwarded-for", "x-forwarded-host",
        "x-forwarded-proto", "x-forwarded-server", "x-forwarded-port",
        "x-real-ip", "client-ip", "x-client-ip", "true-client-ip",
        "x-cluster-client-ip", "x-originating-ip",
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (str_ieq_lit(n, names[i]))
            return true;
    return false;
}

static bool skip_request_field(const struct txn *t, const struct h1_msg *req,
                               struct str n)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    if (hop_by_hop(n) || str_ieq_lit(n, "host") || str_ieq_lit(n, "proxy"))
        return true;
    if (t->anon && identifying(n))
        return true;
    if (n.len == 14 && str_ieq_lit(n, "content-length"))
        return true; /* re-emitted normalised: "5, 5" becomes "5" */
    if (str_ieq_lit(n, "via") && h->via)
        return true;
    if (str_ieq_lit(n, "x-forwarded-for") && h->x_forwarded_for != CFG_XFF_OFF)
        return true;
    if (str_ieq_lit(n, "x-forwarded-proto") && h->x_forwarded_proto)
        return true;
    if (str_ieq_lit(n, "x-forwarded-host") && h->x_forwarded_host)
        return true;
    if (str_ieq_lit(n, "forwarded") && h->forwarded)
        return true;
    return connection_lists(req, n);
}

static void put_forwarding(struct out *o, const struct txn *t,
                           const struct h1_msg *req, struct str host)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    if (t->anon)
        return;
    char ip[64];
    size_t iplen = client_ip(t->c, ip, sizeof(ip));
    struct str sip = str_make(ip, iplen);
    if (h->x_forwarded_for == CFG_XFF_APPEND)
        put_merged(o, req, "X-Forwarded-For", sip);
    else if (h->x_forwarded_for == CFG_XFF_REPLACE)
        put_field(o, STR_LIT("X-Forwarded-For"), sip);
    if (h->x_forwarded_proto)
        put_field(o, STR_LIT("X-Forwarded-Proto"), STR_LIT("http"));
    if (h->x_forwarded_host && host.len > 0)
        put_field(o, STR_LIT("X-Forwarded-Host"), host);
    if (h->forwarded) {
        /* RFC 7239 §4: IPv6 addresses are quoted and bracketed */
        char fwd[512];
        bool v6 = t->c->peer.sa.sa_family == AF_INET6;
        int n = snprintf(fwd, sizeof(fwd), "for=%s%s%s;proto=http%s%.*s%s",
                         v6 ? "\"[" : "", ip, v6 ? "]\"" : "",
                         host.len ? ";host=\"" : "", (int)MIN(host.len, 256u),
                         host.p ? host.p : "", host.len ? "\"" : "");
        if (n > 0)
            put_merged(o, req, "Forwarded", str_make(fwd, MIN((size_t)n, sizeof(fwd) - 1)));
    }
}

int hdr_request(struct txn *t, const struct h1_msg *req)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    const struct cfg *cfg = t->c->w->cfg;
    struct out o = { .cap = req->head_len + 1024 + req->authority.len * 2 };
    o.p = pool_alloc(t->pool, o.cap);
    if (o.p == NULL)
        return -ENOMEM;

    putstr(&o, req->method);
    put(&o, " ", 1);
    if (req->form == H1_F_ABSOLUTE) {
        if (req->path.len > 0 && req->path.p[0] == '?') /* http://a?x */
            put(&o, "/", 1);
        putstr(&o, req->path);
    }
    else
        putstr(&o, req->target);
    put(&o, " HTTP/1.1\r\n", 11);

    struct str host = req->form == H1_F_ABSOLUTE ? req->authority : req->host;
    if (host.len == 0) /* an HTTP/1.0 request without Host */
        host = str_cstr(t->ups->cu->servers[0].addr.text);
    put_field(&o, STR_LIT("Host"), host);

    for (size_t i = 0; i < req->nfields; i++) {
        const struct h1_field *f = &req->fields[i];
        if (!skip_request_field(t, req, f->name))
            put_field(&o, f->name, f->value);
    }
    if (req->body == H1_B_CHUNKED)
        puts_(&o, "Transfer-Encoding: chunked\r\n");
    else if (req->body == H1_B_LENGTH)
        put_content_length(&o, req->content_length);
    if (t->upgrade) {
        put_field(&o, STR_LIT("Upgrade"), h1_find(req, STR_LIT("upgrade"))->value);
        puts_(&o, "Connection: upgrade\r\n");
    }
    put_forwarding(&o, t, req, host);
    if (h->via && !t->anon) {
        char via[80];
        int n = snprintf(via, sizeof(via), "1.1 %s", cfg->via_name);
        put_merged(&o, req, "Via", str_make(via, (size_t)MAX(n, 0)));
    }
    put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOMEM;
    t->uout = (struct outq){ o.p, o.len, 0 };
    return 0;
}

static bool skip_response_field(const struct txn *t, const struct h1_msg *resp,
                                struct str n)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    if (hop_by_hop(n))
        return true;
    if (n.len == 14 && str_ieq_lit(n, "content-length"))
        return true; /* re-emitted normalised, or dropped when TE wins */
    if (h->hide_server && (str_ieq_lit(n, "server") || str_ieq_lit(n, "x-powered-by")))
        return true;
    if (h->via && str_ieq_lit(n, "via"))
        return true;
    return connection_lists(resp, n);
}

int hdr_response(struct txn *t, const struct h1_msg *resp)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    const struct cfg *cfg = t->c->w->cfg;
    bool interim = resp->status < 200 && resp->status != 101;
    struct out o = { .cap = resp->head_len + 512 };
    o.p = pool_alloc(t->pool, o.cap);
    if (o.p == NULL)
        return -ENOMEM;
    char sl[16];
    int n = snprintf(sl, sizeof(sl), "HTTP/1.1 %03d ", resp->status);
    put(&o, sl, (size_t)n);
    putstr(&o, resp->reason);
    put(&o, "\r\n", 2);
    bool has_date = false;
    for (size_t i = 0; i < resp->nfields; i++) {
        const struct h1_field *f = &resp->fields[i];
        if (skip_response_field(t, resp, f->name))
            continue;
        if (f->name.len == 4 && str_ieq_lit(f->name, "date"))
            has_date = true;
        put_field(&o, f->name, f->value);
    }
    if (!interim) {
        if (resp->status == 101) {
            const struct h1_field *u = h1_find(resp, STR_LIT("upgrade"));
            if (u != NULL)
                put_field(&o, STR_LIT("Upgrade"), u->value);
            puts_(&o, "Connection: upgrade\r\n");
        } else if (t->resf.kind == H1_B_CHUNKED && !t->resf.decode) {
            puts_(&o, "Transfer-Encoding: chunked\r\n");
        } else if ((resp->flags & (H1_HAS_CL | H1_HAS_TE)) == H1_HAS_CL) {
            put_content_length(&o, resp->content_length);
        }
        if (!has_date) {
            puts_(&o, "Date: ");
            puts_(&o, worker_date(t->c->w));
            puts_(&o, "\r\n");
        }
        if (resp->status != 101) {
            if (!t->keepalive)
                puts_(&o, "Connection: close\r\n");
            else if (t->req.version < 11)
                puts_(&o, "Connection: keep-alive\r\n");
        }
    }
    if (h->via) {
        char via[80];
        int vn = snprintf(via, sizeof(via), "1.1 %s", cfg->via_name);
        put_merged(&o, resp, "Via", str_make(via, (size_t)MAX(vn, 0)));
    }
    put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOMEM;
    t->cout = (struct outq){ o.p, o.len, 0 };
    return 0;
}
