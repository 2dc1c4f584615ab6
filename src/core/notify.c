/*
 * sd_notify(3) by hand: $NOTIFY_SOCKET is a path ("/run/systemd/notify")
 * or an abstract socket name ("@..."); the message is "KEY=value" lines in
 * one SOCK_DGRAM datagram. systemd's documentation says the protocol is
 * stable and may be implemented without its library.
 *
 * The socket is made once, at start, before the seccomp sandbox closes
 * socket(AF_UNIX) to the main thread; sending on it is an ordinary
 * sendto(). Start-up state of the main thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/notify.h"

static int nfd = -1;
static struct sockaddr_un nsa;
static socklen_t nsalen;

int notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (nfd >= 0 || path == NULL || (path[0] != '/' && path[0] != '@') ||
        path[1] == '\0')
        return 0;
    size_t plen = strlen(path);
    if (plen >= sizeof(nsa.sun_path))
        return -ENAMETOOLONG;
    nsa = (struct sockaddr_un){ .sun_family = AF_UNIX };
    memcpy(nsa.sun_path, path, plen);
    if (nsa.sun_path[0] == '@')
        nsa.sun_path[0] = '\0'; /* abstract namespace */
    nsalen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return nfd == -1 ? -errno : 0;
}

int notify_send(const char *fmt, ...)
{
    if (nfd < 0)
        return 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return -EMSGSIZE;
    if (sendto(nfd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&nsa, nsalen) == -1) {
        int rc = -errno;
        log_debug("notify: %s", strerror(-rc));
        return rc;
    }
    return 0;
}
