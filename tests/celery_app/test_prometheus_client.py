"""prometheus_client's registry bridged, end to end: a library instrumented with
prometheus_client only (``thirdparty.py``), in a Django site under gunicorn with 4 workers
on the Redis backend. Any worker's scrape shows the exact totals of all of them, also
after a worker is SIGKILLed (counters never go backwards), and every scrape passes
promtool and the strict OpenMetrics parser."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.celery_app.helpers import Site, get, http_get, site, wait_until
from tests.core.helpers import Parsed
from tests.servers import RedisServer

WORKERS = 4


def totals(parsed: Parsed) -> dict[str, float | None]:
    return {
        "a": get(parsed, "thirdparty_jobs_total", kind="a"),
        "b": get(parsed, "thirdparty_jobs_total", kind="b"),
        "duration": get(parsed, "thirdparty_job_duration_seconds_count"),
        "inf": get(parsed, "thirdparty_job_duration_seconds_bucket", le="+Inf"),
        "payload": get(parsed, "thirdparty_payload_bytes_count"),
        "payload_sum": get(parsed, "thirdparty_payload_bytes_sum"),
    }


def expected(a: int, b: int) -> dict[str, float | None]:
    n = a + b
    return {
        "a": float(a) if a else None,
        "b": float(b) if b else None,
        "duration": float(n),
        "inf": float(n),
        "payload": float(n),
        "payload_sum": 100.0 * n,
    }


def jobs(s: Site, kind: str, n: int) -> set[int]:
    """n jobs, each on a connection of its own (so that they spread over the workers)."""

    def one(_: int) -> int:
        status, body = http_get(s.port, f"/job/?kind={kind}")
        assert status == 200, body
        return int(body)

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(n)))


def wait_for_totals(s: Site, a: int, b: int) -> Parsed:
    seen: list[dict[str, float | None]] = [{}]

    def done() -> bool:
        seen[0] = totals(s.scrape())
        return seen[0] == expected(a, b)

    wait_until(done, 30, lambda: f"totals never matched {expected(a, b)}: {seen[0]}")
    return s.check_exposition()


@pytest.mark.slow
def test_gunicorn_workers_exact_through_any_scrape(
    redis_server_factory: object, tmp_path: Path
) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    with site(redis, tmp_path, WORKERS, TEST_PROMETHEUS_CLIENT="1", TEST_PROCESS_TIMEOUT="3") as s:
        pids: set[int] = set()
        sent = {"a": 0}

        def all_workers_served() -> bool:
            pids.update(jobs(s, "a", 16))
            sent["a"] += 16
            return len(pids) == WORKERS

        # Every worker has done some jobs (how many each is up to the kernel).
        wait_until(all_workers_served, 60, lambda: f"workers seen: {pids}\n{s.logs()}")
        a = sent["a"]
        jobs(s, "b", 40)
        parsed = wait_for_totals(s, a, 40)
        # From here on, every scrape, whichever worker answers, says the same.
        for _ in range(12):
            assert totals(s.scrape()) == expected(a, 40)
        assert parsed.types["thirdparty_jobs"] == "counter"
        assert parsed.types["thirdparty_job_duration_seconds"] == "histogram"
        assert parsed.types["thirdparty_payload_bytes"] == "summary"
        # livesum: one pool per live worker; "all": one series per process.
        assert get(parsed, "thirdparty_pools") == WORKERS
        per_process = [k for k in parsed.samples if k[0] == "thirdparty_last_job_kind_id"]
        assert len(per_process) == WORKERS, per_process
        assert get(parsed, "thirdparty_version_info", version="1.2.3") == 1

        # A worker killed: its counts stay, the master replaces it.
        os.kill(sorted(pids)[0], signal.SIGKILL)
        killed = time.monotonic()
        # Through the dead worker's reaping (process_timeout 3 s) and after it.
        while time.monotonic() - killed < 6:
            assert totals(s.scrape()) == expected(a, 40)
            time.sleep(0.2)
        wait_until(
            lambda: get(s.scrape(), "thirdparty_pools") == WORKERS,
            60,
            lambda: f"pools: {get(s.scrape(), 'thirdparty_pools')}\n{s.logs()}",
        )
        jobs(s, "b", 20)
        wait_for_totals(s, a, 60)
