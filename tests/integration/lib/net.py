"""Sockets, free ports, a raw HTTP/1.1 client, curl, and the deterministic
body pattern shared by the origin and the tests."""

import collections
import hashlib
import os
import socket
import subprocess
import time

HOST = "127.0.0.1"

# ---- deterministic bodies -------------------------------------------------
# Byte i of a pattern body is BLOCK[i % len(BLOCK)]: the origin sends a 1 MiB
# block over and over, and a test can hash any length without holding it.
BLOCK_SIZE = 1 << 20


def _make_block():
    # A non-periodic-looking 1 MiB block: sha256 counter mode.
    out = bytearray()
    i = 0
    while len(out) < BLOCK_SIZE:
        out += hashlib.sha256(b"gatehouse-%d" % i).digest()
        i += 1
    return bytes(out[:BLOCK_SIZE])


BLOCK = _make_block()


def pattern(n, offset=0):
    """The n pattern bytes starting at <offset> (use for small n only)."""
    out = bytearray()
    pos = offset % BLOCK_SIZE
    while len(out) < n:
        take = min(n - len(out), BLOCK_SIZE - pos)
        out += BLOCK[pos:pos + take]
        pos = 0
    return bytes(out)


def pattern_sha256(n):
    h = hashlib.sha256()
    full, rest = divmod(n, BLOCK_SIZE)
    for _ in range(full):
        h.update(BLOCK)
    h.update(BLOCK[:rest])
    return h.hexdigest()


def write_pattern_file(path, n):
    with open(path, "wb") as f:
        full, rest = divmod(n, BLOCK_SIZE)
        for _ in range(full):
            f.write(BLOCK)
        f.write(BLOCK[:rest])
    return path


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK_SIZE)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---- ports ---------------------------------------------------------------


_GIVEN = collections.deque(maxlen=256)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0).
    The kernel may hand out a port it just gave (the socket is closed at
    once), so two calls in a row could return the same one: ports given out
    recently by this process are skipped."""
    for _ in range(64):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _GIVEN:
            _GIVEN.append(port)
            return port
    raise RuntimeError("no fresh free port in 64 tries")


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until true or <timeout> seconds passed; returns the last
    value of pred()."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- raw HTTP/1.1 client --------------------------------------------------


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head,
                 interim=None):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), as received
        self.body = body
        self.raw_head = raw_head
        self.interim = interim or []  # 1xx responses before this one

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name):
        return self.get(name) is not None

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


class Closed(Exception):
    """The peer closed the connection before a complete response."""


class RawConn:
    """A plain TCP client that writes exactly the bytes given and parses
    responses itself, so tests control framing byte for byte."""

    def __init__(self, port, timeout=10.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed by peer")
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for data")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.eof = True
            raise Closed("connection reset by peer")
        if not data:
            self.eof = True
            raise Closed("connection closed by peer")
        self.buf += data

    def _line(self, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _head(self, deadline):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > (1 << 20):
                raise ValueError("response head too long")
            self._fill(deadline)

    def read_response(self, method="GET", timeout=None, skip_interim=True):
        """Reads one response. 1xx interim responses are collected in
        .interim unless skip_interim is False (then a 1xx is returned)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            head = self._head(deadline)
            lines = head[:-4].split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise ValueError("bad status line %r" % lines[0])
            version = parts[0].decode()
            status = int(parts[1])
            reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
            headers = []
            for ln in lines[1:]:
                k, _, v = ln.partition(b":")
                headers.append((k.decode("latin-1"),
                                v.strip(b" \t").decode("latin-1")))
            resp = Response(version, status, reason, headers, b"", head,
                            interim)
            if 100 <= status < 200 and status != 101:
                if not skip_interim:
                    return resp
                interim.append(resp)
                continue
            break
        te = (resp.get("Transfer-Encoding") or "").lower()
        cl = resp.get("Content-Length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in te:
            body = bytearray()
            while True:
                size_line = self._line(deadline)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line(deadline) != b"":
                        pass
                    break
                body += self._exact(size, deadline)
                if self._exact(2, deadline) != b"\r\n":
                    raise ValueError("bad chunk end")
            body = bytes(body)
        elif cl is not None:
            body = self._exact(int(cl), deadline)
        else:
            body = self.read_until_close(max(0.1, deadline - time.monotonic()))
        resp.body = body
        return resp

    def read_until_close(self, timeout=5.0):
        """Everything until the peer closes; raises socket.timeout if the
        connection stays open longer than <timeout>."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except Closed:
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_within(self, timeout):
        """True if the peer closes (EOF or RST) within <timeout> seconds;
        any bytes that arrive meanwhile are kept in .buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except Closed:
                break
            except socket.timeout:
                return False
        return True


def request_bytes(method, target, host="localhost", headers=(), body=b"",
                  version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def get(port, target, host="localhost", headers=(), method="GET", body=b"",
        timeout=10.0):
    """One request on a fresh connection; returns the Response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(request_bytes(method, target, host, headers, body))
        return c.read_response(method)


# ---- curl ------------------------------------------------------------------

CURL_ENV = {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                 "no_proxy")}


def curl(*args, timeout=60, check=True, input=None, stdout=None,
         proxy=None):
    """Runs curl with the given arguments (no proxy from the environment;
    <proxy> is given as -x, and then --noproxy is left out, since it would
    override -x). Returns CompletedProcess with bytes stdout/stderr."""
    if proxy is not None:
        cmd = ["curl", "-sS", "-x", proxy, "--max-time", str(timeout)]
    else:
        cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout)]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, input=input, stdout=stdout or subprocess.PIPE,
                       stderr=subprocess.PIPE, env=CURL_ENV,
                       timeout=timeout + 10)
    if check and p.returncode != 0:
        raise AssertionError("curl failed (%d): %s\n%s" % (
            p.returncode, " ".join(cmd), p.stderr.decode(errors="replace")))
    return p


def curl_popen(*args, timeout=120, **kw):
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout)]
    cmd += [str(a) for a in args]
    return subprocess.Popen(cmd, env=CURL_ENV, **kw)


def parse_curl_headers(text):
    """Parses `curl -D -` / `-i` output head blocks into a list of
    (status, [(name, value)]) in order (interim responses included)."""
    blocks = []
    cur = None
    for line in text.split("\r\n"):
        if line.startswith("HTTP/"):
            cur = (int(line.split(" ")[1]), [])
            blocks.append(cur)
        elif line and cur is not None and ":" in line:
            k, _, v = line.partition(":")
            cur[1].append((k, v.strip()))
    return blocks
