"""How long the Redis backend's commands hold Redis, at 10,000 and 100,000 series.

    .venv/bin/python benchmarks/redis_stall.py                      # 10k and 100k series
    .venv/bin/python benchmarks/redis_stall.py --series 2000 --json out.json

Redis runs one command at a time: while one of our Lua scripts runs, every other client
of that Redis (the application's cache ``GET``, another worker's flush) waits. This tool
starts a private redis-server on a free loopback port, has 4 writer processes record
``N`` series each (the same series: counters, histograms, gauges, plus one tiny family)
and flush them, then times a fresh process's scrapes, and reports, per phase:

* **Redis time** from Redis's own SLOWLOG (threshold 0: every command, with its
  execution time in microseconds, network excluded): the longest single command (a
  script call is one command) and the sum of them all;
* the wall time of the operation in the Python process, its CPU time, and how much of
  the wall time it spent waiting for Redis (its round trips' wall time less the CPU
  spent in them);
* during the full scrape, the worst latency that another client's ``GET`` saw (a
  process of its own, in a loop);
* for the writers' flush, whether its longest commands were long for their work (as
  many arguments as the others) or because the machine stopped Redis: Redis's CPU time
  beside the sum of the commands' durations, and how often its main thread was
  preempted. ``--redis-fifo`` runs Redis real-time, so that nothing preempts it.

Phases: the writers' first flush (every series is new), a cold full scrape (a fresh
process, nothing cached), warm full scrapes (text format, then OpenMetrics), a filtered
scrape (``name[]`` of the tiny family) and a one-family read as the admin page polls it.

Script calls are named by their SHA1 (every string of ``pytheus.backends.redis*`` that
holds ``redis.call`` is hashed); plain commands by their name. Speed goals are here, not
in the test suite: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import pkgutil
import resource
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from _redis_server import RedisServer

import pytheus.backends
from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry, get_registry, set_registry

WRITERS = 4
COLD_RUNS = 3  # fresh processes that each make one full scrape, alone
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SMALL = "bench_small"
# Commands of this tool itself (and of the GET prober), not of the backend.
NOT_OURS = {"slowlog", "config", "get", "ping", "info", "client", "hello", "select", "dbsize"}


# --------------------------------------------------------------------------- the workload


def family_plan(series: int) -> list[tuple[str, str, int]]:
    """(name, type, series) per family: 70% counters in 7 families, 20% histograms (10
    buckets) in 2, 10% gauges (mode max) in 1, and one tiny counter."""
    plan = [(f"bench_c{i}", "counter", series * 7 // 100) for i in range(7)]
    plan += [(f"bench_h{i}_seconds", "histogram", series // 10) for i in range(2)]
    plan += [("bench_g", "gauge", series // 10), (SMALL, "counter", 1)]
    return plan


def labels(i: int) -> dict[str, str]:
    return {"a": f"endpoint_{i // 100}", "b": f"code_{i % 100}"}


def define_and_record(series: int, registry: CollectorRegistry) -> int:
    """Define every family in ``registry`` and touch every series; return the series count."""
    total = 0
    for name, kind, n in family_plan(series):
        names = ["a", "b"]
        if kind == "counter":
            c = Counter(name, "A counter.", required_labels=names, registry=registry)
            for i in range(n):
                c.labels(labels(i)).inc(i % 7 + 1)
        elif kind == "histogram":
            h = Histogram(
                name, "A histogram.", required_labels=names, registry=registry, buckets=BUCKETS
            )
            for i in range(n):
                h.labels(labels(i)).observe((i % 40) * 0.05)
        else:
            g = Gauge(
                name, "A gauge.", required_labels=names, registry=registry, multiprocess_mode="max"
            )
            for i in range(n):
                g.labels(labels(i)).set(i)
        total += n
    return total


# --------------------------------------------------------------------------- Redis's view


def script_names() -> dict[str, str]:
    """SHA1 -> name of every Lua script string in the pytheus.backends.redis* modules."""
    names: dict[str, str] = {}
    for info in pkgutil.iter_modules(pytheus.backends.__path__, "pytheus.backends."):
        if not info.name.rsplit(".", 1)[1].startswith("redis"):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = attr
    return names


class SlowLog:
    """Every command Redis ran, with its duration, from SLOWLOG with threshold 0."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.names = script_names()
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 1_000_000)
        client.slowlog_reset()

    def reset(self) -> None:
        self.client.slowlog_reset()

    def take(self) -> list[tuple[str, float]]:
        """(command or script name, milliseconds) of every command since the last take."""
        return [(name, ms) for name, ms, _ in self.take_sized()]

    def take_sized(self) -> list[tuple[str, float, int]]:
        """As :meth:`take`, with how many arguments each command had."""
        raw = self.client.execute_command("SLOWLOG", "GET", -1)
        self.client.slowlog_reset()
        out = []
        for entry in raw:
            duration_us, args = entry[2], entry[3]
            if _text(entry[4]) == "?:0":
                continue  # a command run by a script: its time is in the script's
            args = [_text(a) for a in args]
            command = args[0].lower()
            if command in NOT_OURS:
                continue
            if command in ("evalsha", "evalsha_ro") and len(args) > 1:
                command = self.names.get(args[1], f"script {args[1][:8]}")
            elif command in ("eval", "eval_ro") and len(args) > 1:
                sha = hashlib.sha1(args[1].encode()).hexdigest()
                command = self.names.get(sha, "eval")
            out.append((command, duration_us / 1000, _arguments(args)))
        return out


def _arguments(args: list[str]) -> int:
    """How many arguments a call had: SLOWLOG keeps 32 of them and says how many more."""
    last = args[-1]
    if last.startswith("... (") and last.endswith(" more arguments)"):
        return len(args) - 1 + int(last[5:].split()[0])
    return len(args)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def summarize(entries: list[tuple[str, float, int]]) -> dict[str, Any]:
    if not entries:
        return {
            "commands": 0,
            "max_ms": 0.0,
            "p99_ms": 0.0,
            "median_ms": 0.0,
            "over_25ms": 0,
            "total_ms": 0.0,
            "longest": "",
        }
    longest = max(entries, key=lambda e: e[1])
    durations = sorted(ms for _, ms, _ in entries)
    by_name: dict[str, list[float]] = {}
    for name, ms, _ in entries:
        by_name.setdefault(name, []).append(ms)
    return {
        "commands": len(entries),
        "max_ms": round(longest[1], 2),
        "p99_ms": round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 2),
        "over_25ms": sum(ms > 25 for ms in durations),
        "median_ms": round(statistics.median(durations), 3),
        "total_ms": round(sum(durations), 2),
        "longest": longest[0],
        # The slowest calls and their sizes, beside the median size of their command's
        # calls: a call as large as the others that took much longer was stopped by the
        # machine (Redis waited for a CPU), not made longer by its work.
        "slowest": [
            {"command": name, "ms": round(ms, 2), "arguments": n}
            for name, ms, n in sorted(entries, key=lambda e: -e[1])[:10]
        ],
        "median_arguments": {
            name: statistics.median(n for c, _, n in entries if c == name)
            for name in {e[0] for e in entries}
        },
        "by_command": {
            name: {"calls": len(v), "max_ms": round(max(v), 2), "total_ms": round(sum(v), 2)}
            for name, v in sorted(by_name.items())
        },
    }


# --------------------------------------------------------------------------- processes


def fork(body: Callable[[int], Any]) -> tuple[int, int]:
    """Fork a child that runs ``body(write_fd)`` and sends its JSON result on a pipe."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        code = 1
        try:
            os.close(r)
            result = body(w)
            os.write(w, json.dumps(result).encode() + b"\n")
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def result_of(pid: int, fd: int) -> Any:
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        raise RuntimeError(f"child {pid} failed (its traceback is above)")
    return json.loads(data.splitlines()[-1])


@contextlib.contextmanager
def get_prober(port: int) -> Iterator[Callable[[], dict[str, float]]]:
    """A process doing GET in a loop; the callable returns its worst latencies so far."""
    control_r, control_w = os.pipe()

    def probe(out: int) -> dict[str, float]:
        os.close(control_w)
        client = redis.Redis(port=port)
        client.set("cache:key", "x" * 100)
        os.write(out, b"ready\n")
        latencies: list[float] = []
        while True:
            start = time.perf_counter()
            client.get("cache:key")
            latencies.append(time.perf_counter() - start)
            # A blocking check for "stop" every millisecond would itself add latency.
            if len(latencies) % 200 == 0:
                import select

                if select.select([control_r], [], [], 0)[0]:
                    break
        latencies.sort()
        return {
            "gets": len(latencies),
            "max_ms": round(latencies[-1] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        }

    pid, fd = fork(probe)
    os.close(control_r)
    ready = os.read(fd, 6)
    assert ready == b"ready\n", ready
    stopped: dict[str, float] = {}

    def stop() -> dict[str, float]:
        if not stopped:
            os.write(control_w, b"x")
            stopped.update(result_of(pid, fd))
        return stopped

    try:
        yield stop
    finally:
        if not stopped:
            with contextlib.suppress(Exception):
                stop()
        os.close(control_w)


class RoundTrips:
    """Times the backend's round trips to Redis (its ``_execute``): how much of a
    scrape's wall time is spent waiting for Redis (the round trips' wall time less the
    CPU this process spent in them, sending and parsing), and how many there were."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count, self.wall, self.cpu = 0, 0.0, 0.0

    def watch(self, backend: MultiProcessRedisBackend) -> None:
        execute = backend._execute

        def timed(add: Callable[[Any], object]) -> list[Any]:
            start, start_cpu = time.perf_counter(), time.process_time()
            try:
                return execute(add)
            finally:
                self.count += 1
                self.wall += time.perf_counter() - start
                self.cpu += time.process_time() - start_cpu

        backend._execute = timed  # type: ignore[method-assign]

    def figures(self) -> dict[str, Any]:
        return {
            "round_trips": self.count,
            "redis_wait_s": round(self.wall - self.cpu, 3),
            "round_trips_cpu_s": round(self.cpu, 3),
        }


def backend_for(url: str, prefix: str) -> MultiProcessRedisBackend:
    # A long flush_interval: only the flushes this tool makes (and the exit's). A long
    # socket timeout: a slow script must be measured, not given up on.
    config = {"url": url, "prefix": prefix, "flush_interval": 600, "socket_timeout": 120}
    backend = load_backend(MultiProcessRedisBackend, config)
    assert isinstance(backend, MultiProcessRedisBackend)
    return backend


def writer(url: str, prefix: str, series: int) -> Callable[[int], dict[str, Any]]:
    def run(_: int) -> dict[str, Any]:
        backend = backend_for(url, prefix)
        registry = CollectorRegistry()
        define_and_record(series, registry)
        start, start_cpu = time.perf_counter(), time.process_time()
        # A flush refused (Redis BUSY with another writer's script, a timeout) is tried
        # again, as the flusher would on its next interval; the refusals are counted.
        failures = 0
        while not backend.flush():
            failures += 1
            if failures > 30:
                raise RuntimeError("the first flush failed 30 times")
            time.sleep(1)
        first, first_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        backend.close()
        return {
            "first_flush_s": round(first, 3),
            "first_flush_cpu_s": round(first_cpu, 3),
            "failed_flushes": failures,
        }

    return run


def cold_reader(url: str, prefix: str) -> Callable[[int], dict[str, Any]]:
    """A fresh process's first full scrape, with nothing else running: the GET prober of
    :func:`reader` keeps a core busy (and Redis answering it), which on a two-core machine
    leaves the scrape part of a core."""

    def run(_: int) -> dict[str, Any]:
        backend_for(url, prefix)
        set_registry(CollectorRegistry())
        start, start_cpu = time.perf_counter(), time.process_time()
        body = generate_metrics().encode()
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        return {"wall_s": round(seconds, 3), "cpu_s": round(cpu, 3), "bytes": len(body)}

    return run


def reader(url: str, prefix: str, port: int, log: SlowLog) -> Callable[[int], dict[str, Any]]:
    """A fresh process: cold and warm full scrapes, a filtered scrape, a one-family read."""

    cpu: list[float] = []
    trips = RoundTrips()

    def timed(what: Callable[[], Any]) -> tuple[float, Any, list[tuple[str, float, int]]]:
        log.reset()
        trips.reset()
        start, start_cpu = time.perf_counter(), time.process_time()
        value = what()
        seconds = time.perf_counter() - start
        cpu.append(time.process_time() - start_cpu)
        return seconds, value, log.take_sized()

    def run(_: int) -> dict[str, Any]:
        trips.watch(backend_for(url, prefix))
        set_registry(CollectorRegistry())  # nothing defined here: every family is remote
        out: dict[str, Any] = {}
        with get_prober(port) as probe:
            seconds, body, entries = timed(lambda: generate_metrics().encode())
            out["scrape_cold"] = {
                "wall_s": round(seconds, 3),
                "cpu_s": round(cpu[-1], 3),
                **trips.figures(),
                "get_latency": probe(),
                "lines": body.count(b"\n"),
                **summarize(entries),
            }
        warm = []
        for _ in range(3):
            seconds, body, entries = timed(lambda: generate_metrics().encode())
            warm.append((seconds, entries, cpu[-1], trips.figures()))
        seconds, entries, cpu_s, waits = min(warm, key=lambda w: w[0])
        out["scrape_warm"] = {
            "wall_s": round(seconds, 3),
            "cpu_s": round(cpu_s, 3),
            **waits,
            "wall_s_median": round(statistics.median(w[0] for w in warm), 3),
            **summarize(entries),
        }
        # What Prometheus asks for: OpenMetrics (the second of two: warm).
        for _ in range(2):
            seconds, body, entries = timed(lambda: generate_openmetrics().encode())
        out["scrape_warm_openmetrics"] = {
            "wall_s": round(seconds, 3),
            "cpu_s": round(cpu[-1], 3),
            **trips.figures(),
            **summarize(entries),
        }
        for key, names in (("filtered", [f"{SMALL}_total"]), ("one_family", [SMALL])):
            runs = []
            for _ in range(5):
                seconds, families, entries = timed(lambda n=names: list(get_registry().collect(n)))
                assert [f.name for f in families] == [SMALL], families
                runs.append((seconds, entries))
            seconds, entries = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
            out[key] = {"wall_ms": round(seconds * 1000, 2), **summarize(entries)}
        # What the scraping process holds: the series read, and what it keeps of them.
        out["reader_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return out

    return run


# --------------------------------------------------------------------------- a run


def redis_cpu(pid: int) -> tuple[float, int]:
    """The redis-server's CPU seconds so far, and how often its main thread (the one
    that runs commands) was taken off a CPU while it still had work (preempted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    preempted = next(
        int(line.split()[1])
        for line in status.splitlines()
        if line.startswith("nonvoluntary_ctxt_switches")
    )
    return seconds, preempted


def measure(series: int, directory: Path, nice: int, fifo: bool) -> dict[str, Any]:
    with RedisServer(directory / f"redis-{series}") as server:
        if nice:
            # Closer to a Redis on a host of its own: a busy machine's scheduler would
            # otherwise stop it in the middle of a command, which SLOWLOG counts.
            os.setpriority(os.PRIO_PROCESS, server.pid, nice)
        if fifo:
            # Real-time: no ordinary process can take Redis's CPU while it runs a command,
            # so SLOWLOG's durations are the commands' own work.
            os.sched_setscheduler(server.pid, os.SCHED_FIFO, os.sched_param(1))
        client = redis.Redis(port=server.port)
        log = SlowLog(client)
        prefix = f"stall{series}"
        cpu_before, preempted_before = redis_cpu(server.pid)
        children = [fork(writer(server.url, prefix, series)) for _ in range(WRITERS)]
        flushes = [result_of(pid, fd) for pid, fd in children]
        cpu_after, preempted_after = redis_cpu(server.pid)
        written = log.take_sized()
        out: dict[str, Any] = {
            "series": series,
            "writers": WRITERS,
            "first_flush_wall_s": max(f["first_flush_s"] for f in flushes),
            "first_flush_cpu_s": max(f["first_flush_cpu_s"] for f in flushes),
            "failed_flushes": sum(f["failed_flushes"] for f in flushes),
            "writes": summarize(written),
            "writes_redis_cpu_s": round(cpu_after - cpu_before, 2),
            "writes_redis_preempted": preempted_after - preempted_before,
            "redis_used_memory_mb": round(client.info("memory")["used_memory"] / 2**20, 1),
        }
        alone = [result_of(*fork(cold_reader(server.url, prefix))) for _ in range(COLD_RUNS)]
        out["scrape_cold_alone"] = {
            "wall_s": statistics.median(r["wall_s"] for r in alone),
            "wall_s_range": [min(r["wall_s"] for r in alone), max(r["wall_s"] for r in alone)],
            "cpu_s": statistics.median(r["cpu_s"] for r in alone),
        }
        pid, fd = fork(reader(server.url, prefix, server.port, log))
        out.update(result_of(pid, fd))
        client.close()
        return out


def _over(summary: dict[str, Any]) -> str:
    return f"{summary['over_25ms']} of {summary['commands']}"


def _sizes(summary: dict[str, Any]) -> str:
    if not summary["commands"]:
        return "-"
    longest = summary["slowest"][0]
    return f"{longest['arguments']} / {summary['median_arguments'][longest['command']]}"


def _pm(summary: dict[str, Any]) -> str:
    return f"{summary['p99_ms']} / {summary['median_ms']}"


def report(results: list[dict[str, Any]]) -> str:
    rows = [
        ("writers' first flush: longest command (ms)", lambda r: r["writes"]["max_ms"]),
        ("writers' first flush: longest command is", lambda r: r["writes"]["longest"]),
        ("writers' first flush: p99 / median command (ms)", lambda r: _pm(r["writes"])),
        ("writers' first flush: commands over 25 ms, of all", lambda r: _over(r["writes"])),
        (
            "writers' first flush: arguments of the longest command / median of its kind",
            lambda r: _sizes(r["writes"]),
        ),
        (
            "writers' first flush: Redis CPU / sum of command times (s)",
            lambda r: f"{r['writes_redis_cpu_s']} / {round(r['writes']['total_ms'] / 1000, 2)}",
        ),
        (
            "writers' first flush: Redis preempted while busy (times)",
            lambda r: r["writes_redis_preempted"],
        ),
        ("writers' first flush: wall, slowest writer (s)", lambda r: r["first_flush_wall_s"]),
        ("writers' first flush: CPU, slowest writer (s)", lambda r: r["first_flush_cpu_s"]),
        ("writers' flushes refused (BUSY, timeout) before success", lambda r: r["failed_flushes"]),
        (
            f"full scrape, cold, alone: wall, median of {COLD_RUNS} fresh processes (range) (s)",
            lambda r: (
                f"{r['scrape_cold_alone']['wall_s']} "
                f"({r['scrape_cold_alone']['wall_s_range'][0]}-{r['scrape_cold_alone']['wall_s_range'][1]})"
            ),
        ),
        (
            "full scrape, cold, alone: CPU of the scraping process (s)",
            lambda r: r["scrape_cold_alone"]["cpu_s"],
        ),
        ("full scrape, cold, beside a GET loop: wall (s)", lambda r: r["scrape_cold"]["wall_s"]),
        ("full scrape, cold: CPU of the scraping process (s)", lambda r: r["scrape_cold"]["cpu_s"]),
        ("full scrape, cold: round trips", lambda r: r["scrape_cold"]["round_trips"]),
        (
            "full scrape, cold: waiting for Redis (s)",
            lambda r: r["scrape_cold"]["redis_wait_s"],
        ),
        ("full scrape, cold: longest command (ms)", lambda r: r["scrape_cold"]["max_ms"]),
        ("full scrape, cold: p99 / median command (ms)", lambda r: _pm(r["scrape_cold"])),
        ("full scrape, cold: commands over 25 ms, of all", lambda r: _over(r["scrape_cold"])),
        ("full scrape, cold: Redis time (ms)", lambda r: r["scrape_cold"]["total_ms"]),
        (
            "full scrape, cold: another client's worst GET (ms)",
            lambda r: r["scrape_cold"]["get_latency"]["max_ms"],
        ),
        ("full scrape, warm: wall, best of 3 (s)", lambda r: r["scrape_warm"]["wall_s"]),
        ("full scrape, warm: CPU of the scraping process (s)", lambda r: r["scrape_warm"]["cpu_s"]),
        ("full scrape, warm: round trips", lambda r: r["scrape_warm"]["round_trips"]),
        (
            "full scrape, warm: waiting for Redis (s)",
            lambda r: r["scrape_warm"]["redis_wait_s"],
        ),
        ("full scrape, warm: Redis time (ms)", lambda r: r["scrape_warm"]["total_ms"]),
        ("full scrape, warm: longest command (ms)", lambda r: r["scrape_warm"]["max_ms"]),
        (
            "full scrape, warm, OpenMetrics: wall (s)",
            lambda r: r["scrape_warm_openmetrics"]["wall_s"],
        ),
        (
            "full scrape, warm, OpenMetrics: CPU of the scraping process (s)",
            lambda r: r["scrape_warm_openmetrics"]["cpu_s"],
        ),
        ("filtered scrape (name[]): Redis time (ms)", lambda r: r["filtered"]["total_ms"]),
        ("filtered scrape (name[]): longest command (ms)", lambda r: r["filtered"]["max_ms"]),
        ("filtered scrape (name[]): wall (ms)", lambda r: r["filtered"]["wall_ms"]),
        ("one-family read (admin poll): Redis time (ms)", lambda r: r["one_family"]["total_ms"]),
        ("one-family read (admin poll): wall (ms)", lambda r: r["one_family"]["wall_ms"]),
        ("Redis used_memory (MB)", lambda r: r["redis_used_memory_mb"]),
        ("scraping process: peak RSS (MB)", lambda r: r["reader_max_rss_mb"]),
    ]
    head = "| measure | " + " | ".join(f"{r['series']:,} series" for r in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--series", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--redis-nice",
        type=int,
        default=0,
        help="the redis-server's nice value (-10: fewer pauses on a busy machine; needs root)",
    )
    parser.add_argument(
        "--redis-fifo",
        action="store_true",
        help="run the redis-server real-time (SCHED_FIFO; needs root): no other process "
        "can pause it in the middle of a command, so command durations are their own work",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    results = []
    with tempfile.TemporaryDirectory(prefix="redis-stall-") as tmp:
        for series in args.series:
            print(f"measuring {series:,} series ...", file=sys.stderr, flush=True)
            results.append(measure(series, Path(tmp), args.redis_nice, args.redis_fifo))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
