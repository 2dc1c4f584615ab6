/*
 * libFuzzer target: h1_parse_response and h1_response_body. The input is the
 * bytes received from an upstream server. Checks the invariants of the result
 * (fuzz_h1.h) and that split feeding and prefixes agree with one shot.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_head(h1_parse_response, false, data, size);
    return 0;
}
