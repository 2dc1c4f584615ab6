"""The live dashboard (issue 8) in a real browser: headless Chromium loads
the admin page while traffic flows, through the DevTools protocol the test
checks that the charts hold data points and that an upstream server the
test stopped is shown as down, and saves screenshots (laptop and phone
sizes) to build/artifacts/ as test artifacts."""

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
import websockets

from lib.net import free_port
from lib.ops import Load, ops_config, status
from lib.proxy import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "build", "artifacts")


class Browser:
    """Headless Chromium with a fresh profile, driven over the DevTools
    protocol (CDP) on a port it picks itself."""

    def __init__(self, profile):
        self.profile = str(profile)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + self.profile, "--remote-debugging-port=0",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("chromium did not start: %s" %
                                     self.proc.stderr.read()[-2000:])
            time.sleep(0.1)
        time.sleep(0.1)
        with open(port_file) as f:
            self.port = int(f.readline())
        targets = json.load(urllib.request.urlopen(
            "http://127.0.0.1:%d/json/list" % self.port, timeout=10))
        self.ws_url = next(t["webSocketDebuggerUrl"] for t in targets
                           if t["type"] == "page")
        self.n = 0

    async def call(self, ws, method, **params):
        self.n += 1
        mid = self.n
        await ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    async def eval(self, ws, expr):
        r = await self.call(ws, "Runtime.evaluate", expression=expr,
                            returnByValue=True)
        return r["result"].get("value")

    async def wait_for(self, ws, expr, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.eval(ws, expr):
                return True
            await asyncio.sleep(0.25)
        return False

    async def screenshot(self, ws, path):
        import base64
        r = await self.call(ws, "Page.captureScreenshot", format="png")
        data = base64.b64decode(r["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


POINTS = "(id) => +document.getElementById(id).dataset.points"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
def test_dashboard_in_chromium(origins, gatehouse, tmp_path):
    o1, o2 = origins("d1"), origins("d2")
    port, aport = free_port(), free_port()
    cfg = ops_config(port, {"was": [o1.port, o2.port]}, admin_port=aport, workers=2)
    g = gatehouse(cfg, port)
    load = Load(g.port, "/echo", clients=3, duration=90).start()
    browser = Browser(tmp_path / "chromium-profile")
    os.makedirs(ARTIFACTS, exist_ok=True)

    async def drive():
        async with websockets.connect(browser.ws_url, max_size=1 << 26) as ws:
            await browser.call(ws, "Page.enable")
            await browser.call(ws, "Runtime.enable")
            await browser.call(ws, "Page.navigate", url="http://127.0.0.1:%d/" % aport)
            # the charts fill from /status, once a second
            ok = await browser.wait_for(
                ws, "(%s)('c-rps') >= 3 && (%s)('c-lat') >= 3 && (%s)('c-conns') >= 3"
                % (POINTS, POINTS, POINTS), 30)
            assert ok, "charts hold no data: %r" % await browser.eval(
                ws, "[...document.querySelectorAll('canvas')].map(c => c.dataset.points)")
            rps = await browser.eval(ws, "gh.last.history.rps.slice(-3)")
            assert max(rps) > 0, rps
            assert await browser.eval(ws, "document.getElementById('live').textContent") == "live"
            rows = await browser.eval(
                ws, "[...document.querySelectorAll('#t-ups tbody tr')].map(r => r.dataset.state)")
            assert rows == ["up", "up"], rows
            # stop one upstream server: traffic goes on (the other answers),
            # and the page shows the stopped one as down
            o2.stop()
            down = "127.0.0.1:%d" % o2.port
            ok = await browser.wait_for(
                ws, "(() => { const r = document.querySelector('#t-ups tr[data-server=\"%s\"]');"
                    " return r && r.dataset.state === 'down' &&"
                    " r.querySelector('.badge').textContent === 'down'; })()" % down, 20)
            assert ok, "stopped server not shown as down"
            assert await browser.eval(ws, "document.getElementById('k-ups').textContent") == "1 / 2"
            n = await browser.screenshot(ws, os.path.join(ARTIFACTS, "dashboard-laptop.png"))
            assert n > 10000
            # a phone: nothing wider than the screen, charts still drawn
            await browser.call(ws, "Emulation.setDeviceMetricsOverride", width=390,
                               height=844, deviceScaleFactor=2, mobile=True)
            await asyncio.sleep(1.5)
            wide = await browser.eval(
                ws, "document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert wide, "the page is wider than a phone screen"
            assert await browser.eval(ws, "(%s)('c-rps')" % POINTS) >= 3
            await browser.screenshot(ws, os.path.join(ARTIFACTS, "dashboard-phone.png"))

    try:
        asyncio.run(asyncio.wait_for(drive(), 120))
    finally:
        browser.close()
        load.stop()
    # requests in flight on the stopped server may fail; the rest flowed
    assert load.ok > 50 and len(load.failed) <= 3, (load.ok, load.failed[:5])
    d = status(aport)
    states = {s["address"]: s["state"] for s in d["upstreams"][0]["servers"]}
    assert states["127.0.0.1:%d" % o2.port] == "down"
