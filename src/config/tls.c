/*
 * TLS and HTTP/2 options: a listener's "tls" and "http2" mappings and the
 * site options that only make sense with TLS ("redirect_https", "hsts").
 *
 * A listener's TLS contexts are built here, while the file is read: a
 * certificate that cannot be loaded, a key that does not match it or a
 * stale OCSP response is a configuration error at the position of the
 * offending key, so "gatehouse -t" checks certificates too. The contexts
 * belong to the snapshot and are freed with it.
 *
 * The defaults follow Mozilla's "intermediate" server profile without its
 * DHE suites: TLS 1.2 and 1.3, ECDHE key exchange and AEAD ciphers only,
 * in the server's order of preference.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"
#include "tls/tls.h"

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

#define TLS12 0x0303
#define TLS13 0x0304

static const char default_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char default_suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char default_groups[] = "X25519:P-256:P-384";

/* ---- certificates ---- */

static int set_path(struct cfg__ld *ld, const struct cfg__node *v,
                    const char **out)
{
    return cfg__str(ld, v, false, out);
}

#define PATH_FN(fn, member)                                                    \
    static int fn(struct cfg__ld *ld, const struct cfg__node *v, void *obj)    \
    {                                                                          \
        return set_path(ld, v, &((struct cfg_tls_cert *)obj)->member);         \
    }
PATH_FN(set_cert, cert)
PATH_FN(set_key, key)
PATH_FN(set_chain, chain)
PATH_FN(set_ocsp, ocsp)

static const struct cfg__field cert_fields[] = {
    CFG__F_FN("cert", set_cert),
    CFG__F_FN("key", set_key),
    CFG__F_FN("chain", set_chain),
    CFG__F_FN("ocsp", set_ocsp),
    CFG__F_BOOL("default", struct cfg_tls_cert, is_default),
};

static int set_certs(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_tls *t = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one certificate");
    t->certs = cfg__array(ld, v->n, sizeof(*t->certs));
    if (t->certs == NULL)
        return -ENOMEM;
    const struct cfg__node *first_default = NULL;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        struct cfg_tls_cert *c = &t->certs[t->ncerts];
        if (it->type == CFG_N_SCALAR) { /* shorthand: one PEM with the key */
            rc = set_path(ld, it, &c->cert);
        } else {
            rc = cfg__want(ld, it, CFG_N_MAP);
            if (rc == 0)
                rc = cfg__walk(ld, it, "certificate", cert_fields,
                               NFIELDS(cert_fields), c);
            if (rc == 0 && c->cert == NULL)
                rc = cfg__fail(ld, it, "missing \"cert\" in certificate");
        }
        if (rc != 0)
            return rc;
        if (c->is_default) {
            const struct cfg__node *d = cfg__map_get(it, "default");
            if (first_default != NULL)
                return cfg__bad(ld, d, "only one certificate can be the "
                                       "default (the first is at %u:%u)",
                                first_default->line, first_default->col);
            first_default = d;
        }
        t->ncerts++;
    }
    return 0;
}

/* ---- protocol settings ---- */

static int set_protocols(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    static const char *const names[] = { "TLSv1.2", "TLSv1.3" };
    static const int vals[] = { TLS12, TLS13 };
    struct cfg_tls *t = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list at least one of TLSv1.2, TLSv1.3");
    t->min_version = TLS13;
    t->max_version = TLS12;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        size_t i;
        if (it->type == CFG_N_SCALAR &&
            (str_eq(it->val, STR_LIT("TLSv1")) || str_eq(it->val, STR_LIT("TLSv1.1")) ||
             str_eq(it->val, STR_LIT("SSLv3"))))
            return cfg__bad(ld, it, "%s is obsolete and not offered (RFC 8996); "
                                    "expected TLSv1.2 or TLSv1.3", it->val.p);
        rc = cfg__enum(ld, it, names, NFIELDS(names), &i);
        if (rc != 0)
            return rc;
        t->min_version = vals[i] < t->min_version ? vals[i] : t->min_version;
        t->max_version = vals[i] > t->max_version ? vals[i] : t->max_version;
    }
    return 0;
}

#define STR_FN(fn, member)                                                     \
    static int fn(struct cfg__ld *ld, const struct cfg__node *v, void *obj)    \
    {                                                                          \
        return cfg__str(ld, v, false, &((struct cfg_tls *)obj)->member);       \
    }
STR_FN(set_ciphers, ciphers)
STR_FN(set_suites, ciphersuites)
STR_FN(set_groups, groups)
STR_FN(set_client_ca, client_ca)

static int set_alpn(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "h2", "http/1.1" };
    struct cfg_tls *t = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    if (v->n == 0)
        return cfg__bad(ld, v, "must list h2, http/1.1 or both");
    t->alpn_h2 = t->alpn_http11 = false;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        size_t i;
        rc = cfg__enum(ld, it, names, NFIELDS(names), &i);
        if (rc != 0)
            return rc;
        if (i == 0)
            t->alpn_h2 = true;
        else
            t->alpn_http11 = true;
    }
    return 0;
}

static int set_verify(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    static const char *const names[] = { "off", "optional", "required" };
    static const enum cfg_verify vals[] = { CFG_VERIFY_OFF, CFG_VERIFY_OPTIONAL,
                                            CFG_VERIFY_REQUIRED };
    size_t i;
    /* YAML reads a bare off as a string here: booleans are only
       true/false in this loader */
    int rc = cfg__enum(ld, v, names, NFIELDS(names), &i);
    if (rc == 0)
        ((struct cfg_tls *)obj)->verify = vals[i];
    return rc;
}

#define T struct cfg_tls
static const struct cfg__field tls_fields[] = {
    CFG__F_FN("certificates", set_certs),
    CFG__F_FN("protocols", set_protocols),
    CFG__F_FN("ciphers", set_ciphers),
    CFG__F_FN("ciphersuites", set_suites),
    CFG__F_FN("groups", set_groups),
    CFG__F_FN("alpn", set_alpn),
    CFG__F_BOOL("tickets", T, tickets),
    CFG__F_MS("ticket_rotate", T, ticket_rotate, CFG__SEC, CFG__DAY),
    CFG__F_FN("client_ca", set_client_ca),
    CFG__F_FN("verify", set_verify),
    CFG__F_INT("verify_depth", T, verify_depth, 1, 16),
    CFG__F_BOOL("ktls", T, ktls),
    CFG__F_MS("handshake_timeout", T, handshake_timeout, 1, CFG__DAY),
};
#undef T

static void tls_defaults(struct cfg_tls *t)
{
    t->min_version = TLS12;
    t->max_version = TLS13;
    t->ciphers = default_ciphers;
    t->ciphersuites = default_suites;
    t->groups = default_groups;
    t->alpn_h2 = true;
    t->alpn_http11 = true;
    t->tickets = true;
    t->ticket_rotate = 3600 * CFG__SEC;
    t->verify = CFG_VERIFY_OFF;
    t->verify_depth = 4;
    t->ktls = true;
    t->handshake_timeout = 10 * CFG__SEC;
}

static void free_srv(void *p)
{
    tls_srv_free(p);
}

/* Reads every certificate into the listener's contexts; an error points
 * at the key of the certificate it is about. */
int cfg__tls_build(struct cfg__ld *ld, const struct cfg__node *v, struct cfg_listener *l)
{
    char err[512];
    struct cfg_tls *t = l->tls;
    /* ticket keys belong to the address: a reload keeps them */
    t->srv = tls_srv_new(t, l->addr.text, err, sizeof(err));
    if (t->srv == NULL) {
        const struct cfg__node *at = cfg__map_get(v, "client_ca");
        return cfg__bad(ld, at != NULL ? at : v, "%s", err);
    }
    if (cfg__arena_on_free(ld->a, free_srv, t->srv) != 0) {
        tls_srv_free(t->srv);
        t->srv = NULL;
        return cfg__fail(ld, v, "out of memory");
    }
    const struct cfg__node *certs = cfg__map_get(v, "certificates");
    const struct cfg__node *it = certs->head;
    for (size_t i = 0; i < t->ncerts; i++, it = it->next) {
        const char *what = NULL;
        if (tls_srv_add(t->srv, &t->certs[i], &what, err, sizeof(err)) == 0)
            continue;
        const struct cfg__node *at = NULL;
        if (what != NULL && it->type == CFG_N_MAP)
            at = cfg__map_get(it, what);
        if (at == NULL && what != NULL && it->type == CFG_N_MAP &&
            strcmp(what, "key") != 0 && strcmp(what, "cert") != 0 &&
            strcmp(what, "chain") != 0 && strcmp(what, "ocsp") != 0)
            at = cfg__map_get(v, what); /* a listener-wide setting */
        if (at == NULL && it->type == CFG_N_MAP)
            at = cfg__map_get(it, "cert");
        return cfg__bad(ld, at != NULL ? at : it, "%s", err);
    }
    if (tls_srv_commit(t->srv, err, sizeof(err)) != 0)
        return cfg__fail(ld, v, "%s", err);
    return 0;
}

int cfg__tls(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_listener *l = obj;
    struct cfg_tls *t = cfg__alloc(ld, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    tls_defaults(t);
    int rc = cfg__walk(ld, v, "tls", tls_fields, NFIELDS(tls_fields), t);
    if (rc != 0)
        return rc;
    if (t->ncerts == 0)
        return cfg__fail(ld, v, "missing \"certificates\" in tls");
    const struct cfg__node *vn = cfg__map_get(v, "verify");
    if (vn == NULL && t->client_ca != NULL)
        t->verify = CFG_VERIFY_REQUIRED;
    if (t->verify != CFG_VERIFY_OFF && t->client_ca == NULL)
        return cfg__bad(ld, vn, "needs \"client_ca\" (the CAs that sign "
                                "client certificates)");
    if (t->min_version == TLS13 && cfg__map_get(v, "ciphers") != NULL)
        return cfg__bad(ld, cfg__map_get(v, "ciphers"),
                        "only applies to TLSv1.2, which \"protocols\" leaves "
                        "out (TLS 1.3 uses \"ciphersuites\")");
    l->tls = t;
    return 0;
}

/* ---- http2 ---- */

static int set_window(struct cfg__ld *ld, const struct cfg__node *v,
                      uint64_t lo, uint32_t *out)
{
    uint64_t n;
    /* 2^31-1 is the largest window HTTP/2 allows (RFC 9113 §6.9.1) */
    int rc = cfg__bytes(ld, v, lo, 0x7fffffff, &n);
    if (rc == 0)
        *out = (uint32_t)n;
    return rc;
}

static int set_stream_window(struct cfg__ld *ld, const struct cfg__node *v,
                             void *obj)
{
    return set_window(ld, v, 64 * CFG__KIB, &((struct cfg_http2 *)obj)->stream_window);
}

static int set_conn_window(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    return set_window(ld, v, 64 * CFG__KIB, &((struct cfg_http2 *)obj)->conn_window);
}

#define H struct cfg_http2
static const struct cfg__field h2_fields[] = {
    CFG__F_BOOL("h2c", H, h2c),
    CFG__F_UINT("max_concurrent_streams", H, max_streams, 1, 10000),
    CFG__F_FN("stream_window", set_stream_window),
    CFG__F_FN("connection_window", set_conn_window),
    CFG__F_UINT("max_resets", H, max_resets, 1, 1000000),
    CFG__F_UINT("resets_per_second", H, reset_rate, 1, 1000000),
    CFG__F_UINT("max_glitches", H, max_glitches, 1, 1000000),
};
#undef H

void cfg__http2_defaults(struct cfg_http2 *h)
{
    *h = (struct cfg_http2){
        .h2c = false,
        .max_streams = 100,
        .stream_window = 64 * 1024,
        .conn_window = 1024 * 1024,
        .max_resets = 200,
        .reset_rate = 100,
        .max_glitches = 100,
    };
}

int cfg__http2(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_listener *l = obj;
    int rc = cfg__walk(ld, v, "http2", h2_fields, NFIELDS(h2_fields), &l->http2);
    if (rc != 0)
        return rc;
    if (l->http2.conn_window < l->http2.stream_window)
        return cfg__bad(ld, cfg__map_get(v, "connection_window"),
                        "must be at least stream_window");
    return 0;
}

/* ---- site options ---- */

int cfg__redirect_https(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_site *s = obj;
    uint64_t port;
    if (v->type == CFG_N_SCALAR && str_eq(v->val, STR_LIT("true"))) {
        s->redirect_https = 443;
        return 0;
    }
    if (v->type == CFG_N_SCALAR && str_eq(v->val, STR_LIT("false"))) {
        s->redirect_https = 0;
        return 0;
    }
    if (v->type != CFG_N_SCALAR || !cfg__num(v->val, 1, 65535, &port))
        return cfg__bad(ld, v, "expected true (port 443), false, or a port "
                               "1..65535");
    s->redirect_https = (unsigned)port;
    return 0;
}

struct hsts {
    cfg_ms max_age;
    bool subdomains, preload;
};

#define S struct hsts
static const struct cfg__field hsts_fields[] = {
    CFG__F_MS("max_age", S, max_age, 0, 100 * 365 * CFG__DAY),
    CFG__F_BOOL("include_subdomains", S, subdomains),
    CFG__F_BOOL("preload", S, preload),
};
#undef S

int cfg__hsts(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_site *s = obj;
    struct hsts h = { .max_age = 365 * CFG__DAY };
    int rc;
    if (v->type == CFG_N_SCALAR) {
        bool on;
        rc = cfg__bool(ld, v, &on);
        if (rc != 0 || !on)
            return rc;
    } else {
        rc = cfg__walk(ld, v, "hsts", hsts_fields, NFIELDS(hsts_fields), &h);
        if (rc != 0)
            return rc;
    }
    if (h.preload && (!h.subdomains || h.max_age < 365 * CFG__DAY))
        return cfg__bad(ld, cfg__map_get(v, "preload"),
                        "preload lists require include_subdomains: true and "
                        "a max_age of at least 365d");
    char buf[128];
    int n = snprintf(buf, sizeof(buf),
                     "Strict-Transport-Security: max-age=%lld%s%s\r\n",
                     (long long)(h.max_age / 1000),
                     h.subdomains ? "; includeSubDomains" : "",
                     h.preload ? "; preload" : "");
    s->hsts = cfg__arena_strndup(ld->a, buf, (size_t)n);
    return s->hsts != NULL ? 0 : cfg__fail(ld, v, "out of memory");
}

/* ---- TLS to upstream servers ---- */

#define UT struct cfg_upstream_tls
#define UPATH_FN(fn, member)                                                   \
    static int fn(struct cfg__ld *ld, const struct cfg__node *v, void *obj)    \
    {                                                                          \
        return set_path(ld, v, &((UT *)obj)->member);                          \
    }
UPATH_FN(set_ut_ca, ca)
UPATH_FN(set_ut_cert, cert)
UPATH_FN(set_ut_key, key)

static int set_ut_name(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    UT *ut = obj;
    int rc = cfg__str(ld, v, false, &ut->name);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < v->val.len; i++) {
        char c = v->val.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return cfg__bad(ld, v, "expected a host name such as app.internal");
    }
    return 0;
}

static const struct cfg__field ut_fields[] = {
    CFG__F_BOOL("verify", UT, verify),
    CFG__F_FN("ca", set_ut_ca),
    CFG__F_FN("name", set_ut_name),
    CFG__F_FN("cert", set_ut_cert),
    CFG__F_FN("key", set_ut_key),
};
#undef UT

int cfg__upstream_tls(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg_upstream *u = obj;
    struct cfg_upstream_tls *ut = cfg__alloc(ld, sizeof(*ut));
    if (ut == NULL)
        return -ENOMEM;
    ut->verify = true;
    int rc;
    if (v->type == CFG_N_SCALAR) {
        bool on;
        rc = cfg__bool(ld, v, &on);
        if (rc != 0 || !on)
            return rc;
    } else {
        rc = cfg__walk(ld, v, "tls", ut_fields, NFIELDS(ut_fields), ut);
        if (rc != 0)
            return rc;
        if (ut->key != NULL && ut->cert == NULL)
            return cfg__bad(ld, cfg__map_get(v, "key"), "needs \"cert\"");
        if (!ut->verify && ut->ca != NULL)
            return cfg__bad(ld, cfg__map_get(v, "ca"),
                            "is not used with verify: false");
    }
    u->tls = ut;
    return 0;
}

static void free_cli(void *p)
{
    tls_cli_free(p);
}

int cfg__upstream_tls_build(struct cfg__ld *ld, const struct cfg__node *v,
                            struct cfg_upstream *u)
{
    char err[512];
    const char *what = NULL;
    const struct cfg__node *tn = cfg__map_get(v, "tls");
    u->tls->cli = tls_cli_new(u->tls, u->nservers, &what, err, sizeof(err));
    if (u->tls->cli == NULL) {
        const struct cfg__node *at = what != NULL ? cfg__map_get(tn, what) : NULL;
        return cfg__bad(ld, at != NULL ? at : tn, "%s", err);
    }
    if (cfg__arena_on_free(ld->a, free_cli, u->tls->cli) != 0) {
        tls_cli_free(u->tls->cli);
        u->tls->cli = NULL;
        return cfg__fail(ld, tn, "out of memory");
    }
    return 0;
}
