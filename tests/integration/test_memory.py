"""Bodies stream, never held whole: a 1 GiB upload and a 1 GiB download
pass byte-exact through the release build while its peak RSS (VmHWM) stays
under 64 MiB."""

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from lib.net import BLOCK, curl_popen, pattern_sha256, write_pattern_file

GiB = 1 << 30
LIMIT_KIB = 64 * 1024


class RssWatch:
    def __init__(self, g):
        self.g = g
        self.peak = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            v = self.g.vm_hwm_kib()
            if v:
                self.peak = max(self.peak, v)
            time.sleep(0.1)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join(5)
        v = self.g.vm_hwm_kib()
        if v:
            self.peak = max(self.peak, v)


@pytest.fixture
def big(origin, reverse):
    g = reverse({"was": [origin.port]}, release=True, workers=2,
                limits={"body_bytes": "2GiB"})
    return g, origin


def test_1gib_upload_low_rss(big, tmp_path):
    g, o = big
    f = write_pattern_file(tmp_path / "1g", GiB)
    try:
        with RssWatch(g) as w:
            p = curl_popen("-X", "POST", "-T", f, "-H",
                           "Content-Type: application/octet-stream",
                           "http://127.0.0.1:%d/echo" % g.port, timeout=180,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = p.communicate(timeout=200)
    finally:
        os.unlink(f)
    assert p.returncode == 0, err
    e = json.loads(out)
    assert e["body_len"] == GiB
    assert e["body_sha256"] == pattern_sha256(GiB)
    print("peak RSS (VmHWM): %d KiB" % w.peak)
    assert w.peak < LIMIT_KIB, "peak RSS %d KiB" % w.peak


def test_1gib_download_low_rss(big):
    g, o = big
    with RssWatch(g) as w:
        p = curl_popen("http://127.0.0.1:%d/bytes/%d" % (g.port, GiB),
                       timeout=180, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        h = hashlib.sha256()
        n = 0
        while True:
            b = p.stdout.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        err = p.stderr.read()
        p.wait(30)
    assert p.returncode == 0, err
    assert n == GiB
    assert h.hexdigest() == pattern_sha256(GiB)
    print("peak RSS (VmHWM): %d KiB" % w.peak)
    assert w.peak < LIMIT_KIB, "peak RSS %d KiB" % w.peak


def test_1gib_chunked_upload_and_download_at_once_low_rss(big):
    """Both directions at the same time, the upload chunked from a pipe."""
    g, o = big

    with RssWatch(g) as w:
        up = curl_popen("-X", "POST", "-T", "-",
                        "http://127.0.0.1:%d/echo" % g.port, timeout=180,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)

        def feed():
            try:
                for _ in range(GiB // len(BLOCK)):
                    up.stdin.write(BLOCK)
                up.stdin.close()
            except (BrokenPipeError, ValueError):
                pass

        ft = threading.Thread(target=feed, daemon=True)
        ft.start()
        down = curl_popen("http://127.0.0.1:%d/chunked/%d" % (g.port, GiB),
                          timeout=180, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
        h = hashlib.sha256()
        n = 0
        while True:
            b = down.stdout.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        down.wait(30)
        ft.join(180)
        out = up.stdout.read()
        err = up.stderr.read()
        up.wait(60)
    assert up.returncode == 0, err
    e = json.loads(out)
    assert e["body_len"] == GiB and e["body_sha256"] == pattern_sha256(GiB)
    assert e["framing"] in ("chunked", "length")
    assert down.returncode == 0
    assert n == GiB and h.hexdigest() == pattern_sha256(GiB)
    print("peak RSS (VmHWM): %d KiB" % w.peak)
    assert w.peak < LIMIT_KIB, "peak RSS %d KiB" % w.peak
