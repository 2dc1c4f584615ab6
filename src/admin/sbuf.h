/*
 * A growable string for the admin pages (metrics, status JSON). Not for the
 * request path: it mallocs. An allocation failure is sticky: every later
 * call is a no-op and sb_take() returns NULL.
 */
#ifndef GH_ADMIN_SBUF_H
#define GH_ADMIN_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

void sb_put(struct sbuf *b, const char *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prometheus label value: \ " and newline escaped. */
void sb_label(struct sbuf *b, const char *s);
/* A JSON string, quotes included. */
void sb_json(struct sbuf *b, const char *s);
/* Returns the NUL-terminated string (caller frees) and its length, or NULL
 * after a failure; <b> is emptied either way. */
char *sb_take(struct sbuf *b, size_t *len);
void sb_free(struct sbuf *b);

#endif
