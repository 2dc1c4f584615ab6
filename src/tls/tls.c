/*
 * TLS termination with OpenSSL 3: the server contexts of listeners.
 *
 * The design problem is sharing: every worker thread accepts connections
 * for the same listeners, a reload may swap certificates under them, and a
 * session ticket issued by one worker must resume on any other.
 *
 * - A listener's certificates form a generation (struct gen): one SSL_CTX
 *   per certificate, all configured alike, and the SNI table. The default
 *   certificate's SSL_CTX owns the generation (ex_data with a free
 *   function), and every SSL made from it holds a reference to that
 *   SSL_CTX, so a generation lives exactly as long as a handshake or
 *   connection may still look at it. struct tls_srv only points at the
 *   live generation's default SSL_CTX, under a mutex held for the few
 *   instructions of an SSL_new(); a reload builds a whole new generation
 *   and swaps the pointer.
 * - Session tickets are encrypted with keys from a ring (struct ring)
 *   shared by every generation and thread of a listener: the current key
 *   encrypts, the previous ones still decrypt (and the ticket is renewed),
 *   and a new key is made every `ticket_rotate`.
 *
 * Connections themselves are in tls_io.c, client contexts in tls_cli.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/macros.h"
#include "tls/tls_int.h"

#define RING_KEYS 3
#define MAX_NAMES 4096

/* ---- ticket key ring ---- */

struct tkey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int64_t born; /* monotonic seconds */
};

struct ring {
    int refs;       /* under rings_mu */
    pthread_mutex_t mu;
    struct tkey keys[RING_KEYS]; /* [0] encrypts */
    int n;
    int64_t rotate; /* seconds */
    char name[64];  /* the listener address */
    struct ring *next;
};

/* Every ring of the process, by name: a reload's new contexts find the
 * keys of the listener they replace. */
static pthread_mutex_t rings_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ring *rings;

struct name {
    char *name; /* lower case; "*.example.com" for a wildcard */
    SSL_CTX *ctx;
};

/* One set of certificates of a listener. */
struct gen {
    SSL_CTX **ctxs; /* every certificate's context (references held) */
    size_t nctx, capctx;
    SSL_CTX *def;   /* the default one (also in ctxs) */
    struct name *names; /* sorted by name */
    size_t nnames, capnames;
};

struct tls_srv {
    const struct cfg_tls *ct; /* lives in the configuration snapshot */
    pthread_mutex_t mu;
    SSL_CTX *live;      /* default context of the live generation (ref) */
    struct gen *building;
    struct ring *ring;  /* NULL without tickets */
};

/* What to staple: a DER OCSP response. */
struct ocsp {
    unsigned char *der;
    size_t len;
};

static int gen_idx = -1, ring_idx = -1, ocsp_idx = -1;
int tls__cli_idx = -1;
/* fetched once: OpenSSL 3 would look the name up for every ticket */
static EVP_CIPHER *aes256cbc;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ALPN wire-format lists, by preference. */
static const unsigned char alpn_both[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h2[] = "\x02h2";
static const unsigned char alpn_h1[] = "\x08http/1.1";

static int64_t mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

const char *tls__reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : "unknown error";
}

static void ring_unref(struct ring *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&rings_mu);
    bool last = --r->refs == 0;
    if (last) {
        struct ring **pp = &rings;
        while (*pp != r)
            pp = &(*pp)->next;
        *pp = r->next;
    }
    pthread_mutex_unlock(&rings_mu);
    if (!last)
        return;
    pthread_mutex_destroy(&r->mu);
    OPENSSL_cleanse(r->keys, sizeof(r->keys));
    free(r);
}

static void ring_ref(struct ring *r)
{
    pthread_mutex_lock(&rings_mu);
    r->refs++;
    pthread_mutex_unlock(&rings_mu);
}

static void gen_free(struct gen *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->nnames; i++)
        free(g->names[i].name);
    free(g->names);
    for (size_t i = 0; i < g->nctx; i++)
        if (g->ctxs[i] != g->def)
            SSL_CTX_free(g->ctxs[i]);
    free(g->ctxs);
    free(g);
}

/* ex_data free functions: a default SSL_CTX owns its generation; every
 * SSL_CTX holds a ring reference and its OCSP response. */
static void free_gen(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                     long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    gen_free(ptr);
}

static void free_ring(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                      long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    ring_unref(ptr);
}

static void free_ocsp(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                      long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct ocsp *o = ptr;
    if (o != NULL)
        free(o->der);
    free(o);
}

static void init_once(void)
{
    OPENSSL_init_ssl(0, NULL);
    gen_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_gen);
    ring_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ring);
    ocsp_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ocsp);
    aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    tls__cli_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void tls__init(void)
{
    pthread_once(&once, init_once);
}

/* ---- ticket keys ---- */

static int new_key(struct tkey *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
        RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -EIO;
    k->born = mono_sec();
    return 0;
}

/* The ring named <name> (a new reference), made when there is none;
 * <rotate_sec> becomes its period. NULL when out of memory. */
static struct ring *ring_get(const char *name, int64_t rotate_sec)
{
    struct ring *r;
    pthread_mutex_lock(&rings_mu);
    for (r = rings; r != NULL; r = r->next)
        if (strcmp(r->name, name) == 0)
            break;
    if (r != NULL) {
        r->refs++;
        pthread_mutex_lock(&r->mu);
        r->rotate = rotate_sec > 0 ? rotate_sec : 3600;
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_unlock(&rings_mu);
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || new_key(&r->keys[0]) < 0) {
        pthread_mutex_unlock(&rings_mu);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->refs = 1;
    r->n = 1;
    r->rotate = rotate_sec > 0 ? rotate_sec : 3600;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->next = rings;
    rings = r;
    pthread_mutex_unlock(&rings_mu);
    return r;
}

/* Copies the key to encrypt with into <out>, rotating first when the
 * current one is older than the rotation period. */
static int ring_current(struct ring *r, struct tkey *out)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (mono_sec() - r->keys[0].born >= r->rotate) {
        struct tkey k;
        if (new_key(&k) == 0) {
            memmove(&r->keys[1], &r->keys[0], sizeof(r->keys[0]) * (RING_KEYS - 1));
            r->keys[0] = k;
            if (r->n < RING_KEYS)
                r->n++;
            OPENSSL_cleanse(&k, sizeof(k));
        }
    }
    *out = r->keys[0];
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Finds the key named <name>: 0 for the current one, > 0 for an older one,
 * -1 when it is gone. */
static int ring_find(struct ring *r, const unsigned char *name, struct tkey *out)
{
    int found = -1;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++) {
        if (memcmp(r->keys[i].name, name, sizeof(r->keys[i].name)) == 0) {
            *out = r->keys[i];
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb: AES-256-CBC + HMAC-SHA256, as
 * OpenSSL's own default ticket format. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    struct ring *r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ring_idx);
    struct tkey k;
    int ret = 1;
    if (r == NULL)
        return 0;
    if (enc) {
        ring_current(r, &k);
        memcpy(name, k.name, sizeof(k.name));
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes256cbc)) != 1)
            ret = -1;
    } else {
        int i = ring_find(r, name, &k);
        if (i < 0)
            return 0; /* unknown or expired key: a full handshake */
        /* 2: renew. A resumed handshake then carries a fresh ticket,
         * which clients that use a ticket once need (RFC 8446 §C.4), and
         * an old key's ticket is replaced by a current one */
        ret = 2;
        (void)i;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (ret > 0 &&
        (EVP_MAC_init(hctx, k.hmac, sizeof(k.hmac), params) != 1 ||
         (enc ? EVP_EncryptInit_ex(ectx, aes256cbc, NULL, k.aes, iv)
              : EVP_DecryptInit_ex(ectx, aes256cbc, NULL, k.aes, iv)) != 1))
        ret = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return ret;
}

/* ---- callbacks of every server context ---- */

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)s;
    const unsigned char *ours = arg;
    unsigned char *sel;
    /* ours is one of the static lists above, NUL-terminated */
    if (SSL_select_next_proto(&sel, outlen, ours, (unsigned)strlen((const char *)ours),
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct name *)a)->name, ((const struct name *)b)->name);
}

static SSL_CTX *gen_lookup(const struct gen *g, const char *name)
{
    struct name key = { (char *)name, NULL };
    struct name *hit = bsearch(&key, g->names, g->nnames, sizeof(*g->names), cmp_name);
    if (hit != NULL)
        return hit->ctx;
    /* a wildcard stands for exactly one leftmost label (RFC 6125 §6.4.3) */
    const char *dot = strchr(name, '.');
    if (dot == NULL || dot == name || dot[1] == '\0')
        return NULL;
    char wild[260];
    int n = snprintf(wild, sizeof(wild), "*%s", dot);
    if (n < 0 || (size_t)n >= sizeof(wild))
        return NULL;
    key.name = wild;
    hit = bsearch(&key, g->names, g->nnames, sizeof(*g->names), cmp_name);
    return hit != NULL ? hit->ctx : NULL;
}

/* SNI: switch to the certificate named by the client, if it is not the
 * default one already. Unknown names get the default certificate. */
static int sni_cb(SSL *s, int *alert, void *arg)
{
    (void)alert, (void)arg;
    const char *sn = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (sn == NULL)
        return SSL_TLSEXT_ERR_OK;
    struct gen *g = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), gen_idx);
    if (g == NULL || g->nctx < 2)
        return SSL_TLSEXT_ERR_OK;
    char low[256];
    size_t i = 0;
    for (; sn[i] != '\0' && i < sizeof(low) - 1; i++)
        low[i] = ascii_lower(sn[i]);
    low[i] = '\0';
    if (i > 0 && low[i - 1] == '.')
        low[i - 1] = '\0';
    SSL_CTX *ctx = gen_lookup(g, low);
    if (ctx != NULL && ctx != SSL_get_SSL_CTX(s))
        SSL_set_SSL_CTX(s, ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int ocsp_cb(SSL *s, void *arg)
{
    (void)arg;
    struct ocsp *o = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ocsp_idx);
    if (o == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_memdup(o->der, o->len); /* SSL frees it */
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    SSL_set_tlsext_status_ocsp_resp(s, copy, (long)o->len);
    return SSL_TLSEXT_ERR_OK;
}

/* ---- building contexts ---- */

#define FAIL TLS__FAIL

/* A server context with the listener's settings, no certificate yet. */
static SSL_CTX *ctx_new(struct tls_srv *srv, const char **what, char *err,
                        size_t errlen)
{
    const struct cfg_tls *ct = srv->ct;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s", tls__reason());
        return NULL;
    }
    uint64_t opts = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (!ct->tickets)
        opts |= SSL_OP_NO_TICKET;
    /* asked only of a kernel that has it: OpenSSL would otherwise try
     * two setsockopt() per handshake that can only fail */
    if (ct->ktls && tls_ktls_available())
        opts |= SSL_OP_ENABLE_KTLS;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(ctx, ct->min_version);
    SSL_CTX_set_max_proto_version(ctx, ct->max_version);
    *what = "ciphers";
    if (SSL_CTX_set_cipher_list(ctx, ct->ciphers) != 1)
        FAIL("no usable cipher in \"%s\" (%s)", ct->ciphers, tls__reason());
    *what = "ciphersuites";
    if (SSL_CTX_set_ciphersuites(ctx, ct->ciphersuites) != 1)
        FAIL("no usable TLS 1.3 suite in \"%s\" (%s)", ct->ciphersuites, tls__reason());
    *what = "groups";
    if (SSL_CTX_set1_groups_list(ctx, ct->groups) != 1)
        FAIL("unknown group in \"%s\" (%s)", ct->groups, tls__reason());
    *what = NULL;
    /* tickets only: no server-side session cache to lock and grow */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char sid[] = "gatehouse";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* one TLS 1.3 ticket per full handshake, not OpenSSL's two: a client
     * resumes one connection with it, and each ticket costs an encryption
     * and a record on every new connection */
    SSL_CTX_set_num_tickets(ctx, 1);
    if (srv->ring != NULL) {
        /* a ticket stays good while its key is in the ring: two periods
         * at least (rotation is lazy, on the next ticket made) */
        SSL_CTX_set_timeout(ctx, (long)(2 * srv->ring->rotate));
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
        ring_ref(srv->ring);
        SSL_CTX_set_ex_data(ctx, ring_idx, srv->ring);
    }
    const unsigned char *alpn = ct->alpn_h2 && ct->alpn_http11 ? alpn_both
                                : ct->alpn_h2                  ? alpn_h2
                                                               : alpn_h1;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, (void *)alpn);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    if (ct->client_ca != NULL) {
        *what = "client_ca";
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ct->client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, ct->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            FAIL("cannot load CA certificates from %s (%s)", ct->client_ca, tls__reason());
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        *what = NULL;
    }
    if (ct->verify != CFG_VERIFY_OFF) {
        int mode = SSL_VERIFY_PEER;
        if (ct->verify == CFG_VERIFY_REQUIRED)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, ct->verify_depth);
    }
    return ctx;
Fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Reads a whole (small) file; caller frees. NULL with the error written. */
static unsigned char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *p = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= 1u << 20) {
                snprintf(err, errlen, "%s: larger than 1MiB", path);
                goto Fail;
            }
            cap = cap ? cap * 2 : 4096;
            unsigned char *q = realloc(p, cap);
            if (q == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto Fail;
            }
            p = q;
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        goto Fail;
    }
    fclose(f);
    *len = n;
    return p;
Fail:
    fclose(f);
    free(p);
    return NULL;
}

/* Checks that <der> is a successful OCSP response covering <leaf> (when its
 * issuer is known) and still current, and attaches it to <ctx>. */
static int load_ocsp(SSL_CTX *ctx, const char *path, X509 *leaf, char *err, size_t errlen)
{
    size_t len = 0;
    unsigned char *der = slurp(path, &len, err, errlen);
    if (der == NULL)
        return -EINVAL;
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *basic = NULL;
    OCSP_CERTID *id = NULL;
    struct ocsp *o = NULL;
    int rc = -EINVAL;
    if (resp == NULL || p != der + len)
        FAIL("%s is not a DER OCSP response", path);
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        FAIL("%s: the OCSP responder answered \"%s\"", path,
             OCSP_response_status_str(OCSP_response_status(resp)));
    basic = OCSP_response_get1_basic(resp);
    if (basic == NULL)
        FAIL("%s: no basic OCSP response inside", path);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509 *issuer = NULL;
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if (X509_check_issued(c, leaf) == X509_V_OK) {
            issuer = c;
            break;
        }
    }
    if (issuer != NULL) {
        int status, reason;
        ASN1_GENERALIZEDTIME *rev, *thisu, *nextu;
        id = OCSP_cert_to_id(NULL, leaf, issuer);
        if (id == NULL || OCSP_resp_find_status(basic, id, &status, &reason, &rev,
                                                &thisu, &nextu) != 1)
            FAIL("%s does not cover this certificate", path);
        if (status == V_OCSP_CERTSTATUS_REVOKED)
            FAIL("%s says this certificate is revoked", path);
        if (OCSP_check_validity(thisu, nextu, 300, -1) != 1)
            FAIL("%s has expired or is not yet valid (fetch a fresh one)", path);
    }
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        FAIL("%s: out of memory", path);
    o->der = der;
    o->len = len;
    der = NULL;
    SSL_CTX_set_ex_data(ctx, ocsp_idx, o);
    SSL_CTX_set_tlsext_status_cb(ctx, ocsp_cb);
    rc = 0;
Fail:
    ERR_clear_error();
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    free(der);
    return rc;
}

static int add_chain(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(path, "r");
    if (b == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        ERR_clear_error();
        return -EINVAL;
    }
    int n = 0, rc = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            snprintf(err, errlen, "%s: %s", path, tls__reason());
            rc = -EINVAL;
            break;
        }
        n++;
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    BIO_free(b);
    if (rc == 0 && n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", path);
        rc = -EINVAL;
    }
    return rc;
}

static int gen_add_name(struct gen *g, const char *name, size_t len, SSL_CTX *ctx)
{
    if (len == 0 || len > 253 || g->nnames >= MAX_NAMES)
        return 0;
    for (size_t i = 0; i < g->nnames; i++)
        if (strlen(g->names[i].name) == len &&
            strncasecmp(g->names[i].name, name, len) == 0)
            return 0; /* the first certificate naming it wins */
    if (g->nnames == g->capnames) {
        size_t cap = g->capnames ? g->capnames * 2 : 8;
        struct name *n = realloc(g->names, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        g->names = n;
        g->capnames = cap;
    }
    char *s = malloc(len + 1);
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        s[i] = ascii_lower(name[i]);
    s[len] = '\0';
    g->names[g->nnames++] = (struct name){ s, ctx };
    return 0;
}

/* The DNS names of <x>: its subjectAltName entries, else its CN. */
static int gen_add_names(struct gen *g, X509 *x, SSL_CTX *ctx)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0, rc = 0;
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && rc == 0; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS)
            continue;
        const ASN1_STRING *s = gn->d.dNSName;
        rc = gen_add_name(g, (const char *)ASN1_STRING_get0_data(s),
                          (size_t)ASN1_STRING_length(s), ctx);
        found++;
    }
    GENERAL_NAMES_free(sans);
    if (found == 0 && rc == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
                                          cn, sizeof(cn));
        if (n > 0)
            rc = gen_add_name(g, cn, (size_t)n, ctx);
    }
    ERR_clear_error();
    return rc;
}

static int gen_push(struct gen *g, SSL_CTX *ctx)
{
    if (g->nctx == g->capctx) {
        size_t cap = g->capctx ? g->capctx * 2 : 4;
        SSL_CTX **c = realloc(g->ctxs, cap * sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        g->ctxs = c;
        g->capctx = cap;
    }
    g->ctxs[g->nctx++] = ctx;
    return 0;
}

/* Builds the context of one certificate into generation <g>. */
static int gen_add(struct tls_srv *srv, struct gen *g, const struct cfg_tls_cert *cc,
                   const char **what, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_new(srv, what, err, errlen);
    if (ctx == NULL)
        return -EINVAL;
    *what = "cert";
    FILE *f = fopen(cc->cert, "re");
    if (f == NULL)
        FAIL("cannot open %s: %s", cc->cert, strerror(errno));
    fclose(f);
    if (SSL_CTX_use_certificate_chain_file(ctx, cc->cert) != 1)
        FAIL("cannot load a PEM certificate from %s (%s)", cc->cert, tls__reason());
    if (cc->chain != NULL) {
        *what = "chain";
        if (add_chain(ctx, cc->chain, err, errlen) < 0)
            goto Fail;
    }
    *what = cc->key != NULL ? "key" : "cert";
    const char *key = cc->key != NULL ? cc->key : cc->cert;
    f = fopen(key, "re");
    if (f == NULL)
        FAIL("cannot open %s: %s", key, strerror(errno));
    fclose(f);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        const char *why = tls__reason();
        if (strcmp(why, "key values mismatch") == 0)
            FAIL("the key in %s does not match the certificate in %s", key, cc->cert);
        if (cc->key == NULL)
            FAIL("no private key in %s (name its file with \"key\")", key);
        FAIL("cannot load a PEM private key from %s (%s)", key, why);
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        FAIL("the key in %s does not match the certificate in %s", key, cc->cert);
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (cc->ocsp != NULL) {
        *what = "ocsp";
        if (load_ocsp(ctx, cc->ocsp, leaf, err, errlen) < 0)
            goto Fail;
    }
    *what = "cert";
    if (gen_push(g, ctx) < 0)
        FAIL("out of memory");
    if (gen_add_names(g, leaf, ctx) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM; /* ctx is in g now */
    }
    if (cc->is_default || g->def == NULL)
        g->def = ctx;
    return 0;
Fail:
    SSL_CTX_free(ctx);
    return -EINVAL;
}

/* ---- tls_srv ---- */

struct tls_srv *tls_srv_new(const struct cfg_tls *ct, const char *name, char *err,
                            size_t errlen)
{
    tls__init();
    struct tls_srv *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ct = ct;
    pthread_mutex_init(&s->mu, NULL);
    if (ct->tickets) {
        s->ring = ring_get(name, ct->ticket_rotate / 1000);
        if (s->ring == NULL) {
            snprintf(err, errlen, "cannot make session ticket keys");
            tls_srv_free(s);
            return NULL;
        }
    }
    return s;
}

int tls_srv_add(struct tls_srv *s, const struct cfg_tls_cert *cc,
                const char **what, char *err, size_t errlen)
{
    *what = NULL;
    if (s->building == NULL) {
        s->building = calloc(1, sizeof(*s->building));
        if (s->building == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    return gen_add(s, s->building, cc, what, err, errlen);
}

int tls_srv_commit(struct tls_srv *s, char *err, size_t errlen)
{
    struct gen *g = s->building;
    if (g == NULL || g->def == NULL) {
        snprintf(err, errlen, "no certificate");
        return -EINVAL;
    }
    s->building = NULL;
    qsort(g->names, g->nnames, sizeof(*g->names), cmp_name);
    SSL_CTX_set_ex_data(g->def, gen_idx, g); /* the default owns it now */
    pthread_mutex_lock(&s->mu);
    SSL_CTX *old = s->live;
    s->live = g->def;
    pthread_mutex_unlock(&s->mu);
    SSL_CTX_free(old); /* its generation goes with its last connection */
    return 0;
}

int tls_srv_reload(struct tls_srv *s, char *err, size_t errlen)
{
    const struct cfg_tls *ct = s->ct;
    for (size_t i = 0; i < ct->ncerts; i++) {
        const char *what;
        char e[512];
        if (tls_srv_add(s, &ct->certs[i], &what, e, sizeof(e)) < 0) {
            snprintf(err, errlen, "%s: %s", what ? what : "tls", e);
            gen_free(s->building);
            s->building = NULL;
            return -EINVAL;
        }
    }
    return tls_srv_commit(s, err, errlen);
}

int tls_reload_all(const struct cfg *cfg, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        char e[512];
        if (l->tls == NULL || l->tls->srv == NULL)
            continue;
        if (tls_srv_reload(l->tls->srv, e, sizeof(e)) < 0 && rc == 0) {
            snprintf(err, errlen, "%s: %s", l->addr.text, e);
            rc = -EINVAL;
        }
    }
    return rc;
}

void tls_srv_free(struct tls_srv *s)
{
    if (s == NULL)
        return;
    gen_free(s->building);
    SSL_CTX_free(s->live);
    ring_unref(s->ring);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

struct tls_conn *tls_accept(struct tls_srv *s, int fd)
{
    struct tls_conn *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    pthread_mutex_lock(&s->mu);
    tc->ssl = SSL_new(s->live); /* holds its own reference to the context */
    pthread_mutex_unlock(&s->mu);
    if (tc->ssl == NULL || SSL_set_fd(tc->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(tc->ssl);
        free(tc);
        return NULL;
    }
    tls__watch_reads(tc->ssl);
    SSL_set_accept_state(tc->ssl);
    return tc;
}
