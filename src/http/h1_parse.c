/*
 * Strict HTTP/1.1 head parser (RFC 9112, RFC 9110 §5).
 *
 * The caller keeps appending received bytes to one buffer and calls again
 * with the whole buffer, which may have moved. Two problems follow: the work
 * must stay linear however the bytes are split, and the answer must not depend
 * on the split either (a prefix must never be judged differently from the
 * whole), or a peer could choose its verdict by choosing its segment sizes.
 *
 * So parsing is done in two passes.
 *
 * Pass 1 (scan_head) is resumable: it looks for the end of the head, keeping
 * in the message how far it got (scan_), in which phase (phase_) and, while
 * in the request-target, where the target starts (mark_). On the way it
 * rejects what can be judged early, strictly in byte order: a bare LF, a
 * request-target longer than max_target (414) and a head longer than
 * max_head (431). Each of these is decided by a fixed prefix of the input, so
 * every longer input gets the same verdict.
 *
 * Pass 2 (parse_*_head) runs once, on the complete head, and fills the views:
 * they always point into the buffer of the last call, never into an old one.
 * Every other rule is checked there, and pass 1 guarantees it that every LF
 * in the head follows a CR and that the head ends with the first empty line,
 * so lines can be walked without length checks: every loop stops at the CR
 * that ends its line at the latest.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/macros.h"
#include "http/h1.h"
#include "http/h1_int.h"

enum phase {
    PH_LEAD = 0, /* skipping empty lines before a request line */
    PH_METHOD,   /* in the request method */
    PH_TARGET,   /* in the request-target, which starts at mark_ */
    PH_LINE,     /* in the rest of the start line */
    PH_FIELDS,   /* in the field lines, looking for the empty line */
    PH_DONE,     /* head complete, mark_ bytes long */
    PH_ERROR,    /* err_status and err_reason are set */
};

/* What the Transfer-Encoding fields said, gathered over all of them. */
struct framing {
    unsigned chunked;  /* "chunked" codings seen */
    bool last_chunked; /* the last coding seen is chunked */
    bool other;        /* a coding other than chunked was seen */
};

enum fname {
    FN_OTHER = 0,
    FN_HOST,
    FN_CL,
    FN_TE,
    FN_CONNECTION,
    FN_UPGRADE,
    FN_EXPECT,
};

#define IS_OWS(c) ((c) == ' ' || (c) == '\t')

static int fail(struct h1_msg *m, int status, const char *reason)
{
    m->err_status = status;
    m->err_reason = reason;
    m->phase_ = PH_ERROR;
    return -EBADMSG;
}

void h1_msg_init(struct h1_msg *m, struct h1_field *fields, size_t max_fields)
{
    *m = (struct h1_msg){
        .fields = fields,
        .cap_ = fields != NULL ? max_fields : 0,
    };
}

/* ---- pass 1: where does the head end? ---- */

/* Returns the head length, -EAGAIN or -EBADMSG. See the top of the file. */
static int scan_head(const char *buf, size_t len, struct h1_msg *m,
                     const struct h1_limits *lim, bool req)
{
    size_t max_head = MIN(lim->max_head, (size_t)INT_MAX);
    size_t limit = MIN(len, max_head);
    size_t i = m->scan_;
    const char *lf;

    if (m->phase_ == PH_DONE)
        return (int)m->mark_;
    if (m->phase_ == PH_ERROR)
        return -EBADMSG;
    if (i > limit) { /* the caller shrank the buffer: start over */
        m->phase_ = PH_LEAD;
        i = 0;
    }
    if (!req && m->phase_ == PH_LEAD)
        m->phase_ = PH_LINE;

    switch ((enum phase)m->phase_) {
    case PH_LEAD:
        for (;;) {
            if (i >= limit)
                goto More;
            if (buf[i] == '\n')
                return fail(m, 400, "bare_lf");
            if (buf[i] != '\r')
                break;
            if (i + 1 >= limit)
                goto More; /* the CR is looked at again next time */
            if (buf[i + 1] != '\n')
                break; /* a line starting with a bare CR: pass 2 says so */
            i += 2;
        }
        m->phase_ = PH_METHOD;
        /* fall through */
    case PH_METHOD:
        for (; i < limit; i++) {
            if (buf[i] == ' ')
                break;
            if (buf[i] == '\n') /* a line without a target: pass 2 */
                goto Line;
        }
        if (i == limit)
            goto More;
        m->mark_ = ++i;
        m->phase_ = PH_TARGET;
        /* fall through */
    case PH_TARGET: {
        /* The target is judged too long as soon as max_target + 1 of its
           bytes are here, whatever follows. */
        size_t end = limit;
        if (limit - m->mark_ > lim->max_target)
            end = m->mark_ + lim->max_target + 1;
        for (; i < end; i++)
            if (buf[i] == ' ' || buf[i] == '\r' || buf[i] == '\n')
                break;
        if (i - m->mark_ > lim->max_target)
            return fail(m, 414, "target_too_long");
        if (i == limit)
            goto More;
        goto Line;
    }
    case PH_LINE:
    Line:
        m->phase_ = PH_LINE;
        lf = memchr(buf + i, '\n', limit - i);
        if (lf == NULL) {
            i = limit;
            goto More;
        }
        i = (size_t)(lf - buf);
        if (i == 0 || buf[i - 1] != '\r')
            return fail(m, 400, "bare_lf");
        i++;
        m->phase_ = PH_FIELDS;
        /* fall through */
    case PH_FIELDS:
        for (;;) {
            lf = memchr(buf + i, '\n', limit - i);
            if (lf == NULL) {
                i = limit;
                goto More;
            }
            i = (size_t)(lf - buf);
            /* i >= 2 here: the start line's LF is before, and not at i - 1 */
            if (buf[i - 1] != '\r')
                return fail(m, 400, "bare_lf");
            i++;
            if (buf[i - 3] == '\n') { /* the CR starts a line: empty line */
                m->phase_ = PH_DONE;
                m->mark_ = i;
                m->scan_ = i;
                return (int)i;
            }
        }
    case PH_DONE:
    case PH_ERROR:
        break;
    }
More:
    m->scan_ = i;
    if (len > max_head)
        return fail(m, 431, "head_too_large");
    return -EAGAIN;
}

/* ---- pass 2 helpers ---- */

/* Why a token stopped at buf[i]: a CR not followed by LF is a bare CR,
   anything else is <what>. */
static const char *stop_reason(const char *buf, size_t i, const char *what)
{
    return (buf[i] == '\r' && buf[i + 1] != '\n') ? "bare_cr" : what;
}

static bool name_is(const char *p, const char *lower, size_t n)
{
    /* p holds token bytes only: | 0x20 folds letters and keeps '-' */
    for (size_t k = 0; k < n; k++)
        if ((char)(p[k] | 0x20) != lower[k])
            return false;
    return true;
}

static enum fname classify(const char *p, size_t n)
{
    switch (n) {
    case 4:
        return name_is(p, "host", 4) ? FN_HOST : FN_OTHER;
    case 6:
        return name_is(p, "expect", 6) ? FN_EXPECT : FN_OTHER;
    case 7:
        return name_is(p, "upgrade", 7) ? FN_UPGRADE : FN_OTHER;
    case 10:
        return name_is(p, "connection", 10) ? FN_CONNECTION : FN_OTHER;
    case 14:
        return name_is(p, "content-length", 14) ? FN_CL : FN_OTHER;
    case 17:
        return name_is(p, "transfer-encoding", 17) ? FN_TE : FN_OTHER;
    default:
        return FN_OTHER;
    }
}

static enum h1_method method_of(const char *p, size_t n)
{
#define M(lit, e)                                                              \
    if (memcmp(p, lit, sizeof(lit) - 1) == 0)                                  \
        return e;
    switch (n) {
    case 3:
        M("GET", H1_M_GET)
        M("PUT", H1_M_PUT)
        break;
    case 4:
        M("HEAD", H1_M_HEAD)
        M("POST", H1_M_POST)
        break;
    case 5:
        M("PATCH", H1_M_PATCH)
        M("TRACE", H1_M_TRACE)
        M("PURGE", H1_M_PURGE)
        break;
    case 6:
        M("DELETE", H1_M_DELETE)
        break;
    case 7:
        M("CONNECT", H1_M_CONNECT)
        M("OPTIONS", H1_M_OPTIONS)
        break;
    }
#undef M
    return H1_M_OTHER;
}

/* Next element of the comma list in [*pp, e), OWS trimmed, skipping empty
   elements. Returns false at the end of the list. */
static bool list_next(const char **pp, const char *e, struct str *out)
{
    const char *p = *pp;
    while (p < e && (IS_OWS(*p) || *p == ','))
        p++;
    if (p == e)
        return false;
    const char *c = memchr(p, ',', (size_t)(e - p));
    const char *end = c != NULL ? c : e;
    *pp = c != NULL ? c + 1 : e;
    while (IS_OWS(end[-1])) /* stops at *p, which is not OWS */
        end--;
    *out = str_make(p, (size_t)(end - p));
    return true;
}

/* host [":" port] (RFC 3986 §3.2.2-3): an IP-literal in brackets or a
   reg-name, then an optional port of at most 5 digits up to 65535. With
   <need_port>, the port must be there (CONNECT). */
static bool authority_ok(struct str a, bool need_port)
{
    const char *p = a.p, *e = a.p + a.len, *s;

    if (p == e)
        return false;
    if (*p == '[') {
        s = ++p;
        while (p < e && (H1__IS(*p, H1__HEX) || *p == ':' || *p == '.'))
            p++;
        if (p == e || *p != ']' || p == s)
            return false;
        p++;
    } else {
        s = p;
        while (p < e && H1__IS(*p, H1__HOST)) {
            if (*p == '%' && (e - p < 3 || !H1__IS(p[1], H1__HEX) ||
                              !H1__IS(p[2], H1__HEX)))
                return false;
            p++;
        }
        if (p == s)
            return false;
    }
    if (p == e)
        return !need_port;
    if (*p++ != ':')
        return false;
    if (p == e)
        return !need_port;
    if (e - p > 5)
        return false;
    unsigned port = 0;
    for (; p < e; p++) {
        if (!H1__IS(*p, H1__DIGIT))
            return false;
        port = port * 10 + (unsigned)(*p - '0');
    }
    return port <= 65535;
}

/* The request-target forms (RFC 9112 §3.2). */
static int parse_target(struct h1_msg *m)
{
    const char *p = m->target.p, *e = p + m->target.len, *s;

    /* A fragment is never part of a request-target (RFC 9112 §3.2). */
    if (memchr(p, '#', m->target.len) != NULL)
        return fail(m, 400, "bad_target");
    if (m->meth == H1_M_CONNECT) {
        if (!authority_ok(m->target, true))
            return fail(m, 400, "bad_connect_target");
        m->form = H1_F_AUTHORITY;
        m->authority = m->target;
        return 0;
    }
    if (*p == '/') {
        m->form = H1_F_ORIGIN;
        m->path = m->target;
        return 0;
    }
    if (*p == '*' && m->target.len == 1) {
        if (m->meth != H1_M_OPTIONS)
            return fail(m, 400, "bad_target");
        m->form = H1_F_ASTERISK;
        return 0;
    }
    /* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
    s = p;
    if (!H1__IS(*p, H1__SCHEME) || H1__IS(*p, H1__DIGIT) || *p == '+' ||
        *p == '-' || *p == '.')
        return fail(m, 400, "bad_target");
    while (p < e && H1__IS(*p, H1__SCHEME))
        p++;
    if (e - p < 3 || memcmp(p, "://", 3) != 0)
        return fail(m, 400, "bad_target");
    m->scheme = str_make(s, (size_t)(p - s));
    s = p += 3;
    while (p < e && *p != '/' && *p != '?')
        p++;
    m->authority = str_make(s, (size_t)(p - s));
    if (!authority_ok(m->authority, false))
        return fail(m, 400, "bad_target");
    m->path = p < e ? str_make(p, (size_t)(e - p)) : STR_LIT("/");
    m->form = H1_F_ABSOLUTE;
    return 0;
}

/* "HTTP/1.1" and "HTTP/1.0" are ours; any other HTTP/d.d is 505. */
static int parse_version(const char *p, size_t n, struct h1_msg *m)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !H1__IS(p[5], H1__DIGIT) ||
        p[6] != '.' || !H1__IS(p[7], H1__DIGIT))
        return fail(m, 400, "bad_version");
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return fail(m, 505, "bad_version");
    m->version = p[7] == '1' ? 11 : 10;
    return 0;
}

/* method SP request-target SP HTTP-version CRLF, from buf[*ip]. */
static int parse_request_line(const char *buf, size_t *ip, struct h1_msg *m)
{
    size_t i = *ip, s = i;

    while (H1__IS(buf[i], H1__TOKEN))
        i++;
    if (i == s || buf[i] != ' ')
        return fail(m, 400, stop_reason(buf, i, "bad_method"));
    m->method = str_make(buf + s, i - s);
    m->meth = method_of(buf + s, i - s);
    s = ++i;
    while (H1__IS(buf[i], H1__VIS))
        i++;
    if (i == s || buf[i] != ' ')
        return fail(m, 400, stop_reason(buf, i, "bad_target"));
    m->target = str_make(buf + s, i - s);
    s = ++i;
    while (buf[i] != '\r')
        i++;
    if (buf[i + 1] != '\n')
        return fail(m, 400, "bare_cr");
    if (parse_version(buf + s, i - s, m) < 0 || parse_target(m) < 0)
        return -EBADMSG;
    *ip = i + 2;
    return 0;
}

/* HTTP-version SP 3DIGIT SP reason-phrase CRLF; the SP before an empty
   reason may be missing. */
static int parse_status_line(const char *buf, size_t hlen, size_t *ip,
                             struct h1_msg *m)
{
    const char *cr = memchr(buf, '\r', hlen); /* found: the head ends with CRLF */
    size_t e = (size_t)(cr - buf), sp, i;

    if (buf[e + 1] != '\n')
        return fail(m, 400, "bare_cr");
    for (sp = 0; sp < e && buf[sp] != ' '; sp++)
        ;
    if (parse_version(buf, sp, m) < 0)
        return -EBADMSG;
    if (e - sp < 4 || !H1__IS(buf[sp + 1], H1__DIGIT) ||
        !H1__IS(buf[sp + 2], H1__DIGIT) || !H1__IS(buf[sp + 3], H1__DIGIT))
        return fail(m, 400, "bad_status");
    m->status = (buf[sp + 1] - '0') * 100 + (buf[sp + 2] - '0') * 10 +
                (buf[sp + 3] - '0');
    if (m->status < 100)
        return fail(m, 400, "bad_status");
    i = sp + 4;
    if (i < e && buf[i++] != ' ')
        return fail(m, 400, "bad_status");
    m->reason = str_make(buf + i, e - i);
    for (; i < e; i++)
        if (!H1__IS(buf[i], H1__VALUE))
            return fail(m, 400, "bad_reason");
    *ip = e + 2;
    return 0;
}

/* Content-Length = 1*DIGIT, or a list of identical values ("5, 5"). All
   the values of all the fields must agree. */
static int parse_cl(struct h1_msg *m, struct str v)
{
    const char *p = v.p, *e = v.p + v.len;

    for (;;) {
        uint64_t n = 0;
        if (p == e || !H1__IS(*p, H1__DIGIT))
            return fail(m, 400, "bad_cl");
        do {
            unsigned d = (unsigned)(*p++ - '0');
            if (n > ((uint64_t)INT64_MAX - d) / 10)
                return fail(m, 400, "bad_cl");
            n = n * 10 + d;
        } while (p < e && H1__IS(*p, H1__DIGIT));
        if ((m->flags & H1_HAS_CL) && n != m->content_length)
            return fail(m, 400, "cl_mismatch");
        m->flags |= H1_HAS_CL;
        m->content_length = n;
        while (p < e && IS_OWS(*p))
            p++;
        if (p == e)
            return 0;
        if (*p++ != ',')
            return fail(m, 400, "bad_cl");
        while (p < e && IS_OWS(*p))
            p++;
    }
}

/* Skips transfer-parameters: *( OWS ";" OWS token BWS "=" BWS ( token /
   quoted-string ) ) from p, which is at a ';'. Returns the end or NULL. */
static const char *skip_params(const char *p, const char *e)
{
    while (p < e && *p == ';') {
        const char *s;
        for (p++; p < e && IS_OWS(*p); p++)
            ;
        for (s = p; p < e && H1__IS(*p, H1__TOKEN); p++)
            ;
        if (p == s)
            return NULL;
        for (; p < e && IS_OWS(*p); p++)
            ;
        if (p == e || *p++ != '=')
            return NULL;
        for (; p < e && IS_OWS(*p); p++)
            ;
        if (p < e && *p == '"') {
            for (p++;; p++) {
                if (p == e)
                    return NULL;
                if (*p == '"')
                    break;
                if (*p == '\\') { /* quoted-pair */
                    if (++p == e || !H1__IS(*p, H1__VALUE))
                        return NULL;
                } else if (!H1__IS(*p, H1__QDTEXT)) {
                    return NULL;
                }
            }
            p++;
        } else {
            for (s = p; p < e && H1__IS(*p, H1__TOKEN); p++)
                ;
            if (p == s)
                return NULL;
        }
        for (; p < e && IS_OWS(*p); p++)
            ;
    }
    return p;
}

/* Transfer-Encoding = #transfer-coding, gathered over every TE field. */
static int parse_te(struct h1_msg *m, struct str v, struct framing *fr)
{
    const char *p = v.p, *e = v.p + v.len, *s;

    m->flags |= H1_HAS_TE;
    for (;;) {
        while (p < e && (IS_OWS(*p) || *p == ','))
            p++;
        if (p == e)
            return 0;
        for (s = p; p < e && H1__IS(*p, H1__TOKEN); p++)
            ;
        if (p == s)
            return fail(m, 400, "bad_te");
        bool chunked = p - s == 7 && name_is(s, "chunked", 7);
        while (p < e && IS_OWS(*p))
            p++;
        if (p < e && *p == ';') {
            if (chunked) /* chunked takes no parameter */
                return fail(m, 400, "bad_te");
            p = skip_params(p, e);
            if (p == NULL)
                return fail(m, 400, "bad_te");
        }
        if (p < e && *p != ',')
            return fail(m, 400, "bad_te");
        if (chunked && fr->chunked++ > 0)
            return fail(m, 400, "te_chunked_twice");
        fr->other |= !chunked;
        fr->last_chunked = chunked;
    }
}

static void parse_connection(struct h1_msg *m, struct str v)
{
    const char *p = v.p, *e = v.p + v.len;
    struct str t;

    while (list_next(&p, e, &t)) {
        if (str_ieq_lit(t, "close"))
            m->flags |= H1_CONN_CLOSE;
        else if (str_ieq_lit(t, "keep-alive"))
            m->flags |= H1_CONN_KEEPALIVE;
        else if (str_ieq_lit(t, "upgrade"))
            m->flags |= H1_CONN_UPGRADE;
    }
}

static void parse_expect(struct h1_msg *m, struct str v)
{
    const char *p = v.p, *e = v.p + v.len;
    struct str t;

    while (list_next(&p, e, &t))
        m->flags |= str_ieq_lit(t, "100-continue") ? H1_EXPECT_CONTINUE
                                                   : H1_EXPECT_OTHER;
}

/* The fields that drive framing and routing. */
static int field_meaning(struct h1_msg *m, enum fname fn, struct str v,
                         struct framing *fr, bool req)
{
    switch (fn) {
    case FN_HOST:
        if (!req)
            return 0;
        if (m->flags & H1_HAS_HOST)
            return fail(m, 400, "dup_host");
        if (v.len > 0 && !authority_ok(v, false))
            return fail(m, 400, "bad_host");
        m->flags |= H1_HAS_HOST;
        m->host = v;
        return 0;
    case FN_CL:
        return parse_cl(m, v);
    case FN_TE:
        return parse_te(m, v, fr);
    case FN_CONNECTION:
        parse_connection(m, v);
        return 0;
    case FN_UPGRADE:
        m->flags |= H1_HAS_UPGRADE;
        return 0;
    case FN_EXPECT:
        parse_expect(m, v);
        return 0;
    case FN_OTHER:
        break;
    }
    return 0;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* True when none of the 8 bytes in <x> is a CTL (below 0x20, or 0x7f): the
   common case of 8 plain value bytes, told with a few word operations (SWAR,
   "Bit Twiddling Hacks" hasless and haszero). Exact on whether there is such
   a byte, not on where; HTAB takes the byte loop. */
static inline bool word_plain(uint64_t x)
{
    uint64_t del = x ^ (ONES * 0x7f);
    return (((x - ONES * 0x20) & ~x) | ((del - ONES) & ~del)) & HIGHS ? false
                                                                      : true;
}

/* Field lines from buf[i] up to the final CRLF at buf[end]. */
static int parse_fields(const char *buf, size_t i, size_t end,
                        struct h1_msg *m, const struct h1_limits *lim,
                        struct framing *fr, bool req)
{
    size_t max = MIN(m->cap_, lim->max_fields);

    while (i < end) {
        size_t s = i, vs, ve;
        if (IS_OWS(buf[i]))
            return fail(m, 400, "obs_fold");
        while (H1__IS(buf[i], H1__TOKEN))
            i++;
        if (buf[i] != ':') {
            if (IS_OWS(buf[i]))
                return fail(m, 400, "ws_before_colon");
            return fail(m, 400, stop_reason(buf, i, "bad_field_name"));
        }
        if (i == s)
            return fail(m, 400, "bad_field_name");
        struct str name = str_make(buf + s, i - s);
        for (i++; IS_OWS(buf[i]); i++)
            ;
        vs = i;
        /* the hot loop: value bytes, 8 at a time, then one by one up to the
           byte that stops the value (at the latest the CR of this line) */
        while (i + 8 <= end) {
            uint64_t x;
            memcpy(&x, buf + i, 8);
            if (!word_plain(x))
                break;
            i += 8;
        }
        for (;;) {
            if (UNLIKELY(!H1__IS(buf[i], H1__VALUE)))
                break;
            if (UNLIKELY(!H1__IS(buf[i + 1], H1__VALUE))) {
                i += 1;
                break;
            }
            if (UNLIKELY(!H1__IS(buf[i + 2], H1__VALUE))) {
                i += 2;
                break;
            }
            if (UNLIKELY(!H1__IS(buf[i + 3], H1__VALUE))) {
                i += 3;
                break;
            }
            i += 4;
        }
        if (buf[i] != '\r' || buf[i + 1] != '\n')
            return fail(m, 400, stop_reason(buf, i, "bad_field_value"));
        for (ve = i; ve > vs && IS_OWS(buf[ve - 1]); ve--)
            ;
        i += 2;
        if (m->nfields >= max)
            return fail(m, 431, "too_many_fields");
        struct h1_field *f = &m->fields[m->nfields++];
        f->name = name;
        f->value = str_make(buf + vs, ve - vs);
        enum fname fn = classify(name.p, name.len);
        if (fn != FN_OTHER && field_meaning(m, fn, f->value, fr, req) < 0)
            return -EBADMSG;
    }
    return 0;
}

/* Clears the results of an earlier pass 2 (a call after completion). */
static void reset_results(struct h1_msg *m)
{
    *m = (struct h1_msg){
        .fields = m->fields,
        .scan_ = m->scan_,
        .mark_ = m->mark_,
        .cap_ = m->cap_,
        .phase_ = m->phase_,
    };
}

/* ---- requests ---- */

/* RFC 9112 §6.1 and §6.3 for a request. */
static int request_framing(struct h1_msg *m, const struct framing *fr)
{
    if (m->flags & H1_HAS_TE) {
        if (m->version == 10)
            return fail(m, 400, "te_http10");
        if (m->flags & H1_HAS_CL)
            return fail(m, 400, "te_and_cl");
        if (!fr->last_chunked)
            return fail(m, 400, "te_not_chunked");
        if (fr->other) /* e.g. "gzip, chunked": we only decode chunked */
            return fail(m, 501, "te_unsupported");
        m->body = H1_B_CHUNKED;
    } else if (m->flags & H1_HAS_CL) {
        m->body = H1_B_LENGTH;
    } else {
        m->body = H1_B_NONE;
    }
    return 0;
}

int h1_parse_request(const char *buf, size_t len, struct h1_msg *m,
                     const struct h1_limits *lim)
{
    struct framing fr = { 0 };
    int r = scan_head(buf, len, m, lim, true);
    size_t i = 0, hlen;

    if (r <= 0)
        return r;
    hlen = (size_t)r;
    reset_results(m);
    while (buf[i] == '\r' && buf[i + 1] == '\n') /* as pass 1 did */
        i += 2;
    if (parse_request_line(buf, &i, m) < 0 ||
        parse_fields(buf, i, hlen - 2, m, lim, &fr, true) < 0 ||
        request_framing(m, &fr) < 0)
        return -EBADMSG;
    if (m->version == 11 && !(m->flags & H1_HAS_HOST))
        return fail(m, 400, "no_host");
    m->head_len = hlen;
    return r;
}

/* ---- responses ---- */

int h1_parse_response(const char *buf, size_t len, struct h1_msg *m,
                      const struct h1_limits *lim)
{
    struct framing fr = { 0 };
    int r = scan_head(buf, len, m, lim, false);
    size_t i = 0, hlen;

    if (r <= 0)
        return r;
    hlen = (size_t)r;
    reset_results(m);
    if (parse_status_line(buf, hlen, &i, m) < 0 ||
        parse_fields(buf, i, hlen - 2, m, lim, &fr, false) < 0)
        return -EBADMSG;
    if (m->flags & H1_HAS_TE) {
        /* RFC 9112 §6.1: TE in HTTP/1.0 is faulty framing. With both TE and
           CL, TE wins (§6.3 item 3); a final coding other than chunked
           means the body runs until the close (item 4). */
        if (m->version == 10)
            return fail(m, 400, "te_http10");
        m->body = fr.last_chunked ? H1_B_CHUNKED : H1_B_EOF;
    } else if (m->flags & H1_HAS_CL) {
        m->body = H1_B_LENGTH;
    } else {
        m->body = H1_B_EOF;
    }
    m->head_len = hlen;
    return r;
}

enum h1_body h1_response_body(const struct h1_msg *resp,
                              enum h1_method req_meth)
{
    if (req_meth == H1_M_HEAD || resp->status < 200 || resp->status == 204 ||
        resp->status == 304)
        return H1_B_NONE;
    if (req_meth == H1_M_CONNECT && resp->status < 300)
        return H1_B_NONE;
    return resp->body;
}

/* ---- lookups ---- */

const struct h1_field *h1_find(const struct h1_msg *m, struct str name)
{
    for (size_t k = 0; k < m->nfields; k++)
        if (str_ieq(m->fields[k].name, name))
            return &m->fields[k];
    return NULL;
}

bool h1_list_has(struct str list, struct str token)
{
    struct str t;

    if (list.len == 0) /* also STR_NULL: no arithmetic on NULL */
        return false;
    const char *p = list.p, *e = list.p + list.len;
    while (list_next(&p, e, &t))
        if (str_ieq(t, token))
            return true;
    return false;
}

bool h1_keepalive(const struct h1_msg *m)
{
    if (m->flags & H1_CONN_CLOSE)
        return false;
    if (m->version >= 11)
        return true;
    return (m->flags & H1_CONN_KEEPALIVE) != 0;
}
