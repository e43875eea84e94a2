# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""The metrics dashboard in a real browser: Playwright driving Debian's Chromium.

A person's path through the page: log in, open the dashboard, search, let the
auto-refresh run, make requests to the site and see the request counter change without
a reload, new series join the table; the same in dark mode, and a family's own page.
Screenshots go to ``test-artifacts/admin/`` (light and dark) for people to look at. The
on-call questions, on the demo, are in ``test_admin_oncall.py``.

Why the browser is started and stopped inside each test, after the database work:
Playwright's synchronous API runs an asyncio event loop in this thread (in a
greenlet), and while it runs, ``asyncio.get_running_loop()`` finds it, so Django's
async-unsafe guard makes every ORM call here raise ``SynchronousOnlyOperation``. A
session-wide browser would break the ORM for every later test in the session. So
users are created before the browser starts and nothing here queries the database
while it runs (the live server answers from its own thread, which has no loop), and
``DJANGO_ALLOW_ASYNC_UNSAFE`` is not needed.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Callable, Iterator
from statistics import NormalDist
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info
from tests.django_app.browser import ARTIFACTS, DEADLINE_MS, chromium, log_in, open_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

XSS = "<script>alert(1)</script>"


@pytest.fixture
def credentials(make_user: Callable[..., Any]) -> tuple[str, str]:
    """A staff user with ``view_metric``, made before the browser starts (see above)."""
    user = make_user(view_metric=True)
    return user.username, "pw"


@pytest.fixture
def browser(live_server: Any, credentials: tuple[str, str]) -> Iterator[Browser]:
    assert live_server.url.startswith("http://127.0.0.1:"), live_server.url
    with chromium() as browser:
        yield browser


def get(live_server: Any, path: str) -> None:
    with urllib.request.urlopen(live_server.url + path, timeout=10) as response:
        assert response.status == 200


def some_metrics(*, xss: bool = False) -> Counter:
    """What a small site might measure, with fixed values (screenshots stay alike);
    returns the jobs counter, which has a queue named like a script with ``xss``."""
    jobs = Counter(
        "jobs_processed", "Background jobs processed, by queue and outcome.", ["queue", "outcome"]
    )
    for i, queue in enumerate(["default", "emails", "reports", *([XSS] if xss else [])]):
        jobs.labels(queue=queue, outcome="ok").inc(1200 + 317 * i)
        jobs.labels(queue=queue, outcome="failed").inc(3 + 5 * i)
    tasks = Histogram(
        "task_duration_seconds",
        "How long background tasks take.",
        buckets=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    )
    durations = NormalDist(mu=-3.0, sigma=1.1)  # log-normal, as durations tend to be
    for i in range(1, 400):
        tasks.observe(math.exp(durations.inv_cdf(i / 400)))
    Info("build", "Version of the running code.").info(
        {"version": "2.3.1", "commit": "9f1c2ab", "python": "3.11.7"}
    )
    maintenance = Enum(
        "maintenance_mode", "Whether the site is in maintenance.", states=["off", "read_only", "on"]
    )
    maintenance.state("off")
    Gauge("queue_depth", "Jobs waiting, by queue.", ["queue"]).labels(queue="emails").set(17)
    return jobs


def test_search_and_live_values_without_a_reload(
    browser: Browser, live_server: Any, credentials: tuple[str, str]
) -> None:
    jobs = some_metrics(xss=True)
    get(live_server, "/hello/")  # the request counter's series exists from the start
    page = open_page(browser, live_server.url)
    log_in(page, credentials, "/admin/django_pytheus/metric/")
    spark = page.locator('[data-pytheus-figure="requests"] [data-pytheus-spark]')
    assert spark.get_attribute("hidden") is not None  # one reading: no trend yet
    expect(page.locator("#content h1")).to_have_text("Metrics")
    expect(page.locator(".breadcrumbs")).to_contain_text("Prometheus metrics (pytheus)")
    expect(page.locator("[data-pytheus-family]").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard-light.png")
    page.screenshot(path=ARTIFACTS / "dashboard-light-full.png", full_page=True)

    # Search by a label value: the matching series only.
    page.fill("#searchbar", "hello")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**?q=hello")
    requests = page.locator('[data-pytheus-family="django_http_requests"]')
    expect(requests).to_be_visible()
    row = requests.locator('tr[data-pytheus-series*="view=\\"/hello/\\""]')
    cell = row.locator('[data-pytheus-cell="total"]')
    expect(cell).to_have_text("1")
    families = page.locator("[data-pytheus-family]").evaluate_all(
        "els => els.map(e => e.dataset.pytheusFamily)"
    )
    assert "jobs_processed" not in families
    assert "django_http_requests" in families

    # Auto-refresh (on by default) every 2 s, then traffic: the value changes in place.
    page.evaluate("window.pytheusNoReload = true")
    expect(page.locator("#pytheus-autorefresh")).to_be_checked()
    updated_before = page.locator("#pytheus-updated").get_attribute("datetime")
    page.select_option("#pytheus-interval", "2")
    for _ in range(4):
        get(live_server, "/hello/")
    expect(cell).to_have_text("5", timeout=DEADLINE_MS)
    assert page.evaluate("window.pytheusNoReload") is True  # the same document
    expect(page.locator("#pytheus-updated")).not_to_have_attribute("datetime", updated_before)
    expect(page.locator("[data-pytheus-error]")).to_be_hidden()
    # A rate once there is an earlier reading.
    expect(row.locator('[data-pytheus-cell="rate"]')).to_have_text(re.compile(r"\d.*/s"))
    # The sparkline, hidden when the page was made (no trend yet), appears with the polls.
    expect(spark).to_be_visible(timeout=DEADLINE_MS)
    # And again, from the poll that follows (the toggle stays on).
    get(live_server, "/hello/")
    expect(cell).to_have_text("6", timeout=DEADLINE_MS)
    page.screenshot(path=ARTIFACTS / "search-live-light.png")

    # Label values are text, in the page and after a live update.
    page.goto("/admin/django_pytheus/metric/?q=alert")
    xss_rows = page.locator('[data-pytheus-family="jobs_processed"] tbody tr')
    expect(xss_rows).to_have_count(2)  # the failed and ok jobs of that queue
    failed = page.locator(
        '[data-pytheus-family="jobs_processed"] tr[data-pytheus-series*="outcome=\\"failed\\""]'
    )
    expect(failed.locator("td").first).to_have_text(XSS)
    jobs.labels(queue=XSS, outcome="failed").inc(1000)
    expect(failed.locator('[data-pytheus-cell="total"]')).to_have_text(
        "1,018", timeout=DEADLINE_MS
    )  # the interval was remembered across the navigation
    expect(failed.locator("td").first).to_have_text(XSS)
    # A series that appears later joins the table, its labels as text too.
    page.goto("/admin/django_pytheus/metric/?q=jobs_processed")
    table = page.locator('[data-pytheus-family="jobs_processed"] tbody')
    expect(table.locator("tr")).to_have_count(8)
    jobs.labels(queue="alerts", outcome="ok").inc(5000)  # the busiest: first
    expect(table.locator("tr")).to_have_count(9, timeout=DEADLINE_MS)
    expect(table.locator("tr").first.locator("td").first).to_have_text("alerts")
    expect(table.locator("tr").first.locator('[data-pytheus-cell="total"]')).to_have_text("5,000")
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.outside == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_dark_mode_histogram_and_family_page(
    browser: Browser, live_server: Any, credentials: tuple[str, str]
) -> None:
    some_metrics()
    for path in ("/hello/", "/hello/", "/articles/2024/", "/queries/3/"):
        get(live_server, path)
    page = open_page(browser, live_server.url, dark=True)
    log_in(page, credentials, "/admin/django_pytheus/metric/")
    # The admin's dark theme applies to our parts too (they use its variables).
    body_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    status_bg = page.evaluate(
        "getComputedStyle(document.querySelector('.pytheus-status')).backgroundColor"
    )
    assert body_bg == "rgb(18, 18, 18)", body_bg
    assert status_bg == "rgb(33, 33, 33)", status_bg  # --darkened-bg in dark mode
    page.screenshot(path=ARTIFACTS / "dashboard-dark.png")
    # The backend's figure opens its panel (folded away while all is well).
    expect(page.locator("#pytheus-backend")).not_to_have_attribute("open", "")
    page.click("[data-pytheus-backend-figure]")
    expect(page.locator("#pytheus-backend")).to_have_attribute("open", "")

    page.goto("/admin/django_pytheus/metric/?q=task_duration&w=0")
    histogram = page.locator('[data-pytheus-family="task_duration_seconds"]')
    expect(histogram.locator(".pytheus-chart-large .pytheus-bar")).to_have_count(12)
    tiles = histogram.locator(".pytheus-tiles dt").all_inner_texts()
    assert [t.lower() for t in tiles] == ["per second", "p99", "p90", "p50", "mean", "count"]
    expect(histogram.locator('[data-pytheus-cell="total"]')).to_have_text("399")
    # The chart says in words what it shows, and opens as a table.
    chart = histogram.locator(".pytheus-chart-large")
    expect(chart).to_have_attribute("aria-label", re.compile(r"399 in all, most \(\d+\) in "))
    histogram.locator(".pytheus-chart-table summary").click()
    expect(histogram.locator(".pytheus-chart-table tbody tr")).to_have_count(12)
    # A percentile that falls in a bucket is shown as the bucket, PromQL's value on hover.
    p99 = histogram.locator('[data-pytheus-cell="p99"]')
    expect(p99).to_have_text("500 ms–1 s")
    expect(p99).to_have_attribute("title", re.compile(r"histogram_quantile\(\) interpolates"))
    histogram.screenshot(path=ARTIFACTS / "histogram-dark.png")

    page.click('[data-pytheus-family="task_duration_seconds"] h3 a')
    page.wait_for_url("**/family/task_duration_seconds/**")
    expect(page.locator("#content h1")).to_have_text("task_duration_seconds")
    expect(page.locator(".breadcrumbs a").last).to_have_text("Metrics")
    page.screenshot(path=ARTIFACTS / "family-dark.png")
    assert page.outside == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_poll_answered_without_a_window_keeps_the_rates(
    browser: Browser, live_server: Any, credentials: tuple[str, str]
) -> None:
    """With several worker processes, a poll may reach one that has no earlier reading
    and answers totals since start: the rates on screen stay, the totals move on."""
    get(live_server, "/hello/")
    page = open_page(browser, live_server.url)
    log_in(page, credentials, "/admin/django_pytheus/metric/?q=hello")
    page.select_option("#pytheus-interval", "2")
    row = page.locator('[data-pytheus-family="django_http_requests"] tbody tr').first
    rate = row.locator('[data-pytheus-cell="rate"]')
    expect(rate).to_have_text(re.compile(r"/s$"))
    badge = page.locator('[data-pytheus-family="django_http_requests"] [data-pytheus-window]')
    expect(badge).to_have_text(re.compile(r"^last "))
    shown = rate.inner_text()

    def fresh_worker(route: Any) -> None:
        response = route.fetch()
        payload = response.json()
        payload["overview"]["window"] = "since start"
        for family in payload["families"].values():
            family["window"] = "since start"
            for values in family["rows"].values():
                if "rate" in values["cells"]:
                    values["cells"]["rate"] = ["—", ""]
        route.fulfill(response=response, json=payload)

    page.route("**/metric/data/**", fresh_worker)
    for _ in range(3):
        get(live_server, "/hello/")
    total = row.locator('[data-pytheus-cell="total"]')
    expect(total).to_have_text("4", timeout=DEADLINE_MS)  # totals move on
    expect(rate).to_have_text(shown)  # the rate stays
    expect(badge).to_have_text(re.compile(r"^last "))
    expect(page.locator("[data-pytheus-overview-window]")).to_have_text(re.compile(r"^last "))
    assert page.errors == []  # type: ignore[attr-defined]
