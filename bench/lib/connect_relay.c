/*
 * The least a CONNECT proxy can do, as a reference for bench/run.sh connect:
 * one tunnel at a time, blocking sockets, no event loop, no access rules,
 * no DNS, no logging. It reads the CONNECT head, connects to the port it
 * names on 127.0.0.1, answers 200, then copies bytes both ways with read(2)
 * and write(2) through a 1 MiB buffer (or, with "splice", through a 1 MiB
 * pipe), and closes both sockets when either side closes.
 *
 * Whatever a real proxy costs on top of this is its own; whatever this
 * costs is what any relay costs on this machine.
 *
 *     connect_relay PORTFILE [splice]
 *
 * Listens on a free loopback port and writes it to PORTFILE.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static char buf[CHUNK];

static int listen_any(const char *portfile)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 16) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &len) < 0) {
        perror("listen");
        exit(1);
    }
    FILE *f = fopen(portfile, "w");
    if (f == NULL || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0) {
        perror(portfile);
        exit(1);
    }
    return ls;
}

/* Reads the request head a byte at a time (nothing after it is taken) and
 * connects to the port of "CONNECT host:port"; -1 on anything else. */
static int open_tunnel(int c)
{
    char head[1024];
    size_t n = 0;
    while (n < sizeof(head) - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        if (read(c, head + n, 1) != 1)
            return -1;
        n++;
    }
    head[n] = '\0';
    char *colon = strchr(head, ':');
    if (strncmp(head, "CONNECT ", 8) != 0 || colon == NULL)
        return -1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (write(c, ok, sizeof(ok) - 1) != (ssize_t)(sizeof(ok) - 1)) {
        close(s);
        return -1;
    }
    return s;
}

/* One readable side's bytes to the other; 0 at EOF or on an error. */
static int move(int from, int to, int pipefd[2])
{
    ssize_t n;
    if (pipefd != NULL) {
        n = splice(from, NULL, pipefd[1], NULL, CHUNK, SPLICE_F_MOVE);
        for (ssize_t left = n; left > 0;) {
            ssize_t w = splice(pipefd[0], NULL, to, NULL, (size_t)left, SPLICE_F_MOVE);
            if (w <= 0)
                return 0;
            left -= w;
        }
        return n > 0;
    }
    n = read(from, buf, CHUNK);
    for (ssize_t off = 0; n > 0 && off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return 0;
        off += w;
    }
    return n > 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: connect_relay PORTFILE [splice]\n");
        return 2;
    }
    int ls = listen_any(argv[1]);
    int use_splice = argc > 2 && strcmp(argv[2], "splice") == 0;
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        int s = open_tunnel(c);
        int p[2] = { -1, -1 };
        if (s >= 0 && use_splice && pipe(p) == 0)
            (void)fcntl(p[1], F_SETPIPE_SZ, CHUNK);
        for (int open = s >= 0; open;) {
            struct pollfd pf[2] = { { c, POLLIN, 0 }, { s, POLLIN, 0 } };
            if (poll(pf, 2, -1) < 0)
                break;
            if (pf[0].revents != 0)
                open = move(c, s, p[0] >= 0 ? p : NULL);
            if (open && pf[1].revents != 0)
                open = move(s, c, p[0] >= 0 ? p : NULL);
        }
        if (p[0] >= 0) {
            close(p[0]);
            close(p[1]);
        }
        if (s >= 0)
            close(s);
        close(c);
    }
}
