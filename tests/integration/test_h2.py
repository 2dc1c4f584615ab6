"""HTTP/2 to clients (issue 6): real clients (curl, h2load) and a client on
raw frames (lib/tls.py H2Conn) that can misbehave on purpose: rapid
reset, CONTINUATION floods, HPACK bombs, empty DATA floods."""

import json
import shutil
import signal
import struct
import subprocess
import threading
import time

import pytest

from lib.net import BLOCK_SIZE, curl, file_sha256, pattern, pattern_sha256, write_pattern_file
from lib.tls import (CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
                     HEADERS, RST_STREAM, CANCEL, H2Conn, frame, h2_tls, h2c,
                     proc_cpu_seconds)


def https(g, path="/"):
    return "https://localhost:%d%s" % (g.port, path)


@pytest.fixture
def h2c_gh(gatehouse):
    """Factory: a plain listener with h2c (prior knowledge) enabled."""
    from lib.net import free_port
    from lib.proxy import reverse_config

    def start(upstreams, http2=None, **kw):
        port = free_port()
        cfg = reverse_config(port, upstreams, **kw)
        h = {"h2c": True}
        h.update(http2 or {})
        cfg["listeners"][0]["http2"] = h
        return gatehouse(cfg, port)

    return start


def echo(body):
    return json.loads(body)


# ---- requests and responses --------------------------------------------------


def test_streams_multiplexed_onto_upstream_pool(tls_reverse, origin, test_ca):
    """h2load: 400 requests, 100 at a time on one connection, all 2xx; the
    origin sees few connections (the HTTP/1.1 pool)."""
    g = tls_reverse({"o": [origin.port]}, upstream_opts={"o": {"keepalive": 128}})
    p = subprocess.run(["h2load", "-n", "400", "-c", "1", "-m", "100",
                        https(g, "/bytes/1000")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode()
    assert "400 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 400 2xx" in out, out
    assert "TLS Protocol: TLSv1.3" in out and "Application protocol: h2" in out
    assert origin.accepted <= 100


def test_post_without_length_goes_up_chunked(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    body = pattern(300000)
    sid = c.request("POST", "/echo", body=body, scheme="http")
    status, headers, data = c.response(sid)
    assert status == 200, headers
    d = echo(data)
    assert d["framing"] == "chunked", d
    assert d["body_len"] == len(body) and d["body_sha256"] == pattern_sha256(len(body))
    c.close()


def test_post_with_length_and_upload_download_large(tls_reverse, origin, test_ca, tmp_path):
    g = tls_reverse({"o": [origin.port]})
    n = 32 * BLOCK_SIZE + 7
    up = write_pattern_file(str(tmp_path / "up"), n)
    p = curl("--cacert", test_ca.ca, "--http2", "--data-binary", "@" + up, https(g, "/echo"))
    d = echo(p.stdout)
    assert d["framing"] == "length" and d["body_sha256"] == pattern_sha256(n)
    out = tmp_path / "down"
    curl("--cacert", test_ca.ca, "--http2", "-o", str(out), https(g, "/chunked/%d" % n))
    assert file_sha256(str(out)) == pattern_sha256(n)


def test_response_rules(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    # no connection-specific fields; a chunked upstream body arrives whole
    sid = c.request("GET", "/headers?set=Connection:x-foo&set=X-Foo:1&set=Keep-Alive:5",
                    scheme="http")
    status, h, body = c.response(sid)
    assert status == 200 and "connection" not in h and "keep-alive" not in h
    assert "x-foo" not in h  # named by Connection: hop-by-hop
    sid = c.request("GET", "/chunked/100000", scheme="http")
    status, h, body = c.response(sid)
    assert status == 200 and body == pattern(100000)
    assert "transfer-encoding" not in h
    sid = c.request("HEAD", "/bytes/1000", scheme="http")
    status, h, body = c.response(sid)
    assert status == 200 and body == b"" and h.get("content-length") == "1000"
    sid = c.request("GET", "/status/204", scheme="http")
    assert c.response(sid)[0] == 204
    sid = c.request("GET", "/early", scheme="http")
    status, h, body = c.response(sid)
    assert status == 200 and body == b"after hints\n"
    c.close()


def test_request_rules(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    sid = c.request("GET", "/echo", scheme="http", authority="Example.com:8",
                    extra=[("cookie", "a=1"), ("cookie", "b=2"), ("x-a", "1")])
    status, h, body = c.response(sid)
    d = echo(body)
    hs = [(k.lower(), v) for k, v in d["headers"]]
    assert ("cookie", "a=1; b=2") in hs
    assert ("host", "Example.com:8") in hs
    assert d["version"] == "HTTP/1.1"
    # :authority and host naming different things: 400
    sid = c.request("GET", "/echo", scheme="http", authority="a.test",
                    extra=[("host", "b.test")])
    assert c.response(sid)[0] == 400
    # a :path the HTTP/1 parser refuses is refused here too
    sid = c.request("GET", "/a b", scheme="http")
    status, h, _ = c.response(sid)
    assert status == 400 or "rst" in h
    # routing and local answers work per stream
    assert origin.count("/a b") == 0
    c.close()


def test_h2c_needs_the_option(reverse, origin):
    from lib.net import RawConn
    from lib.tls import PREFACE
    g = reverse({"o": [origin.port]})
    with RawConn(g.port) as c:
        c.send(PREFACE)
        r = c.read_response()
        assert r.status == 505


def test_h2c_prior_knowledge_with_curl(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    p = curl("--http2-prior-knowledge", "-w", "\n%{http_version}",
             "http://127.0.0.1:%d/echo" % g.port)
    body, _, v = p.stdout.decode().rpartition("\n")
    assert v == "2"
    h = {k.lower(): v for k, v in echo(body)["headers"]}
    assert h["x-forwarded-proto"] == "http"
    # HTTP/1.1 still works on the same listener
    p = curl("--http1.1", "http://127.0.0.1:%d/echo" % g.port)
    assert echo(p.stdout)["path"] == "/echo"


def test_client_reset_frees_the_upstream(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    sid = c.request("GET", "/slow/3000", scheme="http")
    assert origin.wait_requests(1, 5)
    c.send(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
    lines = g.wait_access_lines(lambda ls: any("/slow/3000" in ln for ln in ls), 5)
    ln = [ln for ln in lines if "/slow/3000" in ln][0]
    assert '"GET /slow/3000 HTTP/2.0" 499' in ln and "reason=client_closed" in ln
    # the connection carries on
    sid = c.request("GET", "/echo", scheme="http")
    assert c.response(sid)[0] == 200
    c.close()


def test_flow_control_is_backpressure(h2c_gh, origin):
    """A client that opens no window gets only 64 KiB; the rest waits
    upstream, not in gatehouse's memory."""
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    c.auto_window = False
    sid = c.request("GET", "/bytes/%d" % (64 * BLOCK_SIZE), scheme="http")
    got = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            f = c.read_frame(0.5)
        except Exception:
            break
        if f is not None and f.type == DATA:
            got += len(f.payload)
    assert 0 < got <= 65535
    rss = g.vm_rss_kib()
    # open the windows: the rest arrives whole
    c.send(frame(8, 0, 0, struct.pack(">I", 1 << 30)) + frame(8, 0, sid, struct.pack(">I", 1 << 30)))
    total = got
    while True:
        f = c.read_frame(10)
        assert f is not None
        if f.stream == sid and f.type == DATA:
            total += len(f.payload)
            if f.flags & END_STREAM:
                break
    assert total == 64 * BLOCK_SIZE
    assert g.vm_rss_kib() - rss < 32 * 1024
    c.close()


def test_upload_backpressure_from_a_stalled_upstream(h2c_gh, origin):
    """The origin reads the head and never the body: the client's windows
    stop opening once gatehouse's stream buffer (64 KiB) and the socket
    buffers are full, and gatehouse's memory stays flat."""
    import socket as socket_mod
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    rss0 = g.vm_rss_kib()
    body = pattern(64 * BLOCK_SIZE)
    try:
        c.request("POST", "/noread", body=body, scheme="http", timeout=3)
        finished = True
    except (socket_mod.timeout, ConnectionError):
        finished = False
    assert not finished
    sid = c.next_id - 2
    # what the windows let through: 64 KiB in gatehouse, plus what the
    # kernel's socket buffers towards the origin hold
    assert 0 < c.data_sent < 32 * BLOCK_SIZE, c.data_sent
    assert g.vm_rss_kib() - rss0 < 8 * 1024
    c.send(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
    c.close()


def test_graceful_stop_finishes_streams(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    sid = c.request("GET", "/slow/800", scheme="http")
    assert origin.wait_requests(1, 5)
    g.send_signal(signal.SIGTERM)
    status, h, body = c.response(sid)
    assert status == 200
    assert c.wait_goaway(5) is not None
    assert g.wait(15) == 0
    g.checked = True


# ---- limits and defences -----------------------------------------------------


def test_settings_advertise_limits(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]}, http2={"max_concurrent_streams": 7})
    c = h2c(g.port)
    c.read_frame(5)
    assert c.settings.get(3) == 7  # MAX_CONCURRENT_STREAMS
    assert c.settings.get(4) == 65536  # INITIAL_WINDOW_SIZE
    assert c.settings.get(6, 0) >= 32 * 1024  # MAX_HEADER_LIST_SIZE
    c.close()


def test_rapid_reset_gets_goaway_with_bounded_cost(h2c_gh, origin):
    """CVE-2023-44487: HEADERS then RST_STREAM, as fast as the socket
    takes them. The client gets GOAWAY ENHANCE_YOUR_CALM, gatehouse's CPU
    and memory stay bounded, and other clients are still served."""
    g = h2c_gh({"o": [origin.port]}, http2={"max_resets": 100, "resets_per_second": 50})
    c = h2c(g.port)
    cpu0 = proc_cpu_seconds(g.pid)
    rss0 = g.vm_rss_kib()
    sent = 0
    try:
        for batch in range(100):  # up to 20,000 streams
            out = bytearray()
            for _ in range(200):
                sid = c.next_id
                c.next_id += 2
                out += frame(HEADERS, END_HEADERS | END_STREAM, sid,
                             c.headers_block("GET", "/slow/2000", scheme="http"))
                out += frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
            c.send(bytes(out))
            sent += 200
    except OSError:
        pass  # closed on us: expected
    ga = c.wait_goaway(10)
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga
    assert c.closed_within(10)
    cpu = proc_cpu_seconds(g.pid) - cpu0
    assert cpu < 3.0, cpu  # the debug (ASan) build; release costs far less
    assert g.vm_rss_kib() - rss0 < 64 * 1024
    # at most the bucket's worth of requests reached the origin
    assert origin.count("/slow/2000") <= 120
    assert "GOAWAY for rapid reset" in g.error_log_text()
    # and others are served
    c2 = h2c(g.port)
    sid = c2.request("GET", "/echo", scheme="http")
    assert c2.response(sid)[0] == 200
    c2.close()


def test_continuation_flood_gets_goaway(h2c_gh, origin):
    """A header block that never ends: HEADERS without END_HEADERS, then
    CONTINUATION frames (the 2024 flood). Each is small and decodes to
    little; GOAWAY comes after 8 of them, before the block ends."""
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    c.read_frame(2)
    block = c.headers_block("GET", "/echo", scheme="http")
    filler = b"\x40\x03x-a\x01b"  # literal with indexing, new name
    try:
        c.send(frame(HEADERS, 0, 1, block))
        for _ in range(2000):
            c.send(frame(CONTINUATION, 0, 1, filler))
    except OSError:
        pass
    ga = c.wait_goaway(10)
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga
    assert origin.count() == 0


def test_hpack_bomb_is_cut_at_the_header_list_limit(h2c_gh, origin):
    """One 4 KiB field in the dynamic table, then a block that names it a
    thousand times (1 byte each): decoded, that is 4 MiB of fields. The
    stream gets 431; the connection lives on."""
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    big = "x" * 4000
    block = c.headers_block("GET", "/echo", scheme="http", extra=[("x-big", big)])
    sid = c.next_id
    c.next_id += 2
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
    assert c.response(sid)[0] == 200  # one such field is fine
    # the entry is now index 62 in the dynamic table: 0xbe is "indexed 62"
    sid = c.next_id
    c.next_id += 2
    c.enc = None  # the table state is ours now; no more encoder use
    base = b"\x82\x86\x84\x41\x09localhost"  # GET, http, /, :authority
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, base + b"\xbe" * 1000))
    status, h, _ = c.response(sid)
    assert status == 431 or h.get("rst") is not None
    assert origin.count() == 1


def test_too_many_fields_431(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]}, limits={"header_count": 20})
    c = h2c(g.port)
    sid = c.request("GET", "/echo", scheme="http",
                    extra=[("x-%d" % i, "v") for i in range(30)])
    assert c.response(sid)[0] == 431
    sid = c.request("GET", "/echo", scheme="http", extra=[("x-a", "v")])
    assert c.response(sid)[0] == 200
    c.close()


def test_empty_data_flood_gets_goaway(h2c_gh, origin):
    g = h2c_gh({"o": [origin.port]})
    c = h2c(g.port)
    sid = c.request("POST", "/echo", scheme="http", end=False)
    try:
        c.send(frame(DATA, 0, sid, b"") * 500)
    except OSError:
        pass
    ga = c.wait_goaway(10)
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga


def test_too_many_streams_end_the_connection(h2c_gh, origin):
    """A client that opens more streams than the SETTINGS it acknowledged
    allow breaks the protocol: nghttp2 answers GOAWAY PROTOCOL_ERROR (RFC
    9113 §5.1.2 allows a stream error; a connection error is stricter)."""
    from lib.tls import PROTOCOL_ERROR
    g = h2c_gh({"o": [origin.port]}, http2={"max_concurrent_streams": 2})
    c = h2c(g.port)
    while 3 not in c.settings:
        assert c.read_frame(5) is not None
    time.sleep(0.2)  # our SETTINGS ACK reached the server
    for _ in range(3):
        c.request("GET", "/slow/500", scheme="http")
    ga = c.wait_goaway(10)
    assert ga is not None and ga.error_code == PROTOCOL_ERROR
    assert b"max concurrent streams" in ga.payload
    assert c.closed_within(10)


def test_many_connections_and_streams_under_asan(h2c_gh, origin):
    """Eight clients at once, 50 streams each, mixed bodies: every response
    whole (the sanitizers watch the stream bookkeeping)."""
    g = h2c_gh({"o": [origin.port]}, upstream_opts={"o": {"keepalive": 64}})
    errors = []

    def client(k):
        try:
            c = h2c(g.port)
            want = {}
            for i in range(50):
                n = (k * 50 + i) * 97 % 20000
                if i % 3 == 0:
                    sid = c.request("POST", "/echo", body=pattern(n), scheme="http")
                else:
                    sid = c.request("GET", "/bytes/%d" % n, scheme="http")
                want[sid] = (i % 3 == 0, n)
            for sid, (post, n) in want.items():
                status, h, body = c.response(sid)
                if status != 200:
                    errors.append((k, sid, status, h))
                elif post and echo(body)["body_len"] != n:
                    errors.append((k, sid, "len"))
                elif not post and body != pattern(n):
                    errors.append((k, sid, "body"))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append((k, repr(e)))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:5]


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")
def test_nghttp_client(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]})
    p = subprocess.run(["nghttp", "-n", "-s", "-m", "20", https(g, "/bytes/5000")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 0, p.stdout.decode()
    assert p.stdout.decode().count("/bytes/5000") >= 20
