"""PURGE (admin only, by client address): one URL (every variant), a
prefix ("PURGE /static/*"), or tags named by the responses' Cache-Tag or
Surrogate-Key fields; from memory and disk."""

import json
import os

import pytest

from lib.cache_origin import Resp
from lib.net import get


def prime(g, origin, paths, tags=None):
    for p in paths:
        hs = [("Cache-Control", "max-age=3600")]
        if tags and p in tags:
            hs += tags[p]
        origin.set(p, headers=hs, body=p.encode())
        get(g.port, p)
        get(g.port, p)
        assert origin.hits(p) == 1


def purge(g, target, headers=()):
    r = get(g.port, target, method="PURGE", headers=headers)
    return r.status, (json.loads(r.body)["purged"] if r.status == 200 else None)


def test_purge_url(cache_proxy, cache_origin):
    g = cache_proxy()
    prime(g, cache_origin, ["/a", "/b"])
    assert purge(g, "/a") == (200, 1)
    assert purge(g, "/a") == (200, 0)
    get(g.port, "/a")
    get(g.port, "/b")
    assert cache_origin.hits("/a") == 2 and cache_origin.hits("/b") == 1
    assert cache_origin.count() == 3  # PURGE never reached the origin


def test_purge_all_variants(cache_proxy, cache_origin):
    cache_origin.set("/v", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=3600"), ("Vary", "X-V")], b"v"))
    g = cache_proxy()
    for v in ("1", "2", "3"):
        get(g.port, "/v", headers=[("X-V", v)])
    assert purge(g, "/v") == (200, 3)


def test_purge_prefix(cache_proxy, cache_origin):
    g = cache_proxy()
    prime(g, cache_origin, ["/static/a.css", "/static/js/b.js", "/staticky", "/other"])
    assert purge(g, "/static/*") == (200, 2)
    for p in ["/static/a.css", "/static/js/b.js", "/staticky", "/other"]:
        get(g.port, p)
    assert [cache_origin.hits(p) for p in
            ["/static/a.css", "/static/js/b.js", "/staticky", "/other"]] == [2, 2, 1, 1]


@pytest.mark.parametrize("field", ["Cache-Tag", "Surrogate-Key"])
def test_purge_tag(cache_proxy, cache_origin, field):
    g = cache_proxy()
    sep = ", " if field == "Cache-Tag" else " "
    prime(g, cache_origin, ["/p1", "/p2", "/p3"], tags={
        "/p1": [(field, sep.join(["product-1", "all"]))],
        "/p2": [(field, sep.join(["product-2", "all"]))],
        "/p3": [(field, "product-3")]})
    assert purge(g, "/", [(field, "product-2")]) == (200, 1)
    assert purge(g, "/", [(field, "all" + sep + "product-3")]) == (200, 2)
    for p in ("/p1", "/p2", "/p3"):
        get(g.port, p)
        assert cache_origin.hits(p) == 2


def test_purge_denied(cache_proxy, cache_origin):
    g = cache_proxy(cache={"purge": {"allow": ["10.0.0.0/8", "::1/128"]}})
    prime(g, cache_origin, ["/x"])
    r = get(g.port, "/x", method="PURGE")
    assert r.status == 403
    assert "http_request_denied" in r.get("Proxy-Status")
    get(g.port, "/x")
    assert cache_origin.hits("/x") == 1  # still cached


def test_purge_reaches_disk(cache_proxy, cache_origin, tmp_path):
    disk = tmp_path / "c"
    cfg = {"disk": {"path": str(disk), "size": "64MiB"}}
    g = cache_proxy(cache=cfg, name="one")
    prime(g, cache_origin, ["/d"])
    from lib.net import wait_until
    assert wait_until(lambda: any(f for d, _, fs in os.walk(disk) if not d.endswith("tmp")
                                  for f in fs), 10)
    assert purge(g, "/d") == (200, 2)  # the memory copy and the file
    assert g.stop() == 0
    g.checked = True
    g2 = cache_proxy(cache=cfg, name="two")
    get(g2.port, "/d")
    assert cache_origin.hits("/d") == 2
