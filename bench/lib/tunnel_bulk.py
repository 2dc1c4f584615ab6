#!/usr/bin/python3
"""Bulk transfer through a CONNECT tunnel, for bench/run.sh connect.

    tunnel_bulk.py sink PORTFILE
        listens on a free port (written to PORTFILE); each connection sends
        an 8-byte big-endian length, then that many bytes, which the sink
        reads and answers with the count it got
    tunnel_bulk.py send SINK_PORT BYTES [PROXY_PORT]
        connects to the sink (through CONNECT at PROXY_PORT when given),
        sends BYTES and waits for the sink's count; prints "bytes seconds"
        (from the first byte sent to the count received) and fails if the
        count differs

The length comes first because Squid and tinyproxy close a tunnel when one
side half-closes, so "send, then FIN, then read the answer" would only work
through gatehouse.
"""
import os
import socket
import struct
import sys
import time

CHUNK = 4 << 20


def sink(portfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    while True:
        s, _ = ls.accept()
        head = b""
        while len(head) < 8:
            k = s.recv(8 - len(head))
            if not k:
                break
            head += k
        want = struct.unpack("!Q", head)[0] if len(head) == 8 else 0
        n = 0
        while n < want:
            k = s.recv_into(mv[:min(CHUNK, want - n)])
            if k == 0:
                break
            n += k
        try:
            s.sendall(b"%d\n" % n)
        except OSError:
            pass
        s.close()


def send(sink_port, nbytes, proxy_port=None):
    s = socket.create_connection(("127.0.0.1", proxy_port or sink_port))
    if proxy_port:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                  % (sink_port, sink_port))
        head = b""
        while b"\r\n\r\n" not in head:
            k = s.recv(1)
            if not k:
                raise SystemExit("proxy closed: %r" % head)
            head += k
        if not head.split(b" ", 2)[1].startswith(b"2"):
            raise SystemExit("CONNECT refused: %r" % head)
    data = memoryview(os.urandom(CHUNK))
    t0 = time.monotonic()
    s.sendall(struct.pack("!Q", nbytes))
    left = nbytes
    while left > 0:
        k = min(left, CHUNK)
        s.sendall(data[:k])
        left -= k
    reply = b""
    while not reply.endswith(b"\n"):
        k = s.recv(64)
        if not k:
            break
        reply += k
    secs = time.monotonic() - t0
    s.close()
    if reply.strip() != str(nbytes).encode():
        raise SystemExit("sink counted %r of %d bytes" % (reply, nbytes))
    print("%d %.6f" % (nbytes, secs))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "sink":
        sink(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "send":
        send(int(sys.argv[2]), int(sys.argv[3]),
             int(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        raise SystemExit(__doc__)
