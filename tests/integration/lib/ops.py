"""Helpers for the operations tests: the admin listener, a bounded load
generator with keep-alive clients, and config files rewritten for reloads."""

import http.client
import json
import os
import threading
import time

from .net import HOST, free_port
from .proxy import reverse_config, to_yaml


def admin_get(port, path, headers=None, timeout=5.0):
    """GET <path> on the admin listener: (status, headers dict lower-case,
    body bytes)."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def status(port):
    st, _, body = admin_get(port, "/status")
    assert st == 200, (st, body)
    return json.loads(body)


def ops_config(port, upstreams, admin_port=None, admin=None, security=None,
               **kw):
    """reverse_config() plus an admin section on <admin_port>. Gatehouse
    keeps running as root here (security.run_as_root): reload and log
    reopening read and create files in the test's directory, which only root
    may enter, and started as root Gatehouse would otherwise drop to nobody
    (docs/security.md). <security> replaces that block."""
    cfg = reverse_config(port, upstreams, **kw)
    cfg["security"] = security or {"run_as_root": True}
    if admin_port is not None:
        a = {"listen": "%s:%d" % (HOST, admin_port)}
        a.update(admin or {})
        cfg["admin"] = a
    return cfg


def write_config(g, cfg):
    """Rewrites g's config file (a dict, with g's log paths kept)."""
    cfg = dict(cfg)
    log = dict(cfg.get("log") or {})
    log.setdefault("access", g.access_log)
    log.setdefault("error", g.error_log)
    log.setdefault("level", "info")
    cfg["log"] = log
    # as Gatehouse() does: tests run as root keep root (docs/security.md)
    if "security" not in cfg and os.geteuid() == 0:
        cfg["security"] = {"run_as_root": True}
    with open(g.config_path, "w") as f:
        f.write(to_yaml(cfg) + "\n")


class Load:
    """<clients> threads, each with its own keep-alive connection, sending
    GET <path> back to back until stop() or <duration> seconds. A response
    with "Connection: close" makes the client open a new connection for the
    next request (as any HTTP client does); anything else that goes wrong
    (reset, early close, non-2xx, a short body) is a failure, kept with its
    reason."""

    def __init__(self, port, path="/", clients=4, duration=30.0,
                 max_requests=None, check=None):
        self.port = port
        self.path = path
        self.clients = clients
        self.duration = duration
        self.max_requests = max_requests
        self.check = check
        self.ok = 0
        self.failed = []
        self.closes = 0
        self.bodies = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _client(self):
        deadline = time.monotonic() + self.duration
        conn = None
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.max_requests is not None and n >= self.max_requests:
                break
            n += 1
            if conn is None:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
            try:
                conn.request("GET", self.path)
                r = conn.getresponse()
                body = r.read()
                close = (r.getheader("connection") or "").lower() == "close"
                good = 200 <= r.status < 300 and (self.check is None or
                                                  self.check(body))
                with self._lock:
                    if good:
                        self.ok += 1
                        self.bodies[body] = self.bodies.get(body, 0) + 1
                    else:
                        self.failed.append("status %d body %r" % (r.status, body[:80]))
                    if close:
                        self.closes += 1
                if close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self._lock:
                    self.failed.append("%s: %s" % (type(e).__name__, e))
                try:
                    conn.close()
                except OSError:
                    pass
                conn = None
        if conn is not None:
            conn.close()

    def start(self):
        for _ in range(self.clients):
            t = threading.Thread(target=self._client, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout=20.0):
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        return self

    def wait(self, timeout=60.0):
        for t in self._threads:
            t.join(timeout)
        return self


__all__ = ["admin_get", "status", "ops_config", "write_config", "Load",
           "free_port"]
