/*
 * Accept-Encoding, HTTP-dates, entity tags, byte ranges and media types.
 *
 * All parsers here are lenient in the direction that is safe: a field we
 * cannot read is ignored as if absent (an unreadable If-Modified-Since
 * means "send the full response", an unreadable Range means "send it all"),
 * which RFC 9110 allows for each of them.
 */
#include <errno.h>
#include <string.h>

#include "http/negotiate.h"

/* ---- lists ---- */

/* Returns the next comma-separated element of *rest (trimmed), advancing
 * *rest past it; false when none is left. Empty elements are skipped. */
static bool next_elem(struct str *rest, struct str *elem)
{
    while (rest->len > 0) {
        const char *c = memchr(rest->p, ',', rest->len);
        size_t n = c ? (size_t)(c - rest->p) : rest->len;
        *elem = str_trim(str_make(rest->p, n));
        rest->p += c ? n + 1 : n;
        rest->len -= c ? n + 1 : n;
        if (elem->len > 0)
            return true;
    }
    return false;
}

/* ---- Accept-Encoding ---- */

/* q-value (RFC 9110 §12.4.2) in thousandths; -1 when malformed. */
static int parse_q(struct str s)
{
    if (s.len == 0 || s.len > 5)
        return -1;
    if (s.p[0] == '1') {
        for (size_t i = 1; i < s.len; i++)
            if ((i == 1 && s.p[i] != '.') || (i > 1 && s.p[i] != '0'))
                return -1;
        return 1000;
    }
    if (s.p[0] != '0')
        return -1;
    if (s.len == 1)
        return 0;
    if (s.p[1] != '.')
        return -1;
    int q = 0, scale = 100;
    for (size_t i = 2; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        q += (s.p[i] - '0') * scale;
        scale /= 10;
    }
    return q;
}

/* Splits "gzip;q=0.5" into coding and q (1000 without a q parameter).
 * Returns false when malformed. */
static bool coding_q(struct str e, struct str *coding, int *q)
{
    const char *semi = memchr(e.p, ';', e.len);
    *coding = str_trim(str_make(e.p, semi ? (size_t)(semi - e.p) : e.len));
    *q = 1000;
    while (semi != NULL) {
        struct str rest = str_make(semi + 1, e.len - (size_t)(semi + 1 - e.p));
        semi = memchr(rest.p, ';', rest.len);
        struct str param = str_trim(str_make(rest.p, semi ? (size_t)(semi - rest.p)
                                                          : rest.len));
        if (param.len >= 2 && (param.p[0] == 'q' || param.p[0] == 'Q') &&
            param.p[1] == '=') {
            *q = parse_q(str_trim(str_make(param.p + 2, param.len - 2)));
            if (*q < 0)
                return false;
        }
    }
    return coding->len > 0;
}

static const unsigned pref[] = { HTTP_ENC_BR, HTTP_ENC_ZSTD, HTTP_ENC_GZIP };

unsigned http_pick_encoding(struct str ae, unsigned allowed)
{
    int q[3] = { -1, -1, -1 }; /* explicit q per coding, in pref order */
    int star = -1;
    struct str rest = ae, e;
    while (next_elem(&rest, &e)) {
        struct str c;
        int qv;
        if (!coding_q(e, &c, &qv))
            continue;
        if (str_ieq_lit(c, "br"))
            q[0] = qv > q[0] ? qv : q[0];
        else if (str_ieq_lit(c, "zstd"))
            q[1] = qv > q[1] ? qv : q[1];
        else if (str_ieq_lit(c, "gzip") || str_ieq_lit(c, "x-gzip"))
            q[2] = qv > q[2] ? qv : q[2];
        else if (str_eq(c, STR_LIT("*")))
            star = qv;
    }
    unsigned best = 0;
    int bestq = 0;
    for (int i = 0; i < 3; i++) {
        if (!(allowed & pref[i]))
            continue;
        int qi = q[i] >= 0 ? q[i] : star;
        if (qi > bestq) {
            bestq = qi;
            best = pref[i];
        }
    }
    return best;
}

const char *http_enc_name(unsigned enc)
{
    switch (enc) {
    case HTTP_ENC_GZIP:
        return "gzip";
    case HTTP_ENC_BR:
        return "br";
    case HTTP_ENC_ZSTD:
        return "zstd";
    default:
        return "identity";
    }
}

/* ---- dates ---- */

static int num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int http_parse_date(struct str s, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    const char *p = s.p;
    if (s.len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' ||
        p[11] != ' ' || p[16] != ' ' || p[19] != ':' || p[22] != ':' ||
        memcmp(p + 25, " GMT", 4) != 0)
        return -EINVAL;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(p + 8, months + 3 * i, 3) == 0)
            mon = i + 1;
    int day = num(p + 5, 2), year = num(p + 12, 4);
    int hh = num(p + 17, 2), mm = num(p + 20, 2), ss = num(p + 23, 2);
    if (mon < 0 || day < 1 || day > 31 || year < 1970 || hh < 0 || hh > 23 ||
        mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return -EINVAL;
    *out = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

/* ---- entity tags ---- */

bool http_etag_match(struct str list, struct str etag, bool weak)
{
    if (str_eq(str_trim(list), STR_LIT("*")))
        return true;
    struct str tag = etag;
    bool tag_weak = tag.len > 2 && tag.p[0] == 'W' && tag.p[1] == '/';
    if (tag_weak) {
        if (!weak)
            return false;
        tag.p += 2;
        tag.len -= 2;
    }
    struct str rest = list, e;
    while (next_elem(&rest, &e)) {
        bool ew = e.len > 2 && e.p[0] == 'W' && e.p[1] == '/';
        if (ew) {
            if (!weak)
                continue;
            e.p += 2;
            e.len -= 2;
        }
        if (str_eq(e, tag))
            return true;
    }
    return false;
}

/* ---- ranges ---- */

/* Parses decimal digits into *v; false when empty, not digits or > 2^62. */
static bool u64(struct str s, uint64_t *v)
{
    if (s.len == 0 || s.len > 18)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(s.p[i] - '0');
    }
    *v = n;
    return true;
}

int http_parse_range(struct str v, uint64_t size, struct http_range *out,
                     size_t max)
{
    v = str_trim(v);
    if (v.len < 6 || !str_ieq(str_make(v.p, 6), STR_LIT("bytes=")))
        return -EINVAL;
    struct str rest = str_make(v.p + 6, v.len - 6), e;
    size_t n = 0, seen = 0;
    while (next_elem(&rest, &e)) {
        const char *dash = memchr(e.p, '-', e.len);
        if (dash == NULL)
            return -EINVAL;
        struct str a = str_trim(str_make(e.p, (size_t)(dash - e.p)));
        struct str b = str_trim(str_make(dash + 1, e.len - (size_t)(dash + 1 - e.p)));
        uint64_t first, last;
        if (++seen > max)
            return -E2BIG;
        if (a.len == 0) { /* suffix: the last b bytes */
            uint64_t suffix;
            if (!u64(b, &suffix))
                return -EINVAL;
            if (suffix == 0 || size == 0)
                continue; /* unsatisfiable */
            first = suffix >= size ? 0 : size - suffix;
            last = size - 1;
        } else {
            if (!u64(a, &first))
                return -EINVAL;
            if (b.len == 0) {
                last = UINT64_MAX;
            } else if (!u64(b, &last) || last < first) {
                return -EINVAL;
            }
            if (first >= size)
                continue; /* unsatisfiable */
            if (last >= size)
                last = size - 1;
        }
        for (size_t i = 0; i < n; i++)
            if (first <= out[i].last && out[i].first <= last)
                return -E2BIG; /* overlapping: a way to amplify, refused */
        out[n++] = (struct http_range){ first, last };
    }
    if (seen == 0)
        return -EINVAL;
    return (int)n;
}

/* ---- media types ---- */

bool http_type_match(struct str ct, const char *const *types, size_t n)
{
    const char *semi = memchr(ct.p, ';', ct.len);
    struct str t = str_trim(str_make(ct.p, semi ? (size_t)(semi - ct.p) : ct.len));
    const char *slash = memchr(t.p, '/', t.len);
    if (slash == NULL)
        return false;
    size_t major = (size_t)(slash - t.p);
    for (size_t i = 0; i < n; i++) {
        struct str e = str_cstr(types[i]);
        if (e.len == major + 2 && e.p[major] == '/' && e.p[major + 1] == '*' &&
            str_ieq(str_make(e.p, major), str_make(t.p, major)))
            return true;
        if (str_ieq(e, t))
            return true;
    }
    return false;
}
