"""Binary upgrade (issue 8): SIGUSR2 starts the binary anew and hands it
the listening sockets (the admin listener's too); the old process stops
accepting, finishes its connections and exits 0, the new one serves. A
steady keep-alive load sees no failed request, a request in flight
finishes on the old process."""

import os
import signal
import time

import pytest

from lib.net import RawConn, free_port, get, request_bytes, wait_until
from lib.ops import Load, ops_config, status


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] in "ZX"  # exited, not reaped
    except OSError:
        return True


def stop_pid(pid, timeout=20):
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout), "process %d did not stop" % pid


@pytest.fixture
def upgradable(origins, gatehouse, tmp_path):
    o = origins("u1")
    port, aport = free_port(), free_port()
    pidf = str(tmp_path / "gh.pid")
    # a binary upgrade starts a program: the sandbox would forbid it
    cfg = ops_config(port, {"was": [o.port]}, admin_port=aport, workers=2,
                     extra={"pid_file": pidf},
                     security={"run_as_root": True, "sandbox": False})
    g = gatehouse(cfg, port)
    g.aport, g.pidf, g.origin = aport, pidf, o
    assert wait_until(lambda: read_pid(pidf) == g.pid, 5)
    return g


def test_upgrade_under_load_zero_failed_requests(upgradable):
    g = upgradable
    load = Load(g.port, "/echo", clients=4, duration=60).start()
    new = 0
    try:
        time.sleep(0.8)
        with RawConn(g.port, timeout=15) as slow:
            slow.send(request_bytes("GET", "/slow/1500"))
            assert g.origin.wait_requests(1, timeout=5)
            g.send_signal(signal.SIGUSR2)
            assert wait_until(lambda: read_pid(g.pidf) not in (0, g.pid), 15), \
                "no new process wrote the pid file:\n" + g.error_log_text()[-2000:]
            new = read_pid(g.pidf)
            # the request in flight finishes on the old process
            r = slow.read_response()
            assert r.status == 200
            assert (r.get("connection") or "").lower() == "close"
        g.checked = True
        assert g.wait(20) == 0, "old process exit %r" % g.returncode
        time.sleep(0.8)  # traffic now on the new process only
    finally:
        load.stop()
    try:
        assert load.failed == [], "%d failed of %d: %s" % (
            len(load.failed), load.ok + len(load.failed), load.failed[:5])
        assert load.ok > 100
        d = status(g.aport)  # the admin socket was handed over too
        assert d["pid"] == new and d["totals"]["requests"] > 0
        assert get(g.port, "/echo").status == 200
        log = g.error_log_text()
        assert "handed over by the previous process" in log
        assert "this one stops accepting" in log
    finally:
        if new:
            stop_pid(new)
    assert not os.path.exists(g.pidf), "the new process left its pid file"


def test_failed_upgrade_keeps_the_old_process(upgradable, tmp_path):
    g = upgradable
    # the new process will not start: its configuration file is broken now
    with open(g.config_path, "a") as f:
        f.write("bogus: [\n")
    g.send_signal(signal.SIGUSR2)
    assert wait_until(lambda: "this one keeps serving" in g.error_log_text(), 35)
    assert g.alive() and read_pid(g.pidf) == g.pid
    assert get(g.port, "/echo").status == 200
    assert status(g.aport)["pid"] == g.pid
