"""Ranges (RFC 9110 §14) and the cache: a single range of a complete
stored 200 is answered 206 from the cache, an unsatisfiable one 416,
several ranges the whole 200; If-Range (§13.1.5) guards them; a Range
request that misses is forwarded and a 206 from the origin is passed
through without being stored."""

import time

import pytest

from lib.cache_origin import Resp, cache_status, http_date
from lib.net import get

BODY = bytes(range(256)) * 40  # 10240 bytes
LM = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.fixture
def stored(cache_proxy, cache_origin):
    cache_origin.set("/r", headers=[("Cache-Control", "max-age=3600"), ("ETag", '"r1"'),
                                    ("Last-Modified", LM)],
                     body=BODY)
    g = cache_proxy()
    get(g.port, "/r")
    return g


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-99", 0, 100),
    ("bytes=100-", 100, len(BODY)),
    ("bytes=-10", len(BODY) - 10, len(BODY)),
    ("bytes=10000-99999", 10000, len(BODY)),
    ("bytes=5-5", 5, 6),
    ("bytes=-99999", 0, len(BODY)),
])
def test_single_range(stored, cache_origin, rng, start, end):
    r = get(stored.port, "/r", headers=[("Range", rng)])
    assert r.status == 206
    assert r.body == BODY[start:end]
    assert r.get("Content-Range") == "bytes %d-%d/%d" % (start, end - 1, len(BODY))
    assert cache_status(r)["hit"] and cache_origin.hits("/r") == 1


@pytest.mark.parametrize("rng", ["bytes=20000-", "bytes=10240-10250", "bytes=-0"])
def test_unsatisfiable(stored, rng):
    r = get(stored.port, "/r", headers=[("Range", rng)])
    assert r.status == 416
    assert r.get("Content-Range") == "bytes */%d" % len(BODY)


@pytest.mark.parametrize("rng", ["bytes=0-1,5-6", "bytes=abc", "lines=1-2", "bytes=9-3"])
def test_ignored(stored, rng):
    r = get(stored.port, "/r", headers=[("Range", rng)])
    assert r.status == 200 and r.body == BODY


@pytest.mark.parametrize("ir,status", [
    ('"r1"', 206), ('"other"', 200), ('W/"r1"', 200),
    (LM, 206), (http_date(time.time()), 200),
])
def test_if_range(stored, ir, status):
    r = get(stored.port, "/r", headers=[("Range", "bytes=0-9"), ("If-Range", ir)])
    assert r.status == status


def test_range_miss_passes_206_through(cache_proxy, cache_origin):
    def fn(req, n):
        rng = req.get("Range")
        if rng == "bytes=0-3":
            return Resp(206, [("Content-Range", "bytes 0-3/10"),
                              ("Cache-Control", "max-age=3600")], b"0123")
        return Resp(200, [("Cache-Control", "max-age=3600")], b"0123456789")
    cache_origin.set("/p", fn=fn)
    g = cache_proxy()
    r = get(g.port, "/p", headers=[("Range", "bytes=0-3")])
    assert r.status == 206 and r.body == b"0123"
    assert cache_origin.last("/p").get("Range") == "bytes=0-3"
    r = get(g.port, "/p")
    assert r.status == 200 and r.body == b"0123456789"
    assert cache_origin.hits("/p") == 2  # the 206 was not stored
    r = get(g.port, "/p", headers=[("Range", "bytes=2-4")])
    assert r.status == 206 and r.body == b"234" and cache_origin.hits("/p") == 2


def test_ranges_on_one_connection(stored):
    """Exactly the range's bytes go out: a keep-alive connection carries
    the next response intact (regression: the bytes after the range were
    written too)."""
    from lib.net import RawConn, request_bytes
    with RawConn(stored.port) as c:
        c.send(request_bytes("GET", "/r", headers=[("Range", "bytes=10-19")]) +
               request_bytes("GET", "/r", headers=[("Range", "bytes=-5")]) +
               request_bytes("GET", "/r"))
        a, b, whole = c.read_response(), c.read_response(), c.read_response()
    assert a.status == 206 and a.body == BODY[10:20]
    assert b.status == 206 and b.body == BODY[-5:]
    assert whole.status == 200 and whole.body == BODY
