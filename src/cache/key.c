/*
 * Cache keys (RFC 9111 §2: the method and the target URI; we store GET
 * responses only, and HEAD is answered from them, so the key is the URI)
 * and secondary keys (§4.1, Vary).
 *
 * URI normalisation (RFC 9110 §4.2.3) is limited to what cannot change the
 * meaning: the scheme and host are lower-cased, a default port and a
 * trailing dot in the host are dropped, an empty path is "/". The path and
 * query are kept byte for byte (no percent-decoding): two spellings the
 * origin might treat differently are two keys.
 */
#include <errno.h>
#include <string.h>

#include "cache/cache.h"

size_t cache_key_write(char *out, size_t cap, struct str scheme,
                       struct str authority, struct str path)
{
    size_t o = 0;
    struct str host = authority, port = STR_NULL;
    if (host.len == 0) {
        /* no authority (HTTP/1.0 without Host): the key has none either */
    } else if (host.p[0] == '[') {
        const char *rb = memchr(host.p, ']', host.len);
        if (rb != NULL && (size_t)(rb - host.p) + 1 < host.len &&
            rb[1] == ':') {
            size_t hl = (size_t)(rb - host.p) + 1;
            port = str_make(host.p + hl + 1, host.len - hl - 1);
            host.len = hl;
        }
    } else {
        const char *colon = memchr(host.p, ':', host.len);
        if (colon != NULL) {
            size_t hl = (size_t)(colon - host.p);
            port = str_make(colon + 1, host.len - hl - 1);
            host.len = hl;
        }
    }
    while (host.len > 0 && host.p[host.len - 1] == '.')
        host.len--;
    if (scheme.len == 0)
        scheme = STR_LIT("http");
    bool https = str_ieq_lit(scheme, "https");
    if ((str_eq(port, STR_LIT("80")) && !https) ||
        (str_eq(port, STR_LIT("443")) && https) || port.len == 0)
        port = STR_NULL;
    size_t need = scheme.len + 3 + host.len + (port.len ? port.len + 1 : 0) +
                  path.len + 1;
    if (need > cap)
        return 0;
    for (size_t i = 0; i < scheme.len; i++)
        out[o++] = ascii_lower(scheme.p[i]);
    memcpy(out + o, "://", 3);
    o += 3;
    for (size_t i = 0; i < host.len; i++)
        out[o++] = ascii_lower(host.p[i]);
    if (port.len) {
        out[o++] = ':';
        memcpy(out + o, port.p, port.len);
        o += port.len;
    }
    if (path.len == 0 || path.p[0] != '/')
        out[o++] = '/';
    if (path.len) {
        memcpy(out + o, path.p, path.len);
        o += path.len;
    }
    return o;
}

/* A 64-bit hash in the style of wyhash: 16 bytes per 128-bit multiply. */
static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t cache_hash(const void *data, size_t len)
{
    static const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                          k2 = 0x8ebc6af09c88c6e3ull;
    const unsigned char *p = data;
    uint64_t seed = k0 ^ (uint64_t)len;
    size_t n = len;
    while (n > 16) {
        seed = mum(rd64(p) ^ k1, rd64(p + 8) ^ seed);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = rd64(p);
        b = rd64(p + n - 8);
    } else if (n > 0) {
        for (size_t i = 0; i < n; i++)
            a |= (uint64_t)p[i] << (8 * i);
        b = (uint64_t)p[n / 2] << 8 | p[n - 1];
    }
    return mum(k1 ^ (uint64_t)len, mum(a ^ k2, b ^ seed));
}

/* ---- Vary ---- */

/* Appends the normalised value of every field <name> of <fields> to
 * out[*o..cap): elements trimmed and joined by ",". Returns false when it
 * does not fit; *present says whether any such field exists. */
static bool put_value(char *out, size_t cap, size_t *o, struct str name,
                      const struct h1_field *fields, size_t nfields,
                      bool *present)
{
    bool first = true;
    *present = false;
    for (size_t i = 0; i < nfields; i++) {
        if (!str_ieq(fields[i].name, name))
            continue;
        *present = true;
        struct str v = fields[i].value;
        size_t j = 0;
        while (j <= v.len) {
            size_t k = j;
            while (k < v.len && v.p[k] != ',')
                k++;
            struct str el = str_trim(str_make(v.p + j, k - j));
            if (el.len > 0 || (v.len == 0 && k == v.len)) {
                if (!first) {
                    if (*o + 1 > cap)
                        return false;
                    out[(*o)++] = ',';
                }
                if (*o + el.len > cap)
                    return false;
                if (el.len > 0)
                    memcpy(out + *o, el.p, el.len);
                *o += el.len;
                first = false;
            }
            j = k + 1;
        }
    }
    return true;
}

int cache_vary_key(char *out, size_t cap, struct str vary,
                   const struct h1_field *fields, size_t nfields)
{
    size_t o = 0, i = 0;
    while (i < vary.len) {
        size_t k = i;
        while (k < vary.len && vary.p[k] != ',')
            k++;
        struct str name = str_trim(str_make(vary.p + i, k - i));
        i = k + 1;
        if (name.len == 0)
            continue;
        if (str_eq(name, STR_LIT("*")))
            return -EINVAL;
        if (o + name.len + 1 > cap)
            return -ENOBUFS;
        for (size_t j = 0; j < name.len; j++)
            out[o++] = ascii_lower(name.p[j]);
        out[o++] = '\0';
        bool present;
        if (!put_value(out, cap, &o, name, fields, nfields, &present))
            return -ENOBUFS;
        if (!present) {
            if (o + 1 > cap)
                return -ENOBUFS;
            out[o++] = '\1';
        }
        if (o + 1 > cap)
            return -ENOBUFS;
        out[o++] = '\0';
    }
    return (int)o;
}

bool cache_vary_match(const char *vk, size_t vklen,
                      const struct h1_field *fields, size_t nfields)
{
    char buf[8192];
    size_t i = 0;
    while (i < vklen) {
        const char *name = vk + i;
        size_t nl = strnlen(name, vklen - i);
        i += nl + 1;
        if (i > vklen)
            return false;
        const char *want = vk + i;
        size_t wl = strnlen(want, vklen - i);
        i += wl + 1;
        size_t o = 0;
        bool present;
        if (!put_value(buf, sizeof(buf), &o, str_make(name, nl), fields,
                       nfields, &present))
            return false;
        if (!present) {
            if (!(wl == 1 && want[0] == '\1'))
                return false;
            continue;
        }
        if (o != wl || (o > 0 && memcmp(buf, want, o) != 0))
            return false;
    }
    return true;
}
