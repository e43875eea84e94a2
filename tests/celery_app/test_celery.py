"""Celery metrics end to end: a Django site under gunicorn publishes tasks, real Celery
workers run them, and a scrape of the site shows exact counts from every process.

Every test here starts a site (gunicorn, 2 workers) and one or more workers against a
redis-server of its own (broker and metrics backend).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis as redis_py

from pytheus.backends.redis_keys import KeyLayout
from tests.celery_app.helpers import Site, celery_samples, get, site, wait_until
from tests.core.helpers import Parsed
from tests.servers import RedisServer

TASKS = "tests.celery_app.tasks"
QUEUE = "celery"


def counts(parsed: Parsed, metric: str, **labels: str) -> dict[str, float]:
    """``metric``'s samples by task (the short name), for those matching ``labels``."""
    out: dict[str, float] = {}
    for (name, labelset), value in parsed.samples.items():
        d = dict(labelset)
        if name == metric and all(d.get(k) == v for k, v in labels.items()):
            task = d["task"].removeprefix(f"{TASKS}.")
            out[task] = out.get(task, 0.0) + value
    return {k: v for k, v in out.items() if v}


def expected_counts(
    n_ok: int, n_fail: int, n_retry: int, n_slow: int
) -> dict[str, dict[str, float]]:
    """What a scrape must show once every task ran (retried tasks are published again by
    the worker, so they are published, received and started twice)."""
    ran = {"ok": n_ok, "fail": n_fail, "retry_once": 2 * n_retry, "slow": n_slow}
    return {
        "celery_tasks_published_total": {**ran, "<other>": 1},
        "celery_tasks_received_total": ran,
        "celery_tasks_started_total": ran,
        "celery_task_runtime_seconds_count": ran,
        "celery_task_queue_wait_seconds_count": ran,
        "celery_tasks_succeeded_total": {"ok": n_ok, "retry_once": n_retry, "slow": n_slow},
        "celery_tasks_failed_total": {"fail": n_fail},
        "celery_tasks_retried_total": {"retry_once": n_retry},
        "celery_tasks_rejected_total": {"<other>": 1},
    }


def observed(parsed: Parsed) -> dict[str, dict[str, float]]:
    return {metric: counts(parsed, metric) for metric in expected_counts(0, 0, 0, 0)}


def run_mix(s: Site, n_ok: int = 20, n_fail: int = 5, n_retry: int = 4, n_slow: int = 3) -> Parsed:
    """Publish a mix of tasks through the site; wait until a scrape shows all of them."""
    for kind, n in (("ok", n_ok), ("fail", n_fail), ("retry", n_retry), ("slow", n_slow)):
        s.enqueue(kind, n)
    s.enqueue("unregistered")
    want = expected_counts(n_ok, n_fail, n_retry, n_slow)
    seen: list[dict[str, dict[str, float]]] = []

    def complete() -> bool:
        seen.append(observed(s.scrape()))
        return seen[-1] == want

    wait_until(complete, 60, lambda: f"counts never matched:\nwant {want}\nsaw  {seen[-1]}")
    return s.check_exposition()


def check_mix(parsed: Parsed, n_fail: int = 5, n_slow: int = 3) -> None:
    assert counts(parsed, "celery_tasks_failed_total", exception="TaskFailed") == {"fail": n_fail}
    assert counts(parsed, "celery_tasks_rejected_total", reason="unknown") == {"<other>": 1}
    # Every task has ended: nothing in progress anywhere.
    assert counts(parsed, "celery_tasks_in_progress") == {}
    assert {
        dict(labels)["queue"]
        for name, labels in celery_samples(parsed)
        if name.startswith("celery_tasks_") and "queue" in dict(labels)
    } == {QUEUE}
    # Arguments never reach a label.
    assert "s3cret" not in parsed.text
    # The slow tasks sleep 0.3 s: their run time says so.
    slow_sum = get(parsed, "celery_task_runtime_seconds_sum", task=f"{TASKS}.slow", queue=QUEUE)
    assert slow_sum is not None
    assert slow_sum >= n_slow * 0.3


@pytest.mark.slow
@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 2), ("threads", 4), ("solo", 1)])
def test_exact_counts_in_the_sites_scrape(
    redis_server_factory: object, tmp_path: Path, pool: str, concurrency: int
) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    with site(redis, tmp_path) as s:
        s.worker(pool, concurrency)
        parsed = run_mix(s)
        check_mix(parsed)
        expected_pool = concurrency if pool == "prefork" else None
        assert get(parsed, "celery_worker_processes", worker="w0@test", role="main") == 1
        assert get(parsed, "celery_worker_processes", worker="w0@test", role="pool") == (
            expected_pool
        )
        # The same numbers from then on, whichever web worker answers.
        for _ in range(6):
            assert observed(s.scrape()) == observed(parsed)


@pytest.mark.slow
def test_recycled_pool_processes_lose_nothing(redis_server_factory: object, tmp_path: Path) -> None:
    """worker_max_tasks_per_child=1: every task runs in a fresh process, which exits
    right after it (through os._exit, without atexit): its counts still arrive."""
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    with site(redis, tmp_path, TEST_MAX_TASKS_PER_CHILD="1") as s:
        s.worker("prefork", 2)
        parsed = run_mix(s, n_ok=12, n_fail=3, n_retry=2, n_slow=2)
        check_mix(parsed, n_fail=3, n_slow=2)
        # Replaced processes count no more once they have gone.
        wait_until(
            lambda: get(s.scrape(), "celery_worker_processes", worker="w0@test", role="pool") == 2,
            30,
            lambda: f"pool processes: {celery_samples(s.scrape())}",
        )


@pytest.mark.slow
def test_two_workers_add_up(redis_server_factory: object, tmp_path: Path) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    with site(redis, tmp_path) as s:
        s.worker("prefork", 2)
        s.worker("threads", 2)
        check_mix(run_mix(s, n_ok=40, n_fail=6, n_retry=4, n_slow=4), n_fail=6, n_slow=4)


def silent_for(s: Site, pid: int) -> float:
    """Seconds since process ``pid`` last flushed its metrics, by Redis's clock."""
    client = redis_py.Redis.from_url(s.redis.url)
    try:
        seconds, micros = client.time()
        procs = client.zrange(KeyLayout(s.prefix).procs, 0, -1, withscores=True)
    finally:
        client.close()
    last = [at for name, at in procs if f":{pid}:" in name.decode()]
    assert len(last) == 1, procs
    return seconds + micros / 1e6 - last[0]


@pytest.mark.slow
def test_killed_pool_process(redis_server_factory: object, tmp_path: Path) -> None:
    """A pool process SIGKILLed mid-task: its in-progress count goes within
    process_timeout; what it counted (and flushed) before stays."""
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    process_timeout = 3.0
    with site(redis, tmp_path, TEST_PROCESS_TIMEOUT=str(process_timeout)) as s:
        s.worker("prefork", 1)
        s.enqueue("ok", 10)
        wait_until(
            lambda: counts(s.scrape(), "celery_tasks_succeeded_total") == {"ok": 10},
            60,
            lambda: f"ok tasks never all counted: {celery_samples(s.scrape())}",
        )
        flag = tmp_path / "block.pid"
        s.enqueue("block", flag=str(flag))
        wait_until(flag.exists, 60, lambda: f"the blocking task never started\n{s.logs()}")
        child = int(flag.read_text())
        labels = {"task": f"{TASKS}.block", "queue": QUEUE, "worker": "w0@test"}
        wait_until(
            lambda: get(s.scrape(), "celery_tasks_in_progress", **labels) == 1,
            30,
            lambda: f"the blocking task is not in progress: {celery_samples(s.scrape())}",
        )
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        silent = silent_for(s, child)
        wait_until(
            lambda: not get(s.scrape(), "celery_tasks_in_progress", **labels),
            process_timeout + 30,
            lambda: f"the killed task stays in progress: {celery_samples(s.scrape())}",
        )
        # Not before the killed process could be taken for dead: process_timeout after its
        # last flush (every 0.2 s, later on a loaded machine), which Redis dated.
        assert time.monotonic() - killed_at >= process_timeout - silent - 0.1
        parsed = s.check_exposition()
        assert counts(parsed, "celery_tasks_succeeded_total") == {"ok": 10}
        assert counts(parsed, "celery_tasks_started_total") == {"ok": 10, "block": 1}
        # The main process saw its pool process die with the task.
        wait_until(
            lambda: (
                counts(s.scrape(), "celery_tasks_failed_total", exception="WorkerLostError")
                == {"block": 1}
            ),
            30,
            lambda: f"no WorkerLostError counted: {celery_samples(s.scrape())}",
        )
        # It replaced the process, which reports.
        wait_until(
            lambda: get(s.scrape(), "celery_worker_processes", worker="w0@test", role="pool") == 1,
            30,
            lambda: f"pool processes: {celery_samples(s.scrape())}",
        )
        assert all(w.running() for w in s.workers), s.logs()


@pytest.mark.slow
def test_expired_tasks_are_revoked_not_run(redis_server_factory: object, tmp_path: Path) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    with site(redis, tmp_path) as s:
        s.worker("threads", 2)
        s.enqueue("expired", 3)
        labels = {"queue": QUEUE, "reason": "expired"}
        wait_until(
            lambda: counts(s.scrape(), "celery_tasks_revoked_total", **labels) == {"ok": 3},
            60,
            lambda: f"expired tasks not counted: {celery_samples(s.scrape())}",
        )
        parsed = s.check_exposition()
        # Discarded on arrival, before Celery's task_received: neither received nor run.
        assert counts(parsed, "celery_tasks_received_total") == {}
        assert counts(parsed, "celery_tasks_started_total") == {}
        assert counts(parsed, "celery_tasks_succeeded_total") == {}
