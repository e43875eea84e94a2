"""``REGISTRY.collect_series()`` on the Redis backend: series aggregated across processes,
with the definitions of metrics that only another process defined."""

from __future__ import annotations

import os
import socket

import pytest

from pytheus.backends.redis_format import encode_change
from pytheus.definitions import HistogramState, MetricSeries, SummaryState
from pytheus.families import build_family
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import REGISTRY
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import run_script
from tests.redis_backend.workers import BUCKETS


def series_by_name() -> dict[str, MetricSeries]:
    return {
        ms.definition.name: ms
        for ms in REGISTRY.collect_series()
        if not ms.definition.name.startswith("pytheus_backend_")
    }


def test_series_of_every_type_across_processes(
    load_redis_backend: LoadBackend, prefix: str
) -> None:
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    for index in (1, 2):  # two processes, each recording every type
        run_script("record", config, 4, index)
    jobs = Counter("jobs", "Jobs done.", required_labels=["kind", "queue"])
    jobs.labels(kind="a", queue="q").inc(10)  # and this one, defined the same way
    here = Gauge("here", "Per process.", multiprocess_mode="all")
    here.set(7)

    got = series_by_name()
    counter = {tuple(labels.values()): value for labels, value in got["jobs"].series}
    assert counter == {("a", "q"): (18.0, None), ("b", "q"): (4.0, None)}

    latency = got["latency_seconds"]  # defined only in the other processes
    assert latency.definition.type == "histogram"
    assert latency.definition.help == "Latency."
    assert latency.definition.buckets == (*BUCKETS, float("inf"))
    ((labels, state),) = latency.series
    # 0.25, 1.0, 4.0 and 100.0 observed once per process each: one per bucket, twice.
    assert dict(labels) == {}
    assert state == HistogramState((2.0, 2.0, 2.0, 2.0), 2 * (0.25 + 1.0 + 4.0 + 100.0))

    assert got["size_bytes"].series[0][1] == SummaryState(8.0, 16.0)
    assert got["build"].series[0][1] == {"version": "1.2", "commit": "abc"}
    assert got["phase"].series[0][1] == "running"
    assert got["max_level"].series[0][1] == 2.0
    # An "all" gauge has a series per live process, labelled pid (not a label it defines).
    assert got["here"].definition.labelnames == ()
    ((labels, value),) = got["here"].series
    assert dict(labels) == {"pid": f"{socket.gethostname()}:{os.getpid()}"}
    assert value == 7.0


def test_the_exposition_of_a_redis_scrape_is_built_from_its_series(
    load_redis_backend: LoadBackend,
) -> None:
    load_redis_backend()
    Counter("jobs", "J.", required_labels=["kind"]).labels(kind="a").inc(3)
    families = {f.name: f for f in REGISTRY.collect() if f.name == "jobs"}
    (series,) = list(REGISTRY.collect_series(["jobs"]))
    assert build_family(series) == families["jobs"]


def test_a_histogram_changed_in_few_buckets_is_sent_sparse_and_stays_exact(
    load_redis_backend: LoadBackend,
) -> None:
    """A few observations change one or two buckets and the sum: the change travels as
    those numbers only, and Redis edits them in the stored text."""
    backend = load_redis_backend(flush_interval=60)
    latency = Histogram("latency_seconds", "Latency.", buckets=[0.1, 0.5, 1, 5])
    latency.observe(0.05)
    assert backend.flush()  # the first write of the series: every number
    previous = ((1.0, 0.0, 0.0, 0.0, 0.0), 0.05)
    change = encode_change("histogram", ((1.0, 0.0, 1.0, 0.0, 0.0), 0.8), previous, False)
    assert change == "~6;3:1.0,6:0.75"
    expected_sum = 0.05
    for value in (0.7, 0.7, 3.0, 100.0):
        latency.observe(value)
        expected_sum += value
        assert backend.flush()
    stored = backend.client.hget(backend.keys.family("latency_seconds"), "[]")
    assert stored is not None
    numbers = [float(x) for x in str(stored).split(",")]
    assert numbers[:5] == [1.0, 0.0, 2.0, 1.0, 1.0]  # per bucket, +Inf last
    assert numbers[5] == pytest.approx(expected_sum)
