/*
 * Loading a configuration snapshot: the top level, the log, and the
 * snapshot's life cycle (the upstreams are in upstream.c).
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
#include <errno.h>
#include <fcntl.h>
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
    CFG__F_FN("upstreams", cfg__upstreams),
    CFG__F_FN("listeners", defer_listeners),
    CFG__F_FN("admin", cfg__admin),
    CFG__F_FN("cluster", cfg__cluster),
    CFG__F_FN("cache", cfg__cache),
    CFG__F_FN("security", cfg__set_security),
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
    cfg__cluster_defaults(&c->cluster);
    cfg__cache_defaults(c);
    cfg__security_defaults(&c->security);
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
    if (rc == 0)
        rc = cfg__admin_check(ld, root);
    if (rc == 0)
        rc = cfg__cache_finish(ld, root);
    if (rc != 0)
        return rc;
    cfg__finish_security(c);
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
