"""The seccomp sandbox (docs/security.md), on the real proxy:

- every thread of a running gatehouse has a seccomp filter (debug and
  release builds), and the proxy serves normally inside it (the whole
  integration suite runs sandboxed: it is on by default);
- a worker that acts compromised once the sandbox is on (the debug-only
  GATEHOUSE_SANDBOX_PROBE switch makes it exec, open files, open a Unix
  socket or fork) kills the whole process with SIGSYS, the error log names
  the refused call, and the forbidden act has no effect;
- "sandbox: false" turns it off, loudly.

The unit test tests/unit/security/sandbox_test.c goes through the allow
lists call by call."""

import os
import signal

import pytest

from lib.net import HOST, free_port, get, wait_until

PROBE_FILE = "/tmp/gatehouse-probe"


def config(port, upstream=None, sandbox=None, workers=2):
    route = {"path": "/", "return": {"status": 200, "body": "ok\n"}}
    cfg = {"workers": workers}
    if sandbox is not None:
        cfg["security"] = {"sandbox": sandbox}
    if upstream is not None:
        cfg["upstreams"] = {"was": {"servers": ["%s:%d" % (HOST, upstream)]}}
        route = {"path": "/", "upstream": "was"}
    cfg["listeners"] = [{"listen": "%s:%d" % (HOST, port),
                         "sites": [{"default": True, "routes": [route]}]}]
    return cfg


def seccomp_modes(pid):
    modes = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for ln in f:
                if ln.startswith("Seccomp:"):
                    modes[int(tid)] = int(ln.split()[1])
    return modes


def listening(g):
    assert wait_until(lambda: "listening on" in g.error_log_text(), 10), \
        g.error_log_text()
    return g


@pytest.mark.parametrize("release", [False, True])
def test_every_thread_is_filtered_and_serves(gatehouse, origin, release):
    port = free_port()
    g = listening(gatehouse(config(port, origin.port, workers=3), port,
                            release=release))
    modes = seccomp_modes(g.pid)
    # main, 3 workers, and helper threads (upstream health checks, admin):
    # all filtered
    assert len(modes) >= 4 and set(modes.values()) == {2}, modes
    # real work inside the sandbox: pooled upstream connections, bodies
    for i in range(20):
        r = get(port, "/bytes/%d" % (1000 * i))
        assert r.status == 200 and len(r.body) == 1000 * i
    body = b"b" * 300000
    r = get(port, "/echo", method="POST", body=body,
            headers=[("Content-Length", str(len(body)))])
    assert r.status == 200
    assert g.alive()
    assert "sandbox: on" in g.error_log_text()


def test_sandbox_off(gatehouse):
    port = free_port()
    g = listening(gatehouse(config(port, sandbox=False), port))
    assert set(seccomp_modes(g.pid).values()) == {0}
    assert get(port, "/").status == 200
    assert "sandbox: off (security.sandbox is false)" in g.error_log_text()


@pytest.mark.parametrize("probe,call", [
    ("execve", "execve"),
    ("unix", "socket"),
    ("fork", "clone"),
    ("main:execve", "execve"),
])
def test_compromised_thread_is_killed(gatehouse, monkeypatch, probe, call):
    if os.path.exists(PROBE_FILE):
        os.unlink(PROBE_FILE)
    monkeypatch.setenv("GATEHOUSE_SANDBOX_PROBE", probe)
    port = free_port()
    g = gatehouse(config(port), port, run=False)
    g.checked = True  # it is meant to die
    try:
        g.start()
    except AssertionError:
        pass  # died before the port was checked: fine
    rc = g.wait(15)
    assert rc == -signal.SIGSYS, (rc, g.stderr()[-2000:])
    text = g.stderr() + g.error_log_text()
    who = "main" if probe.startswith("main:") else "worker"
    assert "sandbox probe: %s is about to call" % who in text, text
    assert "system call" in text and "(%s) is not allowed" % call in text, text
    assert "survived" not in text, text
    assert "pwned" not in g.stdout() + text


@pytest.mark.parametrize("who", ["worker", "main"])
def test_compromised_worker_opens_no_file(gatehouse, monkeypatch, who):
    """Opening a file from a worker is refused with EACCES rather than
    fatal (libraries probe files now and then; see sandbox.c); the main
    thread may open files (reload), so its probe succeeds."""
    if os.path.exists(PROBE_FILE):
        os.unlink(PROBE_FILE)
    monkeypatch.setenv("GATEHOUSE_SANDBOX_PROBE",
                       "open" if who == "worker" else "main:open")
    port = free_port()
    g = listening(gatehouse(config(port), port))
    assert wait_until(lambda: "open /tmp/gatehouse-probe:" in
                      g.error_log_text(), 5)
    text = g.error_log_text()
    if who == "worker":
        assert "open /etc/passwd: Permission denied" in text, text
        assert "open /tmp/gatehouse-probe: Permission denied" in text, text
        assert not os.path.exists(PROBE_FILE)
    else:
        assert "open /etc/passwd: opened" in text, text
        os.unlink(PROBE_FILE)
    assert get(port, "/").status == 200  # and it goes on serving


def health_config(port, origin_port, aport=None, cache_dir=None):
    cfg = {"workers": 2,
           "upstreams": {"was": {"servers": ["%s:%d" % (HOST, origin_port)],
                                 "health": {"path": "/echo",
                                            "interval": "1s"}}},
           "listeners": [{"listen": "%s:%d" % (HOST, port), "sites": [
               {"default": True,
                "routes": [{"path": "/", "upstream": "was",
                            "cache": cache_dir is not None}]}]}]}
    if aport is not None:
        cfg["admin"] = {"listen": "%s:%d" % (HOST, aport)}
    if cache_dir is not None:
        cfg["cache"] = {"memory": "8MiB",
                        "disk": {"path": str(cache_dir), "size": "16MiB"}}
    return cfg


def test_helper_threads_are_filtered_too(gatehouse, origin, tmp_path):
    """Every thread, not only the workers: the upstream health thread and
    the admin thread (started after the main thread's list is on, they
    inherit it; the admin thread adds the worker list), and the cache's
    disk thread (made before the privilege drop, it enters the list of a
    worker that serves files before its first job)."""
    port, aport = free_port(), free_port()
    g = listening(gatehouse(health_config(port, origin.port, aport,
                                          tmp_path / "cache"), port))
    for _ in range(3):  # cacheable: the disk thread gets a job
        r = get(port, "/headers?set=Cache-Control:max-age=60")
        assert r.status == 200
    cache = tmp_path / "cache"
    assert wait_until(lambda: any(p.is_file() for p in cache.rglob("*")
                                  if p.relative_to(cache).parts[0] != "tmp"),
                      5)
    modes = seccomp_modes(g.pid)
    # main, 2 workers, health, admin, disk
    assert len(modes) >= 6 and set(modes.values()) == {2}, modes


def test_reload_starts_its_health_thread_inside_the_sandbox(gatehouse, origin):
    """A reload makes a new health thread (and its event loop) from the
    sandboxed main thread: the main list lets it, and the thread inherits
    that list."""
    port = free_port()
    g = listening(gatehouse(health_config(port, origin.port), port))
    before = set(seccomp_modes(g.pid))
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "generation 2" in g.error_log_text(), 10), \
        g.error_log_text()[-2000:]
    assert g.alive()
    modes = seccomp_modes(g.pid)
    assert set(modes.values()) == {2}, modes
    assert set(modes) != before or len(modes) >= 4
    assert get(port, "/echo").status == 200
