"""Fixtures for Gatehouse's integration tests.

Everything is real: the gatehouse binary (build/debug/gatehouse, ASan+UBSan;
GATEHOUSE_BIN overrides), origin servers started by the tests (lib/origin.py),
curl and raw sockets. Ports are picked at run time; all traffic stays on
127.0.0.1.
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib.net import free_port  # noqa: E402
from lib.origin import Origin  # noqa: E402
from lib.proxy import Gatehouse, forward_config, reverse_config  # noqa: E402


@pytest.fixture
def origins():
    """Factory: origins("name") starts an Origin on a free port; all are
    stopped at teardown."""
    started = []

    def make(name="origin", port=0, **kw):
        o = Origin(name, port, **kw).start()
        started.append(o)
        return o

    yield make
    for o in started:
        o.stop()


@pytest.fixture
def origin(origins):
    return origins("o1")


def sanitizer_excerpt(text, frames=25):
    """The first sanitizer report, its first <frames> lines and summary."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if "ERROR:" in ln or "runtime error:" in ln), 0)
    out = lines[start:start + frames]
    out += [ln for ln in lines[start + frames:] if "SUMMARY:" in ln][:3]
    return "\n".join(out)


@pytest.fixture
def gatehouse(tmp_path):
    """Factory: gatehouse(config, port, release=False) writes <config> (a
    dict, or YAML text) into the test's tmp dir, starts the binary and waits
    until <port> accepts. At teardown every process gets SIGTERM and must
    exit 0 with no sanitizer report on stderr. A test that stops a process
    itself and sets g.checked = True takes over the exit-code check."""
    procs = []

    def start(config, port, release=False, name=None, run=True, args=None):
        g = Gatehouse(tmp_path, config, port, release=release,
                      name=name or "gatehouse%d" % len(procs), args=args)
        g.checked = False
        procs.append(g)
        if run:
            g.start()
        return g

    yield start

    problems = []
    for g in procs:
        if g.proc is None:
            continue
        rc = g.stop(signal.SIGTERM, timeout=20)
        if not g.checked and rc != 0:
            problems.append("%s exited with %r after SIGTERM (expected 0)"
                            % (g.name, rc))
        bad, text = g.sanitizer_report()
        if bad:
            problems.append("%s: sanitizer report on stderr:\n%s"
                            % (g.name, sanitizer_excerpt(text)))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def reverse(gatehouse):
    """Factory: reverse({"up": [origin.port, ...]}, **reverse_config kwargs)
    picks a free port, starts gatehouse with one reverse listener there and
    returns the Gatehouse (its .port is the listener)."""

    def start(upstreams, release=False, **kw):
        port = free_port()
        cfg = reverse_config(port, upstreams, **kw)
        return gatehouse(cfg, port, release=release)

    return start


# ---- TLS (test_tls.py, test_h2.py) ------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """The throw-away CA of scripts/test-ca.sh, made once per session:
    ca.pem, localhost.pem/.key, multi.pem/.key (a.test, *.b.test),
    alice.pem/.key (a client certificate) and localhost.ocsp."""
    from lib.tls import TestCA
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    ca.leaf("multi", "a.test", "*.b.test")
    ca.client("alice")
    ca.ocsp("localhost")
    return ca


@pytest.fixture
def tls_reverse(gatehouse, test_ca):
    """Factory: tls_reverse(upstreams, tls=None, http2=None, **kw) like
    reverse(), with a TLS listener serving localhost.pem of the test CA
    unless <tls> gives the listener's whole "tls" mapping."""

    def start(upstreams, tls=None, http2=None, release=False, **kw):
        port = free_port()
        cfg = reverse_config(port, upstreams, **kw)
        lst = cfg["listeners"][0]
        lst["tls"] = tls or {"certificates": [{
            "cert": test_ca.path("localhost.pem"),
            "key": test_ca.path("localhost.key")}]}
        if http2:
            lst["http2"] = http2
        return gatehouse(cfg, port, release=release)

    return start


# ---- cache (issue 5) --------------------------------------------------------

from lib.cache_origin import CacheOrigin  # noqa: E402


@pytest.fixture
def cache_origin():
    """A scriptable origin (lib/cache_origin.py), stopped at teardown."""
    o = CacheOrigin().start()
    yield o
    o.stop()


@pytest.fixture
def cache_proxy(gatehouse, cache_origin):
    """Factory: cache_proxy(policy=True, cache=None, workers=1, **kw) starts
    gatehouse with one route "/" to the scriptable origin whose "cache" is
    <policy>, and a top-level "cache" section <cache> (dict). Returns the
    Gatehouse; the origin is the cache_origin fixture."""

    def start(policy=True, cache=None, workers=1, release=False, name=None,
              headers=None, upstream_opts=None, run=True):
        port = free_port()
        route = {"path": "/", "upstream": "o"}
        if policy is not None:
            route["cache"] = policy
        cfg = reverse_config(port, {"o": [cache_origin.port]}, workers=workers,
                             sites=[{"default": True, "routes": [route]}],
                             headers=headers, upstream_opts=upstream_opts,
                             extra={"cache": cache} if cache else None)
        return gatehouse(cfg, port, release=release, name=name, run=run)

    return start


# ---- forward proxy (issue 3) -------------------------------------------------


@pytest.fixture
def forward(gatehouse):
    """Factory: forward(forward={...}, **forward_config kwargs) picks a free
    port and starts gatehouse with one forward listener there; returns the
    Gatehouse (.port, .proxy = "http://127.0.0.1:<port>")."""

    def start(forward=None, release=False, **kw):
        port = free_port()
        g = gatehouse(forward_config(port, forward, **kw), port,
                      release=release)
        g.proxy = "http://127.0.0.1:%d" % port
        return g

    return start


@pytest.fixture(scope="session")
def fwd_ca(tmp_path_factory):
    """A test CA and a server certificate for 127.0.0.1/localhost, made with
    openssl at run time (lib/tls.py)."""
    from lib.fwdtls import TestCA
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_origin(fwd_ca):
    """The origin server of lib/origin.py over TLS, on a free port."""
    from lib.fwdtls import TLSOrigin
    o = TLSOrigin("tls", fwd_ca).start()
    yield o
    o.stop()


@pytest.fixture
def dns_server():
    """Factory: dns_server({name: (ip, ttl)}, silent=[names]) starts a DNS
    server (lib/dnsserver.py) on a free UDP port; stopped at teardown."""
    from lib.dnsserver import DNSServer
    started = []

    def make(records=None, silent=()):
        d = DNSServer(records, silent).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
