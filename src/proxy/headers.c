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
#include "http/negotiate.h"
#include "proxy/proxy_int.h"

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return; /* s may be NULL (an empty view) */
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

/* Decimal digits of <n> into the end of <buf> (20 bytes at least);
 * returns where they start. No printf on the per-request path. */
static char *u64_digits(char *end, uint64_t n)
{
    do {
        *--end = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    return end;
}

static void put_content_length(struct out *o, uint64_t n)
{
    char d[24];
    char *p = u64_digits(d + sizeof(d), n);
    puts_(o, "Content-Length: ");
    put(o, p, (size_t)(d + sizeof(d) - p));
    put(o, "\r\n", 2);
}

/* "1.1 <via_name>" into <buf> (80 bytes); returns the view. */
static struct str via_value(const struct cfg *cfg, char *buf)
{
    size_t n = MIN(strlen(cfg->via_name), 75u);
    memcpy(buf, "1.1 ", 4);
    memcpy(buf + 4, cfg->via_name, n);
    return str_make(buf, n + 4);
}

static size_t client_ip(const struct conn *c, char *out, size_t len)
{
    return sock_ntop(&c->peer.sa, out, len);
}

/* Fields the cache replaces with its own validators (t->req_drop). */
static bool cache_dropped(unsigned drop, struct str n)
{
    if ((drop & HDROP_COND) && (str_ieq_lit(n, "if-none-match") ||
                                str_ieq_lit(n, "if-modified-since")))
        return true;
    return (drop & HDROP_RANGE) &&
           (str_ieq_lit(n, "range") || str_ieq_lit(n, "if-range"));
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
    if (t->req_drop != 0 && cache_dropped(t->req_drop, n))
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
    bool https = t->c->tls != NULL;
    if (h->x_forwarded_proto)
        put_field(o, STR_LIT("X-Forwarded-Proto"),
                  https ? STR_LIT("https") : STR_LIT("http"));
    if (h->x_forwarded_host && host.len > 0)
        put_field(o, STR_LIT("X-Forwarded-Host"), host);
    if (h->forwarded) {
        /* RFC 7239 §4: IPv6 addresses are quoted and bracketed */
        char fwd[512];
        bool v6 = t->c->peer.sa.sa_family == AF_INET6;
        int n = snprintf(fwd, sizeof(fwd), "for=%s%s%s;proto=%s%s%.*s%s",
                         v6 ? "\"[" : "", ip, v6 ? "]\"" : "", https ? "https" : "http",
                         host.len ? ";host=\"" : "", (int)MIN(host.len, 256u),
                         host.p ? host.p : "", host.len ? "\"" : "");
        if (n > 0)
            put_merged(o, req, "Forwarded", str_make(fwd, MIN((size_t)n, sizeof(fwd) - 1)));
    }
}

int hdr_request(struct txn *t, const struct h1_msg *req)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    const struct cfg *cfg = t->c->gen->cfg;
    struct out o = { .cap = req->head_len + 1024 + req->authority.len * 2 +
                            t->req_extra.len };
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
        put_merged(&o, req, "Via", via_value(cfg, via));
    }
    putstr(&o, t->req_extra);
    put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOMEM;
    t->uout = (struct outq){ o.p, o.len, 0 };
    return 0;
}

int hdr_request_fields(struct txn *t, const struct h1_msg *req, struct h1_msg *m)
{
    int rc = hdr_request(t, req);
    if (rc < 0)
        return rc;
    size_t max = t->c->cl->limits.header_count + 16;
    struct h1_field *f = pool_alloc(t->pool, max * sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    h1_msg_init(m, f, max);
    struct h1_limits lim = { .max_head = t->uout.head_len + 1, .max_fields = max,
                             .max_target = t->uout.head_len + 1 };
    if (h1_parse_request(t->uout.head, t->uout.head_len, m, &lim) <= 0)
        return -E2BIG;
    return 0;
}

/* The HSTS field the site adds, when the client came over TLS. */
static const char *hsts_of(const struct txn *t)
{
    return t->c->tls != NULL && t->site != NULL ? t->site->hsts : NULL;
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
    if (n.len == 25 && hsts_of(t) != NULL &&
        str_ieq_lit(n, "strict-transport-security"))
        return true; /* ours replaces the server's */
    if (t->zenc != 0 && n.len == 4 && str_ieq_lit(n, "etag"))
        return true; /* re-emitted weak: the bytes changed */
    if (t->zvary && n.len == 4 && str_ieq_lit(n, "vary"))
        return true; /* re-emitted with Accept-Encoding */
    return connection_lists(resp, n);
}

/* Content-Encoding, Vary and the weakened ETag of a response we compress
 * (or could have compressed: then only Vary). */
static void put_coding_fields(struct out *o, const struct txn *t,
                              const struct h1_msg *resp)
{
    if (t->zenc != 0) {
        puts_(o, "Content-Encoding: ");
        puts_(o, http_enc_name(t->zenc));
        put(o, "\r\n", 2);
        const struct h1_field *e = h1_find(resp, STR_LIT("etag"));
        if (e != NULL && e->value.len > 0) {
            /* RFC 9110 §8.8.3: a transformed representation is not the
             * same bytes; W/ keeps revalidation working */
            bool weak = e->value.len > 2 && e->value.p[0] == 'W' && e->value.p[1] == '/';
            puts_(o, weak ? "ETag: " : "ETag: W/");
            putstr(o, e->value);
            put(o, "\r\n", 2);
        }
    }
    if (t->zvary) {
        bool listed = false, star = false;
        for (size_t i = 0; i < resp->nfields; i++) {
            const struct h1_field *f = &resp->fields[i];
            if (f->name.len == 4 && str_ieq_lit(f->name, "vary")) {
                listed |= h1_list_has(f->value, STR_LIT("accept-encoding"));
                star |= h1_list_has(f->value, STR_LIT("*"));
            }
        }
        if (listed || star) {
            for (size_t i = 0; i < resp->nfields; i++)
                if (resp->fields[i].name.len == 4 &&
                    str_ieq_lit(resp->fields[i].name, "vary"))
                    put_field(o, resp->fields[i].name, resp->fields[i].value);
        } else
            put_merged(o, resp, "Vary", STR_LIT("Accept-Encoding"));
    }
}

int hdr_response(struct txn *t, const struct h1_msg *resp)
{
    const struct cfg_headers *h = &t->c->cl->headers;
    const struct cfg *cfg = t->c->gen->cfg;
    bool interim = resp->status < 200 && resp->status != 101;
    struct out o = { .cap = resp->head_len + 512 + t->resp_extra.len +
                            (t->set_cookie != NULL ? strlen(t->set_cookie) : 0) };
    o.p = pool_alloc(t->pool, o.cap);
    if (o.p == NULL)
        return -ENOMEM;
    char sl[16] = "HTTP/1.1 000 ";
    int st = resp->status % 1000;
    sl[9] = (char)('0' + st / 100);
    sl[10] = (char)('0' + st / 10 % 10);
    sl[11] = (char)('0' + st % 10);
    put(&o, sl, 13);
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
        } else if (t->bo != NULL) {
            if (t->bo->chunked)
                puts_(&o, "Transfer-Encoding: chunked\r\n");
        } else if (t->resf.kind == H1_B_CHUNKED && !t->resf.decode) {
            puts_(&o, "Transfer-Encoding: chunked\r\n");
        } else if ((resp->flags & (H1_HAS_CL | H1_HAS_TE)) == H1_HAS_CL) {
            put_content_length(&o, resp->content_length);
        }
        if (t->zenc != 0 || t->zvary)
            put_coding_fields(&o, t, resp);
        if (!has_date) {
            puts_(&o, "Date: ");
            puts_(&o, worker_date(t->c->w));
            puts_(&o, "\r\n");
        }
        if (hsts_of(t) != NULL)
            puts_(&o, hsts_of(t));
        if (t->set_cookie != NULL && resp->status != 101)
            puts_(&o, t->set_cookie); /* sticky sessions (pick.c) */
        if (resp->status != 101) {
            if (!t->keepalive)
                puts_(&o, "Connection: close\r\n");
            else if (t->req.version < 11)
                puts_(&o, "Connection: keep-alive\r\n");
        }
    }
    if (h->via) {
        char via[80];
        put_merged(&o, resp, "Via", via_value(cfg, via));
    }
    if (!interim)
        putstr(&o, t->resp_extra);
    put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOMEM;
    t->cout = (struct outq){ o.p, o.len, 0 };
    return 0;
}
