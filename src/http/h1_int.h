/*
 * Internals shared by the files of the HTTP/1 module (h1_parse.c, chunked.c,
 * h1_util.c): the byte class table. Not an API for other modules.
 */
#ifndef GH_HTTP_H1_INT_H
#define GH_HTTP_H1_INT_H

#include <stdint.h>

/* Bits of h1__ctab[c]. */
#define H1__TOKEN 0x01u  /* tchar (RFC 9110 §5.6.2) */
#define H1__VIS 0x02u    /* VCHAR 0x21-0x7e: request-target bytes */
#define H1__VALUE 0x04u  /* field-value byte: VCHAR, obs-text, SP, HTAB */
#define H1__HEX 0x08u    /* HEXDIG */
#define H1__HOST 0x10u   /* reg-name byte: unreserved, sub-delims, '%' */
#define H1__SCHEME 0x20u /* ALPHA DIGIT "+" "-" "." */
#define H1__DIGIT 0x40u  /* DIGIT */
#define H1__QDTEXT 0x80u /* qdtext (RFC 9110 §5.6.4) */

extern const uint8_t h1__ctab[256];

#define H1__IS(c, bits) ((h1__ctab[(unsigned char)(c)] & (bits)) != 0)

#endif
