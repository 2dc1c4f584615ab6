"""AJP/1.3 for the tests, written from the protocol reference: a client that
sends a forward-request straight to a container (to show what the secret
protects), and a small fake container that records every packet it gets
(to see CPING, attributes and body packets from gatehouse's side)."""

import socket
import struct
import threading

from .net import HOST

CPING = b"\x12\x34\x00\x01\x0a"
CPONG = b"AB\x00\x01\x09"


def _s(v):
    if v is None:
        return b"\xff\xff"
    if isinstance(v, str):
        v = v.encode("latin-1")
    return struct.pack(">H", len(v)) + v + b"\x00"


METHODS = {"GET": 2, "HEAD": 3, "POST": 4, "PUT": 5}


def forward_request(method="GET", uri="/", headers=(), attributes=(),
                    secret=None, query=None):
    p = bytes([2, METHODS[method]]) + _s("HTTP/1.1") + _s(uri) + \
        _s("127.0.0.1") + _s("127.0.0.1") + _s("localhost") + \
        struct.pack(">HBH", 80, 0, len(headers))
    for k, v in headers:
        p += _s(k) + _s(v)
    if query:
        p += b"\x05" + _s(query)
    for k, v in attributes:  # req_attribute: what Ghostcat injected
        p += b"\x0a" + _s(k) + _s(v)
    if secret is not None:
        p += b"\x0c" + _s(secret)
    p += b"\xff"
    return b"\x12\x34" + struct.pack(">H", len(p)) + p


def _recv_exact(sock, n):
    out = b""
    while len(out) < n:
        d = sock.recv(n - len(out))
        if not d:
            raise EOFError("closed")
        out += d
    return out


def read_packet(sock):
    """One container packet: (type, payload)."""
    head = _recv_exact(sock, 4)
    assert head[:2] == b"AB", head
    n = struct.unpack(">H", head[2:])[0]
    pl = _recv_exact(sock, n)
    return pl[0], pl


def direct_request(port, **kw):
    """Sends one forward-request straight to a container; returns (status,
    body bytes) or (None, b"") when it closed without answering."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(forward_request(**kw))
        status, body = None, b""
        try:
            while True:
                t, pl = read_packet(s)
                if t == 4:
                    status = struct.unpack(">H", pl[1:3])[0]
                elif t == 3:
                    n = struct.unpack(">H", pl[1:3])[0]
                    body += pl[3:3 + n]
                elif t == 6:  # GET_BODY_CHUNK: no body
                    s.sendall(b"\x12\x34\x00\x00")
                elif t == 5:
                    break
        except (EOFError, ConnectionResetError, socket.timeout):
            pass
        return status, body


def _parse_forward(pl):
    """Decodes a forward-request payload into a dict (for assertions)."""
    off = 2
    out = {"method_code": pl[1], "headers": [], "attributes": []}

    def rs():
        nonlocal off
        n = struct.unpack(">H", pl[off:off + 2])[0]
        off += 2
        if n == 0xFFFF:
            return None
        v = pl[off:off + n]
        assert pl[off + n] == 0
        off += n + 1
        return v.decode("latin-1")

    out["protocol"], out["uri"] = rs(), rs()
    out["remote_addr"], out["remote_host"], out["server_name"] = rs(), rs(), rs()
    out["server_port"], out["is_ssl"], nh = struct.unpack(">HBH", pl[off:off + 5])
    off += 5
    for _ in range(nh):
        if pl[off] == 0xA0:
            name = "code:%04x" % struct.unpack(">H", pl[off:off + 2])[0]
            off += 2
        else:
            name = rs()
        out["headers"].append((name, rs()))
    while pl[off] != 0xFF:
        code = pl[off]
        off += 1
        if code == 0x0A:
            out["attributes"].append((rs(), rs()))
        else:
            out["attributes"].append(("code:%02x" % code, rs()))
    return out


class FakeContainer:
    """Answers CPING with CPONG (unless cpong=False), and each forward-request
    with a 200 "ok <n>" response (reading the body it asks for). Records
    every packet type per connection in .log: [(conn_id, kind, detail)]."""

    def __init__(self, cpong=True, lie=None):
        self.cpong = cpong
        self.lie = lie  # "long"/"short": a body unlike its Content-Length
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.log = []
        self.requests = []
        self.stop_ev = threading.Event()
        self.conns = 0
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(s, self.conns),
                             daemon=True).start()

    def _serve(self, s, cid):
        s.settimeout(30)
        try:
            while not self.stop_ev.is_set():
                head = _recv_exact(s, 4)
                assert head[:2] == b"\x12\x34", head
                n = struct.unpack(">H", head[2:])[0]
                pl = _recv_exact(s, n)
                if pl == b"\x0a":
                    self.log.append((cid, "cping", None))
                    if self.cpong:
                        s.sendall(CPONG)
                    continue
                assert pl[0] == 2, pl[:8]
                req = _parse_forward(pl)
                req["conn"] = cid
                self.requests.append(req)
                self.log.append((cid, "request", req["uri"]))
                body = b""
                # ask for the body until the empty packet
                cl = [v for k, v in req["headers"] if k == "code:a008"]
                if cl and int(cl[0]) > 0:
                    first = True
                    while True:
                        if not first:
                            s.sendall(b"AB\x00\x03\x06\x1f\xfa")
                        first = False
                        h = _recv_exact(s, 4)
                        m = struct.unpack(">H", h[2:])[0]
                        if m == 0:
                            break
                        d = _recv_exact(s, m)
                        body += d[2:]
                        if len(body) >= int(cl[0]):
                            break
                req["body"] = body
                msg = b"ok %d" % len(body)
                cl = len(msg) + {"long": -2, "short": 2}.get(self.lie, 0)
                hdr = b"\x04" + struct.pack(">H", 200) + _s("OK") + struct.pack(">H", 2) + \
                    b"\xa0\x01" + _s("text/plain") + b"\xa0\x03" + _s(str(cl))
                s.sendall(b"AB" + struct.pack(">H", len(hdr)) + hdr)
                chunk = b"\x03" + struct.pack(">H", len(msg)) + msg + b"\x00"
                s.sendall(b"AB" + struct.pack(">H", len(chunk)) + chunk)
                s.sendall(b"AB\x00\x02\x05\x01")
        except (EOFError, ConnectionResetError, socket.timeout, OSError):
            pass
        finally:
            s.close()

    def stop(self):
        self.stop_ev.set()
        self.sock.close()
