/*
 * The built-in configuration, used when gatehouse starts without -c: a
 * forward proxy on 127.0.0.1:3128 for this machine's clients (as
 * examples/forward.yaml), and a reverse listener on 127.0.0.1:8080 whose
 * only route answers every request with a page saying how to point
 * Gatehouse at real servers. It is loaded through the same
 * cfg_load_string() as any file, so it is also a test of the loader.
 */
#include "config/config.h"

const char cfg_default_yaml[] =
    "# Gatehouse built-in default configuration (gatehouse without -c).\n"
    "log:\n"
    "  access: stdout\n"
    "  format: combined\n"
    "listeners:\n"
    "  - listen: 127.0.0.1:3128\n"
    "    forward:\n"
    "      allow: [127.0.0.0/8]\n"
    "      connect_ports: [443, 8443]\n"
    "  - listen: 127.0.0.1:8080\n"
    "    sites:\n"
    "      - default: true\n"
    "        routes:\n"
    "          - path: /\n"
    "            return:\n"
    "              status: 200\n"
    "              content_type: text/plain; charset=utf-8\n"
    "              body: |\n"
    "                Gatehouse is running on its built-in default "
    "configuration.\n"
    "\n"
    "                A forward proxy for this machine listens on "
    "127.0.0.1:3128:\n"
    "\n"
    "                    curl -x http://127.0.0.1:3128 http://example.com/\n"
    "\n"
    "                No upstream servers are configured, so this page is all "
    "it serves.\n"
    "                To put Gatehouse in front of your application servers, "
    "start it\n"
    "                with a configuration file, such as the example one:\n"
    "\n"
    "                    gatehouse -c examples/reverse.yaml\n"
    "\n"
    "                The part that matters names the servers and routes "
    "requests to them:\n"
    "\n"
    "                    upstreams:\n"
    "                      app: { servers: [127.0.0.1:9001, 127.0.0.1:9002] "
    "}\n"
    "                    listeners:\n"
    "                      - listen: 127.0.0.1:8080\n"
    "                        sites:\n"
    "                          - { default: true, routes: [{ path: /, "
    "upstream: app }] }\n"
    "\n"
    "                Every option is described in docs/config.md.\n";
