"""The cache in /metrics and /status (the admin listener): lookups by
result, and the store's size."""

import json
import time

from lib.cache_origin import Resp, http_date
from lib.net import free_port, get, wait_until
from lib.ops import admin_get, ops_config


def metric(aport, name, labels=""):
    st, _, body = admin_get(aport, "/metrics")
    assert st == 200
    want = name + ("{%s}" % labels if labels else "")
    for line in body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def test_cache_metrics(gatehouse, cache_origin):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"o": [cache_origin.port]}, admin_port=aport, workers=2,
                     sites=[{"default": True, "routes": [{"path": "/", "upstream": "o",
                                                          "cache": True}]}])
    g = gatehouse(cfg, port)
    cache_origin.set("/m", headers=[("Cache-Control", "max-age=3600")], body=b"m" * 1000)
    cache_origin.set("/s", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=1, stale-while-revalidate=600"),
              ("Date", http_date(time.time() - 60)), ("ETag", '"s"')], b"s"))
    get(port, "/m")                       # miss
    for _ in range(3):
        get(port, "/m")                   # hits
    get(port, "/s")                       # miss
    get(port, "/s")                       # stale (served while revalidated)
    req = 'result="%s"'
    assert metric(aport, "gatehouse_cache_requests_total", req % "hit") == 3
    assert metric(aport, "gatehouse_cache_requests_total", req % "miss") == 2
    assert metric(aport, "gatehouse_cache_requests_total", req % "stale") == 1
    assert wait_until(lambda: (metric(aport, "gatehouse_cache_stored_objects") or 0) >= 2, 5)
    assert metric(aport, "gatehouse_cache_stored_bytes") > 1000
    st, _, body = admin_get(aport, "/status")
    c = json.loads(body)["cache"]
    assert c["hits"] == 3 and c["misses"] == 2 and c["stale"] == 1
    assert abs(c["hit_ratio"] - 4 / 6) < 0.01
    assert g.alive()
