/*
 * Access control lists: address ranges, port ranges and host patterns, as
 * the configuration gives them (struct cfg_cidr, cfg_ports, host pattern
 * strings). Pure functions: no allocation, no I/O.
 */
#ifndef GH_SECURITY_ACL_H
#define GH_SECURITY_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/str.h"

/* The first range of <list> holding the address of <sa> (AF_INET or
 * AF_INET6; an IPv4-mapped IPv6 address, ::ffff:a.b.c.d, is matched as the
 * IPv4 address it is), or NULL. */
const struct cfg_cidr *acl_cidr_find(const struct cfg_cidr *list, size_t n,
                                     const struct sockaddr *sa);

/* True when <port> is in one of the <n> ranges. */
bool acl_port_in(const struct cfg_ports *list, size_t n, unsigned port);

/* The first pattern of <pats> matching <host> (lower case, no port, IPv6
 * in brackets), or NULL. "example.com" matches itself only;
 * "*.example.com" matches names ending in ".example.com". */
const char *acl_host_find(const char *const *pats, size_t n, struct str host);

/* True for addresses no forward proxy should connect to whatever the
 * configuration says: unspecified (0.0.0.0/8, ::), multicast, broadcast.
 * Connecting to 0.0.0.0 reaches this host's own services. */
bool acl_addr_reserved(const struct sockaddr *sa);

#endif
