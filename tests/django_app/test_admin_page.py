# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""What the metrics dashboard shows: the overview, every metric type, rates over a
window, column sorts (worst first by default), search, filter and pagination, escaping,
the JSON view, the backend panel (in memory and on a real Redis, reachable or not,
with a password), its own requests left out of the metrics, and 10,000 series."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from django_pytheus.admin import FAMILIES_PER_PAGE, SERIES_PER_PAGE, SERIES_PREVIEW, STATE
from django_pytheus.conf import parse_settings
from django_pytheus.dashboard import MASK
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import REGISTRY
from tests.servers import RedisServer

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CHANGELIST = "admin:django_pytheus_metric_changelist"
XSS = "<script>alert(1)</script>"


class Clock:
    """The readings' clock, moved by the test: rates need time between two readings."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock() -> Iterator[Clock]:
    fake = Clock()
    STATE.clock = fake
    try:
        yield fake
    finally:
        STATE.clock = time.monotonic


@pytest.fixture
def client(make_user: Callable[..., Any]) -> Client:
    client = Client()
    client.force_login(make_user(view_metric=True))
    return client


def page(client: Client, query: str = "") -> str:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def family_page(client: Client, name: str, query: str = "") -> str:
    url = reverse("admin:django_pytheus_metric_family", args=[name]) + query
    response = client.get(url)
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def data(client: Client, query: str = "", status: int = 200) -> dict[str, Any]:
    response = client.get(reverse("admin:django_pytheus_metric_data") + query)
    assert response.status_code == status, response.content[:2000]
    result: dict[str, Any] = response.json()
    return result


def article(html: str, family: str) -> str:
    """The HTML of one family on the page."""
    match = re.search(
        rf'<article class="pytheus-family[^"]*" id="metric-{family}".*?</article>', html, re.S
    )
    assert match, f"{family} is not on the page"
    return match.group(0)


def cells(html: str) -> list[str]:
    """The text of the value cells and tiles, in order."""
    return [unescape(c) for c in re.findall(r'data-pytheus-cell="[^"]+"[^>]*>([^<]*)<', html)]


def headers(html: str) -> list[str]:
    """The column headers of a family's table."""
    return [unescape(h) for h in re.findall(r"<th[^>]*>(?:<a[^>]*>)?([^<]+)(?:</a>)?</th>", html)]


def labels(html: str, column: int = 0) -> list[str]:
    """The values of one label column, in order."""
    rows = re.findall(r"<tr data-pytheus-series=.*?</tr>", html, re.S)
    return [
        unescape(re.findall(r'class="pytheus-label[^"]*"[^>]*>([^<]*)<', row)[column])
        for row in rows
    ]


# --------------------------------------------------------------------------- types


def test_counter_gauge_and_labels(client: Client) -> None:
    jobs = Counter("jobs", "Jobs done, by queue.", ["queue", "outcome"])
    jobs.labels(queue="emails", outcome="ok").inc(1234)
    jobs.labels(queue="emails", outcome="failed").inc(2)
    Gauge("temperature_celsius", "Machine room temperature.").set(21.5)
    html = page(client)
    jobs_html = article(html, "jobs")
    assert "<code>jobs_total</code>" in jobs_html
    assert ">Counter<" in jobs_html
    assert "Jobs done, by queue." in jobs_html
    assert "<code>queue</code>" in jobs_html
    assert "<code>outcome</code>" in jobs_html
    assert "<span data-pytheus-count>2</span> series" in jobs_html
    assert headers(jobs_html) == ["queue", "outcome", "Per second", "Total"]
    # The first reading has no rate yet; the highest total first (worst first).
    assert cells(jobs_html) == ["—", "1,234", "—", "2"]
    assert 'data-pytheus-series="queue=&quot;emails&quot;,outcome=&quot;ok&quot;"' in jobs_html
    assert 'title="Needs an earlier reading: shown from the next refresh on"' in jobs_html
    gauge = article(html, "temperature_celsius")
    assert ">Gauge<" in gauge
    assert cells(gauge) == ["21.5 °C"]  # one series without labels: a tile, its unit
    assert "pytheus-tiles" in gauge


def test_histogram_with_quantiles_and_chart(client: Client) -> None:
    h = Histogram("task_seconds", "Task durations.", buckets=[0.1, 0.5, 1])
    for v in [0.05] * 50 + [0.3] * 40 + [0.7] * 10:
        h.observe(v)
    labelled = Histogram("route_seconds", "By route.", ["route"], buckets=[1, 2])
    labelled.labels(route="/a/").observe(1.5)
    html = page(client, "?w=0")  # since start
    single = article(html, "task_seconds")
    titles = re.findall(r"<dt[^>]*>([^<]+)</dt>", single)
    assert titles == ["Per second", "p99", "p90", "p50", "Mean", "Count"]
    # p50: rank 50, the top of (0, 0.1]; p90: rank 90, the top of (0.1, 0.5]; p99 in
    # (0.5, 1]: each shown as its bucket, PromQL's value (0.95 s) in the tooltip.
    rate, p99, p90, p50, mean, count = cells(single)
    assert (rate, count, p99, p90, p50, mean) == (
        "—", "100", "500 ms–1 s", "100–500 ms", "≤ 100 ms", "215 ms",
    )  # fmt: skip
    assert "histogram_quantile() interpolates 0.95 s in it" in single
    assert 'class="pytheus-estimate"' in single
    assert ">since start<" in single
    # A large chart: one bar per bucket, +Inf included, with its bound under it, and
    # the same numbers as a table.
    assert "pytheus-chart-large" in single
    assert single.count('class="pytheus-bar"') == 4
    assert re.findall(r'class="pytheus-tick"[^>]*>([^<]+)<', single) == [
        "100 ms",
        "500 ms",
        "1 s",
        "+Inf",
    ]
    assert "<title>≤ 100 ms: 50 observations</title>" in single
    assert (
        'aria-label="Observations per bucket, since start: 100 in all, most (50) in ≤ 100 ms"'
        in (single)
    )
    assert '<td>100–500 ms</td><td class="pytheus-num">40</td>' in single
    table = article(html, "route_seconds")
    assert headers(table) == [
        "route",
        "Per second",
        "p99",
        "p90",
        "p50",
        "Mean",
        "Count",
        "Buckets",
    ]
    assert cells(table) == ["—", "1–2 s", "1–2 s", "1–2 s", "1.5 s", "1"]
    assert table.count("<svg") == 1


def test_summary_info_and_state_set(client: Client) -> None:
    Summary("upload_bytes", "Upload sizes.", quantiles=(0.5, 0.99)).observe(2048)
    Info("build", "Build information.").info({"version": "1.4.2", "commit": "a1b2c3d"})
    mode = Enum("maintenance", "Maintenance mode.", ["site"], states=["off", "read_only"])
    mode.labels(site="main").state("read_only")
    html = page(client)
    summary = article(html, "upload_bytes")
    assert ">Summary<" in summary
    # One naming of quantiles: p99 and p50 as for histograms (measured: no estimate).
    assert re.findall(r"<dt[^>]*>([^<]+)</dt>", summary) == [
        "Per second", "p99", "p50", "Mean", "Count",
    ]  # fmt: skip
    assert cells(summary) == ["—", "2 KiB", "2 KiB", "2 KiB", "1"]
    assert "pytheus-estimate" not in summary
    info = article(html, "build")
    assert "<code>build_info</code>" in info
    assert headers(info) == ["version", "commit"]
    assert labels(info, 0) == ["1.4.2"]
    assert labels(info, 1) == ["a1b2c3d"]
    states = article(html, "maintenance")
    assert ">State set<" in states
    assert "<span>States</span> <code>off</code> <code>read_only</code>" in states
    assert headers(states) == ["site", "State"]
    assert cells(states) == ["read_only"]


def test_a_family_without_series_says_so(client: Client) -> None:
    Counter("never", "Never incremented.", ["kind"])
    html = article(page(client, "?q=never"), "never")
    assert "pytheus-family-empty" in html
    assert "No series yet" in html
    assert "0 series" not in html
    assert "<code>kind</code>" in html  # label names from the definition
    assert "No series yet." in family_page(client, "never")


def test_help_text_and_label_values_are_escaped(client: Client) -> None:
    c = Counter("xss", f"Help with {XSS} and <b>bold</b> & more.", ["value"])
    c.labels(value=XSS).inc()
    c.labels(value='quote " and \\ backslash').inc()
    for html in (page(client), page(client, "?q=alert"), family_page(client, "xss")):
        assert XSS not in html
        assert "<b>bold</b>" not in html
        assert "Help with &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; more." in html
        assert ">&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
        assert "quote &quot; and \\ backslash" in html
    # The JSON carries the raw text (JSON escapes what JSON needs); the page's script
    # writes it with textContent.
    rows = data(client)["families"]["xss"]["rows"]
    assert f'value="{XSS}"' in rows
    assert rows[f'value="{XSS}"']["labels"] == [[XSS, ""]]
    script = (ROOT / "django_pytheus/static/django_pytheus/dashboard.js").read_text()
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script


def test_regex_routes_read_as_routes(client: Client) -> None:
    Counter("hits", "Hits.", ["view"]).labels(view="/old/(?P<year>[0-9]{4})/$").inc()
    html = article(page(client, "?q=hits"), "hits")
    assert labels(html) == ["/old/<year>/"]
    assert 'title="/old/(?P&lt;year&gt;[0-9]{4})/$"' in html  # the raw value, on hover


# --------------------------------------------------------------------------- windows


def test_rates_over_the_window_after_a_second_reading(client: Client, clock: Clock) -> None:
    jobs = Counter("jobs", "Jobs.", ["queue"])
    jobs.labels(queue="slow").inc(1000)
    jobs.labels(queue="busy").inc(10)
    html = article(page(client, "?q=jobs"), "jobs")
    assert ">since start<" in html
    assert labels(html) == ["slow", "busy"]  # by total: no rate yet
    clock.now += 10
    jobs.labels(queue="busy").inc(50)
    html = article(page(client, "?q=jobs"), "jobs")
    assert ">last 10 s<" in html
    # Highest rate first: the busy queue now, though the other has more in all.
    assert labels(html) == ["busy", "slow"]
    assert cells(html) == ["5/s", "60", "0/s", "1,000"]
    assert 'title="50 in the last 10 s"' in html
    # "since start": the same values without rates.
    assert cells(article(page(client, "?q=jobs&w=0"), "jobs")) == ["—", "1,000", "—", "60"]
    # The JSON poll says the same.
    clock.now += 10
    jobs.labels(queue="slow").inc(400)
    polled = data(client, "?q=jobs&name=jobs")["families"]["jobs"]
    assert polled["window"] == "last 20 s"
    assert polled["order"] == ['queue="slow"', 'queue="busy"']
    assert polled["rows"]['queue="slow"']["cells"]["rate"] == ["20/s", "400 in the last 20 s"]
    # "Most active": the family whose series add the most per second first.
    Gauge("aa_idle", "Idle.").set(1)
    clock.now += 10
    jobs.labels(queue="busy").inc(10)
    order = re.findall(r'data-pytheus-family="(\w+)"', page(client, "?sort=active"))
    assert order[0] == "jobs", order


def test_the_overview_answers_the_on_call_questions(client: Client, clock: Clock) -> None:
    for _ in range(20):
        client.get("/hello/")
    page(client)
    clock.now += 5
    for _ in range(10):
        client.get("/queries/3/")
    client.get("/status/503/")
    html = page(client)
    overview = re.search(r'<section class="pytheus-overview".*?<details', html, re.S)
    assert overview, html[:3000]
    text = overview.group(0)
    assert "Right now" in text
    assert re.search(r'data-pytheus-figure="requests".*?data-pytheus-text[^>]*>2.2/s<', text, re.S)
    assert re.search(r'data-pytheus-figure="errors".*?>9.09 %<', text, re.S)  # 1 of 11
    # The N+1 finder names the view that makes three queries a request.
    queries = re.search(r'data-pytheus-list="queries"[^>]*>(.*?)</ol>', text, re.S)
    assert queries
    assert re.findall(r"<a [^>]*>([^<]+)</a>", queries.group(1))[0] == "/queries/&lt;int:n&gt;/"
    assert "3 queries" in queries.group(1)
    assert 'title="30 queries in 10 requests; p99 3 queries per request"' in queries.group(1)
    assert "0 queries in 1 request;" in text
    # Each figure links to its family.
    family = reverse("admin:django_pytheus_metric_family", args=["django_http_requests"])
    assert f'href="{family}?o.django_http_requests=-rate" data-pytheus-figure="requests"' in text
    # A poll five seconds later: the minute's window starts at the first reading, ten
    # seconds ago, and holds the same 11 requests.
    clock.now += 5
    payload = data(client)
    assert payload["overview"]["figures"]["requests"]["text"] == "1.1/s"
    assert payload["overview"]["window"] == "last 10 s"
    assert payload["overview"]["lists"]["queries"][0][0] == "/queries/<int:n>/"


def test_the_dashboards_own_requests_are_not_counted(
    client: Client, pytheus_settings: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    page(client)
    data(client)
    family_page(client, "django_http_requests")
    client.get("/hello/")
    views = {
        dict(s.labels)["view"]
        for f in REGISTRY.collect(["django_http_requests_total"])
        for s in f.samples
    }
    assert views == {"/hello/"}
    pytheus_settings(RECORD_DASHBOARD=True)
    client = Client()  # a new handler, with a middleware that reads the new settings
    client.force_login(make_user(view_metric=True))
    page(client)
    data(client)
    views = {
        dict(s.labels)["view"]
        for f in REGISTRY.collect(["django_http_requests_total"])
        for s in f.samples
    }
    assert "/admin/django_pytheus/metric/" in views
    assert "/admin/django_pytheus/metric/data/" in views
    with pytest.raises(ImproperlyConfigured, match=r"PYTHEUS\['RECORD_DASHBOARD'\] must be True"):
        parse_settings({"RECORD_DASHBOARD": "yes"})


def test_the_page_reads_series_never_samples(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard reads ``collect_series()``: no family of samples is built and
    regrouped (the core's fallback for custom collectors aside)."""
    from pytheus.registry import CollectorRegistry

    h = Histogram("wait_seconds", "Waits.", ["queue"], buckets=[0.1, 1])
    h.labels(queue="mail").observe(0.5)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the dashboard read samples (collect()), not series")

    monkeypatch.setattr(CollectorRegistry, "collect", refuse)
    html = family_page(client, "wait_seconds")
    assert labels(html) == ["mail"]
    assert data(client)["families"]


# --------------------------------------------------------------------------- sorting


def test_columns_sort_worst_first_and_either_way(client: Client, clock: Clock) -> None:
    latency = Histogram("lat_seconds", "Latency.", ["view"], buckets=[0.01, 0.1, 1, 10])
    for i in range(SERIES_PREVIEW + 5):
        latency.labels(view=f"/v{i:02d}/").observe(0.005)
    latency.labels(view="/v03/").observe(5.0)  # the slowest, far down by name
    for _ in range(30):
        latency.labels(view="/v13/").observe(0.05)  # the busiest
    html = article(page(client, "?q=lat_seconds"), "lat_seconds")
    # p99 highest first: the slow view on top although /v03/ sorts fourth by name.
    assert labels(html)[0] == "/v03/"
    assert len(labels(html)) == SERIES_PREVIEW
    assert re.search(r'<th [^>]*aria-sort="descending"><a [^>]*>p99</a>', html)
    assert html.count("aria-sort=") == 1
    # Each header links to its sort; the sorted one to the other way round.
    links = {
        unescape(t): unescape(h)
        for h, t in re.findall(r'<th [^>]*><a href="([^"]+)"[^>]*>([^<]+)</a>', html)
    }
    assert links["p99"] == "?q=lat_seconds&o.lat_seconds=p99#metric-lat_seconds"
    assert links["Count"] == "?q=lat_seconds&o.lat_seconds=-total#metric-lat_seconds"
    assert links["view"] == "?q=lat_seconds&o.lat_seconds=label-view#metric-lat_seconds"
    by_count = article(page(client, "?q=lat_seconds&o.lat_seconds=-total"), "lat_seconds")
    assert labels(by_count)[0] == "/v13/"
    assert 'aria-sort="descending"><a href="?q=lat_seconds&amp;o.lat_seconds=total' in by_count
    ascending = article(page(client, "?q=lat_seconds&o.lat_seconds=p99"), "lat_seconds")
    assert labels(ascending)[-1] != "/v03/"
    assert "/v03/" not in labels(ascending)
    by_name = article(page(client, "?q=lat_seconds&o.lat_seconds=-label-view"), "lat_seconds")
    assert labels(by_name)[:2] == ["/v14/", "/v13/"]
    # The family's own page sorts all its series the same way.
    own = family_page(client, "lat_seconds", "?o.lat_seconds=-total")
    assert labels(own)[0] == "/v13/"
    assert len(labels(own)) == SERIES_PREVIEW + 5
    # A bogus sort is the default one.
    assert labels(article(page(client, "?q=lat&o.lat_seconds=zzz"), "lat_seconds"))[0] == "/v03/"


# --------------------------------------------------------------------------- search


def test_search_filter_and_order(client: Client) -> None:
    jobs = Counter("jobs", "Jobs done.", ["queue"])
    for q in ("emails", "reports", "billing"):
        jobs.labels(queue=q).inc()
    Gauge("reports_waiting", "Reports in the queue.").set(3)
    Histogram("latency_seconds", "Latency of the reports page.", ["route"]).labels(
        route="/x/"
    ).observe(1)
    html = page(client, "?q=report")
    shown = re.findall(r'data-pytheus-family="(\w+)"', html)
    assert shown == ["jobs", "latency_seconds", "reports_waiting"]
    # jobs matched by a label value only: just that series, and a count that says so.
    jobs_html = article(html, "jobs")
    assert cells(jobs_html) == ["—", "1"]
    assert "1 of <span data-pytheus-count>3</span> series match" in jobs_html
    assert 'value="report"' in html  # the search box keeps the query
    # The summary counts what was found, not everything.
    assert re.search(r"3 families, 3 series \(<a href=\"\?\">of \d+ families, [\d,]+ series", html)
    # Type facets count what the search found.
    assert re.search(r'href="\?q=report&amp;type=counter">Counter <span[^>]*>1</span>', html)
    html = page(client, "?q=report&type=gauge")
    assert re.findall(r'data-pytheus-family="(\w+)"', html) == ["reports_waiting"]
    html = page(client, "?type=histogram")
    families = re.findall(r'data-pytheus-family="(\w+)"', html)
    assert "latency_seconds" in families
    assert "jobs" not in families
    # This site's metrics first, then django_pytheus's, each group under its heading.
    order = re.findall(r'data-pytheus-family="(\w+)"|class="pytheus-group">([^<]+)<', page(client))
    flat = [a or unescape(b) for a, b in order]
    assert flat[:4] == ["This site's metrics", "jobs", "latency_seconds", "reports_waiting"]
    assert flat[4] == "Requests, database and cache (django_pytheus)"
    assert all(name.startswith("django_") for name in flat[5:])
    by_name = re.findall(r'data-pytheus-family="(\w+)"', page(client, "?sort=name"))
    assert by_name == sorted(by_name)
    assert "No metric matches." in page(client, "?q=nothing-at-all")
    # Unknown filter values fall back to the defaults rather than failing.
    assert re.findall(r'data-pytheus-family="(\w+)"', page(client, "?type=bogus&sort=x&p=x&w=7"))


def test_pagination_and_show_all(client: Client) -> None:
    for i in range(FAMILIES_PER_PAGE + 5):
        Gauge(f"zz_gauge_{i:02d}", "A gauge.").set(i)
    many = Counter("aa_many", "Many series.", ["n"])
    for i in range(SERIES_PER_PAGE + 20):
        many.labels(n=f"{i:04d}").inc(i)
    html = page(client)
    assert html.count("<article ") == FAMILIES_PER_PAGE
    assert '<span class="this-page">1</span>' in html
    assert '<a href="?p=2">2</a>' in html
    second = page(client, "?p=2")
    assert "zz_gauge_24" in second
    assert "aa_many" not in second
    # A family shows its worst series (highest total) and links to its own page.
    many_html = article(html, "aa_many")
    assert len(labels(many_html)) == SERIES_PREVIEW
    assert labels(many_html)[0] == f"{SERIES_PER_PAGE + 19:04d}"
    family_url = reverse("admin:django_pytheus_metric_family", args=["aa_many"])
    assert f'<a href="{family_url}">Show all {SERIES_PER_PAGE + 20} series' in many_html
    own = family_page(client, "aa_many")
    assert "<h1>aa_many</h1>" in own
    assert len(labels(own)) == SERIES_PER_PAGE
    assert f"{SERIES_PER_PAGE + 20} series" in own
    rest = family_page(client, "aa_many", "?p=2")
    assert len(labels(rest)) == 20
    searched = family_page(client, "aa_many", "?q=0007")
    assert labels(searched) == ["0007"]
    # The counter's query name finds the family too; an unknown one is a 404.
    assert "aa_many_total" in family_page(client, "aa_many_total")
    url = reverse("admin:django_pytheus_metric_family", args=["no_such_metric"])
    assert client.get(url).status_code == 404


# --------------------------------------------------------------------------- JSON


def test_json_view_returns_what_the_page_shows(client: Client) -> None:
    jobs = Counter("jobs", "Jobs.", ["queue"])
    jobs.labels(queue="a").inc()
    h = Histogram("work_seconds", "Work.", buckets=[1, 2])
    h.observe(0.5)
    html = page(client, "?q=jobs")
    url = re.search(r'data-pytheus-data-url="([^"]+)"', html)
    assert url
    assert url.group(1) == reverse("admin:django_pytheus_metric_data") + "?q=jobs"
    before = data(client, "?q=jobs")
    assert list(before["families"]) == ["jobs"]
    jobs_json = before["families"]["jobs"]
    assert jobs_json["series"] == "1"
    assert jobs_json["order"] == ['queue="a"']
    assert jobs_json["rows"]['queue="a"']["cells"]["total"] == ["1", "Since the series was created"]
    jobs.labels(queue="a").inc(41)
    jobs.labels(queue="b").inc()
    after = data(client, "?q=jobs")
    assert after["families"]["jobs"]["series"] == "2"
    assert after["families"]["jobs"]["rows"]['queue="a"']["cells"]["total"][0] == "42"
    assert after["families"]["jobs"]["rows"]['queue="b"']["labels"] == [["b", ""]]
    assert after["error"] == ""
    assert after["stale"] is False
    assert after["status"]["backend"] == "MemoryBackend"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", after["time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", after["read_at"])
    work = data(client, "?q=work&w=0")["families"]["work_seconds"]["rows"][""]
    assert work["cells"]["total"][0] == "1"
    assert work["cells"]["p50"][0] == "≤ 1 s"
    assert "histogram_quantile() interpolates 0.5 s" in work["cells"]["p50"][1]
    assert [bar[2] for bar in work["bars"]] == [
        "≤ 1 s: 1 observation",
        "1–2 s: 0 observations",
        "> 2 s: 0 observations",
    ]
    # A poll names the families on screen: only those (and the overview's) are read.
    polled = data(client, "?q=o&name=jobs&name=work_seconds&name=no_such_family")
    assert set(polled["families"]) == {"jobs", "work_seconds"}
    assert "overview" in polled
    # The same query on a family's page.
    family = data(client, "?family=jobs&p=1")
    assert set(family["families"]["jobs"]["rows"]) == {'queue="a"', 'queue="b"'}


def test_status_panel_in_memory(client: Client) -> None:
    html = page(client)
    status = re.search(r'<details class="pytheus-status".*?</details>', html, re.S)
    assert status
    assert "MemoryBackend" in status.group(0)
    assert "In this process only" in status.group(0)
    assert "open" not in status.group(0).split(">")[0]  # folded away while healthy
    assert 'href="/metrics"' in html  # the raw exposition is one click away


# --------------------------------------------------------------------------- Redis


def test_redis_status_masks_the_password(
    make_user: Callable[..., Any],
    redis_server_factory: Callable[..., RedisServer],
    pytheus_settings: Callable[..., Any],
) -> None:
    server = redis_server_factory()
    gc.collect()  # a summary with quantiles of an earlier test, left in a cycle, would fail it
    # Set after the start: the fixture's readiness check pings without a password.
    assert server.command("CONFIG", "SET", "requirepass", "s3cret-pass") == b"+OK"
    pytheus_settings(
        BACKEND="pytheus.backends.redis.MultiProcessRedisBackend",
        BACKEND_CONFIG={
            "url": f"redis://:s3cret-pass@{server.host}:{server.port}/0",
            "password": "s3cret-pass",
            "prefix": f"adm{uuid.uuid4().hex[:10]}",
            "flush_interval": 0,
        },
    )
    Counter("via_redis", "Counted in Redis.").inc(5)
    client = Client()
    client.force_login(make_user(view_metric=True))
    html = page(client, "?q=via_redis")
    payload = json.dumps(data(client))
    for text in (html, payload):
        assert "s3cret-pass" not in text
        assert "MultiProcessRedisBackend(" not in text
        assert "<MultiProcessRedisBackend" not in text
    assert "MultiProcessRedisBackend" in html
    assert f"<code>127.0.0.1:{server.port}, db 0</code>" in html
    assert f"<dt>password</dt>\n      <dd><code>{MASK}</code></dd>" in html
    assert "<dt>url</dt>" not in html  # shown once, as the server
    health = re.search(r'data-pytheus-status="health" data-healthy="(\w+)">(\w+)<', html)
    assert health
    assert health.groups() == ("true", "Reachable")
    assert cells(article(html, "via_redis")) == ["—", "5"]
    status = data(client)["status"]
    assert status["health"] == "Reachable"
    assert status["errors"] == "0"
    assert status["last_flush"] in ("just now", "1 s ago", "2 s ago")


def test_redis_down_shows_the_last_values_stale_and_this_process_own(
    make_user: Callable[..., Any],
    redis_server_factory: Callable[..., RedisServer],
    pytheus_settings: Callable[..., Any],
) -> None:
    server = redis_server_factory()
    gc.collect()  # as above
    pytheus_settings(
        BACKEND="pytheus.backends.redis.MultiProcessRedisBackend",
        BACKEND_CONFIG={
            "url": server.url,
            "prefix": f"adm{uuid.uuid4().hex[:10]}",
            "flush_interval": 0,
            "socket_timeout": 0.5,
        },
    )
    seen = Counter("while_up", "Counted while Redis is up.")
    seen.inc(3)
    client = Client()
    client.force_login(make_user(view_metric=True))
    assert cells(article(page(client, "?q=while"), "while_up")) == ["—", "3"]
    seen.inc(4)
    Counter("only_here", "Defined after the last read.").inc(2)
    server.pause()  # accepts connections, answers nothing: the worst case
    try:
        start = time.monotonic()
        html = page(client)
        elapsed = time.monotonic() - start
        response = client.get(reverse("admin:django_pytheus_metric_data") + "?name=while_up")
        again = client.get(reverse("admin:django_pytheus_metric_data"))
    finally:
        server.resume()
    # Bounded by the socket timeout (a read, perhaps a reconnect), not by Redis.
    assert elapsed < 5, elapsed
    assert "pytheus-is-stale" in html
    assert "Reading the metrics has failed since" in html
    assert "cannot read metrics from Redis" in html
    assert re.search(
        r"The values below were read at \d\d:\d\d:\d\d UTC \((just now|\d+ s ago)\)", html
    )
    assert 'data-healthy="false">Unreachable<' in html
    # The last values read, marked stale; a family never read: this process's own values.
    last = article(html, "while_up")
    assert cells(last) == ["—", "3"]
    assert ">stale<" in last
    # The overview's figures too: the Requests tile says its values are not current.
    requests_tile = re.search(r'<a [^>]*data-pytheus-figure="requests".*?</a>', html, re.S)
    assert requests_tile is not None
    assert re.search(r'class="pytheus-figure[^"]* pytheus-figure-stale"', requests_tile[0])
    assert re.search(r"data-pytheus-figure-stale>(stale|this process only)<", requests_tile[0])
    local = article(html, "only_here")
    assert cells(local) == ["—", "2"]
    assert ">this process only<" in local
    assert response.status_code == 503
    payload = response.json()
    assert payload["error"].startswith("The metrics could not be read")
    assert payload["stale"] is True
    assert payload["status"]["health"] == "Unreachable"
    assert payload["status"]["problem"].startswith("Reading the metrics has failed since")
    assert "3 failed reads" in again.json()["status"]["problem"]
    assert payload["families"]["while_up"]["stale"] is True
    assert payload["overview"]["figures"]["requests"]["stale"] in ("stale", "this process only")
    # Once Redis answers, the page is current again.
    fresh = page(client, "?q=while")
    assert "pytheus-is-stale" not in fresh
    assert ' pytheus-figure-stale"' not in fresh
    assert "data-pytheus-figure-stale hidden>" in fresh
    assert cells(article(fresh, "while_up"))[-1] == "7"


REMOTE_SCRIPT = """
import sys
from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.metrics import Counter
from pytheus.registry import CollectorRegistry, set_registry

set_registry(CollectorRegistry())
backend = load_backend(
    MultiProcessRedisBackend,
    {"url": sys.argv[1], "prefix": sys.argv[2], "flush_interval": 0},
)
Counter("remote_only", "Defined only by another process.", ["worker"]).labels(
    worker="w1"
).inc(7)
backend.flush()
backend.close()
"""


def test_families_defined_only_by_other_processes_appear(
    make_user: Callable[..., Any],
    redis_server: RedisServer,
    redis_backend_settings: Callable[..., str],
) -> None:
    prefix = redis_backend_settings()
    subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, redis_server.url, prefix],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=60,
    )
    client = Client()
    client.force_login(make_user(view_metric=True))
    html = page(client, "?q=remote")
    remote = article(html, "remote_only")
    assert "<code>remote_only_total</code>" in remote
    assert "Defined only by another process." in remote
    assert "<code>worker</code>" in remote  # label names learnt from the samples
    assert cells(remote) == ["—", "7"]
    rows = data(client, "?q=remote")["families"]["remote_only"]["rows"]
    assert rows['worker="w1"']["cells"]["total"][0] == "7"
    # A family's page reads only that family, remote ones included.
    own = family_page(client, "remote_only")
    assert cells(article(own, "remote_only"))[-1] == "7"
    rows = data(client, "?family=remote_only_total")["families"]["remote_only"]["rows"]
    assert rows['worker="w1"']["cells"]["total"][0] == "7"


# --------------------------------------------------------------------------- size


def test_ten_thousand_series_stay_small(client: Client, clock: Clock) -> None:
    """A registry of 10,000 series: the pages stay small, and the rows shown are the
    worst of each family. Their speed is measured by ``benchmarks/admin_dashboard.py``
    (a timed unit test would fail on a busy machine, not on a slow page)."""
    requests = Counter("big_requests", "Requests.", ["path", "code"])
    for i in range(5000):
        requests.labels(path=f"/p/{i}", code="200").inc(i)
    latency = Histogram("big_latency_seconds", "Latency.", ["route"])
    for i in range(3000):
        latency.labels(route=f"/r/{i}").observe(i / 1000)
    temperature = Gauge("big_temperature", "Temperature.", ["sensor"])
    for i in range(2000):
        temperature.labels(sensor=str(i)).set(i)
    for name, url in {
        "dashboard": reverse(CHANGELIST),
        "search": reverse(CHANGELIST) + "?q=/r/29",
        "family page": reverse("admin:django_pytheus_metric_family", args=["big_latency_seconds"]),
        "json": reverse("admin:django_pytheus_metric_data") + "?name=big_latency_seconds",
    }.items():
        clock.now += 5
        response = client.get(url)
        assert response.status_code == 200
        assert len(response.content) < 600_000, (name, len(response.content))
    html = page(client)
    # 10,0xx series in the registry (the app's own included).
    assert re.search(r"families, 10,0\d\d series<", html)
    assert labels(article(html, "big_requests")) == [f"/p/{i}" for i in range(4999, 4989, -1)]
    # The slowest routes: those in the highest bucket, (2.5 s, 5 s].
    assert all(int(route[3:]) > 2500 for route in labels(article(html, "big_latency_seconds")))
    assert labels(article(html, "big_temperature"))[0] == "1999"


def test_prometheus_client_families_appear(client: Client) -> None:
    import prometheus_client as pc

    from pytheus.bridges import prometheus_client as bridge

    source = pc.CollectorRegistry()
    jobs = pc.Counter("thirdparty_jobs", "Jobs of a library.", ["queue"], registry=source)
    jobs.labels("emails").inc(7)
    hist = pc.Histogram("thirdparty_seconds", "Its durations.", buckets=[1, 2], registry=source)
    hist.observe(0.5)
    try:
        bridge.register(source)
        html = page(client)
        counter = article(html, "thirdparty_jobs")
        assert ">Counter<" in counter
        assert "<span data-pytheus-count>1</span> series" in counter
        assert cells(counter) == ["—", "7"]  # no rate yet (one reading), the total
        work = data(client, "?q=thirdparty_seconds")["families"]["thirdparty_seconds"]
        cells_json = work["rows"][""]["cells"]
        assert cells_json["total"][0] == "1"
        assert cells_json["mean"][0] == "500 ms"
    finally:
        bridge.unregister()
