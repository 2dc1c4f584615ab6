"""Compression of proxied responses on the way out (route "compress",
docs/compression.md): gzip, brotli and zstd decoded by curl and by
Python's decoders, Vary: Accept-Encoding on every candidate response,
never for ranges, no-transform, already-encoded or small responses,
streaming (a slow upstream's pieces reach the client before the end)."""

import gzip
import json
import socket
import time
import zlib

import brotli
import pytest
import zstandard

from lib.net import RawConn, curl, free_port, get, request_bytes
from lib.origin import text_body


def decode(enc, data):
    if enc == "gzip":
        return gzip.decompress(data)
    if enc == "br":
        return brotli.decompress(data)
    if enc == "zstd":
        out = zstandard.ZstdDecompressor().decompressobj()
        return out.decompress(data)
    assert enc is None, enc
    return data


@pytest.fixture
def zproxy(origin, reverse):
    return reverse({"was": [origin.port]}, sites=[
        {"default": True, "routes": [{"path": "/", "upstream": "was", "compress": True}]},
        {"host": "plain.test", "routes": [{"path": "/", "upstream": "was"}]},
        {"host": "gz.test", "routes": [{
            "path": "/", "upstream": "was",
            "compress": {"encodings": ["gzip"], "min_size": "1KiB",
                         "types": ["text/plain"]}}]},
    ])


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("chunked", [False, True])
def test_each_coding_decodes(zproxy, enc, chunked):
    n = 300000
    target = "/text/%d%s" % (n, "?chunked=1" if chunked else "")
    r = get(zproxy.port, target, headers=[("Accept-Encoding", enc)])
    assert r.status == 200
    assert r.get("Content-Encoding") == enc
    assert r.get("Content-Length") is None
    assert r.get("Transfer-Encoding") == "chunked"
    assert r.get("Vary") == "Accept-Encoding"
    assert len(r.body) < n // 3, "not compressed much: %d" % len(r.body)
    assert decode(enc, r.body) == text_body(n)
    # curl decodes it too (it asks for all three and picks by Content-Encoding)
    p = curl("--compressed", "-H", "Accept-Encoding: " + enc,
             "http://127.0.0.1:%d%s" % (zproxy.port, target))
    assert p.stdout == text_body(n)


def test_negotiation(zproxy):
    def enc_for(ae):
        return get(zproxy.port, "/text/5000", headers=[("Accept-Encoding", ae)]
                   ).get("Content-Encoding")
    assert enc_for("gzip, deflate, br, zstd") == "br"
    assert enc_for("gzip, zstd") == "zstd"
    assert enc_for("br;q=0.1, gzip;q=0.9") == "gzip"
    assert enc_for("identity") is None
    assert enc_for("gzip;q=0, *;q=0") is None
    assert enc_for("deflate") is None
    r = get(zproxy.port, "/text/5000", host="gz.test",
            headers=[("Accept-Encoding", "br, zstd, gzip")])
    assert r.get("Content-Encoding") == "gzip"


def test_vary_on_every_candidate(zproxy):
    r = get(zproxy.port, "/text/5000")  # no Accept-Encoding: identity
    assert r.get("Content-Encoding") is None
    assert r.get("Vary") == "Accept-Encoding"
    assert r.get("Content-Length") == "5000" and r.body == text_body(5000)
    # the upstream's Vary is kept and extended, never duplicated
    r = get(zproxy.port, "/text/5000?set=Vary:Origin", headers=[("Accept-Encoding", "gzip")])
    assert r.get_all("Vary") == ["Origin, Accept-Encoding"]
    r = get(zproxy.port, "/text/5000?set=Vary:accept-encoding",
            headers=[("Accept-Encoding", "gzip")])
    assert r.get_all("Vary") == ["accept-encoding"]
    assert gzip.decompress(r.body) == text_body(5000)
    # a route without compress says nothing about it
    r = get(zproxy.port, "/text/5000", host="plain.test", headers=[("Accept-Encoding", "gzip")])
    assert r.get("Vary") is None and r.get("Content-Encoding") is None


@pytest.mark.parametrize("target,headers,vary", [
    ("/text/5000", [("Range", "bytes=0-99")], True),           # a range request
    ("/text/5000?set=Cache-Control:public,%20no-transform", [], False),
    ("/text/5000?set=Content-Encoding:gzip", [], False),       # already encoded
    ("/text/100", [], False),                                  # below min_size
    ("/text/5000?type=image/png", [], False),                  # not a listed type
    ("gz.test/text/1000", [], False),                          # below 1KiB
    ("/status/404", [], False),                                # not a 200
])
def test_not_compressed(zproxy, target, headers, vary):
    host = "localhost"
    if not target.startswith("/"):
        host, _, rest = target.partition("/")
        target = "/" + rest
    r = get(zproxy.port, target, host=host,
            headers=[("Accept-Encoding", "gzip, br, zstd")] + headers)
    assert r.get("Content-Encoding") in (None, "gzip") and \
        (r.get("Content-Encoding") is None or "Content-Encoding:gzip" in target), r
    if "Content-Encoding" not in target and "/status/" not in target:
        n = int(target.split("?")[0].split("/")[-1])
        assert r.body == text_body(n)
    assert (r.get("Vary") == "Accept-Encoding") == vary, r


def test_head_is_not_compressed(zproxy):
    r = get(zproxy.port, "/text/5000", method="HEAD", headers=[("Accept-Encoding", "gzip")])
    assert r.status == 200 and r.get("Content-Encoding") is None
    assert r.get("Vary") is None or r.get("Vary") == "Accept-Encoding"


def test_etag_weakened(zproxy):
    r = get(zproxy.port, '/text/5000?set=ETag:"abc"', headers=[("Accept-Encoding", "gzip")])
    assert r.get("ETag") == 'W/"abc"'
    r = get(zproxy.port, '/text/5000?set=ETag:W/"abc"', headers=[("Accept-Encoding", "gzip")])
    assert r.get("ETag") == 'W/"abc"'
    r = get(zproxy.port, '/text/5000?set=ETag:"abc"')
    assert r.get("ETag") == '"abc"'


def test_keepalive_after_compressed_response(zproxy):
    with RawConn(zproxy.port) as c:
        for i, enc in enumerate(["gzip", "br", "zstd", "gzip"] * 3):
            c.send(request_bytes("GET", "/text/%d" % (10000 + i),
                                 headers=[("Accept-Encoding", enc)]))
            r = c.read_response()
            assert decode(enc, r.body) == text_body(10000 + i)
        c.send(request_bytes("GET", "/echo"))
        assert json.loads(c.read_response().body)["path"] == "/echo"


def test_http10_client_gets_close_delimited(zproxy):
    with RawConn(zproxy.port) as c:
        c.send(b"GET /text/20000 HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        r = c.read_response()
    assert r.get("Content-Encoding") == "gzip"
    assert r.get("Transfer-Encoding") is None and r.get("Content-Length") is None
    assert gzip.decompress(r.body) == text_body(20000)


def test_large_body_streams(zproxy):
    n = 20 * 1024 * 1024
    p = curl("--compressed", "-H", "Accept-Encoding: zstd", "-D", "/dev/stderr",
             "http://127.0.0.1:%d/text/%d?chunked=1" % (zproxy.port, n), timeout=120)
    assert "content-encoding: zstd" in p.stderr.decode().lower()
    assert len(p.stdout) == n and p.stdout == text_body(n)


def test_slow_stream_is_flushed(zproxy):
    """A piece the upstream sent reaches the client before the next one is
    written: the compressor is flushed when the upstream goes quiet."""
    with RawConn(zproxy.port, timeout=10) as c:
        c.send(request_bytes("GET", "/drip/4/700", headers=[("Accept-Encoding", "gzip")]))
        t0 = time.monotonic()
        d = zlib.decompressobj(31)
        got = b""
        c.sock.settimeout(5)
        while b"piece 0" not in got:
            data = c.sock.recv(65536)
            assert data, "closed"
            c.buf += data
            i = c.buf.find(b"\r\n\r\n")
            if i >= 0:
                body = bytes(c.buf[i + 4:])
                # de-chunk what we have
                raw = b""
                while True:
                    j = body.find(b"\r\n")
                    if j < 0:
                        break
                    size = int(body[:j], 16)
                    if len(body) < j + 2 + size + 2:
                        break
                    raw += body[j + 2:j + 2 + size]
                    body = body[j + 4 + size:]
                got = d.decompress(raw) if raw else b""
                d = zlib.decompressobj(31)
        assert time.monotonic() - t0 < 1.5, "piece 0 waited for the end"


def test_with_the_cache(origin, reverse):
    """A route that caches and compresses: the cache stores the upstream's
    identity body (even when the compressor de-chunks it on the way), a
    miss is compressed for the client, a hit is served as stored."""
    g = reverse({"was": [origin.port]},
                sites=[{"default": True, "routes": [
                    {"path": "/", "upstream": "was", "compress": True,
                     "cache": True}]}],
                extra={"cache": {"memory": "16MiB"}})
    target = "/text/40000?chunked=1&set=Cache-Control:max-age=60"
    r1 = get(g.port, target, headers=[("Accept-Encoding", "gzip")])
    assert r1.status == 200 and r1.get("Content-Encoding") == "gzip"
    assert gzip.decompress(r1.body) == text_body(40000)
    seen = origin.count()
    for _ in range(2):
        r2 = get(g.port, target, headers=[("Accept-Encoding", "gzip")])
        assert r2.status == 200
        assert decode(r2.get("Content-Encoding"), r2.body) == text_body(40000)
    assert origin.count() == seen, "the second and third came from the cache"


def test_http2_client_gets_identity_with_vary(origin, tls_reverse, test_ca):
    """An HTTP/2 stream pulls its body straight from the upstream buffer,
    where no compressor sits yet: the response goes as it is (never a
    Content-Encoding over uncompressed bytes), with Vary all the same."""
    g = tls_reverse({"was": [origin.port]}, sites=[{"default": True, "routes": [
        {"path": "/", "upstream": "was", "compress": True}]}])
    for q in ("", "?chunked=1"):
        p = curl("--cacert", test_ca.ca, "--http2", "-H", "Accept-Encoding: gzip",
                 "-D", "/dev/stderr", "https://localhost:%d/text/50000%s" % (g.port, q))
        head = p.stderr.decode().lower()
        assert head.startswith("http/2 200")
        assert "content-encoding" not in head and "vary: accept-encoding" in head
        assert p.stdout == text_body(50000)
