"""Upstream pools: connection reuse settings, weighted round robin, and many
clients at once."""

import hashlib
import json
import random
import threading

from lib.net import RawConn, curl, pattern, request_bytes


def url(g, path):
    return "http://127.0.0.1:%d%s" % (g.port, path)


def test_keepalive_0_disables_reuse(origin, reverse):
    g = reverse({"was": [origin.port]}, workers=1,
                upstream_opts={"was": {"keepalive": 0}})
    curl(*[url(g, "/echo?i=%d" % i) for i in range(5)])
    assert origin.count() == 5
    assert origin.accepted == 5, origin.accepted


def test_keepalive_requests_caps_a_connection(origin, reverse):
    g = reverse({"was": [origin.port]}, workers=1,
                upstream_opts={"was": {"keepalive_requests": 3}})
    curl(*[url(g, "/echo?i=%d" % i) for i in range(7)])
    assert origin.count() == 7
    assert origin.accepted == 3, origin.accepted  # 3 + 3 + 1


def test_via_name(origin, reverse):
    g = reverse({"was": [origin.port]}, extra={"via_name": "edge-1"})
    p = curl("-D", "-", url(g, "/echo"))
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    hs = json.loads(body)["headers"]
    assert ["1.1 edge-1"] == [v for k, v in hs if k.lower() == "via"], hs
    assert b"1.1 edge-1" in head, head


def test_weighted_round_robin(origins, reverse):
    """weights 3:1 give 6:2 over 8 requests, smoothly interleaved (the
    light server appears in every window of 4)."""
    a, b = origins("A"), origins("B")
    g = reverse({"was": [{"address": "127.0.0.1:%d" % a.port, "weight": 3},
                         {"address": "127.0.0.1:%d" % b.port, "weight": 1}]},
                workers=1)
    p = curl(*[url(g, "/echo?i=%d" % i) for i in range(8)])
    seq = [json.loads(x)["origin"] for x in
           p.stdout.decode().replace("}{", "}\n{").split("\n")]
    assert seq.count("A") == 6 and seq.count("B") == 2, seq
    assert "B" in seq[:4] and "B" in seq[4:], seq
    assert "AAAA" not in "".join(seq), seq


def test_many_concurrent_clients(origins, reverse):
    """24 clients at once, each 15 keep-alive requests of random sizes and
    framings over 2 workers and 2 origins: every body exact."""
    a, b = origins("A"), origins("B")
    g = reverse({"was": [a.port, b.port]}, workers=2)
    errors = []

    def client(seed):
        rnd = random.Random(seed)
        try:
            with RawConn(g.port, timeout=20) as c:
                for i in range(15):
                    kind = rnd.choice(["bytes", "chunked", "post"])
                    n = rnd.choice([0, 1, 100, 5000, 70000, 300000])
                    if kind == "post":
                        body = pattern(n, seed)
                        c.send(request_bytes("POST", "/echo", headers=[
                            ("Content-Length", str(n))], body=body))
                        r = c.read_response()
                        e = json.loads(r.body)
                        if e["body_sha256"] != hashlib.sha256(body).hexdigest():
                            errors.append((seed, i, "upload mismatch"))
                    else:
                        c.send(request_bytes("GET", "/%s/%d" % (kind, n)))
                        r = c.read_response()
                        if r.status != 200 or r.body != pattern(n):
                            errors.append((seed, i, kind, n, r.status))
        except Exception as e:  # reported below
            errors.append((seed, repr(e)))

    ts = [threading.Thread(target=client, args=(s,)) for s in range(24)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "clients still running"
    assert errors == [], errors[:5]
    assert a.count() + b.count() == 24 * 15
    assert abs(a.count() - b.count()) <= 24 * 15 // 4, (a.count(), b.count())
