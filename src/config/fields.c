/*
 * Reading values out of the node tree, and saying what was wrong.
 *
 * Every message has the shape "file:line:col: what", pointing at the node
 * that is wrong; a bad value also names its key ("\"backlog\": expected a
 * number 1..65535"). The first error wins: the loader stops at it, and
 * nothing later overwrites it.
 *
 * Most keys are read through a table (struct cfg__field) that gives the
 * key's name, its value syntax, its range and where it goes in the object,
 * so each part of the schema reads as a list of its keys.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

static int vfail(struct cfg__ld *ld, const struct cfg__node *at,
                 const struct cfg__node *key, const char *fmt, va_list ap)
    CFG__FMT(4, 0);

static int vfail(struct cfg__ld *ld, const struct cfg__node *at,
                 const struct cfg__node *key, const char *fmt, va_list ap)
{
    if (ld->failed)
        return -EINVAL;
    ld->failed = true;
    if (ld->err == NULL || ld->errlen == 0)
        return -EINVAL;
    int n = snprintf(ld->err, ld->errlen, "%s:%u:%u: ", ld->file,
                     at != NULL ? at->line : 1, at != NULL ? at->col : 1);
    if (n >= 0 && (size_t)n < ld->errlen && key != NULL)
        n += snprintf(ld->err + n, ld->errlen - (size_t)n, "\"%s\": ",
                      key->val.p);
    if (n >= 0 && (size_t)n < ld->errlen)
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    return -EINVAL;
}

int cfg__fail(struct cfg__ld *ld, const struct cfg__node *at,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ld, at, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int cfg__bad(struct cfg__ld *ld, const struct cfg__node *v, const char *fmt,
             ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ld, v, v != NULL ? v->key : NULL, fmt, ap);
    va_end(ap);
    return rc;
}

void *cfg__alloc(struct cfg__ld *ld, size_t n)
{
    void *p = cfg__arena_alloc(ld->a, n);
    if (p == NULL && !ld->failed) {
        ld->failed = true;
        if (ld->err != NULL && ld->errlen > 0)
            snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
    }
    return p;
}

void *cfg__array(struct cfg__ld *ld, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return cfg__alloc(ld, SIZE_MAX); /* fails, with the message */
    return cfg__alloc(ld, count * size);
}

int cfg__want(struct cfg__ld *ld, const struct cfg__node *v,
              enum cfg__ntype type)
{
    if (v->type == type)
        return 0;
    switch (type) {
    case CFG_N_MAP:
        return cfg__bad(ld, v, "expected a mapping");
    case CFG_N_SEQ:
        return cfg__bad(ld, v, "expected a list");
    case CFG_N_SCALAR:
        break;
    }
    return cfg__bad(ld, v, "expected a single value, not %s",
                    v->type == CFG_N_MAP ? "a mapping" : "a list");
}

int cfg__bool(struct cfg__ld *ld, const struct cfg__node *v, bool *out)
{
    static const char *const yes[] = { "true", "True", "TRUE" };
    static const char *const no[] = { "false", "False", "FALSE" };

    if (v->type == CFG_N_SCALAR) {
        for (size_t i = 0; i < 3; i++) {
            if (str_eq(v->val, str_cstr(yes[i]))) {
                *out = true;
                return 0;
            }
            if (str_eq(v->val, str_cstr(no[i]))) {
                *out = false;
                return 0;
            }
        }
    }
    return cfg__bad(ld, v, "expected true or false");
}

bool cfg__num(struct str s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t n = 0;
    bool ok = s.len > 0 && s.len <= 19; /* 19 digits cannot overflow */

    for (size_t i = 0; ok && i < s.len; i++) {
        ok = s.p[i] >= '0' && s.p[i] <= '9';
        n = n * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (!ok || n < lo || n > hi)
        return false;
    *out = n;
    return true;
}

int cfg__uint(struct cfg__ld *ld, const struct cfg__node *v, uint64_t lo,
              uint64_t hi, uint64_t *out)
{
    uint64_t n = 0;

    if (v->type != CFG_N_SCALAR || !cfg__num(v->val, lo, hi, &n))
        return cfg__bad(ld, v, "expected a number %llu..%llu",
                        (unsigned long long)lo, (unsigned long long)hi);
    *out = n;
    return 0;
}

int cfg__ms(struct cfg__ld *ld, const struct cfg__node *v, cfg_ms lo,
            cfg_ms hi, cfg_ms *out)
{
    char a[32], b[32];
    cfg_ms ms;

    if (v->type != CFG_N_SCALAR || cfg_parse_duration(v->val, &ms) != 0)
        return cfg__bad(ld, v, "expected a duration such as 30s or 500ms");
    if (ms < lo || ms > hi) {
        cfg__fmt_ms(lo, a, sizeof(a));
        cfg__fmt_ms(hi, b, sizeof(b));
        return cfg__bad(ld, v, "must be %s..%s", a, b);
    }
    *out = ms;
    return 0;
}

int cfg__bytes(struct cfg__ld *ld, const struct cfg__node *v, uint64_t lo,
               uint64_t hi, uint64_t *out)
{
    char a[32], b[32];
    uint64_t n;

    if (v->type != CFG_N_SCALAR || cfg_parse_size(v->val, &n) != 0)
        return cfg__bad(ld, v, "expected a size such as 64KiB or 10MiB");
    if (n < lo || n > hi) {
        cfg__fmt_size(lo, a, sizeof(a));
        cfg__fmt_size(hi, b, sizeof(b));
        return cfg__bad(ld, v, "must be %s..%s", a, b);
    }
    *out = n;
    return 0;
}

int cfg__str(struct cfg__ld *ld, const struct cfg__node *v, bool empty_ok,
             const char **out)
{
    int rc = cfg__want(ld, v, CFG_N_SCALAR);
    if (rc != 0)
        return rc;
    if (!empty_ok && v->val.len == 0)
        return cfg__bad(ld, v, "must not be empty");
    if (memchr(v->val.p, '\0', v->val.len) != NULL)
        return cfg__bad(ld, v, "must not contain a NUL character");
    *out = v->val.p; /* NUL-terminated in the snapshot's arena */
    return 0;
}

int cfg__enum(struct cfg__ld *ld, const struct cfg__node *v,
              const char *const *names, size_t n, size_t *idx)
{
    char list[256];
    size_t off = 0;

    for (size_t i = 0; v->type == CFG_N_SCALAR && i < n; i++) {
        if (str_eq(v->val, str_cstr(names[i]))) {
            *idx = i;
            return 0;
        }
    }
    list[0] = '\0';
    for (size_t i = 0; i < n && off < sizeof(list); i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s",
                         i ? ", " : "", names[i]);
        off += w > 0 ? (size_t)w : 0;
    }
    return cfg__bad(ld, v, "expected one of: %s", list);
}

int cfg__addr(struct cfg__ld *ld, const struct cfg__node *v,
              struct cfg_addr *out)
{
    char why[320];

    if (v->type != CFG_N_SCALAR)
        return cfg__bad(ld, v, "expected an address such as "
                               "127.0.0.1:8080, [::1]:8080 or *:8080");
    if (cfg__parse_addr(v->val, out, why, sizeof(why)) != 0)
        return cfg__bad(ld, v, "%s", why);
    return 0;
}

static int unknown_key(struct cfg__ld *ld, const struct cfg__node *key,
                       const char *what, const struct cfg__field *f,
                       size_t nf)
{
    char list[512];
    size_t off = 0;

    list[0] = '\0';
    for (size_t i = 0; i < nf && off < sizeof(list); i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s",
                         i ? ", " : "", f[i].name);
        off += w > 0 ? (size_t)w : 0;
    }
    return cfg__fail(ld, key, "unknown key \"%s\" in %s (expected one of: %s)",
                     key->val.p, what, list);
}

/* Reads one value of a table-typed key into <obj>. */
static int read_field(struct cfg__ld *ld, const struct cfg__node *v,
                      const struct cfg__field *f, void *obj)
{
    void *m = (char *)obj + f->off;
    uint64_t u = 0;
    cfg_ms ms = 0;
    int rc;

    switch (f->type) {
    case CFG_F_FN:
        return f->fn(ld, v, obj);
    case CFG_F_BOOL:
        return cfg__bool(ld, v, (bool *)m);
    case CFG_F_MS:
        rc = cfg__ms(ld, v, (cfg_ms)f->lo, (cfg_ms)f->hi, &ms);
        if (rc == 0)
            *(cfg_ms *)m = ms;
        return rc;
    case CFG_F_SIZE:
    case CFG_F_SIZE64:
        rc = cfg__bytes(ld, v, f->lo, f->hi, &u);
        break;
    case CFG_F_INT:
    case CFG_F_UINT:
    case CFG_F_COUNT:
        rc = cfg__uint(ld, v, f->lo, f->hi, &u);
        break;
    default:
        return cfg__fail(ld, v, "internal error: bad field type");
    }
    if (rc != 0)
        return rc;
    /* the tables' ranges keep <u> within the member's type */
    if (f->type == CFG_F_INT)
        *(int *)m = (int)u;
    else if (f->type == CFG_F_UINT)
        *(unsigned *)m = (unsigned)u;
    else if (f->type == CFG_F_SIZE64)
        *(uint64_t *)m = u;
    else
        *(size_t *)m = (size_t)u;
    return 0;
}

int cfg__walk(struct cfg__ld *ld, const struct cfg__node *m, const char *what,
              const struct cfg__field *fields, size_t nfields, void *obj)
{
    int rc;
    if (m->type != CFG_N_MAP && m->key == NULL) /* an item of a list */
        return cfg__fail(ld, m, "each %s must be a mapping", what);
    rc = cfg__want(ld, m, CFG_N_MAP);
    if (rc != 0)
        return rc;
    for (const struct cfg__node *v = m->head; v != NULL; v = v->next) {
        const struct cfg__field *f = NULL;
        for (size_t i = 0; i < nfields && f == NULL; i++)
            if (str_eq(v->key->val, str_cstr(fields[i].name)))
                f = &fields[i];
        if (f == NULL)
            return unknown_key(ld, v->key, what, fields, nfields);
        if (cfg__is_null(v))
            continue;
        rc = read_field(ld, v, f, obj);
        if (rc != 0)
            return rc;
    }
    return 0;
}
