"""Zero-downtime reload (issue 8): SIGHUP and `gatehouse reload` load the
file again; an invalid file is refused and the running configuration keeps
serving; listeners come and go; requests in flight and idle keep-alive
connections finish on the configuration they started with; SIGUSR1 reopens
the logs."""

import json
import os
import signal
import socket
import time

import pytest

from lib.net import HOST, RawConn, free_port, get, request_bytes, wait_until
from lib.ops import Load, ops_config, status, write_config
from lib.proxy import run_cli


def reload_and_wait(g, aport, gen, timeout=10):
    g.send_signal(signal.SIGHUP)
    ok = wait_until(lambda: status(aport)["config"]["generation"] >= gen, timeout)
    assert ok, "generation %d not reached; error log:\n%s" % (gen, g.error_log_text()[-2000:])


def origin_of(resp_body):
    return json.loads(resp_body)["origin"]


@pytest.fixture
def two(origins, gatehouse):
    """Gatehouse routing / to upstream "a" (origin a); cfg("b") routes to b."""
    oa, ob = origins("a"), origins("b")
    port, aport = free_port(), free_port()

    def cfg(which, **kw):
        sites = [{"default": True, "routes": [{"path": "/", "upstream": which}]}]
        return ops_config(port, {"a": [oa.port], "b": [ob.port]}, admin_port=aport,
                          sites=sites, workers=2, **kw)

    g = gatehouse(cfg("a"), port)
    g.aport, g.cfg, g.oa, g.ob = aport, cfg, oa, ob
    return g


def test_20_reloads_under_load_zero_failed_requests(two):
    g = two
    load = Load(g.port, "/echo", clients=4, duration=60).start()
    try:
        time.sleep(0.5)
        for i in range(20):
            write_config(g, g.cfg("b" if i % 2 == 0 else "a"))
            reload_and_wait(g, g.aport, i + 2)
            time.sleep(0.15)
    finally:
        load.stop()
    assert load.failed == [], "%d failed of %d: %s" % (
        len(load.failed), load.ok + len(load.failed), load.failed[:5])
    assert load.ok > 100, "too little traffic to mean anything: %d" % load.ok
    origins = {origin_of(b) for b in load.bodies}
    assert origins == {"a", "b"}, origins
    d = status(g.aport)
    assert d["config"]["generation"] == 21
    assert d["config"]["reloads"] == 20 and d["config"]["reloads_failed"] == 0
    assert "reloaded" in g.error_log_text()


@pytest.mark.parametrize("bad", [
    ("listeners: [\n", ":2:1:"),
    ("listeners:\n  - listen: 127.0.0.1:1\n    sites:\n      - default: true\n"
     "        routes: [{ path: /, upstream: nope }]\n", "no upstream named"),
    ("workers: 1\nlistn: x\n", "unknown key"),
])
def test_invalid_config_is_refused_and_old_keeps_serving(two, bad):
    g = two
    text, why = bad
    assert origin_of(get(g.port, "/echo").body) == "a"
    with open(g.config_path, "w") as f:
        f.write(text)
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: status(g.aport)["config"]["reloads_failed"] == 1, 10)
    d = status(g.aport)
    assert d["config"]["generation"] == 1
    assert d["config"]["last_reload"]["ok"] is False
    assert why in d["config"]["last_reload"]["error"]
    log = g.error_log_text()
    assert "reload refused" in log and why in log
    for _ in range(5):
        r = get(g.port, "/echo")
        assert r.status == 200 and origin_of(r.body) == "a"
    # a good file afterwards is taken
    write_config(g, g.cfg("b"))
    reload_and_wait(g, g.aport, 2)
    assert origin_of(get(g.port, "/echo").body) == "b"


def test_reload_refused_when_a_new_port_is_taken(two):
    g = two
    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        cfg = g.cfg("b")
        cfg["listeners"].append({"listen": "%s:%d" % (HOST, taken), "sites": [
            {"default": True, "routes": [{"path": "/", "upstream": "b"}]}]})
        write_config(g, cfg)
        g.send_signal(signal.SIGHUP)
        assert wait_until(lambda: status(g.aport)["config"]["reloads_failed"] == 1, 10)
        assert "cannot listen" in status(g.aport)["config"]["last_reload"]["error"]
        assert origin_of(get(g.port, "/echo").body) == "a"
    finally:
        busy.close()


def test_listeners_added_and_removed(two):
    g = two
    p2 = free_port()
    site = [{"default": True, "routes": [{"path": "/", "upstream": "b"}]}]
    cfg = g.cfg("a")
    cfg["listeners"].append({"listen": "%s:%d" % (HOST, p2), "sites": site})
    write_config(g, cfg)
    reload_and_wait(g, g.aport, 2)
    assert origin_of(get(g.port, "/echo").body) == "a"
    assert origin_of(get(p2, "/echo").body) == "b"
    # now only the second one
    cfg["listeners"] = cfg["listeners"][1:]
    write_config(g, cfg)
    reload_and_wait(g, g.aport, 3)
    assert origin_of(get(p2, "/echo").body) == "b"
    s = socket.socket()
    s.settimeout(2)
    with pytest.raises(ConnectionRefusedError):
        s.connect((HOST, g.port))
    s.close()


def test_in_flight_request_finishes_on_old_config(two):
    g = two
    with RawConn(g.port, timeout=15) as c:
        c.send(request_bytes("GET", "/slow/1500"))
        assert g.oa.wait_requests(1, timeout=5)
        write_config(g, g.cfg("b"))
        reload_and_wait(g, g.aport, 2)
        assert origin_of(get(g.port, "/echo").body) == "b"  # new requests: b
        r = c.read_response()
        assert r.status == 200 and origin_of(r.body) == "a"
        assert (r.get("connection") or "").lower() == "close"
        assert c.closed_within(3)


def test_idle_keepalive_connection_serves_next_request_on_old_config(two):
    g = two
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/echo"))
        r = c.read_response()
        assert origin_of(r.body) == "a" and r.get("connection") is None
        write_config(g, g.cfg("b"))
        reload_and_wait(g, g.aport, 2)
        time.sleep(0.3)
        assert not c.closed_within(0.2), "an idle connection was closed by the reload"
        c.send(request_bytes("GET", "/echo"))
        r = c.read_response()
        assert r.status == 200 and origin_of(r.body) == "a"
        assert (r.get("connection") or "").lower() == "close"
        assert c.closed_within(3)
    assert origin_of(get(g.port, "/echo").body) == "b"


def test_reload_command_uses_the_pid_file(two, tmp_path):
    g = two
    pid = str(tmp_path / "gh.pid")
    # restart with a pid file
    g.stop()
    cfg = g.cfg("a", extra={"pid_file": pid})
    write_config(g, cfg)
    g.start()
    assert wait_until(lambda: os.path.exists(pid), 5)
    write_config(g, g.cfg("b", extra={"pid_file": pid}))
    r = run_cli(["reload", "-c", g.config_path])
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: status(g.aport)["config"]["generation"] == 2, 10)
    assert origin_of(get(g.port, "/echo").body) == "b"
    # a broken file is not even signalled: the command says why
    with open(g.config_path, "a") as f:
        f.write("bogus: [\n")
    r = run_cli(["reload", "-c", g.config_path])
    assert r.returncode == 1 and g.config_path in r.stderr
    time.sleep(0.3)
    assert status(g.aport)["config"]["reloads_failed"] == 0


def test_sigusr1_reopens_logs(two):
    g = two
    get(g.port, "/echo")
    assert wait_until(lambda: len(g.access_lines()) == 1, 5)
    os.rename(g.access_log, g.access_log + ".1")
    os.rename(g.error_log, g.error_log + ".1")
    g.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: os.path.exists(g.error_log), 5)
    get(g.port, "/echo")
    get(g.port, "/echo")
    assert wait_until(lambda: len(g.access_lines()) == 2, 5), g.access_lines()
    with open(g.access_log + ".1") as f:
        assert len(f.read().splitlines()) == 1
    assert "log files reopened" in g.error_log_text()
