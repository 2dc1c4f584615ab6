/*
 * TLS to upstream servers: one client context per upstream, with the CAs
 * to trust, the name to check (or each server's IP address), an optional
 * client certificate, and the last session with each server, so a pool
 * that refills resumes instead of doing full handshakes. Workers share the
 * context; the session slots are under a mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

struct tls_cli {
    SSL_CTX *ctx;
    const struct cfg_upstream_tls *ut;
    pthread_mutex_t mu;
    SSL_SESSION **sess; /* the last session with each server */
    size_t n;
};

/* A new session from a server: keep it for the next connection to it. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_cli *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls__cli_idx);
    uintptr_t srv = (uintptr_t)SSL_get_app_data(ssl);
    if (c == NULL || srv == 0 || srv > c->n)
        return 0;
    pthread_mutex_lock(&c->mu);
    SSL_SESSION *old = c->sess[srv - 1];
    c->sess[srv - 1] = sess; /* takes the reference we were given */
    pthread_mutex_unlock(&c->mu);
    SSL_SESSION_free(old);
    return 1;
}

struct tls_cli *tls_cli_new(const struct cfg_upstream_tls *ut, size_t nservers,
                            const char **what, char *err, size_t errlen)
{
    tls__init();
    *what = NULL;
    struct tls_cli *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx = NULL;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->n = nservers;
    c->ut = ut;
    if ((c->sess = calloc(nservers ? nservers : 1, sizeof(*c->sess))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto Fail;
    }
    ctx = c->ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        TLS__FAIL("cannot create a TLS context: %s", tls__reason());
    SSL_CTX_set_ex_data(ctx, tls__cli_idx, c);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    static const unsigned char h11[] = "\x08http/1.1";
    static const unsigned char h2[] = "\x02h2";
    if (ut->alpn_h2)
        SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2) - 1);
    else
        SSL_CTX_set_alpn_protos(ctx, h11, sizeof(h11) - 1);
    if (ut->verify) {
        *what = "ca";
        if (ut->ca != NULL ? SSL_CTX_load_verify_locations(ctx, ut->ca, NULL) != 1
                           : SSL_CTX_set_default_verify_paths(ctx) != 1)
            TLS__FAIL("cannot load CA certificates from %s (%s)",
                 ut->ca ? ut->ca : "the system's store", tls__reason());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (ut->cert != NULL) {
        *what = "cert";
        if (SSL_CTX_use_certificate_chain_file(ctx, ut->cert) != 1)
            TLS__FAIL("cannot load a PEM certificate from %s (%s)", ut->cert, tls__reason());
        const char *key = ut->key != NULL ? ut->key : ut->cert;
        *what = ut->key != NULL ? "key" : "cert";
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            TLS__FAIL("cannot load a PEM private key from %s that fits %s (%s)", key,
                 ut->cert, tls__reason());
    }
    *what = NULL;
    return c;
Fail:
    tls_cli_free(c);
    return NULL;
}

void tls_cli_free(struct tls_cli *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; c->sess != NULL && i < c->n; i++)
        SSL_SESSION_free(c->sess[i]);
    free(c->sess);
    SSL_CTX_free(c->ctx);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct tls_conn *tls_connect(struct tls_cli *c, int fd, unsigned srv, const char *ip)
{
    struct tls_conn *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    tc->ssl = SSL_new(c->ctx);
    if (tc->ssl == NULL || SSL_set_fd(tc->ssl, fd) != 1)
        goto Fail;
    const char *name = c->ut->name;
    if (name != NULL) {
        if (SSL_set_tlsext_host_name(tc->ssl, name) != 1 ||
            (c->ut->verify && SSL_set1_host(tc->ssl, name) != 1))
            goto Fail;
    } else if (c->ut->verify &&
               X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tc->ssl), ip) != 1) {
        goto Fail;
    }
    SSL_set_app_data(tc->ssl, (void *)(uintptr_t)(srv + 1));
    pthread_mutex_lock(&c->mu);
    if (srv < c->n && c->sess[srv] != NULL)
        SSL_set_session(tc->ssl, c->sess[srv]);
    pthread_mutex_unlock(&c->mu);
    tls__watch_reads(tc->ssl);
    SSL_set_connect_state(tc->ssl);
    return tc;
Fail:
    ERR_clear_error();
    SSL_free(tc->ssl);
    free(tc);
    return NULL;
}

const char *tls_verify_error(const struct tls_conn *tc)
{
    long v = SSL_get_verify_result(tc->ssl);
    return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}
