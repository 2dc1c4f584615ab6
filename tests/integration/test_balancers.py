"""Upstream pools, balancing (docs/upstreams.md): each balancer against
three (or four) real origin servers.

Which origin served a request is read from the origin's own record of the
requests it received, or from the /echo body that names it."""

import json
import re
import threading
import time

from lib.net import RawConn, curl, request_bytes, wait_until

HOST = "127.0.0.1"


def url(g, path):
    return "http://%s:%d%s" % (HOST, g.port, path)


def servers(*origins, **extra):
    out = []
    for o in origins:
        s = {"address": o.address}
        s.update(extra.get(o.name, {}))
        out.append(s)
    return out


def echo_origins(stdout):
    """The 'origin' of each concatenated /echo JSON body."""
    text = stdout.decode().replace("}{", "}\n{")
    return [json.loads(x)["origin"] for x in text.split("\n") if x]


def smooth_wrr(weights, n):
    """nginx's smooth weighted round robin, as a reference."""
    cw = {k: 0 for k in weights}
    total = sum(weights.values())
    out = []
    for _ in range(n):
        for k, w in weights.items():
            cw[k] += w
        best = max(weights, key=lambda k: cw[k])  # first max wins on ties
        cw[best] -= total
        out.append(best)
    return out


def pipelined(port, reqs, batch=50, timeout=60):
    """Sends the request bytes <reqs> pipelined on one connection, <batch>
    at a time; returns the responses."""
    out = []
    with RawConn(port, timeout=timeout) as c:
        for i in range(0, len(reqs), batch):
            chunk = reqs[i:i + batch]
            c.send(b"".join(chunk))
            for _ in chunk:
                out.append(c.read_response())
    return out


def test_round_robin_weights_exact_and_smooth(origins, reverse):
    """Weights 5,1,1: exactly nginx's smooth sequence, a a b a c a a, over
    two full cycles; never a burst of five."""
    a, b, c = origins("a"), origins("b"), origins("c")
    g = reverse({"was": servers(a, b, c, a={"weight": 5})})
    p = curl(*[url(g, "/echo?i=%d" % i) for i in range(14)])
    seq = echo_origins(p.stdout)
    assert seq == smooth_wrr({"a": 5, "b": 1, "c": 1}, 14), seq
    assert "".join(seq[:7]) == "aabacaa", seq


def slow_then_fast(g, slow_origin, nslow, nfast):
    """Starts <nslow> concurrent requests (the slow origin keeps its share
    of them), waits until only the slow origin's are still in flight, then
    sends <nfast> requests one after another; returns how many of the fast
    ones the slow origin received."""
    done = []

    def slow(i):
        with RawConn(g.port, timeout=30) as c:
            c.send(request_bytes("GET", "/echo?slow=%d" % i))
            done.append(c.read_response().status)

    ts = [threading.Thread(target=slow, args=(i,)) for i in range(nslow)]
    for t in ts:
        t.start()
    # the fast origins answer at once; the slow one holds its requests
    assert wait_until(lambda: len(done) >= nslow - slow_origin.count(), 10)
    held = slow_origin.count()
    assert held >= 1, "the slow origin got none of the first requests"
    before = slow_origin.count()
    with RawConn(g.port, timeout=30) as c:
        for i in range(nfast):
            c.send(request_bytes("GET", "/echo?fast=%d" % i))
            r = c.read_response()
            assert r.status == 200
    got = slow_origin.count() - before
    for t in ts:
        t.join(30)
    assert done.count(200) == nslow, done
    return got, held


def test_least_conn_avoids_server_holding_slow_requests(origins, reverse):
    """least_conn, counted across both workers: while one server holds slow
    requests, new requests all go to the other two (round robin would send
    it a third of them)."""
    a, b, c = origins("a"), origins("b"), origins("c")
    a.delay = 4.0
    g = reverse({"was": servers(a, b, c)}, workers=2,
                upstream_opts={"was": {"balance": "least_conn"}})
    got, held = slow_then_fast(g, a, 6, 30)
    assert got == 0, "the busy server got %d of 30 new requests" % got
    assert b.count() + c.count() >= 30


def test_random_two_avoids_server_holding_slow_requests(origins, reverse):
    """random_two: of any two candidates the one with fewer in flight wins,
    so the busy server loses every draw that includes it."""
    a, b, c = origins("a"), origins("b"), origins("c")
    a.delay = 4.0
    g = reverse({"was": servers(a, b, c)}, workers=2,
                upstream_opts={"was": {"balance": "random_two"}})
    got, held = slow_then_fast(g, a, 6, 30)
    assert got == 0, "the busy server got %d of 30 new requests" % got


def test_random_two_spreads_evenly(origins, reverse):
    a, b, c = origins("a"), origins("b"), origins("c")
    g = reverse({"was": servers(a, b, c)},
                upstream_opts={"was": {"balance": "random_two"}})
    resp = pipelined(g.port, [request_bytes("GET", "/echo?i=%d" % i)
                              for i in range(300)], batch=1)
    assert all(r.status == 200 for r in resp)
    counts = [a.count(), b.count(), c.count()]
    assert sum(counts) == 300 and min(counts) >= 50, counts


def load(g, secs, nclients=4):
    """<nclients> keep-alive clients sending GETs for <secs> seconds."""
    errors = []
    stop = time.monotonic() + secs

    def client(k):
        try:
            with RawConn(g.port, timeout=30) as conn:
                i = 0
                while time.monotonic() < stop:
                    conn.send(request_bytes("GET", "/echo?c=%d&i=%d" % (k, i)))
                    if conn.read_response().status != 200:
                        errors.append(k)
                    i += 1
        except Exception as e:  # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(nclients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(secs + 30)
    assert errors == [], errors[:5]


def test_ewma_shifts_load_from_a_server_that_slows(origins, reverse):
    """ewma: while the three are equally fast, each gets a fair share of
    four concurrent clients' requests; when one server's latency rises to
    150 ms it gets almost nothing (round robin would still give it a
    third), and the others take its load."""
    a, b, c = origins("a"), origins("b"), origins("c")
    g = reverse({"was": servers(a, b, c)},
                upstream_opts={"was": {"balance": "ewma", "ewma_decay": "1s"}})
    load(g, 3)
    fair = [a.count(), b.count(), c.count()]
    assert min(fair) >= 0.1 * sum(fair), fair
    a.delay = 0.15
    before = [a.count(), b.count(), c.count()]
    load(g, 4)
    got = [x - y for x, y in zip([a.count(), b.count(), c.count()], before)]
    total = sum(got)
    assert total >= 100, got
    assert got[0] <= 0.05 * total, "slow server got %d of %d" % (got[0], total)


def run_keys(g, keys):
    reqs = [request_bytes("GET", "/k", headers=[("X-Key", k)]) for k in keys]
    parts = 4
    per = (len(reqs) + parts - 1) // parts
    errors = []

    def part(i):
        try:
            rs = pipelined(g.port, reqs[i * per:(i + 1) * per], batch=100)
            errors.extend(r.status for r in rs if r.status != 200)
        except Exception as e:  # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=part, args=(i,)) for i in range(parts)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == [], errors[:5]


def key_owner(origins_list, since):
    owner = {}
    for o in origins_list:
        with o.lock:
            reqs = o.requests[since.get(o.name, 0):]
        for r in reqs:
            owner[r.get("X-Key")] = o.name
    return owner


def test_hash_remap_fraction_when_a_server_is_added(origins, gatehouse,
                                                    tmp_path):
    """hash on a header: 10,000 keys over 3 servers, then the same keys
    over the same 3 plus a 4th. About 1/(N+1) = 25% move (within ±5
    points), and every key that moved went to the new server."""
    from lib.net import free_port
    from lib.proxy import reverse_config
    a, b, c, d = (origins(n) for n in "abcd")
    keys = ["user-%d" % i for i in range(10000)]
    opts = {"was": {"balance": "hash", "hash_key": "header:X-Key"}}

    port = free_port()
    g = gatehouse(reverse_config(port, {"was": servers(a, b, c)},
                                 upstream_opts=opts, log={"access": "off"}),
                  port, name="three")
    run_keys(g, keys)
    first = key_owner([a, b, c], {})
    g.stop()
    assert len(first) == len(keys)
    shares = [sum(1 for v in first.values() if v == n) for n in "abc"]
    assert min(shares) > 2500, shares  # about a third each

    since = {o.name: o.count() for o in (a, b, c, d)}
    port = free_port()
    g = gatehouse(reverse_config(port, {"was": servers(a, b, c, d)},
                                 upstream_opts=opts, log={"access": "off"}),
                  port, name="four")
    run_keys(g, keys)
    second = key_owner([a, b, c, d], since)
    assert len(second) == len(keys)
    moved = [k for k in keys if first[k] != second[k]]
    frac = len(moved) / len(keys)
    print("hash remap: %.4f of %d keys moved" % (frac, len(keys)))
    assert abs(frac - 0.25) <= 0.05, "moved %.3f of the keys" % frac
    assert all(second[k] == "d" for k in moved), "a key moved between old servers"


def test_hash_keys_uri_cookie_client(origins, reverse):
    """The same key always lands on the same server; a request without the
    key is balanced round robin."""
    a, b, c = origins("a"), origins("b"), origins("c")
    for key in ("uri", "cookie:uid", "client"):
        g = reverse({"was": servers(a, b, c)},
                    upstream_opts={"was": {"balance": "hash", "hash_key": key}})
        seen = {}
        for i in range(20):
            for rep in range(3):
                hs = [("Cookie", "a=1; uid=u%d; z=2" % i)]
                with RawConn(g.port) as conn:
                    conn.send(request_bytes("GET", "/echo/p%d" % i, headers=hs))
                    who = json.loads(conn.read_response().body)["origin"]
                seen.setdefault(i, set()).add(who)
        assert all(len(v) == 1 for v in seen.values()), (key, seen)
        spread = {next(iter(v)) for v in seen.values()}
        if key == "client":
            assert len(spread) == 1, spread  # one client address, one server
        else:
            assert len(spread) == 3, (key, spread)
        g.stop()
    # no cookie: round robin over the three
    g = reverse({"was": servers(a, b, c)},
                upstream_opts={"was": {"balance": "hash",
                                       "hash_key": "cookie:uid"}})
    p = curl(*[url(g, "/echo?i=%d" % i) for i in range(6)])
    assert sorted(echo_origins(p.stdout)) == ["a", "a", "b", "b", "c", "c"]


def cookie_of(r):
    """(name=value, attributes) of the sticky Set-Cookie of Response r."""
    for v in r.get_all("Set-Cookie"):
        m = re.fullmatch(r"(GH_SRV=[0-9a-f]{16})(;.*)", v)
        if m:
            return m.group(1), m.group(2)
    return None, None


def get_raw(port, path, cookie=None):
    hs = [("Cookie", cookie)] if cookie else []
    with RawConn(port) as conn:
        conn.send(request_bytes("GET", path, headers=hs))
        r = conn.read_response()
    return r


def test_sticky_cookie_keeps_a_client_on_its_server(origins, reverse):
    """The proxy's cookie names the server: a client that sends it back
    stays there (round robin would move it every request), until that
    server goes away; then it gets another server and a new cookie."""
    a, b, c = origins("a"), origins("b"), origins("c")
    g = reverse({"was": servers(a, b, c)},
                upstream_opts={"was": {"sticky": {"cookie": "GH_SRV",
                                                  "max_age": "1h"},
                                       "connect_timeout": "1s"}})
    r = get_raw(g.port, "/echo")
    first = json.loads(r.body)["origin"]
    cookie, attrs = cookie_of(r)
    assert cookie is not None, r.headers
    assert "Path=/" in attrs and "Max-Age=3600" in attrs and "HttpOnly" in attrs
    jsession = "JSESSIONID=abc123; " + cookie
    for i in range(9):
        r = get_raw(g.port, "/echo?i=%d" % i, cookie=jsession)
        assert json.loads(r.body)["origin"] == first, i
        assert cookie_of(r)[0] is None, r.headers  # not set again
    # the server goes away: the client moves and is told its new server
    gone = {"a": a, "b": b, "c": c}[first]
    gone.stop()
    r = get_raw(g.port, "/echo", cookie=jsession)
    assert r.status == 200
    second = json.loads(r.body)["origin"]
    assert second != first
    new_cookie = cookie_of(r)[0]
    assert new_cookie is not None and new_cookie != cookie
    for i in range(3):
        r = get_raw(g.port, "/echo?j=%d" % i, cookie=new_cookie)
        assert json.loads(r.body)["origin"] == second
    # a cookie naming no server is ignored (and replaced)
    r = get_raw(g.port, "/echo", cookie="GH_SRV=0123456789abcdef")
    assert r.status == 200 and cookie_of(r)[0] is not None


def test_example_upstreams_yaml_runs(origins, gatehouse):
    """examples/upstreams.yaml as it is, with its ports moved to free ones:
    requests spread over the three primaries, never the backup, with the
    sticky cookie set; once the primaries are gone and ejected, the backup
    serves."""
    import os
    from lib.net import free_port
    from lib.proxy import ROOT, run_cli
    path = os.path.join(ROOT, "examples", "upstreams.yaml")
    p = run_cli(["-t", "-c", path])
    assert p.returncode == 0, p.stderr
    with open(path) as f:
        text = f.read()
    os_ = [origins("was%d" % i) for i in (1, 2, 3, 4)]
    listen = free_port()
    text = re.sub(r"127\.0\.0\.1:8080\b", "127.0.0.1:%d" % listen, text)
    for i, o in enumerate(os_, 1):
        assert "127.0.0.1:900%d" % i in text
        text = re.sub(r"127\.0\.0\.1:900%d\b" % i, o.address, text)
    text = text.replace("access: stdout", "access: off")
    g = gatehouse(text, listen)
    seen = []
    for i in range(8):
        r = get_raw(g.port, "/echo?i=%d" % i)
        assert r.status == 200
        assert any(v.startswith("GH_SRV=") for v in r.get_all("Set-Cookie"))
        seen.append(json.loads(r.body)["origin"])
    assert set(seen) == {"was1", "was2", "was3"}, seen
    for o in os_[:3]:
        o.stop()
    # each request tries 3 primaries (retries.tries); after 3 failures in a
    # row each is ejected (passive), and then only the backup is left
    statuses = []
    for i in range(6):
        r = get_raw(g.port, "/echo?j=%d" % i)
        statuses.append(r.status)
        if r.status == 200:
            assert json.loads(r.body)["origin"] == "was4"
            break
    assert statuses[-1] == 200 and len(statuses) <= 4, statuses
