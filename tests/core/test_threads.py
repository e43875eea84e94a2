"""Thread safety: threads racing on fresh series lose no update; scrapes stay consistent.

A tiny switch interval makes CPython switch threads every few bytecodes, so races that
would need luck at the default 5 ms show up in every run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest

from pytheus.exposition import generate_openmetrics
from pytheus.metrics import Counter, Gauge, Histogram, Summary
from pytheus.registry import CollectorRegistry
from tests.core.helpers import parse_openmetrics

THREADS = 16
SERIES = 100


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def race(work: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``work(thread_index)`` in many threads released at the same moment."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool), "a thread did not finish"
    assert errors == []


@pytest.mark.usefixtures("tiny_switch_interval")
def test_first_labels_inc_loses_nothing(registry: CollectorRegistry) -> None:
    c = Counter("hits", "H.", required_labels=["page", "kind"])

    def work(_: int) -> None:
        for i in range(SERIES):
            c.labels(page=str(i), kind="a").inc()
            c.labels({"kind": "b"}).labels(page=i).inc(2)  # partial views, non-str values

    race(work)
    assert len(c.children()) == 2 * SERIES
    for i in range(SERIES):
        assert registry.get_sample_value("hits_total", {"page": str(i), "kind": "a"}) == THREADS
        assert registry.get_sample_value("hits_total", {"page": str(i), "kind": "b"}) == (
            2 * THREADS
        )


@pytest.mark.usefixtures("tiny_switch_interval")
def test_histogram_and_summary_observe_counts(registry: CollectorRegistry) -> None:
    h = Histogram("latency_seconds", "H.", required_labels=["route"], buckets=[1, 2])
    s = Summary("size_bytes", "H.", required_labels=["route"], quantiles=[0.5])

    def work(index: int) -> None:
        for i in range(SERIES):
            h.labels(route=str(i % 10)).observe(index % 3)
            s.labels(route=str(i % 10)).observe(1)

    race(work)
    per_route = THREADS * SERIES // 10
    in_first = sum(1 for t in range(THREADS) if t % 3 <= 1) * SERIES // 10
    for r in range(10):
        labels = {"route": str(r)}
        assert registry.get_sample_value("latency_seconds_count", labels) == per_route
        assert registry.get_sample_value("latency_seconds_bucket", {**labels, "le": "1.0"}) == (
            in_first
        )
        assert registry.get_sample_value("size_bytes_count", labels) == per_route
        assert registry.get_sample_value("size_bytes_sum", labels) == per_route


@pytest.mark.usefixtures("tiny_switch_interval")
def test_gauge_inc_dec_and_track_inprogress_balance(registry: CollectorRegistry) -> None:
    g = Gauge("in_progress", "H.")

    @g.track_inprogress()
    def step() -> None:
        pass

    def work(_: int) -> None:
        for _ in range(SERIES):
            g.inc(3)
            step()
            g.dec(3)

    race(work)
    assert registry.get_sample_value("in_progress") == 0.0


@pytest.mark.usefixtures("tiny_switch_interval")
def test_scrapes_during_writes_stay_valid(registry: CollectorRegistry) -> None:
    h = Histogram("latency_seconds", "H.", required_labels=["route"], buckets=[1])
    c = Counter("hits", "H.", required_labels=["route"])
    scrapes: list[int] = []

    def work(index: int) -> None:
        if index == 0:
            # One thread scrapes while the others write; the strict parser checks that
            # _count equals the +Inf bucket and that buckets are cumulative.
            for _ in range(20):
                parsed = parse_openmetrics(generate_openmetrics(registry))
                scrapes.append(len(parsed.samples))
            return
        for i in range(SERIES):
            h.labels(route=str(i)).observe(i % 2 * 2)
            c.labels(route=str(i)).inc()
            if i % 10 == 0:
                c.remove(route=str(i))

    race(work, threads=8)
    assert len(scrapes) == 20
    assert registry.get_sample_value("latency_seconds_count", {"route": "1"}) == 7


def test_a_series_lock_held_by_another_thread_at_fork_is_fresh_in_the_child(
    registry: CollectorRegistry,
) -> None:
    """Only the forking thread survives fork(): a series lock another thread held then
    would hang the child's first use of that series, were it not replaced."""
    series = Counter("c", "Help.", required_labels=["k"]).labels(k="a")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        series._lock.acquire()
        held.set()
        release.wait(10)
        series._lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: inc() must not wait for a thread that does not exist here
        try:
            series.inc()
            os._exit(0 if series.snapshot()[0] == 1.0 else 2)
        except BaseException:
            os._exit(3)
    release.set()
    holder.join()
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child hung on a series lock inherited from another thread")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
