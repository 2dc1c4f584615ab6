/*
 * PROXY protocol v1 and v2 (HAProxy's proxy-protocol.txt).
 *
 * The receiver must be strict: a listener that expects the header refuses
 * a connection without one (§2: never guess), so a client that reaches the
 * port directly cannot pretend to be someone else. The parser answers as
 * early as it can: the first byte that cannot start either version makes
 * it -EBADMSG, so a plain HTTP request to such a listener is refused at
 * once instead of waiting for a header timeout.
 *
 * v1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", at most 107 bytes.
 * v2: a 12-byte signature, version/command, family/protocol, a 16-bit
 * length, then the addresses and optional TLVs (which we skip).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy/proxy_proto.h"

static const char v2sig[12] = "\r\n\r\n\0\r\nQUIT\n";
static const char v1pre[6] = "PROXY ";

/* Splits the next space-terminated field of the line [*p, end). */
static bool field(const char **p, const char *end, char *out, size_t cap,
                  bool last)
{
    const char *s = *p;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    if (e == s || (size_t)(e - s) >= cap || (last ? e != end : e == end))
        return false;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    *p = last ? e : e + 1;
    return true;
}

static bool port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = htons((uint16_t)v);
    return true;
}

static bool set_addr(union pp_addr *a, int fam, const char *text, uint16_t p)
{
    memset(a, 0, sizeof(*a));
    if (fam == AF_INET) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = p;
        return inet_pton(AF_INET, text, &a->in.sin_addr) == 1;
    }
    a->in6.sin6_family = AF_INET6;
    a->in6.sin6_port = p;
    return inet_pton(AF_INET6, text, &a->in6.sin6_addr) == 1;
}

static int parse_v1(const char *buf, size_t len, struct pp_info *out)
{
    size_t lim = len < PP_MAX_V1 ? len : PP_MAX_V1;
    const char *cr = memchr(buf, '\r', lim);
    const char *lf = memchr(buf, '\n', cr != NULL ? (size_t)(cr - buf) : lim);
    if (lf != NULL)
        return -EBADMSG; /* a bare LF */
    if (cr == NULL)
        return len >= PP_MAX_V1 ? -EBADMSG : -EAGAIN;
    if ((size_t)(cr - buf) + 1 >= len)
        return -EAGAIN;
    if (cr[1] != '\n')
        return -EBADMSG;
    size_t total = (size_t)(cr - buf) + 2;
    const char *p = buf + sizeof(v1pre);
    char proto[8], sa[48], da[48], sp[8], dp[8];
    memset(out, 0, sizeof(*out));
    out->version = 1;
    if (cr - p >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
        (cr - p == 7 || p[7] == ' ')) {
        out->local = true; /* the rest of the line is to be ignored */
        return (int)total;
    }
    if (!field(&p, cr, proto, sizeof(proto), false))
        return -EBADMSG;
    int fam;
    if (strcmp(proto, "TCP4") == 0)
        fam = AF_INET;
    else if (strcmp(proto, "TCP6") == 0)
        fam = AF_INET6;
    else
        return -EBADMSG;
    uint16_t sport, dport;
    if (!field(&p, cr, sa, sizeof(sa), false) ||
        !field(&p, cr, da, sizeof(da), false) ||
        !field(&p, cr, sp, sizeof(sp), false) ||
        !field(&p, cr, dp, sizeof(dp), true) || !port(sp, &sport) ||
        !port(dp, &dport) || !set_addr(&out->src, fam, sa, sport) ||
        !set_addr(&out->dst, fam, da, dport))
        return -EBADMSG;
    return (int)total;
}

static int parse_v2(const unsigned char *b, size_t len, struct pp_info *out)
{
    if (len < 16)
        return -EAGAIN;
    if ((b[12] >> 4) != 2)
        return -EBADMSG;
    unsigned cmd = b[12] & 0xf;
    if (cmd > 1)
        return -EBADMSG;
    size_t plen = (size_t)b[14] << 8 | b[15];
    size_t total = 16 + plen;
    if (total > PP_MAX_V2)
        return -EBADMSG;
    unsigned fam = b[13] >> 4, proto = b[13] & 0xf;
    if (fam > 3 || proto > 2)
        return -EBADMSG;
    size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (plen < need)
        return -EBADMSG;
    if (len < total)
        return -EAGAIN;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    const unsigned char *a = b + 16;
    if (cmd == 0 || fam == 0 || fam == 3 || proto != 1) {
        out->local = true; /* LOCAL (health checks), or not TCP over IP */
        return (int)total;
    }
    if (fam == 1) {
        out->src.in.sin_family = out->dst.in.sin_family = AF_INET;
        memcpy(&out->src.in.sin_addr, a, 4);
        memcpy(&out->dst.in.sin_addr, a + 4, 4);
        memcpy(&out->src.in.sin_port, a + 8, 2);
        memcpy(&out->dst.in.sin_port, a + 10, 2);
    } else {
        out->src.in6.sin6_family = out->dst.in6.sin6_family = AF_INET6;
        memcpy(&out->src.in6.sin6_addr, a, 16);
        memcpy(&out->dst.in6.sin6_addr, a + 16, 16);
        memcpy(&out->src.in6.sin6_port, a + 32, 2);
        memcpy(&out->dst.in6.sin6_port, a + 34, 2);
    }
    return (int)total;
}

int pp_parse(const char *buf, size_t len, struct pp_info *out)
{
    if (len == 0)
        return -EAGAIN;
    if (buf[0] == 'P') {
        size_t n = len < sizeof(v1pre) ? len : sizeof(v1pre);
        if (memcmp(buf, v1pre, n) != 0)
            return -EBADMSG;
        return n < sizeof(v1pre) ? -EAGAIN : parse_v1(buf, len, out);
    }
    size_t n = len < sizeof(v2sig) ? len : sizeof(v2sig);
    if (memcmp(buf, v2sig, n) != 0)
        return -EBADMSG;
    return n < sizeof(v2sig) ? -EAGAIN
                             : parse_v2((const unsigned char *)buf, len, out);
}

static bool same_ip_family(const struct sockaddr *s, const struct sockaddr *d)
{
    return s != NULL && d != NULL && s->sa_family == d->sa_family &&
           (s->sa_family == AF_INET || s->sa_family == AF_INET6);
}

static int write_v1(char *out, size_t cap, const struct sockaddr *s,
                    const struct sockaddr *d)
{
    int n;
    if (!same_ip_family(s, d)) {
        n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    } else {
        char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
        bool v4 = s->sa_family == AF_INET;
        const void *sp = v4 ? (const void *)&((const struct sockaddr_in *)s)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)s)->sin6_addr;
        const void *dp = v4 ? (const void *)&((const struct sockaddr_in *)d)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)d)->sin6_addr;
        unsigned sport = ntohs(v4 ? ((const struct sockaddr_in *)s)->sin_port
                                  : ((const struct sockaddr_in6 *)s)->sin6_port);
        unsigned dport = ntohs(v4 ? ((const struct sockaddr_in *)d)->sin_port
                                  : ((const struct sockaddr_in6 *)d)->sin6_port);
        inet_ntop(s->sa_family, sp, sa, sizeof(sa));
        inet_ntop(s->sa_family, dp, da, sizeof(da));
        n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6",
                     sa, da, sport, dport);
    }
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

static int write_v2(char *out, size_t cap, const struct sockaddr *s,
                    const struct sockaddr *d)
{
    bool ip = same_ip_family(s, d);
    bool v4 = ip && s->sa_family == AF_INET;
    size_t alen = !ip ? 0 : v4 ? 12 : 36;
    if (cap < 16 + alen)
        return -ENOSPC;
    unsigned char *b = (unsigned char *)out;
    memcpy(b, v2sig, 12);
    b[12] = ip ? 0x21 : 0x20; /* v2 PROXY, or v2 LOCAL */
    b[13] = !ip ? 0x00 : v4 ? 0x11 : 0x21;
    b[14] = 0;
    b[15] = (unsigned char)alen;
    unsigned char *a = b + 16;
    if (v4) {
        const struct sockaddr_in *si = (const void *)s, *di = (const void *)d;
        memcpy(a, &si->sin_addr, 4);
        memcpy(a + 4, &di->sin_addr, 4);
        memcpy(a + 8, &si->sin_port, 2);
        memcpy(a + 10, &di->sin_port, 2);
    } else if (ip) {
        const struct sockaddr_in6 *si = (const void *)s, *di = (const void *)d;
        memcpy(a, &si->sin6_addr, 16);
        memcpy(a + 16, &di->sin6_addr, 16);
        memcpy(a + 32, &si->sin6_port, 2);
        memcpy(a + 34, &di->sin6_port, 2);
    }
    return (int)(16 + alen);
}

int pp_write(char *out, size_t cap, int version, const struct sockaddr *src,
             const struct sockaddr *dst)
{
    return version == 2 ? write_v2(out, cap, src, dst) : write_v1(out, cap, src, dst);
}
