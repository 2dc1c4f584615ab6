/*
 * Internals shared by the files of src/tls/; nothing here is part of the
 * API in tls.h.
 *
 *   tls.c      server contexts: certificates, SNI, tickets, OCSP, reload
 *   tls_cli.c  client contexts for upstream servers
 *   tls_io.c   connections: handshake, reads, writes, facts
 */
#ifndef GH_TLS_TLS_INT_H
#define GH_TLS_TLS_INT_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "tls/tls.h"

struct tls_conn {
    SSL *ssl;
    bool done;   /* handshake complete */
    bool failed; /* a fatal error: no close_notify */
};

/* ex_data index of a client context's struct tls_cli. */
extern int tls__cli_idx;

/* Sets up the library and the ex_data indices, once per process. */
void tls__init(void);

/* The reason of the newest OpenSSL error, and the queue cleared. */
const char *tls__reason(void);

/* Watches the reads of <ssl>'s socket BIO, so tls_read() can tell when
 * the socket was drained. */
void tls__watch_reads(SSL *ssl);

/* Writes a message into err/errlen and jumps to Fail. */
#define TLS__FAIL(...)                                                         \
    do {                                                                       \
        snprintf(err, errlen, __VA_ARGS__);                                    \
        goto Fail;                                                             \
    } while (0)

#endif
