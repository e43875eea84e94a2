"""Many real processes, one set of metrics: exact totals, one series per label set, and
definitions that travel between processes."""

from __future__ import annotations

import multiprocessing

import pytest

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exceptions import MetricDefinitionError
from pytheus.metrics import Counter, Histogram, Summary
from pytheus.registry import CollectorRegistry, get_registry, set_registry
from tests.redis_backend import workers
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    ChildContext,
    Parsed,
    fork_child,
    quiet_fork,
    run_script,
    scrape,
    scrape_openmetrics,
)
from tests.servers import promtool_check_metrics

PROCESSES = 3
OPS = 2000


def check_all_types(parsed: Parsed, processes: int, ops: int) -> None:
    """The exact values ``processes`` runs of ``workers.record_all_types`` must add up to."""
    total = processes * ops
    assert parsed.value("jobs_total", {"kind": "a", "queue": "q"}) == total
    assert parsed.value("jobs_total", {"kind": "b", "queue": "q"}) == total * 0.5
    assert len(parsed.series("jobs_total")) == 2
    # Every process has exited: gauges hold what their modes keep of dead processes.
    assert parsed.value("sum_level") == total
    assert parsed.value("max_level") == processes
    assert parsed.value("min_level") == 1
    per_value = total // len(workers.OBSERVED)
    cumulative = 0
    for bound in (*workers.BUCKETS, float("inf")):
        cumulative += per_value
        le = "+Inf" if bound == float("inf") else str(bound)
        assert parsed.value("latency_seconds_bucket", {"le": le}) == cumulative
    assert parsed.value("latency_seconds_count") == total
    assert parsed.value("latency_seconds_sum") == per_value * sum(workers.OBSERVED)
    assert parsed.value("size_bytes_count") == total
    assert parsed.value("size_bytes_sum") == 2.0 * total
    assert parsed.value("build_info", {"version": "1.2", "commit": "abc"}) == 1.0
    assert parsed.value("phase", {"phase": "running"}) == 1.0
    assert parsed.value("phase", {"phase": "starting"}) == 0.0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_exact_totals_of_every_type(
    load_redis_backend: LoadBackend, prefix: str, method: str
) -> None:
    """N multiprocessing children x M operations, scraped from the parent.

    The children return without flushing: what they recorded after their flusher's last
    run must be sent when they exit (a forked multiprocessing child leaves through
    ``os._exit``, which skips atexit handlers).
    """
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    ctx = multiprocessing.get_context(method)
    with quiet_fork():
        procs = [
            ctx.Process(target=workers.record_all_types, args=(config, OPS, i + 1))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    check_all_types(scrape(), PROCESSES, OPS)
    # The parent defined none of these metrics: it shows them because it scrapes the
    # global registry; any other registry shows only its own metrics.
    assert "jobs" not in scrape(CollectorRegistry()).types


def test_exact_totals_from_scripts(load_redis_backend: LoadBackend, prefix: str) -> None:
    """Fresh interpreters that exit normally (the atexit handler makes the last flush)."""
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    for i in range(2):
        run_script("record", config, 500, i + 1)
    parsed = scrape()
    check_all_types(parsed, 2, 500)
    promtool_check_metrics(parsed.text)
    om = scrape_openmetrics()
    assert om.value("jobs_total", {"kind": "a", "queue": "q"}) == 1000


def test_summary_quantiles_are_refused(backend: MultiProcessRedisBackend) -> None:
    with pytest.raises(MetricDefinitionError, match=r"quantiles.*Histogram"):
        Summary("latency", "L.", quantiles=[0.5, 0.99])
    # Refused before it was registered: the name is still free.
    Summary("latency", "L.").observe(1)
    assert scrape().value("latency_count") == 1


def test_labels_in_any_order_are_one_series(load_redis_backend: LoadBackend, prefix: str) -> None:
    """Label names declared in opposite orders, values given as a dict and as keywords in
    opposite orders, by two processes: one series."""
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    ctx = multiprocessing.get_context("fork")
    with quiet_fork():
        procs = [ctx.Process(target=workers.record_labels, args=(config, r, 100)) for r in (0, 1)]
        for p in procs:
            p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # And this process, with yet another order.
    Counter("requests", "Requests.", ["method", "zone", "app"]).labels(
        app="shop", method="GET", zone="eu"
    ).inc()
    series = scrape().series("requests_total")
    assert series == {frozenset({"zone": "eu", "app": "shop", "method": "GET"}.items()): 201.0}


def test_metric_defined_only_in_another_process(
    load_redis_backend: LoadBackend, prefix: str
) -> None:
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    run_script("define", config, "child_only")
    parsed = scrape()
    assert parsed.value("made_in_child_total", {"who": "child"}) == 7.0
    assert parsed.helps["made_in_child"] == "Defined only by a child."
    assert parsed.types["made_in_child"] == "counter"
    promtool_check_metrics(parsed.text)
    assert "made_in_child" not in scrape(CollectorRegistry()).types
    # name[] filters apply to metrics of other processes too.
    assert [f.name for f in get_registry().collect(names=["made_in_child_total"])] == [
        "made_in_child"
    ]


def test_write_through_is_visible_at_once(load_redis_backend: LoadBackend) -> None:
    """flush_interval=0: when inc() returns, every process can read the change, even a
    process that then dies without any goodbye."""
    load_redis_backend(flush_interval=0)

    def run(_ctx: ChildContext) -> None:
        set_registry(CollectorRegistry())
        counter = Counter("written", "Written through.", ["n"])
        for i in range(50):
            counter.labels(n=str(i % 2)).inc()
        Histogram("wt_hist", "H.", buckets=[1]).observe(0.5)

    child = fork_child(run, exit_normally=False)  # os._exit: no atexit, no last flush
    child.result()
    assert child.wait() == 0
    parsed = scrape()
    assert parsed.series("written_total") == {
        frozenset({("n", "0")}): 25.0,
        frozenset({("n", "1")}): 25.0,
    }
    assert parsed.value("wt_hist_count") == 1
