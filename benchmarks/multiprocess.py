"""Section "Many processes": our Redis backend against prometheus_client's multiprocess mode.

Theirs is prometheus_client with ``PROMETHEUS_MULTIPROC_DIR`` set before it is imported
(mmap-ed files per process, read by ``MultiProcessCollector``), in ``mmap_worker.py``.
Ours is ``MultiProcessRedisBackend`` on a redis-server started for the section on a
loopback port. Every side of every row runs in a process of its own, forked from a
parent that has imported everything, with a fresh directory (theirs) or key prefix
(ours), and is timed there batch by batch, interleaved with the others in each round.

The rows, after ANCHORS.md:

* ``Counter.inc()`` and ``Histogram.observe(0.3)``: the cost per operation with the
  multiprocess machinery loaded (ours records locally; a background thread flushes).
* A scrape of 10,000 counter series (2 labels) that 4 writer processes each added to
  before exiting: ours ``generate_metrics(r).encode()``, which flushes and reads
  everything from Redis in a few round trips; theirs ``generate_latest(r)`` over a
  ``MultiProcessCollector`` reading the 4 processes' files.
* A scrape after 1,024 short-lived worker processes (2 at a time) each touched the same
  few series of a counter and a histogram and set a livesum gauge, then closed their
  backend (ours) or were marked dead (theirs, ``mark_process_dead`` as gunicorn users
  do): against the same scrape after 1 such worker, which the target is about.

Before timing, each scrape is checked: the number of sample lines and the exact sums.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _forked import FirstInProcess, ForkedContender, run_children
from _harness import Baseline, Case, Contender, Row, Section, Settings
from _redis_server import RedisServer
from _worker import Worker
from _workload import (
    BUCKETS,
    RESTART_LINES,
    RESTART_SERIES,
    check_scrape,
    label_values,
    observations,
    restart_totals,
    writer_amount,
    writer_totals,
)

from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry

__all__ = ["SECTION"]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mmap_worker.py"
WHO = "pytheus (ours, Redis)"

# ANCHORS.md's sizes, and small ones for --quick.
SERIES = 10_000
WRITERS = 4
RESTARTS = 1_024
QUICK_SERIES = 1_000
QUICK_RESTARTS = 64


# --------------------------------------------------------------------------- ours
# Each runs in a process forked for it (see ForkedContender) and loads its own backend.


def _load(url: str, prefix: str) -> MultiProcessRedisBackend:
    backend = load_backend(MultiProcessRedisBackend, {"url": url, "prefix": prefix})
    assert isinstance(backend, MultiProcessRedisBackend)
    return backend


def _flushed(backend: MultiProcessRedisBackend) -> None:
    if not backend.flush():
        raise RuntimeError(f"{backend!r} could not flush; is redis-server running?")


def ours_counter_inc(url: str, prefix: str) -> Case:
    backend = _load(url, prefix)
    c = Counter("bench_plain", "A counter without labels.", registry=CollectorRegistry())
    c.inc()
    _flushed(backend)
    return Case("c.inc()", {"c": c})


def ours_histogram_observe(url: str, prefix: str) -> Case:
    backend = _load(url, prefix)
    h = Histogram(
        "bench_plain_seconds", "A histogram.", registry=CollectorRegistry(), buckets=BUCKETS
    )
    h.observe(0.3)
    _flushed(backend)
    return Case("h.observe(0.3)", {"h": h})


def _scrape_case(registry: CollectorRegistry) -> tuple[Case, bytes]:
    case = Case(
        "generate_metrics(r).encode()", {"generate_metrics": generate_metrics, "r": registry}
    )
    return case, generate_metrics(registry).encode()


def ours_scrape_writers(
    url: str, prefix: str, series: int, processes: int, first: bool = False
) -> Case | Contender:
    """See :func:`mmap_worker.scrape_writers`."""
    backend = _load(url, prefix)
    registry = CollectorRegistry()
    c = Counter("bench_requests", "Requests.", required_labels=["a", "b"], registry=registry)

    def write(_: int) -> None:
        for i in range(series):
            a, b = label_values(i)
            c.labels({"a": a, "b": b}).inc(writer_amount(i))
        backend.close()  # the last flush, and the process leaves

    run_children(processes, write, concurrency=processes)
    if first:
        # Checked in a child of its own: this process must stay as cold as those timed.
        def check(_: int) -> None:
            body = generate_metrics(registry).encode()
            check_scrape(body, series, writer_totals(series, processes), WHO)
            backend.close()

        run_children(1, check)
        return FirstInProcess(lambda: generate_metrics(registry).encode(), backend.close)
    case, body = _scrape_case(registry)
    check_scrape(body, series, writer_totals(series, processes), WHO)
    return case


def ours_scrape_restarts(url: str, prefix: str, processes: int) -> Case:
    backend = _load(url, prefix)
    registry = CollectorRegistry()
    jobs = Counter("bench_jobs", "Jobs done.", required_labels=["a", "b"], registry=registry)
    latency = Histogram(
        "bench_job_seconds",
        "Job latency.",
        required_labels=["a", "b"],
        registry=registry,
        buckets=BUCKETS,
    )
    workers = Gauge(
        "bench_workers", "Live workers.", registry=registry, multiprocess_mode="livesum"
    )

    def work(_: int) -> None:
        for j in range(RESTART_SERIES):
            a, b = label_values(j)
            jobs.labels({"a": a, "b": b}).inc()
            child = latency.labels({"a": a, "b": b})
            for value in observations(j):
                child.observe(value)
        workers.set(1)
        backend.close()

    run_children(processes, work, concurrency=2)
    case, body = _scrape_case(registry)
    check_scrape(body, RESTART_LINES, restart_totals(processes), WHO)
    return case


# --------------------------------------------------------------------------- sides


class _Sides:
    """Makes the sides of the rows: theirs in the mmap worker, ours forked from here."""

    def __init__(self, worker: Worker, url: str, settings: Settings) -> None:
        self._worker = worker
        self._url = url
        self._seconds = settings.batch_seconds
        self._numbers = itertools.count(1)

    def theirs(self, key: str, **params: Any) -> Callable[[], Any]:
        return lambda: self._worker.contender(key, params, self._seconds)

    def ours(
        self, key: str, make: Callable[..., Case | Contender], **params: Any
    ) -> Callable[[], Any]:
        def side() -> ForkedContender:
            # A fresh key prefix per measurement: nothing left by another one is read.
            prefix = f"bench:{os.getpid()}:{next(self._numbers)}:{key}"
            build = functools.partial(make, self._url, prefix, **params)
            return ForkedContender(build, self._seconds, f"{WHO} {key}")

        return side


def _rows(sides: _Sides, settings: Settings, server_version: str) -> Sequence[Row]:
    series = QUICK_SERIES if settings.quick else SERIES
    restarts = QUICK_RESTARTS if settings.quick else RESTARTS
    return [
        Row("mp_counter_inc", "`Counter.inc()`", "ns",
            sides.theirs("mp_counter_inc"), sides.ours("mp_counter_inc", ours_counter_inc), 1.0,
            note=f"Ours: MultiProcessRedisBackend (flush_interval 1 s) on redis-server "
            f"{server_version}, loopback; theirs: PROMETHEUS_MULTIPROC_DIR set before import."),
        Row("mp_histogram_observe", "`Histogram.observe(0.3)`", "ns",
            sides.theirs("mp_histogram_observe"),
            sides.ours("mp_histogram_observe", ours_histogram_observe), 1.0,
            note="`Histogram.observe(0.3)`: the same 11 bounds (+Inf) on both sides."),
        Row("mp_scrape_writers", f"scrape of {series:,} series written by {WRITERS} processes",
            "ms", sides.theirs("mp_scrape_writers", series=series, processes=WRITERS),
            sides.ours("mp_scrape_writers", ours_scrape_writers, series=series,
                       processes=WRITERS), 0.15,
            note=f"Scrape of {series:,} counter series (2 labels), each added to by "
            f"{WRITERS} writer processes that then exited: ours `generate_metrics(r).encode()` "
            "(flush and read all from Redis, in slices of 1,000 fields), theirs "
            "`generate_latest(r)` "
            "with a `MultiProcessCollector` over the writers' files; from a process that "
            "wrote nothing, scraping again and again (ours keeps decoded label sets "
            "between scrapes)."),
        Row("mp_scrape_writers_first",
            f"scrape of {series:,} series written by {WRITERS} processes, first scrape of a "
            "fresh process", "ms",
            sides.theirs("mp_scrape_writers", series=series, processes=WRITERS, first=True),
            sides.ours("mp_scrape_writers_first", ours_scrape_writers, series=series,
                       processes=WRITERS, first=True), None,
            note="First scrape: each batch forks a process from the scraping one and times "
            "its first scrape (ours: a new connection, every label set decoded)."),
        Row("mp_scrape_restarts",
            f"scrape after {restarts:,} worker processes have come and gone", "ms",
            sides.theirs("mp_scrape_restarts", processes=restarts),
            sides.ours("mp_scrape_restarts", ours_scrape_restarts, processes=restarts), 1.2,
            baseline=Baseline(
                "scrape after 1 worker process has come and gone",
                sides.theirs("mp_scrape_restarts", processes=1),
                sides.ours("mp_scrape_restarts", ours_scrape_restarts, processes=1),
            ),
            # Our sub-millisecond scrapes are round trips, which a busy machine delays.
            rounds_factor=3,
            note=f"Workers (forked, 2 at a time) each add to the same {RESTART_SERIES} series "
            "of a counter and a histogram and set a livesum gauge, then exit: ours after "
            "`backend.close()`, theirs followed by `mark_process_dead(pid)`. In parentheses: "
            "the growth against the scrape after 1 worker (the line above, same rounds, "
            "three times as many as other rows); the target is on our growth."),
    ]  # fmt: skip


@contextlib.contextmanager
def build(settings: Settings) -> Iterator[Sequence[Row]]:
    """Start redis-server and the mmap worker, hold them while the rows run."""
    with tempfile.TemporaryDirectory(prefix="pytheus-bench-") as tmp:
        mmap_dir = Path(tmp) / "prometheus_multiproc"
        mmap_dir.mkdir()
        # The worker's environment: its own multiprocess directory, none of our settings.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHEUS_BACKEND_CLASS", "PYTHEUS_BACKEND_CONFIG")
        }
        env["PROMETHEUS_MULTIPROC_DIR"] = str(mmap_dir)
        server = RedisServer(Path(tmp) / "redis")
        with (
            server,
            contextlib.closing(
                Worker([sys.executable, str(WORKER)], env, "prometheus_client (mmap) worker")
            ) as worker,
        ):
            if worker.hello.get("value_class") != "MmapedValue":
                raise RuntimeError(
                    f"the mmap worker's prometheus_client is not in multiprocess mode: "
                    f"{worker.hello!r}"
                )
            yield _rows(_Sides(worker, server.url, settings), settings, server.version())


SECTION = Section(
    key="multiprocess",
    title="Many processes",
    theirs_name="prometheus_client mmap",
    ours_name="pytheus (ours, Redis)",
    build=build,
    notes=(
        "Every side runs in a process of its own, forked from a parent that imported "
        "everything; a fresh multiprocess directory (theirs) or Redis key prefix (ours) "
        "per measurement.",
    ),
)
