"""Static files (route action "static", docs/static.md): bytes exact over
sendfile and over the copy path, validators and conditional requests,
single and multiple ranges, HEAD, media types, precompressed siblings,
directories, and every way out of the root refused, answered 403/404 and
logged. The open-file cache is checked with strace: a hot file costs no
open per request."""

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import time

import brotli
import pytest

from lib.net import (RawConn, curl, file_sha256, free_port, get,
                     request_bytes, write_pattern_file)


def make_www(root):
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (www / "list").mkdir()
    (www / ".git").mkdir()
    (www / "a.txt").write_bytes(b"hello world\n")
    (www / "index.html").write_bytes(b"<h1>index</h1>\n")
    (www / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (www / "list" / "one.txt").write_bytes(b"1\n")
    (www / "list" / "two & <three>.txt").write_bytes(b"2\n")
    (www / "list" / ".secret").write_bytes(b"hidden\n")
    (www / ".git" / "config").write_bytes(b"[core] secret\n")
    (www / ".hidden").write_bytes(b"hidden\n")
    (www / ".well-known").mkdir()
    (www / ".well-known" / "security.txt").write_bytes(b"Contact: x\n")
    write_pattern_file(str(www / "big.bin"), 3 * 1024 * 1024 + 17)
    css = b"".join(b".c%d { color: #%06x; margin: %dpx }\n" % (i, i * 997, i % 40)
                   for i in range(4000))
    (www / "style.css").write_bytes(css)
    js = b"".join(b"function f%d(a) { return a * %d + 'x%d'; }\n" % (i, i, i)
                  for i in range(3000))
    (www / "app.js").write_bytes(js)
    (www / "app.js.gz").write_bytes(gzip.compress(js, 9))
    (www / "app.js.br").write_bytes(brotli.compress(js))
    (www / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    (root / "outside.txt").write_bytes(b"outside secret\n")
    os.symlink(str(root / "outside.txt"), str(www / "out.txt"))
    os.symlink("a.txt", str(www / "in.txt"))
    os.symlink("/etc", str(www / "etc"))
    os.mkfifo(str(www / "fifo"))
    return www


@pytest.fixture
def site(tmp_path, gatehouse):
    www = make_www(tmp_path)
    port = free_port()
    cfg = {
        "workers": 1,
        "listeners": [{
            "listen": "127.0.0.1:%d" % port,
            "sites": [{"default": True, "routes": [
                {"path": "/", "static": {"root": str(www)}},
                {"path": "/copy/", "static": {"root": str(www), "sendfile": False,
                                              "strip_prefix": True}},
                {"path": "/list/", "static": {"root": str(www), "listing": True}},
                {"path": "/z/", "static": {"root": str(www), "strip_prefix": True},
                 "compress": True},
                {"path": "/follow/", "static": {"root": str(www), "strip_prefix": True,
                                                "outside_symlinks": True}},
            ]}],
        }],
    }
    g = gatehouse(cfg, port)
    g.www = www
    return g


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_get_bytes_exact_sendfile_and_copy(site):
    want = file_sha256(str(site.www / "big.bin"))
    for path in ("/big.bin", "/copy/big.bin"):
        p = curl("-o", "-", "http://127.0.0.1:%d%s" % (site.port, path))
        assert sha(p.stdout) == want, path
    r = get(site.port, "/a.txt")
    assert r.status == 200 and r.body == b"hello world\n"
    assert r.get("Content-Type") == "text/plain"
    assert r.get("Content-Length") == "12"
    assert r.get("Accept-Ranges") == "bytes"
    assert re.fullmatch(r'"[0-9a-f]+-c"', r.get("ETag")), r.get("ETag")
    st = os.stat(str(site.www / "a.txt"))
    assert r.get("Last-Modified") == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(st.st_mtime))


def test_media_types(site):
    for path, want in (("/index.html", "text/html"), ("/style.css", "text/css"),
                       ("/logo.png", "image/png"), ("/big.bin", "application/octet-stream")):
        r = get(site.port, path, method="HEAD")
        assert r.status == 200 and r.get("Content-Type") == want, (path, r)


def test_head_has_headers_no_body(site):
    with RawConn(site.port) as c:
        c.send(request_bytes("HEAD", "/big.bin"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        assert r.get("Content-Length") == str(3 * 1024 * 1024 + 17)
        c.send(request_bytes("GET", "/a.txt"))  # the connection stays in sync
        assert c.read_response().body == b"hello world\n"


def test_conditional_requests(site):
    r = get(site.port, "/a.txt")
    etag, lm = r.get("ETag"), r.get("Last-Modified")
    r = get(site.port, "/a.txt", headers=[("If-None-Match", etag)])
    assert r.status == 304 and r.body == b"" and r.get("ETag") == etag
    assert r.get("Content-Length") is None
    r = get(site.port, "/a.txt", headers=[("If-None-Match", '"x", W/%s' % etag)])
    assert r.status == 304
    r = get(site.port, "/a.txt", headers=[("If-None-Match", '"other"')])
    assert r.status == 200 and r.body == b"hello world\n"
    r = get(site.port, "/a.txt", headers=[("If-Modified-Since", lm)])
    assert r.status == 304
    r = get(site.port, "/a.txt",
            headers=[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")])
    assert r.status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
    r = get(site.port, "/a.txt", headers=[("If-None-Match", '"other"'),
                                          ("If-Modified-Since", lm)])
    assert r.status == 200
    r = get(site.port, "/a.txt", headers=[("If-Match", '"other"')])
    assert r.status == 412
    r = get(site.port, "/a.txt", headers=[("If-Match", etag)])
    assert r.status == 200
    r = get(site.port, "/a.txt",
            headers=[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")])
    assert r.status == 412
    # curl's own conditional GET
    p = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-z",
             str(site.www / "a.txt"), "http://127.0.0.1:%d/a.txt" % site.port)
    assert p.stdout == b"304"


def test_single_ranges(site):
    big = (site.www / "big.bin").read_bytes()
    n = len(big)
    for spec, first, last in (("10-19", 10, 19), ("-100", n - 100, n - 1),
                              ("%d-" % (n - 5), n - 5, n - 1), ("0-0", 0, 0),
                              ("%d-%d" % (n - 10, n + 1000), n - 10, n - 1)):
        r = get(site.port, "/big.bin", headers=[("Range", "bytes=" + spec)])
        assert r.status == 206, spec
        assert r.get("Content-Range") == "bytes %d-%d/%d" % (first, last, n), spec
        assert r.body == big[first:last + 1], spec
        assert r.get("Content-Length") == str(last - first + 1)
    r = get(site.port, "/big.bin", headers=[("Range", "bytes=%d-" % n)])
    assert r.status == 416 and r.get("Content-Range") == "bytes */%d" % n
    # not a valid range: ignored, the whole file
    r = get(site.port, "/a.txt", headers=[("Range", "bytes=5-1")])
    assert r.status == 200 and r.body == b"hello world\n"
    r = get(site.port, "/a.txt", headers=[("Range", "lines=1-2")])
    assert r.status == 200
    # If-Range: the range only for the current representation
    etag = get(site.port, "/a.txt").get("ETag")
    r = get(site.port, "/a.txt", headers=[("Range", "bytes=0-4"), ("If-Range", etag)])
    assert r.status == 206 and r.body == b"hello"
    r = get(site.port, "/a.txt", headers=[("Range", "bytes=0-4"), ("If-Range", '"old"')])
    assert r.status == 200 and r.body == b"hello world\n"
    # the same through the copy path
    r = get(site.port, "/copy/big.bin", headers=[("Range", "bytes=1000-1999")])
    assert r.status == 206 and r.body == big[1000:2000]
    p = curl("-r", "100-199", "http://127.0.0.1:%d/big.bin" % site.port)
    assert p.stdout == big[100:200]


def parse_multipart(r):
    ct = r.get("Content-Type")
    m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", ct)
    assert m, ct
    b = m.group(1).encode()
    parts = []
    for chunk in r.body.split(b"--" + b)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        fields = dict(ln.split(b": ", 1) for ln in head.strip().split(b"\r\n"))
        parts.append((fields[b"Content-Range"].decode(), fields[b"Content-Type"].decode(),
                      data[:-2]))
    return parts


@pytest.mark.parametrize("prefix", ["", "/copy"])
def test_multiple_ranges(site, prefix):
    big = (site.www / "big.bin").read_bytes()
    n = len(big)
    r = get(site.port, prefix + "/big.bin",
            headers=[("Range", "bytes=0-9, 5000-5099, -7")])
    assert r.status == 206
    assert int(r.get("Content-Length")) == len(r.body)
    parts = parse_multipart(r)
    assert [p[0] for p in parts] == ["bytes 0-9/%d" % n, "bytes 5000-5099/%d" % n,
                                     "bytes %d-%d/%d" % (n - 7, n - 1, n)]
    assert parts[0][2] == big[:10] and parts[1][2] == big[5000:5100]
    assert parts[2][2] == big[-7:]
    assert all(p[1] == "application/octet-stream" for p in parts)
    # overlapping ranges (a way to amplify) are not honoured: all of it
    r = get(site.port, prefix + "/a.txt", headers=[("Range", "bytes=0-5, 3-8")])
    assert r.status == 200 and r.body == b"hello world\n"


def test_precompressed_siblings(site):
    js = (site.www / "app.js").read_bytes()
    r = get(site.port, "/app.js", headers=[("Accept-Encoding", "gzip")])
    assert r.status == 200 and r.get("Content-Encoding") == "gzip"
    assert r.body == (site.www / "app.js.gz").read_bytes()
    assert gzip.decompress(r.body) == js
    assert r.get("Vary") == "Accept-Encoding"
    assert r.get("Content-Type") == "text/javascript"
    r2 = get(site.port, "/app.js", headers=[("Accept-Encoding", "gzip, br")])
    assert r2.get("Content-Encoding") == "br"
    assert brotli.decompress(r2.body) == js
    assert r2.get("ETag") != r.get("ETag")  # each representation its own
    r3 = get(site.port, "/app.js")
    assert r3.get("Content-Encoding") is None and r3.body == js
    assert r3.get("Vary") == "Accept-Encoding"
    r4 = get(site.port, "/app.js", headers=[("Accept-Encoding", "gzip;q=0, br;q=0")])
    assert r4.body == js
    # a range is about the identity file
    r5 = get(site.port, "/app.js", headers=[("Accept-Encoding", "gzip"),
                                            ("Range", "bytes=0-99")])
    assert r5.status == 206 and r5.body == js[:100]
    assert r5.get("Content-Encoding") is None
    p = curl("--compressed", "http://127.0.0.1:%d/app.js" % site.port)
    assert p.stdout == js


def test_compressed_on_the_fly(site):
    css = (site.www / "style.css").read_bytes()
    r = get(site.port, "/z/style.css", headers=[("Accept-Encoding", "gzip")])
    assert r.status == 200 and r.get("Content-Encoding") == "gzip"
    assert r.get("Transfer-Encoding") == "chunked" and r.get("Content-Length") is None
    assert r.get("ETag").startswith('W/"')
    assert gzip.decompress(r.body) == css
    p = curl("--compressed", "-H", "Accept-Encoding: zstd",
             "http://127.0.0.1:%d/z/style.css" % site.port)
    assert p.stdout == css
    # ranges and images are never compressed
    r = get(site.port, "/z/style.css", headers=[("Accept-Encoding", "gzip"),
                                                ("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == css[:10] and r.get("Content-Encoding") is None
    r = get(site.port, "/z/logo.png", headers=[("Accept-Encoding", "gzip")])
    assert r.get("Content-Encoding") is None
    assert r.body == (site.www / "logo.png").read_bytes()


def test_directories_and_index(site):
    r = get(site.port, "/")
    assert r.status == 200 and r.body == b"<h1>index</h1>\n"
    r = get(site.port, "/sub?x=1")
    assert r.status == 301 and r.get("Location") == "/sub/?x=1"
    r = get(site.port, "/sub/")  # no index, listing off
    assert r.status == 403
    r = get(site.port, "/list/")
    assert r.status == 200 and r.get("Content-Type").startswith("text/html")
    assert b'<a href="one.txt">one.txt</a>' in r.body
    assert b"two &#38; &#60;three&#62;.txt" in r.body
    assert b'href="two%20%26%20%3Cthree%3E.txt"' in r.body
    assert b".secret" not in r.body


def test_method_not_allowed(site):
    r = get(site.port, "/a.txt", method="POST", body=b"x",
            headers=[("Content-Length", "1")])
    assert r.status == 405 and r.get("Allow") == "GET, HEAD"


TRAVERSALS = [
    # (raw target, status)
    ("/../outside.txt", 403),
    ("/sub/../../outside.txt", 403),
    ("/%2e%2e/outside.txt", 403),
    ("/%2E%2E/%2e%2e/etc/passwd", 403),
    ("/sub/..%2f..%2foutside.txt", 403),
    ("/sub/%2e%2e%2f%2e%2e%2foutside.txt", 403),
    ("/.%2e/outside.txt", 403),
    ("/%252e%252e/outside.txt", 404),  # double encoding is just a name
    ("/out.txt", 403),                 # symlink out of the root
    ("/etc/passwd", 403),              # a directory symlink out of the root
    ("/.git/config", 404),             # hidden
    ("/.hidden", 404),
    ("/sub/%2egit/config", 404),
    ("/a.txt%00.png", 400),
    ("/a.txt%zz", 400),
]


@pytest.mark.parametrize("target,status", TRAVERSALS)
def test_traversal_refused_and_logged(site, target, status):
    with RawConn(site.port) as c:
        c.send(request_bytes("GET", target))
        r = c.read_response()
    assert r.status == status, (target, r)
    assert b"secret" not in r.body and b"root:" not in r.body
    lines = site.wait_access_lines(lambda ls: any(target in ln for ln in ls))
    line = [ln for ln in lines if target in ln]
    assert line and " %d " % status in line[0], lines
    assert re.search(r"reason=static_\w+", line[0]), line[0]
    if status == 403:
        deadline = time.monotonic() + 5
        while target not in site.error_log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target in site.error_log_text()


def test_allowed_links_and_well_known(site):
    assert get(site.port, "/in.txt").body == b"hello world\n"  # inside the root
    r = get(site.port, "/follow/out.txt")  # outside_symlinks: true
    assert r.status == 200 and r.body == b"outside secret\n"
    assert get(site.port, "/.well-known/security.txt").status == 200
    assert get(site.port, "/fifo").status == 403  # not a regular file
    assert get(site.port, "/nope.txt").status == 404


def test_keepalive_across_many_files(site):
    with RawConn(site.port) as c:
        for i in range(20):
            c.send(request_bytes("GET", "/a.txt" if i % 2 else "/copy/a.txt"))
            assert c.read_response().body == b"hello world\n"


def test_pipelined_static(site):
    with RawConn(site.port) as c:
        c.send(request_bytes("GET", "/a.txt") + request_bytes("HEAD", "/big.bin")
               + request_bytes("GET", "/a.txt", headers=[("Range", "bytes=0-1")]))
        assert c.read_response().body == b"hello world\n"
        assert c.read_response("HEAD").status == 200
        assert c.read_response().body == b"he"


def count_opens(gh, port, path, n):
    """Runs n GETs under strace and returns how many openat2 calls the
    server made."""
    out = os.path.join(gh.workdir, "strace.txt")
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=openat2,openat",
                           "-o", out, "-p", str(gh.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached
        with RawConn(port) as c:
            for _ in range(n):
                c.send(request_bytes("GET", path))
                assert c.read_response().status == 200
    finally:
        time.sleep(0.3)
        st.terminate()
        st.wait(10)
    with open(out) as f:
        return sum(1 for ln in f if "openat" in ln and "strace" not in ln)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace missing")
@pytest.mark.parametrize("valid,most", [("60s", 3), ("0ms", None)])
def test_open_file_cache(tmp_path, gatehouse, valid, most):
    www = make_www(tmp_path)
    port = free_port()
    cfg = {"workers": 1, "listeners": [{
        "listen": "127.0.0.1:%d" % port,
        "sites": [{"default": True, "routes": [
            {"path": "/", "static": {"root": str(www), "cache_valid": valid,
                                     "precompressed": False}}]}]}]}
    g = gatehouse(cfg, port)
    opens = count_opens(g, port, "/a.txt", 50)
    if most is not None:
        assert opens <= most, opens  # hot file: no open per request
    else:
        assert opens >= 50, opens    # the cache off: one per request


def test_changed_file_seen_after_cache_valid(tmp_path, gatehouse):
    www = make_www(tmp_path)
    port = free_port()
    cfg = {"workers": 1, "listeners": [{
        "listen": "127.0.0.1:%d" % port,
        "sites": [{"default": True, "routes": [
            {"path": "/", "static": {"root": str(www), "cache_valid": "200ms"}}]}]}]}
    g = gatehouse(cfg, port)
    r1 = get(port, "/a.txt")
    tmp = www / "a.txt.new"
    tmp.write_bytes(b"changed content, longer\n")
    os.rename(str(tmp), str(www / "a.txt"))
    time.sleep(0.4)
    r2 = get(port, "/a.txt")
    assert r2.body == b"changed content, longer\n"
    assert r2.get("ETag") != r1.get("ETag")
    (www / "a.txt").unlink()
    time.sleep(0.4)
    assert get(port, "/a.txt").status == 404


def test_config_errors(tmp_path):
    from lib.proxy import run_cli
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
                   "      - routes:\n          - path: /\n"
                   "            static: { root: /does/not/exist }\n")
    p = run_cli(["-t", "-c", str(bad)])
    assert p.returncode != 0
    assert re.search(r"bad.yaml:6:\d+: .*cannot open directory /does/not/exist", p.stderr), p.stderr
    bad.write_text("upstreams: { u: { servers: [127.0.0.1:1] } }\n"
                   "listeners:\n  - listen: 127.0.0.1:1\n    sites:\n"
                   "      - routes:\n          - path: /\n            upstream: u\n"
                   "            static: /tmp\n")
    p = run_cli(["-t", "-c", str(bad)])
    assert p.returncode != 0 and "only one of" in p.stderr, p.stderr


def test_reload_switches_roots(tmp_path, gatehouse):
    """A reload that points the route at another directory serves the other
    directory's file at once: the open-file cache belongs to a configuration
    generation, so nothing opened under the old one is served by the new."""
    import signal
    from lib.net import wait_until
    from lib.proxy import to_yaml
    roots = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "f.txt").write_bytes(b"root %s\n" % name.encode())
        roots.append(d)
    port = free_port()

    def cfg(d):
        return {"workers": 1,
                "log": {"access": str(tmp_path / "access.log"),
                        "error": str(tmp_path / "error.log")},
                "listeners": [{"listen": "127.0.0.1:%d" % port, "sites": [
                    {"default": True, "routes": [
                        {"path": "/", "static": {"root": str(d), "cache_valid": "1h"}}]}]}]}

    g = gatehouse(cfg(roots[0]), port)
    assert get(port, "/f.txt").body == b"root a\n"
    for i in range(1, 9):
        want = roots[i % 2]
        with open(g.config_path, "w") as f:
            f.write(to_yaml(cfg(want)) + "\n")
        g.send_signal(signal.SIGHUP)
        body = b"root %s\n" % want.name.encode()
        assert wait_until(lambda: get(port, "/f.txt").body == body, 5), \
            (i, g.error_log_text()[-1000:])


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_over_tls_and_h2(tmp_path, tls_reverse, origin, test_ca, proto):
    """A TLS client gets the copy path (sendfile would bypass TLS) and an
    HTTP/2 stream pulls the file: bytes exact, ranges, precompressed
    siblings; compression on the way over HTTP/1.1 (not yet on HTTP/2)."""
    www = make_www(tmp_path)
    g = tls_reverse({"was": [origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "static": {"root": str(www)}, "compress": True}]}])

    def fetch(path, *args):
        return curl("--cacert", test_ca.ca, proto, *args,
                    "https://localhost:%d%s" % (g.port, path))
    assert sha(fetch("/big.bin").stdout) == file_sha256(str(www / "big.bin"))
    big = (www / "big.bin").read_bytes()
    assert fetch("/big.bin", "-r", "1000-1999").stdout == big[1000:2000]
    assert fetch("/app.js", "--compressed").stdout == (www / "app.js").read_bytes()
    assert fetch("/style.css", "--compressed", "-H", "Accept-Encoding: gzip"
                 ).stdout == (www / "style.css").read_bytes()
    p = fetch("/style.css", "-H", "Accept-Encoding: gzip", "-D", "/dev/stderr")
    head = p.stderr.decode().lower()
    if proto == "--http1.1":
        assert "content-encoding: gzip" in head
        assert gzip.decompress(p.stdout) == (www / "style.css").read_bytes()
    else:  # no compressor on the HTTP/2 pull path yet: identity, and Vary
        assert "content-encoding" not in head and "vary: accept-encoding" in head
        assert p.stdout == (www / "style.css").read_bytes()
