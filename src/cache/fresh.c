/*
 * HTTP caching rules (RFC 9111, RFC 5861) as pure functions.
 *
 * Parsing is forgiving where the RFC asks recipients to be (quoted
 * arguments, case of directive names, the three date formats) and strict
 * where a loose reading would make a response look fresher than its origin
 * meant: a max-age that is not exactly 1*DIGIT, or written "max-age = 5",
 * makes the response stale (§4.2.1 "invalid freshness information"), and
 * an Expires that is not a valid HTTP-date is already expired (§5.3). The
 * first occurrence of a duplicated directive wins (§4.2.1).
 */
#include <string.h>

#include "cache/fresh.h"

/* ---- Cache-Control ---- */

void cc_resp_init(struct cc_resp *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = CC_ABSENT;
    cc->s_maxage = CC_ABSENT;
    cc->swr = CC_ABSENT;
    cc->sie = CC_ABSENT;
}

void cc_req_init(struct cc_req *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = CC_ABSENT;
    cc->max_stale = CC_ABSENT;
    cc->min_fresh = CC_ABSENT;
    cc->sie = CC_ABSENT;
}

int64_t cc_delta(struct str s)
{
    if (s.len == 0)
        return CC_INVALID;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c < '0' || c > '9')
            return CC_INVALID;
        if (v < CC_DELTA_MAX)
            v = v * 10 + (c - '0');
    }
    return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One directive of a Cache-Control list. */
struct ccdir {
    struct str name;
    struct str arg;
    bool has_arg;
    bool bad; /* malformed: spaces around '=', junk after the argument */
};

/* Reads the next directive from <s> at *<i>. Returns false at the end. */
static bool cc_next(struct str s, size_t *i, struct ccdir *d)
{
    size_t p = *i;
    for (;;) {
        while (p < s.len && (s.p[p] == ' ' || s.p[p] == '\t' || s.p[p] == ','))
            p++;
        if (p >= s.len) {
            *i = p;
            return false;
        }
        memset(d, 0, sizeof(*d));
        size_t n0 = p;
        while (p < s.len && is_tchar(s.p[p]))
            p++;
        d->name = str_make(s.p + n0, p - n0);
        size_t ws = p;
        while (p < s.len && (s.p[p] == ' ' || s.p[p] == '\t'))
            p++;
        if (p < s.len && s.p[p] == '=') {
            if (ws != p)
                d->bad = true; /* "max-age =3600" */
            p++;
            if (p < s.len && (s.p[p] == ' ' || s.p[p] == '\t'))
                d->bad = true; /* "max-age= 3600" */
            while (p < s.len && (s.p[p] == ' ' || s.p[p] == '\t'))
                p++;
            d->has_arg = true;
            if (p < s.len && s.p[p] == '"') {
                size_t a0 = ++p;
                while (p < s.len && s.p[p] != '"') {
                    if (s.p[p] == '\\' && p + 1 < s.len)
                        p++;
                    p++;
                }
                d->arg = str_make(s.p + a0, p - a0);
                if (p < s.len)
                    p++; /* closing quote */
                else
                    d->bad = true;
            } else {
                size_t a0 = p;
                while (p < s.len && is_tchar(s.p[p]))
                    p++;
                d->arg = str_make(s.p + a0, p - a0);
            }
        }
        while (p < s.len && (s.p[p] == ' ' || s.p[p] == '\t'))
            p++;
        if (p < s.len && s.p[p] != ',') {
            /* junk: skip to the next comma outside a quoted string */
            d->bad = true;
            bool q = false;
            while (p < s.len && (q || s.p[p] != ',')) {
                if (s.p[p] == '"')
                    q = !q;
                else if (q && s.p[p] == '\\' && p + 1 < s.len)
                    p++;
                p++;
            }
        }
        *i = p;
        if (d->name.len == 0)
            continue; /* junk without a name */
        return true;
    }
}

/* The argument of a freshness directive; the first occurrence wins. */
static void set_delta(int64_t *slot, const struct ccdir *d)
{
    if (*slot != CC_ABSENT)
        return;
    *slot = (d->bad || !d->has_arg) ? CC_INVALID : cc_delta(d->arg);
}

void cc_parse_resp(struct cc_resp *cc, struct str value)
{
    struct ccdir d;
    size_t i = 0;
    while (cc_next(value, &i, &d)) {
        struct str n = d.name;
        if (str_ieq_lit(n, "max-age")) {
            set_delta(&cc->max_age, &d);
        } else if (str_ieq_lit(n, "s-maxage")) {
            set_delta(&cc->s_maxage, &d);
        } else if (str_ieq_lit(n, "stale-while-revalidate")) {
            set_delta(&cc->swr, &d);
        } else if (str_ieq_lit(n, "stale-if-error")) {
            set_delta(&cc->sie, &d);
        } else if (str_ieq_lit(n, "no-store")) {
            cc->flags |= CC_NO_STORE;
        } else if (str_ieq_lit(n, "no-cache")) {
            if (d.has_arg && !(cc->flags & (CC_NO_CACHE_F | CC_NO_CACHE))) {
                cc->flags |= CC_NO_CACHE_F;
                cc->no_cache_fields = d.arg;
            } else if (!d.has_arg) {
                cc->flags |= CC_NO_CACHE;
            }
        } else if (str_ieq_lit(n, "private")) {
            if (d.has_arg && !(cc->flags & (CC_PRIVATE_F | CC_PRIVATE))) {
                cc->flags |= CC_PRIVATE_F;
                cc->private_fields = d.arg;
            } else if (!d.has_arg) {
                cc->flags |= CC_PRIVATE;
            }
        } else if (str_ieq_lit(n, "public")) {
            cc->flags |= CC_PUBLIC;
        } else if (str_ieq_lit(n, "must-revalidate")) {
            cc->flags |= CC_MUST_REVALIDATE;
        } else if (str_ieq_lit(n, "proxy-revalidate")) {
            cc->flags |= CC_PROXY_REVALIDATE;
        } else if (str_ieq_lit(n, "must-understand")) {
            cc->flags |= CC_MUST_UNDERSTAND;
        } else if (str_ieq_lit(n, "no-transform")) {
            cc->flags |= CC_NO_TRANSFORM;
        } else if (str_ieq_lit(n, "immutable")) {
            cc->flags |= CC_IMMUTABLE;
        }
    }
    /* A qualified form is overridden by a later unqualified one. */
    if (cc->flags & CC_NO_CACHE)
        cc->flags &= ~CC_NO_CACHE_F;
    if (cc->flags & CC_PRIVATE)
        cc->flags &= ~CC_PRIVATE_F;
}

/* A request argument that is not a delta-seconds is ignored. */
static void set_req_delta(int64_t *slot, const struct ccdir *d)
{
    if (*slot != CC_ABSENT || d->bad || !d->has_arg)
        return;
    int64_t v = cc_delta(d->arg);
    if (v != CC_INVALID)
        *slot = v;
}

void cc_parse_req(struct cc_req *cc, struct str value)
{
    struct ccdir d;
    size_t i = 0;
    while (cc_next(value, &i, &d)) {
        struct str n = d.name;
        if (str_ieq_lit(n, "max-age")) {
            set_req_delta(&cc->max_age, &d);
        } else if (str_ieq_lit(n, "max-stale")) {
            if (cc->max_stale != CC_ABSENT)
                continue;
            if (!d.has_arg)
                cc->max_stale = CC_ANY;
            else
                set_req_delta(&cc->max_stale, &d);
        } else if (str_ieq_lit(n, "min-fresh")) {
            set_req_delta(&cc->min_fresh, &d);
        } else if (str_ieq_lit(n, "stale-if-error")) {
            set_req_delta(&cc->sie, &d);
        } else if (str_ieq_lit(n, "no-cache")) {
            cc->flags |= CCQ_NO_CACHE;
        } else if (str_ieq_lit(n, "no-store")) {
            cc->flags |= CCQ_NO_STORE;
        } else if (str_ieq_lit(n, "only-if-cached")) {
            cc->flags |= CCQ_ONLY_IF_CACHED;
        } else if (str_ieq_lit(n, "no-transform")) {
            cc->flags |= CCQ_NO_TRANSFORM;
        }
    }
}

/* ---- HTTP-date ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned mp = m > 2 ? m - 3 : m + 9;
    unsigned doy = (153 * mp + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t year_of(int64_t t)
{
    int64_t days = t / 86400 - (t % 86400 < 0);
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    return (int64_t)yoe + era * 400 + (mp >= 10);
}

static int digits(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int month_of(const char *p)
{
    static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (memcmp(p, mon + 3 * i, 3) == 0)
            return i + 1;
    return 0;
}

static bool wday3(const char *p)
{
    static const char days[] = "MonTueWedThuFriSatSun";
    for (int i = 0; i < 7; i++)
        if (memcmp(p, days + 3 * i, 3) == 0)
            return true;
    return false;
}

/* "08:49:37" */
static int64_t tod(const char *p)
{
    if (p[2] != ':' || p[5] != ':')
        return -1;
    int h = digits(p, 2), m = digits(p + 3, 2), s = digits(p + 6, 2);
    if (h < 0 || m < 0 || s < 0 || h > 23 || m > 59 || s > 60)
        return -1;
    return h * 3600 + m * 60 + (s == 60 ? 59 : s);
}

static int64_t civil(int64_t y, int mo, int d, int64_t secs)
{
    static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30,
                                           31, 31, 30, 31, 30, 31 };
    if (mo < 1 || d < 1 || d > mdays[mo - 1] || secs < 0)
        return DATE_NONE;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return DATE_NONE;
    return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + secs;
}

int64_t http_date_parse(struct str s, int64_t now)
{
    s = str_trim(s);
    const char *p = s.p;
    if (s.len == 29 && p[3] == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (!wday3(p) || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
            p[16] != ' ' || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
            return DATE_NONE;
        int d = digits(p + 5, 2), y = digits(p + 12, 4);
        if (d < 0 || y < 0)
            return DATE_NONE;
        return civil(y, month_of(p + 8), d, tod(p + 17));
    }
    if (s.len == 24 && p[3] == ' ') {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        if (!wday3(p) || p[7] != ' ' || p[10] != ' ' || p[19] != ' ')
            return DATE_NONE;
        int d = p[8] == ' ' ? digits(p + 9, 1) : digits(p + 8, 2);
        int y = digits(p + 20, 4);
        if (d < 0 || y < 0)
            return DATE_NONE;
        return civil(y, month_of(p + 4), d, tod(p + 11));
    }
    /* rfc850: Sunday, 06-Nov-94 08:49:37 GMT */
    static const char *const long_days[] = { "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday",
                                             "Sunday" };
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(long_days[i]);
        if (s.len != n + 24 || memcmp(p, long_days[i], n) != 0)
            continue;
        const char *q = p + n;
        if (q[0] != ',' || q[1] != ' ' || q[4] != '-' || q[8] != '-' ||
            q[11] != ' ' || q[20] != ' ' || memcmp(q + 21, "GMT", 3) != 0)
            return DATE_NONE;
        int d = digits(q + 2, 2), yy = digits(q + 9, 2);
        if (d < 0 || yy < 0)
            return DATE_NONE;
        /* RFC 9110 §5.6.7: more than 50 years ahead is the last century */
        int64_t cur = year_of(now);
        int64_t y = cur / 100 * 100 + yy;
        if (y > cur + 50)
            y -= 100;
        return civil(y, month_of(q + 5), d, tod(q + 12));
    }
    return DATE_NONE;
}

/* ---- status codes ---- */

bool status_heuristic(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

bool status_understood(int status)
{
    if (status >= 200 && status <= 206)
        return true;
    if (status >= 300 && status <= 308)
        return status != 306;
    if (status >= 400 && status <= 417)
        return true;
    if (status >= 500 && status <= 505)
        return true;
    return status == 421 || status == 422 || status == 426;
}

/* ---- freshness ---- */

bool fresh_explicit(const struct cache_meta *m)
{
    return m->cc.s_maxage != CC_ABSENT || m->cc.max_age != CC_ABSENT ||
           m->has_expires;
}

int64_t fresh_lifetime(const struct cache_meta *m, const struct fresh_policy *p)
{
    const struct cc_resp *cc = &m->cc;
    if (cc->s_maxage != CC_ABSENT)
        return cc->s_maxage >= 0 ? cc->s_maxage : 0;
    if (cc->max_age != CC_ABSENT)
        return cc->max_age >= 0 ? cc->max_age : 0;
    if (m->has_expires) {
        if (m->expires == DATE_NONE)
            return 0;
        int64_t lt = m->expires - m->date;
        return lt > 0 ? (lt > CC_DELTA_MAX ? CC_DELTA_MAX : lt) : 0;
    }
    if (!status_heuristic(m->status) && !(cc->flags & CC_PUBLIC))
        return 0;
    if (m->last_modified == DATE_NONE || m->last_modified >= m->date)
        return 0;
    int64_t span = m->date - m->last_modified;
    if (span > CC_DELTA_MAX)
        span = CC_DELTA_MAX;
    int64_t h = span * (int64_t)p->heuristic_pct / 100;
    return h > p->heuristic_max ? p->heuristic_max : h;
}

int64_t fresh_age(const struct cache_meta *m, int64_t now)
{
    int64_t apparent = m->resp_time - m->date;
    if (apparent < 0)
        apparent = 0;
    int64_t delay = m->resp_time - m->req_time;
    if (delay < 0)
        delay = 0;
    int64_t corrected = m->age + delay;
    int64_t initial = apparent > corrected ? apparent : corrected;
    int64_t resident = now - m->resp_time;
    if (resident < 0)
        resident = 0;
    int64_t age = initial + resident;
    return age > CC_DELTA_MAX ? CC_DELTA_MAX : age;
}

bool fresh_stale_allowed(const struct cache_meta *m)
{
    const struct cc_resp *cc = &m->cc;
    return !(cc->flags & (CC_NO_CACHE | CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) &&
           cc->s_maxage == CC_ABSENT;
}

enum fresh_use fresh_decide(const struct cache_meta *m, const struct cc_req *rq,
                            const struct fresh_policy *p, int64_t now,
                            int64_t *ttl)
{
    int64_t life = fresh_lifetime(m, p);
    int64_t age = fresh_age(m, now);
    *ttl = life - age;
    if ((m->cc.flags & CC_NO_CACHE) || (rq->flags & CCQ_NO_CACHE))
        return USE_REVALIDATE;
    if (rq->max_age >= 0 && age > rq->max_age)
        return USE_REVALIDATE; /* too old for this client, fresh or not */
    if (life > age) {
        if (rq->min_fresh >= 0 && life - age < rq->min_fresh)
            return USE_REVALIDATE;
        return USE_FRESH;
    }
    if (!fresh_stale_allowed(m))
        return USE_REVALIDATE;
    int64_t stale = age - life;
    if (rq->max_stale == CC_ANY || (rq->max_stale >= 0 && stale <= rq->max_stale))
        return USE_STALE;
    if (rq->min_fresh >= 0)
        return USE_REVALIDATE;
    int64_t swr = m->cc.swr >= 0 ? m->cc.swr : p->swr;
    if (swr > 0 && stale <= swr)
        return USE_SWR;
    return USE_REVALIDATE;
}

bool fresh_stale_if_error(const struct cache_meta *m, const struct cc_req *rq,
                          const struct fresh_policy *p, int64_t now)
{
    if (!fresh_stale_allowed(m))
        return false;
    int64_t sie = m->cc.sie >= 0 ? m->cc.sie : p->sie;
    if (rq->sie > sie)
        sie = rq->sie;
    if (sie <= 0)
        return false;
    int64_t stale = fresh_age(m, now) - fresh_lifetime(m, p);
    return stale <= sie;
}

/* ---- storing ---- */

enum store_why fresh_storable(const struct store_in *in,
                              const struct fresh_policy *p)
{
    const struct cache_meta *m = in->m;
    const struct cc_resp *cc = &m->cc;
    if (!in->get)
        return STORE_METHOD;
    if (in->status == 206)
        return STORE_RANGE;
    if (in->status < 200 || in->status == 304)
        return STORE_STATUS;
    if (in->req_no_store)
        return STORE_REQ_NO_STORE;
    if (cc->flags & CC_MUST_UNDERSTAND) {
        if (!status_understood(in->status))
            return STORE_STATUS;
        /* §5.2.2.3: then no-store is ignored */
    } else if (cc->flags & CC_NO_STORE) {
        return STORE_NO_STORE;
    }
    if (cc->flags & CC_PRIVATE)
        return STORE_PRIVATE;
    if (in->req_auth && !(cc->flags & (CC_PUBLIC | CC_MUST_REVALIDATE)) &&
        cc->s_maxage == CC_ABSENT)
        return STORE_AUTH;
    if (in->vary_star)
        return STORE_VARY_STAR;
    bool expl = fresh_explicit(m) || (cc->flags & CC_PUBLIC);
    if (!expl && !status_heuristic(in->status))
        return STORE_NO_FRESH;
    /* Storable, but useless: it could never be used without a full fetch. */
    if (!expl && !in->has_validator && fresh_lifetime(m, p) == 0)
        return STORE_NO_FRESH;
    return STORE_OK;
}

const char *store_why_name(enum store_why w)
{
    static const char *const names[] = {
        "ok", "method", "status", "request-no-store", "no-store", "private",
        "authorization", "no-freshness", "vary-star", "too-big", "partial",
        "request-body",
    };
    return (unsigned)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

/* ---- validators ---- */

static struct str opaque(struct str t, bool *weak)
{
    t = str_trim(t);
    *weak = t.len >= 2 && t.p[0] == 'W' && t.p[1] == '/';
    if (*weak) {
        t.p += 2;
        t.len -= 2;
    }
    return t;
}

bool etag_weak_eq(struct str a, struct str b)
{
    bool wa, wb;
    struct str oa = opaque(a, &wa), ob = opaque(b, &wb);
    return oa.len >= 2 && oa.p[0] == '"' && str_eq(oa, ob);
}

bool etag_strong_eq(struct str a, struct str b)
{
    bool wa, wb;
    struct str oa = opaque(a, &wa), ob = opaque(b, &wb);
    return !wa && !wb && oa.len >= 2 && oa.p[0] == '"' && str_eq(oa, ob);
}

bool inm_matches(struct str inm, struct str etag)
{
    inm = str_trim(inm);
    if (str_eq(inm, STR_LIT("*")))
        return true;
    if (etag.len == 0)
        return false;
    size_t i = 0;
    while (i < inm.len) {
        while (i < inm.len && (inm.p[i] == ' ' || inm.p[i] == '\t' || inm.p[i] == ','))
            i++;
        size_t s0 = i;
        if (i + 1 < inm.len && inm.p[i] == 'W' && inm.p[i + 1] == '/')
            i += 2;
        if (i < inm.len && inm.p[i] == '"') {
            i++;
            while (i < inm.len && inm.p[i] != '"')
                i++;
            if (i < inm.len)
                i++;
        } else {
            while (i < inm.len && inm.p[i] != ',')
                i++;
        }
        if (i > s0 && etag_weak_eq(str_make(inm.p + s0, i - s0), etag))
            return true;
    }
    return false;
}
