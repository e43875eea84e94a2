"""prometheus_client in multiprocess mode, for the "Many processes" section.

prometheus_client chooses how it keeps values when it is imported: with
``PROMETHEUS_MULTIPROC_DIR`` set, every value lives in an mmap-ed file per process and
metric type under that directory, and a scrape (``MultiProcessCollector``) reads them all.
The runner's prometheus_client was imported without it, so this script runs in a Python
of its own, started by ``multiprocess.py`` with the variable set, and speaks
``_worker.py``'s protocol. Its hello is ``{"prometheus_client", "value_class", "keys"}``.

Every side it prepares runs in a child forked for it (:class:`_forked.ForkedContender`)
with a fresh directory: this process itself never records a value, because after a
fork prometheus_client copies every value the parent ever created into the child's files.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _forked import FirstInProcess, ForkedContender, run_children
from _harness import Case, Contender
from _worker import serve
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
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

WHO = "prometheus_client (mmap)"


def _use(directory: Path) -> None:
    # Read when a process opens its files: at its first value, and again after a fork.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def counter_inc(params: Mapping[str, Any], directory: Path) -> Case:
    _use(directory)
    c = Counter("bench_plain", "A counter without labels.", registry=CollectorRegistry())
    return Case("c.inc()", {"c": c})


def histogram_observe(params: Mapping[str, Any], directory: Path) -> Case:
    _use(directory)
    h = Histogram(
        "bench_plain_seconds", "A histogram.", registry=CollectorRegistry(), buckets=BUCKETS
    )
    return Case("h.observe(0.3)", {"h": h})


def _scrape_case(directory: Path) -> tuple[Case, bytes]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    case = Case("generate_latest(r)", {"generate_latest": generate_latest, "r": registry})
    return case, generate_latest(registry)


def scrape_writers(params: Mapping[str, Any], directory: Path) -> Case | Contender:
    """``processes`` writers add to each of ``series`` counter series, then exit.

    With ``first``, each batch is the first scrape of a newly forked process.
    """
    _use(directory)
    series, processes = params["series"], params["processes"]
    c = Counter("bench_requests", "Requests.", ["a", "b"], registry=CollectorRegistry())

    def write(_: int) -> None:
        for i in range(series):
            c.labels(*label_values(i)).inc(writer_amount(i))

    run_children(processes, write, concurrency=processes)
    case, body = _scrape_case(directory)
    check_scrape(body, series, writer_totals(series, processes), WHO)
    if params.get("first"):
        registry = case.namespace["r"]
        return FirstInProcess(lambda: generate_latest(registry))
    return case


def scrape_restarts(params: Mapping[str, Any], directory: Path) -> Case:
    """``processes`` workers come and go, two at a time, as under a pre-forking server."""
    _use(directory)
    registry = CollectorRegistry()
    jobs = Counter("bench_jobs", "Jobs done.", ["a", "b"], registry=registry)
    latency = Histogram(
        "bench_job_seconds", "Job latency.", ["a", "b"], registry=registry, buckets=BUCKETS
    )
    workers = Gauge(
        "bench_workers", "Live workers.", registry=registry, multiprocess_mode="livesum"
    )

    def work(_: int) -> None:
        for j in range(RESTART_SERIES):
            labels = label_values(j)
            jobs.labels(*labels).inc()
            child = latency.labels(*labels)
            for value in observations(j):
                child.observe(value)
        workers.set(1)

    def reaped(pid: int) -> None:
        # What gunicorn users call from the master's child_exit hook.
        mark_process_dead(pid, str(directory))

    run_children(params["processes"], work, concurrency=2, on_exit=reaped)
    case, body = _scrape_case(directory)
    check_scrape(body, RESTART_LINES, restart_totals(params["processes"]), WHO)
    return case


CASES: dict[str, Callable[[Mapping[str, Any], Path], Case | Contender]] = {
    "mp_counter_inc": counter_inc,
    "mp_histogram_observe": histogram_observe,
    "mp_scrape_writers": scrape_writers,
    "mp_scrape_restarts": scrape_restarts,
}


def main() -> int:
    base = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    numbers = itertools.count(1)

    def prepare(key: str, params: Mapping[str, Any], seconds: float) -> ForkedContender:
        directory = base / f"{next(numbers):03d}-{key}"
        directory.mkdir()
        build = functools.partial(CASES[key], params, directory)
        return ForkedContender(build, seconds, f"{WHO} {key}")

    hello = {
        "prometheus_client": version("prometheus_client"),
        "value_class": values.ValueClass.__name__,
        "keys": sorted(CASES),
    }
    return serve(hello, prepare)


if __name__ == "__main__":
    sys.exit(main())
