"""The Redis backend configured the way a production site would: two projects on one
Redis, metrics beside a cache, a cache pool without timeouts, a Redis that evicts; the
system checks that say what is unsafe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from django.apps import apps
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import Client
from django.test.utils import override_settings

from django_pytheus.startup import default_prefix
from pytheus.backends.redis_keys import KeyLayout
from tests.helpers import wait_for
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
REDIS_BACKEND = "pytheus.backends.redis.MultiProcessRedisBackend"


def ready() -> None:
    apps.get_app_config("django_pytheus").ready()


def ours(**kwargs: Any) -> list[Any]:
    """Our check messages, as `manage.py check` reports them (SILENCED_SYSTEM_CHECKS out)."""
    return [
        m
        for m in run_checks(**kwargs)
        if (m.id or "").startswith("django_pytheus.") and not m.is_silenced()
    ]


# ------------------------------------------------------------------ two projects, one Redis

SITE = """
from tests.settings import *  # noqa: F403

PYTHEUS = {{"BACKEND": "{backend}", "BACKEND_CONFIG": {{"url": "{url}", "flush_interval": 0}}}}
"""

SERVE = """
import django
django.setup()
from django.test import Client
for _ in range({requests}):
    assert Client().get("/hello/").status_code == 200
from prometheus_client.parser import text_string_to_metric_families
body = Client().get("/metrics").content.decode()
total = sum(
    s.value for f in text_string_to_metric_families(body) for s in f.samples
    if s.name == "django_http_requests_total" and s.labels.get("view") == "/hello/"
)
print(total)
"""


def serve_as(site: str, requests: int, tmp_path: Path) -> float:
    """Run a Django project named ``site`` (its settings package) in a process of its own:
    ``requests`` requests, then the total its /metrics shows."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": f"{site}.settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", SERVE.format(requests=requests)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_projects_on_one_redis_count_apart_by_default(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two services, neither setting a prefix: 3 and 5 requests, not 8 in both."""
    db = 5  # a database of this test's own: its keys are under the default prefixes
    url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    sites = {f"shop{uuid.uuid4().hex[:8]}": 3, f"blog{uuid.uuid4().hex[:8]}": 5}
    for site in sites:
        (tmp_path / site).mkdir()
        (tmp_path / site / "__init__.py").write_text("")
        (tmp_path / site / "settings.py").write_text(SITE.format(backend=REDIS_BACKEND, url=url))
    for site, requests in sites.items():
        assert serve_as(site, requests, tmp_path) == requests
    for site, requests in sites.items():
        assert serve_as(site, 0, tmp_path) == requests  # each still sees its own only
    with redis.Redis(port=redis_server.port, db=db, decode_responses=True) as client:
        for site in sites:
            assert client.exists(KeyLayout(f"pytheus:{site}").family("django_http_requests"))
        client.flushdb()


def test_the_default_prefix_is_the_projects() -> None:
    assert default_prefix() == "pytheus:tests"  # DJANGO_SETTINGS_MODULE = tests.settings


# ------------------------------------------------------------------ a cache beside the metrics


def redis_cache(url: str) -> dict[str, Any]:
    return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}


@pytest.mark.parametrize(
    ("backend_config", "warned"),
    [
        ({"url": "{url}/0"}, True),
        ({"url": "{url}/1"}, False),
        ({"CACHE": "shared"}, True),
        ({"CACHE": "shared", "db": 1}, False),
    ],
)
def test_w005_metrics_in_a_database_that_cache_clear_empties(
    redis_server: RedisServer, backend_config: dict[str, Any], warned: bool
) -> None:
    base = f"redis://127.0.0.1:{redis_server.port}"
    config = {k: v.format(url=base) if isinstance(v, str) else v for k, v in backend_config.items()}
    pytheus = {
        "BACKEND": REDIS_BACKEND,
        "BACKEND_CONFIG": {**config, "prefix": f"w5{uuid.uuid4().hex[:8]}"},
    }
    cache_settings = {**caches.settings, "shared": redis_cache(f"{base}/0")}
    with override_settings(CACHES=cache_settings, PYTHEUS=pytheus):
        ready()
        found = [m for m in ours() if m.id == "django_pytheus.W005"]
        assert len(found) == warned, found
        if warned:
            assert "'shared'" in found[0].msg
            assert "cache.clear()" in found[0].msg
            assert '"db": 1' in found[0].hint


def test_w005_is_not_guessed_for_sentinel() -> None:
    """A Sentinel primary's address is the sentinels' to say: no warning from comparing a
    cache on localhost:6379/0 with addresses the backend does not have."""
    pytheus = {
        "BACKEND": REDIS_BACKEND,
        "BACKEND_CONFIG": {
            "sentinels": [["127.0.0.1", 1]],
            "service_name": "metrics",
            "prefix": f"w5{uuid.uuid4().hex[:8]}",
        },
    }
    cache_settings = {**caches.settings, "shared": redis_cache("redis://localhost:6379/0")}
    with override_settings(CACHES=cache_settings, PYTHEUS=pytheus):
        ready()
        assert [m for m in ours() if m.id == "django_pytheus.W005"] == []


def test_the_cache_pool_gets_our_timeouts(redis_server_factory: Any) -> None:
    """``"CACHE"`` with django-redis's pool, which has no timeout: a scrape while Redis
    does not answer is a 503 within the backend's socket_timeout, not a hang."""
    server = redis_server_factory()
    pytheus = {
        "BACKEND": REDIS_BACKEND,
        "BACKEND_CONFIG": {
            "CACHE": "shared",
            "db": 1,
            "socket_timeout": 0.5,
            "prefix": f"t{uuid.uuid4().hex[:8]}",
        },
    }
    cache_settings = {**caches.settings, "shared": redis_cache(f"{server.url}")}
    with override_settings(CACHES=cache_settings, PYTHEUS=pytheus):
        ready()
        assert Client().get("/metrics").status_code == 200
        server.pause()
        outcome: list[Any] = []

        def get() -> None:
            start = time.monotonic()
            outcome.append(Client().get("/metrics").status_code)
            outcome.append(time.monotonic() - start)

        thread = threading.Thread(target=get, daemon=True)
        thread.start()
        thread.join(20)
        server.resume()
        assert not thread.is_alive(), "the scrape waited for a Redis that did not answer"
    status, seconds = outcome
    assert status == 503
    assert seconds < 2 * (0.5 + 0.5) + 1


# ------------------------------------------------------------------ --deploy: eviction


@pytest.mark.parametrize(
    ("redis_memory", "expected"),
    [
        (("16mb", "allkeys-lru"), ["django_pytheus.W006"]),
        (("16mb", "noeviction"), []),
        (("16mb", "volatile-ttl"), []),
        (None, ["django_pytheus.I001"]),  # a Redis that does not answer
    ],
)
def test_w006_deploy_check_of_the_eviction_policy(
    redis_server_factory: Any, redis_memory: tuple[str, str] | None, expected: list[str]
) -> None:
    if redis_memory is None:
        server = redis_server_factory()
    else:
        maxmemory, policy = redis_memory
        server = redis_server_factory(
            extra_args=["--maxmemory", maxmemory, "--maxmemory-policy", policy]
        )
    pytheus = {
        "BACKEND": REDIS_BACKEND,
        "BACKEND_CONFIG": {"url": server.url, "prefix": f"w6{uuid.uuid4().hex[:8]}"},
    }
    with override_settings(PYTHEUS=pytheus):
        ready()
        assert ours() == [], "the eviction check is a --deploy check only"
        if redis_memory is None:
            server.pause()
        start = time.monotonic()
        found = ours(include_deployment_checks=True)
        seconds = time.monotonic() - start
        if redis_memory is None:
            server.resume()
    assert sorted(m.id for m in found) == expected
    assert seconds < 5  # a check --deploy waits a second for Redis, not socket_timeout
    for message in found:
        if message.id == "django_pytheus.W006":
            assert "allkeys-lru" in message.msg
            assert "noeviction" in message.hint


def test_w008_deploy_check_of_the_replicas_wait_replicas_waits_for(
    redis_server_factory: Any,
) -> None:
    primary = redis_server_factory()
    pytheus = {
        "BACKEND": REDIS_BACKEND,
        "BACKEND_CONFIG": {
            "url": primary.url,
            "prefix": f"w8{uuid.uuid4().hex[:8]}",
            "wait_replicas": 1,
        },
    }
    with override_settings(PYTHEUS=pytheus):
        ready()
        assert ours() == [], "the replicas check is a --deploy check only"
        (message,) = ours(include_deployment_checks=True)
        assert message.id == "django_pytheus.W008"
        assert "has 0 connected replica(s)" in message.msg
        assert "wait_replicas" in message.hint
        replica = redis_server_factory(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
        with redis.Redis(port=primary.port, decode_responses=True) as client:
            wait_for(lambda: client.info("replication")["connected_slaves"] == 1)
        assert ours(include_deployment_checks=True) == []
        # Pointed at the replica, the backend is told so.
        config = {**pytheus["BACKEND_CONFIG"], "url": replica.url}
        on_replica = {**pytheus, "BACKEND_CONFIG": config}
        with override_settings(PYTHEUS=on_replica):
            ready()
            (message,) = ours(include_deployment_checks=True)
            assert "answers as a slave, not a primary" in message.msg


def test_the_demo_and_readme_settings_are_the_safe_ones() -> None:
    """The README's Redis example gives metrics a db of their own and timeouts."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Running many workers with Redis")
    example = readme[start : readme.index("```sh", start)]
    assert '"db": 1' in example
    assert "socket_timeout" in example
