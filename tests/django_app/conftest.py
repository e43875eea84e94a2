"""Fixtures of the Django app's tests: fresh metrics per test, settings, scraping.

Every test gets an empty registry (no process collectors), the in-memory backend and
the app's metrics created anew in that registry, so values are exact; all of it is put
back afterwards. ``pytheus_settings(...)`` changes ``PYTHEUS`` and runs the app's
setup again, as ``ready()`` would with those settings.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from django_pytheus import startup
from pytheus.backends import MemoryBackend, load_backend
from pytheus.registry import CollectorRegistry
from tests.django_app.testapp import views
from tests.helpers import Parsed, installed_registry, parse_openmetrics, parse_text
from tests.servers import RedisServer

SettingsFactory = Callable[..., Any]


def restore_app() -> None:
    """Back to the test settings: memory backend, fresh metrics, instrumentation."""
    load_backend(MemoryBackend)
    startup.start()
    error = startup.setup_error()
    assert error is None, error


@pytest.fixture(autouse=True)
def fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorRegistry]:
    """An empty registry as REGISTRY, the in-memory backend, the app's metrics anew."""
    with installed_registry(monkeypatch) as fresh:
        restore_app()
        views.SEEN.clear()
        yield fresh
    restore_app()  # in the registry of before the test, as the app was


@pytest.fixture
def pytheus_settings() -> Iterator[SettingsFactory]:
    """``pytheus_settings(**PYTHEUS)``: override PYTHEUS for the rest of the test and
    set the app up again with it (raises as ``setup()`` does)."""
    overrides: list[override_settings] = []

    def apply(**values: Any) -> None:
        override = override_settings(PYTHEUS=values)
        override.enable()
        overrides.append(override)
        # A backend loaded here learns of every metric alive; those of earlier tests may
        # live on in reference cycles (a metric is its own root) until the garbage
        # collector runs, and one the backend refuses (a summary with quantiles, for
        # Redis) would fail this setup.
        gc.collect()
        startup.setup()

    try:
        yield apply
    finally:
        for override in reversed(overrides):
            override.disable()
        restore_app()


@pytest.fixture
def redis_backend_settings(
    redis_server: RedisServer, pytheus_settings: SettingsFactory
) -> Callable[..., str]:
    """Configure the Redis backend through PYTHEUS; returns this test's key prefix."""

    def apply(**extra: Any) -> str:
        prefix = f"dj{uuid.uuid4().hex[:12]}"
        config = {"url": redis_server.url, "prefix": prefix, "flush_interval": 0}
        config.update(extra.pop("BACKEND_CONFIG", {}))
        pytheus_settings(
            BACKEND="pytheus.backends.redis.MultiProcessRedisBackend",
            BACKEND_CONFIG=config,
            **extra,
        )
        return prefix

    return apply


def scrape(client: Client | None = None, **headers: str) -> Parsed:
    """GET /metrics (text format), check the answer and parse it."""
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return parse_text(response.content.decode())


def scrape_openmetrics(client: Client | None = None) -> Parsed:
    response = (client or Client()).get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200, response.content
    return parse_openmetrics(response.content.decode())


def value(parsed: Parsed, name: str, **labels: str) -> float:
    """One sample's value, failing with the samples of that name when it is missing."""
    try:
        return parsed.value(name, labels)
    except KeyError:
        same = {k: v for k, v in parsed.samples.items() if k[0] == name}
        raise AssertionError(f"no sample {name}{labels}; samples of that name: {same}") from None


def bucket_counts(parsed: Parsed, name: str, **labels: str) -> dict[str, float]:
    """The cumulative ``_bucket`` counts of one histogram series, by ``le``."""
    out = {}
    for (sample, labelset), v in parsed.samples.items():
        d = dict(labelset)
        if (
            sample == f"{name}_bucket"
            and len(d) == len(labels) + 1
            and all(d.get(k) == w for k, w in labels.items())
        ):
            out[d["le"]] = v
    return out


# --------------------------------------------------------------------------- admin


def pytest_configure(config: pytest.Config) -> None:
    # pytest-django's live_server binds "localhost" unless told otherwise, which may
    # resolve to ::1 or to another address; the browser tests talk to 127.0.0.1 only.
    if not config.getoption("liveserver", default=None):
        config.option.liveserver = "127.0.0.1"


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    """``make_user(staff=True, active=True, view_metric=False, superuser=False)``: a
    user with the password ``pw``, allowed to see the metrics dashboard or not."""
    from django.contrib.auth.models import Permission

    made = 0

    def make(
        *,
        staff: bool = True,
        active: bool = True,
        view_metric: bool = False,
        superuser: bool = False,
    ) -> Any:
        nonlocal made
        made += 1
        user = django_user_model.objects.create_user(
            username=f"user{made}",
            password="pw",
            is_staff=staff,
            is_active=active,
            is_superuser=superuser,
        )
        if view_metric:
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label="django_pytheus", codename="view_metric"
                )
            )
        return user

    return make
