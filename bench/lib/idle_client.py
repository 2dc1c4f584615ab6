#!/usr/bin/python3
"""Idle keep-alive client for the "idle" scenario (stdlib only).

Opens --conns connections to 127.0.0.1:--port, sends one GET on each, reads
the whole response (Content-Length or chunked), and keeps every connection
open and idle. At most --window connections are connecting or waiting for a
response at any time, so neither the listen backlog, nor the number of
upstream connections the proxy opens, nor the buffers it needs for requests
in flight grow with --conns.

A warm-up first does 2 x --window requests on connections it then closes.
The proxy's RSS (VmRSS from /proc/<pid>/status, summed over --pids) is read
after that, and again --settle seconds after the last response, once every
connection has been checked to be still open. Prints one
JSON object; exit status 0 when every connection ended idle, 1 otherwise,
2 on timeout (--timeout bounds the whole run).
"""
import argparse
import errno
import json
import select
import selectors
import socket
import sys
import time


def rss_kb(pids):
    total = 0
    for p in pids:
        with open("/proc/%d/status" % p) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


class Conn:
    __slots__ = ("sock", "phase", "buf", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.phase = "connect"
        self.buf = b""
        self.sent = 0


def response_done(buf):
    """None while incomplete, else the status code."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        return -1
    clen, chunked = None, False
    for h in head[1:]:
        name, _, value = h.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            clen = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body = buf[end + 4:]
    if chunked:
        return status if body.endswith(b"0\r\n\r\n") else None
    if clen is None:
        clen = 0
    return status if len(body) >= clen else None


def still_open(socks):
    """Counts sockets with nothing to read and no hang-up: idle and open."""
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN | select.POLLRDHUP)
    ready = set(fd for fd, _ in p.poll(0))
    return sum(1 for s in socks if s.fileno() not in ready)


def open_idle(n, addr, req, window, deadline, errors):
    """Opens n connections, one request each, at most <window> busy at a
    time. Returns (sockets that ended idle, failed count, timed out)."""
    sel = selectors.DefaultSelector()
    opened = active = failed = 0
    idle = []

    def fail(c, why):
        nonlocal active, failed
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        active -= 1
        failed += 1

    while len(idle) + failed < n:
        if time.monotonic() > deadline:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()
            return idle, failed, True
        while active < window and opened < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            opened += 1
            err = s.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                why = "connect " + errno.errorcode.get(err, str(err))
                errors[why] = errors.get(why, 0) + 1
                s.close()
                failed += 1
                continue
            c = Conn(s)
            sel.register(s, selectors.EVENT_WRITE, c)
            active += 1
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            s = c.sock
            if c.phase == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, "connect " + errno.errorcode.get(err, str(err)))
                    continue
                c.phase = "send"
            if c.phase == "send":
                try:
                    c.sent += s.send(req[c.sent:])
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, "send " + errno.errorcode.get(e.errno, str(e)))
                    continue
                if c.sent == len(req):
                    c.phase = "read"
                    sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(c, "recv " + errno.errorcode.get(e.errno, str(e)))
                continue
            if not data:
                fail(c, "closed before the response ended")
                continue
            c.buf += data
            st = response_done(c.buf)
            if st is None:
                continue
            if st != 200:
                fail(c, "status %d" % st)
                continue
            sel.unregister(s)
            active -= 1
            c.buf = b""
            idle.append(s)
    sel.close()
    return idle, failed, False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/1k")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--pids", required=True, help="comma-separated")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    pids = [int(x) for x in a.pids.split(",") if x]
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: gh-bench-idle"
           "\r\n\r\n" % (a.path, a.port)).encode()
    addr = ("127.0.0.1", a.port)
    errors = {}

    # Warm-up: the proxy's pools and allocator caches grow to what <window>
    # requests in flight need, so "before" already holds that transient
    # memory and the difference is what idle connections keep.
    warm, _, timed_out = open_idle(2 * a.window, addr, req, a.window,
                                   deadline, {})
    for s in warm:
        s.close()
    time.sleep(0.5)
    before = rss_kb(pids)
    t1 = time.monotonic()
    idle, failed, timed_out = open_idle(a.conns, addr, req, a.window,
                                        deadline, errors)
    setup = time.monotonic() - t1
    if not timed_out:
        time.sleep(max(0.0, min(a.settle, deadline - time.monotonic())))
    alive = still_open(idle)
    after = rss_kb(pids)
    print(json.dumps({
        "wanted": a.conns, "idle": len(idle), "alive": alive, "failed": failed,
        "errors": errors, "rss_before_kb": before, "rss_after_kb": after,
        "setup_s": round(setup, 2), "timed_out": timed_out,
    }))
    sys.stdout.flush()
    for s in idle:
        s.close()
    if timed_out:
        return 2
    return 0 if alive == a.conns else 1


if __name__ == "__main__":
    sys.exit(main())
