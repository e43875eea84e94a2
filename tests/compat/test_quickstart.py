"""pytheus 0.6.1's quickstart page (docs/quickstart.md), step by step."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from pytheus.exposition import PROMETHEUS_CONTENT_TYPE, generate_metrics
from pytheus.metrics import Counter, Histogram
from pytheus.registry import REGISTRY
from tests.compat.conftest import text_scrape
from tests.servers import RedisServer


def test_counter_inc_and_inc_amount(backend_name: str) -> None:
    page_hit_total = Counter("page_hit_total", "documentation string")
    page_hit_total.inc()
    page_hit_total.inc(2)
    assert text_scrape().value("page_hit_total") == 3.0


def test_histogram_time_context_manager_and_decorator_shortcut(backend_name: str) -> None:
    http_request_duration_seconds = Histogram(
        "http_request_duration_seconds", "documenting the metric.."
    )

    def home() -> str:
        with http_request_duration_seconds.time():
            return "hello world!"

    @http_request_duration_seconds
    def slow() -> str:
        time.sleep(0.02)
        return "hello world! from slow!"

    assert home() == "hello world!"
    assert slow() == "hello world! from slow!"
    assert slow.__name__ == "slow"  # the decorator keeps the function's name (for routes)
    parsed = text_scrape()
    assert parsed.value("http_request_duration_seconds_count") == 2.0
    assert parsed.value("http_request_duration_seconds_sum") >= 0.02
    # The slow call is above 10 ms, the fast one below: the buckets tell them apart.
    assert parsed.value("http_request_duration_seconds_bucket", {"le": "0.01"}) == 1.0


def test_default_buckets_are_the_documented_ones() -> None:
    Histogram("http_request_duration_seconds", "documenting the metric..")
    parsed = text_scrape()
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in parsed.samples
        if name == "http_request_duration_seconds_bucket"
    )
    documented = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")]
    assert bounds == documented
    assert parsed.value("http_request_duration_seconds_count") == 0.0


def test_generate_metrics_and_content_type_for_a_metrics_endpoint() -> None:
    Counter("page_hit_total", "documentation string").inc()
    data = generate_metrics()
    headers = {"Content-Type": PROMETHEUS_CONTENT_TYPE}
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE page_hit_total counter\n" in data
    assert "page_hit_total 1.0\n" in data


def test_register_a_collector_on_the_global_registry() -> None:
    class MyCollector:
        def collect(self):  # type: ignore[no-untyped-def]
            counter = Counter("collected_total", "from a collector", registry=None)
            counter.inc(4)
            yield counter

    REGISTRY.register(MyCollector())
    assert text_scrape().value("collected_total") == 4.0


def test_load_backend_switches_to_redis(redis_server: RedisServer) -> None:
    from pytheus.backends import load_backend
    from pytheus.backends.redis import MultiProcessRedisBackend

    prefix = f"q{uuid.uuid4().hex[:10]}"
    load_backend(
        backend_class=MultiProcessRedisBackend,
        backend_config={"host": "127.0.0.1", "port": redis_server.port, "prefix": prefix},
    )
    hits = Counter("page_hit_total", "documentation string")
    hits.inc(5)
    assert text_scrape().value("page_hit_total") == 5.0
    client = redis.Redis(port=redis_server.port)
    try:
        assert client.keys(f"{prefix}*"), "the values went to Redis"
    finally:
        client.close()


@pytest.mark.slow
def test_backend_from_environment_variables(redis_server: RedisServer, tmp_path: Path) -> None:
    """PYTHEUS_BACKEND_CLASS and PYTHEUS_BACKEND_CONFIG (a JSON file): two processes, one
    count, with no load_backend() call in the program."""
    config = tmp_path / "backend.json"
    prefix = f"e{uuid.uuid4().hex[:10]}"
    config.write_text(
        json.dumps({"host": "127.0.0.1", "port": redis_server.port, "prefix": prefix})
    )
    program = (
        "from pytheus.metrics import Counter\n"
        "from pytheus.exposition import generate_metrics\n"
        "from pytheus.backends import get_backend\n"
        "c = Counter('jobs_total', 'Jobs.')\n"
        "c.inc(3)\n"
        "get_backend().close()\n"
        "print(type(get_backend()).__name__)\n"
    )
    env = {
        "PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend",
        "PYTHEUS_BACKEND_CONFIG": str(config),
        "PATH": "/usr/bin:/bin",
    }
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", program],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "MultiProcessRedisBackend"
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pytheus.metrics import Counter\n"
            "from pytheus.exposition import generate_metrics\n"
            "Counter('jobs_total', 'Jobs.')\n"
            "print(generate_metrics())",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reader.returncode == 0, reader.stderr
    assert "jobs_total 6.0\n" in reader.stdout
