/*
 * Stored heads: from a response to what the cache keeps (RFC 9111 §3.1),
 * and the update of a stored head by a 304 (§3.2, §4.3.4).
 *
 * What is not stored: the hop-by-hop fields and those the Connection field
 * names (RFC 9110 §7.6.1), Proxy-Authenticate and
 * Proxy-Authentication-Info (§3.1: specific to the proxy), the fields a
 * private="..." directive lists (this is a shared cache), Content-Length
 * and Transfer-Encoding (we frame the body ourselves) and Age (we compute
 * it). Server, X-Powered-By and Via are kept aside, so each listener's
 * hide_server and via settings apply when the response is served. A
 * response without Date gets one, the time it was received (RFC 9110
 * §6.6.1).
 */
#include <errno.h>
#include <string.h>

#include "core/macros.h"
#include "proxy/cache_head.h"

static bool name_in_list(struct str list, struct str name)
{
    size_t i = 0;
    while (i < list.len) {
        size_t k = i;
        while (k < list.len && list.p[k] != ',')
            k++;
        struct str el = str_trim(str_make(list.p + i, k - i));
        if (str_ieq(el, name))
            return true;
        i = k + 1;
    }
    return false;
}

static bool conn_listed(const struct h1_msg *m, struct str name)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (str_ieq_lit(f->name, "connection") && name_in_list(f->value, name))
            return true;
    }
    return false;
}

static bool never_stored(struct str n)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authenticate",
        "proxy-authorization", "proxy-authentication-info", "content-length",
        "age",
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (str_ieq_lit(n, names[i]))
            return true;
    return false;
}

static bool aside(struct str n)
{
    return str_ieq_lit(n, "server") || str_ieq_lit(n, "x-powered-by") ||
           str_ieq_lit(n, "via");
}

static bool kept(const struct h1_msg *m, const struct cc_resp *cc, struct str n)
{
    if (never_stored(n) || conn_listed(m, n))
        return false;
    if ((cc->flags & CC_PRIVATE_F) && name_in_list(cc->private_fields, n))
        return false;
    return true;
}

/* ---- a small string builder on a pool ---- */

struct sb {
    char *p;
    size_t len, cap;
};

static int sb_init(struct pool *pl, struct sb *b, size_t cap)
{
    b->p = pool_alloc(pl, cap + 1);
    b->len = 0;
    b->cap = cap;
    return b->p == NULL ? -ENOMEM : 0;
}

static void sb_put(struct sb *b, struct str s)
{
    if (s.len > 0 && b->len + s.len <= b->cap) {
        memcpy(b->p + b->len, s.p, s.len);
        b->len += s.len;
    }
}

static void sb_field(struct sb *b, struct str name, struct str value)
{
    sb_put(b, name);
    sb_put(b, STR_LIT(": "));
    sb_put(b, value);
    sb_put(b, STR_LIT("\r\n"));
}

static struct str sb_str(const struct sb *b)
{
    return str_make(b->p, b->len);
}

/* ---- metadata ---- */

static struct str first(const struct h1_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (str_ieq_lit(f[i].name, name))
            return f[i].value;
    return STR_NULL;
}

static bool has(const struct h1_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (str_ieq_lit(f[i].name, name))
            return true;
    return false;
}

void chead_meta(const struct h1_field *f, size_t n, int status, int64_t req_time,
                int64_t resp_time, struct cache_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->status = status;
    m->req_time = req_time;
    m->resp_time = resp_time;
    cc_resp_init(&m->cc);
    for (size_t i = 0; i < n; i++)
        if (str_ieq_lit(f[i].name, "cache-control"))
            cc_parse_resp(&m->cc, f[i].value);
    m->date = http_date_parse(first(f, n, "date"), resp_time);
    if (m->date == DATE_NONE)
        m->date = resp_time;
    m->has_expires = has(f, n, "expires");
    m->expires = m->has_expires ? http_date_parse(first(f, n, "expires"), resp_time)
                                : DATE_NONE;
    m->last_modified = http_date_parse(first(f, n, "last-modified"), resp_time);
    struct str age = first(f, n, "age");
    const char *comma = age.len ? memchr(age.p, ',', age.len) : NULL;
    if (comma != NULL) /* "3600, 0": the first */
        age.len = (size_t)(comma - age.p);
    int64_t a = cc_delta(str_trim(age));
    m->age = a >= 0 ? a : 0;
    m->has_etag = has(f, n, "etag");
}

/* "Cache-Tag: a, b" and "Surrogate-Key: a b" -> "a\0b\0" */
static struct str tags_of(struct pool *pl, const struct h1_field *f, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (str_ieq_lit(f[i].name, "cache-tag") || str_ieq_lit(f[i].name, "surrogate-key"))
            total += f[i].value.len + 1;
    if (total == 0)
        return STR_NULL;
    char *out = pool_alloc(pl, total + 1);
    if (out == NULL)
        return STR_NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        bool ct = str_ieq_lit(f[i].name, "cache-tag");
        if (!ct && !str_ieq_lit(f[i].name, "surrogate-key"))
            continue;
        struct str v = f[i].value;
        size_t j = 0;
        while (j < v.len) {
            while (j < v.len && (v.p[j] == ' ' || v.p[j] == '\t' || v.p[j] == ','))
                j++;
            size_t k = j;
            while (k < v.len && v.p[k] != ',' && (ct || (v.p[k] != ' ' && v.p[k] != '\t')))
                k++;
            struct str t = str_trim(str_make(v.p + j, k - j));
            if (t.len > 0 && o + t.len + 1 <= total) {
                memcpy(out + o, t.p, t.len);
                o += t.len;
                out[o++] = '\0';
            }
            j = k;
        }
    }
    return str_make(out, o);
}

/* no-cache="A, B" -> "a\0b\0" */
static struct str ncf_of(struct pool *pl, const struct cc_resp *cc)
{
    if (!(cc->flags & CC_NO_CACHE_F) || cc->no_cache_fields.len == 0)
        return STR_NULL;
    struct str l = cc->no_cache_fields;
    char *out = pool_alloc(pl, l.len + 2);
    if (out == NULL)
        return STR_NULL;
    size_t o = 0, i = 0;
    while (i < l.len) {
        size_t k = i;
        while (k < l.len && l.p[k] != ',')
            k++;
        struct str el = str_trim(str_make(l.p + i, k - i));
        for (size_t j = 0; j < el.len; j++)
            out[o++] = ascii_lower(el.p[j]);
        if (el.len)
            out[o++] = '\0';
        i = k + 1;
    }
    return str_make(out, o);
}

static struct str vary_of(struct pool *pl, const struct h1_field *f, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (str_ieq_lit(f[i].name, "vary"))
            total += f[i].value.len + 1;
    if (total == 0)
        return STR_NULL;
    char *out = pool_alloc(pl, total + 1);
    if (out == NULL)
        return STR_NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!str_ieq_lit(f[i].name, "vary"))
            continue;
        if (o > 0)
            out[o++] = ',';
        if (f[i].value.len > 0)
            memcpy(out + o, f[i].value.p, f[i].value.len);
        o += f[i].value.len;
    }
    return str_make(out, o);
}

/* Fields of <f> that are stored, with a Date when there is none. */
static int stored_fields(struct pool *pl, const struct h1_msg *m, const struct cc_resp *cc,
                         int64_t resp_time, struct cache_head *h)
{
    size_t need = 64, sneed = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        size_t l = m->fields[i].name.len + m->fields[i].value.len + 4;
        if (aside(m->fields[i].name))
            sneed += l;
        else
            need += l;
    }
    struct sb fb, sv, vb;
    if (sb_init(pl, &fb, need) != 0 || sb_init(pl, &sv, sneed) != 0 ||
        sb_init(pl, &vb, sneed) != 0)
        return -ENOMEM;
    bool date = false;
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (!kept(m, cc, f->name))
            continue;
        if (str_ieq_lit(f->name, "via")) {
            if (vb.len > 0)
                sb_put(&vb, STR_LIT(", "));
            sb_put(&vb, f->value);
        } else if (aside(f->name)) {
            sb_field(&sv, f->name, f->value);
        } else {
            date |= str_ieq_lit(f->name, "date");
            sb_field(&fb, f->name, f->value);
        }
    }
    if (!date) {
        char d[32];
        size_t dl = h1_fmt_date(d, resp_time);
        sb_field(&fb, STR_LIT("Date"), str_make(d, dl));
    }
    h->fields = sb_str(&fb);
    h->server = sb_str(&sv);
    h->via = sb_str(&vb);
    return 0;
}

static struct str vary_key(struct pool *pl, struct str vary, const struct h1_field *rf,
                           size_t rn, bool *star)
{
    *star = false;
    if (vary.len == 0)
        return STR_NULL;
    size_t cap = 1024;
    for (size_t i = 0; i < rn; i++)
        cap += rf[i].name.len + rf[i].value.len + 4;
    char *out = pool_alloc(pl, cap);
    if (out == NULL)
        return STR_NULL;
    int n = cache_vary_key(out, cap, vary, rf, rn);
    if (n == -EINVAL)
        *star = true;
    return n > 0 ? str_make(out, (size_t)n) : STR_NULL;
}

enum store_why chead_build(struct pool *pl, const struct chead_in *in,
                           struct cache_head *h)
{
    const struct h1_msg *r = in->resp;
    memset(h, 0, sizeof(*h));
    chead_meta(r->fields, r->nfields, r->status, in->req_time, in->resp_time, &h->meta);
    bool star = false;
    struct str vary = vary_of(pl, r->fields, r->nfields);
    h->vary = vary_key(pl, vary, in->req_fields, in->req_nfields, &star);
    if (vary.len > 0 && h->vary.len == 0 && !star)
        return STORE_VARY_STAR; /* could not build the secondary key */
    struct store_in si = {
        .get = in->get,
        .req_no_store = in->req_no_store,
        .req_auth = in->req_auth,
        .status = r->status,
        .m = &h->meta,
        .vary_star = star,
        .has_validator = h->meta.has_etag || h->meta.last_modified != DATE_NONE,
    };
    enum store_why why = fresh_storable(&si, in->fp);
    if (why != STORE_OK)
        return why;
    if (in->body_len != CACHE_LEN_UNKNOWN && in->body_len > in->max_object)
        return STORE_TOO_BIG;
    if (stored_fields(pl, r, &h->meta.cc, in->resp_time, h) != 0)
        return STORE_TOO_BIG;
    h->status = r->status;
    h->reason = r->reason;
    h->etag = first(r->fields, r->nfields, "etag");
    h->tags = tags_of(pl, r->fields, r->nfields);
    h->nocache_fields = ncf_of(pl, &h->meta.cc);
    h->body_len = in->body_len;
    return STORE_OK;
}

size_t chead_fields(struct pool *pl, struct str text, struct h1_field **out)
{
    size_t n = 0;
    for (size_t i = 0; i < text.len; i++)
        n += text.p[i] == '\n';
    struct h1_field *f = pool_alloc(pl, (n + 1) * sizeof(*f));
    *out = f;
    if (f == NULL)
        return 0;
    size_t k = 0, i = 0;
    while (i < text.len && k < n) {
        const char *eol = memchr(text.p + i, '\n', text.len - i);
        size_t end = eol ? (size_t)(eol - text.p) : text.len;
        struct str line = str_make(text.p + i, end - i);
        if (line.len && line.p[line.len - 1] == '\r')
            line.len--;
        const char *colon = memchr(line.p, ':', line.len);
        if (colon != NULL) {
            size_t nl = (size_t)(colon - line.p);
            f[k].name = str_make(line.p, nl);
            f[k].value = str_trim(str_make(colon + 1, line.len - nl - 1));
            k++;
        }
        i = end + 1;
    }
    return k;
}

struct str chead_find(struct str text, const char *name)
{
    size_t nl = strlen(name), i = 0;
    while (i < text.len) {
        const char *eol = memchr(text.p + i, '\n', text.len - i);
        size_t end = eol ? (size_t)(eol - text.p) : text.len;
        struct str line = str_make(text.p + i, end - i);
        if (line.len > nl && line.p[nl] == ':' && str_ieq(str_make(line.p, nl), str_cstr(name))) {
            struct str v = str_make(line.p + nl + 1, line.len - nl - 1);
            if (v.len && v.p[v.len - 1] == '\r')
                v.len--;
            return str_trim(v);
        }
        i = end + 1;
    }
    return STR_NULL;
}

/* A 304 field that replaces the stored ones of its name (§3.2). */
static bool updates(const struct h1_msg *r, struct str n)
{
    return !never_stored(n) && !conn_listed(r, n) && !str_ieq_lit(n, "content-range");
}

int chead_update(struct pool *pl, const struct cache_view *old, const struct h1_msg *r,
                 int64_t req_time, int64_t resp_time, struct cache_head *h)
{
    memset(h, 0, sizeof(*h));
    struct h1_field *of;
    size_t on = chead_fields(pl, old->fields, &of);
    size_t need = old->fields.len + 64, sneed = old->server.len;
    for (size_t i = 0; i < r->nfields; i++) {
        need += r->fields[i].name.len + r->fields[i].value.len + 4;
        sneed += r->fields[i].name.len + r->fields[i].value.len + 4;
    }
    struct sb fb, sv, vb;
    if (sb_init(pl, &fb, need) != 0 || sb_init(pl, &sv, sneed) != 0 ||
        sb_init(pl, &vb, sneed + old->via.len))
        return -ENOMEM;
    bool new_server = has(r->fields, r->nfields, "server") ||
                      has(r->fields, r->nfields, "x-powered-by");
    bool new_date = has(r->fields, r->nfields, "date");
    for (size_t i = 0; i < on; i++) {
        struct str n = of[i].name;
        bool replaced = false;
        for (size_t j = 0; j < r->nfields && !replaced; j++)
            replaced = str_ieq(r->fields[j].name, n) && updates(r, n) && !aside(n);
        if (!new_date && str_ieq_lit(n, "date"))
            replaced = true; /* a 304 without Date: it is now */
        if (!replaced)
            sb_field(&fb, n, of[i].value);
    }
    for (size_t j = 0; j < r->nfields; j++) {
        const struct h1_field *f = &r->fields[j];
        if (!updates(r, f->name))
            continue;
        if (str_ieq_lit(f->name, "via")) {
            if (vb.len > 0)
                sb_put(&vb, STR_LIT(", "));
            sb_put(&vb, f->value);
        } else if (aside(f->name)) {
            sb_field(&sv, f->name, f->value);
        } else {
            sb_field(&fb, f->name, f->value);
        }
    }
    if (!new_date) {
        char d[32];
        size_t dl = h1_fmt_date(d, resp_time);
        sb_field(&fb, STR_LIT("Date"), str_make(d, dl));
    }
    h->fields = sb_str(&fb);
    h->server = new_server ? sb_str(&sv) : old->server;
    h->via = vb.len > 0 ? sb_str(&vb) : old->via;
    struct h1_field *nf;
    size_t nn = chead_fields(pl, h->fields, &nf);
    chead_meta(nf, nn, old->status, req_time, resp_time, &h->meta);
    /* Age: from the 304 only */
    struct h1_msg tmp = { .fields = r->fields, .nfields = r->nfields };
    struct cache_meta m304;
    chead_meta(tmp.fields, tmp.nfields, 304, req_time, resp_time, &m304);
    h->meta.age = m304.age;
    h->status = old->status;
    struct str sl = old->status_line; /* "HTTP/1.1 200 OK\r\n" */
    h->reason = sl.len > 15 ? str_make(sl.p + 13, sl.len - 15) : STR_NULL;
    h->vary = old->vary;
    h->etag = first(nf, nn, "etag");
    h->tags = tags_of(pl, nf, nn);
    h->nocache_fields = ncf_of(pl, &h->meta.cc);
    h->body_len = old->body_len;
    return 0;
}
