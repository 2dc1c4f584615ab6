"""A real browser through the forward proxy: headless Chromium (Debian's
chromium) with --proxy-server pointing at gatehouse loads a page from a
local HTTP origin (absolute-form GET) and one from a local HTTPS origin
(CONNECT tunnel; the test CA's server key is trusted through
--ignore-certificate-errors-spki-list). The test reads the DOM Chromium
rendered (--dump-dom, after the page's script ran) and checks the access
log shows both."""

import os
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = (b"<!doctype html><html><head><title>%s</title></head><body>"
        b"<p id=msg>served %s</p><script>"
        b"document.getElementById('msg').textContent += ' + rendered by JS';"
        b"</script></body></html>")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        kind = self.server.kind
        body = PAGE % (kind, kind + b" " + self.path.encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def web(fwd_ca):
    """An HTTP and an HTTPS page server on free loopback ports."""
    servers = []
    for kind in (b"http", b"https"):
        s = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        s.kind = kind
        if kind == b"https":
            s.socket = fwd_ca.server_context().wrap_socket(s.socket,
                                                            server_side=True)
        t = threading.Thread(target=s.serve_forever, daemon=True)
        t.start()
        servers.append(s)
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def chromium(proxy_port, url, tmp_path, spki):
    """Runs headless Chromium once; returns the rendered DOM."""
    assert os.path.exists(CHROMIUM), \
        "chromium is not installed (scripts/deps.sh test installs it)"
    profile = tmp_path / ("profile-%d" % len(os.listdir(tmp_path)))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--user-data-dir=%s" % profile,
           "--proxy-server=http://127.0.0.1:%d" % proxy_port,
           "--proxy-bypass-list=<-loopback>",
           "--ignore-certificate-errors-spki-list=%s" % spki,
           "--dump-dom", url]
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.run(cmd, capture_output=True, timeout=90, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return p.stdout.decode(errors="replace")


def test_chromium_http_and_https_through_proxy(forward, web, fwd_ca,
                                               tmp_path):
    http, https = web
    hport, sport = http.server_address[1], https.server_address[1]
    g = forward({"connect_ports": [sport]}, workers=2)
    dom = chromium(g.port, "http://127.0.0.1:%d/plain.html" % hport,
                   tmp_path, fwd_ca.spki)
    assert "served http /plain.html + rendered by JS" in dom, dom
    dom = chromium(g.port, "https://127.0.0.1:%d/secure.html" % sport,
                   tmp_path, fwd_ca.spki)
    assert "served https /secure.html + rendered by JS" in dom, dom
    want_http = '"GET http://127.0.0.1:%d/plain.html HTTP/1.1" 200' % hport
    want_tunnel = '"CONNECT 127.0.0.1:%d HTTP/1.1" 200' % sport
    lines = g.wait_access_lines(
        lambda ls: any(want_http in ln for ln in ls) and
        any(want_tunnel in ln for ln in ls), timeout=10)
    assert any(want_http in ln and "HeadlessChrome" in ln for ln in lines), \
        lines
    assert any(want_tunnel in ln for ln in lines), lines
