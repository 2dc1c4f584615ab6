"""TLS to upstream servers (issue 6): an origin serving HTTPS with a
certificate from the test CA; verification on by default (CA, name or IP
address), a client certificate, pooled TLS connections, resumed sessions,
and the precise errors when verification fails."""

import json
import ssl

import pytest

from lib.net import BLOCK_SIZE, curl, pattern_sha256, write_pattern_file


def server_ctx(test_ca, name="localhost", client_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(test_ca.path(name + ".pem"), test_ca.path(name + ".key"))
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def get(g, path="/echo", check=True):
    return curl("-D", "-", "http://127.0.0.1:%d%s" % (g.port, path), check=check)


def split(p):
    head, _, body = p.stdout.decode(errors="replace").partition("\r\n\r\n")
    return head, body


def test_https_upstream_verified_by_ip(reverse, origins, test_ca):
    o = origins("tls", tls=server_ctx(test_ca))  # localhost.pem has IP 127.0.0.1
    g = reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {"ca": test_ca.ca}}})
    head, body = split(get(g))
    assert head.startswith("HTTP/1.1 200"), head
    assert json.loads(body)["path"] == "/echo"
    assert o.tls_handshakes and o.tls_handshakes[0][0] in ("TLSv1.3", "TLSv1.2")


def test_https_upstream_by_name_and_bodies(reverse, origins, test_ca, tmp_path):
    o = origins("tls", tls=server_ctx(test_ca, "multi"))  # a.test, *.b.test
    g = reverse({"o": [o.port]},
                upstream_opts={"o": {"tls": {"ca": test_ca.ca, "name": "x.b.test"}}})
    n = 4 * BLOCK_SIZE + 3
    up = write_pattern_file(str(tmp_path / "up"), n)
    p = curl("--data-binary", "@" + up, "http://127.0.0.1:%d/echo" % g.port)
    d = json.loads(p.stdout)
    assert d["body_len"] == n and d["body_sha256"] == pattern_sha256(n)
    p = curl("http://127.0.0.1:%d/chunked/%d" % (g.port, n), "-o", str(tmp_path / "d"))
    from lib.net import file_sha256
    assert file_sha256(str(tmp_path / "d")) == pattern_sha256(n)


def test_pooled_tls_connections_and_resumption(reverse, origins, test_ca):
    o = origins("tls", tls=server_ctx(test_ca))
    g = reverse({"o": [o.port]},
                upstream_opts={"o": {"tls": {"ca": test_ca.ca}, "keepalive": 0}})
    for _ in range(6):
        assert split(get(g))[0].startswith("HTTP/1.1 200")
    # keepalive 0: a new connection per request, all but the first resumed
    assert len(o.tls_handshakes) == 6
    assert sum(1 for h in o.tls_handshakes if h[1]) >= 4, o.tls_handshakes
    o2 = origins("tls2", tls=server_ctx(test_ca))
    g2 = reverse({"o": [o2.port]}, upstream_opts={"o": {"tls": {"ca": test_ca.ca}}})
    for _ in range(10):
        assert split(get(g2))[0].startswith("HTTP/1.1 200")
    assert len(o2.tls_handshakes) == 1  # one pooled TLS connection


def test_certificate_not_trusted_is_502(reverse, origins, test_ca, tmp_path):
    from lib.tls import TestCA
    other = TestCA(tmp_path / "other")
    o = origins("tls", tls=server_ctx(test_ca))
    g = reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {"ca": other.ca}}})
    head, body = split(get(g, check=False))
    assert head.startswith("HTTP/1.1 502"), head
    assert "Proxy-Status: gatehouse; error=tls_certificate_error" in head
    assert "127.0.0.1" not in body
    assert "certificate: unable to get local issuer certificate" in g.error_log_text()


def test_name_mismatch_is_502(reverse, origins, test_ca):
    o = origins("tls", tls=server_ctx(test_ca))
    g = reverse({"o": [o.port]},
                upstream_opts={"o": {"tls": {"ca": test_ca.ca, "name": "wrong.test"}}})
    head, _ = split(get(g, check=False))
    assert head.startswith("HTTP/1.1 502") and "tls_certificate_error" in head
    # without verification it goes through
    g2 = reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {"verify": False}}})
    assert split(get(g2))[0].startswith("HTTP/1.1 200")


def test_plain_server_behind_tls_is_502(reverse, test_ca):
    """A server that answers the ClientHello in plain HTTP (as nginx does
    on a plain port): 502 tls_protocol_error."""
    import socket
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    ls.settimeout(10)

    def serve():
        try:
            s, _ = ls.accept()
            s.recv(4096)
            s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            s.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    g = reverse({"o": [ls.getsockname()[1]]},
                upstream_opts={"o": {"tls": {"ca": test_ca.ca}}})
    head, _ = split(get(g, check=False))
    t.join(10)
    ls.close()
    assert head.startswith("HTTP/1.1 502") and "tls_protocol_error" in head, head


def test_client_certificate_to_upstream(reverse, origins, test_ca):
    o = origins("mtls", tls=server_ctx(test_ca, client_ca=test_ca.ca))
    g = reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {
        "ca": test_ca.ca, "cert": test_ca.path("alice.pem"),
        "key": test_ca.path("alice.key")}}})
    assert split(get(g))[0].startswith("HTTP/1.1 200")
    assert o.tls_handshakes[-1][2] == "alice"
    g2 = reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {"ca": test_ca.ca}}})
    head, _ = split(get(g2, check=False))
    assert head.startswith("HTTP/1.1 502")


def test_https_upstream_behind_https_and_h2(tls_reverse, origins, test_ca):
    """TLS on both sides: a browser-like client over h2, the upstream over
    HTTPS/1.1."""
    o = origins("tls", tls=server_ctx(test_ca))
    g = tls_reverse({"o": [o.port]}, upstream_opts={"o": {"tls": {"ca": test_ca.ca}}})
    p = curl("--cacert", test_ca.ca, "--http2", "https://localhost:%d/echo" % g.port)
    assert json.loads(p.stdout)["path"] == "/echo"
