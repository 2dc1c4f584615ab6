"""RFC 5861: stale-while-revalidate serves the stale response at once and
validates it in the background; stale-if-error serves it when the origin
fails (an error status or no answer at all). Route defaults apply when the
origin says nothing; must-revalidate forbids both (RFC 9111 §4.2.4)."""

import time

import pytest

from lib.cache_origin import Resp, cache_status, http_date
from lib.net import get, wait_until


def old(cc):
    return [("Cache-Control", cc), ("Date", http_date(time.time() - 60)), ("ETag", '"s"')]


def test_stale_while_revalidate(cache_proxy, cache_origin):
    def fn(req, n):
        if n == 1:
            return Resp(200, old("max-age=10, stale-while-revalidate=600"), b"stale")
        if req.get("If-None-Match") == '"s"':
            return Resp(304, [("ETag", '"s"'), ("Cache-Control", "max-age=3600"),
                              ("X-Fresh", "1")], delay=1.0)
        return Resp(200, [], b"unexpected")
    cache_origin.set("/swr", fn=fn)
    g = cache_proxy()
    get(g.port, "/swr")
    t0 = time.monotonic()
    r = get(g.port, "/swr")
    assert time.monotonic() - t0 < 0.8  # not waiting for the 1 s revalidation
    assert r.body == b"stale"
    st = cache_status(r)
    assert st["hit"] and int(st["ttl"]) < 0
    assert wait_until(lambda: cache_origin.hits("/swr") == 2, 5)
    assert cache_origin.last("/swr").get("If-None-Match") == '"s"'

    def updated():
        r = get(g.port, "/swr")
        return r.get("X-Fresh") == "1" and int(cache_status(r)["ttl"]) > 3000
    assert wait_until(updated, 5)
    assert cache_origin.hits("/swr") == 2  # one background check, not one per request


def test_swr_new_response_replaces(cache_proxy, cache_origin):
    def fn(req, n):
        if n == 1:
            return Resp(200, old("max-age=10, stale-while-revalidate=600"), b"v1")
        return Resp(200, [("Cache-Control", "max-age=3600"), ("ETag", '"t"')], b"v2")
    cache_origin.set("/swr2", fn=fn)
    g = cache_proxy()
    get(g.port, "/swr2")
    assert get(g.port, "/swr2").body == b"v1"
    assert wait_until(lambda: get(g.port, "/swr2").body == b"v2", 5)
    assert cache_origin.hits("/swr2") == 2


def test_swr_window_over(cache_proxy, cache_origin):
    cache_origin.set("/swr3", headers=old("max-age=10, stale-while-revalidate=5"), body=b"x")
    g = cache_proxy()
    get(g.port, "/swr3")
    r = get(g.port, "/swr3")  # stale by 50 s, window 5 s: validated first
    assert "hit" not in cache_status(r)
    assert cache_origin.hits("/swr3") == 2


@pytest.mark.parametrize("failure", ["500", "503", "drop"])
def test_stale_if_error(cache_proxy, cache_origin, failure):
    def fn(req, n):
        if n == 1:
            return Resp(200, old("max-age=10, stale-if-error=600"), b"old")
        if failure == "drop":
            return Resp(drop=True)
        return Resp(int(failure), [], b"origin error")
    cache_origin.set("/sie", fn=fn)
    g = cache_proxy()
    get(g.port, "/sie")
    r = get(g.port, "/sie")
    assert r.status == 200 and r.body == b"old"
    st = cache_status(r)
    assert st["fwd"] == "stale" and st["detail"] == "stale-if-error"
    if failure != "drop":
        assert st["fwd-status"] == failure


def test_stale_if_error_expired(cache_proxy, cache_origin):
    cache_origin.set("/sie2", fn=lambda req, n: Resp(
        200, old("max-age=10, stale-if-error=5"), b"old") if n == 1 else Resp(503, [], b"e"))
    g = cache_proxy()
    get(g.port, "/sie2")
    assert get(g.port, "/sie2").status == 503


def test_route_defaults(cache_proxy, cache_origin):
    cache_origin.set("/def", fn=lambda req, n: Resp(
        200, old("max-age=10"), b"old") if n == 1 else Resp(502, [], b"e"))
    g = cache_proxy(policy={"stale_if_error": "1h", "stale_while_revalidate": "0s"})
    get(g.port, "/def")
    r = get(g.port, "/def")
    assert r.status == 200 and r.body == b"old"


def test_must_revalidate_forbids(cache_proxy, cache_origin):
    cache_origin.set("/mr", fn=lambda req, n: Resp(
        200, old("max-age=10, must-revalidate, stale-if-error=600, stale-while-revalidate=600"),
        b"old") if n == 1 else Resp(503, [], b"e"))
    g = cache_proxy()
    get(g.port, "/mr")
    assert get(g.port, "/mr").status == 503
