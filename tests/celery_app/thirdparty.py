"""A library instrumented with prometheus_client only, as third-party code is: it knows
nothing of pytheus, and records into prometheus_client's global registry."""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, Info, Summary

JOBS = Counter("thirdparty_jobs", "Jobs the library did.", ["kind"])
DURATION = Histogram(
    "thirdparty_job_duration_seconds", "Time per job.", buckets=(0.001, 0.01, 0.1, 1.0)
)
PAYLOAD = Summary("thirdparty_payload_bytes", "Payload sizes.")
# Each process holds one connection pool: livesum counts the live ones.
POOLS = Gauge("thirdparty_pools", "Connection pools open.", multiprocess_mode="livesum")
# prometheus_client's default mode: one series per process.
LAST_JOB = Gauge("thirdparty_last_job_kind_id", "Kind of the last job, as a number.")
VERSION = Info("thirdparty_version", "The library's version.")
VERSION.info({"version": "1.2.3"})
POOLS.set(1)


def do_job(kind: str, size: int) -> int:
    """One job: counted, timed, its payload measured."""
    with DURATION.time():
        JOBS.labels(kind=kind).inc()
        PAYLOAD.observe(size)
        LAST_JOB.set(1 if kind == "a" else 2)
    return os.getpid()
