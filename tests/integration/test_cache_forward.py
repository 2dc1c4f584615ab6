"""The shared cache behind a forward proxy (forward.cache): absolute-form
GET/HEAD through the proxy are stored and answered like a route's, hits
answer before DNS and without the origin, keys never meet a site's for the
same URL, stale-while-revalidate becomes a foreground revalidation (there is
no route upstream for a background fetch), unsafe methods invalidate, PURGE
takes absolute URLs, and CONNECT tunnels are never cached."""

import json
import socket
import threading
import time

from lib.cache_origin import Resp, cache_status, http_date, validating
from lib.net import RawConn, free_port, get, request_bytes
from lib.proxy import forward_config


def via(g, target, method="GET", headers=()):
    """One absolute-form request through forward proxy <g>."""
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, 10, bytearray(), False
    with c:
        host = target.split("/")[2]
        c.send(request_bytes(method, target, host=host, headers=headers))
        return c.read_response(method)


def url(o, path):
    return "http://127.0.0.1:%d%s" % (o.port, path)


def start(gatehouse, forward=None, workers=1, extra=None, listeners=()):
    port = free_port()
    cfg = forward_config(port, forward if forward is not None else {"cache": True},
                         workers=workers, extra=extra)
    cfg["listeners"] += list(listeners)
    g = gatehouse(cfg, port)
    return g


def test_hit_through_forward_proxy(gatehouse, cache_origin):
    g = start(gatehouse)
    cache_origin.set("/a", headers=[("Cache-Control", "max-age=60")], body=b"A" * 3000)
    r1 = via(g, url(cache_origin, "/a"))
    r2 = via(g, url(cache_origin, "/a"))
    assert r1.status == r2.status == 200
    assert r1.body == r2.body == b"A" * 3000
    assert cache_status(r1)["fwd"] == "uri-miss"
    assert cache_status(r1).get("stored") is True
    assert cache_status(r2).get("hit") is True
    assert int(r2.get("Age")) >= 0
    h = via(g, url(cache_origin, "/a"), method="HEAD")
    assert h.status == 200 and h.body == b"" and cache_status(h).get("hit") is True
    assert h.get("Content-Length") == "3000"
    assert cache_origin.hits("/a") == 1


def test_hit_needs_no_origin(gatehouse, cache_origin):
    g = start(gatehouse)
    cache_origin.set("/k", headers=[("Cache-Control", "max-age=60")], body=b"kept")
    assert via(g, url(cache_origin, "/k")).body == b"kept"
    cache_origin.stop()
    r = via(g, url(cache_origin, "/k"))
    assert r.status == 200 and r.body == b"kept"
    assert cache_status(r).get("hit") is True
    # a miss for the stopped origin is an error, not a cached answer
    assert via(g, url(cache_origin, "/other")).status == 502


def test_off_unless_configured(gatehouse, cache_origin):
    g = start(gatehouse, forward={})
    cache_origin.set("/n", headers=[("Cache-Control", "max-age=60")], body=b"n")
    for _ in range(2):
        r = via(g, url(cache_origin, "/n"))
        assert r.status == 200 and cache_status(r) is None
    assert cache_origin.hits("/n") == 2


def test_forward_and_site_keys_apart(gatehouse, cache_origin, origin):
    """The forward proxy fetched http://127.0.0.1:<p>/s from the origin at
    that address; a site of a reverse listener, asked for the same URL
    (absolute form, Host 127.0.0.1:<p>), answers from its own upstream,
    which must not be served the forward proxy's copy, nor the reverse."""
    rport = free_port()
    site = {"listen": "127.0.0.1:%d" % rport,
            "sites": [{"default": True,
                       "routes": [{"path": "/", "upstream": "site", "cache": True}]}]}
    g = start(gatehouse, listeners=[site],
              extra={"upstreams": {"site": {"servers": ["127.0.0.1:%d" % origin.port]}}})
    cache_origin.set("/s", headers=[("Cache-Control", "max-age=60")], body=b"forward")
    target = url(cache_origin, "/s")
    assert via(g, target).body == b"forward"
    # the reverse listener: the same URL goes to its own upstream
    s = socket.create_connection(("127.0.0.1", rport), timeout=10)
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, 10, bytearray(), False
    with c:
        c.send(request_bytes("GET", target, host="127.0.0.1:%d" % cache_origin.port))
        r = c.read_response("GET")
    assert r.status == 200 and r.body != b"forward"
    assert cache_status(r)["fwd"] == "uri-miss"
    assert cache_status(via(g, target)).get("hit") is True
    assert cache_origin.hits("/s") == 1


def test_collapsed_fill(gatehouse, cache_origin):
    g = start(gatehouse, workers=2)
    cache_origin.set("/c", headers=[("Cache-Control", "max-age=60")],
                     body=b"c" * 20000, delay=0.5)
    out = []

    def one():
        out.append(via(g, url(cache_origin, "/c")))

    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert len(out) == 20
    assert all(r.status == 200 and r.body == b"c" * 20000 for r in out)
    assert cache_origin.hits("/c") == 1


def test_revalidation_304(gatehouse, cache_origin):
    g = start(gatehouse)
    cache_origin.set("/v", fn=validating([("Cache-Control", "max-age=1")], b"body-v"))
    assert via(g, url(cache_origin, "/v")).body == b"body-v"
    time.sleep(2.1)
    r = via(g, url(cache_origin, "/v"))
    assert r.status == 200 and r.body == b"body-v"
    assert cache_origin.last("/v").get("If-None-Match") == '"v1"'
    assert cache_status(r)["fwd"] == "stale" and cache_status(r)["fwd-status"] == "304"


def test_stale_while_revalidate_is_foreground(gatehouse, cache_origin):
    g = start(gatehouse, forward={"cache": {"stale_while_revalidate": "10m"}})
    cache_origin.set("/w", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=1, stale-while-revalidate=600"),
              ("Date", http_date())], b"v%d" % n))
    assert via(g, url(cache_origin, "/w")).body == b"v1"
    time.sleep(2.1)
    r = via(g, url(cache_origin, "/w"))
    # no stale answer: the proxy went to the origin itself, and waited
    assert r.body == b"v2"
    assert cache_status(r).get("hit") is None and cache_status(r)["fwd"] == "stale"
    assert cache_origin.hits("/w") == 2
    assert via(g, url(cache_origin, "/w")).body == b"v2"


def test_unsafe_method_invalidates(gatehouse, cache_origin):
    g = start(gatehouse)
    cache_origin.set("/i", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=60")], b"i%d" % n))
    cache_origin.set("/form", fn=lambda req, n: Resp(
        303, [("Location", "/i")], b""))
    assert via(g, url(cache_origin, "/i")).body == b"i1"
    assert via(g, url(cache_origin, "/i")).body == b"i1"
    r = via(g, url(cache_origin, "/i"), method="DELETE")
    assert r.status == 200
    assert via(g, url(cache_origin, "/i")).body == b"i3"
    # a POST elsewhere whose answer names it (Location, same origin)
    assert via(g, url(cache_origin, "/form"), method="POST").status == 303
    assert via(g, url(cache_origin, "/i")).body == b"i4"


def test_purge_absolute_urls(gatehouse, cache_origin):
    g = start(gatehouse)
    for p in ("/p/1", "/p/2", "/q"):
        cache_origin.set(p, headers=[("Cache-Control", "max-age=60")], body=p.encode())
        via(g, url(cache_origin, p))
    r = via(g, url(cache_origin, "/q"), method="PURGE")
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}
    r = via(g, url(cache_origin, "/p/*"), method="PURGE")
    assert r.status == 200 and json.loads(r.body) == {"purged": 2}
    for p in ("/p/1", "/p/2", "/q"):
        via(g, url(cache_origin, p))
        assert cache_origin.hits(p) == 2
    assert not cache_origin.reqs("/p/*")


def test_purge_acl(gatehouse, cache_origin):
    g = start(gatehouse, extra={"cache": {"purge": {"allow": ["10.0.0.0/8"]}}})
    cache_origin.set("/z", headers=[("Cache-Control", "max-age=60")], body=b"z")
    via(g, url(cache_origin, "/z"))
    r = via(g, url(cache_origin, "/z"), method="PURGE")
    assert r.status == 403
    assert cache_status(via(g, url(cache_origin, "/z"))).get("hit") is True


def test_connect_not_cached(gatehouse, cache_origin):
    g = start(gatehouse, forward={"cache": True,
                                  "connect_ports": [cache_origin.port]})
    cache_origin.set("/t", headers=[("Cache-Control", "max-age=60")], body=b"tunnel")
    auth = "127.0.0.1:%d" % cache_origin.port
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (auth, auth)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 200 "), head
        c = RawConn.__new__(RawConn)
        c.sock, c.timeout, c.buf, c.eof = s, 10, bytearray(), False
        with c:
            c.send(request_bytes("GET", "/t", host=auth))
            r = c.read_response("GET")
            assert r.body == b"tunnel" and cache_status(r) is None
    assert cache_origin.hits("/t") == 2
    # origin-form on a forward listener without sites: still refused
    assert get(g.port, "/t").status == 400


def test_waiters_go_themselves_when_the_fill_is_not_storable(gatehouse, cache_origin):
    """Collapsed waiters whose leader's response cannot be stored, or whose
    wait times out, each resolve and go to the origin themselves."""
    g = start(gatehouse, workers=2)
    cache_origin.set("/u", fn=lambda req, n: Resp(
        200, [("Cache-Control", "private")], b"u%d" % n, delay=0.5))
    out = []

    def one():
        out.append(via(g, url(cache_origin, "/u")))

    ts = [threading.Thread(target=one) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert len(out) == 6 and all(r.status == 200 for r in out)
    assert sorted(r.body for r in out) == sorted(b"u%d" % n for n in range(1, 7))
    assert cache_origin.hits("/u") == 6
    assert g.alive()


def test_stale_if_error_when_the_origin_is_down(gatehouse, cache_origin):
    g = start(gatehouse)
    cache_origin.set("/e", headers=[("Cache-Control", "max-age=1, stale-if-error=600"),
                                    ("ETag", '"e"')], body=b"old")
    assert via(g, url(cache_origin, "/e")).body == b"old"
    cache_origin.stop()
    time.sleep(2.1)
    r = via(g, url(cache_origin, "/e"))
    assert r.status == 200 and r.body == b"old"
    assert cache_status(r)["fwd"] == "stale" and "stale-if-error" in r.get("Cache-Status")
