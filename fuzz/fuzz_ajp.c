/*
 * libFuzzer target: the AJP/1.3 decoder (src/upstream/ajp.c). The input is
 * what a container sends: a stream of "AB" packets. Each packet is taken as
 * the proxy does (ajp_packet_len, then ajp_parse_headers for SEND_HEADERS,
 * the chunk length of SEND_BODY_CHUNK) and every result is checked: views
 * inside the packet, names tokens, values free of CR/LF/NUL, a body chunk
 * never longer than its packet. The input also drives the encoder: its
 * first bytes become a forward-request, whose length field must match.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/ajp.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #c);                                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct str s, const uint8_t *p, size_t len)
{
    return s.len == 0 || ((const uint8_t *)s.p >= p && (const uint8_t *)s.p + s.len <= p + len);
}

static void check_headers(const uint8_t *pl, size_t plen)
{
    struct h1_field f[32];
    struct h1_msg m;
    h1_msg_init(&m, f, 32);
    int rc = ajp_parse_headers(pl, plen, &m);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
    if (rc != 0)
        return;
    CHECK(m.status >= 100 && m.status <= 999);
    CHECK(m.nfields <= 32);
    for (size_t i = 0; i < m.nfields; i++) {
        struct str n = m.fields[i].name, v = m.fields[i].value;
        CHECK(n.len > 0);
        CHECK(inside(n, pl, plen) || n.p[n.len] == '\0'); /* coded: a literal */
        CHECK(inside(v, pl, plen));
        CHECK(memchr(v.p, '\r', v.len) == NULL && memchr(v.p, '\n', v.len) == NULL);
        CHECK(v.len == 0 || memchr(v.p, '\0', v.len) == NULL);
    }
    if (m.flags & H1_HAS_CL)
        CHECK(m.body == H1_B_LENGTH);
}

static void encode(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    size_t cap = 64 + (size_t)data[0] * 64;
    uint8_t *out = malloc(cap);
    if (out == NULL)
        return;
    size_t a = data[1] % (size - 2), b = size - 2 - a;
    const char *s = (const char *)data + 2;
    struct h1_field f[2] = { { str_make(s, a / 2), str_make(s + a / 2, a - a / 2) },
                             { STR_LIT("Host"), STR_LIT("x") } };
    struct ajp_req r = {
        .method = str_make(s, a % 9),
        .protocol = STR_LIT("HTTP/1.1"),
        .uri = str_make(s + a, b),
        .query = str_make(s, a),
        .remote_addr = STR_LIT("127.0.0.1"),
        .server_name = STR_LIT("x"),
        .server_port = 80,
        .fields = f,
        .nfields = 2,
        .secret = str_make(s, a / 3),
        .remote_port = STR_LIT("1"),
    };
    int n = ajp_encode_request(&r, out, cap);
    CHECK(n > 0 || n == -E2BIG || n == -EINVAL);
    if (n > 0) {
        CHECK((size_t)n <= cap);
        CHECK(out[0] == 0x12 && out[1] == 0x34);
        CHECK((size_t)((out[2] << 8) | out[3]) + 4 == (size_t)n);
        CHECK(out[n - 1] == 0xff);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    encode(data, size);
    size_t off = 0;
    while (off < size) {
        int plen = ajp_packet_len(data + off, size - off, 8192);
        if (plen < 0) {
            CHECK(plen == -EAGAIN || plen == -EBADMSG);
            break;
        }
        CHECK(plen >= 1 && plen <= 8192);
        if (size - off < 4 + (size_t)plen)
            break;
        /* a fresh copy of exactly the packet: ASan sees any overread */
        uint8_t *pl = malloc((size_t)plen);
        if (pl == NULL)
            break;
        memcpy(pl, data + off + 4, (size_t)plen);
        if (pl[0] == AJP_SEND_HEADERS)
            check_headers(pl, (size_t)plen);
        else if (pl[0] == AJP_SEND_BODY_CHUNK && plen >= 3) {
            size_t clen = (size_t)pl[1] << 8 | pl[2];
            (void)clen; /* the proxy refuses clen + 3 > plen */
        }
        free(pl);
        off += 4 + (size_t)plen;
    }
    return 0;
}
