"""The command line: --version, --help, -t (validate), the default config."""

import re
import signal

import pytest

from lib.net import curl, free_port, port_accepts
from lib.proxy import reverse_config, run_cli, to_yaml


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_version():
    p = run_cli(["--version"])
    assert p.returncode == 0, p.stderr
    assert re.match(r"^gatehouse \S+", p.stdout.strip()), p.stdout


def test_help():
    p = run_cli(["--help"])
    assert p.returncode == 0, p.stderr
    text = p.stdout + p.stderr
    assert "-c" in text and "-t" in text, text


def test_unknown_option_fails():
    p = run_cli(["--no-such-option"])
    assert p.returncode != 0


def test_check_ok(tmp_path):
    path = write(tmp_path, "ok.yaml",
                 to_yaml(reverse_config(free_port(), {"was": [9001, 9002]})))
    p = run_cli(["-t", "-c", path])
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout + p.stderr


def test_check_full_example_from_contract(tmp_path):
    text = """\
workers: 2
log: { access: %(d)s/access.log, format: combined, error: %(d)s/error.log, level: info }
upstreams:
  was:
    servers: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 1 }]
    connect_timeout: 5s
    read_timeout: 60s
    send_timeout: 60s
    keepalive: 32
listeners:
  - listen: 127.0.0.1:%(port)d
    headers: { via: true, x_forwarded_for: append, x_forwarded_proto: true, x_forwarded_host: true, forwarded: false, hide_server: false }
    timeouts: { client_header: 10s, client_body: 60s, client_idle: 60s, send: 60s }
    limits: { header_bytes: 32KiB, header_count: 100, target_length: 8KiB, body_bytes: 1GiB }
    sites:
      - hosts: [example.com, "*.example.com"]
        routes:
          - { path: /api/, upstream: was, max_body: 10MiB }
          - { exact: /health, return: { status: 200, body: "ok\\n", content_type: text/plain } }
      - default: true
        routes: [ { path: /, upstream: was } ]
""" % {"d": tmp_path, "port": free_port()}
    p = run_cli(["-t", "-c", write(tmp_path, "full.yaml", text)])
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout + p.stderr


def test_check_default_config():
    """-t without -c validates the built-in default configuration."""
    p = run_cli(["-t"])
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout + p.stderr


BASE = """\
workers: 1
upstreams:
  was:
    servers: [127.0.0.1:9001]
    connect_timeout: %(timeout)s
listeners:
  - listen: %(listen)s
    limits: { header_bytes: %(size)s }
    sites:
      - default: true
        routes:
          - { path: /, upstream: %(upstream)s }
"""

GOOD = {"timeout": "5s", "listen": "127.0.0.1:18080", "size": "32KiB",
        "upstream": "was"}


def place(text, key, value):
    """1-based line of the first line holding <key>, and the columns of the
    key and of <value> on it."""
    for i, ln in enumerate(text.splitlines(), 1):
        k = ln.find(key)
        if k >= 0:
            v = ln.find(value, k)
            return i, (k + 1, v + 1)
    raise AssertionError("%r not in config" % key)


def check_error(tmp_path, text, key, value):
    """-t must exit 1 and print file:line:col: message, the line the one
    holding <key> and the column that of the key or of its <value>
    (1-based)."""
    line, cols = place(text, key, value)
    path = write(tmp_path, "bad.yaml", text)
    p = run_cli(["-t", "-c", path])
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    m = re.search(re.escape(path) + r":(\d+):(\d+): (\S.*)", p.stderr)
    assert m, "no file:line:col: message in stderr: %r" % p.stderr
    assert int(m.group(1)) == line, (line, cols, p.stderr)
    assert int(m.group(2)) in cols, (line, cols, p.stderr)
    assert len(m.group(3)) > 5, p.stderr
    return m.group(3)


def test_check_good_base_is_ok(tmp_path):
    # The base the error tests mutate is itself valid.
    p = run_cli(["-t", "-c", write(tmp_path, "b.yaml", BASE % GOOD)])
    assert p.returncode == 0, p.stderr


def test_check_bad_duration(tmp_path):
    text = BASE % dict(GOOD, timeout="banana")
    msg = check_error(tmp_path, text, "connect_timeout", "banana")
    assert "connect_timeout" in msg or "duration" in msg


def test_check_bad_address(tmp_path):
    text = BASE % dict(GOOD, listen="127.0.0.1:99999")
    check_error(tmp_path, text, "listen: ", "127.0.0.1:99999")


def test_check_bad_size(tmp_path):
    text = BASE % dict(GOOD, size="12parsecs")
    check_error(tmp_path, text, "header_bytes", "12parsecs")


def test_check_unknown_upstream(tmp_path):
    text = BASE % dict(GOOD, upstream="nosuch")
    msg = check_error(tmp_path, text, "upstream: nosuch", "nosuch")
    assert "nosuch" in msg or "upstream" in msg


def test_check_unknown_key(tmp_path):
    text = (BASE % GOOD).replace("    connect_timeout:",
                                 "    conect_timeout:")
    check_error(tmp_path, text, "conect_timeout", "5s")


def test_check_yaml_syntax_error(tmp_path):
    text = (BASE % GOOD).replace("    servers: [127.0.0.1:9001]",
                                 "    servers: [127.0.0.1:9001")
    path = write(tmp_path, "syn.yaml", text)
    p = run_cli(["-t", "-c", path])
    assert p.returncode == 1
    assert re.search(re.escape(path) + r":\d+:\d+: \S", p.stderr), p.stderr


def test_check_missing_file(tmp_path):
    p = run_cli(["-t", "-c", str(tmp_path / "nope.yaml")])
    assert p.returncode == 1
    assert "nope.yaml" in p.stderr


def test_run_refuses_invalid_config(tmp_path):
    """Without -t, an invalid config also exits 1 and serves nothing."""
    port = free_port()
    text = (BASE % dict(GOOD, listen="127.0.0.1:%d" % port, timeout="x"))
    p = run_cli(["-c", write(tmp_path, "bad.yaml", text)], timeout=20)
    assert p.returncode == 1, p.stderr
    assert re.search(r"bad\.yaml:5:\d+: ", p.stderr), p.stderr
    assert not port_accepts(port)


def test_default_config_serves_page(gatehouse, origin, tmp_path):
    """Without -c: a reverse listener on 127.0.0.1:8080 answering a short
    page about pointing it at upstreams, and a forward proxy on
    127.0.0.1:3128. Skipped when 8080 or 3128 is taken."""
    for port in (8080, 3128):
        if port_accepts(port):
            pytest.skip("127.0.0.1:%d is in use" % port)
    g = gatehouse("", 8080, args=[])
    r = curl("-i", "http://127.0.0.1:8080/")
    text = r.stdout.decode(errors="replace")
    assert text.startswith("HTTP/1.1 200"), text
    assert "upstream" in text.lower(), text
    assert "curl -x http://127.0.0.1:3128" in text, text
    r = curl("http://127.0.0.1:%d/bytes/5" % origin.port,
             proxy="http://127.0.0.1:3128")
    assert len(r.stdout) == 5
    g.checked = True
    assert g.stop(signal.SIGTERM) == 0
