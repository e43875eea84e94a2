"""series_ttl: series that nobody writes any more leave Redis; live gauges stay."""

from __future__ import annotations

import redis

from pytheus.metrics import Counter, Gauge, Histogram
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import scrape, wait_for


def test_idle_series_expire_per_series_not_per_key(
    load_redis_backend: LoadBackend, client: redis.Redis, prefix: str
) -> None:
    backend = load_redis_backend(series_ttl=0.5, flush_interval=0.05)
    c = Counter("c", "Help.", required_labels=["k"])
    h = Histogram("h", "Help.", required_labels=["k"], buckets=[1])
    g = Gauge("g", "Help.", required_labels=["k"], multiprocess_mode="livesum")
    c.labels(k="old").inc()
    h.labels(k="old").observe(0.5)
    g.labels(k="constant").set(7)
    backend.flush()
    assert scrape().get("c_total", {"k": "old"}) == 1

    def old_gone_new_kept() -> bool:
        c.labels(k="busy").inc()  # keeps one series of the same key written
        parsed = scrape()
        return (
            parsed.get("c_total", {"k": "old"}) is None
            and parsed.get("h_count", {"k": "old"}) is None
            and parsed.get("c_total", {"k": "busy"}) is not None
        )

    wait_for(old_gone_new_kept, timeout=10, what="the idle series expire")
    assert not any(f.startswith('["old"]') for f in client.hkeys(backend.keys.family("h")))
    # A live process's gauge is its current value, however long ago it was set.
    assert scrape().get("g", {"k": "constant"}) == 7


def test_expired_counter_comes_back_from_new_increments(load_redis_backend: LoadBackend) -> None:
    backend = load_redis_backend(series_ttl=0.3, flush_interval=0.05)
    c = Counter("c", "Help.", required_labels=["k"])
    c.labels(k="a").inc(5)
    other = c.labels(k="b")
    backend.flush()

    def a_expired() -> bool:
        other.inc()
        return scrape().get("c_total", {"k": "a"}) is None

    wait_for(a_expired, timeout=10, what="series a expires")
    c.labels(k="a").inc(2)
    # Prometheus reads the restart from 2 as a counter reset; nothing is double counted.
    assert scrape().get("c_total", {"k": "a"}) == 2


def test_without_ttl_nothing_expires(load_redis_backend: LoadBackend, client: redis.Redis) -> None:
    backend = load_redis_backend(flush_interval=0.05)
    Counter("c", "Help.").inc()
    backend.flush()
    assert not client.exists(backend.keys.touched("c"))
