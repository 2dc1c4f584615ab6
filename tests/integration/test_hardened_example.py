"""examples/hardened.yaml runs as it is (ports rewritten to free ones in a
copy): started as root it serves as nobody inside the sandbox, limits
/login to 5 attempts at once per address, and refuses bodies over each
route's max_body."""

import os
import re

from lib.net import free_port, get, wait_until
from lib.proxy import ROOT, run_cli

EXAMPLE = os.path.join(ROOT, "examples", "hardened.yaml")


def test_hardened_example_validates():
    p = run_cli(["-t", "-c", EXAMPLE])
    assert p.returncode == 0, p.stderr


def test_hardened_example_runs(origin, gatehouse):
    with open(EXAMPLE) as f:
        text = f.read()
    listen = free_port()
    text = re.sub(r"127\.0\.0\.1:8080\b", "127.0.0.1:%d" % listen, text)
    text = re.sub(r"127\.0\.0\.1:9001\b", "127.0.0.1:%d" % origin.port, text)
    text = text.replace("log:\n  access: stdout\n", "")
    g = gatehouse(text, listen)
    assert wait_until(lambda: "listening on" in g.stderr(), 10), g.stderr()
    for tid in os.listdir("/proc/%d/task" % g.pid):
        with open("/proc/%d/task/%s/status" % (g.pid, tid)) as f:
            st = f.read()
        assert re.search(r"^Seccomp:\s+2$", st, re.M), st
        if os.geteuid() == 0:
            assert re.search(r"^Uid:\s+65534\s", st, re.M), st
    # the rate limit is checked first: this refused body costs an attempt
    r = get(listen, "/login", method="POST", body=b"p" * 5000,
            headers=[("Content-Length", "5000")])
    assert r.status == 413
    got = [get(listen, "/login").status for _ in range(5)]
    assert got == [200] * 4 + [429], got
    body = b"u" * (1 << 20)
    r = get(listen, "/upload/f", method="POST", body=body,
            headers=[("Content-Length", str(len(body)))])
    assert r.status == 200
