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

/* The table of the pool of the same name in <prev>, when it has one made
 * with the same settings. */
static struct sticktab *prev_table(const struct ups_shared *sh,
                                   const struct ups_state *prev)
{
    const struct cfg_sticky *k = &sh->cu->sticky;
    for (size_t i = 0; prev != NULL && i < prev->n; i++) {
        const struct ups_shared *ps = &prev->ups[i];
        if (strcmp(ps->cu->name, sh->cu->name) != 0 || ps->stick == NULL)
            continue;
        if (ps->cu->sticky.by == k->by && sticktab_same(ps->stick, k->size, k->expire) &&
            (k->learn == NULL || strcmp(k->learn, ps->cu->sticky.learn) == 0))
            return sticktab_ref(ps->stick);
    }
    return NULL;
}

static int table_init(struct ups_shared *sh, const struct ups_state *prev)
{
    const struct cfg_upstream *cu = sh->cu;
    const struct cfg_sticky *k = &cu->sticky;
    char ns[160];
    int n = snprintf(ns, sizeof(ns), "%s/%s", cu->name,
                     k->by == CFG_STICK_SOURCE ? "source" : k->learn);
    sh->stick_ns = ups__hash(ns, (size_t)MAX(n, 0), 0x57c4);
    sh->stick = prev_table(sh, prev);
    if (sh->stick == NULL)
        sh->stick = sticktab_new(k->size, k->expire);
    return sh->stick != NULL ? 0 : -ENOMEM;
}

int ups__sticky_init(struct ups_shared *sh, const struct ups_state *prev)
{
    const struct cfg_upstream *cu = sh->cu;
    const struct cfg_sticky *k = &cu->sticky;
    for (size_t i = 0; i < cu->nservers; i++) {
        struct ups_srv_sh *s = &sh->srv[i];
        char id[160];
        int n = snprintf(id, sizeof(id), "%s/%s", cu->name, s->ident);
        uint64_t h = ups__hash(id, (size_t)MAX(n, 0), 0x5eed);
        s->tok = h != 0 ? h : 1; /* 0 means "none" in a ups_key */
        snprintf(s->token, sizeof(s->token), "%016llx", (unsigned long long)h);
        if (k->cookie == NULL)
            continue;
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
    if (k->cookie == NULL && (k->learn != NULL || k->by == CFG_STICK_SOURCE))
        return table_init(sh, prev);
    return 0;
}

void ups__sticky_free(struct ups_shared *sh)
{
    for (size_t i = 0; i < sh->cu->nservers; i++)
        FREE_NULL(sh->srv[i].set_cookie);
    sticktab_unref(sh->stick);
    sh->stick = NULL;
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

/* ---- the stick table ---- */

/* The server whose number token is <tok>, or -1. */
static int find_tok(const struct ups_shared *sh, uint64_t tok)
{
    for (size_t i = 0; i < sh->cu->nservers; i++)
        if (sh->srv[i].tok == tok)
            return (int)i;
    return -1;
}

static uint64_t value_key(const struct ups_shared *sh, struct str v)
{
    return ups__hash(v.p, v.len, sh->stick_ns);
}

bool ups_stick_table(const struct ups *u)
{
    return u->sh->stick != NULL;
}

void ups__stick_prepare(struct ups *u, const struct ups_req *r,
                        uint64_t client, struct ups_key *k)
{
    const struct ups_shared *sh = u->sh;
    if (sh->cu->sticky.by == CFG_STICK_SOURCE) {
        if (r->client == NULL)
            return;
        k->skey = client ^ sh->stick_ns;
    } else {
        struct str v;
        if (r->msg == NULL ||
            !ups__cookie(r->msg, str_cstr(sh->cu->sticky.learn), &v) || v.len == 0)
            return;
        k->skey = value_key(sh, v);
    }
    k->has_skey = true;
    uint64_t tok;
    if (!sticktab_get(sh->stick, k->skey, loop_now(u->loop), &tok))
        return;
    k->sticky = find_tok(sh, tok); /* -1: that server was removed */
    if (k->sticky >= 0)
        k->stok = tok;
}

struct str ups_stick_rkey(const struct ups *u, uint64_t key, char *buf)
{
    snprintf(buf, UPS_STICK_KEYLEN + 1,
             "s:%016llx%016llx", (unsigned long long)u->sh->stick_ns,
             (unsigned long long)key);
    return str_make(buf, UPS_STICK_KEYLEN);
}

struct str ups_stick_token(const struct ups *u, unsigned srv)
{
    return str_make(u->sh->srv[srv].token, 16);
}

void ups_stick_told(struct ups *u, struct ups_key *k, struct str tok)
{
    int srv = tok.p != NULL ? ups__sticky_find(u->sh, tok) : -1;
    if (srv < 0) {
        k->stok = 0; /* what the request learns goes to the cluster */
        return;
    }
    k->sticky = srv;
    k->stok = u->sh->srv[srv].tok;
    sticktab_put(u->sh->stick, k->skey, k->stok, loop_now(u->loop));
}

/* The value of the first Set-Cookie of <m> that sets cookie <name> (not
 * one that deletes it: an empty value). */
static bool set_cookie(const struct h1_msg *m, struct str name, struct str *val)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const struct h1_field *f = &m->fields[i];
        if (f->name.len != 10 || !str_ieq_lit(f->name, "set-cookie"))
            continue;
        const char *semi = memchr(f->value.p, ';', f->value.len);
        size_t n = semi != NULL ? (size_t)(semi - f->value.p) : f->value.len;
        if (pair_is(str_make(f->value.p, n), name, val) && val->len > 0)
            return true;
    }
    return false;
}

size_t ups_stick_learn(struct ups *u, const struct ups_key *k, unsigned srv,
                       const struct h1_msg *resp, uint64_t out[2])
{
    struct ups_shared *sh = u->sh;
    if (sh->stick == NULL)
        return 0;
    uint64_t tok = sh->srv[srv].tok;
    int64_t now = loop_now(u->loop);
    size_t n = 0;
    if (k->has_skey && k->stok != tok) {
        sticktab_put(sh->stick, k->skey, tok, now);
        out[n++] = k->skey;
    }
    struct str v;
    if (sh->cu->sticky.by == CFG_STICK_LEARN && resp != NULL &&
        set_cookie(resp, str_cstr(sh->cu->sticky.learn), &v)) {
        uint64_t key = value_key(sh, v);
        if (!k->has_skey || key != k->skey) {
            sticktab_put(sh->stick, key, tok, now);
            out[n++] = key;
        }
    }
    return n;
}
