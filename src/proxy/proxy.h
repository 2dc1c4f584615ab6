/*
 * The proxy: worker threads, client sessions, the reverse-proxy pipeline.
 */
#ifndef GH_PROXY_PROXY_H
#define GH_PROXY_PROXY_H

#include "config/config.h"

/* Binds every listener of <cfg>, starts cfg->workers worker threads and the
 * admin thread, and serves until SIGTERM (graceful: stop accepting, finish
 * what is in flight up to cfg->graceful_timeout) or SIGINT (immediate).
 * SIGHUP reloads <file> (the built-in configuration when NULL), SIGUSR1
 * reopens the log files, SIGUSR2 starts the binary anew with <argv> and
 * hands it the listening sockets. Takes its own reference to <cfg>.
 * Returns the process exit status. */
int server_run(struct cfg *cfg, const char *file, char **argv);

#endif
