"""HTTP/2 to upstreams for gRPC (issue 6, "protocol: h2"): a real gRPC
server (python3-grpcio) behind gatehouse, a real gRPC client in front of it
over h2c and over TLS. Statuses and messages travel in the response
trailers, so a call that fails with NOT_FOUND proves they pass."""

import hashlib
import re

import grpc
import pytest

from lib.grpc_origin import GrpcOrigin, channel
from lib.h2origin import H2Origin
from lib.net import curl, free_port, parse_curl_headers
from lib.proxy import reverse_config, run_cli
from lib.tls import h2c

MIB = 1024 * 1024


@pytest.fixture
def grpc_origin():
    started = []

    def make(**kw):
        o = GrpcOrigin(**kw).start()
        started.append(o)
        return o

    yield make
    for o in started:
        o.stop()


def h2_config(port, up_port, tls_up=None, **kw):
    u = {"protocol": "h2"}
    if tls_up:
        u["tls"] = tls_up
    cfg = reverse_config(port, {"g": [up_port]}, upstream_opts={"g": u},
                         limits={"body_bytes": "64MiB"}, **kw)
    return cfg


@pytest.fixture
def grpc_gh(gatehouse, grpc_origin, test_ca):
    """Factory: a gRPC origin and gatehouse in front of it, the listener
    h2c (tls=False) or TLS with h2 (tls=True)."""

    def start(tls=False, up_tls=False, **kw):
        tls_pair = None
        if up_tls:
            tls_pair = (open(test_ca.path("localhost.pem"), "rb").read(),
                        open(test_ca.path("localhost.key"), "rb").read())
        o = grpc_origin(tls=tls_pair)
        port = free_port()
        cfg = h2_config(port, o.port, tls_up={"ca": test_ca.ca} if up_tls else None,
                        **kw)
        lst = cfg["listeners"][0]
        if tls:
            lst["tls"] = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                                            "key": test_ca.path("localhost.key")}]}
        else:
            lst["http2"] = {"h2c": True}
        g = gatehouse(cfg, port)
        g.origin = o
        g.channel = channel(port, ca=test_ca.ca if tls else None)
        return g

    return start


def unary(ch, method, req, timeout=20):
    return ch.unary_unary("/test.Svc/" + method)(req, timeout=timeout)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_unary_and_status(grpc_gh, tls):
    g = grpc_gh(tls=tls)
    assert unary(g.channel, "Echo", b"hello") == b"echo:hello"
    with pytest.raises(grpc.RpcError) as e:
        unary(g.channel, "Echo", b"missing-thing")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "no such thing: missing-thing"
    # the same connection goes on after a failed call
    assert unary(g.channel, "Echo", b"again") == b"echo:again"


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_server_streaming(grpc_gh, tls):
    g = grpc_gh(tls=tls)
    call = g.channel.unary_stream("/test.Svc/Count")(b"7", timeout=20)
    assert list(call) == [b"msg-%d" % i for i in range(7)]
    assert call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_large_messages_both_ways(grpc_gh, tls):
    g = grpc_gh(tls=tls)
    req = hashlib.sha256(b"seed").digest() * (4 * MIB // 32)  # 4 MiB
    resp = unary(g.channel, "Big", req, timeout=60)
    assert len(resp) == len(req) and resp == req[::-1]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_bidi_ping_pong(grpc_gh, tls):
    """Each message is sent only after the answer to the previous one came
    back: the request and the response stream at the same time."""
    import queue
    g = grpc_gh(tls=tls)
    q = queue.Queue()

    def requests():
        for i in range(5):
            yield b"m%d" % i
            assert q.get(timeout=10) == b"re:m%d" % i

    call = g.channel.stream_stream("/test.Svc/Chat")(requests(), timeout=30)
    got = []
    for r in call:
        got.append(r)
        q.put(r)
    assert got == [b"re:m%d" % i for i in range(5)]
    assert call.code() == grpc.StatusCode.OK


def test_mixed_calls_on_one_connection(grpc_gh):
    """Failing calls, streams, a cancelled stream and plain calls at once on
    the shared upstream connection: each gets its own outcome."""
    g = grpc_gh()
    ok = [g.channel.unary_unary("/test.Svc/Echo").future(b"ok%d" % i, timeout=30)
          for i in range(10)]
    bad = [g.channel.unary_unary("/test.Svc/Echo").future(b"missing%d" % i, timeout=30)
           for i in range(10)]
    streams = [g.channel.unary_stream("/test.Svc/Count")(b"50", timeout=30)
               for _ in range(3)]
    endless = g.channel.unary_stream("/test.Svc/Count")(b"1000000", timeout=30)
    it = iter(endless)
    next(it)
    endless.cancel()
    assert [f.result() for f in ok] == [b"echo:ok%d" % i for i in range(10)]
    for i, f in enumerate(bad):
        assert f.exception().code() == grpc.StatusCode.NOT_FOUND
        assert f.exception().details() == "no such thing: missing%d" % i
    for c in streams:
        assert list(c) == [b"msg-%d" % i for i in range(50)]
    assert endless.code() == grpc.StatusCode.CANCELLED
    assert len(set(g.origin.peers)) == 1


def test_upstream_dies_with_streams_in_flight(grpc_gh):
    g = grpc_gh()
    calls = [g.channel.unary_stream("/test.Svc/Count")(b"100000000", timeout=30)
             for _ in range(4)]
    its = [iter(c) for c in calls]
    for it in its:
        next(it)
    g.origin.server.stop(grace=None)  # the connection drops under them
    for c in calls:
        with pytest.raises(grpc.RpcError) as e:
            for _ in c:
                pass
        assert e.value.code() != grpc.StatusCode.OK


def test_client_cancels_a_stream(grpc_gh):
    g = grpc_gh()
    call = g.channel.unary_stream("/test.Svc/Count")(b"1000000", timeout=30)
    it = iter(call)
    assert [next(it) for _ in range(3)] == [b"msg-0", b"msg-1", b"msg-2"]
    call.cancel()
    assert call.code() == grpc.StatusCode.CANCELLED
    # gatehouse dropped that upstream stream and serves the next call
    assert unary(g.channel, "Echo", b"after") == b"echo:after"


def test_tls_upstream_with_alpn_h2(grpc_gh):
    g = grpc_gh(tls=False, up_tls=True)
    assert unary(g.channel, "Echo", b"over tls") == b"echo:over tls"
    with pytest.raises(grpc.RpcError) as e:
        unary(g.channel, "Echo", b"missing-x")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_concurrent_calls_share_one_upstream_connection(grpc_gh):
    g = grpc_gh()
    futs = [g.channel.unary_unary("/test.Svc/Echo").future(b"n%d" % i, timeout=30)
            for i in range(50)]
    assert [f.result() for f in futs] == [b"echo:n%d" % i for i in range(50)]
    # multiplexed: one connection to the server carried the 50 streams
    assert len(g.origin.peers) == 50 and len(set(g.origin.peers)) == 1, \
        set(g.origin.peers)
    # and it is kept for the next calls
    for i in range(5):
        assert unary(g.channel, "Echo", b"seq") == b"echo:seq"
    assert len(set(g.origin.peers)) == 1


def grpc_frame(msg):
    return b"\0" + len(msg).to_bytes(4, "big") + msg


def test_curl_h2_prior_knowledge_sees_trailers(grpc_gh):
    g = grpc_gh()
    p = curl("-sS", "-D", "-", "--http2-prior-knowledge",
             "-H", "content-type: application/grpc", "-H", "te: trailers",
             "--data-binary", "@-", "http://127.0.0.1:%d/test.Svc/Echo" % g.port,
             input=grpc_frame(b"curl"))
    out = p.stdout
    assert out.startswith(b"HTTP/2 200"), out[:200]
    assert grpc_frame(b"echo:curl") in out
    # the trailers come after the body
    assert re.search(rb"\r\n\r\n.*grpc-status: 0\r\n", out, re.S), out


def test_http11_client_gets_chunked_trailers_only_with_te(grpc_gh):
    g = grpc_gh()
    url = "http://127.0.0.1:%d/test.Svc/Echo" % g.port
    base = ["-sS", "-D", "-", "--http1.1", "-H", "content-type: application/grpc",
            "--data-binary", "@-"]
    p = curl(*base, "-H", "TE: trailers", url, input=grpc_frame(b"h1"))
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"grpc-status" not in head
    # curl writes the trailers after the body
    assert rest.startswith(grpc_frame(b"echo:h1")) and b"grpc-status: 0\r\n" in rest, rest
    # a trailers-only answer (the call failed at once) has them in the head
    p = curl(*base, "-H", "TE: trailers", url, input=grpc_frame(b"missing-h1"))
    out = p.stdout.decode(errors="replace")
    assert "grpc-status: 5" in out and "grpc-message: no such thing: missing-h1" in out
    # without TE: trailers none is passed on, and gRPC insists on it
    p = curl(*base, url, input=grpc_frame(b"h1"))
    assert b"grpc-message: Missing :te header" in p.stdout, p.stdout


def h2c_gatehouse(gatehouse, up_port, **kw):
    port = free_port()
    cfg = h2_config(port, up_port, **kw)
    cfg["listeners"][0]["http2"] = {"h2c": True}
    return gatehouse(cfg, port)


def code_of(port, path, *args):
    p = curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", *args,
             "http://127.0.0.1:%d%s" % (port, path), check=False)
    return p.stdout.decode()


def test_h2_upstream_down_is_502(gatehouse):
    g = h2c_gatehouse(gatehouse, free_port())
    assert code_of(g.port, "/x", "--http2-prior-knowledge") == "502"
    assert code_of(g.port, "/x", "--http1.1") == "502"
    with pytest.raises(grpc.RpcError) as e:
        unary(channel(g.port), "Echo", b"x", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # gRPC's name for 502


@pytest.fixture
def h2_origin():
    o = H2Origin().start()
    yield o
    o.stop()


def test_curl_through_to_a_python_h2_origin(gatehouse, h2_origin):
    g = h2c_gatehouse(gatehouse, h2_origin.port)
    p = curl("-sS", "-D", "-", "--http2-prior-knowledge", "-H", "te: trailers",
             "-H", "x-test: 1", "--data-binary", "abc",
             "http://127.0.0.1:%d/hello?q=1" % g.port)
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert rest.startswith(b"hello from h2") and b"x-trailer: yes" in rest, rest
    r = h2_origin.requests[-1]
    assert r[":method"] == "POST" and r[":path"] == "/hello?q=1"
    assert r[":scheme"] == "http" and r[":authority"] == "127.0.0.1:%d" % g.port
    assert r["te"] == "trailers" and r["x-test"] == "1"
    assert r["x-forwarded-for"] == "127.0.0.1" and "connection" not in r
    assert h2_origin.bodies[-1] == 3
    # HTTP/1.1: TE is hop-by-hop except "trailers", passed on to h2
    p = curl("-sS", "-D", "-", "--http1.1", "-H", "TE: trailers, deflate",
             "http://127.0.0.1:%d/a" % g.port)
    assert h2_origin.requests[-1]["te"] == "trailers"
    assert b"hello from h2\r\n" in p.stdout or b"x-trailer: yes" in p.stdout
    # without TE: trailers, an HTTP/1.1 client gets the body, no trailers
    p = curl("-sS", "-D", "-", "--http1.1", "http://127.0.0.1:%d/b" % g.port)
    assert "te" not in h2_origin.requests[-1]
    assert p.stdout.endswith(b"\r\n\r\nhello from h2"), p.stdout
    # one upstream connection carried them all, one after the other
    assert h2_origin.conns == 1


def test_request_trailers_reach_the_h2_origin(gatehouse, h2_origin):
    from lib.tls import END_HEADERS, END_STREAM, HEADERS, frame
    g = h2c_gatehouse(gatehouse, h2_origin.port)
    c = h2c(g.port)
    sid = c.request("POST", "/t", body=b"body", scheme="http", end=False,
                    extra=[("te", "trailers")])
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid,
                 c.enc.encode([("x-checksum", "abc123")])))
    status, headers, body = c.response(sid)
    assert status == 200 and body == b"hello from h2", headers
    assert headers.get("x-trailer") == "yes"  # the response's, on HTTP/2
    assert h2_origin.bodies[-1] == 4
    assert h2_origin.trailers == [{"x-checksum": "abc123"}]
    c.close()


def test_stream_reset_goaway_and_timeout(gatehouse, h2_origin):
    g = h2c_gatehouse(gatehouse, h2_origin.port)
    for path in ("/rst", "/goaway"):
        for proto in ("--http2-prior-knowledge", "--http1.1"):
            p = curl("-sS", "-D", "-", proto, "http://127.0.0.1:%d%s" % (g.port, path),
                     check=False)
            out = p.stdout.decode(errors="replace")
            assert re.match(r"HTTP/(2|1\.1) 502", out), (path, out)
            want = "GOAWAY" if path == "/goaway" else "reset the HTTP/2 stream"
            assert want in out, (path, out)
    # a normal request still works afterwards (a fresh connection)
    assert code_of(g.port, "/ok", "--http2-prior-knowledge") == "200"


def test_body_limit_is_413(gatehouse, h2_origin):
    port = free_port()
    cfg = h2_config(port, h2_origin.port)
    cfg["listeners"][0]["limits"] = {"body_bytes": "100KiB"}
    cfg["listeners"][0]["http2"] = {"h2c": True}
    g = gatehouse(cfg, port)
    # no content-length: the limit is found while the body streams
    c = h2c(port)
    sid = c.request("POST", "/up", body=b"x" * 300000, scheme="http")
    status, headers, _ = c.response(sid)
    assert status == 413, headers
    c.close()
    # HTTP/1.1 (chunked): answered 413 and closed while curl may still be
    # sending (then it sees a reset, as with an HTTP/1.1 upstream): the
    # access log says what was answered
    curl("-sS", "-o", "/dev/null", "--http1.1", "-X", "POST", "-T", "-",
         "http://127.0.0.1:%d/up1" % port, input=b"x" * 300000, check=False)
    lines = g.wait_access_lines(lambda ls: any('"POST /up1 HTTP/1.1" 413' in ln
                                                for ln in ls))
    assert any('"POST /up1 HTTP/1.1" 413' in ln for ln in lines), lines
    assert code_of(g.port, "/ok", "--http2-prior-knowledge") == "200"


def test_read_timeout_is_504(gatehouse, h2_origin):
    port = free_port()
    cfg = h2_config(port, h2_origin.port)
    cfg["upstreams"]["g"]["read_timeout"] = "500ms"
    cfg["listeners"][0]["http2"] = {"h2c": True}
    g = gatehouse(cfg, port)
    assert code_of(g.port, "/silent", "--http2-prior-knowledge") == "504"
    assert code_of(g.port, "/silent", "--http1.1") == "504"


def test_config_protocol_errors(tmp_path):
    cfg = tmp_path / "g.yaml"
    base = ("upstreams:\n  g:\n    servers: [127.0.0.1:50051]\n%s"
            "listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
            "      - routes: [ { path: /, upstream: g } ]\n")
    cfg.write_text(base % "    protocol: h3\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode != 0 and re.search(r"g.yaml:4:15: .*protocol", p.stderr), p.stderr
    cfg.write_text(base % "    protocol: h2\n    proxy_protocol: v2\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode != 0 and "g.yaml:5:5:" in p.stderr and \
        "not available with protocol: h2" in p.stderr, p.stderr
    cfg.write_text(base % "    protocol: h2\n    health: { path: /ok }\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode != 0 and "type: tcp" in p.stderr, p.stderr
    cfg.write_text(base % "    protocol: h2\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode == 0, p.stderr


def test_http11_server_on_an_h2_pool_is_502(gatehouse, origin):
    g = h2c_gatehouse(gatehouse, origin.port)
    p = curl("-sS", "-D", "-", "--http1.1", "http://127.0.0.1:%d/echo" % g.port,
             check=False)
    out = p.stdout.decode(errors="replace")
    assert out.startswith("HTTP/1.1 502"), out


def test_example_grpc_yaml_runs(gatehouse, grpc_origin):
    """examples/grpc.yaml, its ports rewritten to free ones."""
    import os
    from lib.proxy import ROOT
    text = open(os.path.join(ROOT, "examples", "grpc.yaml")).read()
    o = grpc_origin()
    port = free_port()
    text = text.replace("127.0.0.1:50051", "127.0.0.1:%d" % o.port)
    text = text.replace("127.0.0.1:8085", "127.0.0.1:%d" % port)
    gatehouse(text, port)
    ch = channel(port)
    assert unary(ch, "Echo", b"example") == b"echo:example"
    with pytest.raises(grpc.RpcError) as e:
        unary(ch, "Echo", b"missing-example")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
