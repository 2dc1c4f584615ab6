"""A bounded load run for the cluster test bed: C client connections send
GETs through the service address for S seconds, and every outcome is
written as JSON.

  python3 tests/cluster/load.py --host 10.77.1.100 --port 80 \
      --path /slow/20 --conns 8 --seconds 12 --out result.json

Each connection is kept alive as long as the server allows, or for
--reqs-per-conn requests (a response with "Connection: close" or a closed
socket ends it, and the next request opens a new one). A request fails when it gets no complete 2xx response,
with one exception that every HTTP client makes (RFC 9112 §9.3.1): a GET
sent on a *reused* connection that the server had already closed, with not
one byte of response, is sent again on a new connection; those are
counted apart as "retried" and are not failures.

The JSON holds: totals (ok, failed, retried), the failures (time, error,
whether the connection was reused), the start times of retried requests, per node (from the response's Via
field) the count and the times of its first and last response, and one
record per second of ok counts by node.
"""
import argparse
import json
import random
import socket
import threading
import time


class Failed(Exception):
    def __init__(self, msg, got_bytes):
        super().__init__(msg)
        self.got_bytes = got_bytes


def read_response(sock, deadline):
    """Returns (status, headers dict lower-case, body). Raises Failed."""
    buf = b""
    got = 0
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            raise Failed("timeout reading the head", got)
        except OSError as e:
            raise Failed("recv: %s" % e.__class__.__name__, got)
        if not d:
            raise Failed("closed before the head" if got else "closed", got)
        got += len(d)
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ")[1])
    except (IndexError, ValueError):
        raise Failed("bad status line %r" % lines[0][:40], got)
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except (socket.timeout, OSError) as e:
            raise Failed("body: %s" % e.__class__.__name__, got)
        if not d:
            raise Failed("closed in the body", got)
        got += len(d)
        rest += d
    return status, hdrs, rest[:n]


class Worker(threading.Thread):
    def __init__(self, args, stats, end):
        super().__init__(daemon=True)
        self.args = args
        self.stats = stats
        self.end = end
        self.sock = None
        self.reused = False
        self.on_conn = 0

    def connect(self):
        s = socket.create_connection((self.args.host, self.args.port),
                                     timeout=self.args.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.reused = False
        self.on_conn = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def once(self):
        """One request; returns (status, headers). Raises Failed/OSError."""
        if self.sock is None:
            self.connect()
        self.on_conn += 1
        last = self.args.reqs_per_conn and self.on_conn >= self.args.reqs_per_conn
        path = self.args.path
        if self.args.keys > 0:  # one of N objects, at random
            path += "%sk=%d" % ("&" if "?" in path else "?",
                                random.randrange(self.args.keys))
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cluster-load\r\n"
               "%s\r\n" % (path, self.args.hostname,
                            "Connection: close\r\n" if last else "")).encode()
        try:
            self.sock.sendall(req)
        except OSError as e:
            raise Failed("send: %s" % e.__class__.__name__, 0)
        deadline = time.monotonic() + self.args.timeout
        status, hdrs, _ = read_response(self.sock, deadline)
        if last or "close" in hdrs.get("connection", "").lower():
            self.close()
        else:
            self.reused = True
        return status, hdrs

    def run(self):
        while time.time() < self.end:
            t0 = time.time()
            retried = False
            try:
                try:
                    status, hdrs = self.once()
                except (Failed, OSError) as e:
                    got = getattr(e, "got_bytes", 0)
                    if not (self.reused and got == 0):
                        raise
                    # RFC 9112 §9.3.1: the server closed an idle
                    # connection as we reused it; retry on a new one.
                    self.close()
                    retried = True
                    status, hdrs = self.once()
            except (Failed, OSError) as e:
                self.close()
                self.stats.fail(t0, str(e), self.reused)
                continue
            via = hdrs.get("via", "")
            node = via.split()[-1] if via else "?"
            if 200 <= status < 300:
                self.stats.ok(t0, node, retried,
                              "; hit" in hdrs.get("cache-status", ""))
            elif status == 429 and self.args.allow_429:
                self.stats.limit(t0, node)
            else:
                self.stats.fail(t0, "status %d from %s" % (status, node),
                                self.reused)
                self.close()
            if self.args.pause > 0:
                time.sleep(self.args.pause / 1000.0)
        self.close()


class Stats:
    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.n_ok = 0
        self.n_retried = 0
        self.n_hits = 0
        self.limited = {}
        self.retries = []
        self.failures = []
        self.nodes = {}
        self.seconds = {}

    def ok(self, t, node, retried, hit=False):
        with self.lock:
            self.n_ok += 1
            self.n_hits += hit
            if retried:
                self.n_retried += 1
                self.retries.append(t)
            n = self.nodes.setdefault(node, {"count": 0, "first": t, "last": t})
            n["count"] += 1
            n["last"] = max(n["last"], t)
            sec = self.seconds.setdefault(int(t - self.t0), {})
            sec[node] = sec.get(node, 0) + 1

    def limit(self, t, node):
        with self.lock:
            self.limited.setdefault(node, []).append(t)

    def fail(self, t, err, reused):
        with self.lock:
            self.failures.append({"t": t, "error": err, "reused": reused})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--hostname", default="cluster.test")
    ap.add_argument("--path", default="/echo")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--pause", type=float, default=0, help="ms between requests")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--allow-429", action="store_true",
                    help="a 429 is the rate limit working, not a failure")
    ap.add_argument("--keys", type=int, default=0,
                    help="add k=<0..N-1> at random to the path (N objects)")
    ap.add_argument("--reqs-per-conn", type=int, default=0,
                    help="close each connection after N requests (0: never)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    stats = Stats(t0)
    end = t0 + args.seconds
    ws = [Worker(args, stats, end) for _ in range(args.conns)]
    for w in ws:
        w.start()
    for w in ws:
        w.join(args.seconds + args.timeout * 2 + 5)
    res = {
        "t0": t0, "t1": time.time(), "ok": stats.n_ok,
        "failed": len(stats.failures), "retried": stats.n_retried,
        "retries": stats.retries, "hits": stats.n_hits,
        "limited": stats.limited,
        "failures": stats.failures, "nodes": stats.nodes,
        "seconds": {str(k): v for k, v in sorted(stats.seconds.items())},
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print("load: %d ok, %d failed, %d retried" % (res["ok"], res["failed"],
                                                  res["retried"]), flush=True)


if __name__ == "__main__":
    main()
