"""Scraping /metrics of the admin listener with the Prometheus client
library's own text-format parser."""

from prometheus_client.parser import text_string_to_metric_families

from .ops import admin_get


def scrape(aport):
    """{(sample name, sorted label items): value} of one scrape; a series
    listed twice fails."""
    st, h, body = admin_get(aport, "/metrics")
    assert st == 200, (st, body[:200])
    assert h["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, "duplicate series %r" % (key,)
            samples[key] = s.value
    return samples


def val(samples, name, **labels):
    """The value of series <name>{<labels>}, None when it is not listed."""
    return samples.get((name, tuple(sorted(labels.items()))))


def denied(aport):
    """gatehouse_denied_total by reason."""
    s = scrape(aport)
    return {r: val(s, "gatehouse_denied_total", reason=r)
            for r in ("acl", "rate_limit", "conn_limit", "auth")}
