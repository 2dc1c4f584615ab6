"""The cluster test bed from Python: network namespaces (bed.sh), and in
them the processes of a small production site:

  client ──► lb (HAProxy, mode tcp, VIP 10.77.1.100:80) ──► n1..nN (gatehouse)
                                                             │      └─► redis
                                                             └─► was1..M (origins)

    with Bed(nodes=3, was=2) as bed:
        bed.load(seconds=10, path="/slow/20")   # from the client host
        bed.kill_node(2); bed.wait_server("n2", "DOWN")

Every run gets a random bed id, so parallel runs never collide; teardown
(also on an exception, and at interpreter exit) stops what was started and
removes the namespaces. Nothing is addressed from the root namespace.
"""
import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLUSTER = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(CLUSTER, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from lib.proxy import binary, proc_env, to_yaml  # noqa: E402

BED_SH = os.path.join(CLUSTER, "bed.sh")
VIP = "10.77.1.100"
VIP_PORT = 80
NODE_PORT = 8080
PEER_PORT = 8081
ADMIN_PORT = 9090
WAS_PORT = 8080
REDIS_ADDR = "10.77.2.50"
REDIS_PORT = 6379


def node_addr(i):
    return "10.77.2.%d" % (10 + i)


def node_back_addr(i):
    return "10.77.3.%d" % (10 + i)


def was_addr(i):
    return "10.77.3.%d" % (20 + i)


def have_tools():
    """None when the bed can run here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "haproxy", "redis-server"):
        if subprocess.run(["sh", "-c", "command -v " + tool],
                          stdout=subprocess.DEVNULL).returncode != 0:
            if not os.path.exists("/usr/sbin/" + tool):
                return "%s is not installed (scripts/deps.sh test)" % tool
    return None


class Proc:
    """A process started inside one of the bed's hosts."""

    def __init__(self, bed, host, argv, name, env=None):
        self.bed = bed
        self.host = host
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(bed.dir, name + ".out")
        self.err_path = os.path.join(bed.dir, name + ".err")
        self.out = open(self.out_path, "ab")
        self.err = open(self.err_path, "ab")
        self.p = subprocess.Popen(["ip", "netns", "exec", bed.ns(host)] + argv,
                                  stdout=self.out, stderr=self.err,
                                  stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.alive():
            self.p.send_signal(sig)
            if self.wait(timeout) is None:
                self.p.kill()
                self.p.wait(5)
        for f in (self.out, self.err):
            f.close()
        return self.p.returncode

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Bed:
    def __init__(self, nodes=3, was=2, balance="roundrobin", redis=False,
                 drain_delay="1500ms", node_extra=None, check_inter=300,
                 cache=False, peering=False, rate=None):
        self.id = "t" + secrets.token_hex(3)
        self.nnodes = nodes
        self.nwas = was
        self.balance = balance
        self.with_redis = redis
        self.drain_delay = drain_delay
        self.node_extra = node_extra or {}
        self.check_inter = check_inter
        self.cache = cache
        self.peering = peering  # cache peering: each key cached on one node
        self.rate = rate        # a listener rate limit, e.g. {by, rate, burst}
        self.dir = tempfile.mkdtemp(prefix="gh-bed-%s-" % self.id)
        self.procs = {}
        self._up = False

    # ---- names ----

    def ns(self, host):
        return "ghc-%s-%s" % (self.id, host)

    def path(self, name):
        return os.path.join(self.dir, name)

    # ---- life cycle ----

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down(keep=exc[0] is not None)

    def up(self):
        atexit.register(self.down)
        subprocess.run([BED_SH, "up", self.id, str(self.nnodes),
                        str(self.nwas)], check=True, stdout=subprocess.DEVNULL)
        self._up = True
        try:
            for i in range(1, self.nwas + 1):
                self.start_was(i)
            if self.with_redis:
                self.start_redis()
            for i in range(1, self.nnodes + 1):
                self.start_node(i)
            self.start_lb()
            for i in range(1, self.nnodes + 1):
                self.wait_server("n%d" % i, "UP", timeout=15)
        except BaseException:
            self.down()
            raise

    def down(self, keep=True):
        """Stops everything and removes the namespaces; the run directory
        (configs, logs) goes too unless <keep> (the default: call
        remove_dir() after looking at the logs) or GH_KEEP_BED=1."""
        if not self._up:
            return
        self._up = False
        for p in list(self.procs.values()):
            try:
                p.stop(signal.SIGTERM, timeout=5)
            except Exception:
                pass
        subprocess.run([BED_SH, "down", self.id], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if not keep:
            self.remove_dir()

    def remove_dir(self):
        if os.environ.get("GH_KEEP_BED") == "1":
            print("bed %s: logs kept in %s" % (self.id, self.dir))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, host, argv, name, env=None):
        old = self.procs.get(name)
        if old is not None and old.alive():
            raise RuntimeError("%s is running" % name)
        p = Proc(self, host, argv, name, env=env)
        self.procs[name] = p
        return p

    def wait_port(self, host, addr, port, timeout=10):
        """Waits until <addr>:<port> accepts, as seen from <host>."""
        code = ("import socket,sys,time\n"
                "end=time.time()+%f\n"
                "while time.time()<end:\n"
                "  try: socket.create_connection((%r,%d),0.2).close(); sys.exit(0)\n"
                "  except OSError: time.sleep(0.05)\n"
                "sys.exit(1)\n" % (timeout, addr, port))
        r = subprocess.run(["ip", "netns", "exec", self.ns(host),
                            sys.executable, "-c", code])
        if r.returncode != 0:
            raise RuntimeError("%s:%d not accepting from %s" % (addr, port, host))

    # ---- WAS ----

    def start_was(self, i):
        name = "was%d" % i
        self.start(name, [sys.executable, os.path.join(CLUSTER, "origin_main.py"),
                          was_addr(i), str(WAS_PORT), name], name)
        self.wait_port(name, was_addr(i), WAS_PORT)

    # ---- redis ----

    def start_redis(self):
        self.start("redis", ["redis-server", "--bind", REDIS_ADDR, "--port",
                             str(REDIS_PORT), "--save", "", "--appendonly",
                             "no", "--dir", self.dir, "--protected-mode", "no"],
                   "redis")
        self.wait_port("redis", REDIS_ADDR, REDIS_PORT)

    # ---- gatehouse nodes ----

    def node_config(self, i):
        name = "n%d" % i
        cfg = {
            "workers": 1,
            "pid_file": self.path(name + ".pid"),
            "via_name": name,
            "graceful_timeout": "10s",
            "log": {"access": self.path(name + ".access.log"),
                    "error": self.path(name + ".error.log")},
            "cluster": {"drain_delay": self.drain_delay},
            "upstreams": {"was": {
                "servers": ["%s:%d" % (was_addr(j), WAS_PORT)
                            for j in range(1, self.nwas + 1)],
                "connect_timeout": "1s"}},
        }
        if self.with_redis:
            cfg["cluster"]["redis"] = {"address": "%s:%d" % (REDIS_ADDR, REDIS_PORT),
                                       "timeout": "200ms",
                                       "reconnect_max": "1s"}
        cfg["admin"] = {"listen": "%s:%d" % (node_addr(i), ADMIN_PORT),
                        "allow": ["10.77.2.0/24"]}
        route = {"path": "/", "upstream": "was"}
        if self.cache:
            route["cache"] = True
            cfg["cache"] = {"memory": "16MiB",
                            "purge": {"allow": ["10.77.0.0/16"]}}
        peer_lst = None
        if self.peering:
            # Cache peering (CARP, Varnish's shard director): the service
            # listener does not cache; it sends each URI to the node that
            # owns it on a hash ring of the nodes' peer listeners, and only
            # there is it cached (fetched from the WAS once per cluster).
            cfg["upstreams"]["peers"] = {
                "servers": ["%s:%d" % (node_addr(j), PEER_PORT)
                            for j in range(1, self.nnodes + 1)],
                "balance": "hash", "hash_key": "uri", "connect_timeout": "1s",
                "health": {"type": "tcp", "interval": "1s"}}
            peer_lst = {"listen": "%s:%d" % (node_addr(i), PEER_PORT),
                        "sites": [{"default": True, "routes": [route]}]}
            route = {"path": "/", "upstream": "peers"}
        lst = {"listen": "%s:%d" % (node_addr(i), NODE_PORT),
               "sites": [{"default": True, "routes": [route]}]}
        lst["proxy_protocol"] = True
        if self.rate:
            lst["rate_limits"] = [self.rate]
        cfg["listeners"] = [lst] + ([peer_lst] if peer_lst else [])
        for k, v in self.node_extra.items():
            cfg[k] = v
        return cfg

    def config_path(self, i):
        return self.path("n%d.yaml" % i)

    def start_node(self, i):
        name = "n%d" % i
        with open(self.config_path(i), "w") as f:
            f.write(to_yaml(self.node_config(i)))
        self.start(name, [binary(), "-c", self.config_path(i)], name,
                   env=proc_env())
        self.wait_port(name, node_addr(i), NODE_PORT)

    def node(self, i):
        return self.procs["n%d" % i]

    def node_log(self, i):
        try:
            with open(self.path("n%d.error.log" % i), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # ---- balancer ----

    def lb_config(self):
        lines = [
            "global",
            "    maxconn 4096",
            "    stats socket %s mode 600 level admin" % self.path("lb.sock"),
            "defaults",
            "    mode tcp",
            "    timeout connect 1s",
            "    timeout client 30s",
            "    timeout server 30s",
            "    timeout check 1s",
            "    retries 3",
            "    option redispatch",
            "frontend vip",
            "    bind %s:%d" % (VIP, VIP_PORT),
            "    default_backend nodes",
            "backend nodes",
            "    balance %s" % self.balance,
        ]
        opts = "check inter %dms fall 2 rise 2" % self.check_inter
        lines += ["    option httpchk GET /healthz",
                  "    http-check expect status 200"]
        opts += " port %d send-proxy-v2" % ADMIN_PORT
        lines.append("    default-server %s" % opts)
        for i in range(1, self.nnodes + 1):
            lines.append("    server n%d %s:%d" % (i, node_addr(i), NODE_PORT))
        return "\n".join(lines) + "\n"

    def start_lb(self):
        with open(self.path("lb.cfg"), "w") as f:
            f.write(self.lb_config())
        self.start("lb", ["haproxy", "-db", "-f", self.path("lb.cfg")], "lb")
        self.wait_port("lb", VIP, VIP_PORT)

    def lb_cmd(self, cmd):
        """A command on HAProxy's stats socket; returns its answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(self.path("lb.sock"))
        s.sendall((cmd + "\n").encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out.decode()

    def lb_stat(self):
        """{server: {"status": "UP"|"DOWN"|..., "scur": n, "stot": n}}"""
        text = self.lb_cmd("show stat")
        lines = text.strip().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for ln in lines[1:]:
            row = dict(zip(head, ln.split(",")))
            if row.get("pxname") == "nodes" and row.get("svname", "").startswith("n"):
                out[row["svname"]] = {"status": row["status"].split()[0],
                                      "scur": int(row["scur"] or 0),
                                      "stot": int(row["stot"] or 0)}
        return out

    def wait_server(self, name, status, timeout=10):
        """Waits until the balancer has <name> in <status> ("UP" or
        "DOWN"); returns the time.time() when it saw it."""
        end = time.time() + timeout
        while time.time() < end:
            st = self.lb_stat().get(name, {}).get("status")
            if st == status:
                return time.time()
            time.sleep(0.05)
        raise AssertionError("%s not %s after %ss (is %s)" % (
            name, status, timeout, self.lb_stat().get(name)))

    def node_request(self, i, target, method="GET", headers=()):
        """One request straight to node <i> from the balancer's host (with
        a PROXY header when the nodes want one). Returns (status, {lower
        name: value}, body)."""
        argv = ["ip", "netns", "exec", self.ns("lb"), "curl", "-s", "-m", "5",
                "-D", "-", "-X", method, "-H", "Host: cluster.test"]
        argv.append("--haproxy-protocol")
        for h in headers:
            argv += ["-H", h]
        argv.append("http://%s:%d%s" % (node_addr(i), NODE_PORT, target))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0] else 0
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, body

    def metrics(self, i):
        """Node <i>'s /metrics as {name{labels}: value}, asked from the
        balancer's host (the admin listener allows only the DMZ)."""
        r = subprocess.run(["ip", "netns", "exec", self.ns("lb"), "curl", "-s",
                            "-m", "5", "http://%s:%d/metrics" % (node_addr(i), ADMIN_PORT)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=10)
        out = {}
        for ln in r.stdout.splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                out[k] = float(v)
        return out

    # ---- client ----

    def load_start(self, seconds, path="/echo", conns=8, pause=0, name="load",
                   reqs_per_conn=0, keys=0, allow_429=False):
        out = self.path(name + ".json")
        p = self.start("client", [sys.executable, os.path.join(CLUSTER, "load.py"),
                                  "--host", VIP, "--port", str(VIP_PORT),
                                  "--path", path, "--conns", str(conns),
                                  "--seconds", str(seconds), "--pause",
                                  str(pause), "--reqs-per-conn",
                                  str(reqs_per_conn), "--keys", str(keys),
                                  "--out", out] + (["--allow-429"] if allow_429 else []),
                       name)
        p.result_path = out
        return p

    def load_result(self, p, timeout=60):
        if p.wait(timeout) is None:
            raise AssertionError("load run did not finish")
        with open(p.result_path) as f:
            return json.load(f)


def main():
    """python3 tests/cluster/bed.py [NODES] [WAS]: brings a bed up with
    Redis, prints how to reach it, and waits for Ctrl-C."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with Bed(nodes=n, was=m, redis=True) as bed:
        print("bed %s up in %s" % (bed.id, bed.dir))
        print("  ip netns exec %s curl -s http://%s/echo" % (bed.ns("client"), VIP))
        print("  balancer: %s" % bed.lb_stat())
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
