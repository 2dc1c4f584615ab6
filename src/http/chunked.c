/*
 * Chunked transfer coding (RFC 9112 §7.1), decoded incrementally.
 *
 * Bodies stream through the proxy, so unlike the head this is a true state
 * machine that takes any number of bytes at a time and keeps all it needs in
 * struct h1_chunked: the result of a scan never depends on how the body was
 * split. Every byte outside chunk data is checked, because the chunk framing
 * is where request smuggling hides: sizes that overflow or carry a "0x", bare
 * LF or CR accepted by one peer and not by the next, and extensions or
 * trailers that hide a line break.
 *
 * sub_ is the position inside a line that the public state does not tell:
 *   H1_CH_EXT:          0 only BWS since the size, 1 after a ';',
 *                       2 in a quoted-string, 3 after a backslash in it;
 *   H1_CH_TRAILER_LINE: 0 in the field name, 1 in the value.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/macros.h"
#include "http/h1.h"
#include "http/h1_int.h"

/* A chunk size must stay below 2^63: 4 more bits must fit. */
#define SIZE_MAX_BEFORE_DIGIT (UINT64_C(1) << 59)

void h1_chunked_init(struct h1_chunked *c)
{
    *c = (struct h1_chunked){
        .state = H1_CH_SIZE,
        .max_line = 4096,
        .max_trailer = 16384,
    };
}

static unsigned hexval(unsigned char ch)
{
    return ch <= '9' ? (unsigned)(ch - '0') : (ch | 0x20u) - 'a' + 10;
}

/* One byte of a chunk extension: *( BWS ";" BWS name [ BWS "=" BWS value ] )
   checked loosely (token bytes, '=', ';', OWS and quoted-strings). */
static bool ext_byte(struct h1_chunked *c, unsigned char ch)
{
    switch (c->sub_) {
    case 0:
        if (ch == ';')
            c->sub_ = 1;
        return ch == ';' || ch == ' ' || ch == '\t';
    case 1:
        if (ch == '"')
            c->sub_ = 2;
        return ch == '"' || H1__IS(ch, H1__TOKEN) || ch == ' ' || ch == '\t' ||
               ch == '=' || ch == ';';
    case 2:
        if (ch == '"')
            c->sub_ = 1;
        else if (ch == '\\')
            c->sub_ = 3;
        else
            return H1__IS(ch, H1__QDTEXT);
        return true;
    default:
        c->sub_ = 2;
        return H1__IS(ch, H1__VALUE);
    }
}

ssize_t h1_chunked_scan(struct h1_chunked *c, const char *p, size_t len,
                        char *data, size_t *data_len)
{
    size_t i = 0, out = 0;

    while (i < len && c->state != H1_CH_DONE) {
        unsigned char ch = (unsigned char)p[i];

        switch (c->state) {
        case H1_CH_DATA: {
            size_t n = (size_t)MIN(c->remaining, (uint64_t)(len - i));
            if (data != NULL) /* out <= i: the copy never overtakes */
                memmove(data + out, p + i, n);
            out += n;
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = H1_CH_DATA_CR;
            continue;
        }
        case H1_CH_SIZE:
            if (H1__IS(ch, H1__HEX)) {
                if (c->digits == 16 || c->remaining >= SIZE_MAX_BEFORE_DIGIT)
                    goto Bad;
                c->remaining = c->remaining << 4 | hexval(ch);
                c->digits++;
                break;
            }
            if (c->digits == 0)
                goto Bad;
            if (ch == '\r') {
                c->state = H1_CH_SIZE_LF;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = H1_CH_EXT;
                c->sub_ = ch == ';';
                c->line_len = 1;
            } else {
                goto Bad; /* "0x10", "5\n", "-1", ... */
            }
            break;
        case H1_CH_EXT:
            if (ch == '\r' && c->sub_ < 2) {
                c->state = H1_CH_SIZE_LF;
                break;
            }
            if (++c->line_len > c->max_line || !ext_byte(c, ch))
                goto Bad;
            break;
        case H1_CH_SIZE_LF:
            if (ch != '\n')
                goto Bad;
            c->state = c->remaining == 0 ? H1_CH_TRAILER : H1_CH_DATA;
            c->line_len = 0;
            break;
        case H1_CH_DATA_CR:
            if (ch != '\r')
                goto Bad;
            c->state = H1_CH_DATA_LF;
            break;
        case H1_CH_DATA_LF:
            if (ch != '\n')
                goto Bad;
            c->state = H1_CH_SIZE;
            c->digits = 0;
            break;
        case H1_CH_TRAILER:
            if (ch == '\r') {
                c->state = H1_CH_FINAL_LF;
                break;
            }
            if (!H1__IS(ch, H1__TOKEN)) /* bare LF, obs-fold, ':' first */
                goto Bad;
            c->state = H1_CH_TRAILER_LINE;
            c->sub_ = 0;
            c->line_len = 0;
            /* fall through */
        case H1_CH_TRAILER_LINE:
            if (++c->line_len > c->max_line ||
                ++c->trailer_len > c->max_trailer)
                goto Bad;
            if (c->sub_ == 0) {
                if (ch == ':')
                    c->sub_ = 1;
                else if (!H1__IS(ch, H1__TOKEN))
                    goto Bad; /* includes SP before the colon */
            } else if (ch == '\r') {
                c->state = H1_CH_TRAILER_LF;
            } else if (!H1__IS(ch, H1__VALUE)) {
                goto Bad;
            }
            break;
        case H1_CH_TRAILER_LF:
            if (ch != '\n' || ++c->trailer_len > c->max_trailer)
                goto Bad;
            c->state = H1_CH_TRAILER;
            break;
        case H1_CH_FINAL_LF:
            if (ch != '\n')
                goto Bad;
            c->state = H1_CH_DONE;
            break;
        case H1_CH_DONE:
            break;
        }
        i++;
    }
    if (data_len != NULL)
        *data_len = out;
    return (ssize_t)i;
Bad:
    if (data_len != NULL)
        *data_len = out;
    return -EBADMSG;
}
