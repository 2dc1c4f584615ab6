"""Upgrade: websocket becomes a two-way tunnel after the 101."""

import asyncio
import base64
import hashlib
import os
import struct
import time

import pytest
import websockets

from lib.net import RawConn, get, pattern, request_bytes
from lib.origin import WS_GUID, ws_frame


@pytest.fixture
def one(origin, reverse):
    return reverse({"was": [origin.port]}), origin


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_websocket_echo_with_websockets_client(one):
    g, o = one

    async def session():
        uri = "ws://127.0.0.1:%d/ws" % g.port
        async with websockets.connect(uri, max_size=4 << 20,
                                      open_timeout=10) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            big = pattern(300000)
            await ws.send(big)
            assert await ws.recv() == big
            for i in range(20):
                await ws.send("m%d" % i)
            got = [await ws.recv() for _ in range(20)]
            assert got == ["m%d" % i for i in range(20)]
            pong = await ws.ping(b"p")
            await asyncio.wait_for(pong, 5)
        return ws.close_code

    assert run(session()) == 1000
    req = [r for r in o.requests if r.path == "/ws"][0]
    assert "websocket" in (req.get("Upgrade") or "").lower(), req.headers
    assert "upgrade" in (req.get("Connection") or "").lower(), req.headers
    assert req.get("Sec-WebSocket-Key"), req.headers


def test_websocket_two_way_without_lockstep(one):
    """The client writes 4 MiB of frames before reading any echo: the tunnel
    must carry both directions at once (with backpressure), not lock-step."""
    g, o = one
    n, size = 64, 64 * 1024

    async def session():
        uri = "ws://127.0.0.1:%d/ws" % g.port
        async with websockets.connect(uri, max_size=1 << 20) as ws:
            async def writer():
                for i in range(n):
                    await ws.send(pattern(size, i))

            async def reader():
                for i in range(n):
                    assert await ws.recv() == pattern(size, i), i

            await asyncio.gather(writer(), reader())

    run(session(), timeout=60)


def handshake(c, path="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    c.send(request_bytes("GET", path, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
    r = c.read_response(skip_interim=False)
    return r, key


def read_frame(c):
    b0, b1 = c._exact(2, _deadline(c))
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", c._exact(2, _deadline(c)))[0]
    elif n == 127:
        n = struct.unpack("!Q", c._exact(8, _deadline(c)))[0]
    assert not (b1 & 0x80), "server frames are not masked"
    return b0 & 0x0F, c._exact(n, _deadline(c))


def _deadline(c):
    return time.monotonic() + 10


def test_websocket_raw_handshake_and_frames(one):
    g, o = one
    with RawConn(g.port) as c:
        r, key = handshake(c)
        assert r.status == 101, r
        want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID)
                                .digest()).decode()
        assert r.get("Sec-WebSocket-Accept") == want, r.headers
        assert "websocket" in (r.get("Upgrade") or "").lower(), r.headers
        assert "upgrade" in (r.get("Connection") or "").lower(), r.headers
        mask = b"\x01\x02\x03\x04"
        c.send(ws_frame(1, b"raw text", mask) + ws_frame(2, b"\x00\xff" * 50,
                                                         mask))
        assert read_frame(c) == (1, b"raw text")
        assert read_frame(c) == (2, b"\x00\xff" * 50)
        c.send(ws_frame(8, struct.pack("!H", 1000), mask))
        op, data = read_frame(c)
        assert op == 8 and data == struct.pack("!H", 1000)
        # the origin closed its side; the proxy ends the tunnel
        assert c.closed_within(5), "tunnel not closed after the origin closed"


def test_upgrade_refused_by_origin_stays_http(one):
    """An Upgrade the origin does not take (it answers 200) leaves the
    connection an HTTP/1.1 one: the next request on it works."""
    g, o = one
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/echo", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        assert r.status == 200, r
        c.send(request_bytes("GET", "/echo?after"))
        r = c.read_response()
        assert r.status == 200 and b"/echo?after" in r.body


def test_http_still_served_while_tunnel_open(one):
    g, o = one

    async def session():
        uri = "ws://127.0.0.1:%d/ws" % g.port
        async with websockets.connect(uri) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            r = await asyncio.get_running_loop().run_in_executor(
                None, get, g.port, "/echo?during")
            assert r.status == 200
            await ws.send("after")
            assert await ws.recv() == "after"

    run(session())
