"""Active health checks in /metrics and /status (issue 8): the health
thread's results are counted per server, and a server that the checks mark
down (with no request traffic at all, so no failed connect says so) shows
as down in /status and /metrics, then up again once its origin, restarted
on the same port, passes <rise> checks."""

import asyncio
import os
import signal
import time

import pytest
import websockets

from lib.net import HOST, free_port, wait_until
from lib.ops import ops_config, status, write_config
from lib.prom import scrape, val
from test_dashboard import ARTIFACTS, CHROMIUM, Browser

HEALTH = {"path": "/echo", "interval": "200ms", "timeout": "150ms",
          "rise": 2, "fall": 2}


def server(aport, addr):
    for u in status(aport)["upstreams"]:
        for s in u["servers"]:
            if s["address"] == addr:
                return s
    raise AssertionError("no server %s in /status" % addr)


def checks(aport, addr):
    s = scrape(aport)
    lab = {"upstream": "was", "server": addr}
    return {"ok": val(s, "gatehouse_upstream_health_checks_total", result="ok", **lab),
            "failed": val(s, "gatehouse_upstream_health_checks_total",
                          result="failed", **lab),
            "up": val(s, "gatehouse_upstream_up", **lab),
            "last": val(s, "gatehouse_upstream_health_last_check_passed", **lab),
            "at": val(s, "gatehouse_upstream_health_last_check_timestamp_seconds",
                      **lab)}


def test_health_checks_counted_and_server_down_then_up(origins, gatehouse):
    o1, o2 = origins("h1"), origins("h2")
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [o1.port, o2.port]}, admin_port=aport, workers=2,
                     upstream_opts={"was": {"health": HEALTH}})
    g = gatehouse(cfg, port)
    a2 = "%s:%d" % (HOST, o2.port)
    # checks pass: counted, the server is up, the last one passed
    assert wait_until(lambda: (checks(aport, a2)["ok"] or 0) >= 3, 10), checks(aport, a2)
    c = checks(aport, a2)
    assert c["failed"] == 0 and c["up"] == 1 and c["last"] == 1, c
    assert abs(c["at"] - time.time()) < 5, c
    s = server(aport, a2)
    assert s["state"] == "up", s
    assert s["health_checks"]["down"] is False and s["health_checks"]["last"] == "passed"
    # the origin stops: the checks fail, and after <fall> of them the
    # server is down, though no request tried it
    port2 = o2.port
    o2.stop()
    assert wait_until(lambda: server(aport, a2)["state"] == "down", 10), server(aport, a2)
    s = server(aport, a2)
    assert s["health_checks"]["down"] is True, s
    assert s["health_checks"]["last"] == "failed" and s["health_checks"]["failed"] >= 2
    assert s["connect_failures"] == 0 and s["requests"] == 0, s
    c = checks(aport, a2)
    assert c["up"] == 0 and c["last"] == 0 and c["failed"] >= 2, c
    # while it stays down, failures go on and passes do not
    ok_down = c["ok"]
    assert wait_until(lambda: checks(aport, a2)["failed"] >= c["failed"] + 3, 10)
    assert checks(aport, a2)["ok"] == ok_down
    assert server(aport, a2)["state"] == "down"
    # the other server is still up and serves
    assert server(aport, "%s:%d" % (HOST, o1.port))["state"] == "up"
    # restarted on the same port: <rise> passes bring it back
    origins("h2", port=port2)
    assert wait_until(lambda: server(aport, a2)["state"] == "up", 10), server(aport, a2)
    s = server(aport, a2)
    assert s["health_checks"]["down"] is False and s["health_checks"]["last"] == "passed"
    c = checks(aport, a2)
    assert c["up"] == 1 and c["last"] == 1 and c["ok"] >= ok_down + 2, c
    # and /status and /metrics agree on the counts
    s = server(aport, a2)
    assert s["health_checks"]["ok"] >= ok_down + 2
    assert "is down (health check" in g.error_log_text()
    assert "is up (2 health checks passed" in g.error_log_text()


def test_no_health_checks_no_health_series(origin, gatehouse):
    port, aport = free_port(), free_port()
    g = gatehouse(ops_config(port, {"was": [origin.port]}, admin_port=aport), port)
    a = "%s:%d" % (HOST, origin.port)
    assert server(aport, a)["health_checks"] is None
    c = checks(aport, a)
    assert c["ok"] == 0 and c["failed"] == 0 and c["last"] is None and c["at"] is None
    assert g.alive()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
def test_dashboard_shows_health_down_then_up(origins, gatehouse, tmp_path):
    """The dashboard in headless Chromium: a server the active checks mark
    down (no traffic: no failed connect) turns down, then up again."""
    o1, o2 = origins("d1"), origins("d2")
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [o1.port, o2.port]}, admin_port=aport,
                     upstream_opts={"was": {"health": HEALTH}})
    gatehouse(cfg, port)
    a2 = "%s:%d" % (HOST, o2.port)
    port2 = o2.port
    row = "document.querySelector('#t-ups tr[data-server=\"%s\"]')" % a2
    browser = Browser(tmp_path / "chromium-profile")
    os.makedirs(ARTIFACTS, exist_ok=True)

    async def drive():
        async with websockets.connect(browser.ws_url, max_size=1 << 26) as ws:
            await browser.call(ws, "Page.enable")
            await browser.call(ws, "Runtime.enable")
            await browser.call(ws, "Page.navigate", url="http://127.0.0.1:%d/" % aport)

            async def state_is(st, text):
                return await browser.wait_for(
                    ws, "(() => { const r = %s; return r && r.dataset.state === '%s' &&"
                        " r.querySelector('.badge').textContent === '%s' &&"
                        " r.querySelector('.hc').textContent.includes('%s'); })()"
                        % (row, st, st, text), 20)
            assert await state_is("up", "last passed"), await browser.eval(
                ws, "%s && %s.outerHTML" % (row, row))
            o2.stop()
            assert await state_is("down", "last failed"), await browser.eval(
                ws, "%s && %s.outerHTML" % (row, row))
            assert await browser.eval(ws, "document.getElementById('k-ups').textContent") == "1 / 2"
            n = await browser.screenshot(ws, os.path.join(ARTIFACTS, "dashboard-health-down.png"))
            assert n > 10000
            origins("d2", port=port2)
            assert await state_is("up", "last passed"), await browser.eval(
                ws, "%s && %s.outerHTML" % (row, row))
            assert await browser.eval(ws, "document.getElementById('k-ups').textContent") == "2 / 2"

    try:
        asyncio.run(asyncio.wait_for(drive(), 90))
    finally:
        browser.close()


def test_health_counts_go_on_across_a_reload(origins, gatehouse):
    """The health thread a reload starts counts on the same series: the
    counts never go back, and they keep growing."""
    o = origins("r1")
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [o.port]}, admin_port=aport,
                     upstream_opts={"was": {"health": HEALTH}})
    g = gatehouse(cfg, port)
    a = "%s:%d" % (HOST, o.port)
    assert wait_until(lambda: (checks(aport, a)["ok"] or 0) >= 2, 10)
    write_config(g, cfg)
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: status(aport)["config"]["generation"] == 2, 10)
    before = checks(aport, a)["ok"]
    assert wait_until(lambda: checks(aport, a)["ok"] >= before + 3, 10), checks(aport, a)
    c = checks(aport, a)
    assert c["failed"] == 0 and c["up"] == 1 and c["last"] == 1, c


def test_passive_ejection_shows_as_down(origins, gatehouse):
    """A server that answers 5xx connects fine (no failed connect says it is
    down), but passive checks eject it: /status and /metrics show it down
    while the ejection lasts, and up after."""
    from lib.net import curl
    o1, o2 = origins("p1"), origins("p2")
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [o1.port, o2.port]}, admin_port=aport,
                     upstream_opts={"was": {"passive": {
                         "failures": 2, "window": "10s", "eject": "2s",
                         "eject_max": "2s"}}})
    g = gatehouse(cfg, port)
    addrs = ["%s:%d" % (HOST, o.port) for o in (o1, o2)]
    # 5xx from whichever server: a run of failures ejects one of them
    for _ in range(6):
        curl("http://%s:%d/status/503" % (HOST, port), check=False)
    states = {a: server(aport, a)["state"] for a in addrs}
    assert "down" in states.values(), states
    out = [a for a in addrs if states[a] == "down"]
    s = scrape(aport)
    for a in out:
        assert val(s, "gatehouse_upstream_up", upstream="was", server=a) == 0
    assert "ejected" in g.error_log_text()
    # the ejection ends: up again (its last connect succeeded)
    assert wait_until(lambda: all(server(aport, a)["state"] == "up" for a in out), 6), \
        [server(aport, a) for a in out]
