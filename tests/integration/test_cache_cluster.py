"""A PURGE on one node reaches the caches of the other nodes of a cluster
through Redis publish/subscribe (cluster/purge.h): by URL, prefix and tag."""

import os
import shutil
import subprocess
import time

import pytest

from lib.net import free_port, get, port_accepts, wait_until
from lib.proxy import reverse_config

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture
def redis(tmp_path):
    if not os.path.exists(REDIS):
        pytest.skip("redis-server is not installed (scripts/deps.sh test)")
    port = free_port()
    p = subprocess.Popen([REDIS, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                          "--appendonly", "no", "--dir", str(tmp_path),
                          "--protected-mode", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: port_accepts(port, 0.2), 10)
    yield port
    p.terminate()
    p.wait(10)


def node(gatehouse, origin, redis_port, name):
    port = free_port()
    cfg = reverse_config(port, {"o": [origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "upstream": "o", "cache": True}]}],
        extra={"cluster": {"redis": "127.0.0.1:%d" % redis_port}})
    return gatehouse(cfg, port, name=name)


def prime(nodes, origin, paths, tags=None):
    for p in paths:
        hs = [("Cache-Control", "max-age=3600")] + list((tags or {}).get(p, []))
        origin.set(p, headers=hs, body=p.encode())
        for g in nodes:
            get(g.port, p)
            get(g.port, p)
    for p in paths:
        assert origin.hits(p) == len(nodes)


def cached(g, path):
    return "hit" in (get(g.port, path).get("Cache-Status") or "")


def test_purge_reaches_other_nodes(gatehouse, cache_origin, redis):
    a = node(gatehouse, cache_origin, redis, "a")
    b = node(gatehouse, cache_origin, redis, "b")
    time.sleep(0.5)  # the subscriptions are up
    prime([a, b], cache_origin, ["/one", "/dir/x", "/dir/y", "/t"],
          tags={"/t": [("Cache-Tag", "blue")]})
    assert get(a.port, "/one", method="PURGE").status == 200
    assert wait_until(lambda: not cached(b, "/one"), 3)
    assert get(a.port, "/dir/*", method="PURGE").status == 200
    assert wait_until(lambda: not cached(b, "/dir/x") and not cached(b, "/dir/y"), 3)
    assert get(b.port, "/", method="PURGE", headers=[("Cache-Tag", "blue")]).status == 200
    assert wait_until(lambda: not cached(a, "/t"), 3)
