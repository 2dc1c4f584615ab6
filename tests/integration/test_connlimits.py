"""Connection limits (docs/security.md):

- connections_per_address: the extra connections of one client address are
  closed at once; other addresses are served; a place freed is usable again.
- security.max_connections: at the ceiling Gatehouse stops accepting rather
  than refusing: a new client waits in the listen queue and is served as
  soon as another leaves, and none fails.
- running out of file descriptors (accept EMFILE) pauses accepting the same
  way instead of spinning on a readable listener.
"""

import os
import socket
import time

from lib.net import HOST, RawConn, free_port, request_bytes, wait_until

OTHER = "127.0.0.2"


def config(port, limits=None, security=None, workers=1):
    listener = {"listen": "%s:%d" % (HOST, port)}
    if limits:
        listener["limits"] = limits
    listener["sites"] = [{"default": True, "routes": [
        {"path": "/", "return": {"status": 200, "body": "ok\n"}}]}]
    cfg = {"workers": workers}
    if security:
        cfg["security"] = security
    cfg["listeners"] = [listener]
    return cfg


def connect(port, src=HOST, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, timeout, bytearray(), False
    return c


def served(c, timeout=5):
    """Sends a request on <c>; True when a 200 comes back."""
    c.send(request_bytes("GET", "/"))
    return c.read_response(timeout=timeout).status == 200


def connect_served(port, src=HOST):
    """A connection that got a 200. Retries for a while: connections just
    closed by the client (the fixture's port probe) may still be counted
    until Gatehouse reads their EOF."""
    deadline = time.monotonic() + 5
    while True:
        c = connect(port, src)
        try:
            if served(c):
                return c
        except Exception:
            if time.monotonic() > deadline:
                raise
        c.close()
        time.sleep(0.1)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_connections_per_address(gatehouse):
    port = free_port()
    g = gatehouse(config(port, limits={"connections_per_address": 3}), port)
    held = [connect_served(port) for _ in range(3)]
    try:
        extra = connect(port)  # the kernel completes the handshake ...
        assert extra.closed_within(3), "4th connection was not closed"
        assert extra.buf == b""  # ... and Gatehouse closes it, unanswered
        extra.close()
        # another address has its own count
        other = [connect_served(port, OTHER) for _ in range(3)]
        for c in other:
            c.close()
        # a place given back can be taken again
        held.pop().close()

        def retake():
            c = connect(port)
            try:
                return served(c, timeout=2)
            except Exception:
                return False
            finally:
                c.close()
        assert wait_until(retake, 5, 0.1)
    finally:
        for c in held:
            c.close()
    assert "connections_per_address reached" in g.error_log_text()


def test_max_connections_pauses_accepting(gatehouse):
    port = free_port()
    g = gatehouse(config(port, security={"max_connections": 4}, workers=2),
                  port)
    held = [connect_served(port) for _ in range(4)]
    try:
        # the 5th is queued by the kernel, not accepted, not refused
        waiting = connect(port)
        waiting.send(request_bytes("GET", "/"))
        t0 = time.monotonic()
        try:
            r = waiting.read_response(timeout=1.0)
            raise AssertionError("answered past max_connections: %r" % r)
        except socket.timeout:
            pass
        # while paused the proxy does not spin on its listeners
        c0 = cpu_seconds(g.pid)
        time.sleep(1.0)
        assert cpu_seconds(g.pid) - c0 < 0.3
        held.pop().close()  # room again: the waiting client is served
        r = waiting.read_response(timeout=5)
        assert r.status == 200
        assert time.monotonic() - t0 < 6
        waiting.close()
        # and the ceiling is still 4: one place was taken by "waiting",
        # which has just left
        more = [connect(port) for _ in range(1)]
        assert served(more[0])
        held += more
    finally:
        for c in held:
            c.close()


def test_running_out_of_fds_pauses_not_spins(gatehouse):
    """open_files 128 with max_connections 1000: accept(2) fails with EMFILE
    long before the ceiling. Gatehouse pauses, does not burn CPU, and serves
    every waiting client once others leave."""
    port = free_port()
    g = gatehouse(config(port, security={"open_files": 128,
                                          "max_connections": 1000}), port)
    conns = []
    try:
        for _ in range(150):
            conns.append(connect(port))
        time.sleep(0.5)
        c0 = cpu_seconds(g.pid)
        time.sleep(1.0)
        assert cpu_seconds(g.pid) - c0 < 0.3, "spinning on EMFILE"
        # close most of them: the ones still queued get accepted and served
        keep = conns[-30:]
        for c in conns[:-30]:
            c.close()
        conns = keep
        for c in conns:
            assert served(c, timeout=10)
    finally:
        for c in conns:
            c.close()
    assert "Too many open files" in g.error_log_text()


def test_connections_per_address_behind_a_balancer(gatehouse):
    """On a proxy_protocol listener every TCP connection comes from the
    balancer: the count goes by the client address its PROXY header
    carries, once the header is read."""
    port = free_port()
    cfg = config(port, limits={"connections_per_address": 2})
    cfg["listeners"][0]["proxy_protocol"] = True
    gatehouse(cfg, port)

    def via_balancer(client):
        c = connect(port)
        c.send(b"PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (client.encode(), port))
        return c

    def ok(c):
        try:
            return served(c, timeout=3)
        except Exception:
            return False

    a = [via_balancer("192.0.2.10") for _ in range(2)]
    b = [via_balancer("192.0.2.20") for _ in range(2)]
    try:
        assert all(ok(c) for c in a + b)  # 4 from one TCP source: fine
        extra = via_balancer("192.0.2.10")
        assert extra.closed_within(3), "a third connection of 192.0.2.10"
        extra.close()
        a.pop().close()

        def retake():
            c = via_balancer("192.0.2.10")
            try:
                return ok(c)
            finally:
                c.close()
        assert wait_until(retake, 5, 0.1)
    finally:
        for c in a + b:
            c.close()
