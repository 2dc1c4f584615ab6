"""The cache section and route "cache" keys: defaults, and errors with
file:line:col."""

import pytest

from lib.proxy import run_cli


def check(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return run_cli(["-t", "-c", str(p)])


BASE = """upstreams:
  o: { servers: [127.0.0.1:9] }
listeners:
  - listen: 127.0.0.1:1
    sites:
      - default: true
        routes:
          - { path: /, upstream: o, cache: %s }
"""


@pytest.mark.parametrize("route", [
    "true", "false", "{ collapse: false }",
    "{ stale_while_revalidate: 10s, stale_if_error: 1h }"])
def test_route_policies_ok(tmp_path, route):
    r = check(tmp_path, BASE % route)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("top", [
    "cache: { memory: 64MiB, max_object: 1MiB }",
    "cache: { memory: 1GiB, disk: { path: /tmp/x, size: 10GiB, sync: true } }",
    "cache: { heuristic: 0, heuristic_max: 1h, purge: { allow: [10.0.0.0/8, '::1'] } }",
])
def test_sections_ok(tmp_path, top):
    r = check(tmp_path, top + "\n" + BASE % "true")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("text,where,msg", [
    (BASE % "maybe", "8:44", "expected true, false, or a mapping"),
    (BASE % "{ colapse: true }", "8:46", 'unknown key "colapse"'),
    (BASE % "{ stale_if_error: forever }", "8:62", '"stale_if_error"'),
    ("cache: { memory: 8MiB, max_object: 8MiB }\n" + BASE % "true", "1:36",
     '"max_object": must not exceed 4MiB'),
    ("cache: { disk: { size: 1GiB } }\n" + BASE % "true", "1:16", 'missing "path" in disk'),
    ("cache: { purge: { allow: [10.0.0.1/8] } }\n" + BASE % "true", "1:27",
     "expected an address or a block"),
    ("cache: { heuristic: 101 }\n" + BASE % "true", "1:21", '"heuristic"'),
    ("cache: { memory: 1KiB }\n" + BASE % "true", "1:18", '"memory"'),
])
def test_errors(tmp_path, text, where, msg):
    r = check(tmp_path, text)
    assert r.returncode != 0
    assert ":%s:" % where in r.stderr, r.stderr
    assert msg in r.stderr, r.stderr


def test_cache_on_return_route(tmp_path):
    r = check(tmp_path, """listeners:
  - listen: 127.0.0.1:1
    sites:
      - default: true
        routes:
          - { path: /, return: { status: 200, body: hi }, cache: true }
""")
    assert r.returncode != 0
    assert ":6:66:" in r.stderr and "nothing to cache" in r.stderr, r.stderr
