"""Request smuggling probes on raw sockets. Each must get 400 and the
connection closed, and the origin must never see a second request where the
client sent one ambiguous request (RFC 9112 §6.3, §2.2, §5)."""

import socket
import threading

import pytest

from lib.net import RawConn, request_bytes

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def head(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# name -> bytes of one ambiguous request (most with a second one hidden in
# what could be read as its body)
HEAD_PROBES = {
    "cl_and_te": head(["POST /echo HTTP/1.1", "Host: x",
                       "Content-Length: 4",
                       "Transfer-Encoding: chunked"]) + b"0\r\n\r\n" + SMUGGLED,
    "te_and_cl": head(["POST /echo HTTP/1.1", "Host: x",
                       "Transfer-Encoding: chunked",
                       "Content-Length: 40"]) + b"0\r\n\r\n" + SMUGGLED,
    "two_content_lengths": head(["POST /echo HTTP/1.1", "Host: x",
                                 "Content-Length: 0",
                                 "Content-Length: 37"]) + SMUGGLED,
    "content_length_list_differs": head(["POST /echo HTTP/1.1", "Host: x",
                                         "Content-Length: 0, 37"]) + SMUGGLED,
    "content_length_plus_sign": head(["POST /echo HTTP/1.1", "Host: x",
                                      "Content-Length: +37"]) + SMUGGLED,
    "content_length_negative": head(["POST /echo HTTP/1.1", "Host: x",
                                     "Content-Length: -1"]) + SMUGGLED,
    "te_gzip_final_not_chunked": head(["POST /echo HTTP/1.1", "Host: x",
                                       "Transfer-Encoding: gzip"]) + SMUGGLED,
    "te_chunked_then_identity": head(["POST /echo HTTP/1.1", "Host: x",
                                      "Transfer-Encoding: chunked, identity"])
    + b"0\r\n\r\n" + SMUGGLED,
    "te_xchunked": head(["POST /echo HTTP/1.1", "Host: x",
                         "Transfer-Encoding: xchunked"]) + b"0\r\n\r\n"
    + SMUGGLED,
    "te_space_before_colon": head(["POST /echo HTTP/1.1", "Host: x",
                                   "Transfer-Encoding : chunked",
                                   "Content-Length: 5"]) + b"0\r\n\r\n"
    + SMUGGLED,
    "cl_space_before_colon": head(["POST /echo HTTP/1.1", "Host: x",
                                   "Content-Length : 37"]) + SMUGGLED,
    "obs_fold_te": head(["POST /echo HTTP/1.1", "Host: x",
                         "Transfer-Encoding:", " chunked"]) + b"0\r\n\r\n"
    + SMUGGLED,
    "obs_fold_other": head(["GET /echo HTTP/1.1", "Host: x", "X-A: 1",
                            "  folded"]) + SMUGGLED,
    "bare_lf_line_endings": b"GET /echo HTTP/1.1\nHost: x\n\n" + SMUGGLED,
    "bare_lf_in_one_field": b"GET /echo HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n"
    + SMUGGLED,
    "bare_cr_in_field": b"GET /echo HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n"
    + SMUGGLED,
    "nul_in_value": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"
    + SMUGGLED,
    "ctl_char_in_value": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"
    + SMUGGLED,
    "te_chunked_twice": head(["POST /echo HTTP/1.1", "Host: x",
                              "Transfer-Encoding: chunked",
                              "Transfer-Encoding: chunked"])
    + b"0\r\n\r\n" + SMUGGLED,
    "bad_method_token": head(["G(ET /echo HTTP/1.1", "Host: x"]) + SMUGGLED,
    "double_space_request_line": head(["GET  /echo HTTP/1.1", "Host: x"])
    + SMUGGLED,
    "http11_without_host": head(["GET /echo HTTP/1.1", "X-A: 1"]) + SMUGGLED,
    "two_host_fields": head(["GET /echo HTTP/1.1", "Host: x",
                             "Host: y"]) + SMUGGLED,
    "space_in_field_name": head(["GET /echo HTTP/1.1", "Host: x",
                                 "X A: 1"]) + SMUGGLED,
}

# Valid heads whose chunked body is broken: the proxy may already have sent
# the head upstream, so the origin may see this one request, never another.
BODY_PROBES = {
    "chunk_size_overflow": head(["POST /echo HTTP/1.1", "Host: x",
                                 "Transfer-Encoding: chunked"])
    + b"ffffffffffffffffffff\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_not_hex": head(["POST /echo HTTP/1.1", "Host: x",
                                "Transfer-Encoding: chunked"])
    + b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_bare_lf": head(["POST /echo HTTP/1.1", "Host: x",
                           "Transfer-Encoding: chunked"])
    + b"5\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_data_longer_than_size": head(["POST /echo HTTP/1.1", "Host: x",
                                         "Transfer-Encoding: chunked"])
    + b"3\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
}


@pytest.fixture
def one(origin, reverse):
    return reverse({"was": [origin.port]}, workers=1), origin


def probe(port, data, timeout=5.0):
    """Sends <data>, returns (response, closed) where closed is True if
    the proxy closed the connection after its answer."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response(timeout=timeout)
        closed = c.closed_within(timeout)
        return r, closed


def check(g, o, data, max_origin):
    r, closed = probe(g.port, data)
    assert r.status == 400, r
    assert closed, "connection left open after a 400 for ambiguous framing"
    paths = o.paths()
    assert "/smuggled" not in paths, paths
    assert len(paths) <= max_origin, paths
    assert "error=http_request_error" in (r.get("Proxy-Status") or ""), \
        r.headers


@pytest.mark.parametrize("name", sorted(HEAD_PROBES))
def test_head_probe_rejected(one, name):
    g, o = one
    check(g, o, HEAD_PROBES[name], max_origin=0)


@pytest.mark.parametrize("name", sorted(BODY_PROBES))
def test_body_probe_rejected(one, name):
    g, o = one
    check(g, o, BODY_PROBES[name], max_origin=1)
    for req in o.requests:
        assert not req.body_complete, "origin got a complete body from " \
            "a broken chunked stream: %r" % req


def test_probe_after_valid_request_on_same_connection(one):
    """A valid request, then an ambiguous one pipelined behind it: the first
    gets its 200, the second a 400, and the origin sees only the first."""
    g, o = one
    data = request_bytes("GET", "/echo?first") + HEAD_PROBES["cl_and_te"]
    with RawConn(g.port) as c:
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
        assert c.closed_within(5)
    assert r1.status == 200 and b"/echo?first" in r1.body
    assert r2.status == 400
    assert o.paths() == ["/echo"]


def test_valid_chunked_and_smuggled_suffix_is_two_requests(one):
    """Control: a well-framed chunked request followed by a second request
    is two requests, both answered (the probes above are not rejected for
    carrying a second request)."""
    g, o = one
    data = head(["POST /echo HTTP/1.1", "Host: x",
                 "Transfer-Encoding: chunked"]) + b"0\r\n\r\n" + SMUGGLED
    with RawConn(g.port) as c:
        c.send(data)
        assert c.read_response().status == 200
        assert c.read_response().status == 200
    assert o.paths() == ["/echo", "/smuggled"]


def test_obs_text_and_tab_in_values_are_valid(one):
    """Field values may hold HTAB and bytes 0x80-0xFF (obs-text, RFC 9110
    §5.5): strict is not the same as wrong."""
    g, o = one
    with RawConn(g.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n"
               b"X-Tab: a\tb\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    req = o.requests[0]
    assert req.get("X-Latin") == "caf\xe9" and req.get("X-Tab") == "a\tb"


def test_identical_duplicate_content_length_is_one_request(one):
    """RFC 9112 §6.3 allows 'Content-Length: 5, 5' (same value): one request
    with a 5-byte body (or a 400); never a second request."""
    g, o = one
    data = head(["POST /echo HTTP/1.1", "Host: x",
                 "Content-Length: 5, 5"]) + b"hello"
    with RawConn(g.port) as c:
        c.send(data)
        r = c.read_response()
    assert r.status in (200, 400), r
    assert len(o.paths()) <= 1


def test_upstream_response_smuggling_is_contained(reverse):
    """Response side: an origin answer framed by both Content-Length and
    Transfer-Encoding must not let the bytes after it be served as the
    answer to the client's next request (RFC 9112 §6.3: TE wins, and the
    connection ought to close)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(0.2)
    port = ls.getsockname()[1]
    stop = threading.Event()

    def serve_one(s):
        try:
            s.settimeout(5)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                      b"X-Smuggled: 1\r\n\r\nbad")
            while not stop.is_set() and s.recv(65536):
                pass
        except OSError:
            pass
        finally:
            s.close()

    def serve():
        while not stop.is_set():
            try:
                s, _ = ls.accept()
            except OSError:
                continue
            threading.Thread(target=serve_one, args=(s,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        g = reverse({"was": [port]}, workers=1)
        with RawConn(g.port, timeout=5) as c:
            c.send(request_bytes("GET", "/x") + request_bytes("GET", "/y"))
            for _ in range(2):
                try:
                    r = c.read_response(timeout=5)
                except Exception:
                    break  # closed: nothing more served on this connection
                assert r.status in (200, 502), r
                assert not r.has("X-Smuggled"), r
                assert r.body != b"bad", r
    finally:
        stop.set()
        t.join(5)
        ls.close()
