/*
 * TLS connections on non-blocking sockets (server and client side alike).
 *
 * Every call returns -EAGAIN with what it waits for (TLS_WANT_READ or
 * TLS_WANT_WRITE), which the caller maps onto its edge-triggered flags.
 * I/O uses OpenSSL's socket BIO, so kernel TLS can take over when the kernel
 * has it; a BIO callback notes whether the last read found the socket
 * drained, so the caller can stop reading at a short read as it does for
 * plain sockets instead of reading once more to hear EAGAIN.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/macros.h"
#include "tls/tls_int.h"

/* Set by the BIO callback: the last socket read returned less than asked
 * (or would block). One SSL call runs at a time per thread. */
static _Thread_local bool t_drained;

static long bio_cb(BIO *b, int oper, const char *argp, size_t len, int argi,
                   long argl, int ret, size_t *processed)
{
    (void)b, (void)argp, (void)argi, (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN))
        t_drained = ret <= 0 || (processed != NULL && *processed < len);
    return ret;
}

void tls__watch_reads(SSL *ssl)
{
    BIO_set_callback_ex(SSL_get_rbio(ssl), bio_cb);
}

void tls_free(struct tls_conn *tc, bool notify)
{
    if (tc == NULL)
        return;
    if (notify && tc->done && !tc->failed) {
        SSL_shutdown(tc->ssl); /* close_notify if the socket takes it */
        ERR_clear_error();
    }
    SSL_free(tc->ssl);
    free(tc);
}

/* Maps an SSL_get_error() result after a failed call. */
static int io_error(struct tls_conn *tc, int ret, unsigned *want)
{
    int e = SSL_get_error(tc->ssl, ret);
    int err = errno;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        tc->failed = true;
        ERR_clear_error();
        return err != 0 ? -err : -ECONNRESET;
    default:
        tc->failed = true;
        log_debug("tls: %s", tls__reason());
        return -EPROTO;
    }
}

int tls_handshake(struct tls_conn *tc, unsigned *want)
{
    *want = 0;
    errno = 0;
    int r = SSL_do_handshake(tc->ssl);
    if (r == 1) {
        tc->done = true;
        return 0;
    }
    int rc = io_error(tc, r, want);
    return rc == 0 ? -ECONNRESET : rc;
}

ssize_t tls_read(struct tls_conn *tc, void *p, size_t len, unsigned *flags)
{
    size_t n = 0;
    *flags = 0;
    t_drained = false;
    errno = 0;
    int r = SSL_read_ex(tc->ssl, p, len, &n);
    if (r == 1) {
        if (t_drained && !SSL_has_pending(tc->ssl))
            *flags = TLS_DRAINED;
        return (ssize_t)n;
    }
    return io_error(tc, r, flags);
}

ssize_t tls_writev(struct tls_conn *tc, const struct iovec *iov, int n,
                   unsigned *want)
{
    static _Thread_local char stage[16384];
    const void *p = iov[0].iov_base;
    size_t len = iov[0].iov_len;
    if (n > 1 && len < sizeof(stage)) {
        /* gather small pieces (a head and the first body bytes) into one
         * record rather than one record each */
        len = 0;
        for (int i = 0; i < n && len < sizeof(stage); i++) {
            size_t k = MIN(iov[i].iov_len, sizeof(stage) - len);
            memcpy(stage + len, iov[i].iov_base, k);
            len += k;
        }
        p = stage;
    }
    size_t w = 0;
    *want = 0;
    errno = 0;
    int r = SSL_write_ex(tc->ssl, p, len, &w);
    if (r == 1)
        return (ssize_t)w;
    int rc = io_error(tc, r, want);
    return rc == 0 ? -EPIPE : rc;
}

int tls_shutdown(struct tls_conn *tc)
{
    if (!tc->done || tc->failed)
        return 0;
    int r = SSL_shutdown(tc->ssl);
    if (r >= 0)
        return 0;
    unsigned want;
    int rc = io_error(tc, r, &want);
    return rc == -EAGAIN ? -EAGAIN : 0;
}

bool tls_pending(struct tls_conn *tc)
{
    return SSL_has_pending(tc->ssl) != 0;
}

bool tls_peer_gone(struct tls_conn *tc)
{
    char b;
    size_t n;
    errno = 0;
    int r = SSL_peek_ex(tc->ssl, &b, 1, &n);
    if (r == 1)
        return false;
    unsigned want = 0;
    int rc = io_error(tc, r, &want);
    return rc != -EAGAIN;
}

const char *tls_alpn(const struct tls_conn *tc)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(tc->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

const char *tls_version(const struct tls_conn *tc)
{
    return SSL_get_version(tc->ssl);
}

const char *tls_cipher(const struct tls_conn *tc)
{
    return SSL_get_cipher_name(tc->ssl);
}

const char *tls_sni(const struct tls_conn *tc)
{
    return SSL_get_servername(tc->ssl, TLSEXT_NAMETYPE_host_name);
}

bool tls_resumed(const struct tls_conn *tc)
{
    return SSL_session_reused(tc->ssl) == 1;
}

size_t tls_peer_subject(const struct tls_conn *tc, char *out, size_t len)
{
    if (len == 0 || SSL_get_verify_result(tc->ssl) != X509_V_OK)
        return 0;
    X509 *x = SSL_get0_peer_certificate(tc->ssl);
    if (x == NULL)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return 0;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, out, (int)len - 1);
    BIO_free(b);
    ERR_clear_error();
    if (n <= 0)
        return 0;
    out[n] = '\0';
    return (size_t)n;
}

static bool ktls_probe(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
    if (f == NULL)
        return false;
    char line[256] = "";
    bool yes = false;
    if (fgets(line, sizeof(line), f) != NULL) {
        for (char *tok = line; *tok != '\0';) {
            size_t n = strcspn(tok, " \n");
            if (n == 3 && memcmp(tok, "tls", 3) == 0)
                yes = true;
            tok += n;
            tok += strspn(tok, " \n");
        }
    }
    fclose(f);
    return yes;
}

static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static bool ktls_yes;

static void ktls_check(void)
{
    ktls_yes = ktls_probe();
}

/* The kernel's answer does not change while we run: asked once. */
bool tls_ktls_available(void)
{
    pthread_once(&ktls_once, ktls_check);
    return ktls_yes;
}

void tls_thread_cleanup(void)
{
    OPENSSL_thread_stop();
}
