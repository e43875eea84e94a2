"""The pytheus side of the in-process rows, written against the API that our pytheus
shares with the original pytheus 0.6.1.

``inprocess.py`` builds these cases with our package; ``original_worker.py`` imports this
same module inside the virtualenv of pytheus 0.6.1 (same import name), so both pytheus
columns time the very same statements. Every case gets a fresh ``CollectorRegistry``
passed as ``registry=``, so no default collector takes part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from _harness import Case
from _workload import BUCKETS, check_samples, label_values, observations

from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry

__all__ = ["CASES", "HISTOGRAM_LINES_PER_SERIES"]

# The 11 bounds of BUCKETS, +Inf, _count and _sum.
HISTOGRAM_LINES_PER_SERIES = 14


def _labelled_counter() -> Any:
    return Counter(
        "bench_labelled",
        "A counter with two labels.",
        required_labels=["a", "b"],
        registry=CollectorRegistry(),
    )


def _labelled_histogram() -> Any:
    return Histogram(
        "bench_latency_seconds",
        "A histogram with two labels.",
        required_labels=["a", "b"],
        registry=CollectorRegistry(),
    )


def counter_inc(params: Mapping[str, Any]) -> Case:
    c = Counter("bench_plain", "A counter without labels.", registry=CollectorRegistry())
    return Case("c.inc()", {"c": c})


def counter_labels_dict(params: Mapping[str, Any]) -> Case:
    return Case('c.labels({"a": "x", "b": "y"}).inc()', {"c": _labelled_counter()})


def counter_labels_kwargs(params: Mapping[str, Any]) -> Case:
    return Case('c.labels(a="x", b="y").inc()', {"c": _labelled_counter()})


def counter_child_inc(params: Mapping[str, Any]) -> Case:
    return Case("child.inc()", {"child": _labelled_counter().labels({"a": "x", "b": "y"})})


def gauge_set(params: Mapping[str, Any]) -> Case:
    g = Gauge("bench_gauge", "A gauge without labels.", registry=CollectorRegistry())
    return Case("g.set(v)", {"g": g, "v": 12.5})


def histogram_observe(params: Mapping[str, Any]) -> Case:
    h = Histogram("bench_plain_seconds", "A histogram.", registry=CollectorRegistry())
    return Case("h.observe(0.3)", {"h": h})


def histogram_labels_observe(params: Mapping[str, Any]) -> Case:
    return Case('h.labels({"a": "x", "b": "y"}).observe(0.3)', {"h": _labelled_histogram()})


def exposition_counters(params: Mapping[str, Any]) -> Case:
    registry = CollectorRegistry()
    c = Counter("bench_requests", "Requests.", required_labels=["a", "b"], registry=registry)
    for i in range(params["series"]):
        a, b = label_values(i)
        c.labels({"a": a, "b": b}).inc(i % 7 + 1)
    check_samples(generate_metrics(registry).encode(), params["series"], "pytheus")
    return Case(
        "generate_metrics(r).encode()", {"generate_metrics": generate_metrics, "r": registry}
    )


def exposition_histograms(params: Mapping[str, Any]) -> Case:
    registry = CollectorRegistry()
    h = Histogram(
        "bench_request_seconds",
        "Latency.",
        required_labels=["a", "b"],
        registry=registry,
        buckets=BUCKETS,
    )
    for i in range(params["series"]):
        a, b = label_values(i)
        child = h.labels({"a": a, "b": b})
        for value in observations(i):
            child.observe(value)
    expected = params["series"] * HISTOGRAM_LINES_PER_SERIES
    check_samples(generate_metrics(registry).encode(), expected, "pytheus")
    return Case(
        "generate_metrics(r).encode()", {"generate_metrics": generate_metrics, "r": registry}
    )


#: Row key -> the factory of its case, given the row's params.
CASES: dict[str, Callable[[Mapping[str, Any]], Case]] = {
    "counter_inc": counter_inc,
    "counter_labels": counter_labels_dict,
    "counter_labels_kwargs": counter_labels_kwargs,
    "counter_child_inc": counter_child_inc,
    "gauge_set": gauge_set,
    "histogram_observe": histogram_observe,
    "histogram_labels_observe": histogram_labels_observe,
    "exposition_counters": exposition_counters,
    "exposition_histograms": exposition_histograms,
}
