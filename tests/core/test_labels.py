"""Labels: how series are named, looked up, cached, completed and forgotten."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytheus.exceptions import LabelError
from pytheus.metrics import Counter, CounterChild, Gauge, Histogram, HistogramChild, Summary
from pytheus.registry import CollectorRegistry
from tests.core.helpers import Parsed

Scrape = Callable[..., tuple[Parsed, Parsed]]


def test_labels_as_dict_and_keywords_reach_the_same_series(registry: CollectorRegistry) -> None:
    c = Counter("requests", "Help.", required_labels=["method", "code"])
    c.labels({"method": "GET", "code": "200"}).inc()
    c.labels(method="GET", code="200").inc()
    c.labels({"method": "GET"}, code="200").inc()
    c.labels(code="200", method="GET").inc()  # another order, the same series
    assert len(c.children()) == 1
    assert registry.get_sample_value("requests_total", {"method": "GET", "code": "200"}) == 4


def test_child_is_cached(registry: CollectorRegistry) -> None:
    c = Counter("requests", "Help.", required_labels=["method", "code"])
    child = c.labels(method="GET", code="200")
    assert isinstance(child, CounterChild)
    assert c.labels(method="GET", code="200") is child
    assert c.labels({"method": "GET", "code": "200"}) is child
    assert c.labels(code="200", method="GET") is child
    assert c.labels(method="GET").labels(code="200") is child
    assert c.labels(method="GET", code=200) is child  # str() of the value


def test_order_of_labels_does_not_matter_in_the_exposition(exposition: Scrape) -> None:
    g = Gauge("g", "Help.", required_labels=["a", "b"])
    g.labels(a="1", b="2").inc()
    g.labels(b="2", a="1").inc()
    text, om = exposition()
    assert text.samples == om.samples == {("g", frozenset({("a", "1"), ("b", "2")})): 2.0}
    assert 'g{a="1",b="2"} 2.0\n' in text.text  # in definition order


def test_partial_labels_accumulate(registry: CollectorRegistry) -> None:
    h = Histogram("h", "Help.", required_labels=["a", "b", "c"], buckets=[1])
    first = h.labels(a="1")
    assert isinstance(first, Histogram)  # a view, not a child
    assert not isinstance(first, HistogramChild)
    second = first.labels(b="2")
    child = second.labels({"c": "3"})
    child.observe(0.5)
    assert child is h.labels(a="1", b="2", c="3")
    assert registry.get_sample_value("h_count", {"a": "1", "b": "2", "c": "3"}) == 1.0
    # Partial views can be kept and reused for many series.
    for c in "xyz":
        second.labels(c=c).observe(2)
    assert len(h.children()) == 4
    assert registry.get_sample_value("h_bucket", {"a": "1", "b": "2", "c": "x", "le": "1.0"}) == 0


def test_observing_with_missing_labels_names_them() -> None:
    s = Summary("s", "Help.", required_labels=["a", "b", "c"])
    with pytest.raises(LabelError, match=r"\['a', 'b', 'c'\]"):
        s.observe(1)
    with pytest.raises(LabelError, match=r"\['a', 'c'\]"):
        s.labels(b="x").observe(1)
    with pytest.raises(LabelError, match=r"\['c'\]"):
        s.labels(b="x").labels(a="y").time()
    assert s.children() == []


def test_unknown_label_is_named() -> None:
    c = Counter("c", "Help.", required_labels=["method"])
    with pytest.raises(LabelError, match="no label 'methd'") as excinfo:
        c.labels(methd="GET")
    assert "'method'" in str(excinfo.value)  # and the labels it has
    with pytest.raises(LabelError, match="'oops'"):
        c.labels(method="GET", oops="1")
    unlabelled = Counter("d", "Help.")
    with pytest.raises(LabelError, match="without labels"):
        unlabelled.labels(x="1")


def test_default_labels(registry: CollectorRegistry, exposition: Scrape) -> None:
    c = Counter(
        "c", "Help.", required_labels=["service", "code"], default_labels={"service": "api"}
    )
    c.labels(code="200").inc()
    c.labels(code="500", service="worker").inc(2)  # a default can be overridden
    text, om = exposition()
    for parsed in (text, om):
        assert parsed.value("c_total", {"service": "api", "code": "200"}) == 1.0
        assert parsed.value("c_total", {"service": "worker", "code": "500"}) == 2.0


def test_all_labels_defaulted_records_without_labels_call(registry: CollectorRegistry) -> None:
    g = Gauge("g", "Help.", required_labels=["region"], default_labels={"region": "eu"})
    g.inc(3)
    assert registry.get_sample_value("g", {"region": "eu"}) == 3.0
    g.labels(region="us").set(1)
    assert registry.get_sample_value("g", {"region": "us"}) == 1.0


def test_non_str_label_values(exposition: Scrape) -> None:
    c = Counter("responses", "Help.", required_labels=["code", "cached", "ratio"])
    c.labels(code=200, cached=True, ratio=0.5).inc()
    c.labels({"code": 200, "cached": True, "ratio": 0.5}).inc()
    c.labels(code="200", cached="True", ratio="0.5").inc()
    d = Counter("d", "Help.", required_labels=["code"], default_labels={"code": 404})
    d.inc()
    text, om = exposition()
    for parsed in (text, om):
        labels = {"code": "200", "cached": "True", "ratio": "0.5"}
        assert parsed.value("responses_total", labels) == 3
        assert parsed.value("d_total", {"code": "404"}) == 1


def test_remove_and_clear(registry: CollectorRegistry) -> None:
    c = Counter("c", "Help.", required_labels=["a", "b"])
    c.labels(a="1", b="1").inc()
    c.labels(a="1", b="2").inc()
    c.labels(a="2", b="1").inc()
    c.remove(a="1", b="1")
    assert registry.get_sample_value("c_total", {"a": "1", "b": "1"}) is None
    c.labels(a="1").remove(b="2")  # through a partial view
    assert registry.get_sample_value("c_total", {"a": "1", "b": "2"}) is None
    assert registry.get_sample_value("c_total", {"a": "2", "b": "1"}) == 1.0
    with pytest.raises(LabelError, match="every label"):
        c.remove(a="2")
    # A removed series starts again from zero when used again.
    c.labels(a="1", b="1").inc(5)
    assert registry.get_sample_value("c_total", {"a": "1", "b": "1"}) == 5.0
    c.clear()
    assert c.children() == []
    (family,) = registry.collect()
    assert family.samples == []


def test_partial_view_follows_remove_and_clear(registry: CollectorRegistry) -> None:
    """A partial view kept by the caller must not record into a forgotten series."""
    c = Counter("c", "Help.", required_labels=["a", "b"])
    view = c.labels(a="x")
    view.labels(b="y").inc()
    c.remove(a="x", b="y")
    view.labels(b="y").inc(5)
    assert registry.get_sample_value("c_total", {"a": "x", "b": "y"}) == 5.0
    c.clear()
    view.labels(b="y").inc(7)
    assert registry.get_sample_value("c_total", {"a": "x", "b": "y"}) == 7.0


def test_metric_with_all_default_labels_keeps_working_after_clear(
    registry: CollectorRegistry,
) -> None:
    c = Counter("c", "Help.", required_labels=["env"], default_labels={"env": "prod"})
    c.inc()
    c.clear()
    c.inc(2)
    assert registry.get_sample_value("c_total", {"env": "prod"}) == 2.0
    c.remove(env="prod")
    c.inc(3)
    assert registry.get_sample_value("c_total", {"env": "prod"}) == 3.0
    unlabelled = Gauge("g", "Help.")
    unlabelled.set(4)
    unlabelled.clear()
    unlabelled.inc()
    assert registry.get_sample_value("g") == 1.0


def test_instruments_made_before_clear_keep_recording(registry: CollectorRegistry) -> None:
    """Decorators are applied at import time; clear() later must not orphan them."""
    g = Gauge("in_progress", "Help.")
    errors = Counter("errors", "Help.")
    h = Histogram("duration_seconds", "Help.")

    @errors.count_exceptions()
    @h.time()
    @g.track_inprogress()
    def work() -> None:
        assert registry.get_sample_value("in_progress") == 1.0
        raise RuntimeError("counted")

    for metric in (g, errors, h):
        metric.clear()
    with pytest.raises(RuntimeError, match="counted"):
        work()
    assert registry.get_sample_value("errors_total") == 1.0
    assert registry.get_sample_value("duration_seconds_count") == 1.0
    assert registry.get_sample_value("in_progress") == 0.0


def test_children_and_labelset(registry: CollectorRegistry) -> None:
    c = Counter("c", "Help.", required_labels=["a", "b"])
    child = c.labels(b="2", a="1")
    assert dict(child.labelset) == {"a": "1", "b": "2"}
    assert list(child.labelset) == ["a", "b"]
    assert child.labelset.text == 'a="1",b="2"'
    assert c.children() == [child]
