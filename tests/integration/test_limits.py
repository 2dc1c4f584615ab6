"""Limits with the right status: target too long 414, header section too
large 431, too many fields 431, body too large 413 (listener body_bytes and
route max_body). Just under each limit passes."""

import socket
import threading

import pytest

from lib.net import RawConn, curl, get, request_bytes

KiB = 1024
MiB = 1 << 20

LIMITS = {"header_bytes": "4KiB", "header_count": 20,
          "target_length": "1KiB", "body_bytes": "1MiB"}


@pytest.fixture
def limited(origin, reverse):
    sites = [{"default": True, "routes": [
        {"path": "/small/", "upstream": "was", "max_body": "64KiB"},
        {"path": "/", "upstream": "was"}]}]
    return reverse({"was": [origin.port]}, limits=LIMITS, sites=sites), origin


def proxy_error(r, status):
    assert r.status == status, r
    ps = r.get("Proxy-Status") or ""
    assert ps.startswith("gatehouse"), r.headers
    assert "error=http_request_error" in ps or \
        "error=http_request_denied" in ps, ps
    assert 0 < len(r.body) <= 1024


def test_target_too_long_414(limited):
    g, o = limited
    r = get(g.port, "/echo?" + "a" * 1100)
    proxy_error(r, 414)
    assert o.count() == 0


def test_target_under_limit_passes(limited):
    g, o = limited
    target = "/echo?" + "a" * 900
    r = get(g.port, target)
    assert r.status == 200
    assert o.requests[0].target == target


def test_header_section_too_large_431(limited):
    g, o = limited
    r = get(g.port, "/echo", headers=[("X-Big", "b" * 6000)])
    proxy_error(r, 431)
    assert o.count() == 0


def test_header_section_split_over_many_fields_431(limited):
    g, o = limited
    r = get(g.port, "/echo",
            headers=[("X-F%d" % i, "v" * 400) for i in range(12)])
    proxy_error(r, 431)
    assert o.count() == 0


def test_header_section_under_limit_passes(limited):
    g, o = limited
    r = get(g.port, "/echo", headers=[("X-Big", "b" * 3000)])
    assert r.status == 200


def test_too_many_fields_431(limited):
    g, o = limited
    r = get(g.port, "/echo", headers=[("X-F%d" % i, "1") for i in range(30)])
    proxy_error(r, 431)
    assert o.count() == 0


def test_field_count_under_limit_passes(limited):
    g, o = limited
    r = get(g.port, "/echo", headers=[("X-F%d" % i, "1") for i in range(15)])
    assert r.status == 200


def test_body_content_length_over_limit_413_before_body(limited):
    """The Content-Length alone says it is too big: 413 without waiting for
    the body, and the origin never sees the request."""
    g, o = limited
    with RawConn(g.port, timeout=5) as c:
        c.send(request_bytes("POST", "/echo",
                             headers=[("Content-Length", str(2 * MiB))]))
        r = c.read_response(timeout=5)
    proxy_error(r, 413)
    assert o.count() == 0


def test_body_with_expect_over_limit_413_not_100(limited):
    g, o = limited
    with RawConn(g.port, timeout=5) as c:
        c.send(request_bytes("POST", "/echo", headers=[
            ("Content-Length", str(2 * MiB)), ("Expect", "100-continue")]))
        r = c.read_response(timeout=5, skip_interim=False)
    proxy_error(r, 413)
    assert o.count() == 0


def test_body_at_limit_passes(limited):
    g, o = limited
    body = b"x" * MiB
    r = get(g.port, "/echo", method="POST", body=body,
            headers=[("Content-Length", str(len(body)))])
    assert r.status == 200
    assert o.requests[0].body_len == MiB


def test_curl_post_over_limit_413(limited, tmp_path):
    g, o = limited
    f = tmp_path / "big"
    f.write_bytes(b"y" * (2 * MiB))
    p = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
             "@%s" % f, "http://127.0.0.1:%d/echo" % g.port, check=False)
    assert p.stdout == b"413", (p.stdout, p.stderr)
    assert o.count() == 0


def test_chunked_body_over_limit_413(limited):
    """Chunked: the size is only known while streaming; the proxy stops at
    the limit, answers 413 (the origin, if it saw the head, never gets a
    complete body)."""
    g, o = limited
    piece = b"z" * (64 * KiB)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("POST", "/echo",
                             headers=[("Transfer-Encoding", "chunked")]))

        def feed():
            try:
                for _ in range(40):  # 2.5 MiB
                    c.sock.sendall(chunk)
                c.sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        r = c.read_response(timeout=10)
        t.join(10)
    proxy_error(r, 413)
    assert not any(req.body_complete for req in o.requests), o.requests


def test_route_max_body_413(limited):
    g, o = limited
    body = b"x" * (100 * KiB)
    r = get(g.port, "/small/up", method="POST", body=body,
            headers=[("Content-Length", str(len(body)))])
    proxy_error(r, 413)
    assert o.count() == 0


def test_route_max_body_under_passes_and_other_route_unaffected(limited):
    g, o = limited
    small = b"x" * (10 * KiB)
    r = get(g.port, "/small/up", method="POST", body=small,
            headers=[("Content-Length", str(len(small)))])
    assert r.status == 200
    big = b"x" * (100 * KiB)
    r = get(g.port, "/other", method="POST", body=big,
            headers=[("Content-Length", str(len(big)))])
    assert r.status == 200
    assert [q.body_len for q in o.requests] == [10 * KiB, 100 * KiB]


def test_limit_errors_are_logged(limited):
    g, o = limited
    assert get(g.port, "/echo?" + "a" * 1100).status == 414
    assert get(g.port, "/echo", headers=[("X-Big", "b" * 6000)]).status == 431
    lines = g.wait_access_lines(lambda ls: len(ls) >= 2)
    assert any(" 414 " in ln or '"status": 414' in ln or '"status":414' in ln
               for ln in lines), lines
    assert any(" 431 " in ln or '"status": 431' in ln or '"status":431' in ln
               for ln in lines), lines


def test_default_limits(origin, reverse):
    """Without a limits block: target 8KiB, header section 32KiB."""
    g = reverse({"was": [origin.port]})
    assert get(g.port, "/echo?" + "a" * 7000).status == 200
    proxy_error(get(g.port, "/echo?" + "a" * 9000), 414)
    assert get(g.port, "/echo", headers=[("X-Big", "b" * 20000)]).status == 200
    proxy_error(get(g.port, "/echo", headers=[("X-Big", "b" * 40000)]), 431)
    assert origin.count() == 2


def test_huge_request_line_is_refused(limited):
    """64 KiB of method token: an error answer (or a close), never a hang,
    never forwarded."""
    g, o = limited
    with RawConn(g.port, timeout=5) as c:
        try:
            c.send(b"A" * (64 * KiB) + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response(timeout=5)
        except socket.timeout:
            raise AssertionError("no answer and no close within 5s")
        except Exception:
            r = None  # closed without an answer
        if r is not None:
            assert r.status in (400, 414, 431, 501), r
    assert o.count() == 0


# ---- per-route body limits (issue 7) ---------------------------------------


def test_route_max_body_chunked_413(limited):
    """A chunked body is counted as it streams: over the route's max_body
    (64 KiB here, the listener allows 1 MiB) it is cut with 413 and the
    origin never gets a complete body."""
    g, o = limited
    piece = b"c" * (16 * KiB)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("POST", "/small/up",
                             headers=[("Transfer-Encoding", "chunked")]))
        try:
            for _ in range(8):  # 128 KiB
                c.sock.sendall(chunk)
            c.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        r = c.read_response(timeout=10)
    proxy_error(r, 413)
    assert not any(q.body_complete for q in o.requests), o.requests


def test_route_max_body_can_exceed_the_listener(origin, reverse):
    """A route's max_body replaces the listener's body_bytes, both ways: an
    upload route may take more than the rest of the site."""
    sites = [{"default": True, "routes": [
        {"path": "/upload/", "upstream": "was", "max_body": "3MiB"},
        {"path": "/", "upstream": "was"}]}]
    g = reverse({"was": [origin.port]}, limits={"body_bytes": "1MiB"},
                sites=sites)
    body = b"x" * (2 * MiB)
    r = get(g.port, "/upload/f", method="POST", body=body,
            headers=[("Content-Length", str(len(body)))])
    assert r.status == 200
    with RawConn(g.port, timeout=5) as c:  # the head says it all
        c.send(request_bytes("POST", "/other",
                             headers=[("Content-Length", str(2 * MiB))]))
        proxy_error(c.read_response(timeout=5), 413)
    assert [q.body_len for q in origin.requests] == [2 * MiB]
