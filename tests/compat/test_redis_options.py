"""pytheus 0.6.1's MultiProcessRedisBackend options (backend.md), on a real redis-server."""

from __future__ import annotations

import uuid

import pytest
import redis

from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exceptions import InvalidBackendConfigException
from pytheus.metrics import Counter
from tests.compat.conftest import text_scrape
from tests.servers import RedisServer


def test_expire_key_time_is_our_series_ttl(redis_server: RedisServer) -> None:
    backend = load_backend(
        MultiProcessRedisBackend,
        {"port": redis_server.port, "prefix": f"x{uuid.uuid4().hex[:8]}", "expire_key_time": 300},
    )
    assert isinstance(backend, MultiProcessRedisBackend)
    assert backend.config.series_ttl == 300.0


def test_key_prefix_is_deprecated_and_becomes_prefix(redis_server: RedisServer) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    with pytest.warns(DeprecationWarning, match="key_prefix"):
        backend = load_backend(
            MultiProcessRedisBackend,
            {"host": "127.0.0.1", "port": redis_server.port, "key_prefix": prefix},
        )
    assert isinstance(backend, MultiProcessRedisBackend)
    assert backend.config.prefix == prefix
    Counter("hits_total", "Hits.").inc(2)
    assert text_scrape().value("hits_total") == 2.0
    client = redis.Redis(port=redis_server.port)
    try:
        assert client.keys(f"{prefix}*")
    finally:
        client.close()


def test_other_keys_go_to_redis_redis(redis_server: RedisServer) -> None:
    backend = load_backend(
        MultiProcessRedisBackend,
        {
            "host": "127.0.0.1",
            "port": redis_server.port,
            "db": 0,
            "client_name": "pytheus-compat",
            "socket_keepalive": True,
            "prefix": f"o{uuid.uuid4().hex[:8]}",
        },
    )
    assert isinstance(backend, MultiProcessRedisBackend)
    kwargs = backend.config.client.connection_pool.connection_kwargs
    assert kwargs["client_name"] == "pytheus-compat"
    assert kwargs["socket_keepalive"] is True
    Counter("hits_total", "Hits.").inc()
    assert text_scrape().value("hits_total") == 1.0
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        assert "pytheus-compat" in {c["name"] for c in client.client_list()}
    finally:
        client.close()


def test_a_typo_is_still_refused_with_a_hint(redis_server: RedisServer) -> None:
    with pytest.raises(InvalidBackendConfigException, match="Did you mean 'flush_interval'"):
        load_backend(MultiProcessRedisBackend, {"port": redis_server.port, "flush_intervall": 1})


def test_both_spellings_at_once_are_refused(redis_server: RedisServer) -> None:
    with pytest.raises(InvalidBackendConfigException, match="series_ttl"):
        load_backend(
            MultiProcessRedisBackend,
            {"port": redis_server.port, "series_ttl": 5, "expire_key_time": 5},
        )
