"""Faults under load: the demo under gunicorn (4 workers, Redis backend) answers a steady
stream of ``/fast/`` requests from a load generator in a process of its own while Redis is
paused, killed, restarted empty, or a worker is killed or workers are recycled.

For each: every request is answered by the view (200: the view never fails, so any other
answer would be the metrics' doing), the latency during the fault against before it, and the
totals afterwards. Figures go to ``test-artifacts/hardening/`` (see ``docs/reliability.md``).

Phases last a deliberate few seconds: that is the scenario (a fault that lasts), not a wait
for luck. Everything else waits on a condition with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import report
from tests.hardening.demo import Demo, Load, Request, between, stats
from tests.servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.faults]

Factory = Callable[..., RedisServer]

RATE = 100.0  # requests per second: steady, well below what 4 workers can serve
BEFORE = 3.0  # seconds of load before the fault
FAULT = 5.0  # seconds the fault lasts
AFTER = 3.0  # seconds of load after recovery
# The demo shares its django-redis cache's connection pool, whose socket timeout is 2 s; a
# scrape may wait for a flush in flight, then make its own call, each with one retry.
SCRAPE_BOUND = 4 * 2.0 + 2.0


class TimedScrape(threading.Thread):
    """A scrape in a thread of its own, so that the test's timeline goes on meanwhile."""

    def __init__(self, demo: Demo) -> None:
        super().__init__(daemon=True)
        self.demo = demo
        self.result: tuple[int, float] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            status, seconds, _ = self.demo.scrape(timeout=60)
            self.result = (status, round(seconds, 3))
        except Exception as exc:
            self.error = exc


def phases(
    requests: list[Request], fault_start: float, fault_end: float
) -> dict[str, dict[str, Any]]:
    return {
        "before": stats(between(requests, 0, fault_start)),
        "during": stats(between(requests, fault_start, fault_end)),
        "after": stats(between(requests, fault_end, float("inf"))),
    }


def all_answered_by_the_view(requests: list[Request]) -> int:
    """Assert every request got the view's 200; return how many."""
    failed = [r for r in requests if r.status != 200]
    assert not failed, f"{len(failed)} of {len(requests)} failed, e.g. {failed[:3]}"
    return len(requests)


def test_redis_paused(tmp_path: Path, redis_server_factory: Factory) -> None:
    """SIGSTOP: connections are accepted and never answered, the worst case for a client."""
    server = redis_server_factory()
    with Demo(tmp_path / "demo", server) as demo:
        load = Load(demo.port, tmp_path / "load.json", rate=RATE)
        try:
            time.sleep(BEFORE)
            server.pause()
            paused = time.monotonic()
            scrape = TimedScrape(demo)
            scrape.start()
            time.sleep(FAULT)
            server.resume()
            resumed = time.monotonic()
            time.sleep(AFTER)
        finally:
            requests = load.stop()
        scrape.join(SCRAPE_BOUND + 10)
        answered = all_answered_by_the_view(requests)
        demo.wait_for_total(answered)  # exact: nothing recorded during the pause is lost
        figures = {
            "requests": phases(requests, paused, resumed),
            "scrape_during_pause": scrape.result,
            "total_counted": answered,
        }
        report("fault_redis_paused", figures)
        assert scrape.error is None, scrape.error
        assert scrape.result is not None
        assert scrape.result[0] in (200, 503)
        assert scrape.result[1] < SCRAPE_BOUND
