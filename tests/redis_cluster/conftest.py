"""Fixtures of the Redis Cluster tests: a real cluster of Debian's redis-server (three
primaries, three replicas) on free loopback ports, made by ``redis-cli --cluster create``."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytheus.backends import MemoryBackend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from tests.helpers import installed_registry
from tests.servers import RedisCluster

LoadClusterBackend = Callable[..., MultiProcessRedisBackend]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/redis_cluster/" in str(item.path):
            item.add_marker(pytest.mark.redis)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One cluster for the tests of a module that do not harm it."""
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of the test's own, to kill nodes of."""
    with RedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture
def load_cluster_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadClusterBackend]:
    """``load(cluster, **config)``: a MultiProcessRedisBackend on ``cluster`` under a
    prefix of this test's own; the in-memory backend is put back afterwards."""
    gc.collect()
    prefix = f"t{uuid.uuid4().hex[:12]}"

    def load(cluster: RedisCluster, **config: Any) -> MultiProcessRedisBackend:
        config = {"cluster": True, "host": cluster.host, "port": cluster.port, **config}
        config.setdefault("prefix", prefix)
        backend = load_backend(MultiProcessRedisBackend, config)
        assert isinstance(backend, MultiProcessRedisBackend)
        return backend

    with installed_registry(monkeypatch):
        try:
            yield load
        finally:
            load_backend(MemoryBackend)
