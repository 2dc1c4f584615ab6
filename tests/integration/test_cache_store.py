"""RFC 9111 §3: what a shared cache stores, and what of it (§3.1), with
Authorization (§3.5); must-understand (§5.2.2.3); incomplete responses
(§3.3) are never served as complete."""

import pytest

from lib.cache_origin import Resp, cache_status
from lib.net import RawConn, get, request_bytes


def twice(port, path, headers=()):
    a = get(port, path, headers=headers)
    b = get(port, path, headers=headers)
    return a, b


def test_fresh_response_is_stored_and_served(cache_proxy, cache_origin):
    cache_origin.set("/a", headers=[("Cache-Control", "max-age=60"),
                                    ("Content-Type", "text/plain")], body=b"hello")
    g = cache_proxy()
    a, b = twice(g.port, "/a")
    assert a.status == b.status == 200
    assert a.body == b.body == b"hello"
    assert cache_origin.hits("/a") == 1
    assert cache_status(a) == {"fwd": "uri-miss", "stored": True}
    st = cache_status(b)
    assert st["hit"] is True and int(st["ttl"]) > 50
    assert b.get("Age") is not None and int(b.get("Age")) >= 0
    assert b.get("Content-Type") == "text/plain"
    assert b.get("Content-Length") == "5"


@pytest.mark.parametrize("cc", ["no-store", "no-store, max-age=60",
                                "max-age=60, NO-STORE", "private, max-age=60",
                                "max-age=60, private"])
def test_not_stored(cache_proxy, cache_origin, cc):
    cache_origin.set("/n", headers=[("Cache-Control", cc)], body=b"x")
    g = cache_proxy()
    a, b = twice(g.port, "/n")
    assert a.status == b.status == 200
    assert cache_origin.hits("/n") == 2
    assert "stored" not in cache_status(a)


def test_private_with_fields_stores_the_rest(cache_proxy, cache_origin):
    cache_origin.set("/p", headers=[("Cache-Control", 'max-age=60, private="X-Secret"'),
                                    ("X-Secret", "s3cr3t"), ("X-Public", "yes")],
                     body=b"p")
    g = cache_proxy()
    a, b = twice(g.port, "/p")
    assert a.get("X-Secret") == "s3cr3t"  # the first answer is the origin's
    assert cache_origin.hits("/p") == 1
    assert b.get("X-Secret") is None and b.get("X-Public") == "yes"


def test_request_no_store(cache_proxy, cache_origin):
    cache_origin.set("/r", headers=[("Cache-Control", "max-age=60")], body=b"r")
    g = cache_proxy()
    get(g.port, "/r", headers=[("Cache-Control", "no-store")])
    get(g.port, "/r")
    assert cache_origin.hits("/r") == 2  # the first was not stored
    # a stored response may still answer a no-store request
    c = get(g.port, "/r", headers=[("Cache-Control", "no-store")])
    assert cache_origin.hits("/r") == 2 and cache_status(c)["hit"]


@pytest.mark.parametrize("cc,stored", [
    ("max-age=60", False),
    ("max-age=60, public", True),
    ("s-maxage=60", True),
    ("max-age=60, must-revalidate", True),
])
def test_authorization(cache_proxy, cache_origin, cc, stored):
    """§3.5: a response to a request with Authorization is stored only with
    public, s-maxage or must-revalidate."""
    cache_origin.set("/auth", headers=[("Cache-Control", cc)], body=b"secret")
    g = cache_proxy()
    h = [("Authorization", "Basic dXNlcjpwYXNz")]
    twice(g.port, "/auth", headers=h)
    assert cache_origin.hits("/auth") == (1 if stored else 2)


@pytest.mark.parametrize("status,headers,stored", [
    (404, [("Cache-Control", "max-age=60")], True),
    (410, [("Cache-Control", "max-age=60")], True),
    (500, [("Cache-Control", "max-age=60")], True),
    (302, [("Location", "/x")], False),               # no freshness
    (302, [("Location", "/x"), ("Cache-Control", "max-age=60")], True),
    (307, [("Location", "/x"), ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT")], True),
    (301, [("Location", "/x"), ("Last-Modified", "Thu, 01 Jan 2015 00:00:00 GMT")], True),
    (299, [("Cache-Control", "max-age=60")], True),
    (299, [("Cache-Control", "max-age=60, must-understand, no-store")], False),
    (200, [("Cache-Control", "max-age=60, must-understand, no-store")], True),
    (203, [("Cache-Control", "max-age=60")], True),
    (204, [("Cache-Control", "max-age=60")], True),
])
def test_status_codes(cache_proxy, cache_origin, status, headers, stored):
    cache_origin.set("/s", status=status, headers=headers,
                     body=b"" if status == 204 else b"body")
    g = cache_proxy()
    a, b = twice(g.port, "/s")
    assert a.status == b.status == status
    assert cache_origin.hits("/s") == (1 if stored else 2)
    if stored and status != 204:
        assert b.body == b"body"


def test_heuristic_needs_last_modified(cache_proxy, cache_origin):
    cache_origin.set("/h1", headers=[("Last-Modified", "Thu, 01 Jan 2015 00:00:00 GMT")],
                     body=b"h")
    cache_origin.set("/h2", body=b"h")  # no freshness, no validator
    g = cache_proxy()
    twice(g.port, "/h1")
    twice(g.port, "/h2")
    assert cache_origin.hits("/h1") == 1
    assert cache_origin.hits("/h2") == 2


def test_hop_by_hop_and_connection_fields_not_stored(cache_proxy, cache_origin):
    """§3.1 and RFC 9110 §7.6.1; Set-Cookie is stored (see docs/cache.md)."""
    cache_origin.set("/hop", headers=[("Cache-Control", "max-age=60"),
                                      ("Connection", "X-Hop"), ("X-Hop", "1"),
                                      ("Keep-Alive", "timeout=5"),
                                      ("Proxy-Authenticate", "Basic"),
                                      ("X-End", "2"), ("Set-Cookie", "a=b")],
                     body=b"hop")
    g = cache_proxy()
    a, b = twice(g.port, "/hop")
    assert cache_status(b)["hit"]
    for resp in (b,):
        assert resp.get("X-Hop") is None
        assert resp.get("Keep-Alive") is None
        assert resp.get("Proxy-Authenticate") is None
    assert b.get("X-End") == "2" and b.get("Set-Cookie") == "a=b"


def test_post_not_stored(cache_proxy, cache_origin):
    cache_origin.set("/post", headers=[("Cache-Control", "max-age=60")], body=b"p")
    g = cache_proxy()
    get(g.port, "/post", method="POST", body=b"", headers=[("Content-Length", "0")])
    get(g.port, "/post")
    assert cache_origin.hits("/post") == 2
    assert [r.method for r in cache_origin.reqs("/post")] == ["POST", "GET"]


def test_head_from_stored_get(cache_proxy, cache_origin):
    cache_origin.set("/hd", headers=[("Cache-Control", "max-age=60")], body=b"12345")
    g = cache_proxy()
    h1 = get(g.port, "/hd", method="HEAD")  # a HEAD miss is forwarded
    assert h1.status == 200 and cache_origin.last("/hd").method == "HEAD"
    get(g.port, "/hd")
    h2 = get(g.port, "/hd", method="HEAD")
    assert cache_origin.hits("/hd") == 2
    assert h2.status == 200 and h2.body == b"" and h2.get("Content-Length") == "5"
    assert cache_status(h2)["hit"]


def test_cut_body_never_served(cache_proxy, cache_origin):
    """§3.3: an incomplete response is not served as complete."""
    cache_origin.set("/cut", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=60")], b"x" * 100000, cut=50000 if n == 1 else None))
    g = cache_proxy()
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/cut"))
        with pytest.raises(Exception):
            c.read_response()
    r = get(g.port, "/cut")
    assert r.status == 200 and r.body == b"x" * 100000
    assert cache_origin.hits("/cut") == 2


def test_max_object(cache_proxy, cache_origin):
    cache_origin.set("/big", headers=[("Cache-Control", "max-age=60")], body=b"b" * 300000)
    cache_origin.set("/bigc", headers=[("Cache-Control", "max-age=60")],
                     body=b"c" * 300000, chunked=True)
    g = cache_proxy(cache={"max_object": "100KiB"})
    for p in ("/big", "/bigc"):
        a, b = twice(g.port, p)
        assert len(a.body) == len(b.body) == 300000
        assert cache_origin.hits(p) == 2


def test_pipelined_hits(cache_proxy, cache_origin):
    cache_origin.set("/pl", headers=[("Cache-Control", "max-age=60")], body=b"pipe")
    g = cache_proxy()
    get(g.port, "/pl")
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/pl") * 3 + request_bytes("GET", "/other"))
        rs = [c.read_response() for _ in range(4)]
    assert [r.body for r in rs[:3]] == [b"pipe"] * 3
    assert all(cache_status(r)["hit"] for r in rs[:3])
    assert rs[3].status == 200 and cache_origin.hits("/pl") == 1


def test_http10_keepalive_hit(cache_proxy, cache_origin):
    cache_origin.set("/k10", headers=[("Cache-Control", "max-age=60")], body=b"k")
    g = cache_proxy()
    get(g.port, "/k10")
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/k10", version="HTTP/1.0",
                             headers=[("Connection", "keep-alive")]))
        r = c.read_response()
        assert r.get("Connection") == "keep-alive" and r.body == b"k"
        c.send(request_bytes("GET", "/k10", version="HTTP/1.0"))
        r = c.read_response()
        assert r.get("Connection") == "close"
        assert c.closed_within(2)
