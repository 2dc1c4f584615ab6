/*
 * Basic proxy authentication against htpasswd users (see auth.h).
 *
 * Two costs shape this file. A password hash worth storing is slow by
 * design (bcrypt at cost 10 is about 50 ms of CPU), and a worker that
 * spends 50 ms on every request serves 20 requests a second; so credentials
 * that passed are remembered for CRED_TTL, keyed by the exact
 * Proxy-Authorization token, and compared in constant time (a cache probed
 * with early-exit memcmp would leak a valid token byte by byte). And a
 * guesser is cheap: each client address that fails gets a growing wait
 * (FAIL_FREE failures free, then 0.5 s doubling to 5 s) during which its
 * credentials are not even looked at, so guesses from one address are
 * bounded by the wait whatever the number of connections it opens.
 *
 * Both tables are small, direct-mapped and per worker: a collision just
 * forgets an entry.
 */
#include <crypt.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "security/auth.h"

#define CRED_SLOTS 128
#define CRED_TTL (5 * 60 * 1000)
#define MAX_TOKEN 256
#define MAX_USER 64
#define MAX_HASH 160
#define FAIL_SLOTS 1024
#define FAIL_FREE 3
#define FAIL_FORGET (10 * 60 * 1000)
#define FAIL_MAX_WAIT 5000

struct cred {
    int64_t expires;
    uint16_t tlen;
    char token[MAX_TOKEN];
    char user[MAX_USER];
    char hash[MAX_HASH];
};

struct fail {
    uint8_t family;
    uint8_t addr[16];
    unsigned fails;
    int64_t last, until;
};

struct auth {
    struct crypt_data cd;
    struct cred cred[CRED_SLOTS];
    struct fail fail[FAIL_SLOTS];
};

struct auth *auth_new(void)
{
    return calloc(1, sizeof(struct auth));
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    explicit_bzero(a, sizeof(*a));
    free(a);
}

static uint32_t fnv(const void *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 16777619u;
    return h;
}

/* Constant time in the length of <b>, whatever bytes differ. */
static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    for (size_t i = 0; i < blen; i++)
        d |= (unsigned char)(a[i % (alen ? alen : 1)] ^ b[i]);
    return d == 0;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int auth_b64decode(struct str in, unsigned char *out, size_t outlen)
{
    size_t n = in.len, o = 0;
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in.p[i + (size_t)k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[k] = b64val(c)) < 0)
                return -1;
        }
        /* canonical only: the bits padding drops must be zero, so one
         * string of credentials has one encoding */
        if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0))
            return -1;
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t take = 3 - (size_t)pad;
        if (o + take > outlen)
            return -1;
        out[o++] = (unsigned char)(w >> 16);
        if (take > 1)
            out[o++] = (unsigned char)(w >> 8);
        if (take > 2)
            out[o++] = (unsigned char)w;
    }
    return (int)o;
}

static int cmp_user(const void *key, const void *elem)
{
    return strcmp(key, ((const struct cfg_htuser *)elem)->user);
}

/* crypt_rn() of <pass> with <hash>'s setting equals <hash>. */
static bool verify(struct auth *a, const char *pass, const char *hash)
{
    const char *out = crypt_rn(pass, hash, &a->cd, sizeof(a->cd));
    bool ok = out != NULL && out[0] != '*' &&
              same_bytes(out, strlen(out), hash, strlen(hash));
    explicit_bzero(&a->cd, sizeof(a->cd));
    return ok;
}

static struct cred *cred_slot(struct auth *a, struct str token)
{
    return &a->cred[fnv(token.p, token.len) % CRED_SLOTS];
}

/* A remembered token whose user still has the same hash in <f>. */
static const struct cfg_htuser *cached(struct auth *a,
                                       const struct cfg_forward *f,
                                       struct str token, int64_t now)
{
    struct cred *c = cred_slot(a, token);
    if (c->expires <= now || !same_bytes(c->token, c->tlen, token.p, token.len))
        return NULL;
    const struct cfg_htuser *u = bsearch(c->user, f->users, f->nusers,
                                         sizeof(*f->users), cmp_user);
    if (u == NULL || strcmp(u->hash, c->hash) != 0)
        return NULL; /* user gone or password changed by a reload */
    return u;
}

static void remember(struct auth *a, struct str token,
                     const struct cfg_htuser *u, int64_t now)
{
    if (token.len > MAX_TOKEN || strlen(u->user) >= MAX_USER ||
        strlen(u->hash) >= MAX_HASH)
        return;
    struct cred *c = cred_slot(a, token);
    memcpy(c->token, token.p, token.len);
    c->tlen = (uint16_t)token.len;
    memcpy(c->user, u->user, strlen(u->user) + 1);
    memcpy(c->hash, u->hash, strlen(u->hash) + 1);
    c->expires = now + CRED_TTL;
}

enum auth_result auth_check(struct auth *a, const struct cfg_forward *f,
                            struct str value, int64_t now, const char **user)
{
    if (value.p == NULL)
        return AUTH_MISSING;
    struct str v = str_trim(value);
    if (v.len < 6 || !str_ieq(str_make(v.p, 6), STR_LIT("basic ")))
        return AUTH_MALFORMED;
    struct str token = str_trim(str_make(v.p + 6, v.len - 6));
    if (token.len == 0 || token.len > 1024)
        return AUTH_MALFORMED;
    const struct cfg_htuser *u = cached(a, f, token, now);
    if (u != NULL) {
        *user = u->user;
        return AUTH_OK;
    }
    unsigned char dec[770];
    int n = auth_b64decode(token, dec, sizeof(dec) - 1);
    if (n < 0 || memchr(dec, '\0', (size_t)n) != NULL)
        return AUTH_MALFORMED;
    dec[n] = '\0';
    char *colon = memchr(dec, ':', (size_t)n);
    if (colon == NULL) {
        explicit_bzero(dec, sizeof(dec));
        return AUTH_MALFORMED;
    }
    *colon = '\0';
    const char *pass = colon + 1;
    u = bsearch(dec, f->users, f->nusers, sizeof(*f->users), cmp_user);
    /* an unknown user costs a hash too, so timing does not tell which
     * user names exist */
    bool ok = verify(a, pass, u != NULL ? u->hash : f->users[0].hash) &&
              u != NULL;
    explicit_bzero(dec, sizeof(dec));
    if (!ok)
        return AUTH_FAILED;
    remember(a, token, u, now);
    *user = u->user;
    return AUTH_OK;
}

/* ---- failures ---- */

/* The slot of <sa>'s address; *match says whether it holds that address.
 * With <claim>, a slot holding another address is taken over. */
static struct fail *fail_slot(struct auth *a, const struct sockaddr *sa,
                              bool claim, bool *match)
{
    const uint8_t *p;
    size_t len;
    if (sa->sa_family == AF_INET) {
        p = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)
                ->sin_addr;
        len = 4;
    } else {
        p = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        len = 16;
    }
    struct fail *f = &a->fail[fnv(p, len) % FAIL_SLOTS];
    *match = f->family == sa->sa_family && memcmp(f->addr, p, len) == 0;
    if (!*match && claim) {
        memset(f, 0, sizeof(*f));
        f->family = (uint8_t)sa->sa_family;
        memcpy(f->addr, p, len);
    }
    return f;
}

int64_t auth_wait(struct auth *a, const struct sockaddr *sa, int64_t now)
{
    bool match;
    struct fail *f = fail_slot(a, sa, false, &match);
    if (!match || f->until <= now)
        return 0;
    return f->until - now;
}

int64_t auth_failed(struct auth *a, const struct sockaddr *sa, int64_t now)
{
    bool match;
    struct fail *f = fail_slot(a, sa, true, &match);
    if (now - f->last > FAIL_FORGET)
        f->fails = 0;
    f->fails++;
    f->last = now;
    int64_t wait = 0;
    if (f->fails > FAIL_FREE) {
        unsigned k = MIN(f->fails - FAIL_FREE, 5u);
        wait = MIN((int64_t)250 << k, (int64_t)FAIL_MAX_WAIT);
    }
    f->until = now + wait;
    return wait;
}

void auth_passed(struct auth *a, const struct sockaddr *sa)
{
    bool match;
    struct fail *f = fail_slot(a, sa, false, &match);
    if (match) {
        f->fails = 0;
        f->until = 0;
    }
}
