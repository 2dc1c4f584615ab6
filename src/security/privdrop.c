/*
 * Privileges: start as root, take what only root can take, then stop being
 * root.
 *
 * Root is needed for ports below 1024, for key files readable only by
 * root, for chroot and for raising the open-file limit. All of that happens
 * before the workers start: listeners are bound and logs opened by then.
 * What follows is this file: chroot (optional), then the groups, gid and
 * uid of an ordinary user, all three ids (real, effective, saved) at once so
 * nothing can switch back, and no_new_privs so no exec can ever raise
 * privileges again (and so seccomp may be installed).
 *
 * Started as root, Gatehouse does not keep running as root unless the
 * configuration says "run_as_root: true": without a "user" it becomes
 * "nobody", as nginx does. Started as another user, "user" is ignored with
 * a notice (there is nothing to drop).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"
#include "security/security.h"

#define DEFAULT_USER "nobody"
#define AUTO_NOFILE 65536ul

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static unsigned long nr_open(void)
{
    unsigned long n = 1048576; /* the kernel's default fs.nr_open */
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f != NULL) {
        if (fscanf(f, "%lu", &n) != 1)
            n = 1048576;
        fclose(f);
    }
    return n;
}

static int raise_nofile(const struct cfg_security *s, bool root,
                        unsigned long *out, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    struct rlimit want = rl;
    if (s->open_files != 0) {
        want.rlim_cur = want.rlim_max = s->open_files;
        if (!root && s->open_files > rl.rlim_max)
            want.rlim_max = rl.rlim_max; /* fails below with a message */
    } else {
        if (root && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max < AUTO_NOFILE))
            want.rlim_max = AUTO_NOFILE;
        unsigned long cap = nr_open();
        if (want.rlim_max == RLIM_INFINITY || want.rlim_max > cap)
            want.rlim_max = cap;
        want.rlim_cur = want.rlim_max;
    }
    if (want.rlim_cur > want.rlim_max ||
        setrlimit(RLIMIT_NOFILE, &want) == -1) {
        if (s->open_files != 0) {
            snprintf(err, errlen, "security.open_files %llu: %s (the hard "
                     "limit is %llu; raising it needs root)",
                     (unsigned long long)s->open_files,
                     want.rlim_cur > want.rlim_max ? "too high" : strerror(errno),
                     (unsigned long long)rl.rlim_max);
            return -1;
        }
        /* auto, without CAP_SYS_RESOURCE: the soft limit up to the hard
         * one is all we may do */
        want = rl;
        if (rl.rlim_cur < rl.rlim_max) {
            want.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &want) == -1)
                want = rl;
        }
    }
    *out = (unsigned long)want.rlim_cur;
    return 0;
}

static int resolve_user(const char *name, struct priv_plan *p, char *err,
                        size_t errlen)
{
    char buf[4096];
    struct passwd pw, *res = NULL;
    int rc;
    if (all_digits(name)) {
        uid_t uid = (uid_t)strtoul(name, NULL, 10);
        rc = getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
        if (res == NULL) { /* a bare number: the same number for the group */
            p->uid = uid;
            p->gid = (gid_t)uid;
            snprintf(p->user, sizeof(p->user), "%s", name);
            return 0;
        }
    } else {
        rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    }
    if (res == NULL) {
        snprintf(err, errlen, "security.user: no user named \"%s\"%s%s", name,
                 rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
        return -1;
    }
    p->uid = pw.pw_uid;
    p->gid = pw.pw_gid;
    snprintf(p->user, sizeof(p->user), "%s", pw.pw_name);
    return 0;
}

static int resolve_group(const char *name, struct priv_plan *p, char *err,
                         size_t errlen)
{
    char buf[4096];
    struct group gr, *res = NULL;
    if (all_digits(name)) {
        p->gid = (gid_t)strtoul(name, NULL, 10);
        snprintf(p->group, sizeof(p->group), "%s", name);
        return 0;
    }
    int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
    if (res == NULL) {
        snprintf(err, errlen, "security.group: no group named \"%s\"%s%s",
                 name, rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
        return -1;
    }
    p->gid = gr.gr_gid;
    snprintf(p->group, sizeof(p->group), "%s", gr.gr_name);
    return 0;
}

int priv_prepare(const struct cfg_security *s, struct priv_plan *p,
                 char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    bool root = geteuid() == 0;
    if (raise_nofile(s, root, &p->nofile, err, errlen) < 0)
        return -1;
    if (!root) {
        if (s->user != NULL)
            log_info("security.user \"%s\" ignored: not started as root "
                     "(running as uid %u)", s->user, (unsigned)geteuid());
        return 0;
    }
    if (s->run_as_root && (s->user == NULL || strcmp(s->user, "root") == 0)) {
        log_warn("running as root (security.run_as_root is true)");
        return 0;
    }
    const char *user = s->user != NULL ? s->user : DEFAULT_USER;
    if (resolve_user(user, p, err, errlen) < 0)
        return -1;
    if (s->group != NULL && resolve_group(s->group, p, err, errlen) < 0)
        return -1;
    if (s->group == NULL) {
        struct group gr, *res = NULL;
        char buf[4096];
        getgrgid_r(p->gid, &gr, buf, sizeof(buf), &res);
        snprintf(p->group, sizeof(p->group), "%s",
                 res != NULL ? gr.gr_name : "?");
    }
    if (p->uid == 0 && !s->run_as_root) {
        snprintf(err, errlen, "security.user \"%s\" is root: running as root "
                 "needs \"run_as_root: true\"", user);
        return -1;
    }
    p->drop = p->uid != 0;
    return 0;
}

static int do_chroot(const char *dir, char *err, size_t errlen)
{
    if (chdir(dir) == -1 || chroot(".") == -1 || chdir("/") == -1) {
        int e = errno;
        snprintf(err, errlen, "security.chroot %s: %s%s", dir, strerror(e),
                 e == EPERM ? " (chroot needs root)" : "");
        return -1;
    }
    return 0;
}

int priv_drop(const struct cfg_security *s, const struct priv_plan *p,
              char *err, size_t errlen)
{
    if (s->chroot != NULL && do_chroot(s->chroot, err, errlen) < 0)
        return -1;
    if (p->drop) {
        if (setgroups(1, &p->gid) == -1 ||
            setresgid(p->gid, p->gid, p->gid) == -1 ||
            setresuid(p->uid, p->uid, p->uid) == -1) {
            snprintf(err, errlen, "cannot become user %s (uid %u, gid %u): %s",
                     p->user, (unsigned)p->uid, (unsigned)p->gid,
                     strerror(errno));
            return -1;
        }
        uid_t r, e, sv;
        if (setuid(0) != -1 || getresuid(&r, &e, &sv) == -1 || r != p->uid ||
            e != p->uid || sv != p->uid) {
            snprintf(err, errlen, "root could be regained after dropping to "
                     "%s: refusing to run", p->user);
            return -1;
        }
        log_info("running as user %s (uid %u), group %s (gid %u)", p->user,
                 (unsigned)p->uid, p->group, (unsigned)p->gid);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    return 0;
}
