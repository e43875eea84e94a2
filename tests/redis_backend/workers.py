"""Code that runs in the child processes of the Redis backend tests.

Importable by ``multiprocessing`` (fork and spawn start methods) and runnable as a script::

    python -m tests.redis_backend.workers record '{"port": 6379, "prefix": "t1"}' 1000

Each command prints one JSON line as its result and exits normally, so pytheus's atexit
handler makes the last flush, as it would in an application.
"""

from __future__ import annotations

import json
import select
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytheus.backends import get_backend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import CollectorRegistry, set_registry

#: Observations cycle through these: exact in binary, one per bucket of BUCKETS (and +Inf).
OBSERVED = (0.25, 1.0, 4.0, 100.0)
BUCKETS = (0.5, 2.0, 8.0)
MODES = ("sum", "max", "min")


@dataclass
class AllTypes:
    counter: Counter
    gauges: dict[str, Gauge]
    histogram: Histogram
    summary: Summary
    info: Info
    enum: Enum


def use_backend(config: Mapping[str, Any]) -> MultiProcessRedisBackend:
    """The Redis backend for ``config``: the one inherited through fork, or a new one."""
    backend = get_backend()
    if isinstance(backend, MultiProcessRedisBackend) and backend.config.prefix == config["prefix"]:
        return backend
    # A fresh interpreter (spawn, script): nothing defined yet, so nothing is re-sent.
    set_registry(CollectorRegistry())
    loaded = load_backend(MultiProcessRedisBackend, dict(config))
    assert isinstance(loaded, MultiProcessRedisBackend)
    return loaded


def define_all_types() -> AllTypes:
    """One metric of every type, in a fresh registry of this process."""
    set_registry(CollectorRegistry())
    return AllTypes(
        counter=Counter("jobs", "Jobs done.", required_labels=["kind", "queue"]),
        gauges={
            mode: Gauge(f"{mode}_level", f"A level ({mode}).", multiprocess_mode=mode)
            for mode in MODES
        },
        histogram=Histogram("latency_seconds", "Latency.", buckets=BUCKETS),
        summary=Summary("size_bytes", "Sizes."),
        info=Info("build", "Build information."),
        enum=Enum("phase", "Phase.", states=["starting", "running", "stopped"]),
    )


def record_all_types(config: Mapping[str, Any], ops: int, index: int) -> dict[str, Any]:
    """``ops`` operations on every type; ``index`` (1..N) is this process's number."""
    use_backend(config)
    m = define_all_types()
    jobs_a = m.counter.labels(kind="a", queue="q")
    jobs_b = m.counter.labels(queue="q", kind="b")
    for i in range(ops):
        jobs_a.inc()
        jobs_b.inc(0.5)
        m.gauges["sum"].inc()
        m.histogram.observe(OBSERVED[i % len(OBSERVED)])
        m.summary.observe(2.0)
    m.gauges["max"].set(index)
    m.gauges["min"].set(index)
    m.info.info({"version": "1.2", "commit": "abc"})
    m.enum.state("running")
    return {"index": index}


def record_labels(config: Mapping[str, Any], reverse: bool, ops: int) -> None:
    """The same series, with labels declared and given in one order or the other."""
    use_backend(config)
    set_registry(CollectorRegistry())
    names = ["zone", "app", "method"]
    values = {"zone": "eu", "app": "shop", "method": "GET"}
    if reverse:
        names.reverse()
        values = dict(reversed(values.items()))
    counter = Counter("requests", "Requests.", required_labels=names)
    for _ in range(ops):
        if reverse:
            counter.labels(method="GET", app="shop", zone="eu").inc()
        else:
            counter.labels(values).inc()


def hold(config: Mapping[str, Any], value: float, stdin_timeout: float) -> None:
    """Set gauges of every mode to ``value`` and stay in progress until told (on stdin)."""
    backend = use_backend(config)
    set_registry(CollectorRegistry())
    served = Counter("served", "Requests served.")
    inprogress = Gauge("inprogress", "Requests in progress.")  # livesum
    gauges = {mode: Gauge(f"g_{mode}", "A gauge.", multiprocess_mode=mode) for mode in MODES}
    served.inc(3)
    for g in gauges.values():
        g.set(value)
    with inprogress.track_inprogress():
        assert backend.flush()
        print(json.dumps({"ready": backend.status()["process"]}), flush=True)
        select.select([sys.stdin], [], [], stdin_timeout)


def loop(config: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Increment as fast as possible for ``seconds``; report the count and the slowest call."""
    use_backend(config)
    set_registry(CollectorRegistry())
    counter = Counter("loops", "Loop iterations.")
    count, slowest = 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        counter.inc()
        slowest = max(slowest, time.perf_counter() - start)
        count += 1
        if count % 100 == 0:
            time.sleep(0.001)  # leave the CPU to the others on a small machine
    return {"count": count, "slowest": slowest}


def count_until_told(config: Mapping[str, Any], index: int, seconds: float) -> dict[str, Any]:
    """Count (a series per worker ``index``) until a line arrives on stdin or ``seconds``
    pass, as an application under load would, never stopping for Redis; then close the
    backend (the last flush) and report the count, the slowest inc() and whether Redis
    took the last flush."""
    backend = use_backend(config)
    set_registry(CollectorRegistry())
    events = Counter("app_events", "Events counted.", required_labels=["worker"])
    mine = events.labels(worker=str(index))
    mine.inc()
    count, slowest = 1, 0.0
    # Ready once Redis took this process's first flush.
    deadline = time.monotonic() + 30
    while not backend.flush() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(json.dumps({"ready": backend.status()["process"]}), flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        mine.inc()
        slowest = max(slowest, time.perf_counter() - start)
        count += 1
        if count % 50 == 0:
            time.sleep(0.002)  # a busy application, not a spinning one
            if select.select([sys.stdin], [], [], 0)[0]:
                break
    took = backend.close()
    return {"count": count, "slowest": slowest, "closed": took}


def define_only(config: Mapping[str, Any], kind: str) -> None:
    """Define (and use) one metric, in one of two incompatible ways."""
    use_backend(config)
    set_registry(CollectorRegistry())
    if kind == "child_only":
        Counter("made_in_child", "Defined only by a child.", required_labels=["who"]).labels(
            who="child"
        ).inc(7)
    elif kind == "buckets_a":
        Histogram("shared_hist", "Shared.", buckets=[1, 2]).observe(1.5)
    elif kind == "buckets_b":
        Histogram("shared_hist", "Shared.", buckets=[5, 10]).observe(1.5)
    else:
        raise ValueError(kind)
    backend = get_backend()
    assert isinstance(backend, MultiProcessRedisBackend)
    assert backend.flush()


COMMANDS = {
    "record": record_all_types,
    "hold": hold,
    "loop": loop,
    "count": count_until_told,
    "define": define_only,
}


def main(argv: list[str]) -> None:
    command, *args = argv
    result = COMMANDS[command](*(json.loads(a) for a in args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
