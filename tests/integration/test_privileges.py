"""Privileges (docs/security.md): started as root, Gatehouse binds its ports
(even below 1024), opens its logs, then becomes an ordinary user before it
serves; every thread runs as that user with no capabilities, no_new_privs
and a seccomp filter. It does not keep running as root unless the
configuration says run_as_root: true.

These tests run as root (the suite does); they check /proc/<pid>/task/*/
status and ps, as an operator would."""

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from lib.net import HOST, free_port, get, port_accepts, wait_until
from lib.proxy import binary, proc_env, run_cli, to_yaml

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="privilege tests start gatehouse as root")

TEST_USER = "gh-test"


@pytest.fixture(scope="module")
def gh_user():
    """A system user and group made for these tests (removed after, when
    this module created them)."""
    created = False
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        created = True
    yield pwd.getpwnam(TEST_USER)
    if created:
        subprocess.run(["userdel", TEST_USER], check=False)


def site_config(port, security=None, upstream=None):
    route = {"path": "/", "return": {"status": 200, "body": "ok\n"}}
    cfg = {"workers": 3}
    if security is not None:
        cfg["security"] = security
    if upstream is not None:
        cfg["upstreams"] = {"was": {"servers": ["%s:%d" % (HOST, upstream)]}}
        route = {"path": "/", "upstream": "was"}
    cfg["listeners"] = [{"listen": "%s:%d" % (HOST, port),
                         "sites": [{"default": True, "routes": [route]}]}]
    return cfg


def task_status(pid):
    """{tid: {field: value}} from /proc/<pid>/task/*/status."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for ln in f:
                k, _, v = ln.partition(":")
                fields[k] = v.strip()
        out[int(tid)] = fields
    return out


def ps_users(pid):
    p = subprocess.run(["ps", "-L", "-o", "user=", "-p", str(pid)],
                       stdout=subprocess.PIPE, text=True, check=True)
    return [ln.strip() for ln in p.stdout.splitlines() if ln.strip()]


def ready(g):
    """Waits for "listening on": logged once every thread is confined (the
    port accepts earlier, as soon as it is bound)."""
    assert wait_until(lambda: "listening on" in g.error_log_text(), 10), \
        g.error_log_text()
    return g


def assert_confined(pid, uid, gid, nthreads):
    """Every thread (main, the workers, and helpers such as the admin
    thread: at least <nthreads>) confined."""
    tasks = task_status(pid)
    assert len(tasks) >= nthreads, tasks.keys()
    for tid, st in tasks.items():
        assert st["Uid"].split() == [str(uid)] * 4, (tid, st["Uid"])
        assert st["Gid"].split() == [str(gid)] * 4, (tid, st["Gid"])
        assert st["Groups"].split() in ([], [str(gid)]), (tid, st["Groups"])
        assert int(st["CapEff"], 16) == 0, (tid, st["CapEff"])
        assert int(st["CapPrm"], 16) == 0, (tid, st["CapPrm"])
        assert st["NoNewPrivs"] == "1", (tid, st)
        assert st["Seccomp"] == "2", (tid, st)  # a filter is on


def test_drops_to_configured_user(gatehouse, gh_user):
    port = free_port()
    g = ready(gatehouse(site_config(port, {"user": TEST_USER}), port))
    assert get(g.port, "/").status == 200
    assert_confined(g.pid, gh_user.pw_uid, gh_user.pw_gid, 4)
    users = ps_users(g.pid)
    assert len(users) >= 4 and set(users) == {TEST_USER}, users
    log = g.error_log_text()
    assert "running as user %s" % TEST_USER in log, log


def test_group_can_be_named(gatehouse, gh_user):
    port = free_port()
    g = ready(gatehouse(site_config(port, {"user": TEST_USER,
                                           "group": "nogroup"}), port))
    assert_confined(g.pid, gh_user.pw_uid, grp.getgrnam("nogroup").gr_gid, 4)


def test_root_without_user_becomes_nobody(gatehouse):
    """No "user" and no run_as_root: not root, but nobody (as nginx)."""
    port = free_port()
    # an empty section: the defaults (the harness adds run_as_root otherwise)
    g = ready(gatehouse(site_config(port, {}), port))
    nobody = pwd.getpwnam("nobody")
    assert_confined(g.pid, nobody.pw_uid, nobody.pw_gid, 4)
    users = ps_users(g.pid)
    assert len(users) >= 4 and set(users) == {"nobody"}, users


def test_run_as_root_only_when_asked(gatehouse):
    port = free_port()
    g = ready(gatehouse(site_config(port, {"run_as_root": True}), port))
    assert get(g.port, "/").status == 200
    for st in task_status(g.pid).values():
        assert st["Uid"].split()[1] == "0"
        assert st["Seccomp"] == "2"  # still sandboxed
    assert "running as root (security.run_as_root is true)" in \
        g.error_log_text()


def test_user_root_needs_run_as_root(tmp_path):
    path = tmp_path / "root.yaml"
    path.write_text(to_yaml(site_config(8080, {"user": "root"})) + "\n")
    p = run_cli(["-t", "-c", str(path)])
    assert p.returncode == 1
    assert 'running as root needs "run_as_root: true"' in p.stderr, p.stderr


def test_unknown_user_refuses_to_start(tmp_path):
    port = free_port()
    path = tmp_path / "nouser.yaml"
    cfg = site_config(port, {"user": "no-such-user-here"})
    cfg["log"] = {"access": "off"}
    path.write_text(to_yaml(cfg) + "\n")
    p = run_cli(["-c", str(path)], timeout=20)
    assert p.returncode == 1
    assert 'no user named "no-such-user-here"' in p.stderr, p.stderr
    assert not port_accepts(port)


def low_port():
    for port in range(900, 1000):
        s = socket.socket()
        try:
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port below 1024")


def test_binds_privileged_port_then_drops(gatehouse, origin, gh_user):
    """Binding below 1024 needs root; serving does not."""
    port = low_port()
    g = ready(gatehouse(site_config(port, {"user": TEST_USER},
                                    upstream=origin.port), port))
    r = get(port, "/echo")
    assert r.status == 200
    assert_confined(g.pid, gh_user.pw_uid, gh_user.pw_gid, 4)


def test_chroot(gatehouse, origin, tmp_path, gh_user, monkeypatch):
    # LeakSanitizer reads /proc at exit, which a jail does not have
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    jail = tmp_path / "jail"
    jail.mkdir()
    port = free_port()
    g = ready(gatehouse(site_config(port, {"user": TEST_USER,
                                           "chroot": str(jail)},
                                    upstream=origin.port), port))
    assert os.readlink("/proc/%d/root" % g.pid) == str(jail)
    assert os.readlink("/proc/%d/cwd" % g.pid) == str(jail)
    # proxying needs no file: it works from inside an empty jail
    for _ in range(3):
        assert get(port, "/echo").status == 200
    assert_confined(g.pid, gh_user.pw_uid, gh_user.pw_gid, 4)


def test_not_root_user_is_ignored(tmp_path):
    """Started by an ordinary user there is nothing to drop: "user" is
    ignored with a notice, and the sandbox still goes on (no_new_privs is
    set without root)."""
    port = free_port()
    cfg = site_config(port, {"user": TEST_USER})
    cfg["log"] = {"access": "off", "error": "stderr"}
    # a directory nobody can read (tmp_path's parents are root's own)
    d = tempfile.mkdtemp(prefix="gh-priv-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "user.yaml")
    with open(path, "w") as f:
        f.write(to_yaml(cfg) + "\n")
    os.chmod(path, 0o644)
    err = open(tmp_path / "stderr", "wb")
    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534",
                          "--clear-groups", binary(), "-c", path],
                         stdout=subprocess.DEVNULL, stderr=err, env=proc_env(),
                         cwd="/")
    try:
        assert wait_until(lambda: port_accepts(port, 0.2) or p.poll() is not None,
                          15)
        assert p.poll() is None, (tmp_path / "stderr").read_text()
        assert wait_until(lambda: "listening on" in
                          (tmp_path / "stderr").read_text(), 10)
        assert get(port, "/").status == 200
        for st in task_status(p.pid).values():
            assert st["Uid"].split()[0] == "65534"
            assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1"
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
        err.close()
        shutil.rmtree(d, ignore_errors=True)
    text = (tmp_path / "stderr").read_text()
    assert rc == 0, text
    assert 'security.user "%s" ignored: not started as root' % TEST_USER in text
    assert "AddressSanitizer" not in text and "runtime error" not in text
