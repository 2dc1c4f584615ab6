/*
 * HTTP/2 server sessions with libnghttp2: the only module that includes
 * the nghttp2 headers.
 *
 * A struct h2_sess is the protocol state of one client connection. It does
 * no I/O: the owner feeds it the bytes it read (h2_recv) and asks it for
 * bytes to write (h2_send), and it calls back into the owner for every
 * request stream (struct h2_cbs). It knows nothing about proxying; the
 * proxy's side of a stream is an opaque pointer (<sud>).
 *
 * Flow control is the owner's backpressure: request body bytes handed to
 * data() count against the client's windows until the owner says it has
 * passed them on (h2_consume), and response bytes are pulled (pull()) only
 * when the client's windows and the socket have room.
 *
 * Defences (each ends the connection with GOAWAY ENHANCE_YOUR_CALM):
 * - rapid reset (CVE-2023-44487): client RST_STREAMs are paid for from a
 *   token bucket (max_resets, refilled at reset_rate per second);
 * - CONTINUATION floods (2024): at most 8 CONTINUATION frames per header
 *   block, and the header block is bounded by max_header_list while it is
 *   decoded, not after;
 * - HPACK bombs: decoded fields are counted as they come (name + value +
 *   32 bytes each, RFC 9113 §6.5.2), so a small block that expands to a
 *   huge list is cut at max_header_list (the stream gets 431);
 * - other abuse (empty DATA frames, frames for closed streams, PINGs and
 *   SETTINGS floods that nghttp2 itself catches) counts as "glitches",
 *   bounded by max_glitches per connection.
 */
#ifndef GH_H2_H2_H
#define GH_H2_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct h2_sess;

struct h2_limits {
    uint32_t max_streams;     /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t stream_window;   /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t conn_window;     /* the connection's receive window */
    uint32_t max_header_list; /* SETTINGS_MAX_HEADER_LIST_SIZE */
    uint32_t max_fields;      /* field lines per request */
    uint32_t max_resets;      /* RST_STREAM token bucket size */
    uint32_t reset_rate;      /* ... refilled per second */
    uint32_t max_glitches;
};

/* A name/value pair to send; not NUL-terminated. */
struct h2_nv {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
};

/* Why a session ended, for the log. */
enum h2_end {
    H2_END_NONE = 0,
    H2_END_PROTOCOL, /* the client broke the protocol */
    H2_END_RESETS,   /* rapid reset */
    H2_END_HEADERS,  /* CONTINUATION flood / header block too large */
    H2_END_GLITCHES, /* too much other misbehaviour */
};

/* The owner's side. <ud> is the connection's pointer given to
 * h2_sess_new; <sud> a stream's pointer returned by begin(). No callback
 * may call h2_recv or h2_send; the h2_submit/h2_consume/h2_reset calls are
 * fine. */
struct h2_cbs {
    /* Stream <id> starts: returns its pointer, or NULL to refuse it
     * (REFUSED_STREAM). */
    void *(*begin)(void *ud, int32_t id);
    /* One field of the request head, pseudo-fields first (":method"). The
     * limits were checked; the bytes are valid until the call returns. */
    void (*field)(void *sud, const char *name, size_t nlen, const char *value,
                  size_t vlen);
    /* The head is complete; <end> when no body follows. <status> is 0, or
     * 431 when the head broke a limit (the fields were not all given). */
    void (*head)(void *sud, bool end, int status);
    /* Request body bytes: taken whole (the stream window bounds them). */
    void (*data)(void *sud, const uint8_t *p, size_t len);
    /* The request body ended (END_STREAM after data). */
    void (*end)(void *sud);
    /* The stream closed: normally (code 0) or reset (an RFC 9113 error
     * code). <sud> is not used again. */
    void (*close)(void *sud, uint32_t code);
    /* Response body: copies up to <len> bytes into <buf> and returns their
     * number, with *eof set at the end of the body; or returns -EAGAIN when
     * none are ready (then h2_resume() when some are). */
    ssize_t (*pull)(void *sud, uint8_t *buf, size_t len, bool *eof);
    /* Optional: after pull() said *eof, the response trailers to send as
     * a trailing HEADERS frame; returns their number (0: none) with the
     * array in *nv (copied before the call returns). */
    size_t (*trailers)(void *sud, const struct h2_nv **nv);
    /* Optional: one field of the request's trailers (counted against the
     * same limits as the head; pseudo-fields are refused by nghttp2). */
    void (*trailer)(void *sud, const char *name, size_t nlen, const char *value,
                    size_t vlen);
};

/* A server session that has not seen the client's preface yet. Returns NULL
 * on out of memory. */
struct h2_sess *h2_sess_new(const struct h2_limits *lim, const struct h2_cbs *cbs,
                            void *ud);
void h2_sess_free(struct h2_sess *s);

/* Feeds <len> received bytes. Returns 0, or -EPROTO when the session is
 * beyond saving (bad preface, flood): send what h2_send() still gives
 * (a GOAWAY), then close. */
int h2_recv(struct h2_sess *s, const uint8_t *p, size_t len);

/* Writes frames into <out> (at most <cap> bytes). Returns the bytes
 * written (0: nothing to send now) or -EPROTO. */
ssize_t h2_send(struct h2_sess *s, uint8_t *out, size_t cap);

/* Whether the session still wants to read or write; both false: done,
 * close the connection. */
bool h2_want_read(struct h2_sess *s);
bool h2_want_write(struct h2_sess *s);

/* Response head for stream <id>: a final one (with a body to pull when
 * <body>) or an interim 1xx (<interim>). <nv> starts with ":status". Returns
 * 0 or -EINVAL (the stream is gone). */
int h2_submit(struct h2_sess *s, int32_t id, const struct h2_nv *nv, size_t n,
              bool body, bool interim);

/* Body bytes of <id> are ready again after pull() said -EAGAIN. */
void h2_resume(struct h2_sess *s, int32_t id);

/* The owner passed on <n> request body bytes of <id>: they may be sent
 * again (WINDOW_UPDATE). <id> may be closed already. */
void h2_consume(struct h2_sess *s, int32_t id, size_t n);

/* Resets stream <id> with <code> (an RFC 9113 error code). */
void h2_reset(struct h2_sess *s, int32_t id, uint32_t code);

/* Forgets the owner's pointer of <id>: later events of the stream (data,
 * close) are not reported; its body is taken and dropped. */
void h2_detach(struct h2_sess *s, int32_t id);

/* Graceful GOAWAY (no new streams; those open finish). */
void h2_goaway(struct h2_sess *s);

/* Streams open, and why the session ended (H2_END_NONE: it did not). */
size_t h2_streams(struct h2_sess *s);
enum h2_end h2_ended(const struct h2_sess *s);

/* RFC 9113 error codes used by the owner. */
#define H2_NO_ERROR 0x0u
#define H2_INTERNAL_ERROR 0x2u
#define H2_CANCEL 0x8u
#define H2_REFUSED_STREAM 0x7u

#endif
