"""CONNECT tunnels: bytes both ways and byte-exact (spliced and buffered),
half-closes passed on in each direction, bytes the client sends before
the 200, the tunnel idle timeout, a tunnel outliving client_header, and
many tunnels at once. The far end is a plain TCP server in the test."""

import hashlib
import os
import socket
import threading
import time

import pytest

from lib.net import RawConn, pattern, pattern_sha256, BLOCK, BLOCK_SIZE

MiB = 1 << 20


class TCPServer:
    """Accepts connections; each is handled by <handler>(sock) in a thread.
    Results handlers return are collected in .results."""

    def __init__(self, handler):
        self.handler = handler
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.stop_ev = threading.Event()
        self.results = []
        self.lock = threading.Lock()
        self.threads = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._run, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, s):
        s.settimeout(30)
        try:
            r = self.handler(s)
        except OSError as e:
            r = e
        with self.lock:
            self.results.append(r)
        s.close()

    def wait_results(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= n:
                    return list(self.results)
            time.sleep(0.02)
        return list(self.results)

    def stop(self):
        self.stop_ev.set()
        self.t.join(2)
        self.ls.close()


def drain_hash(s):
    """Reads until EOF; returns (length, sha256)."""
    h, n = hashlib.sha256(), 0
    buf = bytearray(MiB)
    while True:
        k = s.recv_into(buf)
        if k == 0:
            return n, h.hexdigest()
        h.update(memoryview(buf)[:k])
        n += k


def recv_hash(s, n):
    """Reads exactly <n> bytes (fails on an early EOF); returns their
    sha256."""
    h, got, buf = hashlib.sha256(), 0, bytearray(MiB)
    while got < n:
        k = s.recv_into(buf, min(MiB, n - got))
        assert k > 0, "EOF after %d of %d bytes" % (got, n)
        h.update(memoryview(buf)[:k])
        got += k
    return h.hexdigest()


def echo(s, msg):
    """Sends <msg> and reads back as many bytes: they must be the same."""
    s.sendall(msg)
    back = b""
    while len(back) < len(msg):
        k = s.recv(100)
        assert k, "closed during the echo of %r" % msg
        back += k
    assert back == msg


def send_pattern(s, n):
    mv = memoryview(BLOCK)
    left = n
    while left > 0:
        k = min(left, BLOCK_SIZE)
        s.sendall(mv[:k])
        left -= k


@pytest.fixture
def servers():
    made = []

    def make(handler):
        t = TCPServer(handler)
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()


def open_tunnel(g, port, early=b""):
    """Connects to proxy <g>, CONNECTs to 127.0.0.1:<port> (sending
    <early> bytes in the same write), returns the socket after the 200."""
    s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
              % (port, port) + early)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "closed before the CONNECT answer: %r" % head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    return s


def pipe_fds(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.parametrize("splice", [True, False])
def test_both_ways_at_once_byte_exact(forward, servers, splice):
    """64 MiB up and 64 MiB down at the same time; the client's FIN reaches
    the server, which then still sends its summary."""
    n = 64 * MiB

    def handler(s):
        t = threading.Thread(target=send_pattern, args=(s, n))
        t.start()
        got = drain_hash(s)
        t.join()
        s.sendall(b"%d %s" % (got[0], got[1].encode()))
        return got

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port], "splice": splice})
    base_pipes = pipe_fds(g.pid)
    s = open_tunnel(g, srv.port)
    up = threading.Thread(target=lambda: (send_pattern(s, n),
                                          s.shutdown(socket.SHUT_WR)))
    up.start()
    h, got = hashlib.sha256(), 0
    buf = bytearray(MiB)
    seen_pipes = 0
    while got < n:
        k = s.recv_into(buf, min(MiB, n - got))
        assert k > 0
        h.update(memoryview(buf)[:k])
        got += k
        if got > n // 2 and not seen_pipes:
            seen_pipes = pipe_fds(g.pid) - base_pipes
    assert h.hexdigest() == pattern_sha256(n)
    up.join()
    tail = b""
    while True:
        k = s.recv(4096)
        if not k:
            break
        tail += k
    s.close()
    assert tail == b"%d %s" % (n, pattern_sha256(n).encode())
    # spliced tunnels hold two pipes (four fds) while open; buffered none
    assert seen_pipes == (4 if splice else 0), seen_pipes
    lines = g.wait_access_lines(lambda ls: len(ls) >= 1)
    assert '"CONNECT 127.0.0.1:%d HTTP/1.1" 200 ' % srv.port in lines[0]
    assert pipe_fds(g.pid) == base_pipes  # closed with the tunnel


def test_server_half_close_reaches_client(forward, servers):
    """The server sends and closes its side first; the client sees EOF and
    can still send, and the server reads it."""
    def handler(s):
        s.sendall(b"hello from the server")
        s.shutdown(socket.SHUT_WR)
        return drain_hash(s)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port]})
    s = open_tunnel(g, srv.port)
    got = b""
    while True:
        k = s.recv(100)
        if not k:
            break
        got += k
    assert got == b"hello from the server"
    s.sendall(pattern(100000))  # the other direction stays open
    s.shutdown(socket.SHUT_WR)
    res = srv.wait_results(1)
    assert res == [(100000, pattern_sha256(100000))], res
    s.close()


def test_early_bytes_before_200(forward, servers):
    """Bytes sent right behind the CONNECT head (before the 200) are part
    of the tunnel, in order, whatever mode it then switches to."""
    def handler(s):
        return drain_hash(s)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port]})
    s = open_tunnel(g, srv.port, early=pattern(5000))
    s.sendall(pattern(95000, 5000))
    s.shutdown(socket.SHUT_WR)
    assert srv.wait_results(1) == [(100000, pattern_sha256(100000))]
    s.close()


def test_tunnel_idle_timeout(forward, servers):
    def handler(s):
        return drain_hash(s)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port], "tunnel_idle_timeout": "1s"})
    s = open_tunnel(g, srv.port)
    s.sendall(b"x" * 10)
    t0 = time.monotonic()
    s.settimeout(5)
    assert s.recv(10) == b""  # the proxy closed the idle tunnel
    took = time.monotonic() - t0
    assert 0.8 < took < 3, took
    assert srv.wait_results(1) == [(10, hashlib.sha256(b"x" * 10).hexdigest())]
    s.close()
    lines = g.wait_access_lines(lambda ls: len(ls) >= 1)
    assert "reason=tunnel_idle_timeout" in lines[0], lines


def test_tunnel_outlives_client_header_timeout(forward, servers):
    """Regression: the client_header timer (1 s here) kept running in a
    tunnel and cut it."""
    def handler(s):
        data = s.recv(100)
        s.sendall(data.upper())
        return drain_hash(s)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port], "tunnel_idle_timeout": "10s"},
                timeouts={"client_header": "1s"})
    s = open_tunnel(g, srv.port)
    time.sleep(2)
    s.sendall(b"still there")
    s.settimeout(5)
    assert s.recv(100) == b"STILL THERE"
    s.close()


def test_many_tunnels_at_once(forward, servers):
    n = 2 * MiB

    def handler(s):
        got = drain_hash(s)
        s.sendall(got[1].encode())
        return got

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port]}, workers=2)
    errors = []

    def one(i):
        try:
            s = open_tunnel(g, srv.port)
            send_pattern(s, n)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                k = s.recv(100)
                if not k:
                    break
                reply += k
            s.close()
            if reply != pattern_sha256(n).encode():
                errors.append((i, reply))
        except Exception as e:  # collected for the assertion
            errors.append((i, e))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    assert len(srv.wait_results(24)) == 24


def test_bulk_buffers_given_back_when_tunnels_idle(forward, servers):
    """Buffered tunnels read bulk streams into 1 MiB buffers; a tunnel
    that goes quiet gives them back. 24 tunnels, one after another, each
    receives 6 MiB (bulk) and then echoes small messages (the direction is
    interactive again), and all stay open: the proxy's RSS must not hold a
    bulk buffer per tunnel (24 MiB and more if it did)."""
    n = 6 * MiB

    def handler(s):
        send_pattern(s, n)
        while True:
            k = s.recv(100)
            if not k:
                return True
            s.sendall(k)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port], "splice": False})
    warm = open_tunnel(g, srv.port)  # the first one warms the allocator
    held = [warm]
    recv_hash(warm, n)
    before = g.vm_rss_kib()
    for i in range(24):
        s = open_tunnel(g, srv.port)
        assert recv_hash(s, n) == pattern_sha256(n)
        for j in range(3):
            echo(s, b"ping %d %d" % (i, j))
        held.append(s)
    time.sleep(0.2)
    grown = g.vm_rss_kib() - before
    assert grown < 12 * 1024, "RSS grew %d KiB over 24 idle tunnels" % grown
    for s in held:
        s.close()


def test_pipe_quota_spent_tunnels_copy_instead(forward, servers):
    """Started as root, gatehouse runs as "nobody", whose pipes count
    against fs.pipe-user-pages-soft. Once that is spent the kernel hands
    out two-page pipes, which would splice two pages per call: those
    tunnels copy instead (no pipes held, a warning in the error log), and
    every tunnel, spliced or not, still carries its bytes."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to start gatehouse as root and drop to nobody")
    with open("/proc/sys/fs/pipe-user-pages-soft") as f:
        soft = int(f.read())
    if soft == 0:
        pytest.skip("fs.pipe-user-pages-soft is 0: no pipe quota to spend")
    # 256 KiB pipes, two per tunnel: 128 pages a tunnel spends the quota
    n = soft // 128 + 24

    def handler(s):
        while True:
            k = s.recv(65536)
            if not k:
                return True
            s.sendall(k)

    srv = servers(handler)
    g = forward({"connect_ports": [srv.port]}, extra={"security": {}})
    base_pipes = pipe_fds(g.pid)
    held = []
    try:
        for i in range(n):
            s = open_tunnel(g, srv.port)
            held.append(s)
            echo(s, b"tunnel %d" % i)
        pipes = pipe_fds(g.pid) - base_pipes
        assert 0 < pipes < 4 * n, pipes  # some spliced, the last ones not
        assert "pipe quota" in g.error_log_text()
        # the last tunnel (buffered) and the first (spliced) move 4 MiB
        for s in (held[-1], held[0]):
            m = 4 * MiB
            t = threading.Thread(target=send_pattern, args=(s, m))
            t.start()
            got = recv_hash(s, m)
            t.join()
            assert got == pattern_sha256(m)
    finally:
        for s in held:
            s.close()


def test_connect_refused_502_and_closed(forward):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()  # nothing listens there now
    g = forward({"connect_ports": [port]})
    with RawConn(g.port) as c:
        c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % port)
        r = c.read_response("CONNECT")
        assert r.status == 502
        assert "error=connection_refused" in r.get("Proxy-Status")
        assert c.closed_within(5)
