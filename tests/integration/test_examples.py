"""examples/reverse.yaml runs as it is: a listener on 127.0.0.1:8080 in
front of servers 127.0.0.1:9001 and 127.0.0.1:9002. The test rewrites those
three ports to free ones in a copy, starts two origins there, and drives it
with curl: round robin GET, HEAD, POST 10 MiB, chunked upload, byte-exact
bodies, upstream keep-alive reuse, a WebSocket echo."""

import asyncio
import hashlib
import json
import os
import re

import pytest
import websockets

from lib.net import curl, free_port, pattern_sha256, write_pattern_file
from lib.proxy import ROOT, run_cli

EXAMPLE = os.path.join(ROOT, "examples", "reverse.yaml")
MiB = 1 << 20


def example_text():
    assert os.path.exists(EXAMPLE), "examples/reverse.yaml is missing"
    with open(EXAMPLE) as f:
        return f.read()


def test_example_validates():
    p = run_cli(["-t", "-c", EXAMPLE])
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout + p.stderr


@pytest.fixture
def example(origins, gatehouse, tmp_path):
    text = example_text()
    for port in ("8080", "9001", "9002"):
        assert re.search(r"127\.0\.0\.1:%s\b" % port, text), \
            "examples/reverse.yaml should name 127.0.0.1:%s" % port
    a, b = origins("was1"), origins("was2")
    listen = free_port()
    text = re.sub(r"127\.0\.0\.1:8080\b", "127.0.0.1:%d" % listen, text)
    text = re.sub(r"127\.0\.0\.1:9001\b", "127.0.0.1:%d" % a.port, text)
    text = re.sub(r"127\.0\.0\.1:9002\b", "127.0.0.1:%d" % b.port, text)
    g = gatehouse(text, listen)
    return g, a, b


def url(g, path):
    return "http://127.0.0.1:%d%s" % (g.port, path)


def test_example_round_robin_get(example):
    g, a, b = example
    p = curl(*[url(g, "/echo?i=%d" % i) for i in range(10)])
    seq = [json.loads(x)["origin"] for x in
           p.stdout.decode().replace("}{", "}\n{").split("\n")]
    assert sorted(set(seq)) == ["was1", "was2"], seq
    assert seq.count("was1") == 5, seq
    assert all(seq[i] != seq[i + 1] for i in range(9)), seq


def test_example_upstream_keepalive_reuse(example):
    """One client connection, 20 requests: each origin keeps serving them
    on one upstream connection."""
    g, a, b = example
    curl(*[url(g, "/echo?i=%d" % i) for i in range(20)])
    assert a.count() + b.count() == 20
    assert a.accepted == 1 and b.accepted == 1, (a.accepted, b.accepted)


def test_example_get_head_byte_exact(example, tmp_path):
    g, a, b = example
    n = 5 * MiB + 1
    out = tmp_path / "o"
    curl("-o", out, url(g, "/bytes/%d" % n))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(n)
    curl("-o", out, url(g, "/chunked/%d" % n))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(n)
    p = curl("-I", url(g, "/bytes/777"))
    assert p.stdout.startswith(b"HTTP/1.1 200")
    assert b"content-length: 777" in p.stdout.lower()


@pytest.mark.parametrize("chunked", [False, True])
def test_example_post_10mib(example, tmp_path, chunked):
    g, a, b = example
    n = 10 * MiB
    f = write_pattern_file(tmp_path / "body", n)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    p = curl(*extra, "--data-binary", "@%s" % f, url(g, "/echo"))
    e = json.loads(p.stdout)
    assert e["body_len"] == n and e["body_sha256"] == pattern_sha256(n)


def test_example_websocket_echo(example):
    g, a, b = example

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % g.port) as ws:
            await ws.send("through the example")
            return await ws.recv()

    got = asyncio.run(asyncio.wait_for(session(), 20))
    assert got == "through the example"
