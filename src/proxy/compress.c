/*
 * Compression of response bodies on the way to the client: gzip (zlib),
 * brotli and zstd, streaming with bounded buffers.
 *
 * The three libraries share one shape here (struct zstream, z_step): feed
 * some input, get some output into a bounded buffer, and say "flush" when
 * the input stalls (so a slow stream, a long poll or server-sent events
 * still reach the client as they come) or "finish" at the end. Nothing
 * holds a whole body: the input is the upstream's read buffer (or one block
 * of a file), the output one 16 KiB buffer (struct bodyout in bodyout.c).
 *
 * Whether a response is compressed (compress_decide) follows RFC 9110:
 * only a 200 whose media type is listed, at least min_size bytes when the
 * length is known, not already content-coded, without Cache-Control
 * no-transform (§7.7), and never for a request with Range (a 206 is about
 * the bytes of the identity representation). Every response that was a
 * candidate says Vary: Accept-Encoding, compressed or not, so a cache
 * between us and the client never hands gzip to a client that cannot read
 * it, nor identity to everyone.
 */
#include <brotli/encode.h>
#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/macros.h"
#include "http/negotiate.h"
#include "proxy/proxy_int.h"

_Static_assert(HTTP_ENC_GZIP == CFG_ENC_GZIP && HTTP_ENC_BR == CFG_ENC_BR &&
                   HTTP_ENC_ZSTD == CFG_ENC_ZSTD,
               "coding bits are shared by config and http");

struct zstream {
    unsigned enc;
    union {
        z_stream gz;
        BrotliEncoderState *br;
        ZSTD_CCtx *zs;
    } u;
    bool live;
};

static void z_free(void *arg)
{
    struct zstream *z = arg;
    if (!z->live)
        return;
    z->live = false;
    switch (z->enc) {
    case HTTP_ENC_GZIP:
        deflateEnd(&z->u.gz);
        break;
    case HTTP_ENC_BR:
        BrotliEncoderDestroyInstance(z->u.br);
        break;
    case HTTP_ENC_ZSTD:
        ZSTD_freeCCtx(z->u.zs);
        break;
    }
}

struct zstream *z_new(struct pool *p, unsigned enc, const struct cfg_compress *cz)
{
    struct zstream *z = pool_calloc(p, sizeof(*z));
    if (z == NULL || pool_on_destroy(p, z_free, z) < 0)
        return NULL;
    z->enc = enc;
    switch (enc) {
    case HTTP_ENC_GZIP:
        /* windowBits 15 + 16: a gzip wrapper; memLevel 8: ~256 KiB */
        if (deflateInit2(&z->u.gz, cz->gzip_level, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        break;
    case HTTP_ENC_BR:
        z->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (z->u.br == NULL)
            return NULL;
        /* a 512 KiB window, as common for on-the-fly brotli */
        BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_QUALITY, (uint32_t)cz->br_quality);
        BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_LGWIN, 19);
        break;
    case HTTP_ENC_ZSTD:
        z->u.zs = ZSTD_createCCtx();
        if (z->u.zs == NULL)
            return NULL;
        ZSTD_CCtx_setParameter(z->u.zs, ZSTD_c_compressionLevel, cz->zstd_level);
        /* 1 MiB window: well under the 8 MiB RFC 8878 asks HTTP decoders
         * to accept */
        ZSTD_CCtx_setParameter(z->u.zs, ZSTD_c_windowLog, 20);
        break;
    default:
        return NULL;
    }
    z->live = true;
    return z;
}

int z_step(struct zstream *z, enum z_op op, const char **in, size_t *inlen,
           char **out, size_t *room)
{
    switch (z->enc) {
    case HTTP_ENC_GZIP: {
        z_stream *s = &z->u.gz;
        s->next_in = (Bytef *)(uintptr_t)*in;
        s->avail_in = (uInt)MIN(*inlen, (size_t)UINT32_MAX);
        s->next_out = (Bytef *)*out;
        s->avail_out = (uInt)MIN(*room, (size_t)UINT32_MAX);
        int flush = op == ZOP_RUN ? Z_NO_FLUSH : op == ZOP_FLUSH ? Z_SYNC_FLUSH : Z_FINISH;
        int rc = deflate(s, flush);
        size_t used = (size_t)((const char *)s->next_in - *in);
        size_t made = (size_t)((char *)s->next_out - *out);
        *in += used;
        *inlen -= used;
        *out += made;
        *room -= made;
        if (rc == Z_STREAM_ERROR)
            return -EIO;
        if (op == ZOP_FINISH)
            return rc == Z_STREAM_END;
        return op == ZOP_FLUSH ? s->avail_out > 0 && *inlen == 0 : 1;
    }
    case HTTP_ENC_BR: {
        BrotliEncoderOperation bop = op == ZOP_RUN     ? BROTLI_OPERATION_PROCESS
                                     : op == ZOP_FLUSH ? BROTLI_OPERATION_FLUSH
                                                     : BROTLI_OPERATION_FINISH;
        const uint8_t *ni = (const uint8_t *)*in;
        uint8_t *no = (uint8_t *)*out;
        size_t ai = *inlen, ao = *room;
        if (!BrotliEncoderCompressStream(z->u.br, bop, &ai, &ni, &ao, &no, NULL))
            return -EIO;
        *in = (const char *)ni;
        *inlen = ai;
        *out = (char *)no;
        *room = ao;
        if (op == ZOP_FINISH)
            return BrotliEncoderIsFinished(z->u.br) ? 1 : 0;
        if (op == ZOP_FLUSH)
            return ai == 0 && !BrotliEncoderHasMoreOutput(z->u.br);
        return 1;
    }
    case HTTP_ENC_ZSTD: {
        ZSTD_inBuffer ib = { *in, *inlen, 0 };
        ZSTD_outBuffer ob = { *out, *room, 0 };
        ZSTD_EndDirective d = op == ZOP_RUN     ? ZSTD_e_continue
                              : op == ZOP_FLUSH ? ZSTD_e_flush
                                              : ZSTD_e_end;
        size_t left = ZSTD_compressStream2(z->u.zs, &ob, &ib, d);
        if (ZSTD_isError(left))
            return -EIO;
        *in += ib.pos;
        *inlen -= ib.pos;
        *out += ob.pos;
        *room -= ob.pos;
        if (op == ZOP_RUN)
            return 1;
        return left == 0 && *inlen == 0;
    }
    default:
        return -EINVAL;
    }
}

/* ---- the decision ---- */

/* True when a Content-Encoding other than identity is present. */
static bool already_encoded(const struct h1_msg *r)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const struct h1_field *f = &r->fields[i];
        if (str_ieq_lit(f->name, "content-encoding") &&
            !str_ieq_lit(str_trim(f->value), "identity") && f->value.len > 0)
            return true;
    }
    return false;
}

static bool no_transform(const struct h1_msg *r)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const struct h1_field *f = &r->fields[i];
        if (str_ieq_lit(f->name, "cache-control") &&
            h1_list_has(f->value, STR_LIT("no-transform")))
            return true;
    }
    return false;
}

bool compress_candidate(const struct txn *t, struct str ctype, bool has_len,
                        uint64_t len)
{
    const struct cfg_compress *cz = t->route != NULL ? t->route->compress : NULL;
    if (cz == NULL || t->status != 200)
        return false;
    if (has_len && (len == 0 || len < cz->min_size))
        return false;
    return ctype.len > 0 && http_type_match(ctype, cz->types, cz->ntypes);
}

int compress_start(struct txn *t, unsigned enc)
{
    struct bodyout *bo = bodyout_new(t);
    if (bo == NULL)
        return -ENOMEM;
    bo->z = z_new(t->pool, enc, t->route->compress);
    if (bo->z == NULL)
        return -ENOMEM;
    t->zenc = enc;
    if (!bo->chunked)
        t->keepalive = false; /* HTTP/1.0: the end is the close */
    return 0;
}

int compress_decide(struct txn *t, const struct h1_msg *r, enum h1_body kind)
{
    if (t->route == NULL || t->route->compress == NULL || kind == H1_B_NONE ||
        t->upgrade)
        return 0;
    const struct h1_field *ct = h1_find(r, STR_LIT("content-type"));
    bool has_len = (r->flags & (H1_HAS_CL | H1_HAS_TE)) == H1_HAS_CL;
    if (!compress_candidate(t, ct ? ct->value : STR_NULL, has_len,
                            r->content_length))
        return 0;
    if (already_encoded(r) || no_transform(r))
        return 0;
    t->zvary = true;
    /* HTTP/2 streams pull their body straight from the upstream buffer
     * (txn_pull): no compressor sits on that path yet */
    if (t->has_range || t->req.meth == H1_M_HEAD || t->h2 != NULL)
        return 0;
    unsigned enc = http_pick_encoding(t->accept_enc, t->route->compress->encodings);
    if (enc == 0)
        return 0;
    return compress_start(t, enc);
}
