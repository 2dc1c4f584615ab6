/*
 * What the head fuzzers (fuzz_h1_request.c, fuzz_h1_response.c) share: the
 * invariants every parse result must hold, and the split check: the same
 * bytes fed in growing prefixes, each from a fresh heap copy of exactly the
 * bytes received so far (so ASan sees any read past them and any use of an
 * old buffer), must give the one-shot verdict and the same views.
 */
#ifndef GH_FUZZ_H1_H
#define GH_FUZZ_H1_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

#define FZ_NF 64

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #c);                                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

typedef int fz_parse_fn(const char *, size_t, struct h1_msg *,
                        const struct h1_limits *);

static const struct h1_limits fz_lims[] = {
    { .max_head = 8192, .max_fields = FZ_NF, .max_target = 4096 },
    { .max_head = 80, .max_fields = 4, .max_target = 24 },
};

static inline uint64_t fz_hash(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t k = 0; k < n; k++)
        h = (h ^ d[k]) * 1099511628211u;
    return h;
}

static inline uint32_t fz_next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*s >> 33);
}

static inline char *fz_copy(const uint8_t *d, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    if (n)
        memcpy(p, d, n);
    return p;
}

/* Offset of <v> in buf[0..n], -1 outside it (the static "/"), -2 NULL. */
static inline long fz_off(struct str v, const char *buf, size_t n)
{
    uintptr_t p = (uintptr_t)v.p, b = (uintptr_t)buf;
    if (v.p == NULL)
        return -2;
    if (p < b || p + v.len > b + n)
        return -1;
    return (long)(p - b);
}

static inline void fz_same_view(struct str a, const char *ab, struct str b,
                                const char *bb, size_t n)
{
    CHECK(a.len == b.len);
    CHECK(fz_off(a, ab, n) == fz_off(b, bb, n));
    CHECK(a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline void fz_same(const struct h1_msg *a, const char *ab,
                           const struct h1_msg *b, const char *bb, size_t n,
                           int rc)
{
    if (rc == -EBADMSG) {
        CHECK(a->err_status == b->err_status);
        CHECK(strcmp(a->err_reason, b->err_reason) == 0);
    }
    if (rc <= 0)
        return;
    CHECK(a->meth == b->meth && a->form == b->form);
    CHECK(a->status == b->status && a->version == b->version);
    CHECK(a->nfields == b->nfields && a->flags == b->flags);
    CHECK(a->body == b->body && a->content_length == b->content_length);
    CHECK(a->head_len == b->head_len);
    fz_same_view(a->method, ab, b->method, bb, n);
    fz_same_view(a->target, ab, b->target, bb, n);
    fz_same_view(a->scheme, ab, b->scheme, bb, n);
    fz_same_view(a->authority, ab, b->authority, bb, n);
    fz_same_view(a->path, ab, b->path, bb, n);
    fz_same_view(a->reason, ab, b->reason, bb, n);
    fz_same_view(a->host, ab, b->host, bb, n);
    for (size_t k = 0; k < a->nfields; k++) {
        fz_same_view(a->fields[k].name, ab, b->fields[k].name, bb, n);
        fz_same_view(a->fields[k].value, ab, b->fields[k].value, bb, n);
    }
}

static inline void fz_in_head(struct str v, const char *buf, size_t hlen)
{
    if (v.len == 0)
        return;
    CHECK(fz_off(v, buf, hlen) >= 0);
}

/* The invariants of one result. */
static inline void fz_check(const struct h1_msg *m, const char *buf, size_t n,
                            int rc, const struct h1_limits *lim, bool req)
{
    CHECK(rc == -EAGAIN || rc == -EBADMSG || (rc > 0 && (size_t)rc <= n));
    if (rc == -EBADMSG) {
        CHECK(m->err_reason != NULL);
        CHECK(m->err_status == 400 || m->err_status == 431 ||
              m->err_status == 505 ||
              (req && (m->err_status == 414 || m->err_status == 501)));
        return;
    }
    if (rc < 0)
        return;
    size_t h = (size_t)rc;
    CHECK(m->head_len == h && h >= 4);
    CHECK(memcmp(buf + h - 4, "\r\n\r\n", 4) == 0);
    CHECK(h <= lim->max_head);
    CHECK(m->version == 10 || m->version == 11);
    CHECK(m->nfields <= lim->max_fields);
    for (size_t k = 0; k < m->nfields; k++) {
        struct str nm = m->fields[k].name, v = m->fields[k].value;
        CHECK(nm.len > 0);
        fz_in_head(nm, buf, h);
        fz_in_head(v, buf, h);
        for (size_t j = 0; j < nm.len; j++)
            CHECK(nm.p[j] > 0x20 && nm.p[j] < 0x7f && nm.p[j] != ':');
        for (size_t j = 0; j < v.len; j++)
            CHECK(v.p[j] == '\t' ||
                  ((unsigned char)v.p[j] >= 0x20 && v.p[j] != 0x7f));
        CHECK(v.len == 0 || (v.p[0] != ' ' && v.p[0] != '\t' &&
                             v.p[v.len - 1] != ' ' && v.p[v.len - 1] != '\t'));
    }
    CHECK(m->body != H1_B_CHUNKED || (m->flags & H1_HAS_TE));
    CHECK(m->body != H1_B_LENGTH || (m->flags & H1_HAS_CL));
    CHECK(m->body != H1_B_LENGTH || !(m->flags & H1_HAS_TE));
    CHECK(!(m->flags & H1_HAS_CL) || m->content_length <= INT64_MAX);
    if (req) {
        CHECK(m->body != H1_B_EOF);
        CHECK(!(m->flags & H1_HAS_TE) || m->body == H1_B_CHUNKED);
        CHECK(!((m->flags & H1_HAS_TE) && (m->flags & H1_HAS_CL)));
        CHECK(m->version == 10 || (m->flags & H1_HAS_HOST));
        CHECK(m->method.len > 0 && m->target.len > 0);
        CHECK(m->target.len <= lim->max_target);
        fz_in_head(m->method, buf, h);
        fz_in_head(m->target, buf, h);
        fz_in_head(m->host, buf, h);
        CHECK((m->form == H1_F_AUTHORITY) == (m->meth == H1_M_CONNECT));
        CHECK(m->form != H1_F_ASTERISK || m->meth == H1_M_OPTIONS);
        CHECK(m->form != H1_F_ORIGIN || m->target.p[0] == '/');
        CHECK(m->form != H1_F_ABSOLUTE ||
              (m->scheme.len > 0 && m->authority.len > 0 && m->path.len > 0));
        CHECK(memchr(m->target.p, '#', m->target.len) == NULL);
    } else {
        CHECK(m->status >= 100 && m->status <= 999);
        CHECK(m->body != H1_B_NONE);
        fz_in_head(m->reason, buf, h);
    }
}

/* Feeds d[0..n) in growing prefixes with steps of 1..maxstep bytes. */
static inline void fz_split(fz_parse_fn *fn, const uint8_t *d, size_t n,
                            const struct h1_limits *lim,
                            const struct h1_msg *ref, const char *refbuf,
                            int rc, uint64_t seed, unsigned maxstep)
{
    struct h1_field f[FZ_NF];
    struct h1_msg m;
    size_t k = 0;

    h1_msg_init(&m, f, FZ_NF);
    do {
        k += 1 + fz_next(&seed) % maxstep;
        if (k > n)
            k = n;
        char *buf = fz_copy(d, k);
        int r = fn(buf, k, &m, lim);
        if (r == -EAGAIN && k < n) {
            free(buf);
            continue;
        }
        CHECK(r == rc);
        CHECK(r <= 0 || (size_t)r <= k);
        fz_same(ref, refbuf, &m, buf, n, rc);
        free(buf);
        return;
    } while (k < n);
}

/* A prefix judged alone: undecided, or decided as the whole. */
static inline void fz_prefix(fz_parse_fn *fn, const uint8_t *d, size_t k,
                             const struct h1_limits *lim,
                             const struct h1_msg *ref, const char *refbuf,
                             size_t n, int rc)
{
    struct h1_field f[FZ_NF];
    struct h1_msg m;
    char *buf = fz_copy(d, k);

    h1_msg_init(&m, f, FZ_NF);
    int r = fn(buf, k, &m, lim);
    CHECK(r == -EAGAIN || r == rc);
    CHECK(r <= 0 || (size_t)r <= k);
    if (r != -EAGAIN)
        fz_same(ref, refbuf, &m, buf, n, rc);
    free(buf);
}

/* Everything for one input and one parser. */
static inline void fz_head(fz_parse_fn *fn, bool req, const uint8_t *d,
                           size_t n)
{
    uint64_t seed = fz_hash(d, n);

    for (size_t l = 0; l < sizeof(fz_lims) / sizeof(fz_lims[0]); l++) {
        const struct h1_limits *lim = &fz_lims[l];
        struct h1_field f[FZ_NF], f2[3];
        struct h1_msg m, m2;
        char *buf = fz_copy(d, n);

        h1_msg_init(&m, f, FZ_NF);
        int rc = fn(buf, n, &m, lim);
        fz_check(&m, buf, n, rc, lim, req);

        /* again on the same message: the same verdict */
        m2 = m;
        CHECK(fn(buf, n, &m2, lim) == rc);
        fz_same(&m, buf, &m2, buf, n, rc);

        /* a smaller fields array is a limit like max_fields */
        h1_msg_init(&m2, f2, 3);
        int rc2 = fn(buf, n, &m2, lim);
        if (rc > 0 && m.nfields <= 3)
            CHECK(rc2 == rc);
        else if (rc > 0)
            CHECK(rc2 == -EBADMSG && m2.err_status == 431);
        else if (rc == -EAGAIN)
            CHECK(rc2 == -EAGAIN);
        else
            CHECK(rc2 == -EBADMSG);

        fz_split(fn, d, n, lim, &m, buf, rc, seed, 1);
        fz_split(fn, d, n, lim, &m, buf, rc, seed, 17);
        fz_split(fn, d, n, lim, &m, buf, rc, seed ^ 0x9e3779b9u, 300);
        for (int k = 0; k < 6 && n > 0; k++)
            fz_prefix(fn, d, 1 + fz_next(&seed) % n, lim, &m, buf, n, rc);

        if (rc > 0) {
            (void)h1_keepalive(&m);
            const struct h1_field *c = h1_find(&m, STR_LIT("connection"));
            if (c != NULL && h1_list_has(c->value, STR_LIT("close")))
                CHECK(m.flags & H1_CONN_CLOSE);
            if (!req)
                for (int meth = H1_M_OTHER; meth <= H1_M_PURGE; meth++) {
                    enum h1_body b = h1_response_body(&m, (enum h1_method)meth);
                    CHECK(b == H1_B_NONE || b == m.body);
                }
        }
        free(buf);
    }
}

#endif
