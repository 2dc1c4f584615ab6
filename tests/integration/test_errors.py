"""Errors answered precisely (status, short body, Proxy-Status per RFC 9209),
nothing revealing an upstream's address, and the access log (combined and
JSON) with one line per request and the reason of each refusal."""

import json
import re
import socket
import struct
import threading
import time

from lib.net import RawConn, curl, free_port, get, request_bytes


def proxy_status(r):
    """Parses Proxy-Status into (first member name, {param: value})."""
    v = r.get("Proxy-Status")
    assert v, "no Proxy-Status in %r" % (r.headers,)
    first = v.split(",")[0]
    parts = [p.strip() for p in first.split(";")]
    params = {}
    for p in parts[1:]:
        k, _, val = p.partition("=")
        params[k.strip()] = val.strip().strip('"')
    return parts[0], params


def assert_no_leak(r, *ports):
    text = r.raw_head.decode("latin-1") + r.body.decode("latin-1")
    for port in ports:
        assert str(port) not in text, \
            "response reveals upstream port %d:\n%s" % (port, text)
    assert "127.0.0.1:" not in text, text


def assert_error(r, status, errors, *ports):
    assert r.status == status, r
    name, params = proxy_status(r)
    assert name == "gatehouse", r.get("Proxy-Status")
    assert params.get("error") in errors, r.get("Proxy-Status")
    assert 0 < len(r.body) <= 1024, "want a short body: %r" % r.body
    assert_no_leak(r, *ports)


def dead_port():
    """A port nothing listens on (connect is refused)."""
    return free_port()


def test_502_connection_refused(reverse):
    port = dead_port()
    g = reverse({"was": [port]})
    r = get(g.port, "/x")
    assert_error(r, 502, {"connection_refused"}, port)


def test_502_refused_is_logged_with_reason(reverse):
    port = dead_port()
    g = reverse({"was": [port]})
    assert get(g.port, "/refused").status == 502
    lines = g.wait_access_lines(
        lambda ls: any("/refused" in ln for ln in ls))
    line = [ln for ln in lines if "/refused" in ln]
    assert line and "connection_refused" in line[0], lines
    assert " 502 " in line[0], line


def test_upstream_address_goes_to_error_log_only(reverse):
    port = dead_port()
    g = reverse({"was": [port]})
    r = get(g.port, "/x")
    assert r.status == 502
    assert_no_leak(r, port)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "127.0.0.1:%d" % port in g.error_log_text():
            break
        time.sleep(0.05)
    assert "127.0.0.1:%d" % port in g.error_log_text(), \
        "the error log should name the upstream address:\n" + \
        g.error_log_text()[-3000:]


def test_502_upstream_reset(origin, reverse):
    g = reverse({"was": [origin.port]})
    r = get(g.port, "/reset")
    assert_error(r, 502, {"connection_terminated"}, origin.port)


def test_502_upstream_closes_without_answer(origin, reverse):
    g = reverse({"was": [origin.port]})
    r = get(g.port, "/close")
    assert_error(r, 502, {"connection_terminated"}, origin.port)


def test_504_upstream_read_timeout(origin, reverse):
    g = reverse({"was": [origin.port]},
                upstream_opts={"was": {"read_timeout": "1s"}})
    t0 = time.monotonic()
    r = get(g.port, "/slow/6000", timeout=10)
    took = time.monotonic() - t0
    assert_error(r, 504, {"connection_read_timeout", "http_response_timeout"},
                 origin.port)
    assert 0.8 <= took < 4, "read_timeout 1s, answered after %.2fs" % took
    lines = g.wait_access_lines(lambda ls: any(" 504 " in ln for ln in ls))
    assert any(" 504 " in ln and ("timeout" in ln) for ln in lines), lines


def test_504_upstream_send_timeout(origin, reverse):
    """The origin never reads the request body: after send_timeout the
    proxy gives up with 504 connection_write_timeout."""
    g = reverse({"was": [origin.port]},
                upstream_opts={"was": {"send_timeout": "1s"}})
    body_len = 64 << 20
    with RawConn(g.port, timeout=15) as c:
        c.send(request_bytes("POST", "/noread", headers=[
            ("Content-Length", str(body_len))]))
        stop = []

        def feed():
            block = b"w" * (1 << 20)
            try:
                for _ in range(64):
                    if stop:
                        return
                    c.sock.sendall(block)
            except OSError:
                pass


        t = threading.Thread(target=feed, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            r = c.read_response(timeout=12)
        finally:
            stop.append(1)
        took = time.monotonic() - t0
    assert_error(r, 504, {"connection_write_timeout"}, origin.port)
    assert took < 8, took


def test_error_after_errors_connection_still_serves(origins, reverse):
    """A 502 is an answer like any other: the client connection stays
    usable (or is closed cleanly), and the proxy still serves."""
    good = origins("good")
    port = dead_port()
    sites = [{"default": True, "routes": [
        {"path": "/dead/", "upstream": "dead"},
        {"path": "/", "upstream": "good"}]}]
    g = reverse({"good": [good.port], "dead": [port]}, sites=sites)
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/dead/x"))
        r = c.read_response()
        assert r.status == 502
        try:
            c.send(request_bytes("GET", "/echo"))
            r2 = c.read_response()
            assert r2.status == 200
        except Exception:
            pass  # closing after an error is allowed
    assert get(g.port, "/echo").status == 200


def test_origin_error_status_passes_through(origin, reverse):
    g = reverse({"was": [origin.port]})
    r = get(g.port, "/status/503")
    assert r.status == 503
    assert r.body == b"status 503\n"
    assert "error=" not in (r.get("Proxy-Status") or ""), r.headers


def test_truncated_upstream_body_is_not_completed(origin, reverse):
    """The origin promises 100000 bytes and closes after 50000: the client
    must see an incomplete transfer promptly, not a padded or hung one."""
    g = reverse({"was": [origin.port]})
    t0 = time.monotonic()
    p = curl("http://127.0.0.1:%d/truncate/100000" % g.port, check=False,
             timeout=20)
    assert p.returncode == 18, (p.returncode, p.stderr)  # partial file
    assert len(p.stdout) < 100000
    assert time.monotonic() - t0 < 10


def test_stalled_upstream_body_hits_read_timeout(origin, reverse):
    g = reverse({"was": [origin.port]},
                upstream_opts={"was": {"read_timeout": "1s"}})
    t0 = time.monotonic()
    p = curl("http://127.0.0.1:%d/stall-body" % g.port, check=False,
             timeout=20)
    took = time.monotonic() - t0
    assert p.returncode == 18, (p.returncode, p.stderr)
    assert p.stdout == b"0123456789"
    assert took < 6, took


# ---- access log formats ---------------------------------------------------

COMBINED = re.compile(
    r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /bytes/5 HTTP/1\.1" 200 5 "-" '
    r'"curl/[^"]+"')


def test_access_log_combined_one_line_per_request(origin, reverse):
    g = reverse({"was": [origin.port]}, log={"format": "combined"})
    p = curl(*["http://127.0.0.1:%d/bytes/5" % g.port] * 3)
    assert len(p.stdout) == 15
    lines = g.wait_access_lines(lambda ls: len(ls) >= 3)
    time.sleep(0.3)
    lines = g.access_lines()
    assert len(lines) == 3, lines
    for ln in lines:
        assert COMBINED.match(ln), ln
    # the date is a real one: [26/Nov/2026:21:17:54 +0000]
    assert re.search(r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} "
                     r"[+-]\d{4}\]", lines[0]), lines[0]


def test_access_log_combined_extra_fields_and_reason(origin, reverse):
    port = dead_port()
    sites = [{"default": True, "routes": [
        {"path": "/dead/", "upstream": "dead"},
        {"path": "/", "upstream": "was"}]}]
    g = reverse({"was": [origin.port], "dead": [port]}, sites=sites,
                log={"format": "combined"})
    curl("-o", "/dev/null", "http://127.0.0.1:%d/bytes/5" % g.port)
    get(g.port, "/dead/y")
    lines = g.wait_access_lines(lambda ls: len(ls) >= 2)
    ok = [ln for ln in lines if "/bytes/5" in ln]
    bad = [ln for ln in lines if "/dead/y" in ln]
    assert len(ok) == 1 and len(bad) == 1, lines
    assert re.search(r" rt=\d+\.\d+ ups=was srv=127\.0\.0\.1:%d reason=-$"
                     % origin.port, ok[0]), ok
    assert re.search(r'"GET /dead/y HTTP/1.1" 502 \d+ .* '
                     r'reason=connection_refused$', bad[0]), bad


def test_access_log_json(origin, reverse):
    port = dead_port()
    sites = [{"default": True, "routes": [
        {"path": "/dead/", "upstream": "dead"},
        {"path": "/", "upstream": "was"}]}]
    g = reverse({"was": [origin.port], "dead": [port]}, sites=sites,
                log={"format": "json"})
    curl("-o", "/dev/null", "http://127.0.0.1:%d/bytes/5?q=1" % g.port)
    get(g.port, "/dead/y")
    lines = g.wait_access_lines(lambda ls: len(ls) >= 2)
    assert len(lines) == 2, lines
    recs = [json.loads(ln) for ln in lines]
    for rec in recs:
        for key in ("time", "client", "method", "target", "status", "bytes",
                    "duration_ms", "reason"):
            assert key in rec, (key, rec)
        assert str(rec["client"]).startswith("127.0.0.1"), rec
        assert isinstance(rec["duration_ms"], (int, float))
    ok = [r for r in recs if r["target"] == "/bytes/5?q=1"][0]
    assert ok["method"] == "GET" and int(ok["status"]) == 200
    assert int(ok["bytes"]) == 5
    bad = [r for r in recs if r["target"] == "/dead/y"][0]
    assert int(bad["status"]) == 502
    assert bad["reason"] == "connection_refused", bad


def test_access_log_pipelined_and_refused_requests(origin, reverse):
    """Each request of a keep-alive connection has its line, and so does a
    request refused at the edge (400)."""
    g = reverse({"was": [origin.port]}, log={"format": "json"})
    with RawConn(g.port) as c:
        c.send(b"".join(request_bytes("GET", "/echo?i=%d" % i)
                        for i in range(4)))
        for i in range(4):
            assert c.read_response().status == 200
    with RawConn(g.port) as c:
        c.send(b"GET /two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert c.read_response().status == 400
    lines = g.wait_access_lines(lambda ls: len(ls) >= 5)
    recs = [json.loads(ln) for ln in lines]
    assert sorted(r["target"] for r in recs if int(r["status"]) == 200) == \
        ["/echo?i=%d" % i for i in range(4)]
    bad = [r for r in recs if int(r["status"]) == 400]
    assert len(bad) == 1, recs
    assert bad[0]["reason"] not in (None, "", "-"), bad


def test_no_site_421(origin, reverse):
    """A host no site names, with no default site: 421 Misdirected Request
    (docs/config.md), answered by the proxy with no upstream detail."""
    sites = [{"hosts": ["only.test"], "routes": [{"path": "/",
                                                  "upstream": "was"}]}]
    g = reverse({"was": [origin.port]}, sites=sites)
    r = get(g.port, "/x", host="other.test")
    assert_error(r, 421, {"http_request_denied"}, origin.port)
    assert origin.count() == 0
    assert get(g.port, "/x", host="only.test").status == 200


def test_no_route_404(origin, reverse):
    sites = [{"default": True, "routes": [{"path": "/api/",
                                           "upstream": "was"}]}]
    g = reverse({"was": [origin.port]}, sites=sites)
    r = get(g.port, "/other")
    assert_error(r, 404, {"http_request_denied"}, origin.port)
    assert origin.count() == 0


def test_connect_on_reverse_listener_405(origin, reverse):
    """The DMZ rule: a reverse listener never tunnels where a client asks."""
    g = reverse({"was": [origin.port]})
    with RawConn(g.port) as c:
        c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
               % (origin.port, origin.port))
        r = c.read_response()
    assert r.status == 405, r
    assert "error=http_request_denied" in (r.get("Proxy-Status") or "")
    assert origin.count() == 0
    assert origin.accepted == 0


def test_absolute_form_authority_never_selects_destination(origins, reverse):
    """An absolute-form target naming another server (here a second origin
    that is not in the config) selects a site, never where to connect."""
    was, other = origins("was"), origins("other")
    g = reverse({"was": [was.port]})
    with RawConn(g.port) as c:
        c.send(b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1:%d"
               b"\r\n\r\n" % (other.port, other.port))
        r = c.read_response()
    assert other.accepted == 0, "connected to a server the config does not name"
    assert r.status == 200 and was.count() == 1, r


def test_expect_other_than_100_continue_417(origin, reverse):
    g = reverse({"was": [origin.port]})
    r = get(g.port, "/echo", headers=[("Expect", "something-else"),
                                      ("Content-Length", "0")])
    assert r.status == 417, r
    assert "error=http_request_error" in (r.get("Proxy-Status") or "")
    assert origin.count() == 0


def test_failover_to_next_server_when_one_refuses(origin, reverse):
    """A refused connection was never sent the request: the next server is
    tried, so every request succeeds."""
    port = dead_port()
    g = reverse({"was": [port, origin.port]}, workers=1)
    for i in range(6):
        r = get(g.port, "/echo?i=%d" % i)
        assert r.status == 200, (i, r)
    assert origin.count() == 6


def test_502_invalid_upstream_response_head(origin, reverse):
    g = reverse({"was": [origin.port]})
    r = get(g.port, "/garbage")
    assert_error(r, 502, {"http_protocol_error"}, origin.port)


def test_client_gone_logged_499(origin, reverse):
    g = reverse({"was": [origin.port]}, log={"format": "json"})
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/slow/1000"))
        assert origin.wait_requests(1)
        # gone for good: close with a reset, not a half-close
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
    lines = g.wait_access_lines(lambda ls: len(ls) >= 1, timeout=5)
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert int(rec["status"]) == 499 and rec["reason"] == "client_closed", \
        lines[0]


def test_refused_upstream_does_not_break_other_connections(reverse):
    port = dead_port()
    g = reverse({"was": [port]}, workers=2)
    for _ in range(20):
        assert get(g.port, "/x").status == 502
    assert g.alive()


def rst_close(c):
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()


def wait_open_conns(o, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and o.open_conns > n:
        time.sleep(0.05)
    return o.open_conns


def test_client_abort_mid_download_frees_upstream(origin, reverse):
    """A client that leaves in the middle of a 200 MiB body: the upstream
    connection (mid-body, not reusable) is closed, and the proxy serves
    on."""
    g = reverse({"was": [origin.port]}, workers=1)
    c = RawConn(g.port)
    c.send(request_bytes("GET", "/bytes/%d" % (200 << 20)))
    got = 0
    while got < (1 << 20):
        c._fill(time.monotonic() + 5)
        got += len(c.buf)
        c.buf.clear()
    rst_close(c)
    assert wait_open_conns(origin, 0) == 0, \
        "upstream connection left open after the client went away"
    r = get(g.port, "/echo?after")
    assert r.status == 200 and b"/echo?after" in r.body


def test_client_abort_mid_upload_frees_upstream(origin, reverse):
    g = reverse({"was": [origin.port]}, workers=1)
    c = RawConn(g.port)
    c.send(request_bytes("POST", "/echo", headers=[
        ("Content-Length", str(10 << 20))], body=b"u" * (1 << 20)))
    assert origin.wait_requests(1)
    time.sleep(0.2)
    rst_close(c)
    assert wait_open_conns(origin, 0) == 0, \
        "upstream connection left open after the client went away"
    assert not origin.requests[0].body_complete
    r = get(g.port, "/echo?after")
    assert r.status == 200 and b"/echo?after" in r.body
    assert origin.count() == 2
