/*
 * Media types of static files by extension (mime.c).
 */
#ifndef GH_PROXY_MIME_H
#define GH_PROXY_MIME_H

#include <stddef.h>

#include "core/str.h"

#define MIME_DEFAULT "application/octet-stream"

/* The media type for file <name> (a path; its last extension counts,
 * case-insensitively), or MIME_DEFAULT. The result lives as long as the
 * process. The first call loads the table. */
const char *mime_type(struct str name);

typedef void mime_add_fn(void *arg, struct str type, struct str ext);

/* Parses one line of a mime.types file ("type ext1 ext2", '#' comments)
 * and calls fn for each extension. Returns the number of extensions. */
size_t mime_parse_line(const char *line, size_t len, mime_add_fn *fn, void *arg);

#endif
