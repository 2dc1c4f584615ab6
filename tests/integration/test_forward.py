"""The forward proxy through examples/forward.yaml as it is (its listener
port 3128 and its second CONNECT port 8443 rewritten to free ones in a
copy), driven with curl -x / curl -p -x: byte-exact GET, HEAD, POST and a
chunked upload to a loopback origin, CONNECT to a local TLS origin, the
refusals (CONNECT port, .invalid name, refused connection, other
schemes, origin-form), keep-alive to the origin, the header rules, and
the PAC file."""

import hashlib
import json
import os
import re
import socket
import time

import pytest

from lib.net import (RawConn, curl, free_port, pattern, pattern_sha256,
                     request_bytes, write_pattern_file)
from lib.proxy import ROOT, run_cli

EXAMPLE = os.path.join(ROOT, "examples", "forward.yaml")
MiB = 1 << 20


def example_text():
    with open(EXAMPLE) as f:
        return f.read()


def test_example_validates():
    p = run_cli(["-t", "-c", EXAMPLE])
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout + p.stderr


@pytest.fixture
def example(gatehouse, tls_origin):
    """examples/forward.yaml with 3128 -> a free port and 8443 -> the TLS
    origin's port; the access log goes to stdout as the example says."""
    text = example_text()
    assert re.search(r"listen: 127\.0\.0\.1:3128\b", text), text
    assert re.search(r"connect_ports: \[443, 8443\]", text), text
    assert "allow: [127.0.0.0/8]" in text
    port = free_port()
    text = re.sub(r"127\.0\.0\.1:3128\b", "127.0.0.1:%d" % port, text)
    text = text.replace("[443, 8443]", "[443, %d]" % tls_origin.port)
    text = text.replace("workers: auto", "workers: 2")
    g = gatehouse(text, port)
    g.proxy = "http://127.0.0.1:%d" % port
    return g


def log_lines(g, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in g.stdout().splitlines() if ln.strip()]
        if pred(lines) or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)


def pcurl(g, *args, **kw):
    """curl through the proxy <g> (-x)."""
    return curl(*args, proxy=g.proxy, **kw)


def assert_logged(g, method, target, status=200):
    """The access log has the request: it went through the proxy."""
    want = '"%s %s HTTP/1.1" %d' % (method, target, status)
    lines = log_lines(g, lambda ls: any(want in ln for ln in ls))
    assert any(want in ln for ln in lines), (want, lines)


def url(o, path):
    return "http://127.0.0.1:%d%s" % (o.port, path)


@pytest.mark.parametrize("n", [1, MiB])
def test_get_byte_exact(example, origin, tmp_path, n):
    out = tmp_path / "o"
    p = pcurl(example, "-o", out, "-w", "%{http_code}",
             url(origin, "/bytes/%d" % n))
    assert p.stdout == b"200"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(n)
    assert_logged(example, "GET", url(origin, "/bytes/%d" % n))


def test_get_chunked_byte_exact(example, origin, tmp_path):
    n = 3 * MiB + 7
    out = tmp_path / "o"
    pcurl(example, "-o", out, url(origin, "/chunked/%d" % n))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(n)


def test_head(example, origin):
    p = pcurl(example, "-I", url(origin, "/bytes/777"))
    text = p.stdout.decode()
    assert text.startswith("HTTP/1.1 200"), text
    assert "content-length: 777" in text.lower()
    assert origin.requests[-1].method == "HEAD"
    assert_logged(example, "HEAD", url(origin, "/bytes/777"))


@pytest.mark.parametrize("n", [1, MiB])
def test_post_byte_exact(example, origin, tmp_path, n):
    f = write_pattern_file(tmp_path / "body", n)
    p = pcurl(example, "--data-binary", "@%s" % f,
             url(origin, "/echo"))
    e = json.loads(p.stdout)
    assert e["method"] == "POST"
    assert e["body_len"] == n and e["body_sha256"] == pattern_sha256(n)
    assert ["Via", "1.1 gatehouse"] in e["headers"]


def test_chunked_upload_10mib(example, origin, tmp_path):
    n = 10 * MiB
    f = write_pattern_file(tmp_path / "body", n)
    p = pcurl(example, "-H", "Transfer-Encoding: chunked",
             "--data-binary", "@%s" % f, url(origin, "/echo"))
    e = json.loads(p.stdout)
    assert e["framing"] == "chunked"
    assert e["body_len"] == n and e["body_sha256"] == pattern_sha256(n)
    assert ["Via", "1.1 gatehouse"] in e["headers"]


def test_origin_sees_origin_form_and_forwarding_fields(example, origin):
    p = pcurl(example, "-H", "Proxy-Connection: keep-alive",
             "-H", "X-Custom: kept", url(origin, "/echo?q=1"))
    e = json.loads(p.stdout)
    assert e["target"] == "/echo?q=1"  # origin-form, not absolute
    h = {k.lower(): v for k, v in e["headers"]}
    assert h["host"] == "127.0.0.1:%d" % origin.port
    assert h["via"] == "1.1 gatehouse"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-custom"] == "kept"
    for gone in ("proxy-connection", "proxy-authorization",
                 "x-forwarded-proto", "x-forwarded-host"):
        assert gone not in h, (gone, h)


def test_name_from_etc_hosts(example, origin):
    """localhost resolves (c-ares reads /etc/hosts) and the Host field
    keeps the name."""
    p = pcurl(example,
             "http://localhost:%d/echo" % origin.port)
    h = {k.lower(): v for k, v in json.loads(p.stdout)["headers"]}
    assert h["host"] == "localhost:%d" % origin.port


def test_keepalive_to_origin(example, origin):
    """Ten requests on one client connection: the origin sees one
    connection (the worker's pool for it)."""
    pcurl(example, *[url(origin, "/echo?i=%d" % i)
                                for i in range(10)])
    assert origin.count() == 10
    assert origin.accepted == 1, origin.accepted


def test_http10_client_without_host(example, origin):
    with RawConn(example.port) as c:
        c.send(b"GET %s HTTP/1.0\r\n\r\n" % url(origin, "/bytes/100").encode())
        r = c.read_response()
        assert r.status == 200
        assert r.body == pattern(100)
        assert c.closed_within(5)


def test_connect_to_tls_origin(example, tls_origin, fwd_ca, tmp_path):
    n = MiB + 3
    out = tmp_path / "o"
    p = pcurl(example, "-p", "--cacert", fwd_ca.ca, "-o", out,
             "-w", "%{http_code}",
             "https://127.0.0.1:%d/bytes/%d" % (tls_origin.port, n))
    assert p.stdout == b"200"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(n)
    # curl -p tunnels plain http through CONNECT just as well
    lines = log_lines(example, lambda ls: any("CONNECT" in ln for ln in ls))
    ln = next(ln for ln in lines if "CONNECT" in ln)
    assert '"CONNECT 127.0.0.1:%d HTTP/1.1" 200' % tls_origin.port in ln, ln
    assert "ups=127.0.0.1:%d" % tls_origin.port in ln


def test_connect_tls_upload(example, tls_origin, fwd_ca, tmp_path):
    n = 2 * MiB
    f = write_pattern_file(tmp_path / "body", n)
    p = pcurl(example, "-p", "--cacert", fwd_ca.ca,
             "--data-binary", "@%s" % f,
             "https://localhost:%d/echo" % tls_origin.port)
    e = json.loads(p.stdout)
    assert e["body_len"] == n and e["body_sha256"] == pattern_sha256(n)


def test_connect_port_not_allowed_403(example, origin):
    p = pcurl(example, "-p", "-o", "/dev/null", "-w",
             "%{http_connect}", url(origin, "/echo"), check=False)
    assert p.stdout == b"403", p
    with RawConn(example.port) as c:
        c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n"
               % origin.port)
        r = c.read_response("CONNECT")
        assert r.status == 403
        assert r.get("Proxy-Status") == \
            'gatehouse; error=http_request_denied; ' \
            'details="forward.connect_ports"', r.headers
        assert b"port" in r.body
        assert c.closed_within(5)  # no HTTP after a refused CONNECT
    assert origin.accepted == 0
    lines = log_lines(example, lambda ls: len(ls) >= 2)
    assert any('"CONNECT 127.0.0.1:%d HTTP/1.1" 403' % origin.port in ln and
               "reason=forward.connect_ports" in ln for ln in lines), lines


def test_invalid_name_502_dns_error_quickly(example):
    t0 = time.monotonic()
    with RawConn(example.port) as c:
        c.send(request_bytes("GET", "http://no-such-host.invalid/x",
                             host="no-such-host.invalid"))
        r = c.read_response()
    took = time.monotonic() - t0
    assert r.status == 502, r
    assert r.get("Proxy-Status") == \
        'gatehouse; error=dns_error; rcode="NXDOMAIN"', r.headers
    assert took < 1.0, took
    lines = log_lines(example, lambda ls: any("invalid" in ln for ln in ls))
    assert any("reason=dns_error:NXDOMAIN" in ln for ln in lines), lines


def test_connection_refused_502(example):
    port = free_port()  # nothing listens there
    with RawConn(example.port) as c:
        c.send(request_bytes("GET", "http://127.0.0.1:%d/" % port,
                             host="127.0.0.1:%d" % port))
        r = c.read_response()
    assert r.status == 502
    assert "error=connection_refused" in r.get("Proxy-Status")


def test_other_schemes_400(example):
    for target in ("ftp://127.0.0.1/file", "https://127.0.0.1/"):
        with RawConn(example.port) as c:
            c.send(request_bytes("GET", target, host="127.0.0.1"))
            r = c.read_response()
        assert r.status == 400, (target, r)
        assert 'details="unsupported_scheme"' in r.get("Proxy-Status")
        assert b"CONNECT" in r.body


def test_origin_form_400(example):
    with RawConn(example.port) as c:
        c.send(request_bytes("GET", "/index.html", host="example.com"))
        r = c.read_response()
    assert r.status == 400
    assert 'details="origin_form"' in r.get("Proxy-Status")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "a..b", "0x7f.1",
                                  "-_-.%41"])
def test_bad_host_names_400(example, host):
    with RawConn(example.port) as c:
        c.send(request_bytes("GET", "http://%s:8080/" % host, host=host))
        r = c.read_response()
    assert r.status == 400, (host, r)


@pytest.mark.parametrize("path", ["/proxy.pac", "/wpad.dat"])
def test_pac(example, path):
    p = curl("-i", "http://127.0.0.1:%d%s" % (example.port, path))
    head, _, body = p.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "content-type: application/x-ns-proxy-autoconfig" in head.lower()
    assert "function FindProxyForURL(url, host)" in body
    assert 'return "PROXY 127.0.0.1:%d";' % example.port in body
    assert "isPlainHostName(host)" in body


def test_websocket_through_absolute_form(example, origin):
    """An absolute-form request with Upgrade: websocket keeps its Upgrade;
    after the origin's 101 the connection is a tunnel."""
    import base64
    from lib.origin import ws_frame
    key = base64.b64encode(os.urandom(16)).decode()
    with RawConn(example.port) as c:
        c.send(request_bytes("GET", url(origin, "/ws"),
                             host="127.0.0.1:%d" % origin.port,
                             headers=[("Upgrade", "websocket"),
                                      ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", key),
                                      ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        assert r.status == 101, r
        c.send(ws_frame(1, b"through the forward proxy", b"abcd"))
        deadline = time.monotonic() + 5
        while b"through the forward proxy" not in c.buf:
            c._fill(deadline)
