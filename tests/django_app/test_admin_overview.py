# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""The on-call overview (django_pytheus.overview) worked out from families read twice:
requests per second, 5xx share, p99, the slowest views, the N+1 finder, cache hit
ratios, exceptions by type, sparklines; since start when there is no earlier reading."""

from __future__ import annotations

from typing import Any

import pytest

from django_pytheus import formatting as fmt
from django_pytheus.dashboard import FamilyView, build_families
from django_pytheus.history import History
from django_pytheus.overview import QUERIES, AppNames, Overview, Trend, build_overview
from pytheus.metrics import Counter, Histogram
from pytheus.registry import CollectorRegistry

NAMES = AppNames()
LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
QUERY_COUNTS = [0, 1, 2, 3, 5, 10, 20, 50]


class Site:
    """django_pytheus's metrics in a registry of their own, and a way to record."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "django_http_requests", "R.", ["method", "view", "status"], registry=r
        )
        self.duration = Histogram(
            "django_http_request_duration", "D.", ["method", "view"], buckets=LATENCY,
            unit="seconds", registry=r,
        )  # fmt: skip
        self.queries = Histogram(
            "django_db_queries_per_request", "Q.", ["view"], buckets=QUERY_COUNTS, registry=r
        )
        self.hits = Counter("django_cache_hits", "H.", ["cache"], registry=r)
        self.misses = Counter("django_cache_misses", "M.", ["cache"], registry=r)
        self.exceptions = Counter("django_http_exceptions", "E.", ["view", "type"], registry=r)
        self.history = History()
        self.trend = Trend()

    def request(
        self, view: str, seconds: float, *, status: str = "200", queries: int = 1, n: int = 1
    ) -> None:
        for _ in range(n):
            self.requests.labels(method="GET", view=view, status=status).inc()
            self.duration.labels(method="GET", view=view).observe(seconds)
            self.queries.labels(view=view).observe(queries)

    def read(self, now: float, window: float = 60) -> tuple[dict[str, FamilyView], Overview]:
        views = build_families(self.registry.collect_series(), unit_hints={NAMES.queries: QUERIES})
        for view in views:
            view.observe(self.history, window, now)
        by_name = {v.name: v for v in views}
        overview = build_overview(by_name, NAMES, link, trend=self.trend, now=now)
        return by_name, overview


def link(name: str, query: str, sort: str) -> str:
    return f"/family/{name}/?q={query}&o={sort}"


def figures(overview: Overview) -> dict[str, Any]:
    return {f.id: f for f in overview.figures}


def test_since_start_without_an_earlier_reading() -> None:
    site = Site()
    site.request("/fast/", 0.003, n=90)
    site.request("/boom/", 0.2, status="500", n=10)
    _, overview = site.read(now=0.0)
    assert overview.window_text == "since start"
    f = figures(overview)
    assert f["requests"].text == "100"  # a count, not a rate: there is no window
    assert f["errors"].text == "10 %"
    assert f["errors"].bad
    assert f["errors"].title == "10 of 100 responses had a 5xx status (since start)"
    assert f["requests"].href == "/family/django_http_requests/?q=&o=-rate"


def test_an_incident_shows_at_the_top_within_one_refresh() -> None:
    site = Site()
    # Days of history: many fast requests, a few slow reports, products N+1 long fixed.
    site.request("/fast/", 0.003, n=5000)
    site.request("/reports/", 1.5, n=20, queries=3)
    site.request("/products/", 0.02, n=500, queries=2)
    site.hits.labels(cache="default").inc(900)
    site.misses.labels(cache="default").inc(100)
    site.exceptions.labels(view="/boom/", type="KeyError").inc(40)
    site.read(now=0.0)
    # Then, in ten seconds: /slow/ takes seconds, /products/ does N+1, the cache misses.
    site.request("/fast/", 0.003, n=50)
    site.request("/slow/", 3.0, n=10, queries=0)
    site.request("/products/", 0.09, n=20, queries=42)
    site.request("/boom/", 0.05, status="500", n=5)
    site.exceptions.labels(view="/boom/", type="ValueError").inc(5)
    site.hits.labels(cache="default").inc(10)
    site.misses.labels(cache="default").inc(30)
    _, overview = site.read(now=10.0)
    assert overview.window_text == "last 10 s"
    f = figures(overview)
    assert f["requests"].text == "8.5/s"
    assert f["requests"].title == "85 requests in the last 10 s"
    assert f["errors"].text == "5.88 %"  # 5 of 85
    assert f["latency"].text == "2.5–5 s"  # /slow/ dominates the window's p99
    assert "histogram_quantile() says" in f["latency"].title
    assert f["cache"].text == "25 %"  # 10 of 40 lookups in the window (90 % since start)
    # The slowest view now, though /reports/ is slower since start (no traffic now).
    assert [r.name for r in overview.slow][:3] == ["/slow/", "/products/", "/boom/"]
    slow = overview.slow[0]
    assert (slow.text, slow.extra) == ("2.5–5 s", "1/s")
    assert slow.href == "/family/django_http_request_duration_seconds/?q=/slow/&o=-p99"
    assert "/reports/" not in [r.name for r in overview.slow]
    # The N+1 finder: /products/ makes 42 queries per request now.
    top = overview.queries[0]
    assert (top.name, top.text, top.extra) == ("/products/", "42 queries", "p99 21–50")
    # Views without requests in the window are not listed (/reports/).
    assert [q.name for q in overview.queries] == ["/products/", "/fast/", "/boom/", "/slow/"]
    # Exceptions: the one raised now first, with its total.
    assert [(e.name, e.text, e.extra) for e in overview.exceptions] == [
        ("ValueError", "5 in the last 10 s", "5 in all"),
        ("KeyError", "0 in the last 10 s", "40 in all"),
    ]
    assert [(c.name, c.text) for c in overview.caches] == [("default", "25 %")]
    assert overview.missing == []


def test_sparklines_from_one_point_per_reading() -> None:
    site = Site()
    site.read(now=0.0)
    for i in range(1, 6):
        site.request("/a/", 0.01, n=10 * i)
        _, overview = site.read(now=10.0 * i)
    spark = figures(overview)["requests"].spark
    assert spark is not None
    assert len(spark.points.split()) == 5
    assert spark.summary == ("Requests per second over the last 40 s: from 1/s to 5/s, now 5/s")
    # No 5xx at all: the share is 0 %, and a line at the bottom.
    errors = figures(overview)["errors"]
    assert errors.text == "0 %"
    assert not errors.bad


def test_a_restart_is_not_a_negative_rate() -> None:
    site = Site()
    site.request("/a/", 0.01, n=100)
    site.read(now=0.0)
    fresh = Site()  # a restarted process: every value from zero, the same readings
    fresh.history, fresh.trend = site.history, site.trend
    fresh.request("/a/", 0.01, n=7)
    _, overview = fresh.read(now=10.0)
    assert figures(overview)["requests"].text == "0.7/s"


def test_a_site_without_database_metrics_says_so() -> None:
    registry = CollectorRegistry()
    Counter("django_http_requests", "R.", ["method", "view", "status"], registry=registry)
    views = build_families(registry.collect_series())
    overview = build_overview({v.name: v for v in views}, NAMES, link, now=0.0)
    assert NAMES.queries in overview.missing
    assert overview.queries == []
    assert [f.id for f in overview.figures] == ["requests", "errors"]


@pytest.mark.parametrize("window", [60, 300, 900])
def test_the_window_is_what_was_asked_for(window: int) -> None:
    site = Site()
    for t in range(0, 1000, 10):
        site.request("/a/", 0.01, n=1)
        families, overview = site.read(now=float(t), window=window)
    span = families[NAMES.requests].window.span  # type: ignore[union-attr]
    # Readings thin out as they age: the first one inside the window is near its start.
    assert window * 0.75 <= span <= window
    assert overview.window_text == f"last {fmt.duration(span)}"
    assert figures(overview)["requests"].text == "0.1/s"


def test_each_part_says_what_it_is_over() -> None:
    """A family's own page reads only that family: the overview's families may have
    readings of different ages. Each figure and list says its own window."""
    site = Site()
    site.request("/a/", 0.01, n=10)
    views = build_families(site.registry.collect_series())
    by_name = {v.name: v for v in views}
    by_name[NAMES.duration].observe(site.history, 60, 0.0)  # read alone, earlier
    site.request("/a/", 0.01, n=10)
    _, overview = site.read(now=10.0)
    assert overview.window_text == "since start"  # the requests: first read now
    assert overview.windows["slow"] == "last 10 s"
    assert overview.windows["queries"] == "since start"
    f = figures(overview)
    assert f["requests"].detail == "since start"
    assert f["latency"].detail == "last 10 s"
    assert [(r.name, r.extra) for r in overview.slow] == [("/a/", "1/s")]
