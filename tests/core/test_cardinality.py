"""The cardinality guard: a label with unbounded values cannot grow a metric without end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from pytheus.exceptions import MetricDefinitionError
from pytheus.limits import default_max_series
from pytheus.metrics import Counter, Gauge, Histogram, set_default_max_series
from pytheus.registry import CollectorRegistry
from tests.core.helpers import Parsed

Scrape = Callable[..., tuple[Parsed, Parsed]]


@pytest.fixture
def default_limit() -> Iterator[None]:
    saved = default_max_series()
    try:
        yield
    finally:
        set_default_max_series(saved)


def test_series_past_the_limit_are_dropped_and_counted(
    exposition: Scrape, caplog: pytest.LogCaptureFixture
) -> None:
    c = Counter("hits", "Help.", required_labels=["user"], max_series=3)
    with caplog.at_level(logging.WARNING, logger="pytheus.metrics"):
        for i in range(10):
            c.labels(user=str(i)).inc()
        c.labels(user="0").inc()  # an existing series keeps recording
    text, om = exposition()
    assert {k: v for k, v in text.samples.items() if k[0] == "hits_total"} == {
        ("hits_total", frozenset({("user", "0")})): 2.0,
        ("hits_total", frozenset({("user", "1")})): 1.0,
        ("hits_total", frozenset({("user", "2")})): 1.0,
    }
    assert text.value("pytheus_dropped_series_total", {"metric": "hits"}) == 7
    assert om.value("pytheus_dropped_series_total", {"metric": "hits"}) == 7
    warnings = [r for r in caplog.records if "hits" in r.getMessage()]
    assert len(warnings) == 1, "one warning per metric, not one per dropped series"
    assert "limit of 3 series" in warnings[0].getMessage()


def test_dropped_label_sets_are_not_cached(registry: CollectorRegistry) -> None:
    g = Gauge("g", "Help.", required_labels=["k"], max_series=1)
    g.labels(k="a").set(1)
    for i in range(50):
        g.labels(k=f"x{i}").set(i)
    assert len(g._cache) == 1  # only the stored series
    assert registry.get_sample_value("pytheus_dropped_series_total", {"metric": "g"}) == 50


def test_default_limit_applies_and_can_be_changed(
    registry: CollectorRegistry, default_limit: None
) -> None:
    set_default_max_series(2)
    h = Histogram("h", "Help.", required_labels=["k"], buckets=[1])
    for k in "abcd":
        h.labels(k=k).observe(0.5)
    assert {c.labelset["k"] for c in h.children()} == {"a", "b"}
    set_default_max_series(None)
    for k in "cd":
        h.labels(k=k).observe(0.5)
    assert len(h.children()) == 4
    explicit = Counter("c", "Help.", required_labels=["k"], max_series=1)
    set_default_max_series(100)
    explicit.labels(k="a").inc()
    explicit.labels(k="b").inc()
    assert len(explicit.children()) == 1  # the metric's own limit wins


def test_clear_makes_room_again(registry: CollectorRegistry) -> None:
    c = Counter("c", "Help.", required_labels=["k"], max_series=1)
    c.labels(k="a").inc()
    c.labels(k="b").inc()
    c.clear()
    c.labels(k="b").inc()
    assert registry.get_sample_value("c_total", {"k": "b"}) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_limits_are_refused(bad: object, default_limit: None) -> None:
    with pytest.raises(MetricDefinitionError, match="max_series"):
        Counter("c", "Help.", required_labels=["k"], max_series=bad)  # type: ignore[arg-type]
    with pytest.raises(MetricDefinitionError, match="max_series"):
        set_default_max_series(bad)  # type: ignore[arg-type]
