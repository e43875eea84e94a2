"""Fixtures of the compatibility tests: pytheus 0.6.1's documented usages, run on our package.

Each test starts from a fresh, empty global registry and, where the usage applies to
every backend, runs once on the in-memory backend and once on the Redis backend (a real
redis-server, this test's own key prefix). Counter names are put back to the default.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest

from pytheus.backends import ENV_CLASS, ENV_CONFIG, MemoryBackend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import set_counter_names
from pytheus.registry import REGISTRY, CollectorRegistry, get_registry
from tests.core.helpers import Parsed, scrape
from tests.servers import RedisServer


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorRegistry]:
    """An empty registry behind ``REGISTRY`` and the in-memory backend, put back afterwards."""
    monkeypatch.delenv(ENV_CLASS, raising=False)
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    previous = get_registry()
    fresh = CollectorRegistry()
    REGISTRY.set_registry(fresh)
    load_backend(MemoryBackend)
    try:
        yield fresh
    finally:
        REGISTRY.set_registry(previous)
        load_backend(MemoryBackend)
        set_counter_names("total")


@pytest.fixture(params=["memory", "redis"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """The usage runs on both backends: the in-memory one and MultiProcessRedisBackend."""
    name: str = request.param
    if name == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        # Metrics of earlier tests, alive in reference cycles, would be written under
        # this test's prefix by load_backend().
        gc.collect()
        load_backend(
            MultiProcessRedisBackend,
            {"port": server.port, "prefix": f"c{uuid.uuid4().hex[:12]}"},
        )
    return name


def text_scrape(registry: CollectorRegistry | None = None) -> Parsed:
    """Scrape (the global registry by default), checked by promtool and both parsers;
    returns the text format parsed. promtool's naming lint is off: the names are those of
    pytheus 0.6.1's documentation ("my_counter_total" includes its type)."""
    return scrape(registry if registry is not None else REGISTRY, lint=False)[0]
