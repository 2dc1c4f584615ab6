/*
 * The systemd readiness protocol (sd_notify(3)), without libsystemd: one
 * datagram to the socket named by $NOTIFY_SOCKET. Does nothing when the
 * variable is unset (not started by systemd with Type=notify).
 */
#ifndef GH_CORE_NOTIFY_H
#define GH_CORE_NOTIFY_H

/* Opens the socket when $NOTIFY_SOCKET names one; call once at start,
 * before the sandbox. 0 or -errno. */
int notify_init(void);

/* Sends "READY=1", "RELOADING=1", "STOPPING=1", "MAINPID=n\nREADY=1",
 * "STATUS=..." and the like. Returns 0, or -errno (also logged at debug
 * level: the service manager may be gone, which is not our problem). */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
