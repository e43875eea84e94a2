"""Fixtures of the Redis backend tests: a loaded MultiProcessRedisBackend per test.

Every test gets its own key prefix on the shared ``redis_server`` (or on a server of its
own) and a fresh global registry without the default collectors, so no test sees
another's metrics; both the backend and the registry are put back afterwards.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from pytheus.backends import MemoryBackend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from tests.helpers import installed_registry
from tests.servers import RedisServer

LoadBackend = Callable[..., MultiProcessRedisBackend]


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def load_redis_backend(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LoadBackend]:
    """Load a MultiProcessRedisBackend: ``load(server=None, **config)``.

    The config gets this test's ``prefix`` and the server's port unless given. Call it
    again to replace the backend (a new one, as ``load_backend`` always makes).
    """
    # load_backend() hands every metric alive in the process to the new backend, which
    # writes them under this test's prefix; metrics of earlier tests live on in
    # reference cycles until the garbage collector runs.
    gc.collect()

    def load(server: RedisServer | None = None, **config: Any) -> MultiProcessRedisBackend:
        config.setdefault("prefix", prefix)
        if not {"url", "client", "connection_pool", "port", "sentinels"} & config.keys():
            config["port"] = (server or redis_server).port
        backend = load_backend(MultiProcessRedisBackend, config)
        assert isinstance(backend, MultiProcessRedisBackend)
        return backend

    with installed_registry(monkeypatch):
        try:
            yield load
        finally:
            load_backend(MemoryBackend)  # closes the Redis backend: last flush, reaped at once


@pytest.fixture
def backend(load_redis_backend: LoadBackend) -> MultiProcessRedisBackend:
    """A MultiProcessRedisBackend with the default options, on the shared server."""
    return load_redis_backend()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the shared server, for looking at the keys."""
    c = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        yield c
    finally:
        c.close()
