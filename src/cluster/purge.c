/*
 * Purge messages: "<how> <sender> <what>", where <how> is k, p or t and
 * <sender> 16 hex digits naming the process (random at start), so a node
 * can skip its own messages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster/purge.h"

#define CHANNEL STR_LIT("purge")
#define MAX_WHAT 4096

static char self[17];
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void make_self(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
    snprintf(self, sizeof(self), "%016llx", (unsigned long long)id);
}

struct sub {
    cpurge_fn *fn;
    void *arg;
};

int cpurge_publish(struct shared *s, enum cpurge_how how, struct str what)
{
    if (how != CPURGE_KEY && how != CPURGE_PREFIX && how != CPURGE_TAG)
        return -EINVAL;
    if (what.len == 0 || what.len > MAX_WHAT)
        return -EINVAL;
    pthread_once(&self_once, make_self);
    char msg[2 + 16 + 1 + MAX_WHAT];
    msg[0] = (char)how;
    msg[1] = ' ';
    memcpy(msg + 2, self, 16);
    msg[18] = ' ';
    memcpy(msg + 19, what.p, what.len);
    return shared_publish(s, CHANNEL, str_make(msg, 19 + what.len));
}

int cpurge_decode(struct str msg, enum cpurge_how *how, struct str *what)
{
    if (msg.len < 20 || msg.p[1] != ' ' || msg.p[18] != ' ')
        return -EBADMSG;
    char h = msg.p[0];
    if (h != CPURGE_KEY && h != CPURGE_PREFIX && h != CPURGE_TAG)
        return -EBADMSG;
    pthread_once(&self_once, make_self);
    *how = (enum cpurge_how)h;
    *what = str_make(msg.p + 19, msg.len - 19);
    return memcmp(msg.p + 2, self, 16) == 0 ? 1 : 0;
}

static void on_msg(void *arg, struct str channel, struct str msg)
{
    struct sub *sb = arg;
    if (channel.p == NULL) {
        sb->fn(sb->arg, CPURGE_GAP, STR_NULL);
        return;
    }
    enum cpurge_how how;
    struct str what;
    if (cpurge_decode(msg, &how, &what) == 0)
        sb->fn(sb->arg, how, what);
}

int cpurge_subscribe(struct shared *s, cpurge_fn *fn, void *arg)
{
    /* lives as long as the subscription, that is as long as <s> */
    struct sub *sb = shared_attach(s, sizeof(*sb));
    if (sb == NULL)
        return -ENOMEM;
    sb->fn = fn;
    sb->arg = arg;
    return shared_subscribe(s, CHANNEL, on_msg, sb);
}
