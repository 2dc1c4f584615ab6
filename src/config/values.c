/*
 * The value syntaxes every part of the configuration shares: durations,
 * sizes and addresses (docs/config.md "Values").
 *
 * Numbers are parsed by hand rather than with strtoull: strtoull accepts
 * leading blanks, a sign and "0x", and saturates silently, and a config
 * value should mean exactly what it says or be refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

#define MAX_HOST 253

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit duration_units[] = {
    { "", 1000 },      { "ms", 1 },      { "s", 1000 },
    { "m", 60000 },    { "h", 3600000 }, { "d", 86400000 },
};

static const struct unit size_units[] = {
    { "", 1 },
    { "KiB", 1ULL << 10 }, { "MiB", 1ULL << 20 },
    { "GiB", 1ULL << 30 }, { "TiB", 1ULL << 40 },
    { "k", 1ULL << 10 },   { "K", 1ULL << 10 },   { "KB", 1ULL << 10 },
    { "m", 1ULL << 20 },   { "M", 1ULL << 20 },   { "MB", 1ULL << 20 },
    { "g", 1ULL << 30 },   { "G", 1ULL << 30 },   { "GB", 1ULL << 30 },
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads the leading decimal digits of <s> into <*v> and the rest into
 * <*rest>. Fails on no digits or overflow. */
static int leading_u64(struct str s, uint64_t *v, struct str *rest)
{
    size_t i = 0;
    uint64_t n = 0;

    for (; i < s.len && is_digit(s.p[i]); i++) {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -EINVAL;
        n = n * 10 + d;
    }
    if (i == 0)
        return -EINVAL;
    *v = n;
    *rest = str_make(s.p + i, s.len - i);
    return 0;
}

/* <n> times the multiplier of unit <u> from <units>, if it is at most
 * <max>. */
static int scaled(uint64_t n, struct str u, const struct unit *units,
                  size_t nunits, uint64_t max, uint64_t *out)
{
    for (size_t i = 0; i < nunits; i++) {
        if (!str_eq(u, str_cstr(units[i].name)))
            continue;
        if (n > max / units[i].mult)
            return -EINVAL;
        *out = n * units[i].mult;
        return 0;
    }
    return -EINVAL;
}

int cfg_parse_duration(struct str s, cfg_ms *out)
{
    uint64_t n, ms;
    struct str unit;

    if (leading_u64(s, &n, &unit) != 0 ||
        scaled(n, unit, duration_units, sizeof(duration_units) /
               sizeof(duration_units[0]), INT64_MAX, &ms) != 0)
        return -EINVAL;
    *out = (cfg_ms)ms;
    return 0;
}

int cfg_parse_size(struct str s, uint64_t *out)
{
    uint64_t n;
    struct str unit;

    if (leading_u64(s, &n, &unit) != 0)
        return -EINVAL;
    return scaled(n, unit, size_units,
                  sizeof(size_units) / sizeof(size_units[0]), UINT64_MAX,
                  out);
}

static void why_set(char *why, size_t whylen, const char *msg)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", msg);
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           c == '-' || c == '.' || c == '_';
}

/* Resolves a host name (only ever at load time: getaddrinfo blocks). An
 * IPv4 answer is preferred, so "localhost" means 127.0.0.1 whatever the
 * order of /etc/hosts. */
static int resolve(const char *host, struct sockaddr_storage *ss,
                   socklen_t *len, char *why, size_t whylen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL, *pick = NULL;

    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        int e = errno;
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "cannot resolve \"%s\": %s", host,
                     rc == EAI_SYSTEM ? strerror(e) : gai_strerror(rc));
        return -EINVAL;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (pick == NULL || (pick->ai_family != AF_INET &&
                             ai->ai_family == AF_INET))
            pick = ai;
    }
    if (pick == NULL || pick->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "cannot resolve \"%s\": no address", host);
        return -EINVAL;
    }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Fills <out> from the host text (NUL-terminated, brackets removed). */
static int set_host(const char *host, bool bracketed, struct cfg_addr *out,
                    char *why, size_t whylen)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;

    if (bracketed) {
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            why_set(why, whylen, "invalid IPv6 address in brackets");
            return -EINVAL;
        }
        in6->sin6_family = AF_INET6;
        out->len = sizeof(*in6);
        return 0;
    }
    if (strcmp(host, "*") == 0 ||
        inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        /* "*" leaves sin_addr zero: INADDR_ANY */
        in4->sin_family = AF_INET;
        out->len = sizeof(*in4);
        return 0;
    }
    size_t i = 0, digits_dots = 0;
    for (; host[i] != '\0'; i++) {
        if (!is_host_char(host[i]))
            break;
        digits_dots += is_digit(host[i]) || host[i] == '.';
    }
    if (host[i] == ':') {
        why_set(why, whylen, "an IPv6 address needs brackets, as in "
                             "[::1]:8080");
        return -EINVAL;
    }
    if (host[i] != '\0' || i == 0 || i > MAX_HOST || digits_dots == i) {
        why_set(why, whylen, "expected an address such as 127.0.0.1:8080, "
                             "[::1]:8080 or *:8080");
        return -EINVAL;
    }
    return resolve(host, &out->ss, &out->len, why, whylen);
}

/* Writes "1.2.3.4:80" or "[::1]:80" from the socket address. */
static void fill_text(struct cfg_addr *out)
{
    char ip[INET6_ADDRSTRLEN] = "";

    if (out->ss.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
        snprintf(out->text, sizeof(out->text), "%s:%u", ip,
                 (unsigned)ntohs(in4->sin_port));
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", ip,
                 (unsigned)ntohs(in6->sin6_port));
    }
}

/* Splits "host:port" or "[v6]:port" into the host (NUL-terminated into
 * <host>) and the port number. */
static int split_addr(struct str s, char *host, size_t hostlen,
                      bool *bracketed, uint64_t *port, char *why,
                      size_t whylen)
{
    static const char *const bad = "expected an address such as "
                                   "127.0.0.1:8080, [::1]:8080 or *:8080";
    const char *colon = NULL;
    size_t hl;

    *bracketed = s.len > 0 && s.p[0] == '[';
    if (*bracketed) {
        const char *rb = memchr(s.p, ']', s.len);
        if (rb == NULL || rb + 1 == s.p + s.len || rb[1] != ':')
            goto Bad;
        colon = rb + 1;
        hl = (size_t)(rb - s.p) - 1;
        memcpy(host, s.p + 1, hl < hostlen ? hl : 0);
    } else {
        for (size_t i = s.len; i > 0 && colon == NULL; i--)
            if (s.p[i - 1] == ':')
                colon = s.p + i - 1;
        if (colon == NULL)
            goto Bad;
        hl = (size_t)(colon - s.p);
        memcpy(host, s.p, hl < hostlen ? hl : 0);
    }
    if (hl == 0 || hl >= hostlen)
        goto Bad;
    host[hl] = '\0';
    struct str rest;
    struct str digits = str_make(colon + 1, s.len - (size_t)(colon + 1 - s.p));
    if (leading_u64(digits, port, &rest) != 0 || rest.len != 0 ||
        *port < 1 || *port > 65535) {
        why_set(why, whylen, "port must be 1..65535");
        return -EINVAL;
    }
    return 0;
Bad:
    why_set(why, whylen, bad);
    return -EINVAL;
}

int cfg__parse_addr(struct str s, struct cfg_addr *out, char *why,
                    size_t whylen)
{
    char host[MAX_HOST + 2];
    bool bracketed;
    uint64_t port;

    memset(out, 0, sizeof(*out));
    int rc = split_addr(s, host, sizeof(host), &bracketed, &port, why,
                        whylen);
    if (rc == 0)
        rc = set_host(host, bracketed, out, why, whylen);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    if (out->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
    fill_text(out);
    return 0;
}

int cfg_parse_addr(struct str s, struct cfg_addr *out)
{
    return cfg__parse_addr(s, out, NULL, 0);
}

bool cfg__addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
    /* cfg__parse_addr() zeroes the whole storage first, so the bytes
       compare */
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

void cfg__fmt_ms(cfg_ms ms, char *buf, size_t len)
{
    static const struct unit units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms > 0 && (uint64_t)ms % units[i].mult == 0) {
            snprintf(buf, len, "%llu%s",
                     (unsigned long long)((uint64_t)ms / units[i].mult),
                     units[i].name);
            return;
        }
    }
    snprintf(buf, len, "%lldms", (long long)ms);
}

void cfg__fmt_size(uint64_t n, char *buf, size_t len)
{
    static const struct unit units[] = {
        { "TiB", 1ULL << 40 }, { "GiB", 1ULL << 30 },
        { "MiB", 1ULL << 20 }, { "KiB", 1ULL << 10 },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (n > 0 && n % units[i].mult == 0) {
            snprintf(buf, len, "%llu%s",
                     (unsigned long long)(n / units[i].mult), units[i].name);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)n);
}
