"""The cache across a reload (SIGHUP): the store is the process's, so what
is cached stays cached under the new configuration; a stale-while-revalidate
fetch in flight during the reload finishes on the generation it started on."""

import signal
import time

from lib.cache_origin import Resp, cache_status, http_date
from lib.net import free_port, get, wait_until
from lib.ops import ops_config, status, write_config


def test_cache_survives_reload(gatehouse, cache_origin):
    port, aport = free_port(), free_port()

    def cfg(extra_route):
        routes = [{"path": "/", "upstream": "o", "cache": {"stale_while_revalidate": "60s"}}]
        if extra_route:
            routes.append({"exact": "/health", "return": {"status": 200, "body": "ok"}})
        return ops_config(port, {"o": [cache_origin.port]}, admin_port=aport,
                          sites=[{"default": True, "routes": routes}])

    cache_origin.set("/kept", headers=[("Cache-Control", "max-age=3600")], body=b"kept")
    cache_origin.set("/swr", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=1"), ("Date", http_date(time.time() - 30)),
              ("ETag", '"s"')] if n == 1 else [("Cache-Control", "max-age=3600"), ("ETag", '"s2"')],
        b"v%d" % n, delay=0 if n == 1 else 1.0))
    g = gatehouse(cfg(False), port)
    get(port, "/kept")
    get(port, "/swr")
    assert get(port, "/swr").body == b"v1"  # stale; a background fetch starts (1 s)
    write_config(g, cfg(True))
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: status(aport)["config"]["generation"] >= 2, 10)
    r = get(port, "/kept")
    assert r.body == b"kept" and cache_status(r)["hit"]
    assert get(port, "/health").body == b"ok"
    assert wait_until(lambda: get(port, "/swr").body == b"v2", 5)
    assert cache_origin.hits("/kept") == 1 and cache_origin.hits("/swr") == 2
