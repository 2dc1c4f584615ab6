"""Request collapsing: concurrent misses for one key make one origin
request; the others wait for it and are served from it as it streams
(Cache-Status "collapsed"), or go to the origin themselves when it is not
storable."""

import threading
import time

import pytest

from lib.cache_origin import Resp, cache_status
from lib.net import RawConn, request_bytes


def fetch_all(port, path, n, results, headers=()):
    def one(i):
        try:
            with RawConn(port, timeout=30) as c:
                c.send(request_bytes("GET", path, headers=headers))
                results[i] = c.read_response(timeout=30)
        except Exception as e:  # recorded, asserted by the caller
            results[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)


@pytest.mark.parametrize("workers", [1, 2])
def test_hundred_concurrent_cold_requests_one_origin_request(cache_proxy, cache_origin,
                                                             workers):
    body = bytes(range(256)) * 400  # 100 KiB
    cache_origin.set("/cold", headers=[("Cache-Control", "max-age=3600")], body=body,
                     delay=1.0)
    g = cache_proxy(workers=workers)
    results = [None] * 100
    fetch_all(g.port, "/cold", 100, results)
    bad = [r for r in results if not hasattr(r, "status") or r.status != 200 or r.body != body]
    assert not bad, bad[:3]
    assert cache_origin.hits("/cold") == 1
    statuses = [cache_status(r) for r in results]
    assert sum(1 for s in statuses if s.get("stored")) == 1
    assert sum(1 for s in statuses if s.get("collapsed") or s.get("hit")) == 99


def test_not_storable_each_goes_itself(cache_proxy, cache_origin):
    cache_origin.set("/priv", headers=[("Cache-Control", "private")], body=b"p", delay=0.5)
    g = cache_proxy()
    results = [None] * 10
    fetch_all(g.port, "/priv", 10, results)
    assert all(getattr(r, "status", None) == 200 and r.body == b"p" for r in results)
    assert cache_origin.hits("/priv") == 10


def test_collapse_off(cache_proxy, cache_origin):
    cache_origin.set("/nc", headers=[("Cache-Control", "max-age=3600")], body=b"n", delay=0.5)
    g = cache_proxy(policy={"collapse": False})
    results = [None] * 5
    fetch_all(g.port, "/nc", 5, results)
    assert all(getattr(r, "status", None) == 200 for r in results)
    assert cache_origin.hits("/nc") == 5


def test_waiters_of_another_variant_fetch_themselves(cache_proxy, cache_origin):
    cache_origin.set("/var", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=3600"), ("Vary", "X-V")],
        (req.get("X-V") or "-").encode(), delay=0.5))
    g = cache_proxy()
    res_a, res_b = [None] * 3, [None] * 3
    ta = threading.Thread(target=fetch_all, args=(g.port, "/var", 3, res_a, [("X-V", "a")]))
    ta.start()
    time.sleep(0.1)
    fetch_all(g.port, "/var", 3, res_b, [("X-V", "b")])
    ta.join(30)
    assert all(r.body == b"a" for r in res_a)
    assert all(r.body == b"b" for r in res_b)
    assert cache_origin.hits("/var") >= 2


def test_leader_client_leaves(cache_proxy, cache_origin):
    """The client whose miss fetches goes away before the answer: the
    waiters still get one."""
    cache_origin.set("/lv", headers=[("Cache-Control", "max-age=3600")], body=b"lv", delay=0.6)
    g = cache_proxy()
    c = RawConn(g.port)
    c.send(request_bytes("GET", "/lv"))
    time.sleep(0.1)
    results = [None] * 3
    t = threading.Thread(target=fetch_all, args=(g.port, "/lv", 3, results))
    t.start()
    time.sleep(0.1)
    c.close()
    t.join(30)
    assert all(getattr(r, "status", None) == 200 and r.body == b"lv" for r in results)
