"""A scriptable origin for the cache tests: each test says, per path, what
the origin answers, as a function of the request, and counts what reached
it.

    o = cache_origin()                       # fixture, see test_cache_*.py
    o.set("/a", headers=[("Cache-Control", "max-age=60")], body=b"x")
    o.set("/b", fn=lambda req, n: Resp(304) if req.get("If-None-Match") else
                                   Resp(200, [("ETag", '"1"')], b"y"))
    o.hits("/a")                             # requests the origin saw

A response is a Resp: status, headers (list of pairs), body (bytes), and
how to send it: chunked, delay before the head, pieces of the body sent
with pauses, close after, or cut short (send part of the body and close).
Date is added (now) unless the headers set it (or date=None).
"""

import email.utils
import socket
import threading
import time

from .origin import Origin, _sendall


def http_date(t=None):
    return email.utils.formatdate(time.time() if t is None else t, usegmt=True)


class Resp:
    def __init__(self, status=200, headers=None, body=b"", chunked=False,
                 delay=0.0, pieces=None, close=False, cut=None,
                 date=True, reason=None, drop=False):
        self.status = status
        self.headers = list(headers or [])
        self.body = body
        self.chunked = chunked
        self.delay = delay
        self.pieces = pieces      # [(bytes, pause_s), ...] instead of body
        self.close = close
        self.cut = cut            # send this many body bytes, then close
        self.date = date
        self.reason = reason
        self.drop = drop          # close without answering


REASONS = {200: "OK", 203: "Non-Authoritative Information", 204: "No Content",
           206: "Partial Content", 301: "Moved Permanently", 302: "Found",
           304: "Not Modified", 307: "Temporary Redirect", 404: "Not Found",
           410: "Gone", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}


class CacheOrigin(Origin):
    def __init__(self, name="cache-origin", port=0, **kw):
        super().__init__(name, port, **kw)
        self.scripts = {}
        self.seen = {}          # path -> [Request]
        self.slock = threading.Lock()

    # ---- the script ----

    def set(self, path, status=200, headers=None, body=b"", fn=None, **kw):
        """Answer <path> with a fixed Resp, or with fn(request, n) where n
        counts the requests for that path from 1."""
        if fn is None:
            fixed = Resp(status, headers, body, **kw)

            def fn(req, n):
                return fixed
        with self.slock:
            self.scripts[path] = fn

    def hits(self, path):
        with self.slock:
            return len(self.seen.get(path, []))

    def reqs(self, path):
        with self.slock:
            return list(self.seen.get(path, []))

    def last(self, path):
        reqs = self.reqs(path)
        return reqs[-1] if reqs else None

    # ---- serving ----

    def _handle(self, s, r, req):
        with self.slock:
            fn = self.scripts.get(req.path)
            if fn is not None:
                self.seen.setdefault(req.path, []).append(req)
                n = len(self.seen[req.path])
        if fn is None:
            return super()._handle(s, r, req)
        self._read_body(s, r, req)
        resp = fn(req, n)
        if resp.delay:
            time.sleep(resp.delay)
        if resp.drop:
            return False
        keep = self._keep(req) and not resp.close and resp.cut is None
        hs = list(resp.headers)
        names = {k.lower() for k, _ in hs}
        if resp.date and "date" not in names:
            hs.append(("Date", http_date()))
        body = resp.body if resp.pieces is None else b"".join(p for p, _ in resp.pieces)
        no_body = req.method == "HEAD" or resp.status in (204, 304) or resp.status < 200
        if resp.chunked:
            hs.append(("Transfer-Encoding", "chunked"))
        elif "content-length" not in names and resp.status not in (204, 304):
            hs.append(("Content-Length", str(len(body))))
        if not keep:
            hs.append(("Connection", "close"))
        head = ["HTTP/1.1 %d %s" % (resp.status, resp.reason or REASONS.get(resp.status, "X"))]
        head += ["%s: %s" % kv for kv in hs]
        _sendall(s, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            return keep
        pieces = resp.pieces if resp.pieces is not None else [(body, 0)]
        sent = 0
        for data, pause in pieces:
            if resp.cut is not None and sent + len(data) > resp.cut:
                data = data[:resp.cut - sent]
            if data:
                if resp.chunked:
                    _sendall(s, b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    _sendall(s, data)
                sent += len(data)
            if resp.cut is not None and sent >= resp.cut:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return False
            if pause:
                time.sleep(pause)
        if resp.chunked:
            _sendall(s, b"0\r\n\r\n")
        return keep


def cache_status(resp, name="gatehouse"):
    """The parameters of our entry in the response's Cache-Status (RFC
    9211) as a dict ({"hit": True, "ttl": "60"}), or None when absent."""
    entries = []
    for v in resp.get_all("Cache-Status"):
        entries += [e.strip() for e in v.split(",") if e.strip()]
    for e in reversed(entries):
        parts = [p.strip() for p in e.split(";")]
        if parts[0] != name:
            continue
        out = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            out[k] = v if eq else True
        return out
    return None


def validating(headers, body, etag='"v1"', last_modified=None, extra304=None):
    """A script function: 304 (with <extra304> fields) when the request's
    If-None-Match names <etag> or If-Modified-Since is not older than
    <last_modified>, else 200 with <headers> and <body>."""
    import email.utils as eu

    def fn(req, n):
        hs = list(headers)
        if etag:
            hs.append(("ETag", etag))
        if last_modified:
            hs.append(("Last-Modified", last_modified))
        inm = req.get("If-None-Match")
        ims = req.get("If-Modified-Since")
        match = False
        if inm is not None:
            match = etag is not None and etag in [t.strip() for t in inm.split(",")]
        elif ims is not None and last_modified:
            try:
                match = eu.parsedate_to_datetime(ims) >= eu.parsedate_to_datetime(last_modified)
            except (TypeError, ValueError):
                match = False
        if match:
            over = {k.lower() for k, _ in (extra304 or [])} | {"content-type"}
            return Resp(304, [h for h in hs if h[0].lower() not in over]
                        + list(extra304 or []))
        return Resp(200, hs, body)
    return fn
