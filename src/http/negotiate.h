/*
 * Field values a web server reads and writes: content coding negotiation
 * (Accept-Encoding, RFC 9110 §12.5.3), HTTP-dates (§5.6.7), entity tags
 * (§8.8.3, §13.1), byte ranges (§14) and media type lists. Pure: views in,
 * values out, no I/O, no allocation.
 */
#ifndef GH_HTTP_NEGOTIATE_H
#define GH_HTTP_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* Content codings, as bits (the same values as CFG_ENC_*). */
#define HTTP_ENC_GZIP 1u
#define HTTP_ENC_BR 2u
#define HTTP_ENC_ZSTD 4u

/* Picks the coding for a response from the codings in <allowed> (a mask of
 * HTTP_ENC_*), given the request's Accept-Encoding value <ae> (the fields
 * joined by ", ", or an empty view when absent). The highest q wins; on a
 * tie the server's preference br > zstd > gzip. "x-gzip" counts as gzip,
 * "*" covers codings not named, q=0 refuses. Returns one HTTP_ENC_* bit, or
 * 0 for identity. A malformed element is skipped. */
unsigned http_pick_encoding(struct str ae, unsigned allowed);

/* The token of a coding bit: "gzip", "br", "zstd". */
const char *http_enc_name(unsigned enc);

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into unix seconds.
 * Returns 0, or -EINVAL (the caller then ignores the field, §13.1.3). */
int http_parse_date(struct str s, int64_t *out);

/* True when the comma-separated entity-tag list <list> (If-None-Match,
 * If-Match) holds <etag> or is "*". <weak>: weak comparison (§8.8.3.2),
 * else strong (a W/ tag never matches). */
bool http_etag_match(struct str list, struct str etag, bool weak);

struct http_range {
    uint64_t first, last; /* inclusive, within the representation */
};

#define HTTP_RANGE_MAX 16

/* Parses a Range value ("bytes=0-99, -500, 1000-") against a representation
 * of <size> bytes into <out> (room for <max> ranges). Returns the number of
 * satisfiable ranges (> 0); 0 when none is (answer 416); -EINVAL when the
 * field is not a valid bytes range set or uses another unit, -E2BIG when it
 * has more than <max> ranges or ranges that overlap (both mean: ignore it
 * and send the whole representation, §14.2). */
int http_parse_range(struct str v, uint64_t size, struct http_range *out,
                     size_t max);

/* True when the media type of Content-Type value <ct> (parameters ignored,
 * case-insensitive) is listed in <types>; an entry "text/" + "*" matches every
 * text type. */
bool http_type_match(struct str ct, const char *const *types, size_t n);

#endif
