"""Rate limits (docs/security.md): token buckets per client address, per
route (all clients together), shared by every worker; over the limit a
request gets 429 with Retry-After and a Proxy-Status, is logged with its
reason, and never reaches the upstream. Requests come from 127.0.0.1 and
127.0.0.2 (both loopback) to show that addresses are counted apart."""

import base64
import re
import socket
import subprocess
import time

import pytest

from lib.net import HOST, RawConn, free_port, request_bytes
from lib.proxy import forward_config, run_cli, to_yaml

OTHER = "127.0.0.2"


def get_from(port, target, src=HOST, host="localhost", timeout=10):
    """One request on a fresh connection from source address <src>."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, timeout, bytearray(), False
    try:
        c.send(request_bytes("GET", target, host))
        return c.read_response()
    finally:
        c.close()


def ok_route(path, **kw):
    r = {"path": path, "return": {"status": 200, "body": "ok\n"}}
    r.update(kw)
    return r


def start(gatehouse, origin=None, listener_rates=None, routes=None,
          workers=1):
    port = free_port()
    listener = {"listen": "%s:%d" % (HOST, port)}
    if listener_rates:
        listener["rate_limits"] = listener_rates
    listener["sites"] = [{"default": True, "routes": routes or [ok_route("/")]}]
    cfg = {"workers": workers}
    if origin is not None:
        cfg["upstreams"] = {"was": {"servers": ["%s:%d" % (HOST, origin.port)]}}
    cfg["listeners"] = [listener]
    return gatehouse(cfg, port)


def assert_429(r, reason):
    assert r.status == 429, r
    ra = r.get("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, r.headers
    ps = r.get("Proxy-Status") or ""
    assert ps.startswith("gatehouse") and "error=http_request_denied" in ps, ps
    assert 'details="%s"' % reason in ps, ps
    assert r.body.startswith(b"429 Too Many Requests"), r.body
    return int(ra)


def test_burst_then_429_with_retry_after(gatehouse):
    g = start(gatehouse, listener_rates=[{"rate": "1/m", "burst": 3}])
    for _ in range(3):
        assert get_from(g.port, "/").status == 200
    r = get_from(g.port, "/")
    ra = assert_429(r, "rate_limit_address")
    assert 55 <= ra <= 60, ra  # the next token is a minute away
    # keep-alive survives a 429: the next request on the connection is
    # answered too (and limited)
    with RawConn(g.port) as c:
        for _ in range(3):
            c.send(request_bytes("GET", "/"))
            assert c.read_response().status == 429


def test_tokens_come_back_at_the_rate(gatehouse):
    g = start(gatehouse, listener_rates=[{"rate": "10/s", "burst": 2}])
    assert get_from(g.port, "/").status == 200
    assert get_from(g.port, "/").status == 200
    r = get_from(g.port, "/")
    assert assert_429(r, "rate_limit_address") == 1
    time.sleep(0.35)  # three tokens' worth, capped at the burst of 2
    statuses = [get_from(g.port, "/").status for _ in range(3)]
    assert statuses == [200, 200, 429], statuses


def test_addresses_are_counted_apart(gatehouse):
    g = start(gatehouse, listener_rates=[{"by": "address", "rate": "1/m",
                                          "burst": 2}])
    assert [get_from(g.port, "/").status for _ in range(3)] == [200, 200, 429]
    assert [get_from(g.port, "/", OTHER).status for _ in range(3)] == \
        [200, 200, 429]
    assert get_from(g.port, "/").status == 429


def test_listener_limit_counts_before_routing(gatehouse):
    """Scanners probing paths that do not exist are limited too: a 404 costs
    a token like any request."""
    g = start(gatehouse, listener_rates=[{"rate": "1/m", "burst": 2}],
              routes=[ok_route("/app/")])
    assert get_from(g.port, "/nope").status == 404
    assert get_from(g.port, "/nope").status == 404
    assert_429(get_from(g.port, "/app/x"), "rate_limit_address")


def test_route_limit_by_address(gatehouse, origin):
    routes = [{"path": "/login", "upstream": "was",
               "rate_limits": [{"rate": "1/m", "burst": 2}]},
              {"path": "/", "upstream": "was"}]
    g = start(gatehouse, origin, routes=routes)
    assert [get_from(g.port, "/login").status for _ in range(3)] == \
        [200, 200, 429]
    # the rest of the site, and other clients, are not affected
    assert [get_from(g.port, "/other").status for _ in range(5)] == [200] * 5
    assert get_from(g.port, "/login", OTHER).status == 200
    # the refused request never reached the origin
    logins = [q for q in origin.requests if q.path == "/login"]
    assert len(logins) == 3, [q.path for q in origin.requests]


def test_route_limit_for_all_clients(gatehouse, origin):
    """by: route is one bucket for everyone: a fragile back end is protected
    whoever calls it."""
    routes = [{"path": "/report", "upstream": "was",
               "rate_limits": [{"by": "route", "rate": "1/m", "burst": 3}]},
              {"path": "/", "upstream": "was"}]
    g = start(gatehouse, origin, routes=routes)
    got = [get_from(g.port, "/report", src).status
           for src in (HOST, OTHER, HOST, OTHER)]
    assert got == [200, 200, 200, 429], got
    assert_429(get_from(g.port, "/report", OTHER), "rate_limit_route")
    assert get_from(g.port, "/else", OTHER).status == 200


def test_rules_stack(gatehouse):
    """A listener rule and a route rule both apply; the tighter one wins."""
    g = start(gatehouse, listener_rates=[{"rate": "1/m", "burst": 5}],
              routes=[ok_route("/tight", rate_limits=[{"rate": "1/m",
                                                       "burst": 1}]),
                      ok_route("/")])
    assert get_from(g.port, "/tight").status == 200
    assert_429(get_from(g.port, "/tight"), "rate_limit_address")
    # the listener's bucket: 5 in all, two are spent
    got = [get_from(g.port, "/").status for _ in range(4)]
    assert got == [200, 200, 200, 429], got


def test_workers_share_the_table(gatehouse):
    """Four workers, forty connections (SO_REUSEPORT spreads them): the
    bucket is one, so exactly the burst passes, not four bursts."""
    g = start(gatehouse, listener_rates=[{"rate": "1/m", "burst": 10}],
              workers=4)
    got = [get_from(g.port, "/").status for _ in range(40)]
    assert got.count(200) == 10, got
    assert got.count(429) == 30, got


def test_429_is_logged_with_reason(gatehouse):
    g = start(gatehouse, listener_rates=[{"rate": "1/m", "burst": 1}])
    assert get_from(g.port, "/").status == 200
    assert get_from(g.port, "/").status == 429
    lines = g.wait_access_lines(lambda ls: len(ls) >= 2)
    limited = [ln for ln in lines if '" 429 ' in ln]
    assert len(limited) == 1, lines
    assert re.search(r"reason=rate_limit_address$", limited[0]), limited


@pytest.mark.parametrize("bad,msg", [
    ({"rate": "fast"}, "expected a rate such as 10/s"),
    ({"rate": "1/s", "by": "route"}, "is for a route's rate_limits"),
])
def test_bad_rules_are_config_errors(tmp_path, bad, msg):
    cfg = {"listeners": [{"listen": "127.0.0.1:1", "rate_limits": [bad],
                          "sites": [{"routes": [ok_route("/")]}]}]}
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(cfg) + "\n")
    p = run_cli(["-t", "-c", str(path)])
    assert p.returncode == 1, p
    assert re.match(r".*bad\.yaml:\d+:\d+: ", p.stderr), p.stderr
    assert msg in p.stderr, p.stderr


# ---- by authenticated user (the forward proxy's Basic authentication) -------


@pytest.fixture
def users(tmp_path):
    """An htpasswd file: alice and bob (bcrypt, by Apache's htpasswd)."""
    lines = []
    for name, pw in (("alice", "wonder"), ("bob", "builder")):
        lines.append(subprocess.run(
            ["htpasswd", "-nbB", "-C", "5", name, pw], check=True,
            capture_output=True, text=True).stdout.strip())
    path = tmp_path / "htpasswd"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def via(g, origin, user=None, src=HOST):
    """GET http://origin/echo through forward proxy <g> as <user>."""
    headers = []
    if user is not None:
        tok = base64.b64encode(("%s:%s" % user).encode()).decode()
        headers.append(("Proxy-Authorization", "Basic " + tok))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect((HOST, g.port))
    c = RawConn.__new__(RawConn)
    c.sock, c.timeout, c.buf, c.eof = s, 10, bytearray(), False
    with c:
        host = "127.0.0.1:%d" % origin.port
        c.send(request_bytes("GET", "http://%s/echo" % host, host=host,
                             headers=headers))
        return c.read_response()


ALICE = ("alice", "wonder")
BOB = ("bob", "builder")


def forward_limited(gatehouse, users, rates):
    port = free_port()
    cfg = forward_config(port, {"auth": {"htpasswd": users},
                                "allow": ["127.0.0.0/8"]})
    cfg["listeners"][0]["rate_limits"] = rates
    return gatehouse(cfg, port)


def test_user_limit_follows_the_user_not_the_address(gatehouse, origin,
                                                     users):
    """by: user: one bucket per authenticated user, whatever address the
    requests come from; another user has their own."""
    g = forward_limited(gatehouse, users, [{"by": "user", "rate": "1/m",
                                            "burst": 3}])
    got = [via(g, origin, ALICE, src).status
           for src in (HOST, OTHER, HOST, OTHER)]
    assert got == [200, 200, 200, 429], got
    assert_429(via(g, origin, ALICE, OTHER), "rate_limit_user")
    assert [via(g, origin, BOB).status for _ in range(4)] == \
        [200, 200, 200, 429]
    lines = g.wait_access_lines(lambda ls: len(ls) >= 9)
    limited = [ln for ln in lines if '" 429 ' in ln]
    assert len(limited) == 3, lines
    assert all("reason=rate_limit_user" in ln for ln in limited), limited
    assert origin.count() == 6


def test_user_and_address_rules_together(gatehouse, origin, users):
    """Requests without valid credentials are answered 407 before any rate
    limit (the user is not known): they use no token. Rules are checked in
    order, the first out of tokens answers."""
    g = forward_limited(gatehouse, users, [
        {"by": "address", "rate": "1/m", "burst": 3},
        {"by": "user", "rate": "1/m", "burst": 1}])
    assert via(g, origin).status == 407
    assert via(g, origin, ("alice", "wrong")).status == 407

    def reason(r):
        m = re.search(r'details="([a-z_]+)"', r.get("Proxy-Status") or "")
        return r.status, m.group(1) if m else None
    assert reason(via(g, origin, ALICE)) == (200, None)
    assert reason(via(g, origin, ALICE)) == (429, "rate_limit_user")
    assert reason(via(g, origin, BOB)) == (200, None)
    # bob elsewhere: a fresh address, but bob's own token is spent
    assert reason(via(g, origin, BOB, OTHER)) == (429, "rate_limit_user")
    # three requests from 127.0.0.1 passed the address rule: it is empty
    assert reason(via(g, origin, BOB)) == (429, "rate_limit_address")
    assert origin.count() == 2
