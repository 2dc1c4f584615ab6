/*
 * libFuzzer target: h1_parse_request. The input is the bytes received on a
 * client connection. Checks the invariants of the result (fuzz_h1.h), that
 * split feeding and prefixes agree with one shot, and parses a pipelined
 * second request when the first one is complete.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_head(h1_parse_request, true, data, size);

    /* the next message starts right after the head (and the body) */
    struct h1_field f[FZ_NF];
    struct h1_msg m;
    char *buf = fz_copy(data, size);
    h1_msg_init(&m, f, FZ_NF);
    int rc = h1_parse_request(buf, size, &m, &fz_lims[0]);
    if (rc > 0 && m.body != H1_B_CHUNKED) {
        size_t off = (size_t)rc;
        if (m.body == H1_B_LENGTH)
            off = m.content_length > size - off ? size : off + m.content_length;
        if (off < size) {
            char *next = fz_copy(data + off, size - off);
            h1_msg_init(&m, f, FZ_NF);
            int r = h1_parse_request(next, size - off, &m, &fz_lims[0]);
            fz_check(&m, next, size - off, r, &fz_lims[0], true);
            free(next);
        }
    }
    free(buf);
    return 0;
}
