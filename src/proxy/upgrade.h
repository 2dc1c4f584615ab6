/*
 * Binary upgrade (SIGUSR2): listening sockets handed to a new process.
 * See upgrade.c. Main thread only.
 */
#ifndef GH_PROXY_UPGRADE_H
#define GH_PROXY_UPGRADE_H

#include <sys/types.h>

#include "config/config.h"

/* At start: remembers the executable's path and reads the sockets a
 * previous process handed over, if any. */
void upgrade_inherit_init(void);
/* An inherited socket listening on <a> under <key> (the address text, or
 * "@admin"), now owned by the caller; -1 when none. */
int upgrade_take(const char *key, const struct cfg_addr *a);
/* Closes inherited sockets nobody took. */
void upgrade_inherit_done(void);
/* Tells the previous process (if any) that this one serves. */
void upgrade_ready(void);

/* Starts the executable anew with <argv>, handing over <fds> (workers x
 * listeners of <cur>, worker-major) and <admin_fd> (-1: none), and waits
 * until it serves. Returns its pid, or -1 when it could not be started or
 * did not get ready (this process then keeps serving). */
pid_t upgrade_start(char **argv, const struct cfg *cur, int nw, const int *fds,
                    int admin_fd);

#endif
