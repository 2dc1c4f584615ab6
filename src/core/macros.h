/*
 * Always-on cheap assertions (Varnish vas.h) and small helpers.
 * AN(p): p is not NULL/zero.  AZ(x): x is zero.  ASSERT(c): c holds.
 * DASSERT(c) is compiled in debug builds only (hot paths).
 */
#ifndef GH_CORE_MACROS_H
#define GH_CORE_MACROS_H

#include <stdlib.h>

void gh_panic(const char *file, int line, const char *cond) __attribute__((noreturn));

#define ASSERT(c)                                                              \
    do {                                                                       \
        if (__builtin_expect(!(c), 0))                                         \
            gh_panic(__FILE__, __LINE__, #c);                                  \
    } while (0)
#define AN(x) ASSERT((x) != 0)
#define AZ(x) ASSERT((x) == 0)

#ifdef GH_DEBUG
#define DASSERT(c) ASSERT(c)
#else
#define DASSERT(c) ((void)0)
#endif

#define CHECK_OBJ(o, m) DASSERT((o) != NULL && (o)->magic == (m))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Free and clear in one step (HAProxy ha_free). */
#define FREE_NULL(p)                                                           \
    do {                                                                       \
        free(p);                                                               \
        (p) = NULL;                                                            \
    } while (0)

#define container_of(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
