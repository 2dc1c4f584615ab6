"""SIGTERM stops gracefully: requests in flight complete, new connections
are refused, the process exits 0. SIGINT stops fast."""

import json
import signal
import socket
import subprocess
import time

from lib.net import HOST, RawConn, curl_popen, request_bytes


def connect_refused(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((HOST, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def test_sigterm_finishes_in_flight_refuses_new_exits_0(origin, reverse,
                                                        tmp_path):
    g = reverse({"was": [origin.port]}, workers=2)
    heads = tmp_path / "heads"
    p = curl_popen("-D", heads, "-w", "\n%{http_code}",
                   "http://127.0.0.1:%d/slow/1500"
                   % g.port, timeout=20, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    try:
        assert origin.wait_requests(1, timeout=5), "request never reached origin"
        g.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        assert p.poll() is None, "in-flight request ended early"
        assert connect_refused(g.port), \
            "new connections accepted after SIGTERM"
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    body, _, code = out.decode().rpartition("\n")
    assert code == "200", (out, err)
    assert json.loads(body)["path"] == "/slow/1500"
    assert "connection: close" in heads.read_text().lower(), \
        "a response finished during the stop should carry Connection: close"
    g.checked = True
    assert g.wait(15) == 0, "exit code %r" % g.returncode


def test_sigterm_closes_idle_keepalive_clients_promptly(origin, reverse):
    g = reverse({"was": [origin.port]})
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/echo"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        assert c.closed_within(5), "idle keep-alive client kept open"
        g.checked = True
        assert g.wait(5) == 0, "did not exit 0 within 5s (idle clients only)"
        assert time.monotonic() - t0 < 5


def test_sigterm_when_idle_exits_0_quickly(origin, reverse):
    g = reverse({"was": [origin.port]})
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    g.checked = True
    assert g.wait(5) == 0
    assert time.monotonic() - t0 < 3


def test_sigint_stops_fast(origin, reverse):
    g = reverse({"was": [origin.port]})
    p = curl_popen("http://127.0.0.1:%d/slow/8000" % g.port, timeout=20,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert origin.wait_requests(1, timeout=5)
        t0 = time.monotonic()
        g.send_signal(signal.SIGINT)
        g.checked = True
        rc = g.wait(5)
        assert rc is not None, "SIGINT: still running after 5s"
        assert time.monotonic() - t0 < 5
    finally:
        p.kill()
        p.wait(5)
