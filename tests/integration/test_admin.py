"""The admin listener (issue 8): /metrics in the Prometheus text format,
checked with the Prometheus client library's own parser against the
requests the test sent; /status; /healthz during a graceful stop; the
allow list, also behind a PROXY header."""

import json
import signal
import socket
import struct
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lib.net import HOST, RawConn, free_port, request_bytes
from lib.ops import Load, admin_get, ops_config, status


def scrape(aport):
    st, h, body = admin_get(aport, "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, "duplicate series %r" % (key,)
            samples[key] = s.value
    return samples


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def metered(origins, gatehouse):
    o1, o2 = origins("m1"), origins("m2")
    port, aport = free_port(), free_port()
    sites = [{"default": True, "routes": [
        {"path": "/", "upstream": "was"},
        {"exact": "/gone", "return": {"status": 410, "body": "gone\n"}}]}]
    cfg = ops_config(port, {"was": [o1.port, o2.port]}, admin_port=aport,
                     sites=sites, workers=2)
    g = gatehouse(cfg, port)
    g.aport = aport
    return g


def test_metrics_match_requests_sent_during_traffic(metered):
    g, aport = metered, metered.aport
    L = "%s:%d" % (HOST, g.port)
    load = Load(g.port, "/echo", clients=4, max_requests=300).start()
    gone = Load(g.port, "/gone", clients=2, max_requests=15,
                check=lambda b: True)
    # scrape while traffic flows: the text must parse, counts only grow
    seen = []
    deadline = time.monotonic() + 30
    while any(t.is_alive() for t in load._threads) and time.monotonic() < deadline:
        s = scrape(aport)
        seen.append(val(s, "gatehouse_requests_total", listener=L, site="*",
                        route="/", code="2xx"))
        time.sleep(0.05)
    load.wait(30)
    assert load.failed == [] and load.ok == 1200
    assert len(seen) >= 3, "no scrape happened during the traffic"
    assert 0 < max(seen[1:]) or seen[-1] < 1200, seen
    assert seen == sorted(seen), "a counter went backwards: %r" % seen
    # 410s are 4xx responses; the Load counts them as failures (non-2xx)
    gone.start().wait(30)
    assert len(gone.failed) == 30

    def settled():
        s = scrape(aport)
        return s if (val(s, "gatehouse_requests_total", listener=L, site="*",
                         route="/", code="2xx") == 1200 and
                     val(s, "gatehouse_requests_total", listener=L, site="*",
                         route="= /gone", code="4xx") == 30) else None

    s = None
    for _ in range(40):
        s = settled()
        if s:
            break
        time.sleep(0.05)
    assert s, "counts never reached 1200 x 2xx and 30 x 4xx"
    r = dict(listener=L, site="*", route="/")
    assert val(s, "gatehouse_requests_total", code="5xx", **r) == 0
    assert val(s, "gatehouse_request_duration_seconds_count", **r) == 1200
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                     if k[0] == "gatehouse_request_duration_seconds_bucket"
                     and dict(k[1]).get("route") == "/")
    assert len(buckets) == 19 and buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 1200
    assert val(s, "gatehouse_request_duration_seconds_sum", **r) > 0
    # every /echo response body was counted
    assert val(s, "gatehouse_response_body_bytes_total", **r) > 1200 * 100
    # two servers, round robin: 600 each, nothing in flight now
    ups = [(k, v) for k, v in s.items() if k[0] == "gatehouse_upstream_requests_total"]
    assert len(ups) == 2 and sum(v for _, v in ups) == 1200
    assert all(v == 600 for _, v in ups), ups
    inflight = [v for k, v in s.items() if k[0] == "gatehouse_upstream_in_flight"]
    assert inflight == [0, 0]
    assert [v for k, v in s.items() if k[0] == "gatehouse_upstream_up"] == [1, 1]
    assert val(s, "gatehouse_connections_accepted_total", listener=L) >= 6
    assert val(s, "gatehouse_config_generation") == 1


def test_status_json_and_upstream_down(metered, origins):
    g, aport = metered, metered.aport
    Load(g.port, "/echo", clients=2, max_requests=10).start().wait(30)
    time.sleep(1.2)  # one sample of history
    d = status(aport)
    assert d["totals"]["requests"] == 20
    assert d["totals"]["by_class"]["2xx"] == 20
    assert d["workers"] == 2 and d["draining"] is False
    assert d["config"]["generation"] == 1
    assert len(d["history"]["t"]) >= 1
    assert len(d["history"]["rps"]) == len(d["history"]["t"])
    assert max(d["history"]["rps"]) > 0
    servers = d["upstreams"][0]["servers"]
    assert [s["state"] for s in servers] == ["up", "up"]


def test_healthz_503_while_draining(origin, gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [origin.port]}, admin_port=aport)
    g = gatehouse(cfg, port)
    st, _, body = admin_get(aport, "/healthz")
    assert (st, body) == (200, b"ok\n")
    # a slow request keeps the stop going while we ask
    with RawConn(g.port, timeout=15) as c:
        c.send(request_bytes("GET", "/slow/2000"))
        assert origin.wait_requests(1, timeout=5)
        g.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        st, _, body = admin_get(aport, "/healthz")
        assert (st, body) == (503, b"draining\n")
        assert status(aport)["draining"] is True
        assert c.read_response().status == 200
    g.checked = True
    assert g.wait(15) == 0


def test_admin_allow_list_and_routes(origin, gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [origin.port]}, admin_port=aport,
                     admin={"allow": ["10.0.0.0/8"]})
    gatehouse(cfg, port)
    st, _, body = admin_get(aport, "/metrics")
    assert st == 403 and b"may not use the admin listener" in body


def test_admin_404_405_and_head(origin, gatehouse):
    port, aport = free_port(), free_port()
    gatehouse(ops_config(port, {"was": [origin.port]}, admin_port=aport), port)
    assert admin_get(aport, "/nope")[0] == 404
    with RawConn(aport) as c:
        c.send(request_bytes("POST", "/metrics", body=b"x",
                             headers=[("Content-Length", "1")]))
        r = c.read_response()
        assert r.status == 405 and r.get("allow") == "GET, HEAD"
    with RawConn(aport) as c:
        c.send(request_bytes("HEAD", "/status"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        assert int(r.get("content-length")) > 100


def v2_header(src, sport, dst="127.0.0.1", dport=80):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def test_admin_allow_list_uses_proxy_protocol_address(origin, gatehouse):
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [origin.port]}, admin_port=aport,
                     admin={"allow": ["10.0.0.0/8"], "proxy_protocol": True})
    gatehouse(cfg, port)
    for src, want in (("10.1.2.3", 200), ("192.0.2.1", 403)):
        with RawConn(aport) as c:
            c.send(v2_header(src, 4000) + request_bytes("GET", "/healthz"))
            assert c.read_response().status == want, src
    # no header: refused outright
    with RawConn(aport) as c:
        c.send(request_bytes("GET", "/healthz"))
        assert c.closed_within(3)
