"""Message framing under stress: heads and bodies split at every byte (the
parser is resumable), close-delimited and split upstream responses, 1xx
interim responses, long pipelines, and the upstream connection staying in
sync across every kind of framing."""

import json
import time

import pytest

from lib.net import RawConn, pattern, request_bytes


@pytest.fixture
def one(origin, reverse):
    return reverse({"was": [origin.port]}, workers=1), origin


def dribble(c, data, pause=0.001):
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(pause)


def test_request_head_one_byte_at_a_time(one):
    g, o = one
    with RawConn(g.port) as c:
        dribble(c, request_bytes("GET", "/echo?dribbled",
                                 headers=[("X-A", "1")]))
        r = c.read_response()
    assert r.status == 200, r
    assert json.loads(r.body)["target"] == "/echo?dribbled"


def test_chunked_body_one_byte_at_a_time(one):
    g, o = one
    body = b"3;x=y\r\nabc\r\n10\r\n" + b"0123456789abcdef" + b"\r\n0\r\n\r\n"
    with RawConn(g.port) as c:
        c.send(request_bytes("POST", "/echo",
                             headers=[("Transfer-Encoding", "chunked")]))
        dribble(c, body)
        r = c.read_response()
    assert r.status == 200, r
    assert json.loads(r.body)["body_len"] == 19


def test_upstream_response_one_byte_at_a_time(one):
    g, o = one
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/split"))
        r = c.read_response()
        assert r.status == 200 and r.get("X-Split") == "yes", r
        assert json.loads(r.body)["path"] == "/split"
        c.send(request_bytes("GET", "/echo?next"))
        assert c.read_response().status == 200


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_close_delimited_upstream_body(one, version):
    """The origin ends its body by closing: the client gets every byte,
    and the end is visible to it (chunked, or the connection closes)."""
    g, o = one
    n = 300001
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/eof/%d" % n, version=version))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == pattern(n)
        if r.get("Content-Length") is None and \
                "chunked" not in (r.get("Transfer-Encoding") or ""):
            assert c.eof, "close-delimited body but connection left open"


def test_103_early_hints_forwarded(one):
    g, o = one
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/early"))
        r = c.read_response()
    assert r.status == 200 and r.body == b"after hints\n", r
    assert [i.status for i in r.interim] == [103], r.interim
    assert "preload" in (r.interim[0].get("Link") or "")


def test_103_dropped_for_http10_client(one):
    g, o = one
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/early", version="HTTP/1.0"))
        r = c.read_response()
    assert r.status == 200 and r.interim == [], r


def test_hundred_pipelined_requests(one):
    g, o = one
    n = 100
    data = b"".join(request_bytes("GET", "/bytes/%d" % (i * 37))
                    for i in range(n))
    with RawConn(g.port, timeout=20) as c:
        c.send(data)
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.body == pattern(i * 37), i
    assert o.count() == n


def test_upstream_connection_stays_in_sync_across_framings(one):
    """One client connection, one worker, one origin: a mix of framings
    that would each desync a careless proxy, all on ONE upstream
    connection, each answer matching its request."""
    g, o = one
    seq = [
        ("POST", "/echo?a", [("Transfer-Encoding", "chunked")],
         b"4\r\nwxyz\r\n0\r\n\r\n", None),
        ("HEAD", "/bytes/999", [], b"", None),
        ("GET", "/status/204", [], b"", None),
        ("GET", "/status/304", [], b"", None),
        ("HEAD", "/chunked/999", [], b"", None),
        ("POST", "/echo?b", [("Content-Length", "3")], b"abc", None),
        ("GET", "/chunked/70000", [], b"", pattern(70000)),
        ("GET", "/echo?c", [], b"", None),
    ]
    with RawConn(g.port, timeout=10) as c:
        for method, target, hs, body, want in seq:
            c.send(request_bytes(method, target, headers=hs, body=body))
            r = c.read_response(method)
            assert r.status in (200, 204, 304), (target, r)
            if want is not None:
                assert r.body == want, target
            if target.startswith("/echo"):
                e = json.loads(r.body)
                assert e["target"] == target, (target, e)
    assert o.count() == len(seq)
    assert o.accepted == 1, "upstream connections: %d" % o.accepted
