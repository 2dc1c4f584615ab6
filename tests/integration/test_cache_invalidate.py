"""RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the
target URI, and the Location and Content-Location URIs of the same
origin; never another origin's."""

import pytest

from lib.cache_origin import Resp
from lib.net import get


def prime(g, origin, *paths):
    for p in paths:
        origin.set(p, fn=lambda req, n, p=p: Resp(200, [("Cache-Control", "max-age=3600")],
                                                 b"%s %s" % (req.method.encode(), p.encode())))
        get(g.port, p)
        get(g.port, p)
        assert origin.hits(p) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "FROBNICATE"])
def test_unsafe_invalidates(cache_proxy, cache_origin, method):
    g = cache_proxy()
    prime(g, cache_origin, "/i")
    r = get(g.port, "/i", method=method, headers=[("Content-Length", "0")])
    assert r.status == 200
    get(g.port, "/i")
    assert [q.method for q in cache_origin.reqs("/i")] == ["GET", method, "GET"]


@pytest.mark.parametrize("status", [404, 500])
def test_error_does_not_invalidate(cache_proxy, cache_origin, status):
    g = cache_proxy()
    prime(g, cache_origin, "/e")
    cache_origin.set("/e", fn=lambda req, n: Resp(status if req.method == "POST" else 200,
                                                  [("Cache-Control", "max-age=3600")], b"e"))
    get(g.port, "/e", method="POST", headers=[("Content-Length", "0")])
    get(g.port, "/e")
    assert [q.method for q in cache_origin.reqs("/e")] == ["GET", "POST"]


def test_location_and_content_location(cache_proxy, cache_origin):
    g = cache_proxy()
    prime(g, cache_origin, "/a", "/b", "/c", "/d")
    cache_origin.set("/form", status=201, headers=[
        ("Location", "/a"), ("Content-Location", "http://localhost/b"),
        ("X", "y")], body=b"")
    get(g.port, "/form", method="POST", headers=[("Content-Length", "0")])
    cache_origin.set("/form2", status=303, headers=[
        ("Location", "http://elsewhere.example/c"),
        ("Content-Location", "http://localhost:1/d")], body=b"")
    get(g.port, "/form2", method="POST", headers=[("Content-Length", "0")])
    for p in ("/a", "/b", "/c", "/d"):
        get(g.port, p)
    assert cache_origin.hits("/a") == 2 and cache_origin.hits("/b") == 2
    assert cache_origin.hits("/c") == 1 and cache_origin.hits("/d") == 1  # other origins


def test_invalidates_on_a_route_without_cache(gatehouse, cache_origin):
    """The POST may go through a route that does not cache; what it changes
    is still invalidated."""
    from lib.net import free_port
    from lib.proxy import reverse_config
    port = free_port()
    cfg = reverse_config(port, {"o": [cache_origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "upstream": "o", "cache": True},
        {"path": "/api/", "upstream": "o"}]}])
    g = gatehouse(cfg, port)
    prime(g, cache_origin, "/page")
    cache_origin.set("/api/edit", status=204, headers=[("Content-Location", "/page")])
    get(g.port, "/api/edit", method="POST", headers=[("Content-Length", "0")])
    get(g.port, "/page")
    assert cache_origin.hits("/page") == 2
