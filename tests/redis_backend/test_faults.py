"""Redis hangs, crashes, comes back: the application never notices, nothing is lost.

Each test has a redis-server of its own to pause (SIGSTOP: connections are accepted,
nothing is answered, the worst case for a client) or kill. Outages last a deliberate
second or two: that is the scenario, not a wait for luck.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exceptions import BackendUnavailableError
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry, set_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import ChildContext, fork_child, scrape, wait_for
from tests.servers import RedisServer

pytestmark = pytest.mark.faults  # `-m faults` runs them with tests/hardening's

Factory = Callable[..., RedisServer]

# Small, so that a scrape during an outage fails fast: redis-py tries twice.
SOCKET_TIMEOUT = 0.25
# The paused-Redis test tells a network wait from a busy machine by its length. With Redis
# paused, a call that goes to the network waits for its whole socket timeout (1 s there);
# on a loaded two-core machine a thread is descheduled for tens of milliseconds (a fork()
# of pytest took 60 ms at a load of 15), rarely a few hundred. Half the timeout lies between.
PAUSED_SOCKET_TIMEOUT = 1.0
SLOWEST_CALL = PAUSED_SOCKET_TIMEOUT / 2
# A flush stuck on the network holds the flush lock. Held by the test for up to this long,
# it stands for a Redis that never answers: a call or a fork() that waited for the lock
# would take this long, however idle or busy the machine.
LOCK_HELD_FOR = 30.0

OUTAGE_LOG = "pytheus cannot reach Redis"


def increment_until_released(ctx: ChildContext) -> dict[str, Any]:
    """A worker under load: counts and observes, timing every call, until released."""
    backend = get_backend()
    assert isinstance(backend, MultiProcessRedisBackend)
    set_registry(CollectorRegistry())
    counter = Counter("loops", "Loop iterations.")
    histogram = Histogram("loop_seconds", "Observations.", buckets=[1, 2])
    count, slowest = 0, 0.0
    ctx.send("started")
    deadline = time.monotonic() + 30
    while not ctx.released() and time.monotonic() < deadline:
        start = time.perf_counter()
        counter.inc()
        histogram.observe(1.5)
        slowest = max(slowest, time.perf_counter() - start)
        count += 1
        if count % 50 == 0:
            time.sleep(0.001)  # leave the CPU to the others on a small machine
    return {"count": count, "slowest": slowest, "errors": backend.status()["errors"]}


@contextlib.contextmanager
def flush_lock_held(backend: MultiProcessRedisBackend) -> Iterator[None]:
    """Hold ``backend``'s flush lock in a thread of its own, as a flush stuck on a Redis
    that never answers does, for the duration of the block (LOCK_HELD_FOR at most)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with backend._flush_lock:
            taken.set()
            done.wait(LOCK_HELD_FOR)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        # The flusher may hold it now, for one call and one retry at most.
        assert taken.wait(4 * PAUSED_SOCKET_TIMEOUT), "the flush lock was never released"
        yield
    finally:
        done.set()
        holder.join(LOCK_HELD_FOR)


def outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(OUTAGE_LOG)]


@pytest.mark.slow
def test_redis_paused_under_load(
    load_redis_backend: LoadBackend,
    redis_server_factory: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pytheus.backends.redis")
    server = redis_server_factory()
    backend = load_redis_backend(
        server=server,
        flush_interval=0.05,
        socket_timeout=PAUSED_SOCKET_TIMEOUT,
        socket_connect_timeout=PAUSED_SOCKET_TIMEOUT,
    )
    mine = Counter("parent_work", "Work in the parent.")
    children = [fork_child(increment_until_released) for _ in range(2)]
    try:
        for c in children:
            assert c.result() == "started"
        wait_for(lambda: (scrape().get("loops_total") or 0) > 0, what="the workers flushed")

        server.pause()
        # A scrape fails, within its socket timeout, with the one exception type a view
        # turns into a 503.
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            generate_metrics()
        assert time.monotonic() - start < 10 * PAUSED_SOCKET_TIMEOUT
        # The failed scrape alone marks the backend unhealthy: wait for the flusher's own
        # failure too (a second error), which the count of errors below relies on.
        wait_for(lambda: backend.status()["errors"] >= 2, what="the flusher saw the outage")
        assert not backend.status()["healthy"]
        # Recording and defining in this process do not wait either, even while a flush
        # is stuck: the only thread that waits is the flusher.
        slowest = 0.0
        i = 0
        with flush_lock_held(backend):
            outage_end = time.monotonic() + 1.5
            while time.monotonic() < outage_end:
                start = time.perf_counter()
                mine.inc()
                Gauge(f"defined_during_outage_{i}", "Defined while Redis hangs.").set(i)
                assert not backend.status()["healthy"]  # a health page must not hang either
                slowest = max(slowest, time.perf_counter() - start)
                i += 1
                time.sleep(0.01)
            # Nor does fork() (gunicorn replacing a worker).
            start = time.perf_counter()
            forked = fork_child(lambda _ctx: mine.inc(), exit_normally=False)
            fork_time = time.perf_counter() - start
        forked.result()
        assert forked.wait() == 0
        assert slowest < SLOWEST_CALL, f"a call took {slowest * 1000:.1f} ms"
        assert fork_time < SLOWEST_CALL, f"fork() took {fork_time * 1000:.1f} ms"
        server.resume()

        wait_for(scrape, what="a scrape works again")
        for c in children:
            c.release()
        results = [c.result() for c in children]
    finally:
        for c in children:
            c.release()
            c.wait()
    for r in results:
        assert r["slowest"] < SLOWEST_CALL, f"an inc() took {r['slowest'] * 1000:.1f} ms"
        assert r["errors"] >= 1  # each worker's flusher saw the outage too
    total = sum(r["count"] for r in results)
    parsed = scrape()
    assert parsed.value("loops_total") == total
    assert parsed.value("loop_seconds_count") == total
    assert parsed.value("loop_seconds_sum") == 1.5 * total
    assert parsed.value("parent_work_total") == i
    assert parsed.value(f"defined_during_outage_{i - 1}") == i - 1
    # Logged once for the outage (not once per failed flush), and once when it ended.
    assert len(outage_logs(caplog)) == 1
    assert [r for r in caplog.records if "reaches Redis again" in r.getMessage()]
    # Counted: the scrape and the flushes of this process, and the workers' flushes.
    errors = parsed.value("pytheus_backend_errors_total")
    assert errors >= 2 + len(results)
    assert errors == backend.status()["errors"] + sum(r["errors"] for r in results)


@pytest.mark.slow
def test_redis_killed_and_restarted_under_load(
    load_redis_backend: LoadBackend,
    redis_server_factory: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash (SIGKILL, no final save) and a restart from the append-only file.

    With ``appendfsync always`` Redis answers a write only once it is on disk, so every
    flush a worker saw succeed survives; one that ran without its reply reaching the
    worker is sent again and recognised by its sequence number.
    """
    caplog.set_level(logging.WARNING, logger="pytheus.backends.redis")
    server = redis_server_factory(appendonly=True, extra_args=["--appendfsync", "always"])
    backend = load_redis_backend(
        server=server,
        flush_interval=0.02,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
    )
    children = [fork_child(increment_until_released) for _ in range(3)]
    try:
        for c in children:
            assert c.result() == "started"
        wait_for(lambda: (scrape().get("loops_total") or 0) > 0, what="the workers flushed")
        for _ in range(2):  # two crashes, the second one right after recovering
            server.kill()
            with pytest.raises(BackendUnavailableError):
                generate_metrics()
            wait_for(lambda: not backend.status()["healthy"], what="the outage was seen")
            server.start()
            wait_for(scrape, what="a scrape works again")
        for c in children:
            c.release()
        results = [c.result() for c in children]
    finally:
        for c in children:
            c.release()
            c.wait()
    total = sum(r["count"] for r in results)
    parsed = scrape()
    assert parsed.value("loops_total") == total
    assert parsed.value("loop_seconds_count") == total
    assert parsed.value("loop_seconds_bucket", {"le": "1.0"}) == 0
    assert parsed.value("pytheus_backend_errors_total") >= 2
    assert len(outage_logs(caplog)) == 2  # once per outage


def hold_gauges(ctx: ChildContext) -> None:
    set_registry(CollectorRegistry())
    Gauge("level", "Summed.", multiprocess_mode="sum").set(5)
    Gauge("busy", "Live sum.").set(1)
    Gauge("top", "Max.", multiprocess_mode="max").set(7)
    Counter("done", "Done.").inc(2)
    backend = get_backend()
    assert isinstance(backend, MultiProcessRedisBackend)
    assert backend.flush()
    ctx.send("ready")
    ctx.hold()


@pytest.mark.slow
def test_an_outage_longer_than_process_timeout_double_counts_nothing(
    load_redis_backend: LoadBackend, redis_server_factory: Factory
) -> None:
    """No process heartbeats while Redis hangs; when it is back, live processes must not
    be taken for dead (their gauges folded away and then written again on top)."""
    timeout = 0.6
    server = redis_server_factory()
    load_redis_backend(
        server=server,
        flush_interval=0.05,
        process_timeout=timeout,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
    )
    children = [fork_child(hold_gauges) for _ in range(2)]
    expected = {"level": 10.0, "busy": 2.0, "top": 7.0, "done_total": 4.0}

    def values() -> dict[str, float | None]:
        parsed = scrape()
        return {name: parsed.get(name) for name in expected}

    try:
        for c in children:
            assert c.result() == "ready"
        assert values() == expected
        server.pause()
        time.sleep(3 * timeout)  # the outage: longer than process_timeout
        server.resume()
        wait_for(lambda: values() == expected, timeout=5, what=f"values are {expected}")
        # And they stay so once every process has flushed a few times more.
        time.sleep(5 * 0.05 + SOCKET_TIMEOUT)
        assert values() == expected
    finally:
        for c in children:
            c.release()
            c.wait()


def test_a_definition_made_during_an_outage_reaches_redis(
    load_redis_backend: LoadBackend, redis_server_factory: Factory, prefix: str
) -> None:
    """A labelled metric without series yet: only its definition is to be sent."""
    server = redis_server_factory()
    backend = load_redis_backend(server=server, flush_interval=60, socket_timeout=SOCKET_TIMEOUT)
    assert backend.flush()
    server.kill()
    Counter("later", "Defined while Redis is down.", ["kind"])
    assert not backend.flush()
    server.start()
    assert backend.flush()
    assert backend.client.hexists(backend.keys.families, "later")
    assert backend.client.hexists(backend.keys.family("later"), "\0d")


@pytest.mark.parametrize("then", ["close", "scrape"])
def test_changes_made_after_a_failed_flush_are_not_left_behind(
    load_redis_backend: LoadBackend, redis_server_factory: Factory, prefix: str, then: str
) -> None:
    """A failed flush is sent again as it was; the flush that does so must also carry
    what changed since, above all the last one, at exit."""
    server = redis_server_factory(appendonly=True, extra_args=["--appendfsync", "always"])
    backend = load_redis_backend(server=server, flush_interval=60, socket_timeout=SOCKET_TIMEOUT)
    hits = Counter("hits", "Hits.")
    hits.inc(1)
    assert backend.flush()
    server.kill()
    hits.inc(10)
    assert not backend.flush()  # pending now: the 10, to be sent again as it was
    server.start()
    hits.inc(100)
    if then == "close":
        backend.close()
        assert float(backend.client.hget(backend.keys.family("hits"), "[]") or 0) == 111
        # That read reconnected a client the backend had closed: close it again, or its
        # socket is found unclosed by the garbage collector in some later test.
        backend.client.close()
    else:
        assert scrape().value("hits_total") == 111


def test_a_scrape_waiting_on_redis_leaves_the_garbage_collector_on(
    load_redis_backend: LoadBackend, redis_server_factory: Factory
) -> None:
    """A scrape builds its families with Python's cyclic GC paused (pytheus.gcpause), but
    reads them with it on: a scrape blocked on a frozen Redis, for as long as its socket
    timeout, must not hold the collector off for every thread of the application."""
    server = redis_server_factory()
    load_redis_backend(
        server=server,
        flush_interval=0.05,
        socket_timeout=PAUSED_SOCKET_TIMEOUT,
        socket_connect_timeout=PAUSED_SOCKET_TIMEOUT,
    )
    Counter("gc_watched", "Counted before Redis froze.").inc()
    assert "gc_watched_total 1.0" in generate_metrics()
    assert gc.isenabled()
    errors: list[BaseException] = []

    def blocked_scrape() -> None:
        try:
            generate_metrics()
        except BaseException as exc:
            errors.append(exc)

    server.pause()
    try:
        scraper = threading.Thread(target=blocked_scrape)
        scraper.start()
        seen: list[bool] = []
        deadline = time.monotonic() + 10 * PAUSED_SOCKET_TIMEOUT
        while scraper.is_alive() and time.monotonic() < deadline:
            seen.append(gc.isenabled())
            time.sleep(0.01)
        scraper.join(10 * PAUSED_SOCKET_TIMEOUT)
        assert not scraper.is_alive(), "the scrape did not give up within its socket timeout"
    finally:
        server.resume()
    assert len(errors) == 1
    assert isinstance(errors[0], BackendUnavailableError), errors
    assert len(seen) >= 10  # the scrape waited, and the collector was watched meanwhile
    assert all(seen), f"the collector was off during {seen.count(False)} of {len(seen)} looks"
