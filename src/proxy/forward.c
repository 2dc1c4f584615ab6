/*
 * The forward proxy: what a forward listener does with a request before the
 * shared pipeline (txn.c) takes over.
 *
 * A reverse listener sends each request to servers its configuration names;
 * a forward listener sends it wherever the request says, which makes every
 * decision here one about whether to let it:
 *
 *   client address   forward.allow / forward.deny           403
 *   credentials      forward.auth (Basic, htpasswd)         407
 *   destination      scheme http, a sane host name           400
 *                    connect_ports / http_ports             403
 *                    allow_hosts / deny_hosts (by name)     403
 *   resolve          c-ares, cached (upstream/dns.c)        502 dns_error
 *   address          deny_addresses, our own listeners,     403
 *                    unspecified/multicast (after DNS, so   destination_ip_
 *                    a name cannot smuggle in an address)   prohibited
 *
 * Then absolute-form requests go to a per-worker origin pool (upstream/
 * origin.c) with keep-alive, through the same txn_connect() and pumps as a
 * reverse request; CONNECT opens a fresh connection, answers 200 and
 * becomes a tunnel (splice(2) when both sides are plain TCP, tunnel.c).
 *
 * Every refusal answers with a Proxy-Status (RFC 9209) naming the rule,
 * and the access log's reason names it too. With forward.cache, an
 * admitted GET/HEAD is looked up in the shared cache (its keys begin with
 * "forward ", apart from the sites'): a hit is answered before DNS, a miss
 * goes on and the shared response path stores it (cache_glue.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "core/sock.h"
#include "proxy/cache_glue.h"
#include "proxy/proxy_int.h"
#include "security/acl.h"
#include "security/auth.h"
#include "upstream/dns.h"
#include "upstream/origin.h"

#define MAX_NAME 253

struct fwd_worker {
    struct dns *dns;
    struct origins *origins;
    struct auth *auth;
    union sockaddr_any *local; /* this host's interface addresses */
    size_t nlocal;
};

/* One forward request's state, in its arena. */
struct fwd_txn {
    struct txn *t;
    const struct cfg_forward *f;
    struct fwd_worker *fw;
    struct dns_query *q;   /* while resolving */
    struct timer tm;       /* an authentication failure's wait */
    const char *why;       /* the 407's reason, while waiting */
    char name[MAX_NAME + 1]; /* host to resolve; IPv6 without brackets */
    int port;
};

/* ---- per worker ---- */

static int local_addrs(struct fwd_worker *fw)
{
    struct ifaddrs *ifa;
    if (getifaddrs(&ifa) == -1)
        return -errno;
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next)
        n += i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
                                     i->ifa_addr->sa_family == AF_INET6);
    fw->local = calloc(n ? n : 1, sizeof(*fw->local));
    if (fw->local == NULL) {
        freeifaddrs(ifa);
        return -ENOMEM;
    }
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            memcpy(&fw->local[fw->nlocal++].in, i->ifa_addr, sizeof(struct sockaddr_in));
        else if (i->ifa_addr->sa_family == AF_INET6)
            memcpy(&fw->local[fw->nlocal++].in6, i->ifa_addr, sizeof(struct sockaddr_in6));
    }
    freeifaddrs(ifa);
    return 0;
}

/* Built at worker start whether or not the configuration has a forward
 * listener: a reload may add one, and by then the worker is in its sandbox,
 * where /etc/resolv.conf, /etc/hosts and the interface list can no longer
 * be read. It costs a c-ares channel with no socket and a few small
 * tables. The dns settings are those at start (a reload does not change
 * them); the authentication state is made on first use (memory only). */
int fwd_worker_new(struct worker *w)
{
    const struct cfg *cfg = w->cfg;
    unsigned max = 1024;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_forward *f = cfg->listeners[i].forward;
        if (f != NULL)
            max = MAX(max, f->max_origins);
    }
    struct fwd_worker *fw = calloc(1, sizeof(*fw));
    if (fw == NULL)
        return -ENOMEM;
    w->fwd = fw;
    int err = 0;
    fw->dns = dns_new(w->loop, &cfg->dns, &err);
    if (fw->dns == NULL)
        return err;
    fw->origins = origins_new(w->loop, max);
    if (fw->origins == NULL)
        return -ENOMEM;
    return local_addrs(fw);
}

void fwd_worker_free(struct worker *w)
{
    struct fwd_worker *fw = w->fwd;
    if (fw == NULL)
        return;
    dns_free(fw->dns);
    origins_free(fw->origins);
    auth_free(fw->auth);
    free(fw->local);
    free(fw);
    w->fwd = NULL;
}

/* ---- answers ---- */

/* Answers <status> with a short body and "Proxy-Status: gatehouse;
 * error=<error>" plus <params> (already formatted, e.g. "; details=\"x\"");
 * <reason> goes to the access log. <extra> are more header lines. */
static void answer(struct txn *t, int status, const char *error,
                   const char *reason, const char *params, const char *msg,
                   const char *extra)
{
    if (t->reason == NULL)
        t->reason = reason != NULL ? reason : error;
    char *body = pool_alloc(t->pool, 512);
    char *hdr = pool_alloc(t->pool, 768);
    if (body == NULL || hdr == NULL) {
        conn_close(t->c);
        return;
    }
    int bl = snprintf(body, 512, "%d %s\n%s\n", status, h1_reason(status), msg);
    bl = bl < 0 ? 0 : MIN(bl, 511);
    snprintf(hdr, 768, "Proxy-Status: gatehouse; error=%s%s\r\n%s", error,
             params ? params : "", extra ? extra : "");
    txn_local(t, status, "text/plain; charset=utf-8", body, (size_t)bl, hdr);
}

/* 403 (or another status) naming the rule that refused. */
static void deny(struct txn *t, int status, const char *error,
                 const char *rule, const char *msg)
{
    char params[300];
    if (status == 403) /* a client, destination or address rule */
        stats_denied(t->c->w, MG_DENIED_ACL);
    snprintf(params, sizeof(params), "; details=\"%s\"", rule);
    char *reason = pool_strndup(t->pool, rule, strlen(rule));
    answer(t, status, error, reason ? reason : error, params, msg, NULL);
}

static void ask_credentials(struct txn *t, const struct cfg_forward *f,
                            const char *why)
{
    char extra[200];
    stats_denied(t->c->w, MG_DENIED_AUTH);
    snprintf(extra, sizeof(extra),
             "Proxy-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n",
             f->realm);
    char params[64];
    snprintf(params, sizeof(params), "; details=\"%s\"", why);
    answer(t, 407, "http_request_denied", why, params,
           "This proxy needs a user name and password.", extra);
}

/* ---- the request target ---- */

/* Host and port of <a> (absolute-form authority or CONNECT target) into
 * fx->name (lower case, IPv6 without brackets) and fx->port. Returns NULL
 * or why the host is refused. Names are letters, digits, '-', '_' and dots;
 * a last label of digits must make a dotted-quad address, so 2130706433 or
 * 127.1 (which some resolvers read as 127.0.0.1) are refused rather than
 * guessed at. */
static const char *split_target(struct fwd_txn *fx, struct str a, int dflt)
{
    struct str host = a, port = STR_NULL;
    bool v6 = a.len > 0 && a.p[0] == '[';
    if (v6) {
        const char *rb = memchr(a.p, ']', a.len);
        if (rb == NULL)
            return "bad_host";
        host = str_make(a.p + 1, (size_t)(rb - a.p) - 1);
        if ((size_t)(rb + 1 - a.p) < a.len)
            port = str_make(rb + 2, a.len - (size_t)(rb + 2 - a.p));
    } else {
        const char *colon = memchr(a.p, ':', a.len);
        if (colon != NULL) {
            host = str_make(a.p, (size_t)(colon - a.p));
            port = str_make(colon + 1, a.len - host.len - 1);
        }
    }
    if (!v6 && host.len > 0 && host.p[host.len - 1] == '.')
        host.len--;
    if (host.len == 0 || host.len > MAX_NAME)
        return "bad_host";
    int p = 0;
    for (size_t i = 0; i < port.len; i++)
        p = p * 10 + (port.p[i] - '0'); /* digits, <= 65535: the parser */
    fx->port = port.len > 0 ? p : dflt;
    if (fx->port <= 0)
        return "bad_port";
    for (size_t i = 0; i < host.len; i++)
        fx->name[i] = ascii_lower(host.p[i]);
    fx->name[host.len] = '\0';
    unsigned char tmp[16];
    if (v6)
        return inet_pton(AF_INET6, fx->name, tmp) == 1 ? NULL : "bad_host";
    size_t label = 0;
    bool digits = true;
    for (size_t i = 0; i <= host.len; i++) {
        char ch = fx->name[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0)
                return "bad_host"; /* empty label: "a..b", ".a" */
            if (ch == '\0' && digits &&
                inet_pton(AF_INET, fx->name, tmp) != 1)
                return "bad_host";
            label = 0;
            digits = true;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return "bad_host";
        digits &= ch >= '0' && ch <= '9';
        label++;
    }
    return NULL;
}

/* ---- access rules ---- */

/* The rule refusing this client, or NULL. */
static const char *client_rule(const struct cfg_forward *f,
                               const struct sockaddr *sa, char *buf,
                               size_t len)
{
    const struct cfg_cidr *r = acl_cidr_find(f->deny, f->ndeny, sa);
    if (r != NULL) {
        snprintf(buf, len, "forward.deny:%s", r->text);
        return buf;
    }
    if (acl_cidr_find(f->allow, f->nallow, sa) == NULL)
        return "forward.allow";
    return NULL;
}

static bool addr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                  16) == 0;
}

static bool is_wildcard(const struct sockaddr *sa)
{
    static const struct cfg_cidr any[] = {
        { AF_INET, 32, { 0 }, "" },
        { AF_INET6, 128, { 0 }, "" },
    };
    return acl_cidr_find(any, 2, sa) != NULL;
}

/* True when <sa> is one of our own listeners: a request there would loop
 * back into us. A wildcard listener is reached through any local address. */
static bool is_self(const struct fwd_worker *fw, const struct cfg *cfg,
                    const struct sockaddr *sa)
{
    static const struct cfg_cidr loop[] = {
        { AF_INET, 8, { 127 }, "" },
        { AF_INET6, 128, { [15] = 1 }, "" },
    };
    int port = sock_port(sa);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&cfg->listeners[i].addr.ss;
        if (sock_port(l) != port)
            continue;
        if (addr_eq(l, sa))
            return true;
        if (!is_wildcard(l))
            continue;
        if (acl_cidr_find(loop, 2, sa) != NULL)
            return true;
        for (size_t k = 0; k < fw->nlocal; k++)
            if (addr_eq(&fw->local[k].sa, sa))
                return true;
    }
    return false;
}

/* The first address of <r> we may connect to; *why gets the rule that
 * refused the first address when none may be used. */
static const union dns_addr *pick(const struct fwd_txn *fx,
                                  const struct dns_result *r, char *why,
                                  size_t len)
{
    const struct cfg *cfg = fx->t->c->w->cfg;
    why[0] = '\0';
    for (unsigned i = 0; i < r->n; i++) {
        const struct sockaddr *sa = &r->addr[i].sa;
        const struct cfg_cidr *d = acl_cidr_find(fx->f->deny_addrs,
                                                 fx->f->ndeny_addrs, sa);
        const char *rule = NULL;
        char b[96];
        if (acl_addr_reserved(sa)) {
            rule = "reserved_address";
        } else if (d != NULL) {
            snprintf(b, sizeof(b), "forward.deny_addresses:%s", d->text);
            rule = b;
        } else if (is_self(fx->fw, cfg, sa)) {
            rule = "own_listener";
        }
        if (rule == NULL)
            return &r->addr[i];
        if (why[0] == '\0')
            snprintf(why, len, "%s", rule);
    }
    return NULL;
}

/* ---- after the destination is known ---- */

static void put_origin(void *arg)
{
    struct fwd_txn *fx = arg;
    if (fx->t->ups != NULL)
        origins_put(fx->fw->origins, fx->t->ups);
}

static void fwd_go(struct fwd_txn *fx, const struct dns_result *r)
{
    struct txn *t = fx->t;
    if (r->err != 0) {
        char params[64], reason[48];
        snprintf(params, sizeof(params), "; rcode=\"%s\"", r->rcode);
        snprintf(reason, sizeof(reason), "dns_error:%s", r->rcode);
        log_info("forward: %s: cannot resolve: %s", fx->name, r->rcode);
        answer(t, 502, "dns_error", pool_strndup(t->pool, reason, strlen(reason)),
               params, "The destination's name could not be resolved.", NULL);
        return;
    }
    char why[128];
    const union dns_addr *a = pick(fx, r, why, sizeof(why));
    if (a == NULL) {
        deny(t, 403, "destination_ip_prohibited", why,
             "This proxy does not connect to that address.");
        return;
    }
    const struct cfg_upstream *tpl =
        t->req.meth == H1_M_CONNECT ? &fx->f->tunnel : &fx->f->origin;
    if (pool_on_destroy(t->pool, put_origin, fx) < 0) {
        answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        return;
    }
    t->ups = origins_get(fx->fw->origins, &a->sa, tpl);
    if (t->ups == NULL) {
        answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        return;
    }
    t->key = (struct ups_key){ .sticky = -1 }; /* one server, no cookie */
    txn_connect(t);
}

static void resolved(void *arg, const struct dns_result *r)
{
    struct fwd_txn *fx = arg;
    fx->q = NULL;
    struct txn *t = fx->t;
    if (t->phase != T_CONNECT || t->uc != NULL)
        return; /* answered meanwhile (e.g. 408) */
    fwd_go(fx, r);
}

static void cancel(void *arg)
{
    struct fwd_txn *fx = arg;
    dns_cancel(fx->q);
    fx->q = NULL;
    timer_cancel(fx->t->c->w->loop, &fx->tm);
}

static void resolve(struct fwd_txn *fx)
{
    struct dns_result r;
    struct dns *d = fx->fw->dns;
    if (dns_cached(d, fx->name, fx->port, &r) == 0) {
        fwd_go(fx, &r);
        return;
    }
    int err = 0;
    fx->q = dns_resolve(d, fx->name, fx->port, resolved, fx, &err);
    if (fx->q == NULL)
        answer(fx->t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.",
               NULL);
}

/* ---- authentication ---- */

static void auth_wait_over(struct loop *l, struct timer *tm)
{
    (void)l;
    struct fwd_txn *fx = container_of(tm, struct fwd_txn, tm);
    if (fx->t->phase != T_CONNECT)
        return; /* answered meanwhile (e.g. 408) */
    ask_credentials(fx->t, fx->f, fx->why);
}

/* Checks the credentials. Returns 0 when the request may go on; otherwise
 * *why says the 407's reason and *wait how long to wait before it. */
static int check_auth(struct fwd_txn *fx, const struct h1_msg *req,
                      const char **why, int64_t *wait)
{
    struct txn *t = fx->t;
    struct fwd_worker *fw = fx->fw;
    const struct sockaddr *sa = &t->c->peer.sa;
    int64_t now = loop_now(t->c->w->loop);
    const struct h1_field *h = h1_find(req, STR_LIT("proxy-authorization"));
    *wait = 0;
    if (h == NULL) {
        *why = "auth_required";
        return -1;
    }
    if (fw->auth == NULL && (fw->auth = auth_new()) == NULL) {
        *why = "auth_unavailable"; /* out of memory: refuse, never admit */
        return -1;
    }
    *wait = auth_wait(fw->auth, sa, now);
    if (*wait > 0) {
        *why = "auth_throttled"; /* not even looked at */
        return -1;
    }
    const char *user = NULL;
    enum auth_result ar = auth_check(fw->auth, fx->f, h->value, now, &user);
    if (ar == AUTH_OK) {
        auth_passed(fw->auth, sa);
        t->user = str_cstr(user);
        return 0;
    }
    *why = ar == AUTH_MALFORMED ? "auth_malformed" : "auth_failed";
    *wait = auth_failed(fw->auth, sa, now);
    char ip[64];
    sock_ntop(sa, ip, sizeof(ip));
    log_info("forward: %s: %s%s", ip, *why,
             *wait > 0 ? " (slowed down)" : "");
    return -1;
}

/* ---- PAC ---- */

static bool is_pac_path(struct str p)
{
    const char *q = memchr(p.p, '?', p.len);
    struct str path = q ? str_make(p.p, (size_t)(q - p.p)) : p;
    return str_eq(path, STR_LIT("/proxy.pac")) || str_eq(path, STR_LIT("/wpad.dat"));
}

/* "FindProxyForURL" for this listener: plain host names and pac.direct go
 * DIRECT, everything else to this proxy, as reached by the client (or as
 * pac.proxy says). */
static void serve_pac(struct txn *t, const struct cfg_forward *f)
{
    static const char ctype[] = "application/x-ns-proxy-autoconfig";
    const char *extra = "Cache-Control: max-age=300\r\n";
    if (f->pac_body != NULL) {
        txn_local(t, 200, ctype, f->pac_body, f->pac_len, extra);
        return;
    }
    char proxy[96];
    if (f->pac_proxy != NULL) {
        snprintf(proxy, sizeof(proxy), "%s", f->pac_proxy);
    } else {
        union sockaddr_any me;
        socklen_t len = sizeof(me);
        char ip[64];
        if (getsockname(t->c->ev.fd, &me.sa, &len) == -1)
            me = *(const union sockaddr_any *)&t->c->cl->addr.ss;
        sock_ntop(&me.sa, ip, sizeof(ip));
        snprintf(proxy, sizeof(proxy), me.sa.sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
                 ip, sock_port(&me.sa));
    }
    size_t cap = 512 + f->npac_direct * 300;
    char *b = pool_alloc(t->pool, cap);
    if (b == NULL) {
        answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        return;
    }
    size_t n = 0;
    n += (size_t)snprintf(b + n, cap - n,
                          "// Proxy auto-config generated by Gatehouse.\n"
                          "function FindProxyForURL(url, host) {\n"
                          "    if (isPlainHostName(host))\n"
                          "        return \"DIRECT\";\n");
    for (size_t i = 0; i < f->npac_direct; i++) {
        const char *p = f->pac_direct[i];
        if (p[0] == '*')
            n += (size_t)snprintf(b + n, cap - n,
                                  "    if (dnsDomainIs(host, \"%s\"))\n"
                                  "        return \"DIRECT\";\n", p + 1);
        else
            n += (size_t)snprintf(b + n, cap - n,
                                  "    if (host == \"%s\")\n"
                                  "        return \"DIRECT\";\n", p);
    }
    n += (size_t)snprintf(b + n, cap - n, "    return \"PROXY %s\";\n}\n", proxy);
    txn_local(t, 200, ctype, b, MIN(n, cap - 1), extra);
}

/* ---- the entry point ---- */

/* The head stays in the read buffer until here: what must outlive it is
 * copied, and the head is consumed. Returns 0 or -ENOMEM. */
static int take_head(struct txn *t, const struct h1_msg *req)
{
    size_t head_len = req->head_len;
    int rc = txn_keep_request(t, req);
    if (t->h2 == NULL) /* an HTTP/2 stream's head is not in a buffer */
        buf_consume(t->rb, head_len);
    return rc;
}

/* What admit() checks after the rate limits. True: go on and resolve. */
static bool admit_rest(struct txn *t, const struct h1_msg *req)
{
    if (req->flags & H1_EXPECT_OTHER) {
        t->keepalive = false;
        txn_error(t, 417, "http_request_error", "Unsupported Expect value.");
        return false;
    }
    uint64_t limit = t->c->cl->limits.body_bytes;
    if (limit != 0 && req->body == H1_B_LENGTH && req->content_length > limit) {
        t->keepalive = false;
        txn_error(t, 413, "http_request_denied", "The request body is too large.");
        return false;
    }
    return true;
}

/* The shared cache, when forward.cache is on: a GET or HEAD is looked up,
 * an unsafe method invalidates (RFC 9111 §4.4), PURGE purges. */
static int fwd_cache_lookup(struct txn *t, const struct h1_msg *req,
                            const struct cfg_forward *f, bool *hit)
{
    *hit = false;
    if (t->c->w->cache == NULL || f->cache == NULL)
        return 0;
    if (req->meth == H1_M_PURGE)
        return cglue_request(t, req, false, hit);
    return cglue_request_policy(t, req, f->cache, hit);
}

/* The destination's rules (ports, host names). NULL when they allow it;
 * else the rule, with the client's explanation in <msg>. */
static const char *dest_rule_of(const struct fwd_txn *fx, bool tunnel, char *rb,
                             size_t cap, const char **msg)
{
    const struct cfg_forward *f = fx->f;
    bool port_ok = tunnel ? acl_port_in(f->connect_ports, f->nconnect_ports,
                                        (unsigned)fx->port)
                          : acl_port_in(f->http_ports, f->nhttp_ports,
                                        (unsigned)fx->port);
    if (!port_ok) {
        *msg = "This proxy does not connect to that port.";
        return tunnel ? "forward.connect_ports" : "forward.http_ports";
    }
    *msg = "This proxy does not connect to that host.";
    struct str host = fx->t->host;
    const char *pat = acl_host_find(f->deny_hosts, f->ndeny_hosts, host);
    if (pat != NULL) {
        snprintf(rb, cap, "forward.deny_hosts:%s", pat);
        return rb;
    }
    if (f->nallow_hosts > 0 &&
        acl_host_find(f->allow_hosts, f->nallow_hosts, host) == NULL)
        return "forward.allow_hosts";
    return NULL;
}

/* Everything decided before resolving. Returns true when the request may
 * go on to resolution; otherwise it was answered (or waits to be). */
static bool admit(struct fwd_txn *fx, struct h1_msg *req)
{
    struct txn *t = fx->t;
    const struct cfg_forward *f = fx->f;
    bool tunnel = req->meth == H1_M_CONNECT;
    char rb[96];
    const char *rule = client_rule(f, &t->c->peer.sa, rb, sizeof(rb));
    const char *bad = NULL;
    if (rule == NULL && !tunnel && !str_ieq_lit(req->scheme, "http"))
        bad = "unsupported_scheme";
    if (rule == NULL && bad == NULL)
        bad = split_target(fx, req->authority, 80);
    const char *auth_why = NULL;
    int64_t wait = 0;
    if (rule == NULL && bad == NULL && f->nusers > 0 &&
        check_auth(fx, req, &auth_why, &wait) == 0)
        auth_why = NULL;
    char db[96];
    const char *dest_msg = NULL, *dest_rule =
        rule == NULL && bad == NULL && auth_why == NULL
            ? dest_rule_of(fx, tunnel, db, sizeof(db), &dest_msg)
            : NULL;
    /* what the pipeline needs of the head, before it goes: the cache's
     * lookup (a hit needs no upstream head), then the upstream head */
    if (rule == NULL && bad == NULL && auth_why == NULL && dest_rule == NULL &&
        !tunnel) {
        t->anon = f->anonymous;
        bool hit = false;
        int rc = fwd_cache_lookup(t, req, f, &hit);
        if (rc == 0 && !hit)
            rc = hdr_request(t, req);
        if (rc < 0)
            bad = "oom";
    }
    if (take_head(t, req) < 0 || (bad != NULL && strcmp(bad, "oom") == 0)) {
        answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        return false;
    }
    if (rule != NULL) {
        deny(t, 403, "http_request_denied", rule,
             "Your address may not use this proxy.");
        return false;
    }
    if (bad != NULL) {
        t->keepalive = false;
        deny(t, 400, "http_request_error", bad,
             strcmp(bad, "unsupported_scheme") == 0
                 ? "This proxy forwards http:// requests; for https://, "
                   "use CONNECT."
                 : "The request's host name or port is not valid.");
        return false;
    }
    if (auth_why != NULL) {
        if (wait <= 0) {
            ask_credentials(t, f, auth_why);
            return false;
        }
        fx->why = auth_why;
        timer_set(t->c->w->loop, &fx->tm, wait, auth_wait_over);
        return false; /* T_CONNECT, no upstream: answered when it fires */
    }
    if (dest_rule != NULL) {
        deny(t, 403, "http_request_denied", dest_rule, dest_msg);
        return false;
    }
    /* the listener's rate limits, once the user is known (by: user) and
     * before any name is resolved: 429, or the cluster's verdict awaited
     * (fwd_limits_passed() goes on) */
    if (lim_request(t, t->c->cl->rates, t->c->cl->nrates, LIM_AT_FORWARD))
        return false;
    return admit_rest(t, req);
}

void fwd_limits_passed(struct txn *t)
{
    if (admit_rest(t, &t->req) && !(t->cx != NULL && cglue_begin(t)))
        resolve(t->fx); /* not a hit, a wait for a fill or a purge */
}

bool fwd_start(struct txn *t, struct h1_msg *req)
{
    struct conn *c = t->c;
    const struct cfg_forward *f = c->cl->forward;
    struct fwd_txn *fx = pool_calloc(t->pool, sizeof(*fx));
    if (fx == NULL || pool_on_destroy(t->pool, cancel, fx) < 0) {
        take_head(t, req);
        answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        return true;
    }
    fx->t = t;
    fx->f = f;
    fx->fw = c->w->fwd;
    t->fx = fx;
    origins_set_max(fx->fw->origins, f->max_origins); /* it may have been
                                                          reloaded */
    if (req->form != H1_F_ABSOLUTE && req->form != H1_F_AUTHORITY) {
        char rb[96];
        const char *rule = client_rule(f, &c->peer.sa, rb, sizeof(rb));
        bool pac = f->pac && req->form == H1_F_ORIGIN &&
                   (req->meth == H1_M_GET || req->meth == H1_M_HEAD) &&
                   is_pac_path(req->path);
        if (rule == NULL && !pac && c->cl->nsites > 0)
            return false; /* the listener's own sites answer */
        if (take_head(t, req) < 0)
            answer(t, 503, "proxy_internal_error", NULL, NULL, "Out of memory.", NULL);
        else if (rule != NULL)
            deny(t, 403, "http_request_denied", rule,
                 "Your address may not use this proxy.");
        else if (pac)
            serve_pac(t, f);
        else
            deny(t, 400, "http_request_error", "origin_form",
                 "This is a forward proxy: ask for an absolute URL "
                 "(GET http://host/path) or CONNECT host:port.");
        return true;
    }
    t->host = route_host(t->pool, req->authority);
    if (req->meth == H1_M_CONNECT && t->h2 != NULL) {
        /* a tunnel here moves the connection's bytes, not a stream's */
        take_head(t, req);
        deny(t, 501, "http_request_error", "connect_over_http2",
             "CONNECT through this proxy needs HTTP/1.1.");
        return true;
    }
    if (req->meth == H1_M_CONNECT) {
        /* after a CONNECT, whatever the answer, the connection does not
         * carry HTTP on: a client may already have sent tunnel bytes, which
         * must not be read as requests */
        t->keepalive = false;
        t->splice = f->splice && !c->tls;
    }
    if (admit(fx, req) && !(t->cx != NULL && cglue_begin(t)))
        resolve(fx); /* not a hit, a wait for a fill or a purge */
    return true;
}

void fwd_connect(struct txn *t)
{
    t->phase = T_CONNECT;
    resolve(t->fx);
}

int fwd_tunnel_open(struct txn *t)
{
    static char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    t->status = 200;
    t->ustatus = 0;
    t->head_sent = true;
    t->keepalive = false; /* the connection is the tunnel's now */
    t->cout = (struct outq){ ok, sizeof(ok) - 1, 0 };
    t->phase = T_TUNNEL;
    return 0;
}
