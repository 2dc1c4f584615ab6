/*
 * libFuzzer target: h1_chunked_scan. The input is a chunked body (and maybe
 * what follows it). It is decoded in one shot to another buffer, in one shot
 * in place, without an output buffer, and in random pieces each decoded in
 * place in its own heap copy: all must agree on the verdict, the bytes
 * consumed, the state and the decoded payload.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #c);                                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *copy(const uint8_t *d, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    if (n)
        memcpy(p, d, n);
    return p;
}

static uint32_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*s >> 33);
}

/* Decodes in pieces of 1..maxstep bytes and compares with the one shot. */
static void pieces(const uint8_t *d, size_t n, const struct h1_chunked *init,
                   ssize_t rc, const struct h1_chunked *ref, const char *out,
                   size_t outlen, uint64_t seed, unsigned maxstep)
{
    struct h1_chunked c = *init;
    char *acc = malloc(n ? n : 1);
    size_t acclen = 0, off = 0;
    bool err = false;

    CHECK(acc != NULL);
    while (off < n && c.state != H1_CH_DONE) {
        size_t step = 1 + next(&seed) % maxstep;
        if (step > n - off)
            step = n - off;
        char *piece = copy(d + off, step);
        size_t dl = (size_t)-1;
        ssize_t r = h1_chunked_scan(&c, piece, step, piece, &dl);
        if (r < 0) {
            CHECK(r == -EBADMSG);
            free(piece);
            err = true;
            break;
        }
        CHECK((size_t)r == step || c.state == H1_CH_DONE);
        CHECK(dl <= (size_t)r);
        memcpy(acc + acclen, piece, dl);
        acclen += dl;
        off += (size_t)r;
        free(piece);
    }
    if (rc < 0) {
        CHECK(err);
    } else {
        CHECK(!err);
        CHECK(off == (size_t)rc);
        CHECK(c.state == ref->state && c.remaining == ref->remaining);
        CHECK(acclen == outlen);
        CHECK(acclen == 0 || memcmp(acc, out, acclen) == 0);
    }
    free(acc);
}

static void one(const uint8_t *d, size_t n, const struct h1_chunked *init,
                uint64_t seed)
{
    /* to another buffer */
    struct h1_chunked c1 = *init;
    char *in = copy(d, n), *out = malloc(n ? n : 1);
    size_t ol = (size_t)-1;
    CHECK(out != NULL);
    ssize_t rc = h1_chunked_scan(&c1, in, n, out, &ol);
    CHECK(rc == -EBADMSG || (rc >= 0 && (size_t)rc <= n));
    if (rc >= 0) {
        CHECK((size_t)rc == n || c1.state == H1_CH_DONE);
        CHECK(ol <= (size_t)rc);
        CHECK(memcmp(in, d, n) == 0); /* the input is not changed */
    }

    /* in place */
    struct h1_chunked c2 = *init;
    char *buf = copy(d, n);
    size_t ol2 = (size_t)-1;
    ssize_t rc2 = h1_chunked_scan(&c2, buf, n, buf, &ol2);
    CHECK(rc2 == rc);
    if (rc >= 0) {
        CHECK(ol2 == ol && c2.state == c1.state);
        CHECK(ol == 0 || memcmp(buf, out, ol) == 0);
        CHECK(n == (size_t)rc || memcmp(buf + rc, d + rc, n - (size_t)rc) == 0);
    }

    /* counting only */
    struct h1_chunked c3 = *init;
    size_t ol3 = (size_t)-1;
    CHECK(h1_chunked_scan(&c3, in, n, NULL, &ol3) == rc);
    if (rc >= 0)
        CHECK(ol3 == ol && c3.state == c1.state);

    pieces(d, n, init, rc, &c1, out, rc >= 0 ? ol : 0, seed, 1);
    pieces(d, n, init, rc, &c1, out, rc >= 0 ? ol : 0, seed, 7);
    pieces(d, n, init, rc, &c1, out, rc >= 0 ? ol : 0, seed ^ 0x5bd1e995u, 200);

    /* once done, nothing more is taken */
    if (rc >= 0 && c1.state == H1_CH_DONE && (size_t)rc < n)
        CHECK(h1_chunked_scan(&c1, in + rc, n - (size_t)rc, NULL, NULL) == 0);
    free(in);
    free(out);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = 1469598103934665603u;
    for (size_t k = 0; k < size; k++)
        seed = (seed ^ data[k]) * 1099511628211u;

    struct h1_chunked c;
    h1_chunked_init(&c);
    one(data, size, &c, seed);
    c.max_line = 16;
    c.max_trailer = 48;
    one(data, size, &c, seed);
    return 0;
}
