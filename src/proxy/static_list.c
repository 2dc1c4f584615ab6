/*
 * Directory listings of static routes ("listing: true"): an HTML page with
 * the names in a directory, sorted, each escaped twice over (percent-encoded
 * in the link, HTML-escaped in the text), hidden names left out unless the
 * route serves them. At most 10,000 names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/macros.h"
#include "proxy/proxy_int.h"

static bool html_needs_escape(char c)
{
    return c == '<' || c == '>' || c == '&' || c == '"' || c == '\'';
}

struct lbuf {
    char *p;
    size_t len, cap;
};

static void lput(struct lbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap)
        n = b->cap > b->len ? b->cap - b->len : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void lput_name(struct lbuf *b, const char *name, bool href)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const char *c = name; *c; c++) {
        unsigned char u = (unsigned char)*c;
        char tmp[8];
        size_t n = 0;
        if (href && !(u >= 'a' && u <= 'z') && !(u >= 'A' && u <= 'Z') &&
            !(u >= '0' && u <= '9') && !strchr("-._~", u)) {
            tmp[n++] = '%';
            tmp[n++] = hex[u >> 4];
            tmp[n++] = hex[u & 15];
        } else if (!href && html_needs_escape((char)u)) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "&#%d;", u);
        } else {
            tmp[n++] = (char)u;
        }
        lput(b, tmp, n);
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void static_list(struct txn *t, int dirfd, struct str path, bool hidden)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        t->reason = "static_listing_failed";
        txn_error(t, 403, "http_request_denied", "The directory cannot be listed.");
        return;
    }
    size_t nn = 0, cap = 64;
    char **names = pool_alloc(t->pool, cap * sizeof(*names));
    struct dirent *de;
    while (names != NULL && (de = readdir(d)) != NULL && nn < 10000) {
        if (de->d_name[0] == '.' && (!hidden || !strcmp(de->d_name, ".") ||
                                     !strcmp(de->d_name, "..")))
            continue;
        if (nn == cap) {
            char **nb = pool_alloc(t->pool, 2 * cap * sizeof(*names));
            if (nb == NULL)
                break;
            memcpy(nb, names, cap * sizeof(*names));
            names = nb;
            cap *= 2;
        }
        bool dir = de->d_type == DT_DIR;
        size_t l = strlen(de->d_name);
        char *s = pool_alloc(t->pool, l + 2);
        if (s == NULL)
            break;
        memcpy(s, de->d_name, l);
        s[l] = dir ? '/' : '\0';
        s[l + 1] = '\0';
        names[nn++] = s;
    }
    closedir(d);
    if (names == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    qsort(names, nn, sizeof(*names), cmp_names);
    struct lbuf b = { .cap = 512 + nn * 800 };
    b.p = pool_alloc(t->pool, b.cap);
    if (b.p == NULL) {
        txn_error(t, 503, "proxy_internal_error", "Out of memory.");
        return;
    }
    static const char h1[] = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ";
    lput(&b, h1, sizeof(h1) - 1);
    lput_name(&b, path.p, false);
    lput(&b, "</title></head><body><h1>Index of ", 34);
    lput_name(&b, path.p, false);
    lput(&b, "</h1><ul>\n", 10);
    for (size_t i = 0; i < nn; i++) {
        size_t l = strlen(names[i]);
        bool dir = l > 0 && names[i][l - 1] == '/';
        if (dir)
            names[i][l - 1] = '\0';
        lput(&b, "<li><a href=\"", 13);
        lput_name(&b, names[i], true);
        lput(&b, dir ? "/\">" : "\">", dir ? 3 : 2);
        lput_name(&b, names[i], false);
        lput(&b, dir ? "/</a></li>\n" : "</a></li>\n", dir ? 11 : 10);
    }
    lput(&b, "</ul></body></html>\n", 20);
    txn_local(t, 200, "text/html; charset=utf-8", b.p, b.len, NULL);
}

