"""RFC 9111 §5.2.1 request directives: no-cache, no-store, max-age,
max-stale, min-fresh, only-if-cached; Pragma: no-cache from HTTP/1.0
clients (§5.4)."""

import time

import pytest

from lib.cache_origin import cache_status, http_date, validating
from lib.net import RawConn, get, request_bytes


def prime(cache_proxy, origin, cc="max-age=3600", date_ago=0):
    hs = [("Cache-Control", cc)]
    if date_ago:
        hs.append(("Date", http_date(time.time() - date_ago)))
    origin.set("/q", fn=validating(hs, b"body"))
    g = cache_proxy()
    first = get(g.port, "/q")
    assert first.status == 200 and origin.hits("/q") == 1
    return g


def test_no_cache_revalidates(cache_proxy, cache_origin):
    g = prime(cache_proxy, cache_origin)
    r = get(g.port, "/q", headers=[("Cache-Control", "no-cache")])
    assert r.status == 200 and r.body == b"body"
    assert cache_origin.hits("/q") == 2
    assert cache_origin.last("/q").get("If-None-Match") == '"v1"'
    st = cache_status(r)
    assert st["fwd"] == "request" and st["fwd-status"] == "304"


def test_pragma_no_cache_http10(cache_proxy, cache_origin):
    g = prime(cache_proxy, cache_origin)
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/q", headers=[("Pragma", "no-cache")],
                             version="HTTP/1.0"))
        r = c.read_response()
    assert r.status == 200 and r.body == b"body"
    assert cache_origin.hits("/q") == 2
    # with Cache-Control present, Pragma is ignored
    get(g.port, "/q", headers=[("Pragma", "no-cache"), ("Cache-Control", "max-age=3600")])
    assert cache_origin.hits("/q") == 2


@pytest.mark.parametrize("cc,date_ago,forwarded", [
    ("max-age=0", 0, False),          # age 0 <= 0
    ("max-age=0", 5, True),
    ("max-age=10", 5, False),
    ("max-age=10", 60, True),
    ("min-fresh=60", 0, False),       # 3600 s left
    ("min-fresh=4000", 0, True),
])
def test_max_age_min_fresh(cache_proxy, cache_origin, cc, date_ago, forwarded):
    g = prime(cache_proxy, cache_origin, date_ago=date_ago)
    r = get(g.port, "/q", headers=[("Cache-Control", cc)])
    assert r.status == 200 and r.body == b"body"
    assert cache_origin.hits("/q") == (2 if forwarded else 1)


@pytest.mark.parametrize("cc,forwarded", [
    ("max-stale", False),
    ("max-stale=100", False),         # stale by 40 s
    ("max-stale=10", True),
    ("", True),
])
def test_max_stale(cache_proxy, cache_origin, cc, forwarded):
    g = prime(cache_proxy, cache_origin, cc="max-age=20", date_ago=60)
    assert cache_origin.hits("/q") == 1
    r = get(g.port, "/q", headers=[("Cache-Control", cc)] if cc else [])
    assert r.status == 200 and r.body == b"body"
    assert cache_origin.hits("/q") == (2 if forwarded else 1)
    if not forwarded:
        assert int(cache_status(r)["ttl"]) < 0   # served stale, and says so


@pytest.mark.parametrize("rcc", ["max-age=20, must-revalidate", "max-age=20, proxy-revalidate",
                                 "s-maxage=20", "max-age=20, no-cache"])
def test_max_stale_not_allowed(cache_proxy, cache_origin, rcc):
    """§4.2.4: these forbid serving stale, whatever the client accepts."""
    g = prime(cache_proxy, cache_origin, cc=rcc, date_ago=60)
    get(g.port, "/q", headers=[("Cache-Control", "max-stale")])
    assert cache_origin.hits("/q") == 2


def test_only_if_cached(cache_proxy, cache_origin):
    g = prime(cache_proxy, cache_origin)
    r = get(g.port, "/q", headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 200 and cache_status(r)["hit"]
    r = get(g.port, "/other", headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 504
    assert cache_status(r)["detail"] == "only-if-cached"
    assert cache_origin.count() == 1  # nothing else reached the origin


def test_only_if_cached_stale(cache_proxy, cache_origin):
    g = prime(cache_proxy, cache_origin, cc="max-age=20", date_ago=60)
    r = get(g.port, "/q", headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 504
    r = get(g.port, "/q", headers=[("Cache-Control", "only-if-cached, max-stale")])
    assert r.status == 200 and r.body == b"body"
    assert cache_origin.hits("/q") == 1
