"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test`` through
``scripts/install-system-deps.sh``); ``playwright install`` is never run. A missing
browser fails the tests, never skips them. Screenshots go to ``test-artifacts/admin/``
(ignored by git) for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "DEADLINE_MS",
    "chromium",
    "log_in",
    "number",
    "open_page",
]

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
# Generous for a loaded CI machine; each wait returns as soon as its condition holds.
DEADLINE_MS = 30_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the length of the block."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing. Run `make test`, which installs Debian's chromium "
            "(scripts/install-system-deps.sh).",
            pytrace=False,
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser,
    base_url: str,
    *,
    dark: bool = False,
    width: int = 1280,
    height: int = 900,
    mobile: bool = False,
) -> Page:
    """A page of a new browser context; it records dialogs and any request that
    leaves ``base_url`` (no CDN, fonts or scripts from elsewhere)."""
    context = browser.new_context(
        base_url=base_url,
        viewport={"width": width, "height": height},
        color_scheme="dark" if dark else "light",
        is_mobile=mobile,
        has_touch=mobile,
        device_scale_factor=2 if mobile else 1,
    )
    context.set_default_timeout(DEADLINE_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((base_url, "data:")) else outside.append(r.url),
    )
    page.outside = outside  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def log_in(page: Page, credentials: tuple[str, str], path: str) -> None:
    page.goto(f"/admin/login/?next={path}")
    page.fill("#id_username", credentials[0])
    page.fill("#id_password", credentials[1])
    page.click("input[type=submit]")
    page.wait_for_url(f"**{path}")


def number(text: str) -> float:
    """The number in a cell's text: ``"1,018"`` -> 1018.0, ``"19.8/s"`` -> 19.8."""
    match = re.search(r"-?[\d,]*\.?\d+", text)
    assert match, f"no number in {text!r}"
    return float(match.group(0).replace(",", ""))
