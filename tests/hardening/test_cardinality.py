"""The cardinality guard through Django: ``PYTHEUS["MAX_SERIES"]`` caps a label explosion
in a view (a business metric labelled by user id), counts what it drops and warns once,
while the requests and their own metrics go on as before, in memory and on Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from django_pytheus.conf import parse_settings
from pytheus.backends.redis_keys import KeyLayout
from pytheus.limits import default_max_series
from pytheus.metrics import Counter
from tests.django_app.conftest import (  # noqa: F401  (fixtures)
    fresh_metrics,
    pytheus_settings,
    redis_backend_settings,
    scrape,
    value,
)
from tests.hardening import views
from tests.servers import RedisServer

LIMIT = 50
USERS = 200


@pytest.fixture(autouse=True)
def urls(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.hardening.urls"
    try:
        yield
    finally:
        views.USER_VISITS = None


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_label_explosion_in_a_view_is_capped_counted_and_warned_once(
    backend: str,
    pytheus_settings: Callable[..., None],  # noqa: F811
    redis_backend_settings: Callable[..., str],  # noqa: F811
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend == "redis":
        prefix = redis_backend_settings(MAX_SERIES=LIMIT)
    else:
        pytheus_settings(MAX_SERIES=LIMIT)
    views.USER_VISITS = Counter("shop_user_visits", "Visits per user.", ["user"])
    client = Client()
    with caplog.at_level(logging.WARNING, logger="pytheus.metrics"):
        for round_ in range(2):  # the second round: the same users again
            for user in range(USERS):
                assert client.get(f"/users/{user}/").status_code == 200, (round_, user)
    parsed = scrape()
    visits = {
        dict(labels)["user"]: v
        for (name, labels), v in parsed.samples.items()
        if name == "shop_user_visits_total"
    }
    assert visits == {str(u): 2.0 for u in range(LIMIT)}
    dropped = 2 * USERS - 2 * LIMIT
    assert value(parsed, "pytheus_dropped_series_total", metric="shop_user_visits") == dropped
    # The requests themselves, and their metrics, are untouched.
    route = "/users/<int:user_id>/"
    assert (
        value(parsed, "django_http_requests_total", method="GET", view=route, status="200")
        == 2 * USERS
    )
    warnings = [r for r in caplog.records if "shop_user_visits" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"limit of {LIMIT} series" in warnings[0].getMessage()
    if backend == "redis":
        # Redis holds the 50 series and nothing of the dropped ones.
        client_ = redis.Redis(port=redis_server.port, decode_responses=True)
        try:
            fields = client_.hkeys(KeyLayout(prefix).family("shop_user_visits"))
            assert len([f for f in fields if f.startswith("[")]) == LIMIT
        finally:
            client_.close()


def test_max_series_applies_to_the_apps_own_metrics_too(
    pytheus_settings: Callable[..., None],  # noqa: F811
) -> None:
    """Statuses are bounded (100-599), so a view that answers many different ones does not
    explode the request counter; with a tiny limit, though, even those are capped."""
    pytheus_settings(MAX_SERIES=3)
    client = Client()
    for user in range(5):
        client.get(f"/users/{user}/")
        client.get("/hello/")
        client.get("/nowhere/")  # 404, <unmatched>
        client.post("/hello/")
    parsed = scrape()
    series = [k for k in parsed.samples if k[0] == "django_http_requests_total"]
    assert len(series) == 3
    # Four (method, view, status) combinations, one too many. The middleware looks each
    # combination up once and keeps what it got, so here the drop counts once per label
    # set (a view calling labels() each time, as above, counts each use).
    assert value(parsed, "pytheus_dropped_series_total", metric="django_http_requests") == 1


def test_max_series_default_and_none(pytheus_settings: Callable[..., None]) -> None:  # noqa: F811
    assert default_max_series() == 10_000  # not set: the core's default
    pytheus_settings(MAX_SERIES=None)
    assert default_max_series() is None
    pytheus_settings(MAX_SERIES=7)
    assert default_max_series() == 7


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", [10]])
def test_max_series_must_be_a_whole_number_or_none(bad: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"PYTHEUS\['MAX_SERIES'\] must be a whole"):
        parse_settings({"MAX_SERIES": bad})
