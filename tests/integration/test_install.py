"""`make install` (issue 8): the binary, the systemd unit with its sandbox,
the logrotate file and a first configuration land where they should; the
unit passes `systemd-analyze verify` and scores as well sandboxed; the
installed configuration loads; examples/operations.yaml runs as it is."""

import os
import re
import shutil
import subprocess

import pytest

from lib.net import curl, free_port, wait_until
from lib.ops import admin_get
from lib.proxy import ROOT, run_cli


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    d = tmp_path_factory.mktemp("install")
    args = ["make", "-s", "-C", ROOT, "install", "PREFIX=%s/usr" % d,
            "SYSCONFDIR=%s/etc" % d, "UNITDIR=%s/unit" % d]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=600, text=True)
    assert p.returncode == 0, p.stdout[-3000:]
    return d


def test_files_and_unit(installed):
    d = installed
    exe = d / "usr/sbin/gatehouse"
    assert os.access(exe, os.X_OK)
    assert subprocess.run([exe, "--version"], stdout=subprocess.PIPE,
                          text=True).stdout.startswith("gatehouse ")
    unit = (d / "unit/gatehouse.service").read_text()
    assert "ExecStart=%s -c %s/etc/gatehouse/gatehouse.yaml" % (exe, d) in unit
    assert "@" not in re.sub(r"@[a-z-]+", "", unit.split("[Install]")[0]), \
        "a placeholder was left in the unit"
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                      "DynamicUser=yes", "SystemCallFilter=@system-service",
                      "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                      "ExecReload=/bin/kill -HUP $MAINPID", "Type=notify",
                      "NotifyAccess=all"):
        assert directive in unit, directive
    assert "--signal=SIGUSR1" in (d / "etc/logrotate.d/gatehouse").read_text()
    p = run_cli(["-t", "-c", str(d / "etc/gatehouse/gatehouse.yaml")])
    assert p.returncode == 0, p.stderr
    assert (d / "usr/share/doc/gatehouse/config.md").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_unit_verifies_and_is_sandboxed(installed):
    unit = str(installed / "unit/gatehouse.service")
    p = subprocess.run(["systemd-analyze", "verify", unit], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout[-2000:]
    assert float(m.group(1)) <= 2.0, m.group(0)


def test_operations_example_runs(origins, gatehouse, tmp_path):
    with open(os.path.join(ROOT, "examples", "operations.yaml")) as f:
        text = f.read()
    a, b = origins("x1"), origins("x2")
    ports = {"8080": free_port(), "8081": free_port(), "9090": free_port(),
             "9001": a.port, "9002": b.port}
    for old, new in ports.items():
        assert "127.0.0.1:%s" % old in text
        text = re.sub(r"127\.0\.0\.1:%s\b" % old, "127.0.0.1:%d" % new, text)
    # reload reads the file again, here in a directory only root may enter
    # (started as root, gatehouse is nobody by then: docs/security.md)
    text += "\nsecurity: { run_as_root: true }\n"
    g = gatehouse(text, ports["8080"])
    assert curl("http://127.0.0.1:%d/echo" % ports["8080"]).returncode == 0
    assert curl("--haproxy-protocol", "http://127.0.0.1:%d/echo" % ports["8081"]).returncode == 0
    assert admin_get(ports["9090"], "/healthz")[0] == 200
    # the pid file (relative: in the working directory) drives `reload`
    pid = os.path.join(g.workdir, "gatehouse.pid")
    assert wait_until(lambda: os.path.exists(pid), 5)
    p = run_cli(["reload", "-c", g.config_path], cwd=g.workdir)
    assert p.returncode == 0, p.stderr
    assert wait_until(lambda: b'"generation":2' in admin_get(ports["9090"], "/status")[2], 10)
