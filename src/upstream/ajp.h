/*
 * AJP/1.3 packets (Apache Tomcat's "AJPv13" protocol reference), pure:
 * bytes in, values out; no I/O, no allocation, no logging.
 *
 * Web server -> container packets start 0x12 0x34, container -> web server
 * packets "AB"; then a 2-byte big-endian payload length. Strings are a
 * 2-byte length, the bytes and a NUL (length 0xFFFF is "null").
 */
#ifndef GH_UPSTREAM_AJP_H
#define GH_UPSTREAM_AJP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "http/h1.h"

#define AJP_HEAD 4           /* magic + length */
#define AJP_MAX_PACKET 65536 /* Tomcat's packetSize upper bound */

/* Container -> web server packet types (first payload byte). */
enum ajp_type {
    AJP_SEND_BODY_CHUNK = 3,
    AJP_SEND_HEADERS = 4,
    AJP_END_RESPONSE = 5,
    AJP_GET_BODY_CHUNK = 6,
    AJP_CPONG_REPLY = 9,
};

/* The forward-request, with what the web server decided to tell. Nothing in
 * here comes from a client as an attribute: attributes are only what the
 * proxy computes itself (CVE-2020-1938). */
struct ajp_req {
    struct str method;      /* as received; unknown ones go as "stored" */
    struct str protocol;    /* "HTTP/1.1" */
    struct str uri;         /* path, as received (still %-encoded) */
    struct str query;       /* without the '?', may be empty */
    struct str remote_addr; /* the client's address */
    struct str server_name; /* the Host, without port */
    uint16_t server_port;
    bool is_ssl;
    const struct h1_field *fields; /* request fields to forward */
    size_t nfields;
    struct str secret;      /* the connector's secret */
    struct str remote_port; /* attribute AJP_REMOTE_PORT */
    struct str local_addr;  /* attribute AJP_LOCAL_ADDR */
};

/* Writes the forward-request packet for <r> into <out> (room <cap>, which is
 * also the packet size limit). Returns its length, or -E2BIG when it does
 * not fit, -EINVAL when a value holds a NUL or is longer than 65534. */
int ajp_encode_request(const struct ajp_req *r, uint8_t *out, size_t cap);

/* The AJP method code of <m> (0 when it has none: send it stored). */
uint8_t ajp_method_code(struct str m);

/* The CPING packet (5 bytes). */
extern const uint8_t ajp_cping[5];

/* Writes the 6-byte head of a body packet carrying <n> bytes (n <= 65530);
 * n == 0 is the empty packet ending the body (4 bytes). Returns its
 * length. */
size_t ajp_body_head(uint8_t out[6], size_t n);

/* Reads a container packet head at <p> (<len> bytes available). Returns the
 * payload length (>= 1), -EAGAIN when fewer than 4 bytes, -EBADMSG when the
 * magic is not "AB", the length is 0 or above <max_payload>. */
int ajp_packet_len(const uint8_t *p, size_t len, size_t max_payload);

/* Parses a SEND_HEADERS payload (<p>[0] == 4) of <len> bytes into <m>,
 * whose fields array (m->fields, room m->cap_) must be set up with
 * h1_msg_init. Views point into <p>. Coded header names become their
 * standard names. Sets status, reason, version 11, Content-Length framing
 * (H1_HAS_CL) and head_len. Returns 0, -EBADMSG (truncated, bad status, a
 * name that is not a token, a value with CR, LF or NUL, a bad or repeated
 * Content-Length) or -E2BIG (more fields than room). */
int ajp_parse_headers(const uint8_t *p, size_t len, struct h1_msg *m);

#endif
