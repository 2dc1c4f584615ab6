"""RFC 9111 §4.1: secondary keys. A stored response is used only when the
fields its Vary names match the request's (after whitespace
normalisation); Vary: * never matches; variants live side by side."""

import pytest

from lib.cache_origin import Resp, cache_status
from lib.net import get


def vary_origin(origin, vary, field):
    origin.set("/v", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=3600"), ("Vary", vary)],
        ("%s=%s" % (field, req.get(field))).encode()))


def test_variants(cache_proxy, cache_origin):
    vary_origin(cache_origin, "Accept-Language", "Accept-Language")
    g = cache_proxy()
    en = [("Accept-Language", "en")]
    fr = [("Accept-Language", "fr")]
    assert get(g.port, "/v", headers=en).body == b"Accept-Language=en"
    r = get(g.port, "/v", headers=fr)
    assert r.body == b"Accept-Language=fr"
    assert cache_status(r)["fwd"] == "vary-miss"
    assert get(g.port, "/v", headers=en).body == b"Accept-Language=en"
    assert get(g.port, "/v", headers=fr).body == b"Accept-Language=fr"
    r = get(g.port, "/v")  # absent is another variant
    assert r.body == b"Accept-Language=None"
    assert cache_origin.hits("/v") == 3


@pytest.mark.parametrize("a,b,same", [
    ("gzip, br", "gzip,br", True),
    ("gzip,  br", " gzip , br ", True),
    ("gzip, br", "br, gzip", False),
    ("gzip", "GZIP", False),
    ("", None, False),          # empty is not absent
])
def test_normalisation(cache_proxy, cache_origin, a, b, same):
    vary_origin(cache_origin, "accept-encoding", "Accept-Encoding")
    g = cache_proxy()
    get(g.port, "/v", headers=[("Accept-Encoding", a)])
    get(g.port, "/v", headers=[("Accept-Encoding", b)] if b is not None else [])
    assert cache_origin.hits("/v") == (1 if same else 2)


def test_two_fields_and_multiple_lines(cache_proxy, cache_origin):
    cache_origin.set("/v2", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=3600"), ("Vary", "X-A"), ("Vary", "X-B")], b"v2"))
    g = cache_proxy()
    get(g.port, "/v2", headers=[("X-A", "1"), ("X-B", "2")])
    get(g.port, "/v2", headers=[("X-B", "2"), ("X-A", "1")])
    assert cache_origin.hits("/v2") == 1
    get(g.port, "/v2", headers=[("X-A", "1"), ("X-B", "3")])
    assert cache_origin.hits("/v2") == 2
    # two field lines of one name are one list
    get(g.port, "/v2", headers=[("X-A", "1"), ("X-A", "9"), ("X-B", "2")])
    get(g.port, "/v2", headers=[("X-A", "1, 9"), ("X-B", "2")])
    assert cache_origin.hits("/v2") == 3


def test_vary_star_never_matches(cache_proxy, cache_origin):
    cache_origin.set("/star", headers=[("Cache-Control", "max-age=3600"), ("Vary", "*")],
                     body=b"s")
    g = cache_proxy()
    get(g.port, "/star")
    get(g.port, "/star")
    assert cache_origin.hits("/star") == 2


def test_new_vary_replaces_old_variants(cache_proxy, cache_origin):
    """The origin changes which fields select: the old variants go."""
    def fn(req, n):
        hs = [("Cache-Control", "max-age=3600")]
        if n == 1:
            hs.append(("Vary", "X-Old"))
        elif n == 2:
            hs.append(("Vary", "X-New"))
        return Resp(200, hs, b"%d" % n)
    cache_origin.set("/chg", fn=fn)
    g = cache_proxy()
    get(g.port, "/chg", headers=[("X-Old", "a")])
    get(g.port, "/chg", headers=[("X-Old", "b")])
    r = get(g.port, "/chg", headers=[("X-Old", "a")])
    assert r.body == b"2"
