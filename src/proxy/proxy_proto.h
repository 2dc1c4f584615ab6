/*
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a
 * header an L4 balancer puts in front of a TCP stream to say which client
 * address it came from. Parsing and writing only: bytes in, addresses out;
 * no I/O, no allocation, no logging.
 */
#ifndef GH_PROXY_PROXY_PROTO_H
#define GH_PROXY_PROXY_PROTO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A v1 header is at most 107 bytes; a v2 header is 16 bytes plus what its
 * length field says. We accept v2 headers up to PP_MAX_V2 bytes (TLVs
 * included) and refuse longer ones. */
#define PP_MAX_V1 107
#define PP_MAX_V2 4096

union pp_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct pp_info {
    int version; /* 1 or 2 */
    bool local;  /* v2 LOCAL, v1 UNKNOWN, or a family we do not route by
                    (AF_UNIX, UNSPEC): keep the connection's own addresses */
    union pp_addr src, dst; /* valid unless <local> */
};

/* Parses a PROXY header at the start of <buf>. Returns the header's length
 * (> 0, the bytes to consume), -EAGAIN when <buf> is a valid beginning of
 * a header but incomplete, or -EBADMSG when it is not a PROXY header (the
 * connection must then be closed: the spec forbids guessing). */
int pp_parse(const char *buf, size_t len, struct pp_info *out);

/* Writes a header of <version> (1 or 2) saying <src> talked to <dst> into
 * <out>. Families that differ or are not IP give "PROXY UNKNOWN" (v1) or a
 * LOCAL header (v2). Returns the length, or -ENOSPC when <cap> is too small
 * (PP_MAX_V1 + 1 always suffices for v1, 52 for v2). */
int pp_write(char *out, size_t cap, int version, const struct sockaddr *src,
             const struct sockaddr *dst);

#endif
