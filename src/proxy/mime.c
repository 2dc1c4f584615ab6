/*
 * Media types by file extension, for static files: /etc/mime.types (the
 * Debian "media-types" list, "type ext ext ...", or the file named by
 * GATEHOUSE_MIME_TYPES) read once per process, then a built-in table of the
 * common web types for what the file does not name or when it is missing. Lookups take no lock: the table is built
 * once (pthread_once) and only read afterwards.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "proxy/mime.h"

#define NBUCKETS 4096 /* power of two; /etc/mime.types has ~1,800 extensions */
#define EXT_MAX 16

struct mime_ent {
    char ext[EXT_MAX];
    const char *type;
    struct mime_ent *next;
};

static struct mime_ent *buckets[NBUCKETS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *const builtin[][2] = {
    { "html", "text/html" },          { "htm", "text/html" },
    { "css", "text/css" },            { "js", "text/javascript" },
    { "mjs", "text/javascript" },     { "json", "application/json" },
    { "txt", "text/plain" },          { "xml", "application/xml" },
    { "svg", "image/svg+xml" },       { "png", "image/png" },
    { "jpg", "image/jpeg" },          { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },           { "webp", "image/webp" },
    { "avif", "image/avif" },         { "ico", "image/vnd.microsoft.icon" },
    { "woff", "font/woff" },          { "woff2", "font/woff2" },
    { "ttf", "font/ttf" },            { "otf", "font/otf" },
    { "wasm", "application/wasm" },   { "pdf", "application/pdf" },
    { "zip", "application/zip" },     { "gz", "application/gzip" },
    { "mp4", "video/mp4" },           { "webm", "video/webm" },
    { "mp3", "audio/mpeg" },          { "map", "application/json" },
    { "csv", "text/csv" },            { "md", "text/markdown" },
};

static unsigned hash_ext(const char *e, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)ascii_lower(e[i])) * 16777619u;
    return h & (NBUCKETS - 1);
}

static struct mime_ent *find(const char *e, size_t n)
{
    for (struct mime_ent *m = buckets[hash_ext(e, n)]; m != NULL; m = m->next)
        if (strlen(m->ext) == n && str_ieq(str_make(m->ext, n), str_make(e, n)))
            return m;
    return NULL;
}

/* Adds ext -> type unless ext is known (the first mention wins, as in
 * nginx). <type> must outlive the process. */
static void add(const char *e, size_t n, const char *type)
{
    if (n == 0 || n >= EXT_MAX || find(e, n) != NULL)
        return;
    struct mime_ent *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        m->ext[i] = ascii_lower(e[i]);
    m->type = type;
    unsigned h = hash_ext(e, n);
    m->next = buckets[h];
    buckets[h] = m;
}

size_t mime_parse_line(const char *line, size_t len, mime_add_fn *fn, void *arg)
{
    size_t i = 0, count = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#')
        return 0;
    size_t ts = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
        i++;
    struct str type = str_make(line + ts, i - ts);
    if (memchr(type.p, '/', type.len) == NULL)
        return 0;
    for (;;) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len || line[i] == '#')
            break;
        size_t es = i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        fn(arg, type, str_make(line + es, i - es));
        count++;
    }
    return count;
}

static void add_from_file(void *arg, struct str type, struct str ext)
{
    (void)arg;
    if (ext.len == 0 || ext.len >= EXT_MAX || find(ext.p, ext.len) != NULL)
        return;
    char *t = malloc(type.len + 1); /* lives as long as the process */
    if (t == NULL)
        return;
    memcpy(t, type.p, type.len);
    t[type.len] = '\0';
    add(ext.p, ext.len, t);
    if (find(ext.p, ext.len) == NULL || find(ext.p, ext.len)->type != t)
        free(t);
}

static void load(void)
{
    const char *path = getenv("GATEHOUSE_MIME_TYPES");
    FILE *f = fopen(path != NULL ? path : "/etc/mime.types", "re");
    if (f != NULL) {
        char line[1024];
        while (fgets(line, sizeof(line), f) != NULL) {
            size_t n = strcspn(line, "\r\n");
            mime_parse_line(line, n, add_from_file, NULL);
        }
        fclose(f);
    }
    /* the fallback, for what the file does not name (or no file) */
    for (size_t i = 0; i < ARRAY_LEN(builtin); i++)
        add(builtin[i][0], strlen(builtin[i][0]), builtin[i][1]);
}

const char *mime_type(struct str name)
{
    pthread_once(&once, load);
    const char *slash = memrchr(name.p, '/', name.len);
    if (slash != NULL) {
        name.len -= (size_t)(slash + 1 - name.p);
        name.p = slash + 1;
    }
    const char *dot = memrchr(name.p, '.', name.len);
    if (dot == NULL || dot == name.p)
        return MIME_DEFAULT;
    size_t n = name.len - (size_t)(dot + 1 - name.p);
    struct mime_ent *m = find(dot + 1, n);
    return m != NULL ? m->type : MIME_DEFAULT;
}
