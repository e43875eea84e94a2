"""Fixtures of the hardening tests: hypothesis profiles, the Redis backend.

Hypothesis runs derandomized when ``CI`` is set (the same examples on every run, so a red
build is reproducible); locally it explores new examples each run. Either way the number of
examples is bounded, and there is no deadline (promtool and Redis calls vary in speed).
"""

from __future__ import annotations

import gc
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.registry import CollectorRegistry
from tests.servers import RedisServer

settings.register_profile(
    "hardening",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
)

LoadRedis = Callable[..., MultiProcessRedisBackend]

#: Where the tests write what they measured (latencies, medians, memory), one JSON file
#: per test, for docs/reliability.md and for people; git ignores the directory.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hardening"


def report(name: str, figures: dict[str, Any]) -> None:
    """Keep ``figures`` in ``test-artifacts/hardening/<name>.json`` and print them (shown
    with ``-s``, or with the output of a failing test)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(figures, indent=2, sort_keys=True)
    (ARTIFACTS / f"{name}.json").write_text(text + "\n")
    print(f"--- {name}:\n{text}")


@pytest.fixture
def load_redis(redis_server: RedisServer, fresh_registry: CollectorRegistry) -> LoadRedis:
    """``load_redis(**config)``: the Redis backend on the shared server, under a key
    prefix of this test's own (the in-memory backend comes back afterwards, with the
    registry: ``fresh_registry`` of tests/conftest.py)."""
    # Metrics of earlier tests may live on in reference cycles; the new backend must not
    # learn of them.
    gc.collect()

    def load(**config: Any) -> MultiProcessRedisBackend:
        config.setdefault("prefix", f"h{uuid.uuid4().hex[:12]}")
        config.setdefault("port", redis_server.port)
        backend = load_backend(MultiProcessRedisBackend, config)
        assert isinstance(backend, MultiProcessRedisBackend)
        return backend

    return load
