"""RFC 9211 Cache-Status on every response that passed through the cache:
hit (with ttl), fwd=uri-miss/vary-miss/stale/request/method, fwd-status,
stored, collapsed; appended after an inner cache's entry."""

import time

import pytest

from lib.cache_origin import Resp, http_date, validating
from lib.net import get


def raw_status(r):
    return ", ".join(r.get_all("Cache-Status"))


def test_sequence(cache_proxy, cache_origin):
    cache_origin.set("/cs", fn=validating([("Cache-Control", "max-age=3600"),
                                           ("Vary", "X-V")], b"cs"))
    g = cache_proxy()
    assert raw_status(get(g.port, "/cs")) == "gatehouse; fwd=uri-miss; stored"
    assert raw_status(get(g.port, "/cs")).startswith("gatehouse; hit; ttl=")
    assert raw_status(get(g.port, "/cs", headers=[("X-V", "b")])) == \
        "gatehouse; fwd=vary-miss; stored"
    assert raw_status(get(g.port, "/cs", headers=[("Cache-Control", "no-cache")])) \
        .startswith("gatehouse; fwd=request; fwd-status=304; ttl=")
    r = get(g.port, "/cs", method="POST", headers=[("Content-Length", "0")])
    assert raw_status(r) == "gatehouse; fwd=method"


def test_stale_revalidated(cache_proxy, cache_origin):
    cache_origin.set("/st", fn=validating([("Cache-Control", "max-age=10"),
                                           ("Date", http_date(time.time() - 60))], b"x"))
    g = cache_proxy()
    get(g.port, "/st")
    assert raw_status(get(g.port, "/st")).startswith("gatehouse; fwd=stale; fwd-status=304")


def test_not_stored_says_why(cache_proxy, cache_origin):
    cache_origin.set("/ns", headers=[("Cache-Control", "no-store")], body=b"n")
    g = cache_proxy()
    assert raw_status(get(g.port, "/ns")) == "gatehouse; fwd=uri-miss; detail=no-store"


def test_appended_after_inner_cache(cache_proxy, cache_origin):
    cache_origin.set("/in", headers=[("Cache-Control", "max-age=3600"),
                                     ("Cache-Status", "OriginCache; hit")], body=b"i")
    g = cache_proxy()
    r = get(g.port, "/in")
    assert r.get_all("Cache-Status") == ["OriginCache; hit", "gatehouse; fwd=uri-miss; stored"]
    r = get(g.port, "/in")
    st = r.get_all("Cache-Status")
    assert st[0] == "OriginCache; hit" and st[-1].startswith("gatehouse; hit")


def test_route_without_cache_has_none(gatehouse, cache_origin):
    from lib.net import free_port
    from lib.proxy import reverse_config
    port = free_port()
    cfg = reverse_config(port, {"o": [cache_origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/c/", "upstream": "o", "cache": True}, {"path": "/", "upstream": "o"}]}])
    g = gatehouse(cfg, port)
    cache_origin.set("/plain", headers=[("Cache-Control", "max-age=60")], body=b"p")
    r = get(g.port, "/plain")
    assert r.get("Cache-Status") is None and r.get("Age") is None


@pytest.mark.parametrize("name", ["edge-1"])
def test_name_is_via_name(gatehouse, cache_origin, name):
    from lib.net import free_port
    from lib.proxy import reverse_config
    port = free_port()
    cfg = reverse_config(port, {"o": [cache_origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "upstream": "o", "cache": True}]}], extra={"via_name": name})
    g = gatehouse(cfg, port)
    cache_origin.set("/n", headers=[("Cache-Control", "max-age=60")], body=b"p")
    get(g.port, "/n")
    r = get(g.port, "/n")
    assert r.get("Cache-Status").startswith(name + "; hit")
    assert r.get("Via") == "1.1 " + name
