/*
 * YAML events to a node tree.
 *
 * libyaml hands out a stream of events, but the loader wants to see a
 * mapping whole: to reject unknown keys, to notice missing ones, and to read
 * the upstreams before the routes that name them, whatever order the file
 * uses. So the events are folded into a small tree of scalars, sequences and
 * mappings, each carrying its start mark (1-based line:column) for error
 * messages. The tree lives in the snapshot's arena; scalars are
 * NUL-terminated there so the loader can point into them instead of copying.
 *
 * Only the plain subset of YAML a configuration needs is accepted. Anchors,
 * aliases and tags (other than !!str, which forces a string) are refused at
 * their position, as are a second document, keys that are not scalars and
 * duplicate keys (YAML says they are an error; libyaml does not check).
 * Nesting is bounded so a hostile file cannot exhaust anything.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "config/config_int.h"

#define MAX_DEPTH 64
#define TAG_STR "tag:yaml.org,2002:str"

struct tb {
    struct cfg__arena *a;
    const char *name;
    char *err;
    size_t errlen;
    struct cfg__node *root;
    struct cfg__node *cur; /* innermost open collection, NULL at top */
    unsigned depth;
    unsigned docs;
};

static int fail_at(struct tb *t, size_t line, size_t col, const char *fmt,
                   ...) CFG__FMT(4, 5);

static int fail_at(struct tb *t, size_t line, size_t col, const char *fmt,
                   ...)
{
    if (t->err == NULL || t->errlen == 0)
        return -EINVAL;
    int n = snprintf(t->err, t->errlen, "%s:%zu:%zu: ", t->name, line, col);
    if (n >= 0 && (size_t)n < t->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->err + n, t->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int oom(struct tb *t)
{
    if (t->err != NULL && t->errlen > 0)
        snprintf(t->err, t->errlen, "%s: out of memory", t->name);
    return -ENOMEM;
}

/* Line and column of byte <off> of <text>, for reader errors, which carry
 * an offset but no mark. */
static void offset_mark(const char *text, size_t len, size_t off,
                        size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static int syntax_error(struct tb *t, const yaml_parser_t *p,
                        const char *text, size_t len)
{
    size_t line, col;

    if (p->error == YAML_MEMORY_ERROR)
        return oom(t);
    if (p->error == YAML_READER_ERROR) {
        offset_mark(text, len, p->problem_offset, &line, &col);
    } else {
        line = p->problem_mark.line + 1;
        col = p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context == NULL)
        return fail_at(t, line, col, "%s", problem);
    return fail_at(t, line, col, "%s (%s at %zu:%zu)", problem, p->context,
                   p->context_mark.line + 1, p->context_mark.column + 1);
}

static const char *type_name(enum cfg__ntype type)
{
    switch (type) {
    case CFG_N_SCALAR:
        return "a scalar";
    case CFG_N_SEQ:
        return "a sequence";
    case CFG_N_MAP:
        return "a mapping";
    }
    return "a node";
}

/* Refuses what the tree cannot represent faithfully. */
static int check_props(struct tb *t, const yaml_event_t *ev,
                       enum cfg__ntype type, const yaml_char_t *anchor,
                       const yaml_char_t *tag)
{
    size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;

    if (anchor != NULL)
        return fail_at(t, line, col, "anchors (&%s) are not supported",
                       (const char *)anchor);
    if (tag != NULL && !(type == CFG_N_SCALAR &&
                         strcmp((const char *)tag, TAG_STR) == 0))
        return fail_at(t, line, col,
                       "tag \"%s\" is not supported on %s (only !!str is)",
                       (const char *)tag, type_name(type));
    return 0;
}

static struct cfg__node *node_new(struct tb *t, const yaml_event_t *ev,
                                  enum cfg__ntype type)
{
    struct cfg__node *n = cfg__arena_alloc(t->a, sizeof(*n));
    if (n != NULL) {
        n->type = type;
        n->line = (unsigned)ev->start_mark.line + 1;
        n->col = (unsigned)ev->start_mark.column + 1;
    }
    return n;
}

static int add_key(struct tb *t, struct cfg__node *map, struct cfg__node *k)
{
    if (k->type != CFG_N_SCALAR)
        return fail_at(t, k->line, k->col,
                       "a mapping key must be a plain string, not %s",
                       type_name(k->type));
    for (const struct cfg__node *v = map->head; v != NULL; v = v->next)
        if (str_eq(v->key->val, k->val))
            return fail_at(t, k->line, k->col,
                           "duplicate key \"%s\" (first at %u:%u)", k->val.p,
                           v->key->line, v->key->col);
    map->pending = k;
    return 0;
}

/* Hangs <n> under the open collection: as an item, a mapping key, or the
 * value of the pending key. */
static int attach(struct tb *t, struct cfg__node *n)
{
    struct cfg__node *p = t->cur;

    n->parent = p;
    if (p == NULL) {
        t->root = n;
        return 0;
    }
    if (p->type == CFG_N_MAP) {
        if (p->pending == NULL)
            return add_key(t, p, n);
        n->key = p->pending;
        p->pending = NULL;
    }
    if (p->tail != NULL)
        p->tail->next = n;
    else
        p->head = n;
    p->tail = n;
    p->n++;
    return 0;
}

static int on_scalar(struct tb *t, const yaml_event_t *ev)
{
    const yaml_char_t *tag = ev->data.scalar.tag;
    int rc = check_props(t, ev, CFG_N_SCALAR, ev->data.scalar.anchor, tag);
    if (rc != 0)
        return rc;
    struct cfg__node *n = node_new(t, ev, CFG_N_SCALAR);
    if (n == NULL)
        return oom(t);
    size_t len = ev->data.scalar.length;
    char *s = cfg__arena_strndup(t->a, (const char *)ev->data.scalar.value,
                                 len);
    if (s == NULL)
        return oom(t);
    n->val = str_make(s, len);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               tag == NULL;
    return attach(t, n);
}

static int on_open(struct tb *t, const yaml_event_t *ev, enum cfg__ntype type)
{
    int rc;
    if (type == CFG_N_SEQ)
        rc = check_props(t, ev, type, ev->data.sequence_start.anchor,
                         ev->data.sequence_start.tag);
    else
        rc = check_props(t, ev, type, ev->data.mapping_start.anchor,
                         ev->data.mapping_start.tag);
    if (rc != 0)
        return rc;
    if (t->depth == MAX_DEPTH)
        return fail_at(t, ev->start_mark.line + 1, ev->start_mark.column + 1,
                       "nested more than %d levels deep", MAX_DEPTH);
    struct cfg__node *n = node_new(t, ev, type);
    if (n == NULL)
        return oom(t);
    rc = attach(t, n);
    if (rc != 0)
        return rc;
    t->cur = n;
    t->depth++;
    return 0;
}

static int on_event(struct tb *t, const yaml_event_t *ev)
{
    size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++t->docs > 1)
            return fail_at(t, line, col,
                           "only one YAML document is allowed");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail_at(t, line, col, "aliases (*%s) are not supported",
                       (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        return on_scalar(t, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(t, ev, CFG_N_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_open(t, ev, CFG_N_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        t->cur = t->cur->parent; /* libyaml balances start and end */
        t->depth--;
        return 0;
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    }
    return 0;
}

int cfg__yaml_parse(struct cfg__arena *a, const char *text, size_t len,
                    const char *name, const struct cfg__node **root,
                    char *err, size_t errlen)
{
    struct tb t = { .a = a, .name = name, .err = err, .errlen = errlen };
    yaml_parser_t p;
    int rc = 0;
    bool done = false;

    *root = NULL;
    if (!yaml_parser_initialize(&p))
        return oom(&t);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(&t, &p, text, len);
            break;
        }
        rc = on_event(&t, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == 0)
        *root = t.root;
    return rc;
}

bool cfg__is_null(const struct cfg__node *n)
{
    if (n == NULL || n->type != CFG_N_SCALAR || !n->plain)
        return false;
    struct str v = n->val;
    return v.len == 0 || str_eq(v, STR_LIT("~")) ||
           str_eq(v, STR_LIT("null")) || str_eq(v, STR_LIT("Null")) ||
           str_eq(v, STR_LIT("NULL"));
}

const struct cfg__node *cfg__map_get(const struct cfg__node *m,
                                     const char *key)
{
    if (m == NULL || m->type != CFG_N_MAP)
        return NULL;
    struct str k = str_cstr(key);
    for (const struct cfg__node *v = m->head; v != NULL; v = v->next)
        if (str_eq(v->key->val, k))
            return cfg__is_null(v) ? NULL : v;
    return NULL;
}
