"""Section "Capacity of one Redis": what Redis spends on processes that flush S changed series.

    .venv/bin/python benchmarks/run.py --section scale [--quick] [--json out.json]

The figures behind ``docs/scaling.md``'s model: Redis CPU per second = processes x
(per-flush cost + changed series x per-series cost) / flush_interval, and Redis memory
per series and per live process. Everything runs against a private redis-server on a
free loopback port, in processes forked from this one (a fork, not an interpreter start:
200 processes fit in this machine's memory). Only the public API is used (``load_backend``,
metrics, ``flush()``, ``generate_metrics()``) and Redis's own accounting (``INFO cpu``,
``INFO commandstats``, ``INFO memory``, ``SLOWLOG``), never the key layout: the section
measures whatever layout and scripts the backend has.

The phases, in order:

1. **Redis alone**: its own CPU per second (its timers), taken out of every window below.
2. **Memory per series**: one process writes ``N`` series of each type (counters,
   histograms with the default buckets, gauges, summaries without quantiles), in two
   families per type, one type at a time; the keys grow by so much (``MEMORY USAGE`` of
   every key: this Redis holds only ours).
3. **Scrape**: a fresh process with no metrics of its own scrapes all of it
   (``generate_metrics()``, as ``/metrics`` does) a few times: wall time and its own CPU
   per series, and Redis's CPU per series.
4. **Busy flushes**: ``B`` writer processes each flush ``K`` times, with ``S`` changed
   series per flush (a quarter of each type, spread over 8 families), paced, for several
   ``S`` (0: nothing of the application's; a flush still carries the backend's own
   statistics). Per flush: Redis's CPU (``INFO cpu``, the whole process: network and
   protocol included), the scripts' own time (``INFO commandstats``: wall-clock time
   inside Redis, which grows whenever Redis waits for a core), what the commands run
   inside the scripts cost, and the flusher's CPU in the writer (``time.thread_time()``
   around ``flush()``, which runs in the caller's thread). A least-squares line over the
   ``S > 0`` points gives the per-flush and per-series constants. Then a few more
   flushes per ``S`` with SLOWLOG at threshold 0: the time of each script per call, by
   SHA (named after :mod:`pytheus.backends.redis_scripts`).
5. **Replayed**: the script calls of one flush that changed nothing, caught on their way
   out and sent again one by one: Redis CPU per call of each script (a WRITE sent again is
   a duplicate, which shows the fixed part of its cost).
6. **Idle processes**: ``P`` processes that wrote one series per family, then only
   flush (their own flusher thread, ``flush_interval=1``): Redis memory per live
   process, and Redis CPU per such flush (counted by the script calls of an ``S = 0``
   flush of phase 4).
7. **The floor**: a trivial script (``return 1``) and ``PING``, called one by one: the
   least any call costs Redis; and scripts doing 100 ``redis.call`` or 100
   ``string.format('%.17g')``: what each costs inside a script (the parts of our
   scripts' cost that ``commandstats`` does not show).

Redis's CPU is what counts (the machine is shared: the load average is recorded with
every window). The busy writers use a long ``flush_interval`` and call ``flush()``
themselves, so that every flush is counted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis
from _forked import ChildError, fork_child, wait_child
from _harness import Settings
from _redis_server import RedisServer
from redis_stall import SlowLog, script_names

from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram, Summary
from pytheus.registry import CollectorRegistry, get_registry, set_registry

__all__ = ["SECTION", "ScaleResult", "fit_line"]

TYPES = ("counter", "histogram", "gauge", "summary")
FAMILIES_PER_TYPE = 2
# Commands of a script entry point: their time includes the commands the script runs.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
# Commands of this section itself (the parent's INFO, the floor), not of the backend.
OWN_COMMANDS = frozenset({"info", "config", "slowlog", "ping", "script", "hello", "client"})
# A flush interval the busy writers never reach: they call flush() themselves.
NEVER = 3600.0


@dataclass(frozen=True)
class Sizes:
    """How much to measure; ``quick`` is a smoke test of the whole section."""

    series_per_type: int  # phase 2
    scrapes: int  # phase 3
    writers: int  # phase 4
    changed: tuple[int, ...]  # S values of phase 4; 0: only the backend's own statistics
    flushes: int  # K, per writer and S
    period: float  # seconds between a writer's flushes
    slowlog_flushes: int
    idle: int  # P, phase 5
    idle_seconds: float
    alone_seconds: float
    floor_calls: int


FULL = Sizes(4000, 5, 4, (0, 50, 200, 800), 100, 0.025, 20, 200, 10.0, 2.0, 2000)
QUICK = Sizes(200, 2, 2, (0, 20, 200), 15, 0.01, 4, 6, 2.0, 0.5, 200)


# --------------------------------------------------------------------------- the workload


class Workload:
    """Two families of each type, with two labels; the series of a process."""

    def __init__(self) -> None:
        registry = CollectorRegistry()
        names = ["route", "code"]
        self.families: list[tuple[str, Any]] = []
        for j in range(FAMILIES_PER_TYPE):
            self.families += [
                ("counter", Counter(f"scale_requests_{j}", "Requests.", names, registry=registry)),
                (
                    "histogram",
                    Histogram(f"scale_latency_{j}_seconds", "Latency.", names, registry=registry),
                ),
                (
                    "gauge",
                    Gauge(f"scale_in_progress_{j}", "In progress.", names, registry=registry),
                ),
                ("summary", Summary(f"scale_size_{j}_bytes", "Sizes.", names, registry=registry)),
            ]
        self._children: dict[tuple[int, int], Any] = {}

    def touch(self, family: int, i: int, round_: int) -> None:
        """Change series ``i`` of ``family`` (a gauge gets a value it did not have)."""
        child = self._children.get((family, i))
        if child is None:
            metric = self.families[family][1]
            child = metric.labels(route=f"/route/{i}", code=str(200 + i % 5))
            self._children[(family, i)] = child
        kind = self.families[family][0]
        if kind == "counter":
            child.inc()
        elif kind == "gauge":
            child.set(round_ + 1)
        else:
            child.observe(0.001 * (round_ % 1000))

    def touch_spread(self, changed: int, round_: int) -> None:
        """Change ``changed`` series, as many in each family (a quarter of each type)."""
        n = len(self.families)
        for k in range(changed):
            self.touch(k % n, k // n, round_)

    def touch_type(self, kind: str, series: int, round_: int = 0) -> None:
        """Change ``series`` series of one type, spread over its families."""
        fams = [f for f, (k, _) in enumerate(self.families) if k == kind]
        for k in range(series):
            self.touch(fams[k % len(fams)], k // len(fams), round_)

    def change(self, kind: str, changed: int, round_: int) -> None:
        """``changed`` series of one type, or of every type alike (``kind="mixed"``)."""
        if kind == "mixed":
            self.touch_spread(changed, round_)
        else:
            self.touch_type(kind, changed, round_)


def _backend(url: str, flush_interval: float) -> MultiProcessRedisBackend:
    set_registry(CollectorRegistry())  # nothing of the parent's is scraped or flushed
    # One process_timeout for all, as in a deployment: a process reaps those silent for
    # longer than its own, so the idle processes (flush_interval=1, a 10 s default)
    # would reap the quiet writers and fold their gauges in the middle of a window.
    config = {"url": url, "prefix": "scale", "flush_interval": flush_interval}
    backend = load_backend(MultiProcessRedisBackend, {**config, "process_timeout": 2 * NEVER})
    assert isinstance(backend, MultiProcessRedisBackend)
    return backend


def _flushed(backend: MultiProcessRedisBackend) -> None:
    if not backend.flush():
        raise RuntimeError(f"{backend!r} could not flush: {backend.status()}")


# --------------------------------------------------------------------------- processes

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]


class Child:
    """A forked process that answers JSON requests, one line each, until told to quit.

    ``setup()`` runs in the child and returns the handler of requests and what to do
    on quitting. The child also quits when this process is gone.
    """

    def __init__(self, setup: Callable[[], tuple[Handler, Callable[[], object]]], what: str):
        self.what = what
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        parent = os.getpid()

        def body() -> int:
            os.close(request_w)
            os.close(reply_r)
            return _serve(setup, request_r, reply_w, parent)

        self._pid = fork_child(body)
        os.close(request_r)
        os.close(reply_w)
        self._requests: IO[str] | None = os.fdopen(request_w, "w", buffering=1)
        self._replies: IO[str] | None = os.fdopen(reply_r, "r")
        self.ask({"op": "ping"})

    def send(self, request: Mapping[str, Any]) -> None:
        if self._requests is None:
            raise ChildError(f"{self.what}: already stopped")
        self._requests.write(json.dumps(request) + "\n")

    def receive(self) -> dict[str, Any]:
        assert self._replies is not None
        line = self._replies.readline()
        if not line:
            raise ChildError(f"{self.what}: the process ended without an answer (see above).")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise ChildError(f"{self.what}: {reply['error']}")
        return reply

    def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def stop(self) -> None:
        if self._requests is None or self._replies is None:
            return
        # Explicitly: other forked processes hold copies of this pipe, so closing our
        # end would not be seen as the end of input.
        try:
            self._requests.write('{"op": "quit"}\n')
            self._requests.close()
        except BrokenPipeError:
            pass  # gone already; its exit code says why
        self._replies.close()
        self._requests = self._replies = None
        wait_child(self._pid, self.what)


def _serve(
    setup: Callable[[], tuple[Handler, Callable[[], object]]],
    request_r: int,
    reply_w: int,
    parent: int,
) -> int:
    replies = os.fdopen(reply_w, "w", buffering=1)
    handle, quit_ = setup()
    pending = b""
    while True:
        if not select.select([request_r], [], [], 1.0)[0]:
            if os.getppid() != parent:
                return 1  # orphaned: the runner is gone
            continue
        chunk = os.read(request_r, 65536)
        if not chunk:
            quit_()
            return 0
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            if request["op"] == "quit":
                quit_()
                return 0
            try:
                reply = {"ok": True} if request["op"] == "ping" else handle(request)
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            replies.write(json.dumps(reply) + "\n")


def loader(url: str) -> tuple[Handler, Callable[[], object]]:
    """Phase 2: writes ``n`` series of one type per request."""
    backend = _backend(url, NEVER)
    work = Workload()

    def handle(request: Mapping[str, Any]) -> dict[str, Any]:
        work.touch_type(request["type"], request["n"])
        _flushed(backend)
        return {"ok": True}

    return handle, backend.close


def scraper(url: str) -> tuple[Handler, Callable[[], object]]:
    """Phase 3: counts the series there are, then times full scrapes."""
    backend = _backend(url, NEVER)

    def handle(request: Mapping[str, Any]) -> dict[str, Any]:
        if request["op"] == "count":
            families = list(get_registry().collect_series())
            return {"series": sum(len(f.series) for f in families), "families": len(families)}
        walls, cpus, sizes = [], [], []
        for _ in range(request["rounds"]):
            wall, cpu = time.perf_counter(), time.process_time()
            body = generate_metrics()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
            sizes.append(len(body))
        return {"wall": walls, "cpu": cpus, "bytes": sizes}

    return handle, backend.close


def writer(url: str) -> tuple[Handler, Callable[[], object]]:
    """Phase 4: ``prepare`` makes the series (not timed), ``run`` flushes K times."""
    backend = _backend(url, NEVER)
    work = Workload()
    rounds = iter(range(1, 10**9))

    def handle(request: Mapping[str, Any]) -> dict[str, Any]:
        if request["op"] == "replay":
            return replay(url, backend, request["times"], request["alone_rate"])
        changed, kind = request["changed"], request["kind"]
        if request["op"] == "prepare":
            work.change(kind, changed, next(rounds))
            _flushed(backend)
            return {"ok": True}
        period, most = request["period"], request["flushes"]
        cpu = wall = 0.0
        failed = flushes = 0
        start = time.monotonic()
        # K flushes, or fewer if a loaded machine makes them slow: the section is bounded.
        end = start + most * period * 4
        for k in range(most):
            if k and time.monotonic() > end:
                break
            flushes += 1
            delay = start + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            work.change(kind, changed, next(rounds))
            t, w = time.thread_time(), time.perf_counter()
            failed += not backend.flush()
            cpu += time.thread_time() - t
            wall += time.perf_counter() - w
        return {"flushes": flushes, "failed": failed, "cpu": cpu, "wall": wall}

    return handle, backend.close


def replay(
    url: str, backend: MultiProcessRedisBackend, times: int, alone_rate: float
) -> dict[str, float]:
    """Redis CPU per call of each script call of a flush that changed nothing.

    The calls are caught on their way out (redis-py's pipeline), then sent again
    ``times`` times each. A WRITE sent again is a duplicate, which the script recognises
    and skips: its figure is the fixed part of a WRITE. A HEARTBEAT does the same work
    every time.
    """
    captured: list[tuple[Any, ...]] = []
    pipeline = redis.client.Pipeline
    original = pipeline.pipeline_execute_command

    def catch(self: Any, *args: Any, **options: Any) -> Any:
        captured.append(args)
        return original(self, *args, **options)

    pipeline.pipeline_execute_command = catch  # type: ignore[method-assign]
    try:
        _flushed(backend)
    finally:
        pipeline.pipeline_execute_command = original  # type: ignore[method-assign]
    client = redis.Redis.from_url(url)
    names = script_names()
    out: dict[str, float] = {}
    for args in captured:
        name = names.get(_text(args[1]), _text(args[0])) if len(args) > 1 else _text(args[0])
        before = Snapshot.take(client)
        for _ in range(times):
            client.execute_command(*args)  # type: ignore[no-untyped-call]
        w = Window.between(before, Snapshot.take(client), alone_rate)
        out[name if name not in out else f"{name} ({len(out) + 1})"] = w.cpu / times * 1e6
    client.close()
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class IdleFleet:
    """Phase 5: ``count`` processes that write one series per family, then change nothing.

    Two shared pipes instead of two per process: each says ``ready`` on one; each reads
    one byte of the other to learn it must leave (close its backend, exit).
    """

    def __init__(self, url: str, count: int, timeout: float = 180.0) -> None:
        self.count = count
        ready_r, ready_w = os.pipe()
        stop_r, self._stop_w = os.pipe()
        parent = os.getpid()

        def body() -> int:
            os.close(ready_r)
            os.close(self._stop_w)
            try:
                backend = _backend(url, 1.0)
                work = Workload()
                for family in range(len(work.families)):
                    work.touch(family, 0, 0)
                _flushed(backend)
            except Exception as exc:
                os.write(ready_w, f"error {type(exc).__name__}: {exc}\n".encode()[:500])
                raise
            os.write(ready_w, b"ready\n")
            while not select.select([stop_r], [], [], 1.0)[0]:
                if os.getppid() != parent:
                    return 1
            os.read(stop_r, 1)
            backend.close()
            return 0

        self._pids: list[int] = []
        try:
            for _ in range(count):
                self._pids.append(fork_child(body))
            os.close(ready_w)
            os.close(stop_r)
            deadline = time.monotonic() + timeout
            lines: list[str] = []
            with os.fdopen(ready_r, "r") as ready:
                while len(lines) < count:
                    if not select.select([ready], [], [], max(0.0, deadline - time.monotonic()))[0]:
                        raise ChildError(f"only {len(lines)} of {count} idle processes started")
                    line = ready.readline()
                    if not line:
                        raise ChildError("idle processes ended before they were ready")
                    if not line.startswith("ready"):
                        raise ChildError(f"an idle process failed: {line.strip()}")
                    lines.append(line)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self._pids:
            return
        pids, self._pids = self._pids, []
        try:
            os.write(self._stop_w, b"x" * len(pids))
        finally:
            os.close(self._stop_w)
            for pid in pids:
                wait_child(pid, "an idle process")


# --------------------------------------------------------------------------- Redis's view


@dataclass
class Snapshot:
    """Redis's accounting at one moment: CPU seconds and each command's calls and usec."""

    at: float
    cpu: float
    commands: dict[str, tuple[int, int]]
    load: float

    @classmethod
    def take(cls, client: redis.Redis) -> Snapshot:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        commands = {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()
        }
        return cls(
            time.monotonic(),
            float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            commands,
            os.getloadavg()[0],
        )


@dataclass
class Window:
    """What Redis did between two snapshots, its own timers' CPU taken out."""

    seconds: float
    cpu: float  # Redis CPU seconds, less what it spends alone
    commands: dict[str, tuple[int, int]]  # calls, usec
    load: float

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot, alone_rate: float = 0.0) -> Window:
        seconds = b.at - a.at
        commands = {}
        for name, (calls, usec) in b.commands.items():
            c0, u0 = a.commands.get(name, (0, 0))
            if calls > c0 and name not in OWN_COMMANDS:
                commands[name] = (calls - c0, usec - u0)
        return cls(seconds, b.cpu - a.cpu - alone_rate * seconds, commands, max(a.load, b.load))

    def scripts(self) -> tuple[int, int]:
        """Calls and usec of the script entry points (their inner commands included)."""
        calls = sum(c for n, (c, _) in self.commands.items() if n in SCRIPT_COMMANDS)
        usec = sum(u for n, (_, u) in self.commands.items() if n in SCRIPT_COMMANDS)
        return calls, usec

    def inner(self, per: int) -> dict[str, dict[str, float]]:
        """Commands run inside scripts (or on their own), per ``per`` (flushes)."""
        return {
            name: {"calls": calls / per, "usec": usec / per}
            for name, (calls, usec) in sorted(self.commands.items(), key=lambda kv: -kv[1][1])
            if name not in SCRIPT_COMMANDS
        }


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The least-squares line through ``(x, y)`` points: ``(intercept, slope)``."""
    xs, ys = zip(*points, strict=True)
    slope, intercept = statistics.linear_regression(xs, ys)
    return intercept, slope


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


# --------------------------------------------------------------------------- the phases


class Run:
    """One measurement: the phases above, against one private redis-server."""

    def __init__(self, url: str, sizes: Sizes) -> None:
        self.url = url
        self.sizes = sizes
        self.client = redis.Redis.from_url(url)
        self.alone_rate = 0.0

    def window(self, action: Callable[[], object]) -> Window:
        before = Snapshot.take(self.client)
        action()
        return Window.between(before, Snapshot.take(self.client), self.alone_rate)

    def alone(self) -> dict[str, float]:
        w = self.window(lambda: time.sleep(self.sizes.alone_seconds))
        self.alone_rate = w.cpu / w.seconds
        return {"cpu_per_second_us": self.alone_rate * 1e6, "load": w.load}

    def dataset(self) -> tuple[int, int]:
        """The bytes of every key (``MEMORY USAGE``, exact: this Redis holds only ours),
        and ``used_memory`` (connections and Redis's own structures included)."""
        keys = sum(
            self.client.memory_usage(key, samples=0) or 0
            for key in self.client.scan_iter(count=1000)
        )
        return keys, int(self.client.info("memory")["used_memory"])

    def memory(self, load: Child) -> dict[str, float]:
        n = self.sizes.series_per_type
        out = {}
        # What the process itself takes (its heartbeat, its own statistics) comes first.
        load.ask({"op": "write", "type": TYPES[0], "n": 0})
        before, _ = self.dataset()
        for kind in TYPES:
            load.ask({"op": "write", "type": kind, "n": n})
            after, _ = self.dataset()
            out[kind] = (after - before) / n
            before = after
        return out

    def scrape(self, scraper_: Child) -> dict[str, Any]:
        count = scraper_.ask({"op": "count"})
        rounds = self.sizes.scrapes
        reply: dict[str, Any] = {}
        w = self.window(lambda: reply.update(scraper_.ask({"op": "scrape", "rounds": rounds})))
        series = count["series"]
        return {
            "series": series,
            "families": count["families"],
            "bytes": reply["bytes"][-1],
            "first_wall_ms": reply["wall"][0] * 1e3,
            "wall_ms": _median(reply["wall"]) * 1e3,
            "cpu_ms": _median(reply["cpu"]) * 1e3,
            "wall_per_series_us": _median(reply["wall"]) / series * 1e6,
            "cpu_per_series_us": _median(reply["cpu"]) / series * 1e6,
            "redis_cpu_per_series_us": w.cpu / rounds / series * 1e6,
            "load": w.load,
        }

    def flushes(
        self, writers: Sequence[Child], changed: int, kind: str = "mixed"
    ) -> dict[str, Any]:
        sizes = self.sizes
        for w in writers:
            w.ask({"op": "prepare", "changed": changed, "kind": kind})
        run = {"op": "run", "changed": changed, "kind": kind, "period": sizes.period}
        replies: list[dict[str, Any]] = []

        def go(flushes: int) -> None:
            for w in writers:
                w.send({**run, "flushes": flushes})
            replies[:] = [w.receive() for w in writers]

        window = self.window(lambda: go(sizes.flushes))
        flushes = sum(r["flushes"] for r in replies)
        calls, usec = window.scripts()
        point: dict[str, Any] = {
            "kind": kind,
            "changed": changed,
            "flushes": flushes,
            "failed": sum(r["failed"] for r in replies),
            "seconds": window.seconds,
            "load": window.load,
            "redis_cpu_us": window.cpu / flushes * 1e6,
            "script_us": usec / flushes,
            "script_calls": calls / flushes,
            "flusher_cpu_us": sum(r["cpu"] for r in replies) / flushes * 1e6,
            "flush_wall_us": sum(r["wall"] for r in replies) / flushes * 1e6,
            "commands": window.inner(flushes),
        }
        # Each script's time per call, by SHA: SLOWLOG at threshold 0, in a window of its
        # own (logging every command costs Redis something too).
        log = SlowLog(self.client)
        try:
            go(sizes.slowlog_flushes)
            entries = log.take()
        finally:
            self.client.config_set("slowlog-log-slower-than", 10_000)
            self.client.config_set("slowlog-max-len", 128)
            self.client.slowlog_reset()
        logged = sum(r["flushes"] for r in replies)
        by_name: dict[str, list[float]] = {}
        for name, ms in entries:
            by_name.setdefault(name, []).append(ms * 1000)
        point["scripts"] = {
            name: {
                "calls_per_flush": len(us) / logged,
                "usec_per_call": statistics.fmean(us),
                "usec_per_flush": sum(us) / logged,
            }
            for name, us in sorted(by_name.items())
        }
        return point

    def idle(self, fleet_size: int, calls_per_flush: float) -> tuple[dict[str, Any], IdleFleet]:
        """``calls_per_flush``: script calls of a flush that changed nothing (the busy
        writers' ``S = 0`` point), to count the idle processes' flushes by."""
        data0, total0 = self.dataset()
        fleet = IdleFleet(self.url, fleet_size)
        data1, total1 = self.dataset()
        w = self.window(lambda: time.sleep(self.sizes.idle_seconds))
        calls, usec = w.scripts()
        flushes = max(1, round(calls / calls_per_flush))
        return {
            "processes": fleet_size,
            "memory_per_process": (data1 - data0) / fleet_size,
            "memory_per_process_with_connection": (total1 - total0) / fleet_size,
            "flushes": flushes,
            "seconds": w.seconds,
            "redis_cpu_us": w.cpu / flushes * 1e6,
            "script_us": usec / flushes,
            "commands": w.inner(flushes),
            "load": w.load,
        }, fleet

    def floor(self) -> dict[str, float]:
        """What Redis spends on a call of a script that does nothing, on each ``redis.call``
        a script makes, and on each ``string.format('%.17g')`` (how our scripts write
        numbers): the parts that a script's cost is made of."""
        n = self.sizes.floor_calls
        inner = 100

        def cpu_per_call(script: str) -> float:
            sha = self.client.script_load(script)

            def calls() -> None:
                for _ in range(n):
                    self.client.evalsha(sha, 0)

            return self.window(calls).cpu / n * 1e6

        empty = cpu_per_call("return 1")
        redis_call = cpu_per_call(f"for i = 1, {inner} do redis.call('EXISTS', 'x') end")
        formats = cpu_per_call(
            f"local t = {{}} for i = 1, {inner} do t[i] = string.format('%.17g', i / 7) end"
        )

        def pings() -> None:
            for _ in range(n):
                self.client.ping()

        return {
            "script_call_us": empty,
            "redis_call_in_script_us": (redis_call - empty) / inner,
            "number_format_in_script_us": (formats - empty) / inner,
            "ping_us": self.window(pings).cpu / n * 1e6,
        }


def measure(sizes: Sizes, progress: Callable[[str], object]) -> dict[str, Any]:
    """Every phase; the figures as a dict (see :class:`ScaleResult`)."""
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="pytheus-scale-") as tmp,
        RedisServer(Path(tmp)) as server,
    ):
        run = Run(server.url, sizes)
        out: dict[str, Any] = {"redis": server.version(), "sizes": sizes.__dict__}
        progress("scale: Redis alone")
        out["alone"] = run.alone()
        progress(f"scale: memory of {sizes.series_per_type:,} series of each type")
        url = server.url
        makers = [
            functools.partial(Child, functools.partial(writer, url), f"writer {i}")
            for i in range(sizes.writers)
        ]
        # Every process stays until the idle phase is measured: one that left would have
        # its gauges folded away by the others' heartbeats during the later windows,
        # which would add that work to their flushes and free memory under their feet.
        with contextlib.ExitStack() as stay:
            (load,) = stay.enter_context(_children(lambda: Child(lambda: loader(url), "loader")))
            out["memory_per_series"] = run.memory(load)
            progress("scale: full scrapes")
            scraping = stay.enter_context(_children(lambda: Child(lambda: scraper(url), "scraper")))
            out["scrape"] = run.scrape(scraping[0])
            progress(f"scale: {sizes.writers} writers flushing {list(sizes.changed)} series")
            writers = stay.enter_context(_children(*makers))
            out["points"] = [run.flushes(writers, changed) for changed in sizes.changed]
            # Each type alone, at the largest S: what a series of that type costs.
            progress(f"scale: {sizes.writers} writers flushing {sizes.changed[-1]} of each type")
            out["types"] = [run.flushes(writers, sizes.changed[-1], kind) for kind in TYPES]
            progress("scale: an idle flush's script calls, replayed")
            out["replay"] = writers[0].ask(
                {"op": "replay", "times": sizes.floor_calls, "alone_rate": run.alone_rate}
            )
            progress(f"scale: {sizes.idle} idle processes")
            quiet = next((p for p in out["points"] if p["changed"] == 0), None)
            idle, fleet = run.idle(sizes.idle, quiet["script_calls"] if quiet else 1.0)
            stay.callback(fleet.stop)
            out["idle"] = idle
        progress("scale: the floor")
        out["floor"] = run.floor()
    out["seconds"] = time.perf_counter() - started
    out["figures"] = figures(out)
    return out


@contextlib.contextmanager
def _children(*makers: Callable[[], Child]) -> Iterator[list[Child]]:
    """Start children one by one; stop every one started, whatever happens."""
    with contextlib.ExitStack() as stack:
        children = []
        for make in makers:
            child = make()
            stack.callback(child.stop)
            children.append(child)
        yield children


def figures(out: Mapping[str, Any]) -> dict[str, Any]:
    """The model's constants from a measurement (microseconds, bytes)."""
    points = [p for p in out["points"] if p["changed"] > 0]
    quiet = next((p for p in out["points"] if p["changed"] == 0), None)
    per_flush, per_series = fit_line([(p["changed"], p["redis_cpu_us"]) for p in points])
    script_flush, script_series = fit_line([(p["changed"], p["script_us"]) for p in points])
    flusher_flush, flusher_series = fit_line([(p["changed"], p["flusher_cpu_us"]) for p in points])
    f: dict[str, Any] = {
        "redis_cpu_per_flush_us": per_flush,
        "redis_cpu_per_series_us": per_series,
        "script_per_flush_us": script_flush,
        "script_per_series_us": script_series,
        "idle_flush_redis_cpu_us": out["idle"]["redis_cpu_us"],
        "idle_flush_script_us": out["idle"]["script_us"],
        "flusher_cpu_per_flush_us": flusher_flush,
        "flusher_cpu_per_series_us": flusher_series,
        "flusher_cpu_idle_flush_us": quiet["flusher_cpu_us"] if quiet else None,
        "memory_bytes_per_series": dict(out["memory_per_series"]),
        "memory_bytes_per_process": out["idle"]["memory_per_process"],
        "memory_bytes_per_process_with_connection": out["idle"][
            "memory_per_process_with_connection"
        ],
        "scrape_wall_per_series_us": out["scrape"]["wall_per_series_us"],
        "scrape_cpu_per_series_us": out["scrape"]["cpu_per_series_us"],
        "scrape_redis_cpu_per_series_us": out["scrape"]["redis_cpu_per_series_us"],
        "floor_script_call_us": out["floor"]["script_call_us"],
        "floor_ping_us": out["floor"]["ping_us"],
        "floor_redis_call_in_script_us": out["floor"]["redis_call_in_script_us"],
        "floor_number_format_in_script_us": out["floor"]["number_format_in_script_us"],
        "replayed_call_us": dict(out["replay"]),
    }
    # A type's series: its flushes' cost above the fitted per-flush cost, per series.
    f["redis_cpu_per_series_by_type_us"] = {
        p["kind"]: (p["redis_cpu_us"] - per_flush) / p["changed"] for p in out["types"]
    }
    f["script_per_series_by_type_us"] = {
        p["kind"]: (p["script_us"] - script_flush) / p["changed"] for p in out["types"]
    }
    f["examples"] = [example(f, 1000, changed, 1.0) for changed in (100, 200)]
    return f


def example(f: Mapping[str, Any], processes: int, changed: int, interval: float) -> dict[str, Any]:
    """The model applied: ``processes`` flushing ``changed`` series every ``interval``."""
    per_flush = f["redis_cpu_per_flush_us"] + changed * f["redis_cpu_per_series_us"]
    return {
        "processes": processes,
        "changed": changed,
        "flush_interval": interval,
        "redis_core_percent": processes * per_flush / interval / 1e6 * 100,
    }


# --------------------------------------------------------------------------- the report

TARGETS = {"redis_cpu_per_flush_us": 100.0, "redis_cpu_per_series_us": 1.0}


@dataclass
class ScaleResult:
    """What :data:`SECTION` measured; ``render()`` for the terminal, ``as_dict()`` for JSON."""

    key: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, **self.data}

    def render(self) -> str:
        d, f = self.data, self.data["figures"]
        rows: list[tuple[str, str, str]] = []

        def row(label: str, value: str, key: str = "") -> None:
            target = TARGETS.get(key)
            verdict = "-"
            if target is not None:
                verdict = f"<= {_us(target)}: {'PASS' if f[key] <= target else 'FAIL'}"
            rows.append((label, value, verdict))

        row(
            "Redis CPU per flush (fit, INFO cpu)",
            _us(f["redis_cpu_per_flush_us"]),
            "redis_cpu_per_flush_us",
        )
        row(
            "Redis CPU per changed series (fit, INFO cpu)",
            _us(f["redis_cpu_per_series_us"]),
            "redis_cpu_per_series_us",
        )
        row("scripts' time per flush (fit, commandstats)", _us(f["script_per_flush_us"]))
        row("scripts' time per changed series (fit)", _us(f["script_per_series_us"]))
        for kind, cost in f["redis_cpu_per_series_by_type_us"].items():
            script = f["script_per_series_by_type_us"][kind]
            row(
                f"Redis CPU / scripts' time per changed {kind} series",
                f"{_us(cost)} / {_us(script)}",
            )
        idle = d["idle"]
        row(
            f"Redis CPU per flush of an idle process ({idle['processes']} of them)",
            _us(f["idle_flush_redis_cpu_us"]),
        )
        flusher = f["flusher_cpu_per_flush_us"], f["flusher_cpu_per_series_us"]
        row("flusher CPU per flush (fit) / per series", " / ".join(map(_us, flusher)))
        if f["flusher_cpu_idle_flush_us"] is not None:
            row("flusher CPU per flush that changed nothing", _us(f["flusher_cpu_idle_flush_us"]))
        for kind, size in f["memory_bytes_per_series"].items():
            row(f"Redis memory per {kind} series", f"{size:,.0f} B")
        row(
            "Redis memory per live process (data / with its connection)",
            f"{f['memory_bytes_per_process']:,.0f} B / "
            f"{f['memory_bytes_per_process_with_connection']:,.0f} B",
        )
        s = d["scrape"]
        row(
            f"scrape of {s['series']:,} series: wall / CPU / Redis CPU per series",
            f"{_us(s['wall_per_series_us'])} / {_us(s['cpu_per_series_us'])} / "
            f"{_us(s['redis_cpu_per_series_us'])}",
        )
        row(
            "floor: Redis CPU of a `return 1` script call / a PING",
            f"{_us(f['floor_script_call_us'])} / {_us(f['floor_ping_us'])}",
        )
        row(
            "an idle flush's calls replayed, Redis CPU per call",
            ", ".join(f"{name} {_us(cpu)}" for name, cpu in f["replayed_call_us"].items()),
        )
        row(
            "floor: one `redis.call` / one `string.format('%.17g')` in a script",
            f"{_us(f['floor_redis_call_in_script_us'])} / "
            f"{_us(f['floor_number_format_in_script_us'])}",
        )
        for e in f["examples"]:
            row(
                f"{e['processes']:,} processes x {e['changed']} changed series, "
                f"flush_interval {e['flush_interval']:g} s",
                f"{e['redis_core_percent']:.0f}% of a Redis core",
            )

        out = [f"## {self.title}", "", *_table(("figure", "value", "target"), rows)]
        out += ["", "Per flush, by changed series (INFO cpu; commandstats; the writers' CPU):", ""]
        out += _table(
            (
                "changed",
                "of type",
                "flushes",
                "Redis CPU",
                "scripts",
                "script calls",
                "flusher CPU",
                "flush wall",
                "load",
            ),
            [
                (
                    str(p["changed"]),
                    p["kind"],
                    str(p["flushes"]),
                    _us(p["redis_cpu_us"]),
                    _us(p["script_us"]),
                    f"{p['script_calls']:.1f}",
                    _us(p["flusher_cpu_us"]),
                    _us(p["flush_wall_us"]),
                    f"{p['load']:.2f}",
                )
                for p in [*d["points"], *d["types"]]
            ],
        )
        out += ["", "Each script per call (SLOWLOG, by SHA):", ""]
        out += _table(
            ("changed", "of type", "script", "calls per flush", "per call", "per flush"),
            [
                (
                    str(p["changed"]),
                    p["kind"],
                    name,
                    f"{v['calls_per_flush']:.2f}",
                    _us(v["usec_per_call"]),
                    _us(v["usec_per_flush"]),
                )
                for p in [*d["points"], *d["types"]]
                for name, v in p["scripts"].items()
            ],
        )
        out += ["", "Commands run by the scripts per flush of an idle process:", ""]
        out += _commands(idle["commands"])
        top = d["points"][-1]
        out += [
            "",
            f"Commands run by the scripts per flush, at {top['changed']} changed series:",
            "",
        ]
        out += _commands(top["commands"])
        out += [
            "",
            f"- Redis {d['redis']}; alone it spends {d['alone']['cpu_per_second_us']:.0f} us of "
            f"CPU per second, taken out of every window. The series change as a quarter of "
            f"each type, over {len(TYPES) * FAMILIES_PER_TYPE} families.",
            f"- Took {d['seconds']:.0f} s. The figures as JSON:",
            "",
            json.dumps(f, indent=None),
        ]
        return "\n".join(out)


def _commands(commands: Mapping[str, Mapping[str, float]], top: int = 10) -> list[str]:
    """The most expensive commands (run by the scripts) per flush, as a table."""
    rows = [(n, f"{v['calls']:.1f}", _us(v["usec"])) for n, v in list(commands.items())[:top]]
    return _table(("command", "calls per flush", "time per flush"), rows)


def _us(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f} us"
    if abs(value) >= 10:
        return f"{value:.1f} us"
    return f"{value:.2f} us"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [list(header), *map(list, rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
    )
    return [fmt(lines[0]), rule, *(fmt(line) for line in lines[1:])]


@dataclass(frozen=True)
class ScaleSection:
    """The section as ``run.py`` knows it: ``measure(settings, progress)`` -> a result."""

    key: str = "scale"
    title: str = "Capacity of one Redis (scale)"

    def measure(self, settings: Settings, progress: Callable[[str], object]) -> ScaleResult:
        sizes = QUICK if settings.quick else FULL
        return ScaleResult(self.key, self.title, measure(sizes, progress))


SECTION = ScaleSection()
