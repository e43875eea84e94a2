"""One test per bug the hardening work found, on both backends where it matters.

Each was found by the property tests in ``test_bad_input.py`` (or while writing them); these
pin the exact case so that a regression names itself.
"""

from __future__ import annotations

import gc
import weakref
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import redis

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exceptions import InvalidValueError, LabelError, MetricDefinitionError
from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import CollectorRegistry
from tests.core.helpers import parse_openmetrics, parse_text
from tests.hardening.conftest import LoadRedis
from tests.servers import RedisServer, promtool_check_metrics


@pytest.fixture(params=["memory", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Run the test on the in-memory backend and on the Redis backend."""
    if request.param == "redis":
        load: LoadRedis = request.getfixturevalue("load_redis")
        load(flush_interval=60)
    else:
        request.getfixturevalue("fresh_registry")
    return str(request.param)


def scrape_both(registry: CollectorRegistry) -> str:
    text = generate_metrics(registry)
    promtool_check_metrics(text)
    parse_openmetrics(generate_openmetrics(registry))
    return text


@pytest.mark.usefixtures("backend_kind")
def test_lone_surrogates_in_label_values_and_help() -> None:
    """Bug: a lone surrogate (what os.fsdecode() makes of undecodable bytes) in a label
    value or help text could not be encoded to UTF-8, so every flush to Redis raised
    UnicodeEncodeError (not a Redis error: the flusher logged it and retried the same
    payload forever, and no metric reached Redis again); in memory, two values differing
    only in their surrogates were exposed as one label set twice."""
    registry = CollectorRegistry()
    c = Counter("files", "Files named \ud800.", ["name"], registry=registry)
    c.labels(name="a\ud800").inc()
    c.labels(name="a\udfff").inc(2)  # the same series once exposed: the same series
    Info("build", "B.", registry=registry).info({"path": "/tmp/\udcff"})
    Enum("phase", "P.", states=["x\ud800", "y"], registry=registry).state("y")
    parsed = parse_text(scrape_both(registry))
    assert parsed.value("files_total", {"name": "a\ufffd"}) == 3
    assert parsed.helps["files"] == "Files named \ufffd."
    assert parsed.value("build_info", {"path": "/tmp/\ufffd"}) == 1
    assert parsed.value("phase", {"phase": "x\ufffd"}) == 0


def test_a_lone_surrogate_does_not_stop_the_redis_flusher(load_redis: LoadRedis) -> None:
    backend = load_redis(flush_interval=60)
    registry = CollectorRegistry()
    g = Gauge("g", "G.", ["v"], registry=registry)
    g.labels(v="\ud83d").set(1)
    assert backend.flush()
    g.labels(v="ok").set(2)
    assert backend.flush()
    assert backend.status()["healthy"]
    reader = MultiProcessRedisBackend({**_config(backend), "flush_interval": 60})
    try:
        families = {f.name: f for f in reader.collect([], include_remote=True)}
    finally:
        reader.close()
    assert {s.labels["v"]: s.value for s in families["g"].samples} == {"\ufffd": 1, "ok": 2}


def _config(backend: MultiProcessRedisBackend) -> dict[str, object]:
    kwargs = backend.client.connection_pool.connection_kwargs
    return {"port": kwargs["port"], "prefix": backend.config.prefix}


NOT_FLOATS = [10**400, -(10**400), 1j, [1.0], None, "many", b"\xff"]


@pytest.mark.parametrize(
    "value",
    NOT_FLOATS,
    ids=["huge-int", "huge-negative-int", "complex", "list", "None", "str", "bytes"],
)
@pytest.mark.usefixtures("backend_kind")
def test_values_that_are_not_floats_are_refused_and_leave_no_trace(value: object) -> None:
    """Bug: an int past the float range raised OverflowError halfway through a histogram
    or summary (the count went up, the sum did not); a complex number was added into a
    gauge or a summary, and every later scrape raised TypeError; other non-numbers raised
    TypeError from deep inside. Now: InvalidValueError, and nothing recorded."""
    registry = CollectorRegistry()
    c = Counter("c", "C.", registry=registry)
    g = Gauge("g", "G.", registry=registry)
    h = Histogram("h", "H.", buckets=[1.0], registry=registry)
    s = Summary("s", "S.", registry=registry)
    for record in (c.inc, g.inc, g.dec, g.set, h.observe, s.observe):
        with pytest.raises(InvalidValueError, match="numbers that fit a float"):
            record(value)  # type: ignore[operator]
    parsed = parse_text(scrape_both(registry))
    assert parsed.value("c_total") == 0
    assert parsed.value("g") == 0
    assert parsed.value("h_count") == parsed.value("h_sum") == 0
    assert parsed.value("s_count") == parsed.value("s_sum") == 0


def test_numbers_float_accepts_still_record() -> None:
    registry = CollectorRegistry()
    g = Gauge("g", "G.", registry=registry)
    h = Histogram("h", "H.", buckets=[1.0], registry=registry)
    for value in (Decimal("0.25"), Fraction(1, 4), True, 2**1000):
        g.set(value)  # type: ignore[arg-type]
        h.observe(value)  # type: ignore[arg-type]
    assert registry.get_sample_value("g") == float(2**1000)
    assert registry.get_sample_value("h_count") == 4


def test_a_registry_that_dropped_series_is_not_kept_alive() -> None:
    """Bug: the counter of dropped series was kept in a WeakKeyDictionary keyed by its
    registry, and the counter references its registry: the key never died, so every
    registry whose metric ever reached max_series leaked, with all its metrics."""
    registry = CollectorRegistry()
    c = Counter("c", "C.", ["k"], registry=registry, max_series=1)
    for k in "abc":
        c.labels(k=k).inc()
    assert registry.get_sample_value("pytheus_dropped_series_total", {"metric": "c"}) == 2
    gone = weakref.ref(registry)
    del registry, c
    gc.collect()
    assert gone() is None
    other = CollectorRegistry()  # a new registry gets a counter of its own
    d = Counter("c", "C.", ["k"], registry=other, max_series=1)
    d.labels(k="a").inc()
    d.labels(k="b").inc()
    assert other.get_sample_value("pytheus_dropped_series_total", {"metric": "c"}) == 1


def test_summary_age_buckets_are_bounded() -> None:
    """Bug: Summary(age_buckets=10**12) allocated a list of 10**12 slices when its first
    series was made, until the kernel killed the process; age_buckets=2.0 passed the
    check and failed later with TypeError."""
    registry = CollectorRegistry()
    for bad in (10**12, 1001, 2.0, "5", 0):
        with pytest.raises(MetricDefinitionError, match="age_buckets"):
            Summary("s", "S.", quantiles=[0.5], age_buckets=bad, registry=registry)  # type: ignore[arg-type]
    for bad_age in ("600", None, float("nan")):
        with pytest.raises(MetricDefinitionError, match="max_age_seconds"):
            Summary("s", "S.", quantiles=[0.5], max_age_seconds=bad_age, registry=registry)  # type: ignore[arg-type]
    Summary("s", "S.", quantiles=[0.5], age_buckets=1000, registry=registry).observe(1)


@pytest.mark.parametrize(
    ("define", "error"),
    [
        (lambda r: Counter("c", "C.", 5, registry=r), MetricDefinitionError),
        (lambda r: Counter("c", "C.", ["a"], ["a"], registry=r), MetricDefinitionError),
        (lambda r: Histogram("h", "H.", buckets=[10**400], registry=r), MetricDefinitionError),
        (lambda r: Histogram("h", "H.", buckets="123", registry=r), MetricDefinitionError),
        (lambda r: Summary("s", "S.", quantiles=[0.5j], registry=r), MetricDefinitionError),
        (lambda r: Summary("s", "S.", quantiles=None, registry=r), MetricDefinitionError),
        (lambda r: Enum("e", "E.", states=5, registry=r), MetricDefinitionError),
        (lambda r: Gauge("g", "G.", multiprocess_mode=["sum"], registry=r), MetricDefinitionError),
        (lambda r: Counter("c", "C.", unit="total", registry=r), MetricDefinitionError),
        (lambda r: Counter("c", "C.", unit="_total", registry=r), MetricDefinitionError),
        (lambda r: Counter("c", "C.", ["a"], registry=r).labels(["a"]), LabelError),
        (lambda r: Counter("c", "C.", ["a"], registry=r).labels("a"), LabelError),
        (lambda r: Counter("c", "C.", registry=r).inc(1, exemplar=["id"]), InvalidValueError),
        (lambda r: Histogram("h", "H.", registry=r).observe(1, exemplar="id"), InvalidValueError),
        (lambda r: Info("i", "I.", registry=r).info([("k", "v")]), InvalidValueError),
    ],
)
def test_wrong_types_get_a_pytheus_error(
    fresh_registry: CollectorRegistry, define: Any, error: type[Exception]
) -> None:
    """Bug: these raised TypeError, AttributeError or OverflowError from deep inside (and a
    counter with unit "total" was accepted, then refused by OpenMetrics parsers: the
    exposition takes _total off its family name, and the unit with it)."""
    registry = CollectorRegistry()
    with pytest.raises(error) as info:
        define(registry)
    assert len(str(info.value)) > 30


def test_after_redis_restarts_empty_every_series_is_written_again(
    load_redis: LoadRedis, redis_server_factory: Any
) -> None:
    """Bug: after Redis restarted without persistence (or was flushed), a process sent only
    what changed from then on: a gauge set at start-up, an Info, an Enum and every counter
    that did not change were missing from every scrape (until they changed, for ever for
    most), and their definitions with them. Now the first flush finds Redis does not know
    the process, and the next writes everything again: gauges, info and state sets as they
    are, counters from what was counted since the last flush (Prometheus reads a reset)."""
    server = redis_server_factory()
    backend = load_redis(port=server.port, flush_interval=60)
    registry = CollectorRegistry()
    hits = Counter("hits", "H.", registry=registry)
    rare = Counter("rare", "R.", ["k"], registry=registry)
    temperature = Gauge("temperature", "T.", multiprocess_mode="mostrecent", registry=registry)
    build = Info("build", "B.", registry=registry)
    phase = Enum("phase", "P.", states=["idle", "busy"], registry=registry)
    latency = Histogram("latency", "L.", buckets=[1.0], registry=registry)
    hits.inc(5)
    rare.labels(k="a").inc(3)
    temperature.set(21.5)
    build.info({"version": "1.2"})
    phase.state("busy")
    latency.observe(0.5)
    assert backend.flush()
    server.kill()  # no persistence: it comes back empty
    server.start()
    hits.inc()
    assert backend.flush()  # finds Redis empty
    assert backend.flush()  # writes everything again
    reader = MultiProcessRedisBackend({**_config(backend), "flush_interval": 60})
    try:
        families = {f.name: f for f in reader.collect([], include_remote=True)}
    finally:
        reader.close()
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for name in ("hits", "rare", "temperature", "build", "phase", "latency")
        for s in families[name].samples
    }
    assert values[("hits_total", ())] == 1  # counted since the restart
    assert values[("rare_total", (("k", "a"),))] == 0  # there again, from zero
    assert values[("temperature", ())] == 21.5
    assert values[("build_info", (("version", "1.2"),))] == 1
    assert values[("phase", (("phase", "busy"),))] == 1
    assert values[("latency_count", ())] == 0


def test_a_closed_redis_backend_leaves_no_socket_open(redis_server: RedisServer) -> None:
    """Bug: close() flushed and stopped the flusher but left the connection pool's sockets
    open until the garbage collector found the backend: a leak in the application, and
    a ResourceWarning (an error under this suite's settings) in whichever later test ran
    the collector. A pool handed in by the caller stays theirs, open."""
    registry = CollectorRegistry()
    backend = MultiProcessRedisBackend({"port": redis_server.port, "prefix": "closing"})
    Counter("c", "C.", registry=registry)
    assert backend.flush()
    pool = backend.client.connection_pool
    backend.close()
    assert all(c._sock is None for c in pool._available_connections)  # type: ignore[attr-defined]
    assert backend.client.ping()  # a later call reconnects
    backend.client.close()

    # A pool handed in lends its connection settings: the backend's connections are in a
    # pool of its own, closed with it; the caller's stay open.
    shared = redis.ConnectionPool(port=redis_server.port)
    try:
        assert redis.Redis(connection_pool=shared).ping()
        other = MultiProcessRedisBackend({"connection_pool": shared, "prefix": "closing"})
        ours = other.client.connection_pool
        assert ours is not shared
        assert other.flush()
        other.close()
        assert all(c._sock is None for c in ours._available_connections)  # type: ignore[attr-defined]
        assert any(c._sock is not None for c in shared._available_connections)  # type: ignore[attr-defined]
    finally:
        shared.disconnect()
