"""Fixtures shared by the whole suite: a fresh registry, and real servers and programs,
started and stopped here.

The core tests get ``fresh_registry`` for every test (``tests/core/conftest.py``); other
suites ask for it, or build on :func:`tests.helpers.installed_registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytheus.backends import MemoryBackend, load_backend
from pytheus.registry import CollectorRegistry
from tests.helpers import installed_registry
from tests.servers import RedisServer, require_program

# Tests that use one of these fixtures get the `redis` marker, so `-m "not redis"` leaves them out.
REDIS_FIXTURES = frozenset({"redis_server", "redis_server_factory", "replicated"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorRegistry]:
    """An empty registry as ``REGISTRY`` and the in-memory backend, both put back afterwards."""
    with installed_registry(monkeypatch) as fresh:
        load_backend(MemoryBackend)
        try:
            yield fresh
        finally:
            load_backend(MemoryBackend)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session, on a free loopback port, persisting nothing.

    Shared by many tests: do not pause, kill or reconfigure it (use ``redis_server_factory``
    for that), and call ``redis_server.flushall()`` where a test needs an empty database.
    """
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Make redis-servers of the test's own (started), all stopped when the test ends.

    Takes :class:`~tests.servers.RedisServer`'s keyword options::

        def test_survives_a_crash(redis_server_factory):
            server = redis_server_factory(appendonly=True)
            server.kill()
            server.start()
    """
    servers: list[RedisServer] = []

    def make(**options: Any) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", **options)
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of ``promtool`` (Debian package ``prometheus``); fails the test if missing."""
    return require_program("promtool")
