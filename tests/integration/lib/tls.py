"""TLS and HTTP/2 helpers: the test CA (scripts/test-ca.sh), openssl
s_client, Python ssl sockets, and an HTTP/2 client on raw frames (the h2
library's HPACK, our own framing) that can also misbehave on purpose."""

import os
import socket
import ssl
import struct
import subprocess
import time

import hpack

from .net import HOST
from .proxy import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "test-ca.sh")


class TestCA:
    """A CA made by scripts/test-ca.sh in <directory>: ca.pem (the root),
    int.pem, localhost.pem/.key (SANs localhost, 127.0.0.1, ::1)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self._run("init")

    def _run(self, *args):
        p = subprocess.run([SCRIPT, args[0], self.dir] + list(args[1:]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        if p.returncode != 0:
            raise AssertionError("test-ca.sh %s failed: %s" % (
                " ".join(args), p.stderr.decode(errors="replace")))

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def ca(self):
        return self.path("ca.pem")

    def leaf(self, name, *sans, rsa=False):
        """Issues NAME.pem (leaf + intermediate) and NAME.key."""
        self._run("rsa" if rsa else "leaf", name, *sans)
        return self.path(name + ".pem"), self.path(name + ".key")

    def client(self, name):
        self._run("client", name)
        return self.path(name + ".pem"), self.path(name + ".key")

    def ocsp(self, name):
        self._run("ocsp", name)
        return self.path(name + ".ocsp")


def s_client(port, *args, stdin=b"", timeout=20):
    """Runs `openssl s_client -connect 127.0.0.1:<port> <args>` with
    <stdin> (a request that should make the server close, or nothing);
    returns stdout and stderr as one text."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port)]
    if stdin:  # read the answer (and any tickets) until the server closes
        cmd.append("-ign_eof")
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.stdout.decode(errors="replace")


def subject_cn(text):
    """The CN of the first 'subject=' line of s_client output."""
    for ln in text.splitlines():
        if ln.startswith("subject="):
            return ln.split("CN = ", 1)[-1].strip()
    return None


def client_context(ca=None, alpn=None, cert=None, key=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(port, ca, server_name="localhost", alpn=None, timeout=10.0,
                cert=None, key=None):
    """A connected, handshaken TLS socket to 127.0.0.1:<port>."""
    ctx = client_context(ca, alpn, cert, key)
    raw = socket.create_connection((HOST, port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=server_name)


# ---- HTTP/2 on raw frames ----------------------------------------------------

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0xb
CANCEL, REFUSED_STREAM = 0x8, 0x7


def frame(ftype, flags, stream, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
            struct.pack(">I", stream & 0x7fffffff) + payload)


class Frame:
    def __init__(self, ftype, flags, stream, payload):
        self.type, self.flags, self.stream, self.payload = \
            ftype, flags, stream, payload

    def __repr__(self):
        return "<Frame type=%d flags=%#x stream=%d len=%d>" % (
            self.type, self.flags, self.stream, len(self.payload))

    @property
    def error_code(self):
        """RST_STREAM and GOAWAY."""
        off = 4 if self.type == GOAWAY else 0
        return struct.unpack(">I", self.payload[off:off + 4])[0]


class H2Conn:
    """An HTTP/2 client connection on a socket (plain for h2c, or TLS with
    ALPN h2), writing frames exactly as asked. It acknowledges SETTINGS and
    answers PINGs so the server sees a well-behaved peer unless a test
    makes it misbehave."""

    def __init__(self, sock, window=None):
        self.sock = sock
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.buf = bytearray()
        self.eof = False
        self.next_id = 1
        self.goaway = None
        self.settings = {}
        self.pending = []  # frames read while sending, for response()
        self.auto_window = True  # give DATA back to the windows on arrival
        self.conn_win = 65535
        self.stream_win = {}
        self.data_sent = 0  # DATA payload bytes written by request()
        settings = b""
        if window is not None:  # SETTINGS_INITIAL_WINDOW_SIZE
            settings = struct.pack(">HI", 4, window)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
        if window is not None and window > 65535:
            self.sock.sendall(frame(WINDOW_UPDATE, 0, 0,
                                    struct.pack(">I", window - 65535)))

    def send(self, data):
        self.sock.sendall(data)

    def headers_block(self, method, path, authority="localhost",
                      scheme="https", extra=()):
        hs = [(":method", method), (":scheme", scheme), (":path", path),
              (":authority", authority)] + list(extra)
        return self.enc.encode(hs)

    def request(self, method="GET", path="/", body=None, extra=(),
                authority="localhost", scheme="https", end=True, timeout=20.0):
        """Sends a request; a body is sent as the server's windows allow
        (reading WINDOW_UPDATEs, keeping other frames for response())."""
        sid = self.next_id
        self.next_id += 2
        block = self.headers_block(method, path, authority, scheme, extra)
        flags = END_HEADERS | (END_STREAM if end and body is None else 0)
        self.sock.sendall(frame(HEADERS, flags, sid, block))
        if body is None:
            return sid
        self.stream_win[sid] = self.settings.get(4, 65535)
        deadline = time.monotonic() + timeout
        off = 0
        while True:
            n = min(16384, len(body) - off, self.conn_win, self.stream_win[sid])
            if n > 0 or off == len(body):
                last = off + n == len(body)
                self.sock.sendall(frame(DATA, END_STREAM if (last and end) else 0,
                                        sid, body[off:off + n]))
                off += n
                self.data_sent += n
                self.conn_win -= n
                self.stream_win[sid] -= n
                if last:
                    return sid
                continue
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                raise ConnectionError("closed while sending (goaway=%r)" % self.goaway)
            if f.type != WINDOW_UPDATE:
                self.pending.append(f)
            if f.type == RST_STREAM and f.stream == sid:
                return sid

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_frame(self, timeout=10.0):
        """The next frame, or None at EOF. SETTINGS are acknowledged, PINGs
        answered, GOAWAY remembered (and returned)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                n = struct.unpack(">I", b"\0" + bytes(self.buf[:3]))[0]
                if len(self.buf) >= 9 + n:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", bytes(self.buf[5:9]))[0] & 0x7fffffff
                    payload = bytes(self.buf[9:9 + n])
                    del self.buf[:9 + n]
                    f = Frame(ftype, flags, sid, payload)
                    self._auto(f)
                    return f
            if self.eof or not self._fill(deadline):
                return None

    def _auto(self, f):
        if f.type == HEADERS or f.type == CONTINUATION:
            # HPACK state is per connection: decode every block, in order
            f.headers = self.dec.decode(self._header_payload(f)) \
                if f.flags & END_HEADERS else []
        if f.type == DATA and f.payload and self.auto_window:
            n = struct.pack(">I", len(f.payload))
            try:
                self.sock.sendall(frame(WINDOW_UPDATE, 0, 0, n) +
                                  frame(WINDOW_UPDATE, 0, f.stream, n))
            except OSError:
                pass
        if f.type == WINDOW_UPDATE:
            inc = struct.unpack(">I", f.payload[:4])[0] & 0x7fffffff
            if f.stream == 0:
                self.conn_win += inc
            elif f.stream in self.stream_win:
                self.stream_win[f.stream] += inc
        try:
            if f.type == SETTINGS and not f.flags & ACK:
                for i in range(0, len(f.payload), 6):
                    k, v = struct.unpack(">HI", f.payload[i:i + 6])
                    self.settings[k] = v
                self.sock.sendall(frame(SETTINGS, ACK, 0))
            elif f.type == PING and not f.flags & ACK:
                self.sock.sendall(frame(PING, ACK, 0, f.payload))
            elif f.type == GOAWAY:
                self.goaway = f
        except OSError:
            pass

    def response(self, sid, timeout=20.0):
        """Reads until stream <sid> ends: (status, headers dict, body).
        Other streams' frames are skipped. Returns None for the status when
        the stream was reset (and the error code in the dict as
        'rst')."""
        deadline = time.monotonic() + timeout
        status, headers, body = None, {}, bytearray()
        while True:
            mine = [f for f in self.pending if f.stream == sid]
            if mine:
                f = mine[0]
                self.pending.remove(f)
            else:
                f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                raise ConnectionError("connection closed before stream %d "
                                      "ended (goaway=%r)" % (sid, self.goaway))
            if f.stream != sid:
                if f.stream != 0:
                    self.pending.append(f)
                continue
            if f.type == HEADERS:
                d = {k: v for k, v in f.headers}
                if d.get(":status", "200").startswith("1"):
                    continue
                if status is None:
                    status = int(d[":status"])
                headers.update(d)
            elif f.type == DATA:
                body += f.payload
            elif f.type == RST_STREAM:
                headers["rst"] = f.error_code
                return status, headers, bytes(body)
            if f.type in (HEADERS, DATA) and f.flags & END_STREAM:
                return status, headers, bytes(body)

    @staticmethod
    def _header_payload(f):
        p = f.payload
        if f.flags & 0x8:  # PADDED
            p = p[1:len(p) - p[0]]
        if f.flags & 0x20:  # PRIORITY
            p = p[5:]
        return p

    def wait_goaway(self, timeout=10.0):
        """Reads frames until a GOAWAY arrives or the connection ends;
        returns the GOAWAY frame or None."""
        deadline = time.monotonic() + timeout
        while self.goaway is None:
            try:
                f = self.read_frame(max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                return None
            if f is None:
                break
        return self.goaway

    def closed_within(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if self.read_frame(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except socket.timeout:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2_tls(port, ca, server_name="localhost", window=None, timeout=10.0):
    s = tls_connect(port, ca, server_name, alpn=["h2"], timeout=timeout)
    assert s.selected_alpn_protocol() == "h2"
    return H2Conn(s, window)


def h2c(port, window=None, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    return H2Conn(s, window)


def proc_cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
