/* Socket helpers: listeners, non-blocking connects, address text. */
#ifndef GH_CORE_SOCK_H
#define GH_CORE_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Opens a non-blocking listening socket on <sa> with SO_REUSEADDR and, when
 * <reuseport>, SO_REUSEPORT. Returns the fd or -errno. */
int sock_listen(const struct sockaddr *sa, socklen_t len, int backlog,
                bool reuseport);

/* Starts a non-blocking connect to <sa>. Returns the fd (connected or in
 * progress) or -errno. */
int sock_connect(const struct sockaddr *sa, socklen_t len);

/* Reads SO_ERROR: 0 when a connect completed, else the errno. */
int sock_error(int fd);

/* Writes the numeric host of <sa> (no port; IPv6 without brackets) into
 * <out>. Returns the length. */
size_t sock_ntop(const struct sockaddr *sa, char *out, size_t outlen);

/* Port of <sa> in host order. */
int sock_port(const struct sockaddr *sa);

#endif
