"""A DNS server for the tests (UDP, stdlib only): answers A queries from a
table {name: (ipv4, ttl)}, NXDOMAIN for names it does not know, nothing at
all for names in <silent>, and NODATA for AAAA. It counts the A queries
per name, so a test sees what the proxy's cache saved."""

import socket
import struct
import threading
from collections import Counter

from .net import HOST


class DNSServer:
    def __init__(self, records=None, silent=()):
        self.records = dict(records or {})
        self.silent = set(silent)
        self.asked = Counter()
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(2)
        self.sock.close()

    def count(self, name):
        with self.lock:
            return self.asked[name]

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                q, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            r = self._answer(q)
            if r is not None:
                self.sock.sendto(r, peer)

    def _answer(self, q):
        if len(q) < 17:
            return None
        labels, o = [], 12
        while o < len(q) and q[o] != 0:
            n = q[o]
            labels.append(q[o + 1:o + 1 + n].decode("ascii", "replace"))
            o += 1 + n
        name = ".".join(labels).lower()
        qtype, _ = struct.unpack("!HH", q[o + 1:o + 5])
        qend = o + 5
        if name in self.silent:
            with self.lock:
                self.asked[name] += 1
            return None
        head = bytearray(q[:qend])
        head[2] = 0x81
        head[3] = 0x80
        head[6:12] = b"\0" * 6
        rec = self.records.get(name)
        if qtype == 1:
            with self.lock:
                self.asked[name] += 1
        if rec is None:
            head[3] = 0x83  # NXDOMAIN
            return bytes(head)
        if qtype != 1:
            return bytes(head)  # NODATA
        ip, ttl = rec
        head[7] = 1
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + \
            socket.inet_aton(ip)
        return bytes(head) + ans
