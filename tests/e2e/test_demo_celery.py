"""The demo's checkout sends its confirmation e-mail through a Celery task: with Redis, a
real worker runs it and the demo's /metrics shows it; without (``make demo``), it runs
eagerly in the web process and is counted there."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from tests.core.helpers import Parsed, key, parse_text
from tests.e2e.helpers import (
    START_TIMEOUT,
    answers,
    checkout,
    demo_env,
    django_shell,
    http_get,
    manage,
    running,
    wait_until,
)
from tests.servers import LOOPBACK, RedisServer, free_port

TASK = "demo_project.shop.tasks.send_order_confirmation"


def scrape(port: int) -> Parsed:
    status, body = http_get(port, "/metrics")
    assert status == 200, body
    return parse_text(body.decode())


@pytest.mark.slow
def test_checkout_email_through_a_celery_worker(
    redis_server_factory: object, tmp_path: Path
) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    env = demo_env(
        tmp_path / "demo.sqlite3",
        PYTHEUS_REDIS_URL=redis.url,
        PYTHEUS_REDIS_PREFIX=f"e2e{uuid.uuid4().hex[:12]}",
        DEMO_DEBUG="0",
        DEMO_SECRET_KEY=uuid.uuid4().hex * 2,
    )
    manage(env, "demo_setup")
    port = free_port()
    web_log, worker_log = tmp_path / "gunicorn.log", tmp_path / "worker.log"
    gunicorn = [
        sys.executable, "-m", "gunicorn", "demo_project.wsgi",
        "--workers", "2", "--bind", f"{LOOPBACK}:{port}",
    ]  # fmt: skip
    worker = [
        sys.executable, "-m", "celery", "-A", "demo_project", "worker",
        "--loglevel", "INFO", "--concurrency", "1",
        "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    logs = (web_log, worker_log)
    with running(gunicorn, env, web_log), running(worker, env, worker_log):
        wait_until(
            lambda: answers(port, "/metrics"), START_TIMEOUT, "gunicorn did not answer", logs
        )

        def worker_reports() -> bool:
            return any(
                name == "celery_worker_processes" and dict(labels).get("role") == "main"
                for name, labels in scrape(port).samples
            )

        wait_until(worker_reports, START_TIMEOUT, "the worker did not report", logs)
        orders = 3
        assert [checkout(port, 1) for _ in range(orders)] == [302] * orders
        labels = {"task": TASK, "queue": "celery"}

        # Counted by three processes (the web worker publishing, the worker's main process
        # receiving, its pool process running), each flushing on its own schedule.
        names = (
            "celery_tasks_published_total",
            "celery_tasks_received_total",
            "celery_tasks_succeeded_total",
            "celery_task_queue_wait_seconds_count",
        )
        seen: list[list[float | None]] = [[]]

        def sent() -> bool:
            parsed = scrape(port)
            seen[0] = [parsed.samples.get(key(name, labels)) for name in names]
            return seen[0] == [orders] * len(names)

        try:
            wait_until(sent, 60, "the confirmations were not all counted", logs)
        except AssertionError as exc:
            raise AssertionError(f"{names} were {seen[0]}\n{exc}") from None
        # The worker printed them (the console e-mail backend).
        wait_until(
            lambda: worker_log.read_text().count("Subject: Your order") == orders,
            30,
            "the worker did not print the e-mails",
            logs,
        )


def test_checkout_email_runs_eagerly_without_redis(tmp_path: Path) -> None:
    env = demo_env(tmp_path / "demo.sqlite3", DEMO_ALLOWED_HOSTS="testserver")
    manage(env, "demo_setup")
    result = django_shell(
        env,
        """
import json
from django.test import Client
c = Client(REMOTE_ADDR="127.0.0.1")
status = c.post("/checkout/", {"product": "1", "quantity": "1", "payment": "card"}).status_code
text = c.get("/metrics").content.decode()
lines = [l for l in text.splitlines() if l.startswith("celery_tasks_succeeded_total")]
print(json.dumps({"status": status, "lines": lines}))
""",
    )
    assert result["status"] == 302
    assert result["lines"] == [f'celery_tasks_succeeded_total{{task="{TASK}",queue="<eager>"}} 1.0']
