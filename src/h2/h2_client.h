/*
 * HTTP/2 client sessions with libnghttp2, for upstreams that speak h2
 * (gRPC). Like struct h2_sess (h2.h) it does no I/O: the owner feeds it
 * what the upstream sent (h2_cli_recv) and asks it for bytes to write
 * (h2_cli_send); it calls back into the owner for each stream's response
 * (struct h2_cli_cbs). A stream's owner pointer is <sud>.
 *
 * Flow control is the owner's backpressure: response DATA handed to data()
 * counts against our windows until the owner says it passed it on
 * (h2_cli_consume), and request body bytes are pulled (pull()) only when
 * the server's windows and the socket have room.
 *
 * The server's GOAWAY closes the streams it did not process with
 * REFUSED_STREAM (they may be sent again elsewhere) and takes no new ones.
 */
#ifndef GH_H2_H2_CLIENT_H
#define GH_H2_H2_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "h2/h2.h"

struct h2_cli;

struct h2_cli_cbs {
    /* One field of a response head (":status" first) or, when <trailer>,
     * of the trailers. The bytes are valid until the call returns. */
    void (*field)(void *sud, const char *name, size_t nlen, const char *value,
                  size_t vlen, bool trailer);
    /* A response head is complete: an interim one (1xx) or the final one;
     * <end> when no body follows. */
    void (*head)(void *sud, int status, bool end);
    /* Response body bytes: taken whole (our stream window bounds them). */
    void (*data)(void *sud, const uint8_t *p, size_t len);
    /* The response ended (END_STREAM, after the body or the trailers). */
    void (*end)(void *sud);
    /* The stream closed: normally (0) or reset, by either side, with an
     * RFC 9113 error code. <sud> is not used again. */
    void (*close)(void *sud, uint32_t code);
    /* Request body: copies up to <len> bytes into <buf>, sets *eof at the
     * end; or -EAGAIN when none are ready (then h2_cli_resume()). */
    ssize_t (*pull)(void *sud, uint8_t *buf, size_t len, bool *eof);
    /* Optional: after pull() said *eof, the request trailers to send as a
     * trailing HEADERS frame: their number (0: none), the array in *nv
     * (copied before the call returns). */
    size_t (*trailers)(void *sud, const struct h2_nv **nv);
};

/* A session that has sent nothing yet: its preface and SETTINGS
 * (<window> as SETTINGS_INITIAL_WINDOW_SIZE, <conn_window> for the
 * connection) are the first bytes h2_cli_send() gives. NULL on out of
 * memory. */
struct h2_cli *h2_cli_new(const struct h2_cli_cbs *cbs, uint32_t window,
                          uint32_t conn_window);
void h2_cli_free(struct h2_cli *c);

/* Feeds <len> bytes from the server. 0, or -EPROTO when the session is
 * broken (send what h2_cli_send() still gives, then close). */
int h2_cli_recv(struct h2_cli *c, const uint8_t *p, size_t len);

/* Writes frames into <out> (at most <cap> bytes): bytes written (0:
 * nothing now), or -EPROTO. */
ssize_t h2_cli_send(struct h2_cli *c, uint8_t *out, size_t cap);
bool h2_cli_want_write(struct h2_cli *c);

/* Opens a stream with request head <nv> (pseudo-fields first); its body is
 * pulled when <body>. Returns the stream id, or -EAGAIN when the session
 * takes no new stream (GOAWAY, or the server's stream limit), -ENOMEM or
 * -EINVAL. */
int32_t h2_cli_request(struct h2_cli *c, const struct h2_nv *nv, size_t n, bool body,
                       void *sud);

/* Request body bytes of <id> are ready again after pull() said -EAGAIN. */
void h2_cli_resume(struct h2_cli *c, int32_t id);
/* <n> response body bytes of <id> were passed on: the server may send as
 * many again (WINDOW_UPDATE). */
void h2_cli_consume(struct h2_cli *c, int32_t id, size_t n);
/* Resets <id> with <code>; its owner pointer is forgotten (no more
 * callbacks for it). */
void h2_cli_reset(struct h2_cli *c, int32_t id, uint32_t code);

/* True when the session may carry another request: no GOAWAY either way,
 * no protocol error. */
bool h2_cli_usable(struct h2_cli *c);
/* The error code of the server's GOAWAY, or -1 when it sent none. */
int64_t h2_cli_goaway(const struct h2_cli *c);
/* Streams open. */
size_t h2_cli_streams(struct h2_cli *c);

#define H2_PROTOCOL_ERROR 0x1u

#endif
