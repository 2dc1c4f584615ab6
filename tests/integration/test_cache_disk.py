"""The disk tier: objects survive a restart and are served as hits; a
process killed while writing one leaves only a temporary file, which the
next start removes, so a partial object is never served."""

import os
import signal
import time

from lib.cache_origin import cache_status
from lib.net import get, wait_until

BIG = bytes(range(256)) * 4096  # 1 MiB


def disk_cfg(path):
    return {"memory": "64MiB", "disk": {"path": str(path), "size": "256MiB"}}


def stored_files(path):
    out = []
    for d, _, files in os.walk(path):
        if os.path.basename(d) != "tmp":
            out += [os.path.join(d, f) for f in files]
    return out


def tmp_files(path):
    t = os.path.join(path, "tmp")
    return [os.path.join(t, f) for f in os.listdir(t)] if os.path.isdir(t) else []


def test_restart_keeps_disk_objects(cache_proxy, cache_origin, tmp_path):
    disk = tmp_path / "cache"
    cache_origin.set("/d1", headers=[("Cache-Control", "max-age=3600"), ("X-Kept", "yes")],
                     body=BIG)
    cache_origin.set("/d2", headers=[("Cache-Control", "max-age=3600")], body=b"small")
    g = cache_proxy(cache=disk_cfg(disk), name="first")
    assert get(g.port, "/d1").body == BIG
    assert get(g.port, "/d2").body == b"small"
    assert wait_until(lambda: len(stored_files(disk)) == 2, 10)
    assert g.stop() == 0
    g.checked = True

    g2 = cache_proxy(cache=disk_cfg(disk), name="second")
    r = get(g2.port, "/d1")
    assert r.status == 200 and r.body == BIG
    assert r.get("X-Kept") == "yes"
    assert cache_status(r)["hit"]
    assert get(g2.port, "/d2").body == b"small"
    assert cache_origin.hits("/d1") == 1 and cache_origin.hits("/d2") == 1
    # loaded into memory: the next one is a memory hit
    assert get(g2.port, "/d1").body == BIG
    assert "object(s) on disk" in g2.error_log_text()


def test_killed_mid_write_never_serves_partial(cache_proxy, cache_origin, tmp_path,
                                               monkeypatch):
    disk = tmp_path / "cache"
    cache_origin.set("/torn", headers=[("Cache-Control", "max-age=3600")], body=BIG)
    monkeypatch.setenv("GH_CACHE_SLOW_DISK", "200")  # 200 ms per 64 KiB written
    g = cache_proxy(cache=disk_cfg(disk), name="writer")
    assert get(g.port, "/torn").body == BIG  # the client has it; the disk not yet
    assert wait_until(lambda: any(os.path.getsize(f) > 100000 for f in tmp_files(disk)), 10)
    g.proc.send_signal(signal.SIGKILL)
    g.wait(10)
    g.checked = True
    torn = tmp_files(disk)
    assert torn and all(os.path.getsize(f) < len(BIG) for f in torn)
    assert stored_files(disk) == []  # never renamed into place

    monkeypatch.delenv("GH_CACHE_SLOW_DISK")
    g2 = cache_proxy(cache=disk_cfg(disk), name="after")
    assert tmp_files(disk) == []
    r = get(g2.port, "/torn")
    assert r.status == 200 and r.body == BIG
    assert cache_origin.hits("/torn") == 2
    assert "unfinished" in g2.error_log_text()


def test_corrupt_file_is_dropped(cache_proxy, cache_origin, tmp_path):
    disk = tmp_path / "cache"
    cache_origin.set("/c", headers=[("Cache-Control", "max-age=3600")], body=BIG)
    g = cache_proxy(cache=disk_cfg(disk), name="one")
    get(g.port, "/c")
    assert wait_until(lambda: len(stored_files(disk)) == 1, 10)
    assert g.stop() == 0
    g.checked = True
    f = stored_files(disk)[0]
    with open(f, "r+b") as fh:
        fh.truncate(os.path.getsize(f) - 1000)
    g2 = cache_proxy(cache=disk_cfg(disk), name="two")
    r = get(g2.port, "/c")
    assert r.body == BIG and cache_origin.hits("/c") == 2
    assert "not a valid cache file" in g2.error_log_text()


def test_disk_budget(cache_proxy, cache_origin, tmp_path):
    disk = tmp_path / "cache"
    for i in range(12):
        cache_origin.set("/b%d" % i, headers=[("Cache-Control", "max-age=3600")], body=BIG)
    g = cache_proxy(cache={"memory": "64MiB", "disk": {"path": str(disk), "size": "5MiB"}})
    for i in range(12):
        get(g.port, "/b%d" % i)
    time.sleep(1)
    assert wait_until(lambda: sum(os.path.getsize(f) for f in stored_files(disk)) <= 5 << 20, 10)
    assert 1 <= len(stored_files(disk)) <= 5


def test_disk_tier_after_dropping_root(cache_proxy, cache_origin, gatehouse, tmp_path):
    """Started as root, gatehouse becomes "nobody": the disk tier's
    directories and files are nobody's, and its thread writes and reads them
    inside the sandbox."""
    import pwd
    import shutil
    import tempfile
    import pytest
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    nobody = pwd.getpwnam("nobody").pw_uid
    disk = tempfile.mkdtemp(prefix="gh-cache-priv-", dir="/tmp")  # /tmp: nobody can reach it
    try:
        from lib.net import free_port
        from lib.proxy import reverse_config
        cache_origin.set("/p", headers=[("Cache-Control", "max-age=3600")], body=BIG)

        def start(name):
            port = free_port()
            cfg = reverse_config(port, {"o": [cache_origin.port]}, sites=[{
                "default": True, "routes": [{"path": "/", "upstream": "o", "cache": True}]}],
                extra={"cache": disk_cfg(disk), "security": {"user": "nobody"}})
            cfg["log"] = {"access": os.path.join(disk, name + ".access"),
                          "error": "stderr", "level": "info"}
            return gatehouse(cfg, port, name=name)
        g = start("dropped")
        assert get(g.port, "/p").body == BIG
        assert wait_until(lambda: len([f for f in stored_files(disk)
                                       if not f.endswith(".access")]) == 1, 10)
        f = [f for f in stored_files(disk) if not f.endswith(".access")][0]
        assert os.stat(f).st_uid == nobody and os.stat(disk).st_uid == nobody
        assert g.stop() == 0
        g.checked = True
        g2 = start("dropped2")
        r = get(g2.port, "/p")
        assert r.body == BIG and cache_status(r)["hit"]
        assert cache_origin.hits("/p") == 1
    finally:
        shutil.rmtree(disk, ignore_errors=True)
