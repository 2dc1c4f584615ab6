"""A tiny authoritative DNS server over UDP for the tests (RFC 1035 by
hand): A records from a table the test changes at run time, an empty
answer for AAAA, NXDOMAIN for names it does not know (or for every name
while <refuse> is set). Every wait is bounded by the stop event."""

import socket
import struct
import threading

from .net import HOST


class DnsServer:
    def __init__(self, host=HOST, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = "%s:%d" % (host, self.port)
        self.lock = threading.Lock()
        self.records = {}   # name -> ([ipv4...], ttl)
        self.queries = []   # (name, qtype) in order
        self.refuse = False
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True,
                                       name="dns")

    def set(self, name, ips, ttl=1):
        with self.lock:
            self.records[name.lower().rstrip(".")] = (list(ips), ttl)

    def count(self, name, qtype=1):
        with self.lock:
            return sum(1 for n, t in self.queries if n == name and t == qtype)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.sock.close()

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                out = self._answer(data)
            except (ValueError, IndexError, struct.error):
                continue  # not a query we understand: no answer
            if out is not None:
                self.sock.sendto(out, peer)

    def _answer(self, q):
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if flags & 0x8000 or qd != 1:
            return None
        labels, i = [], 12
        while q[i]:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("ascii").lower())
            i += 1 + n
        i += 1
        qtype, qclass = struct.unpack("!HH", q[i:i + 4])
        question = q[12:i + 4]
        name = ".".join(labels)
        with self.lock:
            self.queries.append((name, qtype))
            rec = None if self.refuse else self.records.get(name)
        rd = flags & 0x0100
        if rec is None:
            head = struct.pack("!HHHHHH", qid, 0x8400 | rd | 3, 1, 0, 0, 0)
            return head + question
        ips, ttl = rec
        answers = b""
        count = 0
        if qtype == 1:
            for ip in ips:
                answers += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4)
                answers += socket.inet_aton(ip)
                count += 1
        head = struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, count, 0, 0)
        return head + question + answers
