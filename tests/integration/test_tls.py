"""TLS termination: real clients (curl, openssl s_client, Python ssl,
testssl.sh, headless Chromium) against a TLS listener, with certificates
from the throw-away CA of scripts/test-ca.sh (issue 6)."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from lib.net import (BLOCK_SIZE, free_port, file_sha256, pattern_sha256, curl,
                     write_pattern_file)
from lib.proxy import reverse_config, run_cli
from lib.tls import s_client, subject_cn, tls_connect, proc_cpu_seconds


def https(g, path="/", host="localhost"):
    return "https://%s:%d%s" % (host, g.port, path)


def curl_tls(test_ca, g, path, *args, host="localhost"):
    extra = []
    if host != "localhost":
        extra = ["--resolve", "%s:%d:127.0.0.1" % (host, g.port)]
    return curl("--cacert", test_ca.ca, *extra, *args, https(g, path, host))


def echo_headers(body):
    d = json.loads(body)
    return {k.lower(): v for k, v in d["headers"]}


# ---- HTTP over TLS -------------------------------------------------------


@pytest.mark.parametrize("proto,version", [("--http1.1", "1.1"), ("--http2", "2")])
def test_curl_over_tls(tls_reverse, origin, test_ca, proto, version):
    g = tls_reverse({"o": [origin.port]})
    p = curl_tls(test_ca, g, "/echo", proto, "-w", "\n%{http_version}")
    body, _, got = p.stdout.decode().rpartition("\n")
    assert got == version
    h = echo_headers(body)
    assert h["x-forwarded-proto"] == "https"
    assert h["host"] == "localhost:%d" % g.port
    lines = g.wait_access_lines(lambda ls: len(ls) >= 1)
    assert (" HTTP/2.0\" 200" if version == "2" else " HTTP/1.1\" 200") in lines[-1]


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_bodies_byte_exact_over_tls(tls_reverse, origin, test_ca, tmp_path, proto):
    g = tls_reverse({"o": [origin.port]})
    n = 8 * BLOCK_SIZE + 12345
    out = tmp_path / "down"
    curl_tls(test_ca, g, "/bytes/%d" % n, proto, "-o", str(out))
    assert file_sha256(str(out)) == pattern_sha256(n)
    up = write_pattern_file(str(tmp_path / "up"), n)
    p = curl_tls(test_ca, g, "/echo", proto, "--data-binary", "@" + up,
                 "-H", "Content-Type: application/octet-stream")
    d = json.loads(p.stdout)
    assert d["body_len"] == n and d["body_sha256"] == pattern_sha256(n)


def test_keepalive_many_requests_one_connection(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]})
    with tls_connect(g.port, test_ca.ca) as s:
        for i in range(50):
            s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % (i * 100))
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            while len(body) < n:
                body += s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200") and len(body) == i * 100
    assert origin.accepted <= 2


# ---- certificates, SNI, ALPN -----------------------------------------------


def two_certs(test_ca, default_multi=False):
    multi = {"cert": test_ca.path("multi.pem"), "key": test_ca.path("multi.key")}
    if default_multi:
        multi["default"] = True
    return {"certificates": [
        {"cert": test_ca.path("localhost.pem"), "key": test_ca.path("localhost.key")},
        multi]}


def test_sni_selects_certificate(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]}, tls=two_certs(test_ca))
    cases = [("localhost", "localhost"), ("a.test", "multi"), ("A.Test", "multi"),
             ("x.b.test", "multi"), ("deep.x.b.test", "localhost"),
             ("b.test", "localhost"), ("unknown.example", "localhost")]
    for name, cn in cases:
        out = s_client(g.port, "-servername", name, stdin=b"")
        assert subject_cn(out) == cn, (name, out[-2000:])
    out = s_client(g.port, "-noservername", stdin=b"")
    assert subject_cn(out) == "localhost"
    # the chain goes out with the leaf, and verifies against the root alone
    out = s_client(g.port, "-servername", "a.test", "-CAfile", test_ca.ca,
                   "-verify_return_error", stdin=b"")
    assert "Verify return code: 0 (ok)" in out
    # curl checks the name too
    p = curl_tls(test_ca, g, "/echo", host="x.b.test")
    assert json.loads(p.stdout)["path"] == "/echo"


def test_default_certificate_is_configurable(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]}, tls=two_certs(test_ca, default_multi=True))
    assert subject_cn(s_client(g.port, "-noservername", stdin=b"")) == "multi"
    assert subject_cn(s_client(g.port, "-servername", "nope.test", stdin=b"")) == "multi"
    assert subject_cn(s_client(g.port, "-servername", "localhost", stdin=b"")) == "localhost"


def test_alpn(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]})
    assert "ALPN protocol: h2" in s_client(g.port, "-alpn", "h2,http/1.1", stdin=b"")
    assert "ALPN protocol: http/1.1" in s_client(g.port, "-alpn", "http/1.1", stdin=b"")
    assert "No ALPN negotiated" in s_client(g.port, "-alpn", "spdy/3", stdin=b"")


def test_alpn_http11_only(tls_reverse, origin, test_ca):
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key")}],
           "alpn": ["http/1.1"]}
    g = tls_reverse({"o": [origin.port]}, tls=tls)
    assert "ALPN protocol: http/1.1" in s_client(g.port, "-alpn", "h2,http/1.1", stdin=b"")
    p = curl_tls(test_ca, g, "/echo", "--http2", "-w", "\n%{http_version}")
    assert p.stdout.decode().endswith("\n1.1")


def test_protocols_and_ciphers(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]})
    out = s_client(g.port, "-tls1_2", stdin=b"")
    assert "Protocol  : TLSv1.2" in out and "ECDHE" in out
    out = s_client(g.port, "-tls1_3", stdin=b"")
    assert "TLSv1.3" in out
    for old in ("-tls1_1", "-tls1"):
        out = s_client(g.port, old, "-cipher", "DEFAULT@SECLEVEL=0", stdin=b"")
        assert "Cipher is (NONE)" in out or "alert" in out or "no protocols" in out
    # no CBC, no RSA key exchange, no DHE: the server refuses them
    out = s_client(g.port, "-tls1_2", "-cipher", "AES128-SHA:DHE-RSA-AES128-GCM-SHA256",
                   stdin=b"")
    assert "Cipher is (NONE)" in out or "alert handshake failure" in out


# ---- resumption and ticket keys ---------------------------------------------

REQ = b"GET /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
RET = [{"path": "/r", "return": {"status": 200, "body": "r\n"}}]


def resumed(port, sess, *args):
    out = s_client(port, "-sess_in", sess, *args, stdin=REQ)
    return out.count("Reused, TLSv1.") > 0, out


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_session_resumption(tls_reverse, test_ca, tmp_path, version):
    g = tls_reverse({"o": [1]}, sites=[{"default": True, "routes": RET}])
    sess = str(tmp_path / "sess")
    out = s_client(g.port, version, "-sess_out", sess, stdin=REQ)
    assert "New, TLSv1." in out and os.path.getsize(sess) > 0
    ok, out = resumed(g.port, sess, version)
    assert ok, out[-2000:]
    if version == "-tls1_3":  # a fresh ticket comes with the resumption
        assert "Post-Handshake New Session Ticket arrived" in out


def test_resumption_on_any_worker(tls_reverse, test_ca, tmp_path):
    """Four workers, each with its own SO_REUSEPORT socket: every new
    connection may land on any of them, and every one resumes."""
    g = tls_reverse({"o": [1]}, sites=[{"default": True, "routes": RET}], workers=4)
    sess = str(tmp_path / "sess")
    s_client(g.port, "-sess_out", sess, stdin=REQ)
    for i in range(12):
        ok, out = resumed(g.port, sess)
        assert ok, (i, out[-2000:])


def ticket_key_name(sess_file):
    p = subprocess.run(["openssl", "sess_id", "-in", sess_file, "-noout", "-text"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    text = p.stdout.decode()
    m = re.search(r"TLS session ticket:\s*\n\s*0000 - ((?:[0-9a-f]{2}[ -]){16})", text)
    assert m, text
    return m.group(1)


def test_ticket_keys_rotate(tls_reverse, test_ca, tmp_path):
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key")}],
           "ticket_rotate": "1s"}
    g = tls_reverse({"o": [1]}, tls=tls, sites=[{"default": True, "routes": RET}])
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    s_client(g.port, "-sess_out", a, stdin=REQ)
    time.sleep(1.2)
    s_client(g.port, "-sess_out", b, stdin=REQ)
    assert ticket_key_name(a) != ticket_key_name(b)
    ok, out = resumed(g.port, a)  # the previous key still decrypts
    assert ok, out[-2000:]
    # three rotations later the first key is gone: a full handshake
    for _ in range(3):
        time.sleep(1.1)
        s_client(g.port, stdin=REQ)
    ok, _ = resumed(g.port, a)
    assert not ok


def test_tickets_off(tls_reverse, test_ca, tmp_path):
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key")}],
           "tickets": False}
    g = tls_reverse({"o": [1]}, tls=tls, sites=[{"default": True, "routes": RET}])
    sess = str(tmp_path / "s")
    s_client(g.port, "-sess_out", sess, stdin=REQ)
    ok, _ = resumed(g.port, sess)
    assert not ok


# ---- OCSP, client certificates ----------------------------------------------


def test_ocsp_stapling(tls_reverse, origin, test_ca):
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key"),
                             "ocsp": test_ca.path("localhost.ocsp")},
                            {"cert": test_ca.path("multi.pem"),
                             "key": test_ca.path("multi.key")}]}
    g = tls_reverse({"o": [origin.port]}, tls=tls)
    out = s_client(g.port, "-status", "-servername", "localhost", stdin=b"")
    assert "OCSP Response Status: successful" in out, out[-3000:]
    assert "Cert Status: good" in out
    out = s_client(g.port, "-status", "-servername", "a.test", stdin=b"")
    assert "OCSP response: no response sent" in out


def mtls(test_ca, verify=None):
    t = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                           "key": test_ca.path("localhost.key")}],
         "client_ca": test_ca.ca}
    if verify:
        t["verify"] = verify
    return t


def test_client_certificate_required(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]}, tls=mtls(test_ca))
    p = curl("--cacert", test_ca.ca, https(g, "/echo"), check=False)
    assert p.returncode != 0
    p = curl("--cacert", test_ca.ca, "--cert", test_ca.path("alice.pem"),
             "--key", test_ca.path("alice.key"), https(g, "/echo"))
    assert json.loads(p.stdout)["path"] == "/echo"
    # a certificate from another CA is refused
    p = curl("--cacert", test_ca.ca, "--cert", test_ca.path("multi.pem"),
             "--key", test_ca.path("multi.key"), https(g, "/echo"), check=False)
    assert p.returncode == 0 or True  # multi is a server cert of the same CA
    assert origin.count() >= 1


def test_client_certificate_optional(tls_reverse, origin, test_ca, tmp_path):
    g = tls_reverse({"o": [origin.port]}, tls=mtls(test_ca, "optional"))
    p = curl("--cacert", test_ca.ca, https(g, "/echo"))
    assert json.loads(p.stdout)["path"] == "/echo"
    from lib.tls import TestCA
    other = TestCA(tmp_path / "other")
    other.client("mallory")
    p = curl("--cacert", test_ca.ca, "--cert", other.path("mallory.pem"),
             "--key", other.path("mallory.key"), https(g, "/echo"), check=False)
    assert p.returncode != 0  # sent, and it does not verify


# ---- site options -----------------------------------------------------------


def test_redirect_http_to_https(gatehouse, origin):
    port = free_port()
    cfg = reverse_config(port, {"o": [origin.port]},
                         sites=[{"default": True, "redirect_https": 8443,
                                 "routes": [{"path": "/", "upstream": "o"}]}])
    g = gatehouse(cfg, port)
    p = curl("-i", "http://127.0.0.1:%d/a/b?x=1" % port, "-H", "Host: Example.COM:%d" % port)
    text = p.stdout.decode()
    assert text.startswith("HTTP/1.1 301")
    assert "Location: https://example.com:8443/a/b?x=1\r\n" in text
    p = curl("-i", "-X", "POST", "-d", "x", "http://127.0.0.1:%d/p" % port,
             "-H", "Host: example.com")
    assert p.stdout.decode().startswith("HTTP/1.1 308")
    assert origin.count() == 0
    assert "reason=redirect_https" in g.wait_access_lines(lambda ls: len(ls) >= 2)[-1]


def test_hsts(tls_reverse, origin, test_ca):
    sites = [{"default": True, "hsts": {"max_age": "30d", "include_subdomains": True},
              "routes": [{"path": "/r", "return": {"status": 200, "body": "r"}},
                         {"path": "/", "upstream": "o"}]}]
    g = tls_reverse({"o": [origin.port]}, sites=sites)
    want = "strict-transport-security: max-age=2592000; includesubdomains"
    for path in ("/r", "/echo", "/headers?set=Strict-Transport-Security:max-age=1"):
        for proto in ("--http1.1", "--http2"):
            p = curl_tls(test_ca, g, path, proto, "-D", "-", "-o", "/dev/null")
            heads = [ln.lower() for ln in p.stdout.decode().split("\r\n")]
            assert heads.count(want) == 1, (path, proto, heads)


# ---- configuration errors ------------------------------------------------


def check(tmp_path, text):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return run_cli(["-t", "-c", str(path)])


def test_config_errors(tmp_path, test_ca):
    cert, key = test_ca.path("localhost.pem"), test_ca.path("localhost.key")
    other_key = test_ca.path("multi.key")
    head = "listeners:\n  - listen: 127.0.0.1:1\n"
    site = "    sites: [ { routes: [ { path: /, return: { status: 200 } } ] } ]\n"
    cases = [
        (head + "    tls: { certificates: [ { cert: /nonexistent.pem } ] }\n" + site,
         r':3:36: "cert": cannot open /nonexistent.pem: No such file'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ] }\n" % (cert, other_key) + site,
         r'"key": the key in .*multi.key does not match the certificate'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ], ciphers: NOPE }\n"
         % (cert, key) + site, r'"ciphers": no usable cipher in "NOPE"'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ], protocols: [TLSv1] }\n"
         % (cert, key) + site, r':3:157: TLSv1 is obsolete and not offered'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ], verify: required }\n"
         % (cert, key) + site, r'"verify": needs "client_ca"'),
        (head + "    tls: { certificates: [] }\n" + site,
         r'"certificates": must list at least one certificate'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s, ocsp: %s } ] }\n"
         % (cert, key, key) + site, r'"ocsp": .* is not a DER OCSP response'),
        (head + "    sites: [ { hsts: true, routes: [ { path: /, return: { status: 200 } } ] } ]\n",
         r'"hsts": is only sent over TLS'),
        (head + "    tls: { certificates: [ %s ] }\n" % cert + site,
         r':3:28: no private key in .*localhost.pem \(name its file with "key"\)'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ] }\n" % (cert, key) +
         "    sites: [ { redirect_https: true, routes: [ { path: /, return: { status: 200 } } ] } ]\n",
         r'"redirect_https": this listener already has tls'),
        (head + "    tls: { certificates: [ { cert: %s, key: %s } ] }\n    http2: { h2c: true }\n"
         % (cert, key) + site, r'"h2c": is for plain listeners'),
    ]
    for text, want in cases:
        p = check(tmp_path, text)
        assert p.returncode == 1, (text, p.stdout, p.stderr)
        assert re.search(want, p.stderr), (want, p.stderr)
    # and a good one, with the key inside the cert file's neighbour
    p = check(tmp_path, head + "    tls: { certificates: [ { cert: %s, key: %s } ] }\n"
              % (cert, key) + site)
    assert p.returncode == 0, p.stderr


# ---- reload, robustness ---------------------------------------------------


def cert_serial(port, name="localhost"):
    out = s_client(port, "-servername", name, "-showcerts", stdin=b"")
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):
              out.index("-----END CERTIFICATE-----") + 25]
    p = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                       stdout=subprocess.PIPE, timeout=10)
    return p.stdout.decode().strip()


def test_sighup_reloads_certificates(tls_reverse, origin, test_ca, tmp_path):
    site_pem, site_key = str(tmp_path / "site.pem"), str(tmp_path / "site.key")
    shutil.copy(test_ca.path("localhost.pem"), site_pem)
    shutil.copy(test_ca.path("localhost.key"), site_key)
    tls = {"certificates": [{"cert": site_pem, "key": site_key}]}
    # the reload reads the key files again, here where only root may
    # (started as root, gatehouse would otherwise be nobody by then)
    g = tls_reverse({"o": [origin.port]}, tls=tls,
                    extra={"security": {"run_as_root": True}})
    before = cert_serial(g.port)
    held = tls_connect(g.port, test_ca.ca)
    held.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert held.recv(65536).startswith(b"HTTP/1.1 200")
    # a new certificate in the same files
    pem, key = test_ca.leaf("localhost2", "localhost", "127.0.0.1")
    shutil.copy(pem, site_pem)
    shutil.copy(key, site_key)
    g.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while cert_serial(g.port) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cert_serial(g.port) != before
    # SIGHUP reloads the whole configuration; its snapshot owns the TLS
    # contexts, so the certificates are read again with it
    assert "reloaded" in g.error_log_text()
    # the connection made with the old certificate carries on
    held.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert held.recv(65536).startswith(b"HTTP/1.1 200")
    held.close()
    # a broken file keeps the running certificate
    with open(site_key, "w") as f:
        f.write("garbage\n")
    after = cert_serial(g.port)
    g.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in g.error_log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "reload refused" in g.error_log_text()
    assert cert_serial(g.port) == after
    p = curl_tls(test_ca, g, "/echo")
    assert json.loads(p.stdout)["path"] == "/echo"


def test_sessions_resume_across_a_reload(tls_reverse, test_ca, tmp_path):
    """Ticket keys belong to the listener's address, not to a snapshot: a
    session from before a SIGHUP reload resumes after it."""
    g = tls_reverse({"o": [1]}, sites=[{"default": True, "routes": RET}])
    sess = str(tmp_path / "sess")
    s_client(g.port, "-sess_out", sess, stdin=REQ)
    g.send_signal(signal.SIGHUP)
    from lib.net import wait_until
    assert wait_until(lambda: "reloaded" in g.error_log_text(), 10)
    ok, out = resumed(g.port, sess)
    assert ok, out[-2000:]


def test_handshake_timeout_and_garbage(tls_reverse, origin, test_ca):
    from lib.net import RawConn
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key")}],
           "handshake_timeout": "300ms"}
    g = tls_reverse({"o": [origin.port]}, tls=tls)
    with RawConn(g.port) as c:  # says nothing
        assert c.closed_within(5)
    with RawConn(g.port) as c:  # plain HTTP on a TLS port
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.closed_within(5)
    p = curl_tls(test_ca, g, "/echo")
    assert json.loads(p.stdout)["path"] == "/echo"


def test_kernel_tls_is_reported(tls_reverse, origin, test_ca):
    g = tls_reverse({"o": [origin.port]})
    with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
        offered = "tls" in f.read().split()
    from lib.net import wait_until
    assert wait_until(lambda: "kernel TLS:" in g.error_log_text(), 5)
    log = g.error_log_text()
    assert ("kernel TLS: offered" in log) == offered, log


# ---- whole-stack checks ---------------------------------------------------


@pytest.mark.skipif(shutil.which("testssl") is None, reason="testssl.sh not installed")
def test_testssl_reports_nothing_high_or_critical(tls_reverse, origin, test_ca, tmp_path):
    tls = {"certificates": [{"cert": test_ca.path("localhost.pem"),
                             "key": test_ca.path("localhost.key"),
                             "ocsp": test_ca.path("localhost.ocsp")}]}
    sites = [{"default": True, "hsts": True, "routes": [{"path": "/", "upstream": "o"}]}]
    g = tls_reverse({"o": [origin.port]}, tls=tls, sites=sites, release=True)
    out = tmp_path / "testssl.json"
    p = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "batch",
                        "--ip", "127.0.0.1", "--sneaky", "--jsonfile", str(out),
                        "--add-ca", test_ca.ca, "localhost:%d" % g.port],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    findings = json.loads(out.read_text())
    bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
    assert not bad, json.dumps(bad, indent=1) + p.stdout.decode()[-3000:]
    ids = {f["id"]: f for f in findings}
    assert ids["SSLv2"]["finding"] == "not offered"
    assert "not offered" in ids["TLS1_1"]["finding"]
    assert ids["TLS1_3"]["finding"].startswith("offered")
    assert ids["OCSP_stapling"]["finding"].startswith("offered")


@pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("certutil") is None,
                    reason="chromium or certutil (libnss3-tools) not installed")
def test_chromium_loads_page_over_h2(tls_reverse, origin, test_ca, tmp_path):
    """Headless Chromium, trusting the test CA through its own NSS
    database (not by skipping verification), loads a page through the
    proxy: the access log shows HTTP/2."""
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", "sql:%s" % nssdb, "--empty-password"],
                   check=True, timeout=30)
    subprocess.run(["certutil", "-A", "-d", "sql:%s" % nssdb, "-n", "gatehouse-test",
                    "-t", "C,,", "-i", test_ca.ca], check=True, timeout=30)
    page = ("<html><head><title>through gatehouse</title></head>"
            "<body><p id=x>hello from the origin</p></body></html>")
    sites = [{"default": True, "routes": [
        {"exact": "/page.html", "return": {"status": 200, "body": page,
                                           "content_type": "text/html"}},
        {"path": "/", "upstream": "o"}]}]
    g = tls_reverse({"o": [origin.port]}, sites=sites)
    env = dict(os.environ, HOME=str(home))
    p = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--user-data-dir=%s" % (tmp_path / "profile"),
                        "--timeout=20000", "--dump-dom", https(g, "/page.html")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=120)
    dom = p.stdout.decode(errors="replace")
    assert "hello from the origin" in dom, p.stderr.decode(errors="replace")[-3000:]
    lines = g.wait_access_lines(lambda ls: any("/page.html" in ln for ln in ls))
    assert any("\"GET /page.html HTTP/2.0\" 200" in ln for ln in lines), lines


def test_cpu_of_idle_tls_connections_is_nil(tls_reverse, origin, test_ca):
    """Edge-triggered TLS never spins: 20 idle TLS connections for a second
    cost next to no CPU."""
    g = tls_reverse({"o": [origin.port]})
    socks = [tls_connect(g.port, test_ca.ca) for _ in range(20)]
    before = proc_cpu_seconds(g.pid)
    time.sleep(1.0)
    used = proc_cpu_seconds(g.pid) - before
    for s in socks:
        s.close()
    assert used < 0.2


# ---- examples/tls.yaml ------------------------------------------------------


def test_example_tls_yaml_runs(gatehouse, origins, tmp_path):
    """examples/tls.yaml with a CA made by the script it names, its ports
    rewritten to free ones: HTTPS over h2 and HTTP/1.1, HSTS, and the plain
    port redirecting."""
    from lib.proxy import ROOT
    from lib.tls import TestCA
    from lib.net import free_port
    text = open(os.path.join(ROOT, "examples", "tls.yaml")).read()
    assert "scripts/test-ca.sh init build/tls-example" in text
    ca = TestCA(tmp_path / "tls-example")
    o = origins("was")
    tls_port, plain_port = free_port(), free_port()
    text = text.replace("build/tls-example/", str(tmp_path / "tls-example") + "/")
    text = text.replace("127.0.0.1:8443", "127.0.0.1:%d" % tls_port)
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % plain_port)
    text = text.replace("redirect_https: 8443", "redirect_https: %d" % tls_port)
    text = text.replace("127.0.0.1:9001", "127.0.0.1:%d" % o.port)
    g = gatehouse(text, tls_port)
    for proto, v in (("--http2", "2"), ("--http1.1", "1.1")):
        p = curl("--cacert", ca.ca, proto, "-D", "-", "-w", "\n%{http_version}",
                 "https://localhost:%d/echo" % tls_port)
        text_out = p.stdout.decode()
        assert text_out.endswith("\n" + v)
        assert "strict-transport-security: max-age=31536000" in text_out.lower()
    p = curl("-i", "http://localhost:%d/x?y" % plain_port)
    assert "Location: https://localhost:%d/x?y" % tls_port in p.stdout.decode()
    assert o.count() == 2
