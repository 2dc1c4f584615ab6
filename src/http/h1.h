/*
 * HTTP/1.1 message parsing and serialization (RFC 9112), pure: bytes in,
 * views out, no I/O, no logging, no allocation.
 *
 * Head parsing is resumable the picohttpparser way: the caller accumulates
 * bytes in one buffer and calls again with the whole buffer; the parser keeps
 * in <struct h1_msg> how far it already scanned for the end of the head, so
 * the total work stays linear. Body framing (Content-Length, chunked) is a
 * separate, truly incremental state machine (struct h1_chunked) because bodies
 * stream through the proxy and are never held whole.
 */
#ifndef GH_HTTP_H1_H
#define GH_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/str.h"

enum h1_method {
    H1_M_OTHER = 0, /* any other token: forwarded as is */
    H1_M_GET,
    H1_M_HEAD,
    H1_M_POST,
    H1_M_PUT,
    H1_M_DELETE,
    H1_M_CONNECT,
    H1_M_OPTIONS,
    H1_M_TRACE,
    H1_M_PATCH,
    H1_M_PURGE,
};

enum h1_form {
    H1_F_ORIGIN = 0, /* /path?query */
    H1_F_ABSOLUTE,   /* http://host:port/path?query */
    H1_F_AUTHORITY,  /* host:port (CONNECT only) */
    H1_F_ASTERISK,   /* * (OPTIONS only) */
};

enum h1_body {
    H1_B_NONE = 0, /* no body: length 0 */
    H1_B_LENGTH,   /* Content-Length bytes follow */
    H1_B_CHUNKED,  /* chunked transfer coding */
    H1_B_EOF,      /* responses only: body runs until the connection closes */
};

/* Flags in h1_msg.flags, set while parsing the head. */
#define H1_CONN_CLOSE (1u << 0)     /* Connection: close */
#define H1_CONN_KEEPALIVE (1u << 1) /* Connection: keep-alive */
#define H1_CONN_UPGRADE (1u << 2)   /* Connection: upgrade */
#define H1_HAS_UPGRADE (1u << 3)    /* an Upgrade field is present */
#define H1_EXPECT_CONTINUE (1u << 4) /* Expect: 100-continue */
#define H1_HAS_HOST (1u << 5)       /* a Host field is present */
#define H1_HAS_TE (1u << 6)         /* Transfer-Encoding is present */
#define H1_HAS_CL (1u << 7)         /* Content-Length is present */
#define H1_EXPECT_OTHER (1u << 8)   /* Expect with another value (417) */

struct h1_field {
    struct str name;  /* token, as received (case kept) */
    struct str value; /* OWS trimmed on both sides */
};

struct h1_limits {
    size_t max_head;   /* bytes of request/status line + fields + CRLF: 431 */
    size_t max_fields; /* number of field lines: 431 */
    size_t max_target; /* request-target length: 414 */
};

struct h1_msg {
    /* request line */
    struct str method;
    enum h1_method meth;
    struct str target; /* as received */
    enum h1_form form;
    struct str scheme;    /* absolute-form only, e.g. "http" */
    struct str authority; /* absolute-form: host[:port]; authority-form: all */
    struct str path;      /* origin-form: == target; absolute-form: the
                             path-and-query part ("/" when empty) */
    /* status line */
    int status;
    struct str reason;
    /* both */
    int version; /* 10 for HTTP/1.0, 11 for HTTP/1.1 */
    struct h1_field *fields; /* caller-provided array of max_fields entries */
    size_t nfields;
    struct str host; /* value of the Host field, if any */
    uint32_t flags;
    /* framing, from Content-Length / Transfer-Encoding (RFC 9112 §6.3) */
    enum h1_body body;
    uint64_t content_length;
    size_t head_len; /* bytes of the head including the final CRLF */
    /* on -EBADMSG: the status to answer with (400, 414, 431, 501, 505) and a
       short static reason for the log, e.g. "te_and_cl" */
    int err_status;
    const char *err_reason;
    /* parser scan position (private; zero it with h1_msg_init) */
    size_t scan_;
    /* more private parser state, set by h1_msg_init: a position remembered
       while the start line is incomplete, the room in <fields>, and the
       scanning phase */
    size_t mark_;
    size_t cap_;
    unsigned phase_;
};

/* Prepares <m> to parse a new message, with <fields> room for <max_fields>
 * field lines. */
void h1_msg_init(struct h1_msg *m, struct h1_field *fields, size_t max_fields);

/* Parses a request head from the bytes <buf>[0..len) (everything received so
 * far for this message). Returns the head length (> 0) when complete,
 * -EAGAIN when more bytes are needed, -EBADMSG when invalid (m->err_status /
 * m->err_reason say why: 400 bad syntax or ambiguous framing, 414 target
 * too long, 431 head too large or too many fields, 501 unknown
 * transfer-coding, 505 bad version). Views in <m> point into <buf>.
 * Strict: bare CR or bare LF, whitespace before a colon, obs-fold, NUL/CR/LF
 * in values, invalid tokens, Content-Length with Transfer-Encoding,
 * differing Content-Lengths, a final coding other than chunked, a missing
 * Host in HTTP/1.1 are all errors. Leading empty lines (CRLF) before the
 * request line are skipped (RFC 9112 §2.2). */
int h1_parse_request(const char *buf, size_t len, struct h1_msg *m,
                     const struct h1_limits *lim);

/* Same for a response head (status line). Sets m->body from the fields
 * only (H1_B_EOF when neither CL nor TE); the caller then applies
 * h1_response_body() for the request method and status. */
int h1_parse_response(const char *buf, size_t len, struct h1_msg *m,
                      const struct h1_limits *lim);

/* Framing of a response to a request with <req_meth> (RFC 9112 §6.3):
 * HEAD, 1xx, 204 and 304 have no body; a 2xx to CONNECT has none either. */
enum h1_body h1_response_body(const struct h1_msg *resp,
                              enum h1_method req_meth);

/* Returns the first field named <name> (case-insensitive) or NULL. */
const struct h1_field *h1_find(const struct h1_msg *m, struct str name);

/* True when <list> (a comma-separated field value) holds <token>,
 * case-insensitively, e.g. h1_list_has("close, upgrade", "upgrade"). */
bool h1_list_has(struct str list, struct str token);

/* True if the connection persists after this message: HTTP/1.1 unless
 * "close"; HTTP/1.0 only with "keep-alive". */
bool h1_keepalive(const struct h1_msg *m);

/* ---- chunked transfer coding (RFC 9112 §7.1) ---- */

enum h1_chunk_state {
    H1_CH_SIZE = 0, /* reading chunk-size hex digits */
    H1_CH_EXT,      /* chunk extensions up to CRLF */
    H1_CH_SIZE_LF,  /* saw CR after size/ext, need LF */
    H1_CH_DATA,     /* <remaining> data bytes to go */
    H1_CH_DATA_CR,  /* CRLF after data */
    H1_CH_DATA_LF,
    H1_CH_TRAILER,     /* start of a trailer line or the final CRLF */
    H1_CH_TRAILER_LINE, /* inside a trailer field line */
    H1_CH_TRAILER_LF,   /* CR seen at end of a trailer line */
    H1_CH_FINAL_LF,     /* CR seen on the empty line ending the message */
    H1_CH_DONE,         /* message complete */
};

struct h1_chunked {
    enum h1_chunk_state state;
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned digits;    /* hex digits seen in the current size */
    size_t line_len;    /* bytes in the current ext or trailer line */
    size_t trailer_len; /* bytes of all trailers so far */
    size_t max_line;    /* limit on extension / trailer line (default 4096) */
    size_t max_trailer; /* limit on all trailers (default 16384) */
    unsigned sub_;      /* private: position inside an extension or a
                           trailer line (zeroed by h1_chunked_init) */
};

/* Resets <c> for a new body with default limits. */
void h1_chunked_init(struct h1_chunked *c);

/* Scans <len> bytes of chunked body at <p>. Returns the bytes consumed, which
 * is < len only when the message ended (c->state == H1_CH_DONE) before the
 * end of the input; -EBADMSG on a syntax error, a size overflow (more than 16
 * hex digits or a value above 2^63), a bare LF or CR, or a line over its
 * limit. The bytes are not changed. When <data> is not NULL, the payload
 * bytes found are copied (memmove: <data> may equal <p>) to <data> and their
 * count stored in *<data_len>: this is how a chunked body is decoded in
 * place for an HTTP/1.0 peer. Trailer fields are validated as field lines
 * but not reported. */
ssize_t h1_chunked_scan(struct h1_chunked *c, const char *p, size_t len,
                        char *data, size_t *data_len);

/* ---- serialization ---- */

/* Writes "<status> <reason>" status line reason for a code, e.g. 502 ->
 * "Bad Gateway". Unknown codes get "Unknown". */
const char *h1_reason(int status);

/* Formats an HTTP-date (RFC 9110 §5.6.7, IMF-fixdate) for <t> into <out>,
 * which has room for 30 bytes; returns 29. */
size_t h1_fmt_date(char *out, int64_t t);

#endif
