"""pytheus 0.6.1's registry and custom collector pages (registry.md, custom_collector.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytheus.exceptions import DuplicateMetricError
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, CustomCollector, Gauge, Histogram
from pytheus.registry import REGISTRY, CollectorRegistry, CollectorRegistryProxy, Registry
from pytheus.samples import MetricFamily
from tests.compat.conftest import text_scrape


def test_registry_none_registers_nowhere(backend_name: str) -> None:
    counter = Counter("cache_hit_total", "description", registry=None)
    counter.inc()
    assert "cache_hit_total" not in generate_metrics()
    # Registered nowhere, so the same name can be defined again (a collector does it
    # at every collect()).
    again = Counter("cache_hit_total", "description", registry=None)
    again.inc(2)
    assert "cache_hit_total" not in generate_metrics()


def test_leaving_registry_out_means_the_global_registry(backend_name: str) -> None:
    Counter("cache_hit_total", "description").inc()
    assert text_scrape().value("cache_hit_total") == 1.0
    with pytest.raises(DuplicateMetricError):
        Counter("cache_hit_total", "description")


def test_own_registry_and_generate_metrics_positionally(backend_name: str) -> None:
    my_registry = CollectorRegistry()
    counter = Counter("cache_hit_total", "description", registry=my_registry)
    counter.inc(3)
    assert "cache_hit_total 3.0\n" in generate_metrics(my_registry)
    if backend_name == "memory":
        # With the Redis backend the global registry also shows every metric found in
        # Redis that it does not hold itself (those of other processes): see
        # docs/compat.md.
        assert "cache_hit_total" not in generate_metrics()


def test_a_metric_registered_in_a_second_registry_is_in_both(backend_name: str) -> None:
    my_registry = CollectorRegistry()
    counter = Counter("cache_hit_total", "description")
    my_registry.register(counter)
    counter.inc()
    assert text_scrape().value("cache_hit_total") == 1.0
    assert text_scrape(my_registry).value("cache_hit_total") == 1.0


def test_a_metric_made_with_registry_none_and_registered_later(backend_name: str) -> None:
    my_registry = CollectorRegistry()
    counter = Counter("cache_hit_total", "description", registry=None)
    counter.inc(2)
    my_registry.register(counter)
    counter.inc()
    assert text_scrape(my_registry).value("cache_hit_total") == 3.0


def test_registry_prefix(backend_name: str) -> None:
    registry = CollectorRegistry(prefix="service_a")
    assert registry.prefix == "service_a"
    histogram = Histogram("http_request_duration_seconds", "d", registry=registry)
    histogram.observe(0.3)
    assert text_scrape(registry).value("service_a_http_request_duration_seconds_count") == 1.0


def test_set_registry_on_the_proxy(backend_name: str) -> None:
    my_registry = CollectorRegistry(prefix="service_a")
    REGISTRY.set_registry(my_registry)
    assert REGISTRY.prefix == "service_a"
    assert isinstance(REGISTRY, CollectorRegistryProxy)
    Counter("requests_total", "Requests.").inc()
    assert "service_a_requests_total 1.0\n" in generate_metrics(my_registry)
    assert text_scrape().value("service_a_requests_total") == 1.0


def test_the_registry_protocol_is_met_by_ours() -> None:
    registry: Registry = CollectorRegistry()
    gauge = Gauge("g", "d", registry=None)
    registry.register(gauge)
    assert [f.name for f in registry.collect()] == ["g"]
    registry.unregister(gauge)
    assert list(registry.collect()) == []


# --------------------------------------------------------------------------- custom collectors


class MyCustomCollector(CustomCollector):
    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Any]:
        self.calls += 1
        # note that we are disabling automatic registering
        counter = Counter("name", "desc", registry=None)
        counter.inc(self.calls)
        yield counter
        labelled = Gauge("queue_size", "Jobs waiting.", required_labels=["queue"], registry=None)
        labelled.labels(queue="mail").set(7)
        yield labelled


def test_custom_collector_yielding_metrics(backend_name: str) -> None:
    collector = MyCustomCollector()
    REGISTRY.register(collector)
    # register() called collect() once to learn the names; each scrape calls it again,
    # making the metrics afresh without a duplicate error.
    assert collector.calls == 1
    assert "\nname_total 2.0\n" in generate_metrics()
    assert "\nname_total 3.0\n" in generate_metrics()
    parsed = text_scrape()
    assert parsed.value("queue_size", {"queue": "mail"}) == 7.0
    assert collector.name == "mycustomcollector"


def test_custom_collector_yielding_families(backend_name: str) -> None:
    class Families(CustomCollector):
        def collect(self) -> Iterator[MetricFamily]:
            yield MetricFamily("jobs_queued", "gauge", "Jobs waiting.").add(4, {"queue": "a"})

    REGISTRY.register(Families())
    assert text_scrape().value("jobs_queued", {"queue": "a"}) == 4.0


def test_custom_collector_name_clash_is_an_error_at_register(backend_name: str) -> None:
    registry = CollectorRegistry()
    Counter("name", "desc", registry=registry)
    with pytest.raises(DuplicateMetricError, match="'name'"):
        registry.register(MyCustomCollector())
    # pytheus 0.6.1 left the collector out silently; here nothing was half-registered.
    assert len(registry.collectors()) == 1


def test_two_instances_of_one_custom_collector_clash() -> None:
    registry = CollectorRegistry()
    registry.register(MyCustomCollector())
    with pytest.raises(DuplicateMetricError):
        registry.register(MyCustomCollector())


def test_custom_collector_can_be_unregistered() -> None:
    registry = CollectorRegistry()
    collector = MyCustomCollector()
    registry.register(collector)
    registry.unregister(collector)
    assert generate_metrics(registry) == ""
