/*
 * libFuzzer target: pp_parse (PROXY protocol v1/v2). Checks that a result
 * is within the input, that every prefix of an accepted header is -EAGAIN,
 * that a header is not refused once more bytes follow it, and that what was
 * parsed writes back (pp_write) into a header that parses to the same
 * addresses.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    struct pp_info pi;
    int rc = pp_parse(buf, size, &pi);
    if (rc != -EAGAIN && rc != -EBADMSG && (rc <= 0 || (size_t)rc > size))
        abort();
    if (rc > 0) {
        struct pp_info again;
        for (size_t i = 0; i < (size_t)rc; i++)
            if (pp_parse(buf, i, &again) != -EAGAIN)
                abort();
        if (pp_parse(buf, (size_t)rc, &again) != rc)
            abort();
        if (!pi.local) {
            char out[128];
            int n = pp_write(out, sizeof(out), pi.version, &pi.src.sa, &pi.dst.sa);
            if (n <= 0 || pp_parse(out, (size_t)n, &again) != n || again.local ||
                memcmp(&again.src, &pi.src, sizeof(pi.src)) != 0 ||
                memcmp(&again.dst, &pi.dst, sizeof(pi.dst)) != 0)
                abort();
        }
    }
    free(buf);
    return 0;
}
