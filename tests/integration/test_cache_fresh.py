"""RFC 9111 §4.2: freshness lifetime (s-maxage, max-age, Expires - Date,
heuristics), current age (Date, Age, §4.2.3), invalid and duplicate
directives (§4.2.1), and the Age field on every response from the cache
(§5.1). Staleness is produced with Date and Age rather than by waiting."""

import time

import pytest

from lib.cache_origin import Resp, cache_status, http_date
from lib.net import get


def stored_then(g, origin, path):
    """Two GETs; returns (second response, origin requests)."""
    get(g.port, path)
    r = get(g.port, path)
    return r, origin.hits(path)


@pytest.mark.parametrize("headers,fresh", [
    ([("Cache-Control", "max-age=3600")], True),
    ([("Cache-Control", "max-age=0")], False),
    ([("Cache-Control", "max-age=0, s-maxage=3600")], True),     # s-maxage wins
    ([("Cache-Control", "max-age=3600, s-maxage=0")], False),
    ([("Expires", http_date(time.time() + 3600))], True),
    ([("Expires", http_date(time.time() - 3600))], False),
    ([("Expires", "0")], False),                                  # invalid: expired
    ([("Expires", "not a date")], False),
    ([("Expires", http_date(time.time() + 3600)), ("Cache-Control", "max-age=0")], False),
    ([("Expires", "0"), ("Cache-Control", "max-age=3600")], True),  # max-age wins
    ([("Cache-Control", 'max-age="3600"')], True),                # quoted
    ([("Cache-Control", "MAX-AGE=3600")], True),                  # case
    ([("Cache-Control", "max-age=3600, max-age=0")], True),       # the first
    ([("Cache-Control", "max-age=0, max-age=3600")], False),
    ([("Cache-Control", "max-age=abc")], False),                  # invalid: stale
    ([("Cache-Control", "max-age=-1")], False),
    ([("Cache-Control", "max-age=3600a")], False),
    ([("Cache-Control", "max-age = 3600")], False),
    ([("Cache-Control", "max-age=99999999999999999999")], True),  # 2^31
    ([("Cache-Control", "public"), ("Cache-Control", "max-age=3600")], True),
])
def test_lifetime(cache_proxy, cache_origin, headers, fresh):
    cache_origin.set("/f", headers=headers + [("ETag", '"e"')], body=b"f")
    g = cache_proxy()
    r, n = stored_then(g, cache_origin, "/f")
    assert r.status == 200 and r.body == b"f"
    assert n == (1 if fresh else 2), (headers, r.headers)


def test_expires_counts_from_date(cache_proxy, cache_origin):
    """Expires - Date, not Expires - now: a clock-skewed origin whose Date is
    an hour behind with Expires 30 min after it sent a stale response."""
    now = time.time()
    cache_origin.set("/skew", headers=[("Date", http_date(now - 3600)),
                                       ("Expires", http_date(now - 1800))], body=b"s")
    cache_origin.set("/ahead", headers=[("Date", http_date(now + 3600)),
                                        ("Expires", http_date(now + 3660))], body=b"s")
    g = cache_proxy()
    assert stored_then(g, cache_origin, "/skew")[1] == 2
    # Date ahead of us: apparent age 0, lifetime 60 s: fresh
    assert stored_then(g, cache_origin, "/ahead")[1] == 1


@pytest.mark.parametrize("age,date_ago,fresh", [
    ("100", 0, True),
    ("3500", 0, True),
    ("3700", 0, False),          # older than max-age
    (None, 3700, False),         # apparent age from Date
    (None, 100, True),
    ("junk", 0, True),           # ignored
    ("100", 300, True),          # the larger of the two: 300
])
def test_current_age(cache_proxy, cache_origin, age, date_ago, fresh):
    hs = [("Cache-Control", "max-age=3600")]
    if age is not None:
        hs.append(("Age", age))
    if date_ago:
        hs.append(("Date", http_date(time.time() - date_ago)))
    cache_origin.set("/age", fn=lambda req, n: Resp(200, hs, b"a"))
    g = cache_proxy()
    r, n = stored_then(g, cache_origin, "/age")
    assert n == (1 if fresh else 2)
    if fresh:
        want = max(date_ago, int(age) if age and age.isdigit() else 0)
        assert want <= int(r.get("Age")) <= want + 5


def test_age_grows_while_stored(cache_proxy, cache_origin):
    cache_origin.set("/grow", headers=[("Cache-Control", "max-age=60")], body=b"g")
    g = cache_proxy()
    get(g.port, "/grow")
    time.sleep(2.1)
    r = get(g.port, "/grow")
    assert int(r.get("Age")) >= 2
    assert int(cache_status(r)["ttl"]) <= 58


@pytest.mark.parametrize("lm_ago,fresh", [
    (10 * 86400, True),     # 10% of 10 days: fresh for a day
    (5, False),             # 10% of 5 s rounds to 0
])
def test_heuristic(cache_proxy, cache_origin, lm_ago, fresh):
    cache_origin.set("/lm", headers=[("Last-Modified", http_date(time.time() - lm_ago))],
                     body=b"h")
    g = cache_proxy()
    assert stored_then(g, cache_origin, "/lm")[1] == (1 if fresh else 2)


def test_heuristic_percentage_is_configurable(cache_proxy, cache_origin):
    cache_origin.set("/lm0", headers=[("Last-Modified", http_date(time.time() - 86400))],
                     body=b"h")
    g = cache_proxy(cache={"heuristic": 0})
    assert stored_then(g, cache_origin, "/lm0")[1] == 2


def test_no_heuristic_for_302(cache_proxy, cache_origin):
    cache_origin.set("/r302", status=302, headers=[
        ("Location", "/x"), ("Last-Modified", http_date(time.time() - 86400 * 10))])
    cache_origin.set("/r302p", status=302, headers=[
        ("Location", "/x"), ("Cache-Control", "public"),
        ("Last-Modified", http_date(time.time() - 86400 * 10))])
    g = cache_proxy()
    assert stored_then(g, cache_origin, "/r302")[1] == 2
    assert stored_then(g, cache_origin, "/r302p")[1] == 1   # public allows it


def test_every_cached_response_has_age(cache_proxy, cache_origin):
    cache_origin.set("/ag", headers=[("Cache-Control", "max-age=60"), ("ETag", '"1"')],
                     body=b"x")
    g = cache_proxy()
    get(g.port, "/ag")
    for hs in ([], [("If-None-Match", '"1"')], [("Range", "bytes=0-0")]):
        r = get(g.port, "/ag", headers=hs)
        assert r.get("Age") is not None, (hs, r.headers)
        assert len(r.get_all("Age")) == 1
