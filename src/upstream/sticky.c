/*
 * Sticky sessions: a cookie set by the proxy names the server, so a client
 * that holds a server-side session (a WAS's JSESSIONID) comes back to the
 * same server for as long as that server is usable.
 *
 * The cookie's value is a token derived from the pool's name and the
 * server's address (16 hex digits of a hash): stable across restarts,
 * reloads and every node of a cluster with the same configuration, and not
 * the address itself, which clients are never told. It is an identifier,
 * not a secret: a client may name any server of the pool, which is no more
 * than the balancer could give it anyway.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "http/h1.h"
#include "upstream/ups_int.h"

int ups__sticky_init(struct ups_shared *sh)
{
    const struct cfg_upstream *cu = sh->cu;
    const struct cfg_sticky *k = &cu->sticky;
    for (size_t i = 0; i < cu->nservers; i++) {
        struct ups_srv_sh *s = &sh->srv[i];
        char id[160];
        int n = snprintf(id, sizeof(id), "%s/%s", cu->name, s->ident);
        uint64_t h = ups__hash(id, (size_t)MAX(n, 0), 0x5eed);
        snprintf(s->token, sizeof(s->token), "%016llx", (unsigned long long)h);
        char age[40] = "";
        if (k->max_age > 0)
            snprintf(age, sizeof(age), "; Max-Age=%lld",
                     (long long)(k->max_age / 1000));
        size_t cap = strlen(k->cookie) + strlen(k->path) + 128;
        s->set_cookie = malloc(cap);
        if (s->set_cookie == NULL)
            return -ENOMEM;
        snprintf(s->set_cookie, cap, "Set-Cookie: %s=%s; Path=%s%s; HttpOnly\r\n",
                 k->cookie, s->token, k->path, age);
    }
    return 0;
}

void ups__sticky_free(struct ups_shared *sh)
{
    for (size_t i = 0; i < sh->cu->nservers; i++)
        FREE_NULL(sh->srv[i].set_cookie);
}

int ups__sticky_find(const struct ups_shared *sh, struct str val)
{
    if (val.len != 16)
        return -1;
    for (size_t i = 0; i < sh->cu->nservers; i++)
        if (memcmp(sh->srv[i].token, val.p, 16) == 0)
            return (int)i;
    return -1;
}

/* One "name=value" pair of a Cookie field (RFC 6265 §4.2.1), leniently:
 * pairs split on ';', blanks around them ignored, a quoted value
 * unquoted. */
static bool pair_is(struct str pair, struct str name, struct str *val)
{
    pair = str_trim(pair);
    if (pair.len <= name.len || memcmp(pair.p, name.p, name.len) != 0)
        return false;
    struct str rest = str_make(pair.p + name.len, pair.len - name.len);
    rest = str_trim(rest);
    if (rest.len == 0 || rest.p[0] != '=')
        return false;
    struct str v = str_trim(str_make(rest.p + 1, rest.len - 1));
    if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
        v = str_make(v.p + 1, v.len - 2);
    *val = v;
    return true;
}

bool ups__cookie(const struct h1_msg *m, struct str name, struct str *val)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (f->name.len != 6 || !str_ieq_lit(f->name, "cookie"))
            continue;
        const char *p = f->value.p, *end = p + f->value.len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            if (pair_is(str_make(p, (size_t)(stop - p)), name, val))
                return true;
            p = stop + 1;
        }
    }
    return false;
}

const char *ups_sticky_cookie(struct ups *u, const struct ups_key *k,
                              unsigned srv)
{
    if (u->cu->sticky.cookie == NULL || k->sticky == (int)srv)
        return NULL;
    return u->sh->srv[srv].set_cookie;
}
