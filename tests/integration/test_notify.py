"""systemd's readiness protocol (issue 8): with $NOTIFY_SOCKET set (as
systemd does for Type=notify), gatehouse says READY=1 with its MAINPID when
it serves, RELOADING=1 then READY=1 around a reload, STOPPING=1 on stop,
and after a binary upgrade the new process names itself as MAINPID so the
service manager follows it."""

import os
import signal
import socket

import pytest

from lib.net import free_port, wait_until
from lib.ops import ops_config, status


@pytest.fixture
def notify_sock(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()


def recv(s):
    msg = s.recv(4096).decode()
    return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)


def test_ready_reloading_stopping_and_upgrade(notify_sock, origin, gatehouse, tmp_path):
    port, aport = free_port(), free_port()
    pidf = str(tmp_path / "gh.pid")
    # the upgrade at the end starts a program: no sandbox for it
    g = gatehouse(ops_config(port, {"was": [origin.port]}, admin_port=aport,
                             extra={"pid_file": pidf},
                             security={"run_as_root": True, "sandbox": False}),
                  port)
    m = recv(notify_sock)
    assert m["READY"] == "1" and int(m["MAINPID"]) == g.pid, m
    g.send_signal(signal.SIGHUP)
    assert recv(notify_sock).get("RELOADING") == "1"
    m = recv(notify_sock)
    assert m["READY"] == "1" and m["STATUS"] == "generation 2", m
    # binary upgrade: the new process announces itself
    g.send_signal(signal.SIGUSR2)
    m = recv(notify_sock)
    new = int(m["MAINPID"])
    assert m["READY"] == "1" and new != g.pid, m
    g.checked = True
    assert g.wait(20) == 0
    assert status(aport)["pid"] == new
    os.kill(new, signal.SIGTERM)
    assert recv(notify_sock).get("STOPPING") == "1"
    assert wait_until(lambda: not os.path.exists(pidf), 20)
