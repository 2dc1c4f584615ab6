/*
 * Keys of the limit tables, and the keyed hash that places them.
 *
 * The tables are indexed by SipHash-2-4 under a secret drawn at start-up,
 * so a client cannot choose addresses or user names that pile into one set
 * of the table (hash flooding) to evict other clients' buckets.
 *
 * IPv6 clients are counted by /64: a single subscriber usually gets a whole
 * /64, and counting each of its 2^64 addresses apart would make every
 * per-address limit meaningless.
 */
#include <netinet/in.h>
#include <string.h>

#include "security/security.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian hosts only matter for reproducibility */
}

/* SipHash-2-4 (Aumasson and Bernstein) of <len> bytes at <in>. */
static uint64_t siphash(const uint8_t *in, size_t len, const uint64_t seed[2])
{
    uint64_t v0 = 0x736f6d6570736575ull ^ seed[0];
    uint64_t v1 = 0x646f72616e646f6dull ^ seed[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ seed[0];
    uint64_t v3 = 0x7465646279746573ull ^ seed[1];
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t sec_hash(const struct sec_key *k, const uint64_t seed[2])
{
    _Static_assert(sizeof(struct sec_key) == 24, "sec_key is hashed whole");
    return siphash((const uint8_t *)k, sizeof(*k), seed);
}

void sec_key_addr(struct sec_key *k, uint32_t rule, const struct sockaddr *sa)
{
    memset(k, 0, sizeof(*k));
    k->rule = rule;
    k->kind = CFG_RATE_ADDRESS;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(k->data, &in->sin_addr, 4);
        return;
    }
    if (sa->sa_family != AF_INET6)
        return;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        memcpy(k->data, &a->s6_addr[12], 4);
        return;
    }
    k->data[15] = 6; /* never equal to an IPv4 key */
    memcpy(k->data + 4, a->s6_addr, 8);
}

void sec_key_user(struct sec_key *k, uint32_t rule, struct str name)
{
    /* fixed seeds: the names are hashed into the key itself, which the
     * table then hashes under its secret */
    static const uint64_t s1[2] = { 0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull };
    static const uint64_t s2[2] = { 0x94d049bb133111ebull, 0x2545f4914f6cdd1dull };
    memset(k, 0, sizeof(*k));
    k->rule = rule;
    k->kind = CFG_RATE_USER;
    uint64_t h1 = siphash((const uint8_t *)name.p, name.len, s1);
    uint64_t h2 = siphash((const uint8_t *)name.p, name.len, s2);
    memcpy(k->data, &h1, 8);
    memcpy(k->data + 8, &h2, 8);
}

void sec_key_route(struct sec_key *k, uint32_t rule)
{
    memset(k, 0, sizeof(*k));
    k->rule = rule;
    k->kind = CFG_RATE_ROUTE;
}
