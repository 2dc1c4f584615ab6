"""Upstream pools, failures hidden from clients (docs/upstreams.md): active
and passive health checks, backups, retries and their budget, max_conns and
the wait queue, and failover under load, with real origin servers that the
tests stop, restart and misbehave."""

import datetime
import json
import re
import threading
import time

from lib.net import RawConn, free_port, get, request_bytes, wait_until
from lib.origin import Origin

HOST = "127.0.0.1"


def servers(*origins, **extra):
    out = []
    for o in origins:
        s = {"address": o.address}
        s.update(extra.get(o.name, {}))
        out.append(s)
    return out


def who(r):
    assert r.status == 200, (r.status, r.body[:200])
    return json.loads(r.body)["origin"]


def log_times(g, pattern):
    """Wall-clock times (epoch seconds) of the error-log lines matching
    <pattern>."""
    out = []
    for ln in g.error_log_text().splitlines():
        if re.search(pattern, ln):
            ts = ln.split(" ", 1)[0]
            dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
            out.append(dt.replace(tzinfo=datetime.timezone.utc).timestamp())
    return out


def restart(o):
    """A fresh origin with the same name and port (the old one stopped)."""
    return Origin(o.name, o.port).start()


# ---- active health checks --------------------------------------------------


def test_http_health_check_status_range_marks_down_and_up(origins, reverse):
    """An HTTP check of /health that answers outside 200-299 marks the
    server down after `fall` checks (logged); requests avoid it; when it
    answers 200 again it is up after `rise` checks (logged)."""
    a, b = origins("a"), origins("b")
    g = reverse({"was": servers(a, b)}, upstream_opts={"was": {
        "health": {"path": "/health", "status": "200-299", "interval": "200ms",
                   "timeout": "200ms", "rise": 2, "fall": 2}}})
    assert wait_until(lambda: a.count("/health") >= 2 and b.count("/health") >= 2, 5)
    h = [r for r in a.requests if r.path == "/health"][0]
    assert h.method == "GET" and h.get("Host") == a.address
    assert h.get("User-Agent") == "gatehouse-health"
    a.mode = "500"
    assert wait_until(lambda: re.search(r"server %s is down \(health check: "
                                        r"status 500; 2 failures" % a.address,
                                        g.error_log_text()), 5), g.error_log_text()
    seen = {who(get(g.port, "/echo?i=%d" % i)) for i in range(10)}
    assert seen == {"b"}, seen
    a.mode = None
    assert wait_until(lambda: "server %s is up (2 health checks" % a.address
                      in g.error_log_text(), 5), g.error_log_text()
    seen = [who(get(g.port, "/echo?j=%d" % i)) for i in range(10)]
    assert seen.count("a") == 5, seen


def test_tcp_health_check_once_per_process(origins, reverse):
    """A TCP check connects and closes; with 4 workers the server still sees
    one check per interval, not four (one health thread)."""
    a = origins("a")
    g = reverse({"was": servers(a)}, workers=4, upstream_opts={"was": {
        "health": {"type": "tcp", "interval": "250ms", "timeout": "200ms"}}})
    start = a.accepted
    time.sleep(2.0)
    checks = a.accepted - start
    assert 5 <= checks <= 10, checks  # 8 expected at 4/s
    assert a.count() == 0  # a TCP check sends no request
    assert get(g.port, "/echo").status == 200


def test_backup_used_only_when_every_primary_is_down(origins, reverse):
    p1, p2, bk = origins("p1"), origins("p2"), origins("bk")
    g = reverse({"was": servers(p1, p2, bk, bk={"backup": True})},
                upstream_opts={"was": {
                    "health": {"type": "tcp", "interval": "200ms",
                               "timeout": "200ms", "rise": 1, "fall": 1}}})
    seen = [who(get(g.port, "/echo?i=%d" % i)) for i in range(12)]
    assert sorted(set(seen)) == ["p1", "p2"], seen
    p1.stop()
    assert wait_until(lambda: "server %s is down" % p1.address in g.error_log_text(), 5)
    seen = [who(get(g.port, "/echo?j=%d" % i)) for i in range(6)]
    assert set(seen) == {"p2"}, seen  # one primary left: still no backup
    p2.stop()
    assert wait_until(lambda: "server %s is down" % p2.address in g.error_log_text(), 5)
    seen = [who(get(g.port, "/echo?k=%d" % i)) for i in range(6)]
    assert set(seen) == {"bk"}, seen
    p1b = restart(p1)
    try:
        assert wait_until(lambda: "server %s is up" % p1.address in g.error_log_text(), 5)
        seen = [who(get(g.port, "/echo?l=%d" % i)) for i in range(6)]
        assert set(seen) == {"p1"}, seen
    finally:
        p1b.stop()


# ---- passive checks ---------------------------------------------------------


def test_passive_ejection_on_5xx_grows_on_repeat(origins, reverse):
    """3 failures in a row (here 5xx) eject a server for `eject`; ejected
    again soon after its return, for twice as long. Both logged, and the
    end of each ejection too."""
    a, b = origins("a"), origins("b")
    a.mode = "500"
    g = reverse({"was": servers(a, b)}, upstream_opts={"was": {
        "passive": {"failures": 3, "window": "10s", "eject": "1s",
                    "eject_max": "10s"}}})
    statuses = [get(g.port, "/echo?i=%d" % i).status for i in range(6)]
    assert statuses.count(500) == 3, statuses  # a answered three, then out
    assert wait_until(lambda: re.search(r"server %s ejected for 1s after 3 "
                                        r"failures in a row \(ejection 1\)"
                                        % a.address, g.error_log_text()), 2)
    n = a.count()
    for i in range(10):
        assert who(get(g.port, "/echo?j=%d" % i)) == "b"
    assert a.count() == n
    assert wait_until(lambda: "server %s: ejection over; back in service"
                      % a.address in g.error_log_text(), 3), g.error_log_text()
    statuses = [get(g.port, "/echo?k=%d" % i).status for i in range(6)]
    assert statuses.count(500) == 3, statuses
    assert wait_until(lambda: re.search(r"server %s ejected for 2s after 3 "
                                        r"failures in a row \(ejection 2\)"
                                        % a.address, g.error_log_text()), 2)


# ---- retries ----------------------------------------------------------------


def test_idempotent_request_retried_on_another_server(origins, reverse):
    """A server that resets every request: a GET is retried on the other
    server and succeeds; the access log names both servers. A POST with a
    body was sent, is not idempotent: 502, one server."""
    a, b = origins("a"), origins("b")
    a.mode = "reset"
    g = reverse({"was": servers(a, b)}, log={"format": "combined"})
    for i in range(4):
        assert who(get(g.port, "/echo?i=%d" % i)) == "b"
    lines = g.wait_access_lines(lambda ls: len(ls) >= 4)
    tried = [re.search(r" srv=(\S+) ", ln).group(1) for ln in lines]
    assert tried.count("%s,%s" % (a.address, b.address)) == 2, tried
    assert tried.count(b.address) == 2, tried
    posts = [get(g.port, "/echo", method="POST", body=b"x" * 10,
                 headers=[("Content-Length", "10")]).status for _ in range(2)]
    assert 502 in posts, posts  # the one that went to a
    lines = g.wait_access_lines(lambda ls: len(ls) >= 6)
    bad = [ln for ln in lines if '"POST' in ln and " 502 " in ln]
    assert bad and " srv=%s reason=connection_terminated" % a.address in bad[0], bad


def test_retry_after_a_response_head_cut_short(origins, reverse):
    """Half a response head, then the connection closes: nothing reached
    the client yet, so the GET goes to the other server, parsed afresh."""
    a, b = origins("a"), origins("b")
    a.mode = "cut"
    g = reverse({"was": servers(a, b)})
    for i in range(4):
        r = get(g.port, "/echo?i=%d" % i)
        assert who(r) == "b"
    assert a.count() == 2


def test_never_sent_request_retried_whatever_its_method(origins, reverse):
    """Connect refused: the POST never left, so it goes to the next server."""
    b = origins("b")
    dead = "%s:%d" % (HOST, free_port())
    g = reverse({"was": [{"address": dead}, {"address": b.address}]},
                log={"format": "json"})
    for i in range(4):
        r = get(g.port, "/echo", method="POST", body=b"hello",
                headers=[("Content-Length", "5")])
        assert who(r) == "b"
        assert json.loads(r.body)["body_len"] == 5
    recs = [json.loads(ln) for ln in g.wait_access_lines(lambda ls: len(ls) >= 4)]
    assert sum(1 for r in recs if r["upstream_servers"] == [dead, b.address]) == 2, recs


def test_retry_budget_stops_retries(origins, reverse):
    """budget 0% and no minimum: a GET that reached a resetting server is
    not retried (502), though another server was there."""
    a, b = origins("a"), origins("b")
    a.mode = "reset"
    g = reverse({"was": servers(a, b)}, upstream_opts={"was": {
        "retries": {"budget": "0%", "budget_min": 0}}})
    statuses = sorted(get(g.port, "/echo?i=%d" % i).status for i in range(4))
    assert statuses == [200, 200, 502, 502], statuses
    assert "retry budget spent" in g.error_log_text()


def test_tries_bound(origins, reverse):
    """tries: 2 over three resetting servers: two tries, then 502."""
    os_ = [origins(n) for n in "abc"]
    for o in os_:
        o.mode = "close"
    g = reverse({"was": servers(*os_)}, log={"format": "json"},
                upstream_opts={"was": {"retries": {"tries": 2}}})
    r = get(g.port, "/echo")
    assert r.status == 502
    rec = json.loads(g.wait_access_lines(lambda ls: len(ls) >= 1)[0])
    assert len(rec["upstream_servers"]) == 2, rec
    assert sum(o.count() for o in os_) == 2


# ---- max_conns and the queue --------------------------------------------------


def slow_gets(port, n, path="/echo"):
    out = [None] * n

    def one(i):
        t0 = time.monotonic()
        try:
            r = get(port, "%s?i=%d" % (path, i), timeout=20)
            out[i] = (r, time.monotonic() - t0)
        except Exception as e:  # reported by the caller
            out[i] = (e, time.monotonic() - t0)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.1)  # in this order
    for t in ts:
        t.join(30)
    return out


def test_queue_answers_503_when_full(origins, reverse):
    """max_conns 1 and a queue of 1: the first request runs, the second
    waits for it, the third finds the queue full: 503 at once, with
    Retry-After and Proxy-Status."""
    a = origins("a")
    a.delay = 1.0
    g = reverse({"was": servers(a, a={"max_conns": 1})}, upstream_opts={"was": {
        "queue": {"size": 1, "timeout": "5s", "retry_after": "2s"}}})
    res = slow_gets(g.port, 3)
    (r1, t1), (r2, t2), (r3, t3) = res
    assert r1.status == 200 and r2.status == 200, res
    assert t2 >= 1.7, t2  # waited for the first one
    assert r3.status == 503 and t3 < 0.5, (r3, t3)
    assert r3.get("Retry-After") == "2"
    assert "error=connection_limit_reached" in r3.get("Proxy-Status"), r3.headers
    assert a.count() == 2


def test_queue_wait_times_out(origins, reverse):
    a = origins("a")
    a.delay = 2.0
    g = reverse({"was": servers(a, a={"max_conns": 1})}, log={"format": "json"},
                upstream_opts={"was": {"queue": {"size": 10, "timeout": "500ms"}}})
    res = slow_gets(g.port, 2)
    (r1, t1), (r2, t2) = res
    assert r1.status == 200
    assert r2.status == 503 and 0.4 <= t2 < 1.5, (r2, t2)
    assert r2.get("Retry-After") == "1"
    recs = [json.loads(ln) for ln in g.wait_access_lines(lambda ls: len(ls) >= 2)]
    assert {r["reason"] for r in recs if r["status"] == 503} == {"queue_timeout"}


def test_max_conns_counts_all_workers(origins, reverse):
    """max_conns 2 with 4 workers and no queue: of 6 slow requests at once,
    2 reach the server and 4 get 503, whichever worker took them."""
    a = origins("a")
    a.delay = 1.5
    g = reverse({"was": servers(a, a={"max_conns": 2})}, workers=4)
    out = [None] * 6

    def one(i):
        out[i] = get(g.port, "/echo?i=%d" % i, timeout=20).status

    ts = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert sorted(out) == [200, 200, 503, 503, 503, 503], out
    assert a.count() == 2


# ---- failover under load ------------------------------------------------------


def test_failover_under_load_zero_client_failures(origins, reverse):
    """20 s of GETs from 8 keep-alive clients over three origins. One
    origin is stopped after 5 s and started again at 11 s. No client sees a
    failure; the stopped server is ejected by passive checks within 1 s of
    stopping, readmitted by active checks after it returns, and gets
    requests again."""
    a, b, c = origins("a"), origins("b"), origins("c")
    g = reverse({"was": servers(a, b, c)}, workers=2, upstream_opts={"was": {
        "passive": {"failures": 1, "eject": "2s", "eject_max": "30s"},
        "health": {"path": "/health", "interval": "300ms", "timeout": "300ms",
                   "rise": 2, "fall": 2},
        "connect_timeout": "1s"}})
    stats = {"ok": 0, "fail": []}
    lock = threading.Lock()
    t_end = time.monotonic() + 20

    def client(k):
        i = 0
        conn = None
        while time.monotonic() < t_end:
            try:
                if conn is None:
                    conn = RawConn(g.port, timeout=10)
                conn.send(request_bytes("GET", "/echo?c=%d&i=%d" % (k, i)))
                r = conn.read_response()
                if r.status == 200 and json.loads(r.body)["path"] == "/echo":
                    with lock:
                        stats["ok"] += 1
                else:
                    with lock:
                        stats["fail"].append((k, i, r.status))
            except Exception as e:  # a failure the client saw
                with lock:
                    stats["fail"].append((k, i, repr(e)))
                if conn is not None:
                    conn.close()
                conn = None
            i += 1
        if conn is not None:
            conn.close()

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    time.sleep(5)
    b.stop()
    stopped_at = time.time()
    time.sleep(6)
    b2 = restart(b)
    back_at = time.time()
    try:
        for t in ts:
            t.join(40)
        assert not any(t.is_alive() for t in ts)
        assert stats["fail"] == [], stats["fail"][:10]
        assert stats["ok"] > 1000, stats
        ejected = [t for t in log_times(g, r"server %s ejected" % b.address)
                   if t >= stopped_at - 0.05]
        assert ejected and ejected[0] - stopped_at <= 1.0, (ejected, stopped_at)
        readmit = [t for t in log_times(g, r"server %s (is up|readmitted)" % b.address)
                   if t >= back_at]
        assert readmit, g.error_log_text()[-3000:]
        assert b2.count("/echo") > 50, b2.count("/echo")
    finally:
        b2.stop()


# ---- connection pools -------------------------------------------------------


def test_pooled_connection_closed_by_server_detected_before_reuse(origins,
                                                                 reverse):
    """The server closes idle keep-alive connections after 0.2 s. A POST
    with a body (which could not be replayed) sent later still succeeds:
    the dead pooled connection was found before the request was written to
    it, never written into."""
    o = origins("short-idle", idle_timeout=0.2)
    g = reverse({"was": servers(o)})
    for i in range(3):
        assert get(g.port, "/echo?i=%d" % i).status == 200
        time.sleep(0.5)
        r = get(g.port, "/echo", method="POST", body=b"x" * 100,
                headers=[("Content-Length", "100")])
        assert r.status == 200 and json.loads(r.body)["body_len"] == 100
        time.sleep(0.5)
    assert o.accepted == 6
    assert "connection broke" not in g.error_log_text()


def test_h2_error_gives_back_the_server_slot(gatehouse, origins):
    """Regression (issue 4, after the HTTP/2 merge): an HTTP/2 request
    answered with an error while it held a server's in-flight slot (here a
    body over the route's max_body, found while streaming it up) gives the
    slot back; with max_conns 1, the next request is served, not 503."""
    from lib.proxy import reverse_config
    from lib.tls import h2c
    o = origins("a")
    port = free_port()
    sites = [{"default": True, "routes": [{"path": "/", "upstream": "was",
                                           "max_body": "1000"}]}]
    cfg = reverse_config(port, {"was": servers(o, a={"max_conns": 1})},
                         sites=sites)
    cfg["listeners"][0]["http2"] = {"h2c": True}
    gatehouse(cfg, port)
    for i in range(3):
        c = h2c(port)
        sid = c.request("POST", "/echo", body=b"x" * 5000, scheme="http")
        status, _, _ = c.response(sid)
        assert status == 413
        c.close()
        c = h2c(port)
        sid = c.request("GET", "/echo?i=%d" % i, scheme="http")
        status, headers, _ = c.response(sid)
        assert status == 200, (i, status, headers)
        c.close()
