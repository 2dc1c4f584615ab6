"""PROXY protocol v1/v2 (issue 8): accepted on listeners that say so, the
carried address drives the access log and X-Forwarded-For; refused without
a header; sent to upstreams that ask for it."""

import json
import socket
import struct
import threading
import time

import pytest

from lib.net import HOST, RawConn, curl, free_port, request_bytes, wait_until
from lib.ops import ops_config

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, sport, dst="127.0.0.1", dport=80, cmd=0x21):
    if ":" in src:
        a = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        a = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    a += struct.pack("!HH", sport, dport)
    if cmd == 0x20:
        return SIG + bytes([0x20, 0x00, 0, 0])
    return SIG + bytes([cmd, fam]) + struct.pack("!H", len(a)) + a


def xff(body):
    hs = json.loads(body)["headers"]
    return [v for k, v in hs if k.lower() == "x-forwarded-for"]


@pytest.fixture
def pp(origin, gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [origin.port]}, admin_port=aport)
    cfg["listeners"][0]["proxy_protocol"] = True
    g = gatehouse(cfg, port)
    g.aport = aport
    return g


def test_curl_haproxy_protocol(pp):
    r = curl("--haproxy-protocol", "http://127.0.0.1:%d/echo" % pp.port)
    assert xff(r.stdout) == ["127.0.0.1"]
    # without the header the listener refuses (the spec: never guess)
    r = curl("http://127.0.0.1:%d/echo" % pp.port, check=False)
    assert r.returncode != 0


def test_v1_address_drives_xff_and_access_log(pp, origin):
    with RawConn(pp.port) as c:
        c.send(b"PROXY TCP4 192.0.2.44 127.0.0.1 51000 80\r\n" +
               request_bytes("GET", "/echo", headers=[("X-Forwarded-For", "10.9.9.9")]))
        r = c.read_response()
        assert r.status == 200
        assert xff(r.body) == ["10.9.9.9, 192.0.2.44"]
        # the connection keeps its carried address for every request
        c.send(request_bytes("GET", "/echo"))
        assert xff(c.read_response().body) == ["192.0.2.44"]
    lines = pp.wait_access_lines(lambda ls: len(ls) == 2)
    assert len(lines) == 2 and all(ln.startswith("192.0.2.44 ") for ln in lines), lines


@pytest.mark.parametrize("src", ["203.0.113.7", "2001:db8::7"])
def test_v2_raw_header(pp, src):
    dst = "::1" if ":" in src else "127.0.0.1"
    with RawConn(pp.port) as c:
        c.send(v2(src, 40000, dst=dst) + request_bytes("GET", "/echo"))
        r = c.read_response()
        assert r.status == 200 and xff(r.body) == [src]
    lines = pp.wait_access_lines(lambda ls: len(ls) == 1)
    assert lines[0].startswith(src + " "), lines


def test_v2_header_byte_by_byte_and_local(pp):
    data = v2("198.51.100.3", 1234) + request_bytes("GET", "/echo")
    with RawConn(pp.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        assert xff(c.read_response().body) == ["198.51.100.3"]
    # LOCAL (a balancer's own health check): the connection's own address
    with RawConn(pp.port) as c:
        c.send(v2("0.0.0.0", 0, cmd=0x20) + request_bytes("GET", "/echo"))
        assert xff(c.read_response().body) == ["127.0.0.1"]


@pytest.mark.parametrize("junk", [
    b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\nGET / HTTP/1.1\r\n\r\n",
    SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12,
])
def test_missing_or_bad_header_closes(pp, origin, junk):
    with RawConn(pp.port) as c:
        c.send(junk)
        assert c.read_until_close(5) == b""
    assert origin.count() == 0
    from lib.ops import admin_get
    body = admin_get(pp.aport, "/metrics")[2].decode()
    assert 'gatehouse_proxy_protocol_errors_total{listener="127.0.0.1:%d"} 1' % pp.port in body
    assert "no valid PROXY header" in pp.error_log_text()


class PPOrigin:
    """An origin that expects a PROXY header on each connection and answers
    every request with the header it got on that connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.headers = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(5)
        buf = b""
        try:
            while len(buf) < 16 and b"\r\n" not in buf:
                buf += c.recv(4096)
            if buf.startswith(b"PROXY"):
                hdr, _, buf = buf.partition(b"\r\n")
                hdr = hdr.decode()
            else:
                while len(buf) < 16:
                    buf += c.recv(4096)
                n = struct.unpack("!H", buf[14:16])[0]
                while len(buf) < 16 + n:
                    buf += c.recv(4096)
                a = buf[16:16 + n]
                hdr = "v2 %s %d" % (socket.inet_ntoa(a[0:4]), struct.unpack("!H", a[8:10])[0])
                buf = buf[16 + n:]
            self.headers.append(hdr)
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        return
                    buf += d
                _, _, buf = buf.partition(b"\r\n\r\n")
                body = hdr.encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.sock.close()


@pytest.mark.parametrize("ver", ["v1", "v2"])
def test_sent_to_upstream(gatehouse, ver):
    o = PPOrigin()
    try:
        port = free_port()
        cfg = ops_config(port, {"was": ["%s:%d" % (HOST, o.port)]},
                         upstream_opts={"was": {"proxy_protocol": ver}})
        cfg["listeners"][0]["proxy_protocol"] = True
        gatehouse(cfg, port)
        with RawConn(port) as c:
            c.send(b"PROXY TCP4 198.51.100.9 127.0.0.1 43210 80\r\n" +
                   request_bytes("GET", "/a"))
            b1 = c.read_response().body.decode()
            c.send(request_bytes("GET", "/b"))
            b2 = c.read_response().body.decode()
        if ver == "v1":
            assert b1.startswith("PROXY TCP4 198.51.100.9 ") and " 43210 " in b1, b1
        else:
            assert b1 == "v2 198.51.100.9 43210", b1
        assert b2 == b1
        # a connection that speaks for one client is never pooled for another
        assert wait_until(lambda: len(o.headers) == 2, 5), o.headers
    finally:
        o.close()


# ---- PROXY header in front of TLS (an L4 balancer before a TLS listener) ----

@pytest.fixture
def pp_tls(origin, gatehouse, test_ca):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [origin.port]}, admin_port=aport)
    lst = cfg["listeners"][0]
    lst["proxy_protocol"] = True
    lst["tls"] = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                                    "key": test_ca.path("localhost.key")}]}
    return gatehouse(cfg, port)


def tls_after(port, ca, header, pause=0.0):
    """A TLS connection to <port> that first sends <header> in clear (byte
    by byte with <pause> between bytes when given)."""
    from lib.tls import client_context
    raw = socket.create_connection((HOST, port), timeout=10)
    if pause:
        for i in range(len(header)):
            raw.sendall(header[i:i + 1])
            time.sleep(pause)
    else:
        raw.sendall(header)
    return client_context(ca.path("ca.pem")).wrap_socket(
        raw, server_hostname="localhost")


def https_get(s, path="/echo"):
    s.sendall(request_bytes("GET", path))
    data = b""
    while b"\r\n\r\n" not in data:
        k = s.recv(65536)
        assert k, data
        data += k
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        k = s.recv(65536)
        assert k
        body += k
    return head.split(b"\r\n", 1)[0], body[:n]


def test_tls_listener_takes_v1_and_v2_before_the_handshake(pp_tls, test_ca):
    for hdr, src in [(b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 443\r\n", "192.0.2.9"),
                     (v2("203.0.113.77", 4000, dport=443), "203.0.113.77")]:
        with tls_after(pp_tls.port, test_ca, hdr) as s:
            status, body = https_get(s)
            assert status.startswith(b"HTTP/1.1 200"), status
            assert xff(body) == [src]
            # the connection keeps the carried address
            assert xff(https_get(s)[1]) == [src]
    lines = pp_tls.wait_access_lines(lambda ls: len(ls) == 4)
    assert [ln.split(" ", 1)[0] for ln in lines] == \
        ["192.0.2.9", "192.0.2.9", "203.0.113.77", "203.0.113.77"], lines


def test_tls_listener_header_in_pieces(pp_tls, test_ca):
    with tls_after(pp_tls.port, test_ca, v2("198.51.100.8", 1234, dport=443),
                   pause=0.003) as s:
        assert xff(https_get(s)[1]) == ["198.51.100.8"]


def test_curl_https_haproxy_protocol(pp_tls, test_ca):
    r = curl("--haproxy-protocol", "--cacert", test_ca.path("ca.pem"),
             "https://localhost:%d/echo" % pp_tls.port,
             "--resolve", "localhost:%d:127.0.0.1" % pp_tls.port)
    assert xff(r.stdout) == ["127.0.0.1"]


@pytest.mark.parametrize("first", [
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a ClientHello, no header
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
])
def test_tls_listener_without_a_valid_header_closes(pp_tls, first):
    with RawConn(pp_tls.port) as c:
        c.send(first)
        c.read_until_close(5)
        assert c.eof
    assert wait_until(lambda: "no valid PROXY header" in pp_tls.error_log_text(), 5)
