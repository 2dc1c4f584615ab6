"""RFC 9111 §4.3: validation. A stale stored response is validated with
If-None-Match / If-Modified-Since; a 304 updates the stored fields (§3.2,
§4.3.4) and the stored response answers; a 200 replaces it. Conditional
client requests are answered 304 from the cache (§4.3.2). Response
directives that force validation: no-cache, must-revalidate (§5.2.2)."""

import time

import pytest

from lib.cache_origin import Resp, cache_status, http_date, validating
from lib.net import get


def stale_headers(extra=()):
    return [("Cache-Control", "max-age=10"), ("Date", http_date(time.time() - 60))] + list(extra)


def test_etag_revalidation_304(cache_proxy, cache_origin):
    cache_origin.set("/v", fn=validating(stale_headers([("X-Version", "1")]), b"stored",
                                         extra304=[("X-Version", "2")]))
    g = cache_proxy()
    get(g.port, "/v")
    r = get(g.port, "/v")
    assert r.status == 200 and r.body == b"stored"
    assert cache_origin.hits("/v") == 2
    assert cache_origin.last("/v").get("If-None-Match") == '"v1"'
    st = cache_status(r)
    assert st["fwd"] == "stale" and st["fwd-status"] == "304"
    assert r.get("X-Version") == "2"          # updated from the 304
    assert r.get("Content-Length") == "6"     # never from a 304


def test_304_refreshes(cache_proxy, cache_origin):
    def fn(req, n):
        if req.get("If-None-Match") == '"e"':
            return Resp(304, [("Cache-Control", "max-age=3600"), ("ETag", '"e"')])
        return Resp(200, stale_headers([("ETag", '"e"')]), b"x")
    cache_origin.set("/ref", fn=fn)
    g = cache_proxy()
    get(g.port, "/ref")
    get(g.port, "/ref")                        # validated: fresh for an hour now
    r = get(g.port, "/ref")
    assert cache_origin.hits("/ref") == 2
    assert cache_status(r)["hit"] and int(cache_status(r)["ttl"]) > 3500


def test_last_modified_revalidation(cache_proxy, cache_origin):
    lm = http_date(time.time() - 86400)
    cache_origin.set("/lmv", fn=validating(stale_headers(), b"lm", etag=None, last_modified=lm))
    g = cache_proxy()
    get(g.port, "/lmv")
    r = get(g.port, "/lmv")
    assert r.body == b"lm"
    req = cache_origin.last("/lmv")
    assert req.get("If-Modified-Since") == lm and req.get("If-None-Match") is None
    assert cache_status(r)["fwd-status"] == "304"


def test_200_replaces(cache_proxy, cache_origin):
    def fn(req, n):
        return Resp(200, stale_headers([("ETag", '"%d"' % n)]) if n == 1 else
                    [("Cache-Control", "max-age=3600"), ("ETag", '"%d"' % n)],
                    b"version %d" % n)
    cache_origin.set("/rep", fn=fn)
    g = cache_proxy()
    assert get(g.port, "/rep").body == b"version 1"
    r = get(g.port, "/rep")
    assert r.body == b"version 2"
    assert cache_status(r) == {"fwd": "stale", "stored": True}
    assert get(g.port, "/rep").body == b"version 2"
    assert cache_origin.hits("/rep") == 2


def test_no_validator_refetches(cache_proxy, cache_origin):
    cache_origin.set("/nov", headers=stale_headers(), body=b"n")
    g = cache_proxy()
    get(g.port, "/nov")
    get(g.port, "/nov")
    assert cache_origin.hits("/nov") == 2
    assert cache_origin.last("/nov").get("If-None-Match") is None


def test_response_no_cache_always_validates(cache_proxy, cache_origin):
    cache_origin.set("/nc", fn=validating([("Cache-Control", "no-cache, max-age=3600")], b"nc"))
    g = cache_proxy()
    for i in range(3):
        r = get(g.port, "/nc")
        assert r.status == 200 and r.body == b"nc"
    assert cache_origin.hits("/nc") == 3
    assert [q.get("If-None-Match") for q in cache_origin.reqs("/nc")] == [None, '"v1"', '"v1"']


def test_no_cache_fields(cache_proxy, cache_origin):
    """§5.2.2.4 qualified no-cache: reused, without the listed fields."""
    cache_origin.set("/ncf", headers=[("Cache-Control", 'max-age=3600, no-cache="X-Token"'),
                                      ("X-Token", "t"), ("X-Other", "o")], body=b"b")
    g = cache_proxy()
    assert get(g.port, "/ncf").get("X-Token") == "t"
    r = get(g.port, "/ncf")
    assert cache_status(r)["hit"] and cache_origin.hits("/ncf") == 1
    assert r.get("X-Token") is None and r.get("X-Other") == "o"


def test_must_revalidate_origin_down(cache_proxy, cache_origin):
    """§5.2.2.2: once stale, an error rather than the stale response."""
    cache_origin.set("/mr", headers=stale_headers([("Cache-Control", "must-revalidate"),
                                                   ("ETag", '"m"')]), body=b"m")
    g = cache_proxy()
    get(g.port, "/mr")
    cache_origin.set("/mr", status=503, body=b"down")
    r = get(g.port, "/mr")
    assert r.status == 503


@pytest.mark.parametrize("hs,status", [
    ([("If-None-Match", '"v1"')], 304),
    ([("If-None-Match", 'W/"v1"')], 304),          # weak comparison
    ([("If-None-Match", '"x", "v1"')], 304),
    ([("If-None-Match", "*")], 304),
    ([("If-None-Match", '"other"')], 200),
    ([("If-Modified-Since", http_date(time.time() + 60))], 304),
    ([("If-Modified-Since", http_date(time.time() - 7 * 86400))], 200),
    ([("If-Modified-Since", "garbage")], 200),
    ([("If-None-Match", '"other"'), ("If-Modified-Since", http_date(time.time() + 60))], 200),
])
def test_client_conditionals_from_cache(cache_proxy, cache_origin, hs, status):
    cache_origin.set("/cc", headers=[("Cache-Control", "max-age=3600"), ("ETag", '"v1"'),
                                     ("Last-Modified", http_date(time.time() - 86400)),
                                     ("Content-Type", "text/plain")], body=b"cond")
    g = cache_proxy()
    get(g.port, "/cc")
    r = get(g.port, "/cc", headers=hs)
    assert r.status == status
    assert cache_origin.hits("/cc") == 1
    if status == 304:
        assert r.body == b"" and r.get("ETag") == '"v1"'
        assert r.get("Content-Type") is None and r.get("Date") is not None
        assert cache_status(r)["hit"]
    else:
        assert r.body == b"cond"


def test_conditional_miss_is_stored(cache_proxy, cache_origin):
    """A conditional request that misses: the origin gets an unconditional
    request (the cache wants the whole response), the client still gets its
    304, and the response is stored."""
    cache_origin.set("/cm", headers=[("Cache-Control", "max-age=3600"), ("ETag", '"v1"')],
                     body=b"z" * 50000)
    g = cache_proxy()
    r = get(g.port, "/cm", headers=[("If-None-Match", '"v1"')])
    assert r.status == 304
    assert cache_origin.last("/cm").get("If-None-Match") is None
    r = get(g.port, "/cm")
    assert r.status == 200 and r.body == b"z" * 50000
    assert cache_origin.hits("/cm") == 1


def test_304_with_other_etag_does_not_update(cache_proxy, cache_origin):
    def fn(req, n):
        if n == 1:
            return Resp(200, stale_headers([("ETag", '"a"')]), b"a")
        if req.get("If-None-Match"):
            return Resp(304, [("ETag", '"b"'), ("Cache-Control", "max-age=3600")])
        return Resp(200, [("ETag", '"b"'), ("Cache-Control", "max-age=3600")], b"b")
    cache_origin.set("/mis", fn=fn)
    g = cache_proxy()
    get(g.port, "/mis")
    get(g.port, "/mis")  # a 304 naming another representation
    r = get(g.port, "/mis")
    assert r.body == b"b"


def test_head_freshens_stored_get(cache_proxy, cache_origin):
    """§4.3.5: a HEAD that goes to the origin updates the stored GET when
    its validators match, invalidates it when they do not."""
    def fn(req, n):
        if n == 1:
            return Resp(200, stale_headers([("ETag", '"h"')]), b"get body")
        if req.method == "HEAD":
            return Resp(200, [("ETag", '"h"'), ("Cache-Control", "max-age=3600"),
                              ("X-Head", "1"), ("Content-Length", "8")], b"")
        return Resp(200, [("ETag", '"h2"')], b"new body")
    cache_origin.set("/hf", fn=fn)
    g = cache_proxy()
    get(g.port, "/hf")
    get(g.port, "/hf", method="HEAD", headers=[("Cache-Control", "no-cache")])
    # a HEAD with no-cache revalidates: a conditional HEAD; the stored GET is
    # now fresh for an hour and carries X-Head
    r = get(g.port, "/hf")
    assert r.body == b"get body" and r.get("X-Head") == "1"
    assert cache_status(r)["hit"]


def test_head_with_other_validators_invalidates(cache_proxy, cache_origin):
    def fn(req, n):
        if n == 1:
            return Resp(200, [("ETag", '"1"'), ("Cache-Control", "max-age=3600")], b"one")
        if req.method == "HEAD":
            return Resp(200, [("ETag", '"2"'), ("Content-Length", "3")], b"")
        return Resp(200, [("ETag", '"2"'), ("Cache-Control", "max-age=3600")], b"two")
    cache_origin.set("/hi", fn=fn)
    g = cache_proxy()
    get(g.port, "/hi")
    get(g.port, "/hi", method="HEAD", headers=[("Cache-Control", "no-cache")])
    assert get(g.port, "/hi").body == b"two"
