"""AJP/1.3 upstreams (docs/ajp.md) against a real Tomcat (Debian's tomcat10,
started here with its own CATALINA_BASE, an AJP connector with a secret and
an echo servlet), side by side with the same Tomcat over HTTP: method,
path, query, headers, client address, request bodies and large responses
arrive intact both ways. A fake container shows what gatehouse sends
(CPING before reuse, the attributes, nothing a client can inject). Sent
straight to Tomcat without the secret, a request is refused: the secret
is what protects the connector (CVE-2020-1938)."""

import gzip
import hashlib
import json
import os
import re
import subprocess
import time

import pytest

from lib.ajp import FakeContainer, direct_request
from lib.net import (RawConn, curl, free_port, get, pattern_sha256,
                     request_bytes)
from lib.proxy import ROOT, run_cli
from lib.tomcat import Tomcat, available

SECRET = "s3cret-for-tests"

pytestmark = pytest.mark.skipif(not available(), reason="tomcat10/javac missing")


@pytest.fixture(scope="module")
def tomcat(tmp_path_factory):
    t = Tomcat(tmp_path_factory.mktemp("catalina"), secret=SECRET)
    t.start()
    yield t
    t.stop()


@pytest.fixture
def was(tomcat, reverse):
    """gatehouse with /ajp/... -> Tomcat over AJP, /http/... -> over HTTP
    (the routes differ by host so the servlet sees the same paths)."""
    g = reverse({"ajp": ["ajp://127.0.0.1:%d" % tomcat.ajp_port],
                 "http": [tomcat.http_port]},
                upstream_opts={"ajp": {"ajp": {"secret": SECRET}}},
                sites=[{"host": "ajp.test", "routes": [{"path": "/", "upstream": "ajp"}]},
                       {"host": "http.test", "routes": [{"path": "/", "upstream": "http"}]},
                       {"host": "z.test", "routes": [{"path": "/", "upstream": "ajp",
                                                      "compress": True}]}])
    return g


BOTH = ["ajp.test", "http.test"]


def echo(port, target, host, method="GET", headers=(), body=b""):
    with RawConn(port) as c:
        c.send(request_bytes(method, target, host, headers, body))
        r = c.read_response(method)
        client_port = c.sock.getsockname()[1]
    assert r.status == 200, r
    return r, json.loads(r.body), client_port


@pytest.mark.parametrize("host", BOTH)
def test_request_arrives_intact(was, host):
    r, d, cport = echo(was.port, "/app/a%20b/c.jsp?x=1&y=%C3%A9&z", host,
                       headers=[("X-Custom", "one"), ("X-Custom", "two"),
                                ("Cookie", "a=b"), ("Accept-Language", "fr"),
                                ("User-Agent", "gatehouse-test")])
    assert d["method"] == "GET"
    assert d["uri"] == "/app/a%20b/c.jsp"
    assert d["query"] == "x=1&y=%C3%A9&z"
    assert d["remote_addr"] == "127.0.0.1"
    hs = [(k.lower(), v) for k, v in d["headers"]]
    assert ("x-custom", "one") in hs and ("x-custom", "two") in hs
    assert ("cookie", "a=b") in hs and ("accept-language", "fr") in hs
    assert ("user-agent", "gatehouse-test") in hs
    assert ("x-forwarded-for", "127.0.0.1") in hs
    assert ("host", host) in hs
    assert d["server_name"] == host
    if host == "ajp.test":
        assert d["remote_port"] == cport  # AJP_REMOTE_PORT: the real client
        assert r.reason == "OK"  # not Tomcat's "200"
    assert r.get("X-Echo") == "tomcat"


@pytest.mark.parametrize("host", BOTH)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_post_body_intact(was, host, framing):
    body = os.urandom(3 * 1024 * 1024 + 5)
    if framing == "length":
        hdrs = [("Content-Length", str(len(body)))]
        raw = body
    else:
        hdrs = [("Transfer-Encoding", "chunked")]
        raw = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50000]), body[i:i + 50000])
                       for i in range(0, len(body), 50000)) + b"0\r\n\r\n"
    r, d, _ = echo(was.port, "/upload", host, "POST",
                   hdrs + [("Content-Type", "application/octet-stream")], raw)
    assert d["method"] == "POST"
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("host", BOTH)
@pytest.mark.parametrize("chunked", [False, True])
def test_large_response_intact(was, host, chunked):
    n = 24 * 1024 * 1024 + 3
    p = curl("-H", "Host: " + host, "-D", "/dev/stderr",
             "http://127.0.0.1:%d/big/%d%s" % (was.port, n, "?chunked=1" if chunked else ""),
             timeout=120)
    assert len(p.stdout) == n
    assert hashlib.sha256(p.stdout).hexdigest() == pattern_sha256(n)
    head = p.stderr.decode().lower()
    assert ("transfer-encoding: chunked" in head) == chunked, head


def test_head_and_methods(was):
    r = get(was.port, "/big/1000", host="ajp.test", method="HEAD")
    assert r.status == 200 and r.body == b"" and r.get("Content-Length") == "1000"
    for m in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        r, d, _ = echo(was.port, "/m", "ajp.test", m,
                       [("Content-Length", "3")], b"abc")
        assert d["method"] == m
        assert d["body_len"] == 3


def ajp_conns(gh, port):
    out = subprocess.run(["ss", "-tnp", "state", "established",
                          "dst", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, text=True).stdout
    return sum(1 for ln in out.splitlines() if "pid=%d," % gh.pid in ln)


def test_keepalive_ajp_connection_reused(was, tomcat):
    # one client connection: each request starts after the last one's
    # END_RESPONSE (with a new client connection per request, the next
    # one can arrive while the container is still finishing the last)
    with RawConn(was.port) as c:
        for i in range(10):
            c.send(request_bytes("GET", "/k/%d" % i, "ajp.test"))
            r = c.read_response()
            assert json.loads(r.body)["uri"] == "/k/%d" % i
    assert ajp_conns(was, tomcat.ajp_port) == 1


def test_client_cannot_inject_attributes(was):
    """Headers named like the attributes Ghostcat set, or like identity the
    container would trust, stay headers: no request attribute, no user."""
    evil = [("javax.servlet.include.request_uri", "/WEB-INF/web.xml"),
            ("javax.servlet.include.servlet_path", "/WEB-INF/web.xml"),
            ("jakarta.servlet.include.request_uri", "/WEB-INF/web.xml"),
            ("AJP_REMOTE_PORT", "1"), ("AJP_LOCAL_ADDR", "6.6.6.6"),
            ("REMOTE_USER", "admin"), ("X-Remote-User", "admin"),
            ("Authorization", "Basic YWRtaW46YWRtaW4=")]
    r, d, cport = echo(was.port, "/ghost", "ajp.test", headers=evil)
    assert d["attributes"] == [], d["attributes"]
    assert d["remote_user"] is None and d["auth_type"] is None
    assert d["remote_port"] == cport
    assert d["uri"] == "/ghost"  # the servlet answered, no include happened
    assert b"<web-app" not in r.body
    r = get(was.port, "/WEB-INF/web.xml", host="ajp.test", headers=evil)
    assert r.status == 404 and b"<web-app" not in r.body


def test_secret_is_what_protects_tomcat(tomcat):
    # straight to the AJP port, as Ghostcat did: no secret, refused
    status, body = direct_request(tomcat.ajp_port, uri="/x")
    assert status == 403 or status is None, (status, body)
    status, body = direct_request(tomcat.ajp_port, uri="/x", secret="wrong")
    assert status == 403 or status is None, (status, body)
    # with the secret, served
    status, body = direct_request(tomcat.ajp_port, uri="/x", secret=SECRET)
    assert status == 200 and b'"uri":"/x"' in body
    # the Ghostcat attribute, even with the secret: Tomcat refuses it
    status, body = direct_request(
        tomcat.ajp_port, uri="/x", secret=SECRET,
        attributes=[("javax.servlet.include.request_uri", "/WEB-INF/web.xml")])
    assert status == 403 or status is None, (status, body)


def test_config_refuses_ajp_without_secret(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("upstreams:\n  was:\n    servers: [ajp://127.0.0.1:8009]\n"
                   "listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
                   "      - routes: [ { path: /, upstream: was } ]\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode != 0
    assert re.search(r"g.yaml:2:3: .*no \"ajp: \{ secret", p.stderr), p.stderr
    assert "CVE-2020-1938" in p.stderr
    cfg.write_text("upstreams:\n  was:\n    servers: [ajp://127.0.0.1:8009, 127.0.0.1:8080]\n"
                   "    ajp: { secret: x }\n"
                   "listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
                   "      - routes: [ { path: /, upstream: was } ]\n")
    p = run_cli(["-t", "-c", str(cfg)])
    assert p.returncode != 0 and "mixes ajp:// and HTTP" in p.stderr, p.stderr
    for extra, why in (("    tls: true\n", '"tls" is not available with ajp://'),
                       ("    proxy_protocol: v2\n", '"proxy_protocol" is not available'),
                       ("    health: { path: /ok }\n", "health: { type: tcp }")):
        cfg.write_text("upstreams:\n  was:\n    servers: [ajp://127.0.0.1:8009]\n"
                       "    ajp: { secret: x }\n" + extra +
                       "listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
                       "      - routes: [ { path: /, upstream: was } ]\n")
        p = run_cli(["-t", "-c", str(cfg)])
        assert p.returncode != 0 and why in p.stderr and "g.yaml:5:5:" in p.stderr, p.stderr


def test_compression_over_ajp(was):
    r = get(was.port, "/z?pad=" + "x" * 400, host="z.test",
            headers=[("Accept-Encoding", "gzip")])
    assert r.get("Content-Encoding") == "gzip"
    d = json.loads(gzip.decompress(r.body))
    assert d["uri"] == "/z"
    assert r.get("Vary") == "Accept-Encoding"


def test_ajp_server_down_502(reverse):
    dead = free_port()
    g = reverse({"a": ["ajp://127.0.0.1:%d" % dead]},
                upstream_opts={"a": {"ajp": {"secret": "x"}}})
    r = get(g.port, "/")
    assert r.status == 502 and "connection_refused" in r.get("Proxy-Status")


# ---- against the fake container: what exactly goes on the wire ----

@pytest.fixture
def fake():
    f = FakeContainer()
    yield f
    f.stop()


def test_cping_before_reuse_and_attributes(fake, reverse):
    g = reverse({"a": ["ajp://127.0.0.1:%d" % fake.port]},
                upstream_opts={"a": {"ajp": {"secret": "sesame"}}})
    with RawConn(g.port) as c:
        cport = c.sock.getsockname()[1]
        for i in range(3):
            c.send(request_bytes("POST", "/p%d?q=%d" % (i, i),
                                 headers=[("Content-Length", "5"),
                                          ("javax.servlet.include.path_info", "/x")],
                                 body=b"hello"))
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok 5"
    kinds = [k for _, k, _ in fake.log]
    assert kinds == ["request", "cping", "request", "cping", "request"], fake.log
    assert len({cid for cid, _, _ in fake.log}) == 1  # one AJP connection
    req = fake.requests[0]
    attrs = dict(req["attributes"])
    assert attrs.get("code:05") == "q=0"          # query_string
    assert attrs.get("code:0c") == "sesame"       # secret
    assert attrs.get("AJP_REMOTE_PORT") == str(cport)
    assert attrs.get("AJP_LOCAL_ADDR") == "127.0.0.1"
    assert set(attrs) == {"code:05", "code:0c", "AJP_REMOTE_PORT", "AJP_LOCAL_ADDR"}
    assert req["uri"] == "/p0" and req["body"] == b"hello"
    assert ("javax.servlet.include.path_info", "/x") in req["headers"]  # a header


def test_cping_unanswered_uses_a_fresh_connection(reverse):
    f = FakeContainer(cpong=False)
    try:
        g = reverse({"a": ["ajp://127.0.0.1:%d" % f.port]},
                    upstream_opts={"a": {"ajp": {"secret": "s", "cping_timeout": "300ms"}}})
        assert get(g.port, "/one").body == b"ok 0"
        t0 = time.monotonic()
        r = get(g.port, "/two")
        assert r.status == 200 and r.body == b"ok 0"
        assert time.monotonic() - t0 < 3
        assert f.conns == 2
        assert "CPING timed out" in g.error_log_text()
    finally:
        f.stop()


@pytest.mark.parametrize("lie", ["long", "short"])
def test_body_unlike_content_length_cuts_the_client(reverse, lie):
    """A container whose body does not match its Content-Length must not
    desynchronise the client's connection: it is closed."""
    f = FakeContainer(lie=lie)
    try:
        g = reverse({"a": ["ajp://127.0.0.1:%d" % f.port]},
                    upstream_opts={"a": {"ajp": {"secret": "s"}}})
        with RawConn(g.port) as c:
            c.send(request_bytes("GET", "/x"))
            c.read_until_close(5)  # whatever came, the connection ends
            assert c.eof
        assert "Content-Length" in g.error_log_text()
    finally:
        f.stop()


def test_example_web_was(tomcat, gatehouse, tmp_path):
    """examples/web-was.yaml as shipped, with its ports pointed at ours."""
    text = open(os.path.join(ROOT, "examples", "web-was.yaml")).read()
    port = free_port()
    text = text.replace("127.0.0.1:8000", "127.0.0.1:%d" % port)
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % tomcat.http_port)
    text = text.replace("127.0.0.1:8009", "127.0.0.1:%d" % tomcat.ajp_port)
    text = text.replace("change-me-to-the-tomcat-secret", SECRET)
    text = text.replace("root: examples/www", "root: " + os.path.join(ROOT, "examples", "www"))
    g = gatehouse(text, port)
    r = get(port, "/static/site.css")
    assert r.status == 200 and r.get("Content-Type") == "text/css"
    assert r.body == open(os.path.join(ROOT, "examples/www/static/site.css"), "rb").read()
    r = get(port, "/app/logo.png")
    assert r.status == 200 and r.get("Content-Type") == "image/png"
    r, d, _ = echo(port, "/app/hello?name=x", "localhost")
    assert d["uri"] == "/app/hello" and d["query"] == "name=x"
    r, d, _ = echo(port, "/http/hello", "localhost")
    assert d["uri"] == "/http/hello"


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_over_tls_and_h2(tomcat, tls_reverse, test_ca, proto):
    """Clients over TLS and HTTP/2 in front of AJP: the echo, a POST body
    and a large response (with and without Content-Length) arrive intact."""
    g = tls_reverse({"ajp": ["ajp://127.0.0.1:%d" % tomcat.ajp_port]},
                    upstream_opts={"ajp": {"ajp": {"secret": SECRET}}})

    def fetch(path, *args):
        return curl("--cacert", test_ca.ca, proto, *args,
                    "https://localhost:%d%s" % (g.port, path), timeout=120)
    d = json.loads(fetch("/tls/x?y=1", "-H", "X-A: b").stdout)
    assert d["uri"] == "/tls/x" and d["query"] == "y=1"
    assert ["x-a", "b"] in [[k.lower(), v] for k, v in d["headers"]]
    body = os.urandom(300000)
    p = curl("--cacert", test_ca.ca, proto, "--data-binary", "@-", "-H",
             "Content-Type: application/octet-stream",
             "https://localhost:%d/up" % g.port, input=body, timeout=120)
    d = json.loads(p.stdout)
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()
    for q in ("", "?chunked=1"):
        n = 5 * 1024 * 1024 + 1
        out = fetch("/big/%d%s" % (n, q)).stdout
        assert len(out) == n and hashlib.sha256(out).hexdigest() == pattern_sha256(n)
