"""prometheus_client's registry bridged through Redis: forked processes that record with
prometheus_client add up exactly, what a parent had recorded before the fork is counted
once, and a process that dies leaves its counts (a counter never goes backwards)."""

from __future__ import annotations

from collections.abc import Iterator

import prometheus_client as pc
import pytest

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.bridges import prometheus_client as bridge
from pytheus.exposition import generate_metrics
from pytheus.registry import REGISTRY, get_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    ChildContext,
    fork_child,
    scrape,
    scrape_openmetrics,
    wait_for,
)
from tests.servers import promtool_check_metrics

CHILDREN = 3
OPS = 500


@pytest.fixture
def source() -> Iterator[pc.CollectorRegistry]:
    src = pc.CollectorRegistry()
    try:
        yield src
    finally:
        bridge.unregister()


def test_forked_processes_add_up(
    load_redis_backend: LoadBackend, source: pc.CollectorRegistry
) -> None:
    backend: MultiProcessRedisBackend = load_redis_backend(flush_interval=0.05)
    jobs = pc.Counter("pc_jobs", "Jobs.", ["kind"], registry=source)
    hist = pc.Histogram("pc_seconds", "Durations.", buckets=[0.1, 1], registry=source)
    live = pc.Gauge("pc_live", "Live processes.", multiprocess_mode="livesum", registry=source)
    total = pc.Gauge("pc_left", "Summed, dead included.", multiprocess_mode="sum", registry=source)
    bridge.register(source, get_registry())
    # Recorded before the fork: the children inherit it, and must not count it again.
    jobs.labels("a").inc(100)
    hist.observe(0.5)
    live.set(1)
    assert backend.flush()

    def run(ctx: ChildContext) -> None:
        live.set(1)
        total.inc(2)
        for i in range(OPS):
            jobs.labels("a" if i % 2 else "b").inc()
            hist.observe(0.05)
        ctx.send("done")

    children = [fork_child(run) for _ in range(CHILDREN)]
    for child in children:
        assert child.result() == "done"
        assert child.wait() == 0

    def settled() -> bool:
        parsed = scrape()
        return parsed.value("pc_jobs_total", {"kind": "a"}) == 100 + CHILDREN * OPS / 2

    wait_for(settled, what="the children's counts")
    parsed = scrape()
    assert parsed.value("pc_jobs_total", {"kind": "b"}) == CHILDREN * OPS / 2
    assert parsed.value("pc_seconds_count") == 1 + CHILDREN * OPS
    assert parsed.value("pc_seconds_bucket", {"le": "0.1"}) == CHILDREN * OPS
    # The children have exited: livesum forgets them, sum keeps what they left.
    assert parsed.value("pc_live") == 1
    assert parsed.value("pc_left") == 2 * CHILDREN
    # Nothing in the scrape repeats a family, and both judges accept it.
    promtool_check_metrics(generate_metrics(REGISTRY))
    om = scrape_openmetrics()
    assert om.types["pc_jobs"] == "counter"
    # The parent goes on counting from where it was.
    jobs.labels("a").inc()
    assert scrape().value("pc_jobs_total", {"kind": "a"}) == 101 + CHILDREN * OPS / 2


def test_a_killed_process_leaves_its_flushed_counts(
    load_redis_backend: LoadBackend, source: pc.CollectorRegistry
) -> None:
    backend: MultiProcessRedisBackend = load_redis_backend(flush_interval=0.05)
    jobs = pc.Counter("pc_killed", "Jobs.", registry=source)
    bridge.register(source, get_registry())

    def run(ctx: ChildContext) -> None:
        jobs.inc(7)
        from pytheus.backends import get_backend

        assert get_backend().flush()  # type: ignore[attr-defined]
        ctx.send("flushed")
        ctx.hold()

    child = fork_child(run, exit_normally=False)
    assert child.result() == "flushed"
    assert scrape().value("pc_killed_total") == 7
    child.kill()
    child.wait()
    assert backend.flush()
    for _ in range(5):
        assert scrape().value("pc_killed_total") == 7
