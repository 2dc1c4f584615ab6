/*
 * Matching addresses, ports and host names against the lists of a forward
 * listener (docs/forward-proxy.md "Access control").
 *
 * An IPv4-mapped IPv6 address (::ffff:169.254.169.254) reaches the same
 * host as the IPv4 address inside it, so it is unwrapped before matching;
 * otherwise a deny list written in IPv4 could be walked around by writing
 * the destination in IPv6.
 */
#include <netinet/in.h>
#include <string.h>

#include "security/acl.h"

/* The address bytes of <sa> and their family, IPv4-mapped unwrapped. */
static const uint8_t *addr_of(const struct sockaddr *sa, int *family)
{
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        return (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)
            ->sin_addr;
    }
    if (sa->sa_family != AF_INET6)
        return NULL;
    const uint8_t *a =
        ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(a, mapped, 12) == 0) {
        *family = AF_INET;
        return a + 12;
    }
    *family = AF_INET6;
    return a;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == net[full];
}

const struct cfg_cidr *acl_cidr_find(const struct cfg_cidr *list, size_t n,
                                     const struct sockaddr *sa)
{
    int fam;
    const uint8_t *a = addr_of(sa, &fam);
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (list[i].family == fam && prefix_eq(a, list[i].addr, list[i].bits))
            return &list[i];
    return NULL;
}

bool acl_port_in(const struct cfg_ports *list, size_t n, unsigned port)
{
    for (size_t i = 0; i < n; i++)
        if (port >= list[i].lo && port <= list[i].hi)
            return true;
    return false;
}

const char *acl_host_find(const char *const *pats, size_t n, struct str host)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = pats[i];
        if (p[0] == '*') { /* "*.example.com": the ".example.com" suffix */
            size_t sl = strlen(p) - 1;
            if (host.len > sl && memcmp(host.p + host.len - sl, p + 1, sl) == 0)
                return p;
        } else if (str_eq(str_cstr(p), host)) {
            return p;
        }
    }
    return NULL;
}

bool acl_addr_reserved(const struct sockaddr *sa)
{
    int fam;
    const uint8_t *a = addr_of(sa, &fam);
    if (a == NULL)
        return true;
    if (fam == AF_INET)
        return a[0] == 0 || a[0] >= 224; /* 0/8, multicast, 240/4, broadcast */
    static const uint8_t any[16];
    return memcmp(a, any, 16) == 0 || a[0] == 0xff; /* ::, multicast */
}
