"""A real HTTP/1.1 origin server for the tests: a thread per connection, its
own small HTTP/1.1 handling so framing is under the tests' control, and
counters of what it saw.

Endpoints (any method unless said):
  /echo               JSON: method, target, path, version, headers (raw list),
                      framing, body_len, body_sha256, origin, peer_port,
                      conn_id, conn_requests
  /bytes/<n>          n pattern bytes (lib.net.pattern), Content-Length
  /chunked/<n>        n pattern bytes, chunked, chunks of varied sizes
  /slow/<ms>          waits ms, then answers like /echo
  /status/<code>      that status; 204/304 without body (304 carries a
                      Content-Length: 1234 of the representation, legal)
  /headers?set=N:V&.. answers with those header fields, body "headers\\n"
  /text/<n>?type=T&chunked=1&set=N:V  n bytes of text_body(n), type T
  /ws                 WebSocket echo (RFC 6455, by hand)
  /reset              reads the request, then resets the connection (RST)
  /close              reads the request, then closes without answering
  /garbage            answers with a head that is not HTTP, then closes
  /truncate/<n>       Content-Length n, sends n//2 bytes, closes
  /eof/<n>            n pattern bytes delimited by closing the connection
  /split              like /echo, the response sent one byte at a time
  /early              103 Early Hints, then 200 "after hints\\n"
  /drip/<k>/<ms>      chunked, k pieces "piece <i>\\n", one every ms
  /noread             reads the head, never the body; closes after 15 s
  /stall              reads the request, never answers
  /stall-body         head with Content-Length 1000, 10 bytes, then nothing
  anything else       like /echo
Bodies of any size are read in 1 MiB pieces and hashed, never held.

Whole-origin behaviours a test may switch at any time (upstream pools):
  delay = seconds     every request waits this long before its answer
  mode = "reset"      every request is answered with a connection reset
  mode = "close"      every request is answered by closing the connection
  mode = "cut"        every request gets half a response head, then a close
  mode = "500"        every request is answered 500
  host = "127.0.0.2"  the address to listen on (constructor argument)
"""

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import urllib.parse

from .net import BLOCK, BLOCK_SIZE, HOST, pattern

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class BadRequest(Exception):
    pass


class _Reader:
    def __init__(self, sock, stop):
        self.sock = sock
        self.buf = bytearray()
        self.stop = stop
        self.sock.settimeout(0.2)
        self.mv = memoryview(bytearray(BLOCK_SIZE))

    def _recv(self):
        # Blocks until data, EOF or stop; every wait is bounded by stop.
        while True:
            if self.stop.is_set():
                raise EOFError("origin stopping")
            try:
                data = self.sock.recv(BLOCK_SIZE)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                raise EOFError("reset")
            if not data:
                raise EOFError("eof")
            return data

    def head(self, limit=1 << 20, idle=None):
        """The next request head. With <idle> (seconds), EOFError when no
        byte of it arrives within that time (an idle keep-alive close)."""
        start = time.monotonic()
        while True:
            if idle is not None and not self.buf:
                if time.monotonic() - start > idle:
                    raise EOFError("idle")
                self.sock.settimeout(min(0.05, idle))
                try:
                    data = self.sock.recv(BLOCK_SIZE)
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    raise EOFError("reset")
                finally:
                    self.sock.settimeout(0.2)
                if not data:
                    raise EOFError("eof")
                self.buf += data
                continue
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                h = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return h
            if len(self.buf) > limit:
                raise BadRequest("head too long")
            self.buf += self._recv()

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.buf += self._recv()

    def body_into(self, n, h):
        """Reads exactly n bytes into hash h; returns n."""
        left = n
        if self.buf:
            take = min(left, len(self.buf))
            h.update(self.buf[:take])
            del self.buf[:take]
            left -= take
        while left > 0:
            if self.stop.is_set():
                raise EOFError("origin stopping")
            try:
                got = self.sock.recv_into(self.mv, min(left, BLOCK_SIZE))
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                raise EOFError("reset")
            if got == 0:
                raise EOFError("eof in body")
            h.update(self.mv[:got])
            left -= got
        return n

    def exact(self, n):
        while len(self.buf) < n:
            self.buf += self._recv()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Request:
    def __init__(self, conn_id, conn_req, method, target, version, headers,
                 raw_head, peer_port):
        self.conn_id = conn_id
        self.conn_req = conn_req
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers
        self.raw_head = raw_head
        self.peer_port = peer_port
        self.framing = "none"
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.body_complete = False

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def __repr__(self):
        return "<origin Request %s %s conn=%d#%d>" % (
            self.method, self.target, self.conn_id, self.conn_req)


class Origin:
    def __init__(self, name="origin", port=0, idle_timeout=None, tls=None,
                 host=HOST):
        self.name = name
        self.host = host
        self.idle_timeout = idle_timeout  # close idle keep-alive conns
        self.tls = tls  # an ssl.SSLContext: serve HTTPS (handshake per conn)
        self.tls_handshakes = []  # (version, session reused, client cert CN)
        self.tls_errors = []
        self.delay = 0.0   # seconds before every answer
        self.mode = None   # None, "reset", "close" or "500"
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(256)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.accepted = 0
        self.open_conns = 0
        self.requests = []
        self.errors = []
        self.conns = {}
        self.threads = []
        self.thread = threading.Thread(target=self._accept_loop,
                                       name="origin-" + name, daemon=True)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.conns.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(2)

    # ---- counters ----

    def paths(self):
        with self.lock:
            return [r.path for r in self.requests]

    def count(self, path=None):
        with self.lock:
            if path is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path == path)

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.02)
        return self.count() >= n

    # ---- server ----

    def _accept_loop(self):
        conn_id = 0
        while not self.stop_ev.is_set():
            try:
                s, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn_id += 1
            with self.lock:
                self.accepted += 1
                self.open_conns += 1
                self.conns[conn_id] = s
            t = threading.Thread(target=self._serve, args=(s, addr, conn_id),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, s, addr, conn_id):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                s.settimeout(10)
                s = self.tls.wrap_socket(s, server_side=True)
                cert = s.getpeercert()
                cn = None
                for rdn in (cert or {}).get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                with self.lock:
                    self.tls_handshakes.append((s.version(), s.session_reused, cn))
                    self.conns[conn_id] = s
            except (OSError, ValueError) as e:
                with self.lock:
                    self.tls_errors.append(repr(e))
                    self.open_conns -= 1
                    self.conns.pop(conn_id, None)
                s.close()
                return
        r = _Reader(s, self.stop_ev)
        nreq = 0
        try:
            while not self.stop_ev.is_set():
                try:
                    head = r.head(idle=self.idle_timeout)
                except EOFError:
                    return
                nreq += 1
                req = self._parse(head, conn_id, nreq, addr[1])
                with self.lock:
                    self.requests.append(req)
                keep = self._handle(s, r, req)
                if not keep:
                    return
        except EOFError:
            return
        except Exception as e:  # recorded for the test to look at
            with self.lock:
                self.errors.append("%s: %r" % (self.name, e))
        finally:
            with self.lock:
                self.open_conns -= 1
                self.conns.pop(conn_id, None)
            try:
                s.close()
            except OSError:
                pass

    def _parse(self, head, conn_id, nreq, peer_port):
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            method, target, version = (parts + ["", "", ""])[:3]
        else:
            method, target, version = parts
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"),
                            v.strip(b" \t").decode("latin-1")))
        return Request(conn_id, nreq, method, target, version, headers, head,
                       peer_port)

    def _read_body(self, s, r, req):
        te = ",".join(req.get_all("Transfer-Encoding")).lower()
        cls = req.get_all("Content-Length")
        h = hashlib.sha256()
        if (req.get("Expect") or "").lower() == "100-continue":
            _sendall(s, b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            req.framing = "chunked"
            total = 0
            while True:
                size_line = r.line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while r.line() != b"":
                        pass
                    break
                total += r.body_into(size, h)
                if r.exact(2) != b"\r\n":
                    raise BadRequest("bad chunk end")
            req.body_len = total
        elif cls:
            req.framing = "length"
            req.body_len = r.body_into(int(cls[0]), h)
        req.body_sha256 = h.hexdigest()
        req.body_complete = True

    def _respond(self, s, status, headers, body=b"", req=None,
                 reason=None):
        reasons = {100: "Continue", 101: "Switching Protocols", 200: "OK",
                   201: "Created", 204: "No Content", 304: "Not Modified",
                   400: "Bad Request", 404: "Not Found",
                   500: "Internal Server Error", 503: "Service Unavailable"}
        out = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "X"))]
        out += ["%s: %s" % kv for kv in headers]
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if req is not None and req.method == "HEAD":
            body = b""
        _sendall(s, data + body)

    def _keep(self, req):
        conn = (req.get("Connection") or "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def _echo_body(self, req):
        d = {
            "method": req.method, "target": req.target, "path": req.path,
            "version": req.version, "headers": req.headers,
            "framing": req.framing, "body_len": req.body_len,
            "body_sha256": req.body_sha256, "origin": self.name,
            "peer_port": req.peer_port, "conn_id": req.conn_id,
            "conn_requests": req.conn_req,
        }
        return json.dumps(d).encode()

    def _handle(self, s, r, req):
        path = req.path
        query = urllib.parse.parse_qs(req.target.partition("?")[2])
        seg = path.strip("/").split("/")
        keep = self._keep(req)
        conn_hdr = [] if keep else [("Connection", "close")]
        mode = self.mode
        if mode == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return False
        if mode == "close":
            return False
        if mode == "cut":
            _sendall(s, b"HTTP/1.1 200 OK\r\nContent-Le")
            return False
        if self.delay > 0:
            self._wait(self.delay)
        if mode == "500":
            self._read_body(s, r, req)
            body = b"status 500\n"
            self._respond(s, 500, [("Content-Length", str(len(body)))]
                          + conn_hdr, body, req)
            return keep
        if path == "/ws":
            return self._websocket(s, r, req)
        if path == "/reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return False
        if path == "/close":
            return False
        if path == "/garbage":
            _sendall(s, b"NOT HTTP AT ALL\r\n\r\n")
            return False
        if path == "/noread":
            # never reads the body: the proxy's writes to us block
            deadline = time.monotonic() + 15
            while not self.stop_ev.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            return False
        if path == "/stall":
            while True:  # until the peer closes or the origin stops
                r.exact(len(r.buf) + 1)
        self._read_body(s, r, req)
        if path == "/echo" or seg[0] == "slow":
            if seg[0] == "slow":
                time.sleep(int(seg[1]) / 1000.0)
            body = self._echo_body(req)
            self._respond(s, 200, [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(body)))]
                          + conn_hdr, body, req)
            return keep
        if seg[0] == "bytes":
            n = int(seg[1])
            self._respond(s, 200, [("Content-Type", "application/octet-stream"),
                                   ("Content-Length", str(n))] + conn_hdr,
                          b"", req)
            if req.method != "HEAD":
                self._send_pattern(s, n)
            return keep
        if seg[0] == "chunked":
            n = int(seg[1])
            self._respond(s, 200, [("Content-Type", "application/octet-stream"),
                                   ("Transfer-Encoding", "chunked")]
                          + conn_hdr, b"", req)
            if req.method != "HEAD":
                self._send_chunked(s, n)
            return keep
        if seg[0] == "drip":
            # /drip/<pieces>/<ms>: chunked, one "piece <i>\n" every ms
            pieces, ms = int(seg[1]), int(seg[2])
            self._respond(s, 200, [("Content-Type", "text/plain"),
                                   ("Transfer-Encoding", "chunked")]
                          + conn_hdr, b"", req)
            for i in range(pieces):
                if i:
                    time.sleep(ms / 1000.0)
                piece = b"piece %d\n" % i
                _sendall(s, b"%x\r\n%s\r\n" % (len(piece), piece))
            _sendall(s, b"0\r\n\r\n")
            return keep
        if seg[0] == "eof":
            # /eof/<n>: no Content-Length, no chunked: the body ends when
            # the connection closes
            n = int(seg[1])
            self._respond(s, 200, [("Content-Type", "application/octet-stream")],
                          b"", req)
            if req.method != "HEAD":
                self._send_pattern(s, n)
            return False
        if path == "/split":
            # the whole response, one byte at a time
            body = self._echo_body(req)
            data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"X-Split: yes\r\nContent-Length: %d\r\n\r\n"
                    % len(body)) + body
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                _sendall(s, data[i:i + 1])
                time.sleep(0.001)
            return keep
        if path == "/early":
            _sendall(s, b"HTTP/1.1 103 Early Hints\r\n"
                        b"Link: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            body = b"after hints\n"
            self._respond(s, 200, [("Content-Length", str(len(body)))]
                          + conn_hdr, body, req)
            return keep
        if seg[0] == "truncate":
            n = int(seg[1])
            self._respond(s, 200, [("Content-Length", str(n))], b"", req)
            self._send_pattern(s, n // 2)
            return False
        if path == "/stall-body":
            self._respond(s, 200, [("Content-Length", "1000")], b"", req)
            _sendall(s, b"0123456789")
            while True:
                r.exact(len(r.buf) + 1)
        if seg[0] == "status":
            code = int(seg[1])
            if code == 204:
                self._respond(s, 204, [("X-Origin", self.name)] + conn_hdr)
            elif code == 304:
                self._respond(s, 304, [("ETag", '"v1"'),
                                       ("Content-Length", "1234"),
                                       ("X-Origin", self.name)] + conn_hdr)
            else:
                body = b"status %d\n" % code
                self._respond(s, code, [("Content-Length", str(len(body)))]
                              + conn_hdr, body, req)
            return keep
        if seg[0] == "text":
            # /text/<n>?type=T&chunked=1&set=N:V: n bytes of text_body(n)
            # (compressible), Content-Type T (text/plain), extra fields
            n = int(seg[1])
            body = text_body(n)
            hs = [("Content-Type", query.get("type", ["text/plain"])[0])]
            for item in query.get("set", []):
                k, _, v = item.partition(":")
                hs.append((k, v))
            if query.get("chunked"):
                hs.append(("Transfer-Encoding", "chunked"))
                self._respond(s, 200, hs + conn_hdr, b"", req)
                if req.method != "HEAD":
                    for i in range(0, n, 7000):
                        piece = body[i:i + 7000]
                        _sendall(s, b"%x\r\n%s\r\n" % (len(piece), piece))
                    _sendall(s, b"0\r\n\r\n")
            else:
                self._respond(s, 200, hs + [("Content-Length", str(n))]
                              + conn_hdr, body, req)
            return keep
        if path == "/headers":
            hs = []
            for item in query.get("set", []):
                k, _, v = item.partition(":")
                hs.append((k, v))
            body = b"headers\n"
            self._respond(s, 200, hs + [("Content-Length", str(len(body)))]
                          + conn_hdr, body, req)
            return keep
        # any other path: echo (routing tests use arbitrary paths)
        body = self._echo_body(req)
        self._respond(s, 200, [("Content-Type", "application/json"),
                               ("Content-Length", str(len(body)))]
                      + conn_hdr, body, req)
        return keep

    def _wait(self, secs):
        """Sleeps <secs>, cut short when the origin stops."""
        self.stop_ev.wait(secs)

    def _send_pattern(self, s, n):
        mv = memoryview(BLOCK)
        left = n
        while left > 0:
            take = min(left, BLOCK_SIZE)
            _sendall(s, mv[:take])
            left -= take

    def _send_chunked(self, s, n):
        sizes = [1, 100, 4096, 65536, BLOCK_SIZE - 1]
        off = 0
        i = 0
        while off < n:
            size = min(sizes[i % len(sizes)], n - off)
            piece = pattern(size, off)
            ext = b";ext=1" if i % 3 == 1 else b""
            _sendall(s, b"%x%s\r\n" % (size, ext) + piece + b"\r\n")
            off += size
            i += 1
        _sendall(s, b"0\r\nX-Trailer: done\r\n\r\n")

    # ---- WebSocket echo (RFC 6455) ----

    def _websocket(self, s, r, req):
        key = req.get("Sec-WebSocket-Key")
        if not key or "websocket" not in (req.get("Upgrade") or "").lower():
            body = b"not a websocket handshake\n"
            self._respond(s, 400, [("Content-Length", str(len(body)))], body)
            return False
        accept = base64.b64encode(
            hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self._respond(s, 101, [("Upgrade", "websocket"),
                               ("Connection", "Upgrade"),
                               ("Sec-WebSocket-Accept", accept)])
        msg = bytearray()
        msg_op = None
        while True:
            try:
                b0, b1 = r.exact(2)
            except EOFError:
                return False
            fin = b0 & 0x80
            op = b0 & 0x0F
            masked = b1 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", r.exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", r.exact(8))[0]
            mask = r.exact(4) if masked else b"\0\0\0\0"
            data = ws_mask(r.exact(n), mask)
            if op == 8:  # close: answer with the same code
                _sendall(s, ws_frame(8, bytes(data[:2])))
                return False
            if op == 9:
                _sendall(s, ws_frame(10, bytes(data)))
                continue
            if op == 10:
                continue
            if op in (1, 2):
                msg_op = op
                msg = bytearray(data)
            elif op == 0:
                msg += data
            if fin and msg_op is not None:
                _sendall(s, ws_frame(msg_op, bytes(msg)))
                msg_op = None


def text_body(n):
    """n bytes of text that compresses well but not trivially."""
    line = b"%06d the quick brown fox jumps over the lazy dog %s\n"
    out = bytearray()
    i = 0
    while len(out) < n:
        out += line % (i, hashlib.md5(b"%d" % (i % 50)).hexdigest().encode())
        i += 1
    return bytes(out[:n])


def _sendall(s, data, timeout=60.0):
    """sendall with its own bound: the reader polls with a 0.2 s timeout,
    which must not make a send to a slow reader (the proxy applying
    backpressure) give up."""
    s.settimeout(timeout)
    try:
        s.sendall(data)
    finally:
        s.settimeout(0.2)


def ws_frame(op, payload, mask=None):
    """One final WebSocket frame; masked when <mask> (4 bytes) is given."""
    n = len(payload)
    head = bytearray([0x80 | op])
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", n)
    if mask:
        head += mask
        payload = ws_mask(payload, mask)
    return bytes(head) + payload


def ws_mask(data, mask):
    """XORs <data> with the 4-byte <mask> repeated (masking is symmetric)."""
    n = len(data)
    if n == 0:
        return b""
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(
        n, "big")
