"""Start-up: ready() does no database or network I/O, loads the backend before the
metrics record, and the app works in a plain `manage.py shell`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.apps import apps
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django_redis import get_redis_connection

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.metrics import Counter
from tests.django_app.conftest import scrape, value
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def ready() -> None:
    apps.get_app_config("django_pytheus").ready()


def test_ready_touches_no_database() -> None:
    # No django_db mark: pytest-django makes any database access here raise.
    ready()


@pytest.mark.django_db
def test_ready_makes_no_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        ready()
    assert queries.captured_queries == []


def connections_received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_ready_opens_no_redis_connection(redis_server: RedisServer) -> None:
    observer = redis.Redis.from_url(redis_server.url)
    before = connections_received(observer)
    # Flushes only on scrape here (0 would write through on every change).
    config = {
        "url": redis_server.url,
        "prefix": f"ready{uuid.uuid4().hex[:12]}",
        "flush_interval": 60,
    }
    backend = "pytheus.backends.redis.MultiProcessRedisBackend"
    with override_settings(PYTHEUS={"BACKEND": backend, "BACKEND_CONFIG": config}):
        ready()
        assert isinstance(get_backend(), MultiProcessRedisBackend)
        assert connections_received(observer) == before
        Client().get("/hello/")
        assert connections_received(observer) == before
        scrape()  # the first scrape is what connects
        assert connections_received(observer) > before
    observer.close()


def test_cache_connection_settings_are_reused_without_connecting(
    redis_server: RedisServer,
) -> None:
    """``{"CACHE": alias, "db": 1}``: the cache's connection settings, the backend's own
    timeouts (django-redis makes pools without any) and db; cache.clear() (FLUSHDB on
    the cache's db) leaves the metrics alone."""
    observer = redis.Redis.from_url(redis_server.url)
    before = connections_received(observer)
    # django-redis keeps one pool per LOCATION for the process: a spelling of this test's
    # own, so that no other test's pool (with its options) is reused.
    location = f"redis://localhost:{redis_server.port}/0"
    cache = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location}
    prefix = f"pool{uuid.uuid4().hex[:12]}"
    pytheus = {
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        "BACKEND_CONFIG": {"CACHE": "shared", "db": 1, "prefix": prefix, "flush_interval": 60},
    }
    with override_settings(CACHES={**caches.settings, "shared": cache}, PYTHEUS=pytheus):
        ready()
        assert connections_received(observer) == before
        backend = get_backend()
        assert isinstance(backend, MultiProcessRedisBackend)
        ours = backend.client.connection_pool.connection_kwargs
        theirs = get_redis_connection("shared").connection_pool.connection_kwargs
        assert theirs.get("socket_timeout") is None  # as django-redis makes it
        assert (ours["host"], ours["port"], ours["db"]) == (theirs["host"], theirs["port"], 1)
        assert (ours["socket_timeout"], ours["socket_connect_timeout"]) == (5.0, 2.0)
        Client().get("/hello/")
        caches["shared"].set("k", "v")
        caches["shared"].clear()
        assert caches["shared"].get("k") is None
        p = scrape()
        labels = {"method": "GET", "view": "/hello/", "status": "200"}
        assert value(p, "django_http_requests_total", **labels) == 1
        with redis.Redis(port=redis_server.port, db=1) as db1:
            assert db1.exists(backend.keys.family("django_http_requests"))
    observer.close()


def test_metrics_defined_before_ready_follow_the_backend(redis_backend_settings) -> None:
    early = Counter("early_jobs", "Defined at import time, before the app is ready.")
    early.inc(3)
    redis_backend_settings()  # the app's setup loads the Redis backend now
    assert isinstance(get_backend(), MultiProcessRedisBackend)
    assert value(scrape(), "early_jobs_total") == 3


def run_manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_manage_shell_and_check_work() -> None:
    code = (
        "from django_pytheus.metrics import get_metrics; print(get_metrics().requests_total.name)"
    )
    result = run_manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    # (Django's shell may first say which objects it imported.)
    assert result.stdout.strip().splitlines()[-1] == "django_http_requests"
    result = run_manage("check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
