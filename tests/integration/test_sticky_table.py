"""Stickiness without a proxy cookie (issue 9): the stick table.

sticky: { learn: JSESSIONID } remembers which server set an application's
session cookie and sends the requests carrying it there; sticky: { by:
source } remembers the server of each client address (the one a PROXY
header carries). The origins are small WAS-like servers that keep their
sessions in memory, as a servlet container does: a request whose session
the server does not know gets a new one (Set-Cookie), so a request sent to
the wrong server is seen. Across two nodes the table lives in a real
redis-server that the test starts (and kills)."""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from lib.net import free_port, port_accepts, wait_until
from lib.ops import admin_get, ops_config

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
HOST = "127.0.0.1"


class Was:
    """An application server with in-memory sessions (JSESSIONID)."""

    def __init__(self, name):
        self.name = name
        self.sessions = set()
        self.lock = threading.Lock()
        self.requests = 0
        was = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                sid = None
                for part in (self.headers.get("Cookie") or "").split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == "JSESSIONID":
                        sid = v
                hs = []
                with was.lock:
                    was.requests += 1
                    new = sid not in was.sessions
                    if new and self.path.startswith("/app"):
                        sid = "%s.%s" % (was.name, uuid.uuid4().hex)
                        was.sessions.add(sid)
                        hs.append(("Set-Cookie", "JSESSIONID=%s; Path=/; HttpOnly" % sid))
                body = json.dumps({"server": was.name, "session": sid,
                                   "new": new}).encode()
                self.send_response(200)
                for k, v in hs + [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("Connection", "close")]:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        self.srv = http.server.ThreadingHTTPServer((HOST, 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.address = "%s:%d" % (HOST, self.port)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.srv is not None:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


@pytest.fixture
def wases():
    made = []

    def make(*names):
        ws = [Was(n) for n in names]
        made.extend(ws)
        return ws

    yield make
    for w in made:
        w.stop()


@pytest.fixture
def redis(tmp_path):
    """A real redis-server on a free port: (port, Popen)."""
    if not os.path.exists(REDIS):
        pytest.skip("redis-server is not installed (scripts/deps.sh test)")
    port = free_port()
    p = subprocess.Popen([REDIS, "--bind", HOST, "--port", str(port), "--save", "",
                          "--appendonly", "no", "--dir", str(tmp_path),
                          "--protected-mode", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: port_accepts(port, 0.2), 10)
    yield port, p
    if p.poll() is None:
        p.kill()
    p.wait(10)


def node(gatehouse, wases, sticky, redis_port=None, name=None, workers=2,
         proxy_protocol=False):
    port, aport = free_port(), free_port()
    extra = {}
    if redis_port is not None:
        extra["cluster"] = {"redis": {"address": "%s:%d" % (HOST, redis_port),
                                      "timeout": "300ms"}}
    cfg = ops_config(port, {"was": [w.address for w in wases]}, admin_port=aport,
                     workers=workers, extra=extra,
                     upstream_opts={"was": {"sticky": sticky,
                                            "connect_timeout": "1s"}})
    if proxy_protocol:
        cfg["listeners"][0]["proxy_protocol"] = True
    g = gatehouse(cfg, port, name=name)
    g.aport = aport
    return g


def get(port, path, sid=None, source=None):
    """One request on a new connection (so the workers take turns): the
    status and the WAS's JSON. <source>: an IPv4 address sent in a PROXY v1
    header."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        req = b""
        if source is not None:
            req += b"PROXY TCP4 %s 127.0.0.1 40000 80\r\n" % source.encode()
        req += b"GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" % path.encode()
        if sid is not None:
            req += b"Cookie: theme=dark; JSESSIONID=%s\r\n" % sid.encode()
        s.sendall(req + b"\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if status == 200 else body)


def metric(g, name, labels=""):
    st, _, body = admin_get(g.aport, "/metrics")
    assert st == 200
    want = name + ("{%s}" % labels if labels else "")
    for line in body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def login(port):
    st, j = get(port, "/app")
    assert st == 200 and j["new"], j
    return j["server"], j["session"]


def logs(g):
    text = g.stderr()
    for p in (g.error_log,):
        try:
            with open(p) as f:
                text += f.read()
        except OSError:
            pass
    return text


# ---- one node ----


def test_learn_keeps_each_session_on_the_server_that_made_it(gatehouse, wases):
    """Round robin would move a client every request; with the application's
    JSESSIONID learnt, each session stays on the server that created it (40
    requests, new connections over two workers), other sessions are spread
    by the balancer, and no proxy cookie is set."""
    ws = wases("a", "b", "c")
    g = node(gatehouse, ws, {"learn": "JSESSIONID"})
    server, sid = login(g.port)
    for i in range(40):
        st, j = get(g.port, "/app/page%d" % i, sid)
        assert st == 200 and j["server"] == server and not j["new"], (i, j)
    # other sessions: the balancer places them (round robin: all three)
    made = [login(g.port) for _ in range(6)]
    assert {s for s, _ in made} == {"a", "b", "c"}, made
    for s, sid2 in made:
        for i in range(3):
            st, j = get(g.port, "/app/x%d" % i, sid2)
            assert j["server"] == s and not j["new"], (s, j)
    # the proxy sets no cookie of its own
    with socket.create_connection((HOST, g.port), timeout=5) as c:
        c.sendall(b"GET /app HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head = c.recv(65536).split(b"\r\n\r\n")[0].decode()
    assert re.findall(r"(?im)^set-cookie: (\w+)=", head) == ["JSESSIONID"], head
    assert metric(g, "gatehouse_sticky_entries") == 8
    assert metric(g, "gatehouse_sticky_lookups_total", 'result="hit"') >= 58
    assert metric(g, "gatehouse_sticky_learnt_total") == 8


def test_learn_server_stopped_relearns(gatehouse, wases):
    """The session's server stops: its requests go where the balancer says,
    the new server makes a new session (Set-Cookie), and that one sticks
    there; the old session id, sent again, stays on the new server too."""
    ws = wases("a", "b", "c")
    by = {w.name: w for w in ws}
    g = node(gatehouse, ws, {"learn": "JSESSIONID"})
    server, sid = login(g.port)
    by[server].stop()
    st, j = get(g.port, "/app/after", sid)
    assert st == 200 and j["server"] != server and j["new"], j
    second, sid2 = j["server"], j["session"]
    for i in range(10):
        st, j = get(g.port, "/app/p%d" % i, sid2)
        assert st == 200 and j["server"] == second and not j["new"], (i, j)
        st, j = get(g.port, "/app/q%d" % i, sid)  # the stale one was re-learnt
        assert st == 200 and j["server"] == second, (i, j)


def test_learn_bound_and_expiry(gatehouse, wases):
    """size bounds the table (the least recently used session goes first)
    and an entry unused for expire is gone."""
    ws = wases("a", "b")
    g = node(gatehouse, ws, {"learn": "JSESSIONID", "size": 3, "expire": "1s"},
             workers=1)
    sessions = [login(g.port) for _ in range(5)]
    assert metric(g, "gatehouse_sticky_entries") == 3
    assert metric(g, "gatehouse_sticky_dropped_total", 'why="evicted"') == 2
    # the newest three still stick
    for s, sid in sessions[2:]:
        st, j = get(g.port, "/app/x", sid)
        assert j["server"] == s and not j["new"], j
    time.sleep(1.3)
    before = metric(g, "gatehouse_sticky_lookups_total", 'result="miss"')
    get(g.port, "/app/y", sessions[4][1])
    assert metric(g, "gatehouse_sticky_lookups_total", 'result="miss"') == before + 1
    assert metric(g, "gatehouse_sticky_dropped_total", 'why="expired"') >= 1


def test_source_keeps_each_client_address_on_its_server(gatehouse, wases):
    """by: source, with the client address from the PROXY header (what an L4
    balancer sends): each address stays on its server, addresses are
    spread by the balancer, and a stopped server moves its clients once."""
    ws = wases("a", "b", "c")
    by = {w.name: w for w in ws}
    g = node(gatehouse, ws, {"by": "source"}, proxy_protocol=True)
    addrs = ["10.9.0.%d" % i for i in range(1, 7)]
    where = {}
    for a in addrs:
        st, j = get(g.port, "/who", source=a)
        assert st == 200
        where[a] = j["server"]
    assert set(where.values()) == {"a", "b", "c"}, where
    for i in range(10):
        for a in addrs:
            st, j = get(g.port, "/who/%d" % i, source=a)
            assert st == 200 and j["server"] == where[a], (a, i, j)
    gone = where[addrs[0]]
    by[gone].stop()
    moved = {}
    for a in addrs:
        st, j = get(g.port, "/who/after", source=a)
        assert st == 200 and j["server"] != gone
        moved[a] = j["server"]
        if where[a] != gone:
            assert moved[a] == where[a], (a, j)
    for i in range(5):
        for a in addrs:
            st, j = get(g.port, "/who/again%d" % i, source=a)
            assert st == 200 and j["server"] == moved[a], (a, j)


# ---- two nodes, one Redis ----


def test_two_nodes_share_the_table_in_redis(gatehouse, wases, redis):
    """A session learnt on node A goes to the same server through node B,
    and the other way round; then Redis is killed in the middle of the
    traffic: no request fails, sessions each node has seen keep their
    server, and the fallback is logged and counted."""
    rport, rproc = redis
    ws = wases("a", "b", "c")
    na = node(gatehouse, ws, {"learn": "JSESSIONID"}, rport, name="a", workers=1)
    nb = node(gatehouse, ws, {"learn": "JSESSIONID"}, rport, name="b", workers=1)
    time.sleep(0.3)  # the Redis connections are up
    sessions = []
    for n, other in ((na, nb), (nb, na), (na, nb), (nb, na), (na, nb), (nb, na)):
        server, sid = login(n.port)
        sessions.append((server, sid))
        for i in range(10):
            st, j = get(other.port, "/app/o%d" % i, sid)
            assert st == 200 and j["server"] == server and not j["new"], (i, j)
    assert {s for s, _ in sessions} == {"a", "b", "c"}, sessions
    # Redis stalls (SIGSTOP): a lookup waits at most its timeout (300ms),
    # then the node's own table decides, and for a second after that the
    # node does not ask: at most one slow request per node
    rproc.send_signal(signal.SIGSTOP)
    stall_took = []
    try:
        for k, (server, sid) in enumerate(sessions):
            t0 = time.monotonic()
            st, j = get((na, nb)[k % 2].port, "/app/stall%d" % k, sid)
            took = time.monotonic() - t0
            stall_took.append(took)
            assert st == 200 and j["server"] == server and not j["new"], j
            assert took < 1.5, took
    finally:
        rproc.send_signal(signal.SIGCONT)
    assert len([x for x in stall_took if x >= 0.25]) <= 2, stall_took
    stalled = (metric(na, "gatehouse_sticky_redis_fallbacks_total") +
               metric(nb, "gatehouse_sticky_redis_fallbacks_total"))
    assert stalled >= 1
    # every node has now seen every session; Redis dies mid-run
    failed, done = [], 0
    deadline = time.monotonic() + 3.0
    killed = False
    while time.monotonic() < deadline:
        for k, (server, sid) in enumerate(sessions):
            if not killed and done >= 60:
                rproc.kill()
                killed = True
            n = (na, nb)[(done + k) % 2]
            st, j = get(n.port, "/app/r%d" % done, sid)
            done += 1
            if st != 200 or j["server"] != server or j["new"]:
                failed.append((st, j))
    assert killed and done > 120, done
    assert failed == [], failed[:5]
    fb = (metric(na, "gatehouse_sticky_redis_fallbacks_total") +
          metric(nb, "gatehouse_sticky_redis_fallbacks_total"))
    assert fb > 0
    assert any("Redis cannot answer" in logs(n) for n in (na, nb))
    print("sticky figures: 6 sessions x 10 cross-node requests ok; stalled "
          "Redis: requests took %s ms; Redis killed after 60 of %d requests: "
          "%d failed, %d fallbacks" % (
              ",".join("%.0f" % (x * 1000) for x in stall_took), done,
              len(failed), fb))
    # new sessions still work, each node on its own
    server, sid = login(na.port)
    for i in range(5):
        st, j = get(na.port, "/app/n%d" % i, sid)
        assert st == 200 and j["server"] == server and not j["new"], j


def test_reload_keeps_the_table_and_forgets_removed_servers(gatehouse, wases):
    """A reload keeps what was learnt (the same pool, the same table
    settings); a server the new configuration removed is ignored: its
    sessions are balanced over the others and re-learnt there."""
    from lib.ops import status, write_config
    ws = wases("a", "b", "c")
    g = node(gatehouse, ws, {"learn": "JSESSIONID"}, workers=1)
    sessions = [login(g.port) for _ in range(3)]
    assert {s for s, _ in sessions} == {"a", "b", "c"}
    gone = sessions[0][0]
    cfg = ops_config(g.port, {"was": [w.address for w in ws if w.name != gone]},
                     admin_port=g.aport, workers=1,
                     upstream_opts={"was": {"sticky": {"learn": "JSESSIONID"},
                                            "connect_timeout": "1s"}})
    write_config(g, cfg)
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: status(g.aport)["config"]["generation"] >= 2, 10)
    assert metric(g, "gatehouse_sticky_entries") == 3  # kept
    for s, sid in sessions[1:]:
        for i in range(5):
            st, j = get(g.port, "/app/k%d" % i, sid)
            assert st == 200 and j["server"] == s and not j["new"], j
    st, j = get(g.port, "/app/moved", sessions[0][1])
    assert st == 200 and j["server"] != gone and j["new"], j
    for i in range(5):
        st, j2 = get(g.port, "/app/m%d" % i, j["session"])
        assert j2["server"] == j["server"] and not j2["new"], j2
