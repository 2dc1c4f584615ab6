"""TLS handshakes and denials in /metrics and /status (issue 8): a TLS
handshake with a client is counted once it completes, a resumption once
more (openssl s_client -sess_out / -sess_in); requests refused by access
rules (403), rate limits (429) and proxy authentication (407), and
connections refused by connections_per_address, are counted exactly as the
test sent them, on reverse and forward listeners, in
gatehouse_denied_total{reason}."""

import base64
import socket
import subprocess

import pytest

from lib.net import HOST, RawConn, curl, free_port, request_bytes, wait_until
from lib.ops import ops_config, status
from lib.prom import denied, scrape, val
from lib.proxy import forward_config
from lib.tls import s_client

OTHER = "127.0.0.2"
RET = [{"path": "/", "return": {"status": 200, "body": "ok\n"}}]


def with_admin(cfg, aport):
    cfg["admin"] = {"listen": "%s:%d" % (HOST, aport)}
    cfg["security"] = {"run_as_root": True}
    return cfg


def conn_from(port, src=HOST, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, timeout, bytearray(), False
    return c


def get_from(port, target, src=HOST, host="localhost", headers=()):
    """One request on a fresh connection from source address <src>."""
    with conn_from(port, src) as c:
        c.send(request_bytes("GET", target, host=host, headers=headers))
        return c.read_response()


# ---- TLS ---------------------------------------------------------------------


def test_tls_handshakes_and_resumptions_counted(gatehouse, test_ca, tmp_path):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"o": [1]}, admin_port=aport, workers=2,
                     sites=[{"default": True, "routes": RET}])
    cfg["listeners"][0]["tls"] = {"certificates": [{
        "cert": test_ca.path("localhost.pem"), "key": test_ca.path("localhost.key")}]}
    g = gatehouse(cfg, port)
    s = scrape(aport)
    assert val(s, "gatehouse_tls_handshakes_total") == 0
    assert val(s, "gatehouse_tls_resumptions_total") == 0
    # one curl each: a fresh connection and a full handshake every time
    url = "https://localhost:%d/" % port
    for proto in ("--http1.1", "--http1.1", "--http1.1", "--http2", "--http2"):
        assert curl("--cacert", test_ca.ca, proto, url).stdout == b"ok\n"
    s = scrape(aport)
    assert val(s, "gatehouse_tls_handshakes_total") == 5
    assert val(s, "gatehouse_tls_resumptions_total") == 0
    # a session saved, then resumed
    sess = str(tmp_path / "sess")
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    out = s_client(port, "-sess_out", sess, stdin=req)
    assert "New, TLSv1." in out, out[-2000:]
    out = s_client(port, "-sess_in", sess, stdin=req)
    assert "Reused, TLSv1." in out, out[-2000:]
    s = scrape(aport)
    assert val(s, "gatehouse_tls_handshakes_total") == 7
    assert val(s, "gatehouse_tls_resumptions_total") == 1
    # a connection that never completes a handshake is not counted
    with conn_from(port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain text to TLS
        c.sock.settimeout(5)
        try:
            while c.sock.recv(4096):
                pass
        except OSError:
            pass
    s = scrape(aport)
    assert val(s, "gatehouse_tls_handshakes_total") == 7
    assert status(aport)["tls"] == {"handshakes": 7, "resumed": 1}
    assert g.alive()


# ---- reverse listeners ---------------------------------------------------------


def test_rate_limit_429s_counted_on_a_reverse_listener(gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"o": [1]}, admin_port=aport, workers=2,
                     sites=[{"default": True, "routes": RET + [
                         {"path": "/tight/", "return": {"status": 200, "body": "t\n"},
                          "rate_limits": [{"by": "route", "rate": "1/m", "burst": 2}]}]}])
    cfg["listeners"][0]["rate_limits"] = [{"rate": "1/m", "burst": 6}]
    g = gatehouse(cfg, port)
    assert denied(aport) == {"acl": 0, "rate_limit": 0, "conn_limit": 0, "auth": 0}
    # the route's own limit: 2 pass, 2 refused (the listener's bucket pays 4)
    got = [get_from(port, "/tight/x").status for _ in range(4)]
    assert got == [200, 200, 429, 429], got
    # the listener's limit from 127.0.0.1: 2 tokens left, then 5 refused
    got = [get_from(port, "/").status for _ in range(7)]
    assert got == [200, 200] + [429] * 5, got
    # another address has its own bucket
    assert [get_from(port, "/", OTHER).status for _ in range(3)] == [200] * 3
    assert denied(aport) == {"acl": 0, "rate_limit": 7, "conn_limit": 0, "auth": 0}
    assert status(aport)["denied"]["rate_limit"] == 7
    # the 429s are also in the requests by status class
    L = "%s:%d" % (HOST, port)
    s = scrape(aport)
    assert val(s, "gatehouse_requests_total", listener=L, site="*", route="/",
               code="4xx") == 5
    assert val(s, "gatehouse_requests_total", listener=L, site="*", route="/tight/",
               code="4xx") == 2
    assert g.alive()


def test_connections_per_address_refusals_counted(gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"o": [1]}, admin_port=aport,
                     sites=[{"default": True, "routes": RET}],
                     limits={"connections_per_address": 2})
    g = gatehouse(cfg, port)
    # the start-up probe's connection has gone: it no longer counts
    assert wait_until(lambda: status(aport)["listeners"][0]["open"] == 0, 5)
    held = [conn_from(port) for _ in range(2)]
    try:
        for c in held:  # both counted and served
            c.send(request_bytes("GET", "/", "localhost"))
            assert c.read_response().status == 200
        for _ in range(3):  # each closed at once, unanswered
            with conn_from(port) as c:
                c.sock.settimeout(5)
                try:
                    c.send(request_bytes("GET", "/", "localhost"))
                    assert c.sock.recv(100) == b""
                except (ConnectionResetError, BrokenPipeError):
                    pass
        # another address is not refused, and not counted
        assert get_from(port, "/", OTHER).status == 200
        assert wait_until(lambda: denied(aport)["conn_limit"] == 3, 5), denied(aport)
    finally:
        for c in held:
            c.close()
    assert denied(aport) == {"acl": 0, "rate_limit": 0, "conn_limit": 3, "auth": 0}
    assert g.alive()


def test_purge_refused_counted_on_a_reverse_listener(gatehouse, origin):
    """The reverse side's access rule: PURGE from outside cache.purge.allow
    is a 403 counted as acl; one from inside is obeyed and not counted."""
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"o": [origin.port]}, admin_port=aport,
                     sites=[{"default": True, "routes": [
                         {"path": "/", "upstream": "o", "cache": True}]}],
                     extra={"cache": {"memory": "8MiB",
                                      "purge": {"allow": ["127.0.0.1"]}}})
    g = gatehouse(cfg, port)
    for _ in range(2):
        with conn_from(port, OTHER) as c:
            c.send(request_bytes("PURGE", "/x", "localhost"))
            assert c.read_response("PURGE").status == 403
    with conn_from(port) as c:
        c.send(request_bytes("PURGE", "/x", "localhost"))
        assert c.read_response("PURGE").status == 200
    assert denied(aport) == {"acl": 2, "rate_limit": 0, "conn_limit": 0, "auth": 0}
    assert g.alive()


# ---- forward listeners -----------------------------------------------------------


def forward(gatehouse, fwd, rates=None):
    port, aport = free_port(), free_port()
    cfg = with_admin(forward_config(port, fwd, workers=2), aport)
    if rates:
        cfg["listeners"][0]["rate_limits"] = rates
    g = gatehouse(cfg, port)
    g.aport = aport
    return g


def absolute(o, path="/echo"):
    return "http://127.0.0.1:%d%s" % (o.port, path)


def test_forward_acl_403s_and_429s_counted(gatehouse, origin):
    g = forward(gatehouse, {"allow": ["127.0.0.1/32"],
                            "deny_hosts": ["blocked.test"],
                            "deny_addresses": ["127.0.0.2/32"],
                            "http_ports": [80, origin.port]},
                rates=[{"rate": "1/m", "burst": 4}])
    aport, port = g.aport, g.port
    host = "127.0.0.1:%d" % origin.port
    # a client outside forward.allow (before any rate limit)
    for _ in range(3):
        assert get_from(port, absolute(origin), OTHER, host=host).status == 403
    # destinations refused by name and by port (before any rate limit)
    for _ in range(2):
        assert get_from(port, "http://blocked.test/", host="blocked.test").status == 403
    assert get_from(port, "http://127.0.0.1:1/", host="127.0.0.1:1").status == 403
    # a CONNECT to a port not in connect_ports
    with conn_from(port) as c:
        c.send(b"CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n")
        assert c.read_response("CONNECT").status == 403
    # an address refused after resolving, past the rate limit: one token
    t = "127.0.0.2:%d" % origin.port
    r = get_from(port, "http://%s/" % t, host=t)
    assert r.status == 403 and "forward.deny_addresses" in r.get("Proxy-Status"), r
    assert denied(aport) == {"acl": 8, "rate_limit": 0, "conn_limit": 0, "auth": 0}
    # the listener's rate limit: 3 tokens left for 127.0.0.1
    got = [get_from(port, absolute(origin), host=host).status for _ in range(6)]
    assert got == [200, 200, 200, 429, 429, 429], got
    assert denied(aport) == {"acl": 8, "rate_limit": 3, "conn_limit": 0, "auth": 0}
    assert status(aport)["denied"] == {"acl": 8, "rate_limit": 3,
                                       "conn_limit": 0, "auth": 0}
    assert g.alive()


@pytest.fixture
def users(tmp_path):
    line = subprocess.run(["htpasswd", "-nbB", "-C", "5", "alice", "wonder"],
                          check=True, capture_output=True, text=True).stdout.strip()
    path = tmp_path / "htpasswd"
    path.write_text(line + "\n")
    return str(path)


def test_forward_auth_407s_counted(gatehouse, origin, users):
    g = forward(gatehouse, {"auth": {"htpasswd": users}, "allow": ["127.0.0.0/8"]})
    host = "127.0.0.1:%d" % origin.port

    def via(user=None):
        h = []
        if user:
            tok = base64.b64encode(("%s:%s" % user).encode()).decode()
            h.append(("Proxy-Authorization", "Basic " + tok))
        return get_from(g.port, absolute(origin), host=host, headers=h).status

    assert [via(), via(), via(("alice", "wrong"))] == [407, 407, 407]
    assert via(("alice", "wonder")) == 200
    assert denied(g.aport) == {"acl": 0, "rate_limit": 0, "conn_limit": 0, "auth": 3}
