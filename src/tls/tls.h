/*
 * TLS with OpenSSL 3: the only module that includes the OpenSSL headers.
 *
 * Server side (listeners): a struct tls_srv holds, per listener, one
 * SSL_CTX per configured certificate and the table that picks one by SNI
 * (exact names first, then wildcards, then the default). It is built when
 * the configuration is loaded, so a certificate that cannot be read is a
 * configuration error with its file:line:col, and it can be rebuilt from
 * the same files at run time (tls_srv_reload, SIGHUP) while connections
 * made with the old certificates carry on with them.
 *
 * A struct tls_conn is one TLS connection on a non-blocking socket. Its
 * calls never block: they return -EAGAIN and say whether they wait for
 * the socket to become readable or writable, which the caller maps onto
 * its edge-triggered readiness flags.
 */
#ifndef GH_TLS_TLS_H
#define GH_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config/config.h"

struct tls_srv;
struct tls_conn;

/* ---- server contexts ---- */

/* Starts the contexts of one listener from <ct> (protocols, ciphers, ALPN,
 * tickets, client verification); certificates are added next. <name>
 * (the listen address) names the ticket keys: every tls_srv of the same
 * name in the process shares them, so sessions resume across a reload.
 * Returns NULL with a message in <err> ("client_ca: ...") on failure. */
struct tls_srv *tls_srv_new(const struct cfg_tls *ct, const char *name, char *err,
                            size_t errlen);

/* Adds certificate <cc> (read now: cert, key, chain, OCSP response).
 * Returns 0, or -EINVAL with a message naming the file and what is wrong
 * in <err>, and which key of <cc> it is about in *<what> ("cert", "key",
 * "chain", "ocsp"). */
int tls_srv_add(struct tls_srv *s, const struct cfg_tls_cert *cc,
                const char **what, char *err, size_t errlen);

/* Makes the added certificates live (first call) or replaces the live
 * ones. Returns 0, or -EINVAL when no certificate was added. */
int tls_srv_commit(struct tls_srv *s, char *err, size_t errlen);

/* Re-reads every certificate, key, chain and OCSP file of <s> and swaps
 * them in for new handshakes; connections already made keep theirs. On
 * any error the running certificates stay and <err> says why. Safe to
 * call from any thread while workers accept connections. */
int tls_srv_reload(struct tls_srv *s, char *err, size_t errlen);

/* Reloads the certificates of every TLS listener of <cfg> (SIGHUP). Each
 * listener keeps its running certificates when its files fail to load;
 * returns 0 when all reloaded, else -EINVAL with the first failure in <err>
 * ("127.0.0.1:443: key: ..."). */
int tls_reload_all(const struct cfg *cfg, char *err, size_t errlen);

/* Frees <s> (NULL is a no-op). Connections still open keep what they
 * use alive until they close. */
void tls_srv_free(struct tls_srv *s);

/* ---- client contexts (TLS to upstream servers) ---- */

/* The client context of an upstream with <nservers> servers: trusted CAs,
 * verification, an optional client certificate, a session cache per
 * server. Returns NULL with a message in <err> and the key it is about in
 * *<what> ("ca", "cert", "key"). */
struct tls_cli *tls_cli_new(const struct cfg_upstream_tls *ut, size_t nservers,
                            const char **what, char *err, size_t errlen);
void tls_cli_free(struct tls_cli *c);

/* A client connection to server <srv> (its address <ip>, for the check
 * when no name is configured) on <fd> (not owned), resuming the last
 * session with that server when there is one. NULL on out of memory. */
struct tls_conn *tls_connect(struct tls_cli *c, int fd, unsigned srv, const char *ip);

/* After a failed client handshake: why the certificate was refused, or
 * NULL when that was not the reason. */
const char *tls_verify_error(const struct tls_conn *tc);

/* ---- connections ---- */

/* What a call that returned -EAGAIN waits for, and after a read whether
 * the socket was found drained (no read needed until the next edge). */
#define TLS_WANT_READ 1u
#define TLS_WANT_WRITE 2u
#define TLS_DRAINED 4u

/* A server connection on <fd> (not owned: the caller closes it). Returns
 * NULL on out of memory. */
struct tls_conn *tls_accept(struct tls_srv *s, int fd);

/* Frees the connection; sends close_notify first when <notify> and the
 * handshake had completed (best effort, never blocks). */
void tls_free(struct tls_conn *tc, bool notify);

/* Drives the handshake. Returns 0 when it is complete, -EAGAIN (see
 * *want), or -EPROTO / -ECONNRESET when it failed (logged at debug). */
int tls_handshake(struct tls_conn *tc, unsigned *want);

/* Reads decrypted bytes. Returns > 0 bytes (with TLS_DRAINED in *flags
 * when nothing more can be read until the socket signals again), 0 at the
 * end of the stream (close_notify or EOF), -EAGAIN (see *flags) or
 * -errno. */
ssize_t tls_read(struct tls_conn *tc, void *p, size_t len, unsigned *flags);

/* Encrypts and sends bytes gathered from <iov>: small pieces go out in one
 * record. Returns the bytes taken (> 0), -EAGAIN (see *want) or -errno.
 * After -EAGAIN the next call must offer at least the same bytes again
 * (the caller's buffers still hold them, so it does). */
ssize_t tls_writev(struct tls_conn *tc, const struct iovec *iov, int n,
                   unsigned *want);

/* Sends close_notify (the write side is done). Returns 0 or -EAGAIN. */
int tls_shutdown(struct tls_conn *tc);

/* True when a read would return data or the end without touching the
 * socket (decrypted or raw bytes are buffered inside). */
bool tls_pending(struct tls_conn *tc);

/* True when the client hung up: a close_notify or EOF is next. False when
 * it sent more data or nothing is known yet. */
bool tls_peer_gone(struct tls_conn *tc);

/* The protocol ALPN chose: "h2", "http/1.1", or NULL without ALPN. */
const char *tls_alpn(const struct tls_conn *tc);

/* Facts for logs and headers: the version ("TLSv1.3"), the cipher, the
 * SNI name (or NULL), and whether the session was resumed. */
const char *tls_version(const struct tls_conn *tc);
const char *tls_cipher(const struct tls_conn *tc);
const char *tls_sni(const struct tls_conn *tc);
bool tls_resumed(const struct tls_conn *tc);
/* The verified client certificate's subject as an RFC 2253 string into
 * <out>; returns its length, 0 when there is no verified certificate. */
size_t tls_peer_subject(const struct tls_conn *tc, char *out, size_t len);

/* True when the kernel offers TLS offload (the "tls" TCP ULP). */
bool tls_ktls_available(void);

/* Frees the calling thread's OpenSSL state (at worker exit). */
void tls_thread_cleanup(void);

#endif
