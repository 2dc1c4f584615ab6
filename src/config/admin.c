/*
 * The "admin" section (the operator's listener: metrics, status, health,
 * dashboard) and address blocks (CIDR) for its allow list.
 *
 * The admin listener is on only when the section is present: two gatehouse
 * processes on one host (a test run beside a service, a binary upgrade)
 * would otherwise fight over 127.0.0.1:9090, and an operator endpoint that
 * appears without being asked for is a surprise in a DMZ. Its allow list
 * defaults to loopback, so "admin: {}" is safe as written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

int cfg_parse_cidr(struct str s, struct cfg_cidr *out)
{
    char buf[64];
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash ? (size_t)(slash - s.p) : s.len;
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s.p, alen);
    buf[alen] = '\0';
    char *a = buf;
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a[alen - 1] = '\0';
        a++;
    }
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, a, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, a, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    out->bits = max;
    if (slash != NULL) {
        uint64_t bits;
        struct str b = str_make(slash + 1, s.len - alen - 1);
        if (!cfg__num(b, 0, max, &bits))
            return -EINVAL;
        out->bits = (unsigned)bits;
    }
    /* host bits must be zero: 10.1.2.3/8 is most likely a typo */
    for (unsigned i = out->bits; i < max; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return -EINVAL;
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    unsigned rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool cfg_cidr_match(const struct cfg_cidr *list, size_t n,
                    const struct sockaddr *sa)
{
    const uint8_t *ip;
    int fam = sa->sa_family;
    if (fam == AF_INET) {
        ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (fam == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        ip = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            fam = AF_INET;
            ip += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == fam && prefix_eq(list[i].addr, ip, list[i].bits))
            return true;
    return false;
}

static int set_admin_listen(struct cfg__ld *ld, const struct cfg__node *v,
                            void *obj)
{
    return cfg__addr(ld, v, &((struct cfg_admin *)obj)->addr);
}

static int set_admin_allow(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    struct cfg_admin *a = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    a->allow = cfg__array(ld, v->n ? v->n : 1, sizeof(*a->allow));
    if (a->allow == NULL)
        return -ENOMEM;
    a->nallow = 0;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        if (it->type != CFG_N_SCALAR ||
            cfg_parse_cidr(it->val, &a->allow[a->nallow]) != 0)
            return cfg__fail(ld, it, "\"allow\": expected an address or an "
                                     "address block such as 10.0.0.0/8 or "
                                     "::1/128 (host bits zero)");
        a->nallow++;
    }
    return 0;
}

static const struct cfg__field admin_fields[] = {
    CFG__F_FN("listen", set_admin_listen),
    CFG__F_FN("allow", set_admin_allow),
    CFG__F_BOOL("proxy_protocol", struct cfg_admin, proxy_protocol),
};

int cfg__admin(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    struct cfg_admin *a = &c->admin;
    static const char *const loopback[] = { "127.0.0.0/8", "::1" };

    a->enabled = true;
    int rc = cfg__walk(ld, v, "admin", admin_fields, NFIELDS(admin_fields), a);
    if (rc != 0)
        return rc;
    if (a->addr.len == 0 &&
        cfg__parse_addr(STR_LIT("127.0.0.1:9090"), &a->addr, NULL, 0) != 0)
        return cfg__fail(ld, v, "cannot use the default admin address");
    if (a->allow == NULL) {
        a->allow = cfg__array(ld, NFIELDS(loopback), sizeof(*a->allow));
        if (a->allow == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < NFIELDS(loopback); i++)
            cfg_parse_cidr(str_cstr(loopback[i]), &a->allow[a->nallow++]);
    }
    return 0;
}

int cfg__admin_check(struct cfg__ld *ld, const struct cfg__node *root)
{
    const struct cfg *c = ld->c;
    if (!c->admin.enabled)
        return 0;
    const struct cfg__node *v = cfg__map_get(root, "admin");
    const struct cfg__node *at = cfg__map_get(v, "listen");
    for (size_t i = 0; i < c->nlisteners; i++)
        if (cfg__addr_eq(&c->listeners[i].addr, &c->admin.addr))
            return cfg__fail(ld, at != NULL ? at : v,
                             "admin address %s is also a listener's",
                             c->admin.addr.text);
    return 0;
}
