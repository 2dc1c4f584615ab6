/*
 * AJP/1.3 encoding and decoding (see ajp.h). The decoder is the part that
 * reads what a server sends us, so it is strict the way the HTTP/1 parser
 * is: every length is checked against what is there, a header name must be
 * a token and a value must not hold CR, LF or NUL (an AJP header becomes an
 * HTTP header line for the client, so anything else would be response
 * splitting), and two different Content-Lengths are refused.
 */
#include <errno.h>
#include <string.h>

#include "upstream/ajp.h"

const uint8_t ajp_cping[5] = { 0x12, 0x34, 0x00, 0x01, 0x0a };

/* ---- encoding ---- */

struct wr {
    uint8_t *p;
    size_t len, cap;
    bool bad;
};

static void w_u8(struct wr *w, uint8_t v)
{
    if (w->len + 1 > w->cap) {
        w->bad = true;
        return;
    }
    w->p[w->len++] = v;
}

static void w_u16(struct wr *w, unsigned v)
{
    w_u8(w, (uint8_t)(v >> 8));
    w_u8(w, (uint8_t)v);
}

static bool bad_string(struct str s)
{
    return s.len > 0xfffe || (s.len > 0 && memchr(s.p, '\0', s.len) != NULL);
}

static void w_str(struct wr *w, struct str s)
{
    if (w->len + s.len + 3 > w->cap) {
        w->bad = true;
        return;
    }
    w_u16(w, (unsigned)s.len);
    if (s.len > 0)
        memcpy(w->p + w->len, s.p, s.len);
    w->len += s.len;
    w_u8(w, 0);
}

static const char *const methods[] = {
    NULL,        "OPTIONS",   "GET",         "HEAD",        "POST",
    "PUT",       "DELETE",    "TRACE",       "PROPFIND",    "PROPPATCH",
    "MKCOL",     "COPY",      "MOVE",        "LOCK",        "UNLOCK",
    "ACL",       "REPORT",    "VERSION-CONTROL", "CHECKIN", "CHECKOUT",
    "UNCHECKOUT", "SEARCH",   "MKWORKSPACE", "UPDATE",      "LABEL",
    "MERGE",     "BASELINE-CONTROL", "MKACTIVITY",
};

uint8_t ajp_method_code(struct str m)
{
    for (size_t i = 1; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (str_eq(m, str_cstr(methods[i])))
            return (uint8_t)i;
    return 0;
}

static const char *const req_names[] = {
    "accept",        "accept-charset", "accept-encoding", "accept-language",
    "authorization", "connection",     "content-type",    "content-length",
    "cookie",        "cookie2",        "host",            "pragma",
    "referer",       "user-agent",
};

static unsigned req_code(struct str n)
{
    for (size_t i = 0; i < sizeof(req_names) / sizeof(req_names[0]); i++)
        if (str_ieq(n, str_cstr(req_names[i])))
            return 0xA001 + (unsigned)i;
    return 0;
}

int ajp_encode_request(const struct ajp_req *r, uint8_t *out, size_t cap)
{
    struct str all[] = { r->method, r->protocol, r->uri, r->query, r->remote_addr,
                         r->server_name, r->secret, r->remote_port, r->local_addr };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (bad_string(all[i]))
            return -EINVAL;
    if (cap < AJP_HEAD || r->nfields > 0xffff)
        return -E2BIG;
    struct wr w = { out, AJP_HEAD, cap > AJP_MAX_PACKET ? AJP_MAX_PACKET : cap, false };
    uint8_t mc = ajp_method_code(r->method);
    w_u8(&w, 2); /* JK_AJP13_FORWARD_REQUEST */
    w_u8(&w, mc ? mc : 0xff);
    w_str(&w, r->protocol);
    w_str(&w, r->uri);
    w_str(&w, r->remote_addr);
    w_str(&w, r->remote_addr); /* remote_host: no reverse lookups */
    w_str(&w, r->server_name);
    w_u16(&w, r->server_port);
    w_u8(&w, r->is_ssl ? 1 : 0);
    w_u16(&w, (unsigned)r->nfields);
    for (size_t i = 0; i < r->nfields; i++) {
        const struct h1_field *f = &r->fields[i];
        if (bad_string(f->name) || bad_string(f->value))
            return -EINVAL;
        unsigned code = req_code(f->name);
        if (code != 0)
            w_u16(&w, code);
        else
            w_str(&w, f->name);
        w_str(&w, f->value);
    }
    if (r->query.len > 0) {
        w_u8(&w, 0x05); /* query_string */
        w_str(&w, r->query);
    }
    if (r->remote_port.len > 0) {
        w_u8(&w, 0x0a); /* req_attribute */
        w_str(&w, STR_LIT("AJP_REMOTE_PORT"));
        w_str(&w, r->remote_port);
    }
    if (r->local_addr.len > 0) {
        w_u8(&w, 0x0a);
        w_str(&w, STR_LIT("AJP_LOCAL_ADDR"));
        w_str(&w, r->local_addr);
    }
    if (r->secret.len > 0) {
        w_u8(&w, 0x0c); /* secret */
        w_str(&w, r->secret);
    }
    if (mc == 0) {
        w_u8(&w, 0x0d); /* stored_method */
        w_str(&w, r->method);
    }
    w_u8(&w, 0xff); /* request_terminator */
    if (w.bad)
        return -E2BIG;
    size_t plen = w.len - AJP_HEAD;
    out[0] = 0x12;
    out[1] = 0x34;
    out[2] = (uint8_t)(plen >> 8);
    out[3] = (uint8_t)plen;
    return (int)w.len;
}

size_t ajp_body_head(uint8_t out[6], size_t n)
{
    out[0] = 0x12;
    out[1] = 0x34;
    if (n == 0) {
        out[2] = out[3] = 0;
        return 4;
    }
    out[2] = (uint8_t)((n + 2) >> 8);
    out[3] = (uint8_t)(n + 2);
    out[4] = (uint8_t)(n >> 8);
    out[5] = (uint8_t)n;
    return 6;
}

/* ---- decoding ---- */

int ajp_packet_len(const uint8_t *p, size_t len, size_t max_payload)
{
    if (len < AJP_HEAD)
        return -EAGAIN;
    if (p[0] != 'A' || p[1] != 'B')
        return -EBADMSG;
    size_t n = (size_t)p[2] << 8 | p[3];
    if (n == 0 || n > max_payload)
        return -EBADMSG;
    return (int)n;
}

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static unsigned r_u16(struct rd *r)
{
    if (r->off + 2 > r->len) {
        r->bad = true;
        return 0;
    }
    unsigned v = (unsigned)r->p[r->off] << 8 | r->p[r->off + 1];
    r->off += 2;
    return v;
}

/* A string at the current position; "null" (0xFFFF) reads as empty. */
static struct str r_str_len(struct rd *r, unsigned n)
{
    if (n == 0xffff)
        return STR_LIT("");
    if (r->off + n + 1 > r->len || r->p[r->off + n] != 0) {
        r->bad = true;
        return STR_NULL;
    }
    struct str s = str_make((const char *)r->p + r->off, n);
    r->off += n + 1;
    return s;
}

static struct str r_str(struct rd *r)
{
    unsigned n = r_u16(r);
    return r->bad ? STR_NULL : r_str_len(r, n);
}

static const char *const resp_names[] = {
    "Content-Type",  "Content-Language", "Content-Length", "Date",
    "Last-Modified", "Location",         "Set-Cookie",     "Set-Cookie2",
    "Servlet-Engine", "Status",          "WWW-Authenticate",
};

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool valid_name(struct str n)
{
    if (n.len == 0)
        return false;
    for (size_t i = 0; i < n.len; i++)
        if (!is_tchar((unsigned char)n.p[i]))
            return false;
    return true;
}

static bool valid_value(struct str v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '\r' || c == '\n' || c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool parse_u64(struct str s, uint64_t *out)
{
    s = str_trim(s);
    if (s.len == 0 || s.len > 18)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return true;
}

int ajp_parse_headers(const uint8_t *p, size_t len, struct h1_msg *m)
{
    struct rd r = { p, len, 0, false };
    if (len < 1 || p[0] != AJP_SEND_HEADERS)
        return -EBADMSG;
    r.off = 1;
    unsigned status = r_u16(&r);
    struct str reason = r_str(&r);
    unsigned n = r_u16(&r);
    if (r.bad || status < 100 || status > 999 || !valid_value(reason))
        return -EBADMSG;
    m->status = (int)status;
    m->reason = reason;
    m->version = 11;
    m->nfields = 0;
    m->flags = 0;
    m->body = H1_B_EOF;
    m->content_length = 0;
    for (unsigned i = 0; i < n; i++) {
        struct str name;
        if (r.off + 2 > r.len)
            return -EBADMSG;
        if (p[r.off] == 0xA0) {
            unsigned code = r_u16(&r);
            if (code < 0xA001 || code > 0xA00B)
                return -EBADMSG;
            name = str_cstr(resp_names[code - 0xA001]);
        } else {
            name = r_str(&r);
        }
        struct str value = r_str(&r);
        if (r.bad || !valid_name(name) || !valid_value(value))
            return -EBADMSG;
        if (m->nfields >= m->cap_)
            return -E2BIG;
        if (str_ieq_lit(name, "content-length")) {
            uint64_t cl;
            if (!parse_u64(value, &cl))
                return -EBADMSG;
            if ((m->flags & H1_HAS_CL) && cl != m->content_length)
                return -EBADMSG;
            m->flags |= H1_HAS_CL;
            m->content_length = cl;
            m->body = H1_B_LENGTH;
        }
        if (str_ieq_lit(name, "transfer-encoding"))
            continue; /* AJP frames the body itself: never pass it on */
        m->fields[m->nfields].name = name;
        m->fields[m->nfields].value = value;
        m->nfields++;
    }
    m->head_len = len;
    return 0;
}
