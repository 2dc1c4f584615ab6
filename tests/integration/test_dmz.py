"""The DMZ rule (docs/security.md): a reverse listener connects only to the
servers its configuration names. Whatever a client writes in the Host
field, an absolute-form target, CONNECT, forwarding fields, an upgrade or
a smuggled second request, Gatehouse never opens a connection anywhere
else.

Canaries listen where an attacker would like to go: the origin's host on
another port, the origin's port on another loopback address, and IPv6
loopback. Each counts the connections it receives; every test ends with
all counts at zero."""

import itertools
import socket
import threading

import pytest

from lib.net import HOST, RawConn, free_port, request_bytes, wait_until


class Canary:
    """A listener that counts connections and never answers."""

    def __init__(self, family, addr):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.hits = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.hits.append(peer)
            c.close()

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.sock.close()


def ipv6_ok():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.fixture
def dmz(origins, gatehouse):
    """Gatehouse with one upstream (the origin, plus a configured server
    that is down), and canaries around it. Yields (gatehouse, origin,
    canaries, targets) where targets are "host:port" strings of canaries."""
    origin = origins("was")
    dead = free_port()  # configured, but nothing listens: failover target
    canaries = [Canary(socket.AF_INET, (HOST, free_port())),
                Canary(socket.AF_INET, ("127.0.0.2", origin.port))]
    if ipv6_ok():
        canaries.append(Canary(socket.AF_INET6, ("::1", origin.port)))
    for c in canaries:  # each canary sees a connection made to it
        socket.create_connection(c.addr[:2], timeout=2).close()
        assert wait_until(lambda: len(c.hits) == 1, 3), c.addr
        c.hits.clear()
    targets = []
    for c in canaries:
        h, p = c.addr[0], c.addr[1]
        targets.append("[%s]:%d" % (h, p) if ":" in h else "%s:%d" % (h, p))
    port = free_port()
    cfg = {
        "workers": 2,
        "upstreams": {"was": {"servers": ["%s:%d" % (HOST, dead),
                                          "%s:%d" % (HOST, origin.port)]}},
        "listeners": [{
            "listen": "%s:%d" % (HOST, port),
            "sites": [
                {"host": "app.test", "routes": [{"path": "/", "upstream": "was"}]},
                {"default": True, "routes": [
                    {"path": "/local", "return": {"status": 200, "body": "l\n"}},
                    {"path": "/", "upstream": "was"}]},
            ],
        }],
    }
    g = gatehouse(cfg, port)
    yield g, origin, canaries, targets
    hits = [(c.addr, c.hits) for c in canaries if c.hits]
    for c in canaries:
        c.close()
    assert not hits, "the proxy connected to an address it was not given: %r" \
        % hits


def exchange(port, raw, timeout=5):
    """Sends raw bytes, reads one response (or None when the proxy closed
    without one)."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(raw)
            return c.read_response(timeout=timeout)
        except Exception:
            return None


def test_host_field_cannot_pick_the_server(dmz):
    g, origin, canaries, targets = dmz
    hosts = targets + ["localhost:%d" % canaries[0].addr[1],
                       "LOCALHOST:%d" % canaries[0].addr[1],
                       "127.0.0.1.:%d" % canaries[0].addr[1],
                       "127.1:%d" % canaries[0].addr[1],
                       "2130706433:%d" % canaries[0].addr[1],
                       "0x7f000001:%d" % canaries[0].addr[1],
                       "app.test:%d" % canaries[0].addr[1],
                       "127.0.0.1%%3a%d" % canaries[0].addr[1]]
    n = 0
    for h in hosts:
        r = exchange(g.port, request_bytes("GET", "/echo", host=h))
        if r is not None and r.status == 200:
            n += 1
    assert n > 0 and origin.count() == n, (n, origin.count())


def test_absolute_form_cannot_pick_the_server(dmz):
    g, origin, canaries, targets = dmz
    for t, scheme, host in itertools.product(
            targets, ("http", "https", "ws", "ftp"),
            (None, "app.test", "127.0.0.1")):
        raw = request_bytes("GET", "%s://%s/echo" % (scheme, t),
                            host=host or t)
        exchange(g.port, raw)
        exchange(g.port, request_bytes("GET", "%s://%s/echo" % (scheme, t),
                                       host=None, version="HTTP/1.0"))
    # userinfo that looks like a host, and hosts hidden in the path
    t = targets[0]
    for target in ("http://app.test@%s/echo" % t, "http://%s@app.test/echo" % t,
                   "//%s/echo" % t, "/http://%s/echo" % t,
                   "/%%2F%%2F%s/echo" % t, "http://%s#@app.test/" % t):
        exchange(g.port, request_bytes("GET", target, host="app.test"))


def test_connect_is_refused(dmz):
    g, origin, canaries, targets = dmz
    for t in targets + ["app.test:443", "localhost:%d" % origin.port]:
        r = exchange(g.port, request_bytes("CONNECT", t, host=t))
        assert r is not None and r.status == 405, r
    assert origin.count() == 0


def test_forwarding_fields_are_not_destinations(dmz):
    g, origin, canaries, targets = dmz
    t = targets[0]
    headers = [("X-Forwarded-Host", t), ("Forwarded", 'host="%s"' % t),
               ("X-Original-URL", "http://%s/" % t),
               ("X-Rewrite-URL", "http://%s/" % t), ("X-Host", t),
               ("X-Forwarded-Server", t), ("X-HTTP-Destination-Override", t),
               ("Destination", "http://%s/" % t), ("Via", "1.1 %s" % t),
               ("Max-Forwards", "0"), ("Proxy-Connection", "keep-alive")]
    for h in headers:
        r = exchange(g.port, request_bytes("GET", "/echo", headers=[h]))
        assert r is not None and r.status == 200, (h, r)
    for m in ("OPTIONS", "TRACE"):
        exchange(g.port, request_bytes(m, "*", host=t))
        exchange(g.port, request_bytes(m, "/echo", host=t,
                                       headers=[("Max-Forwards", "0")]))
    assert origin.count() >= len(headers)


def test_upgrade_tunnels_only_to_the_upstream(dmz):
    g, origin, canaries, targets = dmz
    t = targets[0]
    raw = request_bytes("GET", "/ws", host=t, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13")])
    with RawConn(g.port, timeout=5) as c:
        c.send(raw)
        r = c.read_response(timeout=5)
        assert r.status == 101, r
        # inside the tunnel, an HTTP request naming a canary is just bytes
        # for the origin
        c.send(request_bytes("CONNECT", t, host=t))
    r = exchange(g.port, request_bytes("GET", "http://%s/ws" % t, host=t,
                                       headers=[("Upgrade", "h2c"),
                                                ("Connection", "Upgrade")]))
    assert r is None or r.status != 101 or origin.count() > 0


def test_smuggled_and_pipelined_requests(dmz):
    g, origin, canaries, targets = dmz
    t = targets[1]
    second = request_bytes("GET", "http://%s/echo" % t, host=t)
    # ambiguous framing: refused, the hidden request never runs
    smuggle = (b"POST /echo HTTP/1.1\r\nHost: app.test\r\n"
               b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\n" % (len(second) + 5)) + second
    r = exchange(g.port, smuggle)
    assert r is None or r.status == 400, r
    # plain pipelining: each request is routed on its own, to the upstream
    with RawConn(g.port, timeout=5) as c:
        c.send(request_bytes("GET", "/echo", host="app.test") + second +
               request_bytes("CONNECT", t, host=t))
        statuses = []
        for _ in range(3):
            try:
                statuses.append(c.read_response(timeout=5).status)
            except Exception:
                break
    assert statuses[:2] == [200, 200], statuses


def test_many_mixed_requests(dmz):
    """Every field that can hold an address, in combination, over keep-alive
    connections and fresh ones."""
    g, origin, canaries, targets = dmz
    forms = []
    for t in targets:
        forms += [("GET", "/echo", t), ("GET", "http://%s/echo" % t, t),
                  ("GET", "http://%s/echo" % t, "app.test"),
                  ("HEAD", "http://%s/" % t, None), ("POST", "/echo", t),
                  ("CONNECT", t, t), ("GET", "/local", t)]
    with RawConn(g.port, timeout=5) as keep:
        for i, (m, target, host) in enumerate(forms * 3):
            body = b"x" * (i % 3) if m == "POST" else b""
            headers = [("Content-Length", str(len(body)))] if m == "POST" else []
            raw = request_bytes(m, target, host=host, headers=headers, body=body)
            if i % 2 == 0 and not keep.eof:
                try:
                    keep.send(raw)
                    keep.read_response(method=m, timeout=5)
                except Exception:
                    pass
            else:
                exchange(g.port, raw)
