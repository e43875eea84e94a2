"""Processes come and go: fork after use, gauges of live, killed and exited processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry, set_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    Child,
    ChildContext,
    fork_child,
    read_line,
    scrape,
    start_script,
    wait_for,
)

K = 1000


def test_fork_after_use_counts_everything_once(load_redis_backend: LoadBackend) -> None:
    """As gunicorn --preload: the master records, then forks workers that record too."""
    backend = load_redis_backend(flush_interval=60)  # only explicit flushes and exits
    work = Counter("work", "Work.", ["who"])
    latency = Histogram("lat", "Latency.", buckets=[1, 10])
    both = work.labels(who="everyone")
    work.labels(who="parent").inc(5)
    latency.observe(0.5)
    assert backend.flush()
    # Pending in the parent at fork time: the children inherit these values.
    work.labels(who="parent").inc(7)
    both.inc(100)
    latency.observe(5)

    def child_work(i: int) -> dict[str, Any]:
        child_backend = get_backend()
        assert isinstance(child_backend, MultiProcessRedisBackend)
        for _ in range(K):
            both.inc()
            latency.observe(20)
        work.labels(who=f"child{i}").inc(i)
        return {"process": child_backend.status()["process"]}

    children = [fork_child(lambda _ctx, i=i: child_work(i)) for i in range(1, 4)]
    processes = {c.result()["process"] for c in children}
    assert all(c.wait() == 0 for c in children)
    assert len(processes) == 3
    assert backend.status()["process"] not in processes

    parsed = scrape()  # flushes the parent's pending changes
    assert parsed.value("work_total", {"who": "parent"}) == 12
    assert parsed.value("work_total", {"who": "everyone"}) == 100 + 3 * K
    for i in range(1, 4):
        assert parsed.value("work_total", {"who": f"child{i}"}) == i
    assert parsed.value("lat_bucket", {"le": "1.0"}) == 1
    assert parsed.value("lat_bucket", {"le": "10.0"}) == 2
    assert parsed.value("lat_count") == 2 + 3 * K
    assert parsed.value("lat_sum") == 0.5 + 5 + 20 * 3 * K


def test_fork_does_not_multiply_summed_gauges(load_redis_backend: LoadBackend) -> None:
    """A gauge the master set before forking is the master's: workers that never touch it
    must not add it again to a summed gauge; modes that pick one value are unaffected."""
    backend = load_redis_backend(flush_interval=60)
    summed = Gauge("configured", "Set once by the master.", multiprocess_mode="livesum")
    highest = Gauge("highest", "Max.", multiprocess_mode="max")
    summed.set(4)
    highest.set(4)
    assert backend.flush()

    def child_work(ctx: ChildContext) -> None:
        backend = get_backend()
        assert isinstance(backend, MultiProcessRedisBackend)
        assert backend.flush()
        ctx.send("flushed")
        ctx.hold()

    children = [fork_child(child_work) for _ in range(3)]
    try:
        for c in children:
            assert c.result() == "flushed"
        parsed = scrape()
        assert parsed.value("configured") == 4
        assert parsed.value("highest") == 4
    finally:
        for c in children:
            c.release()
            c.wait()


MODES = ("sum", "livesum", "max", "livemax", "min", "livemin", "mostrecent", "livemostrecent")


def hold_gauges(value: float) -> Any:
    """A forked child's work: set a gauge of every mode, stay in progress until released."""

    def run(ctx: ChildContext) -> None:
        backend = get_backend()
        assert isinstance(backend, MultiProcessRedisBackend)
        set_registry(CollectorRegistry())
        served = Counter("served", "Served.")
        inprogress = Gauge("inprogress", "In progress.")  # livesum, the default
        gauges = [Gauge(f"g_{m}", "G.", multiprocess_mode=m) for m in MODES]
        per_process = [
            Gauge(f"p_{m}", "P.", ["x"], multiprocess_mode=m) for m in ("all", "liveall")
        ]
        served.inc(3)
        for g in gauges:
            g.set(value)
        for g in per_process:
            g.labels(x="1").set(value)
        with inprogress.track_inprogress():
            assert backend.flush()
            ctx.send(backend.status()["process"])
            ctx.hold()

    return run


def gauge_values(parsed: Any) -> dict[str, Any]:
    values: dict[str, Any] = {m: parsed.get(f"g_{m}") for m in MODES}
    for m in ("all", "liveall"):
        values[m] = sorted(parsed.series(f"p_{m}").values())
    values["inprogress"] = parsed.get("inprogress")
    values["served"] = parsed.get("served_total")
    return values


def test_gauge_modes_across_live_killed_and_exited_processes(
    load_redis_backend: LoadBackend,
) -> None:
    timeout = 1.0
    load_redis_backend(flush_interval=0.05, process_timeout=timeout)
    children: list[Child] = []
    try:
        # Set one after the other, so that "most recent" is the last one: 20.
        for value in (10, 30, 20):
            children.append(fork_child(hold_gauges(value)))
            children[-1].result()
            time.sleep(0.01)  # distinct set times even on a coarse clock
        parsed = scrape()
        assert gauge_values(parsed) == {
            "sum": 60, "livesum": 60, "max": 30, "livemax": 30, "min": 10, "livemin": 10,
            "mostrecent": 20, "livemostrecent": 20, "all": [10, 20, 30], "liveall": [10, 20, 30],
            "inprogress": 3, "served": 9,
        }  # fmt: skip
        assert len({dict(k)["pid"] for k in parsed.series("p_all")}) == 3

        # SIGKILL the one at 30: no goodbye. Live modes forget it after the timeout;
        # the others keep what their mode keeps of a dead process; its counts stay.
        killed = children.pop(1)
        killed.kill()
        assert killed.wait() == -9
        start = time.monotonic()
        wait_for(
            lambda: gauge_values(scrape())["inprogress"] == 2,
            timeout=timeout + 5,
            what="the killed process's in-progress count is gone",
        )
        assert time.monotonic() - start > timeout - 0.5  # not before it could have been
        # Reaped (folded, per-process fields deleted) on a flush after the timeout.
        wait_for(lambda: gauge_values(scrape())["all"] == [10, 20], timeout=timeout + 5)
        assert gauge_values(scrape()) == {
            "sum": 60, "livesum": 30, "max": 30, "livemax": 20, "min": 10, "livemin": 10,
            "mostrecent": 20, "livemostrecent": 20, "all": [10, 20], "liveall": [10, 20],
            "inprogress": 2, "served": 9,
        }  # fmt: skip

        # The one at 10 exits normally: gone from live modes at once, not after a timeout.
        exiting = children.pop(0)
        exiting.release()
        assert exiting.wait() == 0
        assert gauge_values(scrape()) == {
            "sum": 60, "livesum": 20, "max": 30, "livemax": 20, "min": 10, "livemin": 20,
            "mostrecent": 20, "livemostrecent": 20, "all": [20], "liveall": [20],
            "inprogress": 1, "served": 9,
        }  # fmt: skip
    finally:
        for c in children:
            c.kill()
            c.wait()


@pytest.mark.parametrize("mode", ["livesum", "sum"])
def test_a_process_that_exits_is_reaped_at_once(
    load_redis_backend: LoadBackend, prefix: str, mode: str
) -> None:
    """A real interpreter exiting normally: atexit closes the backend, which removes the
    process from Redis in its last flush, so no scrape waits for process_timeout."""
    backend = load_redis_backend(process_timeout=600)
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    proc = start_script("hold", config, 5, 30)
    try:
        process = read_line(proc)["ready"]
        parsed = scrape()
        assert parsed.value("inprogress") == 1
        assert parsed.value("g_sum") == 5
        assert backend.client.exists(backend.keys.gauges_of(process))
        proc.communicate("go\n", timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    parsed = scrape()
    assert parsed.get("inprogress") is None
    assert parsed.value("served_total") == 3
    assert parsed.value("g_sum") == 5  # a dead process's value, kept by "sum"
    assert parsed.value("g_max") == 5
    assert not backend.client.exists(backend.keys.gauges_of(process))
    assert not backend.client.zscore(backend.keys.procs, process)
    # No value of it is left (its sequence number is, for as long as its last flush
    # could be sent again).
    fields = backend.client.hkeys(backend.keys.family(f"g_{mode}"))
    assert not [f for f in fields if process in f and not f.startswith("\0q")], fields


@pytest.mark.parametrize("how", ["exits", "is killed"])
def test_reaping_a_process_with_infinite_gauges(
    load_redis_backend: LoadBackend, prefix: str, how: str
) -> None:
    """Redis refuses to add infinities: folding such a gauge must not abort the script
    halfway (a process never reaped, every later flush failing)."""
    backend = load_redis_backend(flush_interval=0.05, process_timeout=0.5)
    backend.flush()
    assert backend.status()["errors"] == 0

    def run(ctx: ChildContext) -> Any:
        child_backend = get_backend()
        assert isinstance(child_backend, MultiProcessRedisBackend)
        set_registry(CollectorRegistry())
        Gauge("up", "Summed.", multiprocess_mode="sum").set(float("inf"))
        Gauge("down", "Summed.", multiprocess_mode="sum").set(float("-inf"))
        Gauge("top", "Max.", multiprocess_mode="max").set(float("inf"))
        Gauge("busy", "Live.").set(1)
        assert child_backend.flush()
        if how == "is killed":
            ctx.send(child_backend.status()["process"])
            ctx.hold()
        child_backend.close()
        return [child_backend.status()["process"], child_backend.status()["errors"]]

    child = fork_child(run, exit_normally=how == "exits")
    if how == "exits":
        process, errors = child.result()
        assert errors == 0
        assert child.wait() == 0
    else:
        process = child.result()
        child.kill()
        child.wait()
    wait_for(
        lambda: not backend.client.exists(backend.keys.gauges_of(process)),
        timeout=5,
        what="the process is reaped",
    )
    parsed = scrape()
    assert parsed.value("up") == float("inf")
    assert parsed.value("down") == float("-inf")
    assert parsed.value("top") == float("inf")
    assert parsed.get("busy") is None
    # This process's flushes, which reaped it, kept working: one more has succeeded since.
    reaped_by = backend.status()["last_flush"]
    wait_for(
        lambda: (backend.status()["last_flush"] or 0) > (reaped_by or 0),
        timeout=10,
        what="another flush succeeded",
    )
    assert backend.status()["errors"] == 0
    assert backend.status()["healthy"]


def test_forks_while_the_flusher_is_busy_never_deadlock(load_redis_backend: LoadBackend) -> None:
    """fork() does not wait for a flush in flight; the child must still never inherit a
    lock held by the flusher (its own, or one of redis-py's connection pool)."""
    backend = load_redis_backend(flush_interval=0.0005)  # the flusher is always at work
    Counter("forked", "Forked.").inc()
    stop = threading.Event()

    def use_the_pool() -> None:
        # Another thread inside the client's connection pool, as the flusher (or an
        # application sharing the pool) is for a moment around every call; here the
        # moment is stretched, so that forks land in it.
        pool_lock = backend.client.connection_pool._lock
        while not stop.is_set():
            with pool_lock:
                time.sleep(0.002)
            time.sleep(0.0005)

    def child_flush(_ctx: ChildContext) -> bool:
        child_backend = get_backend()
        assert isinstance(child_backend, MultiProcessRedisBackend)
        return child_backend.flush()

    threads = [threading.Thread(target=use_the_pool)]
    for t in threads:
        t.start()
    try:
        for _ in range(30):
            child = fork_child(child_flush, exit_normally=False)
            try:
                assert child.result(timeout=10) is True
            finally:
                child.kill()
                child.wait()
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert backend.status()["healthy"]


def test_the_flusher_imports_nothing_a_fork_could_interrupt() -> None:
    """A module the flusher imports on first use (the idna codec, for getaddrinfo) is
    imported by the backend's own import: a fork() in the middle of that import, in the
    flusher thread, would leave the child unable to import it ever."""
    code = "import sys, pytheus.backends.redis; print('encodings.idna' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"
