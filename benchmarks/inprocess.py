"""Section "In-process (single process)": our core against prometheus_client.

Both sides record into a fresh registry of their own and expose it as the bytes a scrape
returns: ours ``generate_metrics(registry).encode()``, theirs ``generate_latest(registry)``.
Our statements are in ``pytheus_cases.py`` (shared with the original pytheus 0.6.1 column);
the rows' labels and targets are those of ANCHORS.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import prometheus_client
from _harness import Case, Row, Section, Settings
from _workload import BUCKETS, check_samples, label_values, observations
from prometheus_client import CollectorRegistry, generate_latest
from pytheus_cases import CASES, HISTOGRAM_LINES_PER_SERIES

from pytheus.backends import MemoryBackend, load_backend

__all__ = ["SECTION"]

# Series in the exposition rows: ANCHORS.md's sizes, and small ones for --quick.
COUNTER_SERIES = 10_000
HISTOGRAM_SERIES = 1_000
QUICK_COUNTER_SERIES = 200
QUICK_HISTOGRAM_SERIES = 20


# --------------------------------------------------------------------------- theirs


def _theirs_counter_labelled() -> prometheus_client.Counter:
    return prometheus_client.Counter(
        "bench_labelled", "A counter with two labels.", ["a", "b"], registry=CollectorRegistry()
    )


def _theirs_histogram_labelled() -> prometheus_client.Histogram:
    return prometheus_client.Histogram(
        "bench_latency_seconds",
        "A histogram with two labels.",
        ["a", "b"],
        registry=CollectorRegistry(),
    )


def theirs_counter_inc() -> Case:
    c = prometheus_client.Counter(
        "bench_plain", "A counter without labels.", registry=CollectorRegistry()
    )
    return Case("c.inc()", {"c": c})


def theirs_counter_labels() -> Case:
    return Case('c.labels("x", "y").inc()', {"c": _theirs_counter_labelled()})


def theirs_counter_labels_kwargs() -> Case:
    return Case('c.labels(a="x", b="y").inc()', {"c": _theirs_counter_labelled()})


def theirs_counter_child_inc() -> Case:
    return Case("child.inc()", {"child": _theirs_counter_labelled().labels("x", "y")})


def theirs_gauge_set() -> Case:
    g = prometheus_client.Gauge(
        "bench_gauge", "A gauge without labels.", registry=CollectorRegistry()
    )
    return Case("g.set(v)", {"g": g, "v": 12.5})


def theirs_histogram_observe() -> Case:
    h = prometheus_client.Histogram(
        "bench_plain_seconds", "A histogram.", registry=CollectorRegistry()
    )
    return Case("h.observe(0.3)", {"h": h})


def theirs_histogram_labels_observe() -> Case:
    return Case('h.labels("x", "y").observe(0.3)', {"h": _theirs_histogram_labelled()})


def theirs_exposition_counters(series: int, *, created: bool) -> Case:
    registry = CollectorRegistry()
    c = prometheus_client.Counter("bench_requests", "Requests.", ["a", "b"], registry=registry)
    for i in range(series):
        c.labels(*label_values(i)).inc(i % 7 + 1)
    # _created is prometheus_client's default; the switch is read at every collect, so it
    # is turned off around the batches of this case only.
    before = None if created else prometheus_client.disable_created_metrics
    after = None if created else prometheus_client.enable_created_metrics
    if before is not None:
        before()
    try:
        expected = series * 2 if created else series
        check_samples(generate_latest(registry), expected, "prometheus_client")
    finally:
        if after is not None:
            after()
    return Case(
        "generate_latest(r)", {"generate_latest": generate_latest, "r": registry}, before, after
    )


def theirs_exposition_histograms(series: int) -> Case:
    registry = CollectorRegistry()
    h = prometheus_client.Histogram(
        "bench_request_seconds", "Latency.", ["a", "b"], registry=registry, buckets=BUCKETS
    )
    for i in range(series):
        child = h.labels(*label_values(i))
        for value in observations(i):
            child.observe(value)
    # Its default output has one _created sample per series more than ours.
    check_samples(
        generate_latest(registry), series * (HISTOGRAM_LINES_PER_SERIES + 1), "prometheus_client"
    )
    return Case("generate_latest(r)", {"generate_latest": generate_latest, "r": registry})


# --------------------------------------------------------------------------- rows


def _ours(key: str, params: Mapping[str, Any] | None = None) -> Callable[[], Case]:
    return functools.partial(CASES[key], params or {})


def build(settings: Settings) -> Sequence[Row]:
    """The rows of ANCHORS.md's in-process table (smaller expositions when quick)."""
    # The in-memory backend explicitly, whatever PYTHEUS_BACKEND_CLASS says.
    load_backend(MemoryBackend)
    counters = QUICK_COUNTER_SERIES if settings.quick else COUNTER_SERIES
    histograms = QUICK_HISTOGRAM_SERIES if settings.quick else HISTOGRAM_SERIES
    return [
        Row("counter_inc", "`Counter.inc()`, no labels", "ns",
            theirs_counter_inc, _ours("counter_inc"), 0.8),
        Row("counter_labels", "`Counter` (2 labels) `.labels(a, b).inc()`, looked up each time",
            "ns", theirs_counter_labels, _ours("counter_labels"), 0.5,
            note="`.labels(a, b)`: theirs `c.labels(\"x\", \"y\")`, ours "
            "`c.labels({\"a\": \"x\", \"b\": \"y\"})`."),
        Row("counter_labels_kwargs",
            "`Counter` (2 labels) `.labels(a=..., b=...).inc()`, keywords, looked up each time",
            "ns", theirs_counter_labels_kwargs, _ours("counter_labels_kwargs"), 0.5,
            note="`.labels(a=..., b=...)`: `c.labels(a=\"x\", b=\"y\")` on both sides."),
        Row("counter_child_inc", "cached child `.inc()`", "ns",
            theirs_counter_child_inc, _ours("counter_child_inc"), 0.8),
        Row("gauge_set", "`Gauge.set(v)`", "ns", theirs_gauge_set, _ours("gauge_set"), 0.8),
        Row("histogram_observe", "`Histogram.observe(0.3)`, default buckets", "ns",
            theirs_histogram_observe, _ours("histogram_observe"), 0.6),
        Row("histogram_labels_observe", "`Histogram` (2 labels) `.labels(a, b).observe(0.3)`",
            "ns", theirs_histogram_labels_observe, _ours("histogram_labels_observe"), 0.5),
        Row("exposition_counters", f"exposition, {counters:,} counter series", "ms",
            functools.partial(theirs_exposition_counters, counters, created=True),
            _ours("exposition_counters", {"series": counters}), 0.1,
            params={"series": counters},
            note="Exposition: ours `generate_metrics(r).encode()`, theirs `generate_latest(r)`; "
            "2 labels per series; theirs adds a `_created` sample per series by default."),
        Row("exposition_counters_without_created",
            f"exposition, {counters:,} counter series, prometheus_client without `_created`",
            "ms", functools.partial(theirs_exposition_counters, counters, created=False),
            _ours("exposition_counters", {"series": counters}), None,
            note="Without `_created` (`disable_created_metrics()`): informational, the "
            "target is stated against prometheus_client's default output."),
        Row("exposition_histograms", f"exposition, {histograms:,} histogram series", "ms",
            functools.partial(theirs_exposition_histograms, histograms),
            _ours("exposition_histograms", {"series": histograms}), 0.2,
            params={"series": histograms},
            note="Histogram exposition: the same 11 bounds (+Inf) on every side; "
            "prometheus_client's own default has 15."),
    ]  # fmt: skip


SECTION = Section(
    key="inprocess",
    title="In-process (single process)",
    theirs_name="prometheus_client",
    build=build,
    notes=("Per-operation figures include the timeit loop (a few ns, the same for every side).",),
)
