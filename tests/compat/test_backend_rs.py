"""pytheus-backend-rs 0.0.9 (the Rust backend written for pytheus 0.6.1, docs/rust_backend.md)
loads and counts through our per-value adapter, across processes, on a real redis-server.

It runs only in processes of its own: its Rust threads live until the interpreter exits and
then abort it when Redis is gone, which must not be the test runner's fate.
"""

from __future__ import annotations

import multiprocessing
import sys
import uuid

import pytest
import redis

from tests.core.helpers import parse_text
from tests.redis_backend.helpers import wait_for
from tests.servers import RedisServer

if sys.version_info >= (3, 12):  # pragma: no cover - it publishes no wheel for these
    pytest.skip("pytheus-backend-rs 0.0.9 has wheels up to CPython 3.11", allow_module_level=True)

CTX = multiprocessing.get_context("spawn")


def _load(port: int) -> str:
    from pytheus_backend_rs import RedisBackend

    from pytheus.backends import load_backend

    return type(load_backend(RedisBackend, {"host": "127.0.0.1", "port": port})).__name__


def _record_everything(port: int, name: str) -> tuple[str, str]:
    """Load the backend, record with every metric type, scrape once the writes landed."""
    from pytheus.exposition import generate_metrics
    from pytheus.metrics import Counter, Gauge, Histogram, Summary

    adapter = _load(port)
    counter = Counter(name, "Jobs.", required_labels=["queue"])
    counter.labels(queue="mail").inc(3)
    gauge = Gauge(f"{name}_gauge", "G.")
    gauge.set(5)
    gauge.inc()
    histogram = Histogram(f"{name}_seconds", "H.", buckets=[0.5, 1, 2.5])
    histogram.observe(0.7)
    histogram.observe(3)
    Summary(f"{name}_size", "S.").observe(2)
    # The backend writes from a thread of its own: wait until Redis has the last value.
    client = redis.Redis(port=port, decode_responses=True)
    wait_for(lambda: client.get(f"{name}_size:count") == "1", timeout=30, what="the writes")
    client.close()
    return adapter, generate_metrics()


def _worker(port: int, name: str, n: int) -> None:
    from pytheus.metrics import Counter, Histogram

    _load(port)
    counter = Counter(name, "Jobs.", required_labels=["queue"])
    histogram = Histogram(f"{name}_seconds", "J.", buckets=[0.1, 1])
    for _ in range(n):
        counter.labels(queue="mail").inc()
        histogram.observe(0.05)
    client = redis.Redis(port=port, decode_responses=True)
    wait_for(
        lambda: float(client.get(f"{name}_seconds:count") or 0) >= n,
        timeout=30,
        what="the Rust backend's writes",
    )
    client.close()


def _scrape(port: int, name: str) -> str:
    from pytheus.exposition import generate_metrics
    from pytheus.metrics import Counter, Histogram
    from pytheus.registry import CollectorRegistry

    _load(port)
    registry = CollectorRegistry()
    Counter(name, "Jobs.", required_labels=["queue"], registry=registry)
    Histogram(f"{name}_seconds", "J.", buckets=[0.1, 1], registry=registry)
    return generate_metrics(registry)


def test_loads_and_counts_through_the_adapter(redis_server: RedisServer) -> None:
    name = f"rs{uuid.uuid4().hex[:8]}_total"
    with CTX.Pool(1) as pool:
        adapter, text = pool.apply(_record_everything, (redis_server.port, name))
    assert adapter == "PerValueBackendAdapter"
    parsed = parse_text(text)
    assert parsed.value(name, {"queue": "mail"}) == 3.0
    assert parsed.value(f"{name}_gauge") == 6.0
    assert parsed.value(f"{name}_seconds_bucket", {"le": "0.5"}) == 0.0
    assert parsed.value(f"{name}_seconds_bucket", {"le": "1.0"}) == 1.0
    assert parsed.value(f"{name}_seconds_bucket", {"le": "+Inf"}) == 2.0
    assert parsed.value(f"{name}_seconds_sum") == pytest.approx(3.7)
    assert parsed.value(f"{name}_size_sum") == 2.0


@pytest.mark.slow
def test_counts_exactly_across_processes(redis_server: RedisServer) -> None:
    name = f"rs{uuid.uuid4().hex[:8]}_total"
    workers = [CTX.Process(target=_worker, args=(redis_server.port, name, 500)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with CTX.Pool(1) as pool:
        parsed = parse_text(pool.apply(_scrape, (redis_server.port, name)))
    assert parsed.value(name, {"queue": "mail"}) == 1000.0
    assert parsed.value(f"{name}_seconds_count") == 1000.0
    assert parsed.value(f"{name}_seconds_bucket", {"le": "0.1"}) == 1000.0
