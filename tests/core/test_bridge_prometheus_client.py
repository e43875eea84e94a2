"""pytheus.bridges.prometheus_client on the in-memory backend: prometheus_client's families
in our scrape as prometheus_client exposes them (types, labels, buckets, exemplars,
_created), following what it defines and removes later, a clash reported once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import prometheus_client as pc
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pytheus.bridges import prometheus_client as bridge
from pytheus.exceptions import DuplicateMetricError
from pytheus.metrics import Counter
from pytheus.registry import CollectorRegistry
from tests.core.helpers import Parsed, key


@pytest.fixture
def source() -> Iterator[pc.CollectorRegistry]:
    """A prometheus_client registry of the test's own, bridged into the test's registry."""
    src = pc.CollectorRegistry()
    try:
        yield src
    finally:
        bridge.unregister()


def both(exposition: Callable[..., tuple[Parsed, Parsed]]) -> tuple[Parsed, Parsed]:
    # promtool, prometheus_client's text parser and its strict OpenMetrics parser.
    return exposition()


def test_every_type_as_prometheus_client_exposes_it(
    source: pc.CollectorRegistry,
    registry: CollectorRegistry,
    exposition: Callable[..., tuple[Parsed, Parsed]],
) -> None:
    c = pc.Counter("jobs", "Jobs done.", ["kind"], registry=source)
    c.labels("a").inc(3)
    c.labels("b").inc(exemplar={"trace_id": "abc"})
    g = pc.Gauge("temperature_celsius", "Temperature.", registry=source)
    g.set(21.5)
    h = pc.Histogram("lat_seconds", "Latency.", ["route"], buckets=[0.1, 1], registry=source)
    h.labels("/").observe(0.05)
    h.labels("/").observe(0.5, exemplar={"trace_id": "x"})
    s = pc.Summary("size_bytes", "Sizes.", registry=source)
    s.observe(10)
    pc.Info("build", "Build.", registry=source).info({"version": "1.0"})
    e = pc.Enum("phase", "Phase.", states=["idle", "busy"], registry=source)
    e.state("busy")

    bridge.register(source, registry)
    text, om = both(exposition)
    assert om.types == {
        "jobs": "counter",
        "temperature_celsius": "gauge",
        "lat_seconds": "histogram",
        "size_bytes": "summary",
        "build": "info",
        "phase": "stateset",
    }
    assert text.value("jobs_total", {"kind": "a"}) == 3
    assert om.exemplars[key("jobs_total", {"kind": "b"})].labels == {"trace_id": "abc"}
    assert om.value("lat_seconds_bucket", {"route": "/", "le": "0.1"}) == 1
    assert om.value("lat_seconds_bucket", {"route": "/", "le": "+Inf"}) == 2
    assert om.value("lat_seconds_sum", {"route": "/"}) == 0.55
    assert om.exemplars[key("lat_seconds_bucket", {"route": "/", "le": "1.0"})].value == 0.5
    assert text.value("size_bytes_count") == 1
    assert text.value("build_info", {"version": "1.0"}) == 1
    assert om.value("phase", {"phase": "busy"}) == 1
    # _created: what prometheus_client says, in both formats (a gauge of its own in text).
    created = source.get_sample_value("jobs_created", {"kind": "a"})
    assert created is not None
    assert text.value("jobs_created", {"kind": "a"}) == created
    assert text.types["jobs_created"] == "gauge"
    assert om.value("jobs_created", {"kind": "a"}) == created
    assert om.value("lat_seconds_created", {"route": "/"}) == source.get_sample_value(
        "lat_seconds_created", {"route": "/"}
    )


def test_values_are_read_at_each_scrape(
    source: pc.CollectorRegistry, registry: CollectorRegistry
) -> None:
    c = pc.Counter("jobs", "Jobs done.", ["kind"], registry=source)
    bridge.register(source, registry)
    assert registry.get_sample_value("jobs_total", {"kind": "a"}) is None
    c.labels("a").inc()
    assert registry.get_sample_value("jobs_total", {"kind": "a"}) == 1
    c.labels("a").inc(2)
    assert registry.get_sample_value("jobs_total", {"kind": "a"}) == 3
    c.remove("a")
    assert registry.get_sample_value("jobs_total", {"kind": "a"}) is None


def test_metrics_defined_and_removed_later(
    source: pc.CollectorRegistry,
    registry: CollectorRegistry,
    exposition: Callable[..., tuple[Parsed, Parsed]],
) -> None:
    bridge.register(source, registry)
    late = pc.Counter("late", "Defined after the bridge.", registry=source)
    late.inc()
    # Bridged as it is defined, not only at a scrape (a Celery worker is never scraped).
    assert any(getattr(m, "name", None) == "late" for m in registry.collectors())
    text, _ = both(exposition)
    assert text.value("late_total") == 1
    source.unregister(late)
    text, _ = both(exposition)
    assert "late_total" not in text.names()


def test_custom_collector_families(
    source: pc.CollectorRegistry,
    registry: CollectorRegistry,
    exposition: Callable[..., tuple[Parsed, Parsed]],
) -> None:
    state = {"extra": False}

    class Custom:
        def collect(self) -> Iterator[object]:
            g = GaugeMetricFamily("queue_length", "Jobs waiting.", labels=["queue"])
            g.add_metric(["default"], 7)
            yield g
            if state["extra"]:
                c = CounterMetricFamily("custom_events", "Events.", labels=[])
                c.add_metric([], 5)
                yield c

    source.register(Custom())
    bridge.register(source, registry)
    text, _ = both(exposition)
    assert text.value("queue_length", {"queue": "default"}) == 7
    # A family the collector starts to yield later: bridged at the next scrape, shown
    # from the one after it.
    state["extra"] = True
    both(exposition)
    text, _ = both(exposition)
    assert text.value("custom_events_total") == 5


def test_a_name_in_both_registries_is_reported_once(
    source: pc.CollectorRegistry,
    registry: CollectorRegistry,
    exposition: Callable[..., tuple[Parsed, Parsed]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = Counter("jobs", "Ours.", ["kind"])
    ours.labels(kind="a").inc(10)
    theirs = pc.Counter("jobs", "Theirs.", ["kind"], registry=source)
    theirs.labels("a").inc(1)
    with caplog.at_level(logging.WARNING, logger="pytheus.bridges.prometheus_client"):
        bridge.register(source, registry)
        for _ in range(3):
            text, _ = both(exposition)
    warnings = [r.getMessage() for r in caplog.records if "'jobs'" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "prometheus_client" in warnings[0]
    assert "already" in warnings[0]
    # One family, ours.
    assert text.value("jobs_total", {"kind": "a"}) == 10
    assert text.helps["jobs"] == "Ours."


def test_a_pytheus_metric_defined_later_under_a_bridged_name_is_refused(
    source: pc.CollectorRegistry, registry: CollectorRegistry
) -> None:
    pc.Counter("jobs", "Theirs.", registry=source)
    bridge.register(source, registry)
    with pytest.raises(DuplicateMetricError, match="prometheus_client"):
        Counter("jobs", "Ours.")


def test_prometheus_clients_own_collectors_are_left_to_ours(registry: CollectorRegistry) -> None:
    b = bridge.register(registry=registry)
    try:
        names = {getattr(m, "name", None) for m in registry.collectors()}
        assert not {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} & names
        assert b.source is pc.REGISTRY
    finally:
        bridge.unregister()


def test_unregister_restores_the_source(
    source: pc.CollectorRegistry, registry: CollectorRegistry
) -> None:
    pc.Counter("jobs", "Jobs.", registry=source)
    bridge.register(source, registry)
    assert "register" in vars(source)
    bridge.unregister()
    assert "register" not in vars(source)
    assert registry.collectors() == []
    pc.Counter("later", "Later.", registry=source)
    assert registry.collectors() == []
