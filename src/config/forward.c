/*
 * A forward listener's "forward:" mapping (docs/forward-proxy.md).
 *
 * A forward proxy is a door to the world, so everything here is deny by
 * default: only loopback clients, CONNECT only to 443, no link-local
 * destination (the cloud metadata address lives there). The lists are
 * read into plain arrays the request path scans (src/security/acl.c); the
 * htpasswd file is read and checked now, so that a plain-text or MD5 entry
 * stops the load with a message instead of failing logins at run time.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config_int.h"
#include "core/macros.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- address ranges ---- */

#define V4(a, b, c, d, bits, text) { AF_INET, (bits), { a, b, c, d }, text }
#define V6(b0, b1, last, bits, text)                                           \
    { AF_INET6, (bits), { b0, b1, [15] = (last) }, text }

static const struct cfg_cidr set_loopback[] = {
    V4(127, 0, 0, 0, 8, "loopback"),
    V6(0, 0, 1, 128, "loopback"),
};
static const struct cfg_cidr set_link_local[] = {
    V4(169, 254, 0, 0, 16, "link-local"),
    V6(0xfe, 0x80, 0, 10, "link-local"),
};
static const struct cfg_cidr set_private[] = {
    V4(10, 0, 0, 0, 8, "private"),
    V4(172, 16, 0, 0, 12, "private"),
    V4(192, 168, 0, 0, 16, "private"),
    V6(0xfc, 0, 0, 7, "private"),
};

/* Named sets usable in every address list. */
struct cidr_set {
    const char *name;
    const struct cfg_cidr *r;
    size_t n;
};

static const struct cidr_set sets[] = {
    { "loopback", set_loopback, ARRAY_LEN(set_loopback) },
    { "link-local", set_link_local, ARRAY_LEN(set_link_local) },
    { "private", set_private, ARRAY_LEN(set_private) },
};

static const struct cidr_set *named_set(struct str s)
{
    for (size_t i = 0; i < ARRAY_LEN(sets); i++)
        if (str_eq(s, str_cstr(sets[i].name)))
            return &sets[i];
    return NULL;
}

/* "10.0.0.0/8", "::1/128", "192.0.2.7" (one address). Host bits must be
 * zero: "10.0.0.1/8" is more likely a typo than a wish. */
static int read_cidr(struct cfg__ld *ld, const struct cfg__node *v,
                     struct cfg_cidr *out)
{
    static const char *const bad = "expected an address range such as "
                                   "10.0.0.0/8 or ::1/128, or one of: "
                                   "loopback, link-local, private";
    char buf[64];
    uint64_t bits;

    if (v->type != CFG_N_SCALAR || v->val.len == 0 || v->val.len >= sizeof(buf))
        return cfg__bad(ld, v, "%s", bad);
    memcpy(buf, v->val.p, v->val.len);
    buf[v->val.len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return cfg__bad(ld, v, "%s", bad);
    unsigned max = out->family == AF_INET ? 32 : 128;
    bits = max;
    if (slash != NULL && !cfg__num(str_cstr(slash + 1), 0, max, &bits))
        return cfg__bad(ld, v, "prefix length must be 0..%u", max);
    out->bits = (uint8_t)bits;
    for (unsigned i = out->bits; i < max; i++) {
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return cfg__bad(ld, v, "has bits set after the /%u prefix",
                            out->bits);
    }
    out->text = v->val.p;
    return 0;
}

/* A list of ranges and named sets into <*out>. */
static int read_cidrs(struct cfg__ld *ld, const struct cfg__node *v,
                      const struct cfg_cidr **res, size_t *n)
{
    struct cfg_cidr *out[1];
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    size_t cap = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        const struct cidr_set *s = it->type == CFG_N_SCALAR ? named_set(it->val)
                                                           : NULL;
        cap += s != NULL ? s->n : 1;
    }
    *out = cfg__array(ld, cap ? cap : 1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    *res = *out;
    *n = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        const struct cidr_set *s = it->type == CFG_N_SCALAR ? named_set(it->val)
                                                           : NULL;
        if (s != NULL) {
            for (size_t i = 0; i < s->n; i++)
                (*out)[(*n)++] = s->r[i];
            continue;
        }
        rc = read_cidr(ld, it, &(*out)[*n]);
        if (rc != 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int set_allow(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_forward *f = obj;
    return read_cidrs(ld, v, &f->allow, &f->nallow);
}

static int set_deny(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_forward *f = obj;
    return read_cidrs(ld, v, &f->deny, &f->ndeny);
}

static int set_deny_addrs(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    struct cfg_forward *f = obj;
    return read_cidrs(ld, v, &f->deny_addrs, &f->ndeny_addrs);
}

/* ---- ports ---- */

/* 443, or a range "1025-65535". */
static int read_ports(struct cfg__ld *ld, const struct cfg__node *v,
                      const struct cfg_ports **res, size_t *n)
{
    struct cfg_ports *out[1];
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    *out = cfg__array(ld, v->n ? v->n : 1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    *res = *out;
    *n = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        uint64_t lo = 0, hi = 0;
        const char *dash = it->type == CFG_N_SCALAR
                               ? memchr(it->val.p, '-', it->val.len)
                               : NULL;
        bool ok;
        if (dash == NULL) {
            ok = it->type == CFG_N_SCALAR && cfg__num(it->val, 1, 65535, &lo);
            hi = lo;
        } else {
            size_t l1 = (size_t)(dash - it->val.p);
            ok = cfg__num(str_make(it->val.p, l1), 1, 65535, &lo) &&
                 cfg__num(str_make(dash + 1, it->val.len - l1 - 1), 1, 65535,
                          &hi);
        }
        if (!ok)
            return cfg__bad(ld, it, "expected a port 1..65535 or a range "
                                    "such as 1025-65535");
        if (lo > hi)
            return cfg__bad(ld, it, "a range goes from the lower port to "
                                    "the higher");
        (*out)[(*n)++] = (struct cfg_ports){ (uint16_t)lo, (uint16_t)hi };
    }
    return 0;
}

static int set_connect_ports(struct cfg__ld *ld, const struct cfg__node *v,
                             void *obj)
{
    struct cfg_forward *f = obj;
    return read_ports(ld, v, &f->connect_ports, &f->nconnect_ports);
}

static int set_http_ports(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    struct cfg_forward *f = obj;
    return read_ports(ld, v, &f->http_ports, &f->nhttp_ports);
}

/* ---- host patterns ---- */

static int read_hosts(struct cfg__ld *ld, const struct cfg__node *v,
                      const char ***out, size_t *n)
{
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    *out = cfg__array(ld, v->n ? v->n : 1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    *n = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        if (it->type == CFG_N_SCALAR && str_eq(it->val, STR_LIT("*")))
            return cfg__bad(ld, it, "\"*\" is not a host pattern: an empty "
                                    "or absent list already means any host");
        rc = cfg__host(ld, it, &(*out)[*n]);
        if (rc != 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int set_allow_hosts(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_forward *f = obj;
    return read_hosts(ld, v, &f->allow_hosts, &f->nallow_hosts);
}

static int set_deny_hosts(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    struct cfg_forward *f = obj;
    return read_hosts(ld, v, &f->deny_hosts, &f->ndeny_hosts);
}

/* ---- auth ---- */

/* True when <h> holds a whole hash, not just a setting: crypt_checksalt()
 * only looks at the setting, and "$6$salt" would never match anything. */
static bool complete(const char *h, size_t digest)
{
    if (strncmp(h, "$2", 2) == 0)
        return strlen(h) == 60; /* $2b$NN$ + 22 salt + 31 hash */
    const char *last = strrchr(h, '$');
    return strlen(last + 1) == digest;
}

/* What a hash in an htpasswd file is, or why it is refused. */
static const char *refuse_hash(const char *h)
{
    static const struct {
        const char *prefix;
        size_t digest; /* characters after the last '$' */
    } ok[] = {
        { "$2y$", 0 }, { "$2b$", 0 }, { "$2a$", 0 }, { "$6$", 86 },
        { "$5$", 43 }, { "$y$", 43 }, { "$gy$", 43 }, { "$7$", 43 },
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        if (strncmp(h, ok[i].prefix, strlen(ok[i].prefix)) != 0)
            continue;
        int st = crypt_checksalt(h);
        if ((st == CRYPT_SALT_OK || st == CRYPT_SALT_TOO_CHEAP) &&
            complete(h, ok[i].digest))
            return NULL;
        return "is not a valid hash of its kind";
    }
    if (strncmp(h, "$apr1$", 6) == 0 || strncmp(h, "$1$", 3) == 0)
        return "is an MD5 hash, which is refused (too fast to resist "
               "guessing); make it with htpasswd -B (bcrypt)";
    if (strncmp(h, "{SHA}", 5) == 0)
        return "is an unsalted SHA-1 hash, which is refused; make it with "
               "htpasswd -B (bcrypt)";
    if (h[0] != '$' && strlen(h) == 13)
        return "looks like a DES crypt hash, which is refused; make it with "
               "htpasswd -B (bcrypt)";
    return "is not a bcrypt ($2y$) or SHA-512 ($6$) hash: plain-text "
           "passwords are refused; make it with htpasswd -B (bcrypt)";
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const struct cfg_htuser *)a)->user,
                  ((const struct cfg_htuser *)b)->user);
}

/* Splits <text> into lines of "user:hash" (blank lines and # comments
 * skipped), checks each, and keeps them sorted in f->users. */
static int parse_htpasswd(struct cfg__ld *ld, const struct cfg__node *v,
                          struct cfg_forward *f, char *text)
{
    size_t lines = 1;
    for (const char *p = text; *p != '\0'; p++)
        lines += *p == '\n';
    f->users = cfg__array(ld, lines, sizeof(*f->users));
    if (f->users == NULL)
        return -ENOMEM;
    unsigned lineno = 0;
    for (char *line = text, *next; line != NULL; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return cfg__bad(ld, v, "%s:%u: expected user:hash", f->htpasswd,
                            lineno);
        *colon = '\0';
        const char *why = refuse_hash(colon + 1);
        if (why != NULL)
            return cfg__bad(ld, v, "%s:%u: the entry of user \"%s\" %s",
                            f->htpasswd, lineno, line, why);
        struct cfg_htuser *u = &f->users[f->nusers];
        u->user = cfg__arena_strndup(ld->a, line, (size_t)(colon - line));
        u->hash = cfg__arena_strndup(ld->a, colon + 1, strlen(colon + 1));
        if (u->user == NULL || u->hash == NULL)
            return cfg__bad(ld, v, "out of memory");
        for (size_t i = 0; i < f->nusers; i++)
            if (strcmp(f->users[i].user, u->user) == 0)
                return cfg__bad(ld, v, "%s:%u: user \"%s\" is listed twice",
                                f->htpasswd, lineno, u->user);
        f->nusers++;
    }
    if (f->nusers == 0)
        return cfg__bad(ld, v, "%s: no users in the file", f->htpasswd);
    qsort(f->users, f->nusers, sizeof(*f->users), cmp_user);
    return 0;
}

static int set_htpasswd(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_forward *f = obj;
    char why[512];
    size_t len = 0;
    int rc = cfg__str(ld, v, false, &f->htpasswd);
    if (rc != 0)
        return rc;
    char *text = cfg__read_file(f->htpasswd, &len, why, sizeof(why));
    if (text == NULL)
        return cfg__bad(ld, v, "%s", why);
    if (memchr(text, '\0', len) != NULL)
        rc = cfg__bad(ld, v, "%s: not a text file", f->htpasswd);
    else
        rc = parse_htpasswd(ld, v, f, text);
    explicit_bzero(text, len);
    free(text);
    return rc;
}

/* A quoted-string's content without quotes, backslashes or controls. */
static int set_realm(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_forward *f = obj;
    int rc = cfg__str(ld, v, false, &f->realm);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < v->val.len; i++) {
        unsigned char c = (unsigned char)v->val.p[i];
        if (c < ' ' || c == 0x7f || c == '"' || c == '\\')
            return cfg__bad(ld, v, "must not contain quotes, backslashes or "
                                   "control characters");
    }
    return 0;
}

static const struct cfg__field auth_fields[] = {
    CFG__F_FN("htpasswd", set_htpasswd),
    CFG__F_FN("realm", set_realm),
};

static int set_auth(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_forward *f = obj;
    int rc = cfg__walk(ld, v, "auth", auth_fields, NFIELDS(auth_fields), f);
    if (rc == 0 && f->htpasswd == NULL)
        return cfg__fail(ld, v, "missing \"htpasswd\" in auth");
    return rc;
}

/* ---- pac ---- */

static int set_pac_file(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg_forward *f = obj;
    const char *path;
    char why[512];
    size_t len = 0;
    int rc = cfg__str(ld, v, false, &path);
    if (rc != 0)
        return rc;
    char *text = cfg__read_file(path, &len, why, sizeof(why));
    if (text == NULL)
        return cfg__bad(ld, v, "%s", why);
    char *body = cfg__arena_strndup(ld->a, text, len);
    free(text);
    if (body == NULL)
        return cfg__bad(ld, v, "out of memory");
    f->pac_body = body;
    f->pac_len = len;
    return 0;
}

/* "host:port" as a PAC "PROXY" entry takes it: printable, no spaces,
 * quotes or semicolons, ending in a port. */
static int set_pac_proxy(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    struct cfg_forward *f = obj;
    int rc = cfg__str(ld, v, false, &f->pac_proxy);
    if (rc != 0)
        return rc;
    const char *colon = strrchr(f->pac_proxy, ':');
    uint64_t port;
    bool ok = colon != NULL && colon != f->pac_proxy &&
              cfg__num(str_cstr(colon + 1), 1, 65535, &port);
    for (size_t i = 0; ok && i < v->val.len; i++) {
        unsigned char c = (unsigned char)v->val.p[i];
        ok = c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != ';' &&
             c != '\\';
    }
    if (!ok)
        return cfg__bad(ld, v, "expected host:port, such as "
                               "proxy.example.com:3128");
    return 0;
}

static int set_pac_direct(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    struct cfg_forward *f = obj;
    return read_hosts(ld, v, &f->pac_direct, &f->npac_direct);
}

#define F struct cfg_forward
static const struct cfg__field pac_fields[] = {
    CFG__F_BOOL("enabled", F, pac),
    CFG__F_FN("file", set_pac_file),
    CFG__F_FN("proxy", set_pac_proxy),
    CFG__F_FN("direct", set_pac_direct),
};

static int set_pac(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__walk(ld, v, "pac", pac_fields, NFIELDS(pac_fields), obj);
}

/* ---- the mapping ---- */

static int set_cache(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    return cfg__cache_policy(ld, v, &((struct cfg_forward *)obj)->cache);
}

static const struct cfg__field forward_fields[] = {
    CFG__F_FN("allow", set_allow),
    CFG__F_FN("deny", set_deny),
    CFG__F_FN("connect_ports", set_connect_ports),
    CFG__F_FN("http_ports", set_http_ports),
    CFG__F_FN("allow_hosts", set_allow_hosts),
    CFG__F_FN("deny_hosts", set_deny_hosts),
    CFG__F_FN("deny_addresses", set_deny_addrs),
    CFG__F_BOOL("anonymous", F, anonymous),
    CFG__F_FN("auth", set_auth),
    CFG__F_FN("pac", set_pac),
    CFG__F_MS("connect_timeout", F, origin.connect_timeout, 1, CFG__DAY),
    CFG__F_MS("read_timeout", F, origin.read_timeout, 1, CFG__DAY),
    CFG__F_MS("send_timeout", F, origin.send_timeout, 1, CFG__DAY),
    CFG__F_MS("tunnel_idle_timeout", F, tunnel.read_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive", F, origin.keepalive, 0, 10000),
    CFG__F_MS("keepalive_timeout", F, origin.keepalive_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive_requests", F, origin.keepalive_requests, 1,
                1000000000),
    CFG__F_UINT("origins", F, max_origins, 1, 1000000),
    CFG__F_BOOL("splice", F, splice),
    CFG__F_FN("cache", set_cache),
};
#undef F

static const struct cfg_cidr default_allow[] = {
    V4(127, 0, 0, 0, 8, "loopback"),
    V6(0, 0, 1, 128, "loopback"),
};
static const struct cfg_cidr default_deny_addrs[] = {
    V4(169, 254, 0, 0, 16, "link-local"),
    V6(0xfe, 0x80, 0, 10, "link-local"),
};
static const struct cfg_ports default_connect_ports[] = { { 443, 443 } };
static const struct cfg_ports default_http_ports[] = { { 80, 80 },
                                                       { 1025, 65535 } };

static void forward_defaults(struct cfg_forward *f)
{
    memset(f, 0, sizeof(*f));
    f->allow = default_allow;
    f->nallow = ARRAY_LEN(default_allow);
    f->connect_ports = default_connect_ports;
    f->nconnect_ports = ARRAY_LEN(default_connect_ports);
    f->http_ports = default_http_ports;
    f->nhttp_ports = ARRAY_LEN(default_http_ports);
    f->deny_addrs = default_deny_addrs;
    f->ndeny_addrs = ARRAY_LEN(default_deny_addrs);
    f->splice = true;
    f->realm = "Gatehouse";
    f->pac = true;
    f->max_origins = 1024;
    f->origin = (struct cfg_upstream){
        .name = "forward",
        .balance = CFG_BAL_ROUND_ROBIN,
        .connect_timeout = 5 * CFG__SEC,
        .read_timeout = 60 * CFG__SEC,
        .send_timeout = 60 * CFG__SEC,
        .keepalive = 8,
        .keepalive_timeout = 30 * CFG__SEC,
        .keepalive_requests = 10000,
    };
    f->tunnel.read_timeout = 300 * CFG__SEC;
}

int cfg__forward(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_listener *l = obj;
    struct cfg_forward *f = cfg__alloc(ld, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    forward_defaults(f);
    int rc = cfg__walk(ld, v, "forward", forward_fields,
                       NFIELDS(forward_fields), f);
    if (rc != 0)
        return rc;
    cfg_ms idle = f->tunnel.read_timeout;
    f->tunnel = f->origin;
    f->tunnel.name = "forward-tunnel";
    f->tunnel.read_timeout = idle;
    f->tunnel.keepalive = 0; /* a tunnel's connection is never reused */
    l->forward = f;
    return 0;
}
