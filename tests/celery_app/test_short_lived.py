"""Short-lived processes (a management command run by cron) get their metrics to Redis
before they exit, however they exit; a Redis that does not answer costs a bounded wait
and a log line naming what was not sent. And ``manage.py pytheus_status``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pytheus.backends import load_backend
from pytheus.backends.memory import MemoryBackend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import generate_metrics
from pytheus.registry import CollectorRegistry, get_registry, set_registry
from tests.celery_app.helpers import ROOT
from tests.core.helpers import Parsed, parse_text
from tests.servers import RedisServer


def manage(
    redis: RedisServer, prefix: str, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.celery_app.settings",
            "TEST_REDIS_URL": redis.url,
            "TEST_REDIS_PREFIX": prefix,
            # No periodic flush could send anything before the command ends.
            "TEST_FLUSH_INTERVAL": "600",
            "TEST_PROCESS_TIMEOUT": "1200",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read(redis: RedisServer, prefix: str) -> Parsed:
    """What any process of the site would scrape (read here through a backend of our own)."""
    previous = get_registry()
    set_registry(CollectorRegistry())
    try:
        load_backend(MultiProcessRedisBackend, {"url": redis.url, "prefix": prefix})
        return parse_text(generate_metrics(get_registry()))
    finally:
        load_backend(MemoryBackend)
        set_registry(previous)


@pytest.mark.slow
@pytest.mark.parametrize(("how", "code"), [("return", 0), ("raise", 1), ("exit", 3), ("error", 2)])
def test_a_command_sends_its_metrics_however_it_ends(
    redis_server: RedisServer, how: str, code: int
) -> None:
    prefix = f"cron{uuid.uuid4().hex[:10]}"
    for _ in range(2):
        result = manage(redis_server, prefix, "record_and_exit", how)
        assert result.returncode == code, result.stderr
        assert "not sent" not in result.stderr
    parsed = read(redis_server, prefix)
    assert parsed.value("cron_runs_total", {"how": how}) == 2
    assert parsed.value("cron_batch_items_count") == 6
    assert parsed.value("cron_batch_items_bucket", {"le": "10.0"}) == 2


@pytest.mark.slow
def test_a_redis_that_does_not_answer_costs_a_bounded_wait(
    redis_server_factory: object,
) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    prefix = f"cron{uuid.uuid4().hex[:10]}"
    redis.pause()  # accepts connections, answers nothing
    try:
        start = time.monotonic()
        result = manage(
            redis,
            prefix,
            "record_and_exit",
            "return",
            # Without the bound, the last flush would wait 60 s for a reply.
            TEST_SOCKET_TIMEOUT="60",
            TEST_EXIT_TIMEOUT="1",
        )
        took = time.monotonic() - start
    finally:
        redis.resume()
    assert result.returncode == 0, result.stderr
    # Django's start-up takes a few seconds on a loaded machine; 60 s would be the hang.
    assert took < 30, took
    assert "did not finish within 1 s" in result.stderr, result.stderr
    assert "cron_runs (1)" in result.stderr, result.stderr
    assert "cron_batch_items (1)" in result.stderr, result.stderr


@pytest.mark.slow
def test_pytheus_status(redis_server_factory: object, tmp_path: Path) -> None:
    redis: RedisServer = redis_server_factory()  # type: ignore[operator]
    prefix = f"status{uuid.uuid4().hex[:10]}"
    assert manage(redis, prefix, "record_and_exit", "return").returncode == 0
    result = manage(redis, prefix, "pytheus_status")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MultiProcessRedisBackend" in out
    assert "reachable: yes" in out
    # The status command's own process reports (the record_and_exit one has left).
    assert "processes reporting: 1" in out, out
    assert "last flush" in out
    lines = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")
    }
    assert lines["cron_runs"] == ["counter", "1", "series"]
    assert lines["cron_batch_items"] == ["histogram", "1", "series"]
    assert lines["celery_tasks_started"] == ["counter", "0", "series"]
    as_json = json.loads(manage(redis, prefix, "pytheus_status", "--json").stdout)
    assert as_json["reachable"] is True
    assert {"name": "cron_runs", "type": "counter", "series": 1} in as_json["families"]
    assert len(as_json["processes"]) == 1
    # Redis gone: exit status 1 and a sentence that says so.
    redis.stop()
    result = manage(redis, prefix, "pytheus_status", TEST_EXIT_TIMEOUT="1")
    assert result.returncode == 1
    assert "The metrics backend cannot be read" in result.stderr
