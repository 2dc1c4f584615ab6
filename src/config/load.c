/*
 * Loading a configuration snapshot: the top level, the log, the upstreams,
 * and the snapshot's life cycle.
 *
 * A load builds everything in one fresh arena: the YAML tree first, then the
 * struct cfg whose strings point into the tree's scalars. On any error the
 * whole arena goes and the caller gets NULL and one message; on success the
 * snapshot is complete and never written again, so workers can read it
 * without locks while they hold a reference.
 *
 * Listeners are read after everything else whatever their place in the
 * file, so that routes can name upstreams defined below them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config/config_int.h"
#include "core/macros.h"

#define MAX_FILE_BYTES (4 * 1024 * 1024)
#define MAX_WORKERS 256

/* ---- top level ---- */

static int set_workers(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    struct cfg *c = obj;
    uint64_t n;

    if (v->type == CFG_N_SCALAR && str_eq(v->val, STR_LIT("auto"))) {
        c->workers = 0; /* resolved after the walk */
        return 0;
    }
    if (v->type != CFG_N_SCALAR || !cfg__num(v->val, 1, MAX_WORKERS, &n))
        return cfg__bad(ld, v, "expected auto or a number 1..%d",
                        MAX_WORKERS);
    c->workers = (int)n;
    return 0;
}

/* RFC 9110 tchar: a Via pseudonym is a token. */
static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static int set_via_name(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__str(ld, v, false, &c->via_name);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < v->val.len; i++)
        if (!is_tchar(v->val.p[i]))
            return cfg__bad(ld, v, "must be a single token (letters, digits "
                                   "and !#$%%&'*+-.^_`|~)");
    return 0;
}

static int set_pid_file(struct cfg__ld *ld, const struct cfg__node *v,
                        void *obj)
{
    return cfg__str(ld, v, false, &((struct cfg *)obj)->pid_file);
}

/* ---- log ---- */

static int set_log_access(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    return cfg__str(ld, v, false, &((struct cfg_log *)obj)->access);
}

static int set_log_error(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    struct cfg_log *log = obj;
    int rc = cfg__str(ld, v, false, &log->error);
    if (rc == 0 && (str_eq(v->val, STR_LIT("stdout")) ||
                    str_eq(v->val, STR_LIT("off"))))
        return cfg__bad(ld, v, "expected stderr or a file path");
    return rc;
}

static int set_log_format(struct cfg__ld *ld, const struct cfg__node *v,
                          void *obj)
{
    static const char *const names[] = { "combined", "json" };
    static const enum cfg_log_format vals[] = { CFG_LOG_COMBINED,
                                                CFG_LOG_JSON };
    size_t i;
    int rc = cfg__enum(ld, v, names, 2, &i);
    if (rc == 0)
        ((struct cfg_log *)obj)->format = vals[i];
    return rc;
}

static int set_log_level(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    static const int vals[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    size_t i;
    int rc = cfg__enum(ld, v, names, 4, &i);
    if (rc == 0)
        ((struct cfg_log *)obj)->level = vals[i];
    return rc;
}

static const struct cfg__field log_fields[] = {
    CFG__F_FN("access", set_log_access),
    CFG__F_FN("format", set_log_format),
    CFG__F_FN("error", set_log_error),
    CFG__F_FN("level", set_log_level),
};

static int set_log(struct cfg__ld *ld, const struct cfg__node *v, void *obj)
{
    struct cfg *c = obj;
    return cfg__walk(ld, v, "log", log_fields,
                     sizeof(log_fields) / sizeof(log_fields[0]), &c->log);
}

/* ---- upstreams ---- */

static int set_srv_address(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    return cfg__addr(ld, v, &((struct cfg_server *)obj)->addr);
}

static const struct cfg__field server_fields[] = {
    CFG__F_FN("address", set_srv_address),
    CFG__F_INT("weight", struct cfg_server, weight, 1, 1000),
};

/* 0.0.0.0 or [::]: fine to listen on, meaningless to connect to. */
static bool is_any(const struct cfg_addr *a)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr, &any6,
                  sizeof(any6)) == 0;
}

/* One item of "servers": an address, or { address, weight }. */
static int read_server(struct cfg__ld *ld, const struct cfg__node *v,
                       struct cfg_server *s)
{
    const struct cfg__node *an = v;
    int rc;

    s->weight = 1;
    if (v->type == CFG_N_SCALAR) {
        rc = cfg__addr(ld, v, &s->addr);
    } else if (v->type == CFG_N_MAP) {
        rc = cfg__walk(ld, v, "server", server_fields,
                       sizeof(server_fields) / sizeof(server_fields[0]), s);
        if (rc == 0 && s->addr.len == 0)
            return cfg__fail(ld, v, "missing \"address\" in server");
        an = cfg__map_get(v, "address");
    } else {
        return cfg__bad(ld, v, "expected an address, or a mapping with "
                               "address and weight");
    }
    if (rc == 0 && is_any(&s->addr))
        return cfg__bad(ld, an, "%s is not a server address (a server "
                                "needs a real address to connect to)",
                        s->addr.text);
    return rc;
}

static int set_servers(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    struct cfg_upstream *u = obj;
    int rc = cfg__want(ld, v, CFG_N_SEQ);
    if (rc != 0)
        return rc;
    u->servers = cfg__array(ld, v->n, sizeof(*u->servers));
    if (u->servers == NULL)
        return -ENOMEM;
    const struct cfg__node *it = v->head;
    for (size_t i = 0; i < v->n; i++, it = it->next) {
        struct cfg_server *s = &u->servers[i];
        rc = read_server(ld, it, s);
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (cfg__addr_eq(&u->servers[j].addr, &s->addr))
                return cfg__fail(ld, it, "server %s is listed twice in "
                                         "upstream \"%s\" (use weight)",
                                 s->addr.text, u->name);
        u->nservers++;
    }
    return 0;
}

static int set_balance(struct cfg__ld *ld, const struct cfg__node *v,
                       void *obj)
{
    static const char *const names[] = { "round_robin" };
    size_t i;
    int rc = cfg__enum(ld, v, names, 1, &i);
    if (rc == 0)
        ((struct cfg_upstream *)obj)->balance = CFG_BAL_ROUND_ROBIN;
    return rc;
}

#define U struct cfg_upstream
static const struct cfg__field upstream_fields[] = {
    CFG__F_FN("servers", set_servers),
    CFG__F_FN("balance", set_balance),
    CFG__F_MS("connect_timeout", U, connect_timeout, 1, CFG__DAY),
    CFG__F_MS("read_timeout", U, read_timeout, 1, CFG__DAY),
    CFG__F_MS("send_timeout", U, send_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive", U, keepalive, 0, 10000),
    CFG__F_MS("keepalive_timeout", U, keepalive_timeout, 1, CFG__DAY),
    CFG__F_UINT("keepalive_requests", U, keepalive_requests, 1, 1000000000),
};
#undef U

static void upstream_defaults(struct cfg_upstream *u)
{
    u->balance = CFG_BAL_ROUND_ROBIN;
    u->connect_timeout = 5 * CFG__SEC;
    u->read_timeout = 60 * CFG__SEC;
    u->send_timeout = 60 * CFG__SEC;
    u->keepalive = 32;
    u->keepalive_timeout = 60 * CFG__SEC;
    u->keepalive_requests = 10000;
}

static int check_name(struct cfg__ld *ld, const struct cfg__node *key)
{
    struct str s = key->val;
    bool ok = s.len > 0 && s.len <= 64;
    for (size_t i = 0; ok && i < s.len; i++) {
        char ch = s.p[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
             (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
    }
    if (!ok)
        return cfg__fail(ld, key, "upstream name \"%s\" must be 1..64 letters, "
                                  "digits, '_', '-' or '.'", s.p);
    return 0;
}

static int set_upstreams(struct cfg__ld *ld, const struct cfg__node *v,
                         void *obj)
{
    struct cfg *c = obj;
    int rc = cfg__want(ld, v, CFG_N_MAP);
    if (rc != 0)
        return rc;
    c->upstreams = cfg__array(ld, v->n, sizeof(*c->upstreams));
    if (c->upstreams == NULL)
        return -ENOMEM;
    for (const struct cfg__node *it = v->head; it != NULL; it = it->next) {
        struct cfg_upstream *u = &c->upstreams[c->nupstreams];
        upstream_defaults(u);
        u->name = it->key->val.p;
        rc = check_name(ld, it->key);
        if (rc == 0)
            rc = cfg__walk(ld, it, "upstream", upstream_fields,
                           sizeof(upstream_fields) /
                               sizeof(upstream_fields[0]), u);
        if (rc == 0 && u->nservers == 0)
            rc = cfg__fail(ld, it->key, "upstream \"%s\" has no servers",
                           u->name);
        if (rc != 0)
            return rc;
        c->nupstreams++;
    }
    return 0;
}

static int defer_listeners(struct cfg__ld *ld, const struct cfg__node *v,
                           void *obj)
{
    (void)obj;
    ld->listeners = v;
    return 0;
}

static const struct cfg__field top_fields[] = {
    CFG__F_FN("workers", set_workers),
    CFG__F_FN("pid_file", set_pid_file),
    CFG__F_FN("via_name", set_via_name),
    CFG__F_MS("graceful_timeout", struct cfg, graceful_timeout, 0, CFG__DAY),
    CFG__F_FN("log", set_log),
    CFG__F_FN("upstreams", set_upstreams),
    CFG__F_FN("listeners", defer_listeners),
    CFG__F_FN("dns", cfg__dns),
};

/* The defaults; string defaults are literals, which outlive any snapshot. */
static void cfg_defaults(struct cfg *c)
{
    atomic_init(&c->refs, 1);
    c->workers = 0; /* auto */
    c->pid_file = NULL;
    c->via_name = "gatehouse";
    c->graceful_timeout = 30 * CFG__SEC;
    c->log.access = "stdout";
    c->log.format = CFG_LOG_COMBINED;
    c->log.error = "stderr";
    c->log.level = LOG_INFO;
    cfg__dns_defaults(&c->dns);
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static int load_root(struct cfg__ld *ld, const struct cfg__node *root)
{
    struct cfg *c = ld->c;

    if (root == NULL || cfg__is_null(root))
        return cfg__fail(ld, root, "the configuration is empty (it needs at "
                                   "least \"listeners\")");
    if (root->type != CFG_N_MAP)
        return cfg__fail(ld, root, "the configuration must be a mapping of "
                                   "keys such as listeners and upstreams");
    int rc = cfg__walk(ld, root, "the configuration", top_fields,
                       sizeof(top_fields) / sizeof(top_fields[0]), c);
    if (rc != 0)
        return rc;
    if (ld->listeners == NULL)
        return cfg__fail(ld, root, "no \"listeners\": nothing to serve");
    rc = cfg__listeners(ld, ld->listeners);
    if (rc != 0)
        return rc;
    if (c->workers == 0)
        c->workers = online_cpus();
    return 0;
}

struct cfg *cfg_load_string(const char *yaml, size_t len, const char *name,
                            char *err, size_t errlen)
{
    struct cfg__ld ld = { .err = err, .errlen = errlen };
    const struct cfg__node *root;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ld.file = name != NULL ? name : "<string>";
    ld.a = cfg__arena_new();
    if (ld.a == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", ld.file);
        return NULL;
    }
    ld.file = cfg__arena_strndup(ld.a, ld.file, strlen(ld.file));
    ld.c = ld.file != NULL ? cfg__arena_alloc(ld.a, sizeof(*ld.c)) : NULL;
    if (ld.c == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory",
                     name != NULL ? name : "<string>");
        goto Fail;
    }
    cfg_defaults(ld.c);
    ld.c->file = ld.file;
    ld.c->arena_ = ld.a;
    if (cfg__yaml_parse(ld.a, yaml, len, ld.file, &root, err, errlen) != 0)
        goto Fail;
    if (load_root(&ld, root) != 0)
        goto Fail;
    return ld.c;
Fail:
    cfg__arena_free(ld.a);
    return NULL;
}

char *cfg__read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    int e = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        e = errno;
        goto Exit;
    }
    if (fstat(fd, &st) == -1) {
        e = errno;
        goto Exit;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES) {
        e = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        goto Exit;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        e = ENOMEM;
        goto Exit;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0) {
            e = r == 0 ? EIO : errno; /* r == 0: the file shrank */
            FREE_NULL(buf);
            goto Exit;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    *len = got;
Exit:
    if (fd != -1)
        close(fd);
    if (buf == NULL && err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", path,
                 e == EINVAL  ? "not a regular file"
                 : e == EFBIG ? "too large for a configuration file (4MiB)"
                              : strerror(e));
    return buf;
}

struct cfg *cfg_load_file(const char *path, char *err, size_t errlen)
{
    size_t len = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    char *text = cfg__read_file(path, &len, err, errlen);
    if (text == NULL)
        return NULL;
    struct cfg *c = cfg_load_string(text, len, path, err, errlen);
    free(text);
    return c;
}

struct cfg *cfg_ref(struct cfg *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void cfg_unref(struct cfg *c)
{
    if (c == NULL)
        return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        cfg__arena_free(c->arena_); /* c itself lives in the arena */
}
