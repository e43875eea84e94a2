"""The series-level collection API: ``collect_series()`` and the family rules both ways.

A reader of series (the admin dashboard) gets each metric's definition with its label
sets and values, shaped by type, and never regroups samples; custom collectors, which
only yield families, are read back into series. The exposition is built from the same
series, so both views of a scrape agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytheus.backends import load_backend
from pytheus.definitions import HistogramState, MetricSeries, SummaryState
from pytheus.families import as_series, build_family, series_of_family
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import REGISTRY, CollectorRegistry
from pytheus.samples import Exemplar, MetricFamily

RECORDING = "tests.core.sample_backends.RecordingBackend"


def by_name(registry: CollectorRegistry | None = None) -> dict[str, MetricSeries]:
    reg = registry if registry is not None else REGISTRY
    return {ms.definition.name: ms for ms in reg.collect_series()}


def values(ms: MetricSeries) -> dict[tuple[tuple[str, str], ...], object]:
    return {tuple(labels.items()): value for labels, value in ms.series}


def test_each_type_as_series(registry: CollectorRegistry) -> None:
    c = Counter("jobs", "Jobs.", required_labels=["queue"])
    c.labels(queue="mail").inc(3)
    c.labels(queue="sms").inc(exemplar={"trace_id": "abc"})
    g = Gauge("temperature", "T.", unit="celsius")
    g.set(21.5)
    h = Histogram("latency", "L.", required_labels=["view"], buckets=[0.1, 1.0])
    for v in (0.05, 0.5, 0.7, 30.0):
        h.labels(view="home").observe(v)
    s = Summary("size", "S.")
    s.observe(4)
    s.observe(6)
    i = Info("build", "B.")
    i.info({"version": "1.2.3"})
    e = Enum("phase", "P.", states=["idle", "running"])
    e.state("running")

    got = by_name()
    assert set(got) == {"jobs", "temperature_celsius", "latency", "size", "build", "phase"}

    jobs = got["jobs"]
    assert jobs.definition.type == "counter"
    assert jobs.definition.labelnames == ("queue",)
    mail, sms = values(jobs)[(("queue", "mail"),)], values(jobs)[(("queue", "sms"),)]
    assert mail == (3.0, None)
    assert isinstance(sms, tuple)
    assert sms[0] == 1.0
    assert isinstance(sms[1], Exemplar)
    assert dict(sms[1].labels) == {"trace_id": "abc"}

    temperature = got["temperature_celsius"]
    assert temperature.definition.unit == "celsius"
    assert values(temperature) == {(): 21.5}

    latency = got["latency"]
    assert latency.definition.buckets == (0.1, 1.0, math.inf)
    (state,) = values(latency).values()
    assert isinstance(state, HistogramState)
    assert state.counts == (1.0, 2.0, 1.0)  # per bucket, not cumulative
    assert state.sum == pytest.approx(31.25)

    assert values(got["size"]) == {(): SummaryState(2.0, 10.0, ())}
    assert values(got["build"]) == {(): {"version": "1.2.3"}}
    assert got["phase"].definition.states == ("idle", "running")
    assert values(got["phase"]) == {(): "running"}


def test_the_exposition_is_built_from_the_same_series(registry: CollectorRegistry) -> None:
    h = Histogram("latency", "L.", required_labels=["view"])
    h.labels(view="a").observe(0.3)
    Counter("jobs", "J.").inc(2)
    series = list(registry.collect_series())
    assert [build_family(ms) for ms in series] == list(registry.collect())


def test_custom_collectors_are_read_back_into_series(registry: CollectorRegistry) -> None:
    class Queues:
        def collect(self) -> Iterator[MetricFamily]:
            yield MetricFamily("queued", "gauge", "Waiting.").add(7, {"queue": "mail"})
            jobs = MetricFamily("jobs", "counter", "Done.")
            jobs.add(5, {"queue": "mail"}).add(1.7e9, {"queue": "mail"}, suffix="_created")
            yield jobs
            latency = MetricFamily("wait_seconds", "histogram", "Wait.", unit="seconds")
            for le, count in (("0.5", 2), ("1.0", 3), ("+Inf", 4)):
                latency.add(count, {"queue": "mail", "le": le}, suffix="_bucket")
            latency.add(4, {"queue": "mail"}, suffix="_count")
            latency.add(2.5, {"queue": "mail"}, suffix="_sum")
            yield latency
            phase = MetricFamily("phase", "stateset", "Phase.")
            phase.add(0, {"phase": "idle"}).add(1, {"phase": "busy"})
            yield phase
            yield MetricFamily("runtime", "info", "Runtime.").add(1, {"version": "3.11"})

    registry.register(Queues())
    got = by_name()
    assert values(got["queued"]) == {(("queue", "mail"),): 7.0}
    assert got["queued"].definition.labelnames == ("queue",)
    # _created is no part of a counter's value.
    assert values(got["jobs"]) == {(("queue", "mail"),): (5.0, None)}
    wait = got["wait_seconds"]
    assert wait.definition.buckets == (0.5, 1.0, math.inf)
    assert wait.definition.unit == "seconds"
    assert values(wait) == {(("queue", "mail"),): HistogramState((2.0, 1.0, 1.0), 2.5)}
    assert got["phase"].definition.states == ("idle", "busy")
    assert values(got["phase"]) == {(): "busy"}
    assert values(got["runtime"]) == {(): {"version": "3.11"}}
    # The exposition shows the custom families as they were yielded.
    families = {f.name: f for f in registry.collect()}
    assert families["jobs"].samples[1].name == "jobs_created"


def test_names_filter_series_as_families(registry: CollectorRegistry) -> None:
    Counter("jobs", "J.").inc()
    Gauge("queued", "Q.").set(1)
    assert [ms.definition.name for ms in registry.collect_series(["jobs_total"])] == ["jobs"]
    assert [ms.definition.name for ms in registry.collect_series(["nothing"])] == []


def test_a_backend_with_only_collect_still_gives_series(registry: CollectorRegistry) -> None:
    load_backend(RECORDING)  # yields local_family(): families, not series
    h = Histogram("latency", "L.", buckets=[1.0])
    h.observe(0.5)
    h.observe(5.0)
    (ms,) = registry.collect_series()
    assert ms.definition.buckets == (1.0, math.inf)
    assert values(ms) == {(): HistogramState((1.0, 1.0), 5.5)}


def test_histogram_bounds_differing_between_series_of_a_custom_family() -> None:
    family = MetricFamily("h", "histogram", "H.")
    for labels, le, count in (("a", "1.0", 1), ("a", "+Inf", 2), ("b", "2.0", 3), ("b", "+Inf", 3)):
        family.add(count, {"s": labels, "le": le}, suffix="_bucket")
    ms = series_of_family(family)
    assert ms.definition.buckets == (1.0, 2.0, math.inf)
    # Series "a" has no 2.0 bound: its count there is that of the bound below.
    assert values(ms) == {
        (("s", "a"),): HistogramState((1.0, 0.0, 1.0), 0.0),
        (("s", "b"),): HistogramState((0.0, 3.0, 0.0), 0.0),
    }


def test_as_series_keeps_a_series_as_it_is() -> None:
    ms = series_of_family(MetricFamily("g", "gauge", "G.").add(1))
    assert as_series(ms) is ms


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    observations=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=30
    ),
    bounds=st.lists(
        st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=1, max_size=6
    ).map(lambda b: sorted(set(b))),
    labels=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n != "le"),
        st.text(max_size=10),
        max_size=3,
    ),
)
def test_a_histogram_reads_back_to_the_series_it_was_built_from(
    observations: list[float], bounds: list[float], labels: dict[str, str]
) -> None:
    registry = CollectorRegistry()
    h = Histogram("h", "H.", required_labels=sorted(labels), buckets=bounds, registry=registry)
    child = h.labels(labels) if labels else h
    for v in observations:
        child.observe(v)
    ms = h.local_series()
    back = series_of_family(build_family(ms))
    assert back.definition.buckets == ms.definition.buckets
    assert [(dict(lab), state) for lab, state in back.series] == [
        (dict(lab), state) for lab, state in ms.series
    ]


def test_an_empty_family_is_no_series() -> None:
    ms = series_of_family(MetricFamily("jobs", "counter", "J."))
    assert ms.definition.name == "jobs"
    assert ms.series == []


def test_a_metric_builds_its_family_from_pairs(registry: CollectorRegistry) -> None:
    # For backends that yield families (metric.build_family(pairs)), as before.
    h = Histogram("latency", "L.", required_labels=["view"], buckets=[1.0])
    h.labels(view="a").observe(0.5)
    pairs = [(c.labelset, c.snapshot()) for c in h.children()]
    assert h.build_family(pairs) == h.local_family() == next(iter(registry.collect()))
    assert [s.name for s in h.local_family().samples] == [
        "latency_bucket",
        "latency_bucket",
        "latency_count",
        "latency_sum",
    ]


def test_the_one_pass_families_of_counters_and_gauges_are_those_of_their_series(
    registry: CollectorRegistry,
) -> None:
    c = Counter("jobs", "J.", required_labels=["queue"])
    c.labels(queue="a").inc(2)
    c.labels(queue="b").inc(exemplar={"trace_id": "t1"})
    g = Gauge("temperature", "T.", required_labels=["room"], unit="celsius")
    g.labels(room="x").set(-3.5)
    for metric in (c, g):
        assert metric.local_family() == build_family(metric.local_series())
        assert metric.local_family().samples  # not two empty families
