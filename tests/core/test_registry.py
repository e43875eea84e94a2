"""Registries: clashes, unregistering, prefixes, the REGISTRY proxy, custom collectors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from pytheus.exceptions import DuplicateMetricError, MetricDefinitionError
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import REGISTRY, CollectorRegistry, get_registry, set_registry
from pytheus.samples import MetricFamily
from tests.core.helpers import Parsed

Scrape = Callable[..., tuple[Parsed, Parsed]]


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        (lambda: Counter("x", "H."), lambda: Gauge("x", "H."), "'x'"),
        (lambda: Counter("x", "H."), lambda: Counter("x_total", "H."), "'x'"),
        (lambda: Counter("x", "H."), lambda: Gauge("x_total", "H."), "'x_total'"),
        (lambda: Gauge("x_total", "H."), lambda: Counter("x", "H."), "'x_total'"),
        (lambda: Histogram("h", "H."), lambda: Gauge("h_bucket", "H."), "'h_bucket'"),
        (lambda: Gauge("h_bucket", "H."), lambda: Histogram("h", "H."), "'h_bucket'"),
        (lambda: Histogram("h", "H."), lambda: Summary("h", "H."), "'h'"),
        (lambda: Summary("s", "H."), lambda: Gauge("s_count", "H."), "'s_count'"),
        (lambda: Summary("s", "H."), lambda: Counter("s_sum", "H."), "'s_sum'"),
        (lambda: Info("build", "H."), lambda: Gauge("build_info", "H."), "'build_info'"),
        (lambda: Enum("e", "H.", states=["a"]), lambda: Gauge("e", "H."), "'e'"),
        (lambda: Counter("c", "H."), lambda: Gauge("c_created", "H."), "'c_created'"),
    ],
    ids=[
        "counter-gauge",
        "counter-counter_total",
        "counter-gauge_total",
        "gauge_total-counter",
        "histogram-gauge_bucket",
        "gauge_bucket-histogram",
        "histogram-summary",
        "summary-gauge_count",
        "summary-counter_sum",
        "info-gauge_info",
        "enum-gauge",
        "counter-gauge_created",
    ],
)
def test_clashing_names_raise_at_definition(
    first: Callable[[], object],
    second: Callable[[], object],
    clash: str,
    registry: CollectorRegistry,
) -> None:
    kept = first()
    with pytest.raises(DuplicateMetricError, match=clash) as excinfo:
        second()
    assert "already produced by" in str(excinfo.value)
    assert registry.collectors() == [kept]


def test_same_name_in_different_registries() -> None:
    other = CollectorRegistry()
    Counter("x", "H.")
    Counter("x", "H.", registry=other)


def test_unregister_frees_the_name(registry: CollectorRegistry) -> None:
    c = Counter("x", "H.")
    c.inc()
    registry.unregister(c)
    assert registry.get_sample_value("x_total") is None
    again = Gauge("x_total", "H.")
    again.set(5)
    assert registry.get_sample_value("x_total") == 5.0
    with pytest.raises(KeyError, match="not registered"):
        registry.unregister(c)
    with pytest.raises(DuplicateMetricError, match="already registered"):
        registry.register(again)


def test_prefix_registry(exposition: Scrape) -> None:
    app = CollectorRegistry(prefix="myapp")
    assert app.prefix == "myapp"
    c = Counter("hits_total", "H.", registry=app)
    h = Histogram("latency_seconds", "H.", registry=app, buckets=[1])
    c.inc()
    h.observe(2)
    assert c.name == "myapp_hits"
    text, om = exposition(app)
    assert text.names() == {
        "myapp_hits_total",
        "myapp_latency_seconds_bucket",
        "myapp_latency_seconds_sum",
        "myapp_latency_seconds_count",
    }
    assert om.value("myapp_hits_total") == 1.0
    with pytest.raises(MetricDefinitionError, match="'my-app'"):
        CollectorRegistry(prefix="my-app")


def test_set_registry_points_the_proxy(registry: CollectorRegistry) -> None:
    assert get_registry() is registry
    other = CollectorRegistry(prefix="other")
    set_registry(other)
    try:
        c = Counter("c", "H.")  # registers where REGISTRY points now
        c.inc()
        assert REGISTRY.prefix == "other"
        assert other.collectors() == [c]
        assert registry.collectors() == []
        assert REGISTRY.get_sample_value("other_c_total") == 1.0
        assert REGISTRY.collectors() == [c]
        assert get_registry() is other
    finally:
        set_registry(registry)
    assert REGISTRY.get_sample_value("other_c_total") is None


def test_get_sample_value(registry: CollectorRegistry) -> None:
    c = Counter("c", "H.", required_labels=["code"])
    c.labels(code=200).inc(3)
    assert registry.get_sample_value("c_total", {"code": "200"}) == 3.0
    assert registry.get_sample_value("c_total", {"code": 200}) == 3.0
    assert registry.get_sample_value("c_total", {"code": "500"}) is None
    assert registry.get_sample_value("c_total") is None
    assert registry.get_sample_value("nope") is None


class QueueCollector:
    """A custom collector with describe(): the registry checks names without collecting."""

    def __init__(self) -> None:
        self.collected = 0

    def describe(self) -> list[str]:
        return ["jobs_queued"]

    def collect(self) -> Iterator[MetricFamily]:
        self.collected += 1
        yield MetricFamily("jobs_queued", "gauge", "Jobs waiting.").add(7, {"queue": "mail"})


class CounterCollector:
    """A custom collector without describe(): its names come from one collect()."""

    def collect(self) -> Iterator[MetricFamily]:
        yield MetricFamily("events_total", "counter", "Events seen.").add(3)


def test_custom_collectors(registry: CollectorRegistry, exposition: Scrape) -> None:
    queue = QueueCollector()
    REGISTRY.register(queue)
    assert queue.collected == 0  # describe() was enough
    REGISTRY.register(CounterCollector())
    text, om = exposition()
    for parsed in (text, om):
        assert parsed.value("jobs_queued", {"queue": "mail"}) == 7.0
        assert parsed.value("events_total") == 3.0
    assert om.types == {"jobs_queued": "gauge", "events": "counter"}
    # Their names are taken, derived names included.
    with pytest.raises(DuplicateMetricError, match="'jobs_queued'"):
        Gauge("jobs_queued", "H.")
    with pytest.raises(DuplicateMetricError, match="'events"):
        Counter("events", "H.")
    with pytest.raises(DuplicateMetricError, match="'events_total'"):
        Gauge("events_total", "H.")


def test_not_a_collector_is_refused() -> None:
    with pytest.raises(MetricDefinitionError, match="collect"):
        REGISTRY.register(object())  # type: ignore[arg-type]


class BrokenCollector:
    def describe(self) -> list[str]:
        return ["broken_metric"]

    def collect(self) -> Iterator[MetricFamily]:
        raise RuntimeError("the database is gone")
        yield  # pragma: no cover


def test_failing_collector_is_left_out_and_logged(
    registry: CollectorRegistry, exposition: Scrape, caplog: pytest.LogCaptureFixture
) -> None:
    Counter("ok", "H.").inc()
    broken = BrokenCollector()
    registry.register(broken)
    registry.register(QueueCollector())
    with caplog.at_level(logging.ERROR, logger="pytheus.registry"):
        text, om = exposition()
    assert text.names() == om.names() == {"ok_total", "jobs_queued"}
    records = [r for r in caplog.records if r.name == "pytheus.registry"]
    assert len(records) == 2  # one per format
    for record in records:
        assert record.levelno == logging.ERROR
        assert "BrokenCollector" in record.getMessage()
        assert record.exc_info is not None
        assert "the database is gone" in str(record.exc_info[1])


def test_described_names_claim_their_openmetrics_family(registry: CollectorRegistry) -> None:
    """describe() gives sample names without types; ``x_total`` and ``x_info`` may be the
    samples of an OpenMetrics family ``x``, which a Gauge("x") would then repeat."""
    from pytheus.collectors import register_default_collectors

    register_default_collectors(registry)
    with pytest.raises(DuplicateMetricError, match="'python_gc_collections'"):
        Gauge("python_gc_collections", "H.")
    with pytest.raises(DuplicateMetricError, match="'python'"):
        Gauge("python", "H.")
    with pytest.raises(DuplicateMetricError, match="'process_cpu_seconds'"):
        Info("process_cpu_seconds", "H.")
    Gauge("python_gc", "H.")  # unrelated names stay free
    assert len(registry.collectors()) == 4
