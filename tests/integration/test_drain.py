"""Leaving a cluster (issue 9): `gatehouse drain` (SIGTERM) with
cluster.drain_delay set. Idle
keep-alive connections are closed at once, busy ones get "Connection:
close" on their response, new connections are still accepted for
cluster.drain_delay (the balancer has not noticed yet) and served with
"Connection: close", then the listeners close and the process exits 0 when
the last response is out."""

import json
import signal
import socket
import subprocess
import time

from lib.net import HOST, RawConn, curl_popen, free_port, request_bytes
from lib.proxy import reverse_config, run_cli


def refused(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((HOST, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def drain_config(tmp_path, origin, delay="1500ms", extra=None):
    port = free_port()
    ex = {"pid_file": str(tmp_path / "gh.pid"),
          "cluster": {"drain_delay": delay}}
    ex.update(extra or {})
    return port, reverse_config(port, {"was": [origin.port]}, extra=ex)


def test_drain_command_finishes_work_then_exits(origin, gatehouse, tmp_path):
    port, cfg = drain_config(tmp_path, origin)
    g = gatehouse(cfg, port)
    idle = RawConn(port)
    idle.send(request_bytes("GET", "/echo"))
    assert idle.read_response().status == 200
    heads = tmp_path / "heads"
    busy = curl_popen("-D", heads, "-w", "\n%{http_code}",
                      "http://127.0.0.1:%d/slow/2500" % port, timeout=20,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert origin.wait_requests(2, timeout=5), "busy request never arrived"
        t0 = time.monotonic()
        r = run_cli(["drain", "-c", g.config_path])
        assert r.returncode == 0, r.stderr
        assert "signal sent to process %d" % g.pid in r.stdout
        # idle keep-alive connections go at once
        assert idle.closed_within(1.0), "idle keep-alive connection kept open"
        # during drain_delay new connections are still taken, one request each
        with RawConn(port) as c:
            c.send(request_bytes("GET", "/echo"))
            resp = c.read_response()
            assert resp.status == 200
            assert (resp.get("Connection") or "").lower() == "close"
            assert c.closed_within(2)
        assert time.monotonic() - t0 < 1.5
        # after the delay: no more connections
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and not refused(port):
            time.sleep(0.1)
        assert refused(port), "still accepting after drain_delay"
        assert time.monotonic() - t0 >= 1.4, "stopped accepting before drain_delay"
        assert busy.poll() is None, "the busy request ended early"
        out, err = busy.communicate(timeout=20)
    finally:
        idle.close()
        if busy.poll() is None:
            busy.kill()
            busy.wait(5)
    body, _, code = out.decode().rpartition("\n")
    assert code == "200", (out, err)
    assert json.loads(body)["path"] == "/slow/2500"
    assert "connection: close" in heads.read_text().lower()
    g.checked = True
    assert g.wait(10) == 0, "exit status %r" % g.returncode
    assert "draining: health checks fail" in g.error_log_text()


def test_sigterm_when_idle_exits_after_delay(origin, gatehouse, tmp_path):
    port, cfg = drain_config(tmp_path, origin, delay="300ms")
    g = gatehouse(cfg, port)
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    g.checked = True
    assert g.wait(5) == 0
    took = time.monotonic() - t0
    assert 0.25 <= took < 3, took


def test_sigint_cuts_a_drain_short(origin, gatehouse, tmp_path):
    port, cfg = drain_config(tmp_path, origin, delay="30s")
    g = gatehouse(cfg, port)
    g.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert g.alive(), "exited before drain_delay"
    g.send_signal(signal.SIGINT)
    g.checked = True
    assert g.wait(5) is not None, "SIGINT did not stop a draining gatehouse"


def test_second_sigterm_skips_the_delay(origin, gatehouse, tmp_path):
    port, cfg = drain_config(tmp_path, origin, delay="30s")
    g = gatehouse(cfg, port)
    g.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert g.alive(), "exited before drain_delay"
    assert not refused(port), "stopped accepting before drain_delay"
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    g.checked = True
    assert g.wait(5) == 0, "a second SIGTERM did not end the drain"
    assert time.monotonic() - t0 < 3


def test_drain_without_pid_file_says_why(origin, gatehouse, tmp_path):
    port = free_port()
    cfg = reverse_config(port, {"was": [origin.port]})
    g = gatehouse(cfg, port)
    r = run_cli(["drain", "-c", g.config_path])
    assert r.returncode == 1
    assert "has no \"pid_file\"" in r.stderr
    assert g.alive()


def test_drain_when_not_running(origin, gatehouse, tmp_path):
    port, cfg = drain_config(tmp_path, origin)
    g = gatehouse(cfg, port, run=False)
    r = run_cli(["drain", "-c", g.config_path])
    assert r.returncode == 1
    assert "is gatehouse running?" in r.stderr


def test_cluster_example_runs_and_drains(origins, gatehouse, tmp_path):
    """examples/cluster-node.yaml runs as it is (ports and paths moved to
    free ones in a copy), with no Redis listening: it serves, says it uses
    local state, and drains on request."""
    import os
    import re
    from lib.net import curl
    from lib.proxy import ROOT
    path = os.path.join(ROOT, "examples", "cluster-node.yaml")
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    text = open(path).read()
    a, b = origins("was1"), origins("was2")
    listen, redis = free_port(), free_port()
    for old, new in (("127.0.0.1:8080", listen), ("127.0.0.1:9001", a.port),
                     ("127.0.0.1:9002", b.port), ("127.0.0.1:6379", redis)):
        assert old in text
        text = text.replace(old, "127.0.0.1:%d" % new)
    text = re.sub(r"/tmp/gatehouse-node1\.pid", str(tmp_path / "n.pid"), text)
    text = text.replace("drain_delay: 2s", "drain_delay: 200ms")
    g = gatehouse(text, listen)
    p = curl("-s", "-D", "-", "http://127.0.0.1:%d/echo" % listen)
    out = p.stdout.decode()
    assert " 200 " in out.splitlines()[0]
    assert "Via: 1.1 node1" in out
    deadline = time.monotonic() + 5
    while "using local state" not in g.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "using local state" in g.stderr()
    r = run_cli(["drain", "-c", g.config_path])
    assert r.returncode == 0, r.stderr
    g.checked = True
    assert g.wait(10) == 0


def test_reload_applies_drain_delay_and_says_redis_needs_restart(origin, gatehouse,
                                                                 tmp_path):
    r1, r2 = free_port(), free_port()
    port, cfg = drain_config(tmp_path, origin, delay="100ms")
    cfg["cluster"]["redis"] = "127.0.0.1:%d" % r1
    g = gatehouse(cfg, port)
    from lib.proxy import to_yaml
    cfg["cluster"] = {"drain_delay": "1500ms", "redis": "127.0.0.1:%d" % r2}
    with open(g.config_path, "w") as f:
        f.write(to_yaml(cfg))
    r = run_cli(["reload", "-c", g.config_path])
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 5
    while "reloaded" not in g.error_log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = g.error_log_text()
    assert "reloaded" in log, log
    assert "\"cluster.redis\" changed; a restart applies it" in log
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    time.sleep(0.6)
    assert not refused(port), "the reloaded drain_delay (1.5s) was not applied"
    g.checked = True
    assert g.wait(10) == 0
    assert time.monotonic() - t0 >= 1.4
