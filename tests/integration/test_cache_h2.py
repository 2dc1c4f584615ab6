"""The cache over HTTP/2 (h2c, prior knowledge): hits, a stored response
streamed while it fills, 304s and HEAD go out as HTTP/2 frames, the body
pulled by the session."""

import threading
import time

from lib.cache_origin import Resp
from lib.net import free_port
from lib.proxy import reverse_config
from lib.tls import h2c


def start(gatehouse, origin, policy=True):
    port = free_port()
    cfg = reverse_config(port, {"o": [origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "upstream": "o", "cache": policy}]}])
    cfg["listeners"][0]["http2"] = {"h2c": True}
    return gatehouse(cfg, port)


def h2get(port, path, headers=(), method="GET"):
    c = h2c(port)
    try:
        sid = c.request(method, path, extra=list(headers), scheme="http")
        return c.response(sid)
    finally:
        c.close()


def field(headers, name):
    """<headers> is the dict H2Conn.response() returns."""
    v = headers.get(name)
    return v.decode() if isinstance(v, bytes) else v


def test_hits_over_h2(gatehouse, cache_origin):
    body = bytes(range(256)) * 300
    cache_origin.set("/h", headers=[("Cache-Control", "max-age=60"), ("ETag", '"e"')],
                     body=body)
    g = start(gatehouse, cache_origin)
    st, hs, data = h2get(g.port, "/h")
    assert st == 200 and data == body
    assert field(hs, "cache-status") == "gatehouse; fwd=uri-miss; stored"
    for _ in range(3):
        st, hs, data = h2get(g.port, "/h")
        assert st == 200 and data == body
        assert field(hs, "cache-status").startswith("gatehouse; hit")
        assert field(hs, "age") is not None
        assert field(hs, "connection") is None
    assert cache_origin.hits("/h") == 1
    st, hs, data = h2get(g.port, "/h", headers=[("if-none-match", '"e"')])
    assert st == 304 and data == b""
    st, hs, data = h2get(g.port, "/h", method="HEAD")
    assert st == 200 and data == b"" and field(hs, "content-length") == str(len(body))
    st, hs, data = h2get(g.port, "/h", headers=[("range", "bytes=10-19")])
    assert st == 206 and data == body[10:20]


def test_h2_reader_of_filling_object(gatehouse, cache_origin):
    piece = b"q" * 5000
    cache_origin.set("/f", fn=lambda req, n: Resp(
        200, [("Cache-Control", "max-age=60")], pieces=[(piece, 0.3)] * 4, chunked=True))
    g = start(gatehouse, cache_origin)
    first = {}
    t = threading.Thread(target=lambda: first.setdefault("r", h2get(g.port, "/f")))
    t.start()
    time.sleep(0.4)
    st, hs, data = h2get(g.port, "/f")
    t.join(20)
    assert st == 200 and data == piece * 4
    assert field(hs, "cache-status").startswith("gatehouse; hit")
    assert first["r"][2] == piece * 4
    assert cache_origin.hits("/f") == 1
