/*
 * Proxy authentication: "Proxy-Authorization: Basic" against the users of
 * a forward listener's htpasswd file (RFC 9110 §11.7.2, RFC 7617), with
 * the state one worker keeps for it: credentials verified recently (a
 * bcrypt check costs milliseconds of CPU, far too much per request) and
 * the failures of each client address, which slow that address down.
 */
#ifndef GH_SECURITY_AUTH_H
#define GH_SECURITY_AUTH_H

#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/str.h"

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING,   /* no credentials: ask for them */
    AUTH_MALFORMED, /* not "Basic <base64 of user:password>" */
    AUTH_FAILED,    /* unknown user or wrong password */
};

struct auth;

/* Per-worker state. NULL on out of memory. */
struct auth *auth_new(void);
void auth_free(struct auth *a);

/* Checks <value> (the Proxy-Authorization field value; STR_NULL when
 * absent) against <f>'s users. On AUTH_OK, *user is the user's name as the
 * configuration holds it. <now> is the loop clock in ms. */
enum auth_result auth_check(struct auth *a, const struct cfg_forward *f,
                            struct str value, int64_t now, const char **user);

/* Failure slow-down per client address. auth_wait() says how many ms a
 * client at <sa> must still wait before its credentials are looked at
 * (0: now). auth_failed() records a failure and returns the wait it
 * earned; auth_passed() forgets the address. */
int64_t auth_wait(struct auth *a, const struct sockaddr *sa, int64_t now);
int64_t auth_failed(struct auth *a, const struct sockaddr *sa, int64_t now);
void auth_passed(struct auth *a, const struct sockaddr *sa);

/* Decodes standard base64 (with padding) of <in> into <out> (room for
 * in.len * 3 / 4 bytes). Returns the length, or -1 if <in> is not base64.
 * Exposed for tests. */
int auth_b64decode(struct str in, unsigned char *out, size_t outlen);

#endif
