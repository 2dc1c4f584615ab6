"""Upstream servers by host name (resolve: true): re-resolved at the TTL,
servers added and removed as the answer changes (docs/upstreams.md
"Servers by name"). A DNS server started by the test (lib/dns.py) answers
for was.test; the origins listen on 127.0.0.1, .2 and .3, same port."""

import json
import re
import socket

import pytest

from lib.dns import DnsServer
from lib.net import RawConn, free_port, request_bytes, wait_until


def origin_ips_port(origins):
    """Three origins on 127.0.0.1/.2/.3 with one port."""
    for _ in range(20):
        port = free_port()
        try:
            made = [origins("o%d" % i, port=port, host="127.0.0.%d" % i)
                    for i in (1, 2, 3)]
            return made, port
        except OSError:
            continue  # the port was taken on .2 or .3: another one
    pytest.skip("no port free on 127.0.0.1-3")


def served_by(g, n):
    seen = []
    with RawConn(g.port) as c:
        for i in range(n):
            c.send(request_bytes("GET", "/echo?i=%d" % i))
            r = c.read_response()
            assert r.status == 200, r
            seen.append(json.loads(r.body)["origin"])
    return seen


def test_name_reresolved_at_ttl_servers_follow_the_answer(origins, reverse):
    (o1, o2, o3), port = origin_ips_port(origins)
    dns = DnsServer().start()
    try:
        dns.set("was.test", ["127.0.0.1"], ttl=1)
        g = reverse({"was": [{"address": "was.test:%d" % port, "resolve": True,
                              "max_addresses": 4}]},
                    log={"format": "json"},
                    upstream_opts={"was": {"resolver": {
                        "servers": [dns.address], "min_ttl": "200ms"}}})
        assert set(served_by(g, 6)) == {"o1"}
        log = g.error_log_text
        assert "was.test: server 127.0.0.1:%d added (ttl 1s)" % port in log()
        # a second address: added within about one TTL, and used
        dns.set("was.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        assert wait_until(lambda: "server 127.0.0.2:%d added" % port in log(), 4), log()
        assert set(served_by(g, 8)) == {"o1", "o2"}
        # the first goes away, a third comes
        dns.set("was.test", ["127.0.0.2", "127.0.0.3"], ttl=1)
        assert wait_until(lambda: "server 127.0.0.1:%d removed" % port in log(), 4), log()
        assert wait_until(lambda: "server 127.0.0.3:%d added" % port in log(), 4), log()
        n1 = o1.count()
        assert set(served_by(g, 8)) == {"o2", "o3"}
        assert o1.count() == n1
        # the access log names the address that served
        recs = [json.loads(x) for x in g.access_lines()]
        assert recs[-1]["upstream_servers"][0] in (o2.address, o3.address)
        # queried again at about the TTL, not per request
        q = dns.count("was.test")
        assert 2 <= q <= 30, q
        # the resolver fails: the addresses there were stay
        dns.refuse = True
        assert wait_until(lambda: "cannot resolve was.test" in log(), 4), log()
        assert set(served_by(g, 6)) == {"o2", "o3"}
        dns.refuse = False
        assert wait_until(lambda: "was.test resolves again" in log(), 4), log()
    finally:
        dns.stop()


def test_name_resolved_before_first_request(origins, reverse):
    """The first answer is awaited at start: the very first request already
    has a server."""
    (o1, o2, o3), port = origin_ips_port(origins)
    dns = DnsServer().start()
    try:
        dns.set("was.test", ["127.0.0.3"], ttl=300)
        g = reverse({"was": [{"address": "was.test:%d" % port, "resolve": True}]},
                    upstream_opts={"was": {"resolver": {"servers": [dns.address]}}})
        assert served_by(g, 1) == ["o3"]
        assert dns.count("was.test") == 1
    finally:
        dns.stop()
