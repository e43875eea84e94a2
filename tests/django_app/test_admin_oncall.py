"""The on-call questions, asked of the demo in a real browser (Playwright, Debian's
Chromium): which view is slow right now, which one makes N+1 queries, how many
requests per second, and what the page says when Redis stops answering.

Each test runs the demo project (``manage.py runserver``, its own settings and SQLite
file in the test's temporary directory, a free loopback port, stopped by its own pid)
with its traffic (``manage.py generate_traffic``, or the hardening tests' load
generator at a known rate), logs in as an admin made for the test, and drives the
dashboard as a person would: mouse, keyboard, a phone's 390 px. Screenshots of each
state go to ``test-artifacts/admin/`` (ignored by git) for people to look at.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.django_app.browser import ARTIFACTS, DEADLINE_MS, chromium, log_in, number, open_page
from tests.e2e.helpers import answers, demo_env, http_get, manage, running, wait_until
from tests.hardening.demo import Load
from tests.servers import LOOPBACK, RedisServer, free_port

pytestmark = pytest.mark.slow

DASHBOARD = "/admin/django_pytheus/metric/"
DURATION = "django_http_request_duration_seconds"
REQUESTS = "django_http_requests"


@dataclass
class DemoSite:
    port: int
    credentials: tuple[str, str]
    env: dict[str, str]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def traffic(self, requests: int, *, background: bool = False) -> subprocess.Popen[str] | None:
        """The demo's own mix of requests (``generate_traffic``), over HTTP."""
        args = [
            sys.executable, "manage.py", "generate_traffic", "--url", self.url + "/",
            "--requests", str(requests), "--timeout", "120",
        ]  # fmt: skip
        if background:
            return subprocess.Popen(
                args,
                cwd=Path(__file__).resolve().parents[2],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        manage(self.env, *args[2:], timeout=180)
        return None


@contextmanager
def demo_site(directory: Path, **env: str) -> Iterator[DemoSite]:
    """The demo under runserver, migrated and seeded, with an admin of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    demo = demo_env(directory / "demo.sqlite3", **env)
    manage(demo, "migrate", "--verbosity", "0")
    manage(demo, "seed_demo", "--verbosity", "0")
    password = secrets.token_urlsafe(12)
    manage(
        demo,
        "shell",
        "--no-imports",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_superuser('oncall', '', {password!r})",
    )
    port = free_port()
    log = directory / "runserver.log"
    args = [sys.executable, "manage.py", "runserver", "--noreload", f"{LOOPBACK}:{port}"]
    with running(args, demo, log):
        wait_until(lambda: answers(port, "/fast/"), 60, "the demo did not answer", (log,))
        yield DemoSite(port, ("oncall", password), demo, log)


def burst(site: DemoSite, path: str, count: int, threads: int = 4) -> None:
    """``count`` GETs of ``path``, ``threads`` at a time; each must answer 200."""
    statuses: list[int] = []

    def worker(n: int) -> None:
        for _ in range(n):
            statuses.append(http_get(site.port, path, timeout=30)[0])

    workers = [
        threading.Thread(target=worker, args=(count // threads + (i < count % threads),))
        for i in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert statuses == [200] * count, statuses


def refreshed(page: Page) -> Callable[[], None]:
    """A function that waits until the page shows values read after this call."""
    before = page.locator("#pytheus-updated").get_attribute("datetime")

    def wait() -> None:
        expect(page.locator("#pytheus-updated")).not_to_have_attribute(
            "datetime", before or "", timeout=DEADLINE_MS
        )

    return wait


def top(page: Page, name: str) -> list[str]:
    """The views (or types) of one of the overview's lists, in order."""
    return page.locator(f'[data-pytheus-list="{name}"] li a').all_inner_texts()


def no_page_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner, f"the page is {width} px wide in a {inner} px viewport"


# --------------------------------------------------------------------------- tests


def test_the_overview_names_the_slow_and_the_n_plus_1_view_within_one_refresh(
    tmp_path: Path,
) -> None:
    with demo_site(tmp_path / "demo") as site, chromium() as browser:
        site.traffic(60)  # what happened before: the history since start
        page = open_page(browser, site.url)
        log_in(page, site.credentials, DASHBOARD)
        page.uncheck("#pytheus-autorefresh")  # one refresh, by hand, below
        # Now: the demo's traffic goes on, while one view turns slow and the N+1 view
        # is hammered.
        background = site.traffic(80, background=True)
        assert background is not None
        burst(site, "/slow/?max=2", 8)  # they sleep up to 2 s
        _, errors = background.communicate(timeout=180)
        assert background.returncode == 0, errors
        # One at a time: slow by their queries, not by a busy machine's queue.
        burst(site, "/products/", 20, threads=1)
        done = refreshed(page)
        page.click("#pytheus-refresh")
        done()
        slow, queries = top(page, "slow"), top(page, "queries")
        assert slow[0] == "/slow/", slow
        assert queries[0] == "/products/", queries
        first_slow = page.locator('[data-pytheus-list="slow"] li').first
        # Its p99 is a bucket above a second (the burst slept up to 2 s), as a range.
        expect(first_slow.locator(".pytheus-top-value")).to_have_text("1\u20132.5 s")
        expect(first_slow.locator(".pytheus-top-value")).to_have_attribute(
            "title", re.compile(r"histogram_quantile\(\) says")
        )
        n_plus_1 = number(
            page.locator('[data-pytheus-list="queries"] li')
            .first.locator(".pytheus-top-value")
            .inner_text()
        )
        assert n_plus_1 >= 5, n_plus_1  # one query per product, and more
        # Over the window, not since start; the headline figures too.
        expect(page.locator("[data-pytheus-overview-window]")).to_have_text(
            re.compile(r"^last \d+ s$")
        )
        expect(page.locator('[data-pytheus-figure="requests"] [data-pytheus-text]')).to_have_text(
            re.compile(r"/s$")
        )
        expect(page.locator('[data-pytheus-figure="errors"]')).to_have_class(
            re.compile("pytheus-bad")  # the demo's failing view answered 500s
        )
        exceptions = top(page, "exceptions")
        assert exceptions[0] == "DemoError", exceptions
        # Each line links to its family, searched for that view and sorted by p99.
        with page.expect_navigation():
            page.locator('[data-pytheus-list="slow"] li a').first.click()
        assert f"/family/{DURATION}/" in page.url
        first_row = page.locator("[data-pytheus-table] tbody tr").first
        expect(first_row.locator("td").nth(1)).to_have_text("/slow/")
        expect(page.locator('th[aria-sort="descending"]')).to_have_text("p99")
        page.go_back()
        # Live, for a few refreshes: the sparklines fill in (the README's picture).
        page.check("#pytheus-autorefresh")
        page.select_option("#pytheus-interval", "2")
        more = site.traffic(60, background=True)
        assert more is not None
        spark = page.locator('[data-pytheus-figure="requests"] [data-pytheus-spark]')
        page.wait_for_function(
            """() => (document.querySelector('[data-pytheus-figure="requests"] polyline')
                .getAttribute("points") || "").split(" ").length >= 4""",
            timeout=60_000,
        )
        expect(spark).to_be_visible()
        expect(spark).to_have_attribute("aria-label", re.compile(r"^Requests per second over"))
        # A sparkline that was not there when the page was made appears too.
        latency = page.locator('[data-pytheus-figure="latency"] [data-pytheus-spark]')
        expect(latency).to_be_visible(timeout=60_000)
        expect(latency).to_have_attribute("aria-label", re.compile(r"^p99 latency"))
        _, errors = more.communicate(timeout=180)
        assert more.returncode == 0, errors
        page.evaluate("window.scrollTo(0, 0)")
        page.click("#toggle-nav-sidebar")
        page.screenshot(path=ARTIFACTS / "oncall-overview.png")
        page.screenshot(path=ARTIFACTS / "oncall-full.png", full_page=True)
        assert page.outside == []  # type: ignore[attr-defined]
        assert page.errors == []  # type: ignore[attr-defined]


def test_rates_match_the_traffic_sent(tmp_path: Path) -> None:
    rate = 20.0
    with demo_site(tmp_path / "demo") as site, chromium() as browser:
        load = Load(site.port, tmp_path / "load.json", rate=rate, threads=4, duration=90)
        try:
            time.sleep(1)  # the load is steady before the first reading
            page = open_page(browser, site.url)
            family = f"{DASHBOARD}family/{REQUESTS}/?q=fast"
            log_in(page, site.credentials, family)  # the first reading of this process
            page.select_option("#pytheus-interval", "2")
            window = page.locator(f'[data-pytheus-family="{REQUESTS}"] [data-pytheus-window]')
            expect(window).to_have_text(re.compile(r"^last (1[5-9]|[2-9]\d) s$"), timeout=60_000)
            # The rate and the window it is over, as one poll placed them (together).
            values = page.evaluate(
                """() => [
                    document.querySelector(
                        'tr[data-pytheus-series*="/fast/"] [data-pytheus-cell="rate"]'
                    ).textContent,
                    document.querySelector("[data-pytheus-window]").dataset.pytheusWindowBounds,
                ]"""
            )
        finally:
            requests = load.stop()
        shown = number(values[0])
        start, end = (float(t) for t in values[1].split())
        # What the load generator got answered in that window: its times are on the
        # monotonic clock, the page's are Unix times.
        offset = time.time() - time.monotonic()
        answered = [r for r in requests if r.status == 200 and start <= r.end + offset <= end]
        span = end - start
        sent = len(answered) / span
        # Compared with what was answered, not with the rate asked for: a busy machine
        # answers fewer (the load generator then says so, and so must the page).
        assert sent >= rate / 4, f"only {sent:.1f} requests/s answered"
        assert abs(shown - sent) <= 0.15 * sent, (shown, sent, span)
        # The same rate, as the overview's figure (nothing else is requested meanwhile).
        page.goto(DASHBOARD)
        figure = number(
            page.locator('[data-pytheus-figure="requests"] [data-pytheus-text]').inner_text()
        )
        assert abs(figure - sent) <= 0.25 * sent, (figure, sent)
        page.screenshot(path=ARTIFACTS / "rates.png")


def test_keyboard_sorting_and_a_phone(tmp_path: Path) -> None:
    with demo_site(tmp_path / "demo") as site, chromium() as browser:
        site.traffic(60)
        page = open_page(browser, site.url)
        log_in(page, site.credentials, f"{DASHBOARD}family/{DURATION}/")
        header = page.locator('th:has(a[data-pytheus-sort="total"])')
        expect(page.locator('th[aria-sort="descending"]')).to_have_text("p99")  # worst first
        expect(header).not_to_have_attribute("aria-sort", re.compile("."))
        # The keyboard: focus the Count header, Enter sorts by it, highest first...
        header.locator("a").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        header = page.locator('th:has(a[data-pytheus-sort="total"])')
        expect(header).to_have_attribute("aria-sort", "descending")
        counts = [number(t) for t in page.locator('[data-pytheus-cell="total"]').all_inner_texts()]
        assert counts == sorted(counts, reverse=True), counts
        assert len(counts) > 3, counts
        # ...the focus is back on that header, and Enter again turns the order around.
        page.wait_for_function("document.activeElement.dataset.pytheusSort === 'total'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect(page.locator('th:has(a[data-pytheus-sort="total"])')).to_have_attribute(
            "aria-sort", "ascending"
        )
        counts = [number(t) for t in page.locator('[data-pytheus-cell="total"]').all_inner_texts()]
        assert counts == sorted(counts), counts
        # Tab reaches the table's scroll region, which says what it holds.
        region = page.locator("[data-pytheus-table]")
        expect(region).to_have_attribute("role", "region")
        expect(region).to_have_attribute("aria-label", f"Series of {DURATION}")
        page.screenshot(path=ARTIFACTS / "sorted-by-count.png")
        page.context.close()

        phone = open_page(browser, site.url, width=390, height=844, mobile=True)
        log_in(phone, site.credentials, DASHBOARD)
        no_page_scroll(phone)
        phone.screenshot(path=ARTIFACTS / "phone-overview.png")
        phone.goto(f"{DASHBOARD}family/{DURATION}/")
        no_page_scroll(phone)
        # The columns that answer the question fit: labels, rate and p99.
        for column in ("rate", "p99"):
            box = phone.locator(f'th:has(a[data-pytheus-sort="{column}"])').bounding_box()
            assert box is not None, column
            assert box["x"] + box["width"] <= 390, (column, box)
        expect(phone.locator('th:has(a[data-pytheus-sort="mean"])')).to_be_hidden()
        phone.screenshot(path=ARTIFACTS / "phone-family.png", full_page=True)
        # The rest on demand, in the table's own scroll region, by keyboard too.
        toggle = phone.locator(".pytheus-columns-toggle")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(phone.locator('th:has(a[data-pytheus-sort="mean"])')).to_be_visible()
        region = phone.locator("[data-pytheus-table]")
        assert region.evaluate("r => r.scrollWidth > r.clientWidth")
        no_page_scroll(phone)
        region.focus()
        phone.keyboard.press("ArrowRight")
        phone.wait_for_function(
            "document.querySelector('[data-pytheus-table]').scrollLeft > 0", timeout=DEADLINE_MS
        )
        no_page_scroll(phone)
        phone.screenshot(path=ARTIFACTS / "phone-all-columns.png")
        assert phone.errors == []  # type: ignore[attr-defined]


@pytest.mark.redis
@pytest.mark.faults
def test_redis_paused_the_page_marks_the_values_stale(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = redis_server_factory()
    env = {"PYTHEUS_REDIS_URL": server.url, "PYTHEUS_REDIS_PREFIX": f"oc{uuid.uuid4().hex[:8]}"}
    with demo_site(tmp_path / "demo", **env) as site, chromium() as browser:
        site.traffic(40)
        page = open_page(browser, site.url)
        log_in(page, site.credentials, DASHBOARD)
        page.select_option("#pytheus-interval", "2")
        requests = page.locator('[data-pytheus-figure="requests"] [data-pytheus-text]')
        expect(page.locator("[data-pytheus-stale-badge]")).to_be_hidden()
        figure_stale = page.locator('[data-pytheus-figure="requests"] [data-pytheus-figure-stale]')
        expect(figure_stale).to_be_hidden()
        done = refreshed(page)
        done()
        shown = requests.inner_text()
        assert shown != "—"
        server.pause()  # accepts connections, answers nothing: the worst case
        try:
            badge = page.locator("[data-pytheus-stale-badge]")
            expect(badge).to_be_visible(timeout=DEADLINE_MS)
            error = page.locator("[data-pytheus-error]")
            expect(error).to_be_visible()
            expect(error).to_contain_text("Reading the metrics has failed since")
            expect(error).to_contain_text("The values below were read at")
            # The last values stay on screen, marked, their age counting up.
            expect(requests).to_have_text(shown)
            expect(page.locator("[data-pytheus-age]")).to_have_text(
                re.compile(r"\((\d+) s ago\)"), timeout=DEADLINE_MS
            )
            expect(page.locator('[data-pytheus-status="health"]').first).to_have_text("Unreachable")
            page.screenshot(path=ARTIFACTS / "stale-redis-paused.png")
            # A reload meanwhile: this process's last values, still marked stale.
            page.reload()
            expect(page.locator("#content-main")).to_have_class(re.compile("pytheus-is-stale"))
            expect(requests).not_to_have_text("—")
            # The Requests tile says so too (its values are the last read, or this
            # process's own), as the families do.
            expect(figure_stale).to_be_visible()
            expect(figure_stale).to_have_text(re.compile("^(stale|this process only)$"))
            expect(page.locator("[data-pytheus-error]")).to_contain_text("were read at")
            page.screenshot(path=ARTIFACTS / "stale-reload.png")
        finally:
            server.resume()
        expect(page.locator("[data-pytheus-stale-badge]")).to_be_hidden(timeout=DEADLINE_MS)
        expect(page.locator("[data-pytheus-error]")).to_be_hidden()
        expect(page.locator('[data-pytheus-status="health"]').first).to_have_text("Reachable")
        expect(figure_stale).to_be_hidden(timeout=DEADLINE_MS)
        page.screenshot(path=ARTIFACTS / "recovered.png")
        assert page.errors == []  # type: ignore[attr-defined]
        assert json.loads(json.dumps(page.outside)) == []  # type: ignore[attr-defined]
