/*
 * gatehouse: command line.
 *
 *   gatehouse [-c FILE]        run (the built-in default config without -c)
 *   gatehouse -t [-c FILE]     check the configuration and exit 0 or 1
 *   gatehouse reload|reopen|stop|drain [-c FILE]
 *                              signal the running process named by the
 *                              configuration's pid_file
 *   gatehouse --version | --help
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/pool.h"
#include "proxy/proxy.h"

#ifndef GH_VERSION
#define GH_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: gatehouse [options]\n"
            "\n"
            "Gatehouse is a reverse and forward HTTP proxy.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   load the configuration from FILE (YAML);\n"
            "                      without it, the built-in default runs: a\n"
            "                      forward proxy on 127.0.0.1:3128 and a\n"
            "                      reverse listener on 127.0.0.1:8080\n"
            "  -t, --test          check the configuration, then exit:\n"
            "                      0 when it is valid, 1 when it is not\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Commands (to the process whose pid is in the configuration's\n"
            "pid_file):\n"
            "  reload              check the configuration, then ask the\n"
            "                      process to load it again (SIGHUP)\n"
            "  reopen              reopen the log files (SIGUSR1)\n"
            "  stop                stop gracefully (SIGTERM)\n"
            "  drain               leave the cluster: the same SIGTERM; with\n"
            "                      cluster.drain_delay, /healthz fails first and\n"
            "                      new connections are taken for that long\n"
            "\n"
            "Signals: SIGTERM stops gracefully (finishes requests in flight),\n"
            "SIGINT stops at once, SIGHUP reloads the configuration file,\n"
            "SIGUSR1 reopens the log files.\n"
            "Documentation: docs/config.md\n");
}

static int open_error_log(const struct cfg *cfg)
{
    int off = 0;
    int fd = log_open(cfg->log.error, &off);
    if (off)
        return 0;
    if (fd < 0) {
        fprintf(stderr, "gatehouse: error log %s: %s\n", cfg->log.error, strerror(-fd));
        return -1;
    }
    log_set_error_fd(fd);
    log_set_level(cfg->log.level);
    return 0;
}

/* Sends <sig> to the pid in <cfg>'s pid file. Returns the exit status. */
static int signal_running(const struct cfg *cfg, const char *cmd, int sig)
{
    if (cfg->pid_file == NULL) {
        fprintf(stderr, "gatehouse %s: %s has no \"pid_file\": cannot find the "
                        "running process\n", cmd, cfg->file);
        return 1;
    }
    FILE *f = fopen(cfg->pid_file, "re");
    if (f == NULL) {
        fprintf(stderr, "gatehouse %s: %s: %s (is gatehouse running?)\n", cmd,
                cfg->pid_file, strerror(errno));
        return 1;
    }
    char line[32] = "";
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    char *end = NULL;
    errno = 0;
    long pid = got ? strtol(line, &end, 10) : 0;
    if (!got || errno != 0 || end == line || (*end != '\n' && *end != '\0') ||
        pid <= 1) {
        fprintf(stderr, "gatehouse %s: %s does not hold a process id\n", cmd,
                cfg->pid_file);
        return 1;
    }
    if (kill((pid_t)pid, sig) == -1) {
        fprintf(stderr, "gatehouse %s: process %ld: %s\n", cmd, pid, strerror(errno));
        return 1;
    }
    printf("gatehouse %s: signal sent to process %ld\n", cmd, pid);
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    const char *cmd = NULL;
    int sig = 0;
    int test = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cmd == NULL && i == 1 && (strcmp(a, "reload") == 0 ||
                                      strcmp(a, "reopen") == 0 ||
                                      strcmp(a, "stop") == 0 ||
                                      strcmp(a, "drain") == 0)) {
            cmd = a;
            sig = strcmp(a, "reload") == 0   ? SIGHUP
                  : strcmp(a, "reopen") == 0 ? SIGUSR1
                                             : SIGTERM;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (++i == argc) {
                fprintf(stderr, "gatehouse: %s needs a file name\n", a);
                return 2;
            }
            file = argv[i];
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--test") == 0) {
            test = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("gatehouse %s\n", GH_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "gatehouse: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    char err[1024] = "";
    struct cfg *cfg = file ? cfg_load_file(file, err, sizeof(err))
                           : cfg_load_string(cfg_default_yaml, strlen(cfg_default_yaml),
                                             "<default>", err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (cmd != NULL) {
        int rc = signal_running(cfg, cmd, sig);
        cfg_unref(cfg);
        return rc;
    }
    if (test) {
        printf("%s: configuration ok\n", file ? file : "<default>");
        cfg_unref(cfg);
        return 0;
    }
    pool_fail_init();
    if (open_error_log(cfg) < 0) {
        cfg_unref(cfg);
        return 1;
    }
    if (file == NULL)
        log_info("no -c given: running the built-in default configuration");
    int status = server_run(cfg, file, argv);
    cfg_unref(cfg);
    return status;
}
