"""examples/cache.yaml runs as it is: a caching reverse proxy on
127.0.0.1:8080 in front of 127.0.0.1:9001, with a disk tier. The test
rewrites the ports and the disk path in a copy."""

import os
import re

from lib.cache_origin import cache_status
from lib.net import free_port, get, wait_until
from lib.proxy import ROOT, run_cli

EXAMPLE = os.path.join(ROOT, "examples", "cache.yaml")


def test_example_validates():
    p = run_cli(["-t", "-c", EXAMPLE])
    assert p.returncode == 0, p.stderr


def test_example_caches(gatehouse, cache_origin, tmp_path):
    with open(EXAMPLE) as f:
        text = f.read()
    for s in ("127.0.0.1:8080", "127.0.0.1:9001", "/tmp/gatehouse-cache"):
        assert s in text
    listen = free_port()
    text = re.sub(r"127\.0\.0\.1:8080\b", "127.0.0.1:%d" % listen, text)
    text = re.sub(r"127\.0\.0\.1:9001\b", "127.0.0.1:%d" % cache_origin.port, text)
    text = text.replace("/tmp/gatehouse-cache", str(tmp_path / "disk"))
    if os.geteuid() == 0 and "security:" not in text:
        # as root gatehouse would become "nobody", who cannot enter the
        # test's private directory (docs/security.md)
        text += "\nsecurity: { run_as_root: true }\n"
    cache_origin.set("/page", headers=[("Cache-Control", "max-age=600")], body=b"page")
    g = gatehouse(text, listen)
    assert cache_status(get(listen, "/page")) == {"fwd": "uri-miss", "stored": True}
    assert cache_status(get(listen, "/page"))["hit"]
    assert wait_until(lambda: any(fs for d, _, fs in os.walk(tmp_path / "disk")
                                  if not d.endswith("tmp")), 10)
    r = get(listen, "/page", method="PURGE")
    assert r.status == 200 and r.body == b'{"purged":2}\n'
    get(listen, "/page")
    assert cache_origin.hits("/page") == 2
    assert g.alive()
