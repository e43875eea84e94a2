"""The metrics dashboard in a real browser: Playwright driving Debian's Chromium.

A person's path through the page: log in, open the dashboard, search, turn on the
auto-refresh, make requests to the site and see the request counter change without a
reload; the same in dark mode, and a family's own page. Screenshots go to
``test-artifacts/admin/`` (light and dark) for people to look at.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test`` through
``scripts/install-system-deps.sh``); ``playwright install`` is never run. A missing
browser fails these tests, never skips them.

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
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
XSS = "<script>alert(1)</script>"
# Generous for a loaded CI machine; each wait returns as soon as its condition holds.
DEADLINE_MS = 20_000


@pytest.fixture
def credentials(make_user: Callable[..., Any]) -> tuple[str, str]:
    """A staff user with ``view_metric``, made before the browser starts (see above)."""
    user = make_user(view_metric=True)
    return user.username, "pw"


@pytest.fixture
def browser(live_server: Any, credentials: tuple[str, str]) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing. Run `make test`, which installs Debian's chromium "
            "(scripts/install-system-deps.sh).",
            pytrace=False,
        )
    assert live_server.url.startswith("http://127.0.0.1:"), live_server.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, live_server: Any, *, dark: bool = False) -> Page:
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        color_scheme="dark" if dark else "light",
    )
    context.set_default_timeout(DEADLINE_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    # Nothing may come from anywhere but the live server: no CDN, fonts or scripts.
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((live_server.url, "data:")) else outside.append(r.url),
    )
    page.outside = outside  # type: ignore[attr-defined]
    return page


def log_in(page: Page, credentials: tuple[str, str], path: str) -> None:
    page.goto(f"/admin/login/?next={path}")
    page.fill("#id_username", credentials[0])
    page.fill("#id_password", credentials[1])
    page.click("input[type=submit]")
    page.wait_for_url(f"**{path}")


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
    page = open_page(browser, live_server)
    log_in(page, credentials, "/admin/django_pytheus/metric/")
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
    cell = row.locator('[data-pytheus-cell="value"]')
    expect(cell).to_have_text("1")
    families = page.locator("[data-pytheus-family]").evaluate_all(
        "els => els.map(e => e.dataset.pytheusFamily)"
    )
    assert "jobs_processed" not in families
    assert "django_http_requests" in families

    # Auto-refresh every 2 s, then traffic: the value changes in place.
    page.evaluate("window.pytheusNoReload = true")
    updated_before = page.locator("#pytheus-updated").get_attribute("datetime")
    page.select_option("#pytheus-interval", "2")
    page.check("#pytheus-autorefresh")
    for _ in range(4):
        get(live_server, "/hello/")
    expect(cell).to_have_text("5", timeout=DEADLINE_MS)
    assert page.evaluate("window.pytheusNoReload") is True  # the same document
    expect(page.locator("#pytheus-updated")).not_to_have_attribute("datetime", updated_before)
    expect(page.locator("[data-pytheus-error]")).to_be_hidden()
    # And again, from the poll that follows (the toggle stays on).
    get(live_server, "/hello/")
    expect(cell).to_have_text("6", timeout=DEADLINE_MS)
    page.screenshot(path=ARTIFACTS / "search-live-light.png")

    # Label values are text, in the page and after a live update.
    page.goto("/admin/django_pytheus/metric/?q=alert")
    xss_rows = page.locator('[data-pytheus-family="jobs_processed"] tbody tr')
    expect(xss_rows).to_have_count(2)  # the failed and ok jobs of that queue
    expect(xss_rows.first.locator("td").first).to_have_text(XSS)
    jobs.labels(queue=XSS, outcome="failed").inc(1000)
    expect(xss_rows.first.locator('[data-pytheus-cell="value"]')).to_have_text(
        "1,018", timeout=DEADLINE_MS
    )  # the toggle was remembered across the navigation
    expect(xss_rows.first.locator("td").first).to_have_text(XSS)
    # A series that appears later is announced, not slipped into the table.
    notice = page.locator('[data-pytheus-family="jobs_processed"] [data-pytheus-new]')
    expect(notice).to_be_hidden()
    jobs.labels(queue="alerts", outcome="ok").inc()
    expect(notice).to_be_visible(timeout=DEADLINE_MS)
    expect(xss_rows).to_have_count(2)
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.outside == []  # type: ignore[attr-defined]


def test_dark_mode_histogram_and_family_page(
    browser: Browser, live_server: Any, credentials: tuple[str, str]
) -> None:
    some_metrics()
    for path in ("/hello/", "/hello/", "/articles/2024/", "/queries/3/"):
        get(live_server, path)
    # The busiest families first, the admin's sidebar folded away: the README's picture.
    light = open_page(browser, live_server)
    log_in(light, credentials, "/admin/django_pytheus/metric/?sort=series")
    light.click("#toggle-nav-sidebar")
    light.evaluate("window.scrollTo(0, 0)")
    expect(light.locator("li.selected", has_text="Most series")).to_be_visible()
    light.screenshot(path=ARTIFACTS / "overview-light.png")
    light.context.close()

    page = open_page(browser, live_server, dark=True)
    log_in(page, credentials, "/admin/django_pytheus/metric/")
    # The admin's dark theme applies to our parts too (they use its variables).
    body_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    status_bg = page.evaluate(
        "getComputedStyle(document.querySelector('.pytheus-status')).backgroundColor"
    )
    assert body_bg == "rgb(18, 18, 18)", body_bg
    assert status_bg == "rgb(33, 33, 33)", status_bg  # --darkened-bg in dark mode
    page.screenshot(path=ARTIFACTS / "dashboard-dark.png")

    page.goto("/admin/django_pytheus/metric/?q=task_duration")
    histogram = page.locator('[data-pytheus-family="task_duration_seconds"]')
    expect(histogram.locator(".pytheus-chart-large .pytheus-bar")).to_have_count(12)
    tiles = histogram.locator(".pytheus-tiles dt").all_inner_texts()
    assert [t.lower() for t in tiles] == ["count", "sum", "mean", "p50", "p90", "p99"]
    expect(histogram.locator('[data-pytheus-cell="count"]')).to_have_text("399")
    histogram.screenshot(path=ARTIFACTS / "histogram-dark.png")

    page.click('[data-pytheus-family="task_duration_seconds"] h2 a')
    page.wait_for_url("**/family/task_duration_seconds/")
    expect(page.locator("#content h1")).to_have_text("task_duration_seconds")
    expect(page.locator(".breadcrumbs a").last).to_have_text("Metrics")
    page.screenshot(path=ARTIFACTS / "family-dark.png")
    assert page.outside == []  # type: ignore[attr-defined]
