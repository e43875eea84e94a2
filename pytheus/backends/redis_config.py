"""The Redis backend's options, validated, and the client they make (``RedisConfig``).

Where Redis is comes as a ``url``, as ``host``/``port``/``db``/``username``/``password``, or
as the connection settings of a ``client`` or ``connection_pool`` made elsewhere (a
django-redis cache's): the backend always talks through a pool of its own, so that its
timeouts apply whatever the application's pool has (django-redis makes pools without any,
and a scrape through one waited for as long as Redis did not answer), and ``db`` can put
metrics in another database than the cache's (whose ``clear()`` empties its database).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from pytheus.backends.redis_keys import check_prefix
from pytheus.backends.redis_options import map_pytheus_options
from pytheus.exceptions import ConfigurationError

__all__ = ["PLAIN_POOLS", "REDIS_ERRORS", "RedisConfig", "connection_kwargs", "eviction_risk"]

logger = logging.getLogger("pytheus.backends.redis")

_CONFIG_KEYS = frozenset(
    {
        "url",
        "host",
        "port",
        "db",
        "username",
        "password",
        "prefix",
        "flush_interval",
        "process_timeout",
        "series_ttl",
        "socket_timeout",
        "socket_connect_timeout",
        "connection_options",
        "client",
        "connection_pool",
        "cluster",
    }
)
_DEFAULT_SOCKET_TIMEOUT = 5.0
_DEFAULT_CONNECT_TIMEOUT = 2.0
#: Pools whose connection settings can be copied into a pool of the backend's own.
PLAIN_POOLS = (redis.ConnectionPool, redis.BlockingConnectionPool)

#: What a call to Redis raises when Redis (or a cluster of them) cannot do it. A cluster's
#: own errors (no node reachable, a slot not served) are not redis.RedisError.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)

# Redis's maxmemory policies that may evict keys without a TTL: ours have none.
_EVICTING_POLICIES = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def eviction_risk(memory_info: Mapping[str, Any]) -> str | None:
    """What ``INFO memory`` says about our keys' chance of being evicted, or None.

    Our keys have no TTL, so only the ``allkeys-*`` policies can evict them, and only
    when ``maxmemory`` is set. Returns a sentence that says what to do instead.
    """
    policy = str(memory_info.get("maxmemory_policy", ""))
    maxmemory = int(memory_info.get("maxmemory", 0) or 0)
    if policy not in _EVICTING_POLICIES or maxmemory <= 0:
        return None
    return (
        f"Redis runs with maxmemory {maxmemory} bytes and maxmemory-policy {policy}: when "
        "full it evicts any key, metrics included (counters restart, families vanish "
        "until written again). Give metrics a Redis of their own, or set maxmemory-policy "
        "to noeviction or a volatile-* policy (our keys have no TTL, so those never "
        "evict them)."
    )


def connection_kwargs(client: Any) -> Mapping[str, Any]:
    """The connection settings of a client (of any node of it, for a cluster)."""
    if isinstance(client, RedisCluster):
        node: Any = client.get_default_node()  # type: ignore[no-untyped-call]
        if node is None or node.redis_connection is None:
            return {}
        client = node.redis_connection
    kwargs: Mapping[str, Any] = client.connection_pool.connection_kwargs
    return kwargs


class RedisConfig:
    """The validated backend configuration."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        config = map_pytheus_options(config or {}, _CONFIG_KEYS)
        for key in config:
            if key not in _CONFIG_KEYS:
                close = difflib.get_close_matches(key, _CONFIG_KEYS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"Unknown MultiProcessRedisBackend option {key!r}.{hint} "
                    f"Valid options: {sorted(_CONFIG_KEYS)}."
                )
        try:
            self.prefix = check_prefix(config.get("prefix", "pytheus"))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.flush_interval = self._number(config, "flush_interval", 1.0)
        self.process_timeout = self._number(
            config, "process_timeout", max(10.0, 5 * self.flush_interval)
        )
        if self.process_timeout <= self.flush_interval:
            raise ConfigurationError(
                f"process_timeout ({self.process_timeout}) must be longer than "
                f"flush_interval ({self.flush_interval}), or live processes would be reaped."
            )
        self.series_ttl = self._number(config, "series_ttl", 0.0)
        # How long a housekeeping turn lasts: one process at a time reaps, folds and
        # expires, about once per flush interval (at most a second) whatever the number
        # of processes.
        self.turn_ms = max(10, int(1000 * min(self.flush_interval or 1.0, 1.0)))
        # Only a pool made here is closed with the backend; one taken as it is (a
        # Sentinel pool) belongs to the caller.
        self.owns_client = True
        self.cluster = False  # a Redis Cluster: each call on the node of its keys' slot
        self.client = self._make_client(config)
        kwargs = connection_kwargs(self.client)
        timeout = float(kwargs.get("socket_timeout") or _DEFAULT_SOCKET_TIMEOUT)
        connect = float(kwargs.get("socket_connect_timeout") or _DEFAULT_CONNECT_TIMEOUT)
        # How long a flush can take at worst: what close() waits for the flusher.
        self.socket_timeout_total = timeout + 1.0
        # How long an exited process is remembered as gone: its last flush can be sent
        # again (redis-py retries once, after a timeout) for that long, not later.
        self.leave_retention = 2 * (timeout + connect) + 1.0

    @staticmethod
    def _str(config: Mapping[str, Any], key: str, default: str) -> str:
        value = config.get(key, default)
        if not isinstance(value, str):
            raise ConfigurationError(f"{key} must be a str, got {value!r}.")
        return value

    @staticmethod
    def _number(config: Mapping[str, Any], key: str, default: float) -> float:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigurationError(f"{key} must be a number of seconds >= 0, got {value!r}.")
        return float(value)

    @staticmethod
    def _db(config: Mapping[str, Any]) -> int:
        db = config.get("db", 0)
        if not isinstance(db, int) or isinstance(db, bool) or db < 0:
            raise ConfigurationError(f"db must be an int >= 0, got {db!r}.")
        return db

    def _timeouts(
        self, config: Mapping[str, Any], pool_kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Our timeouts, whatever the pool: the options given, else the pool's own if it
        has any, else ours. A pool without timeouts (django-redis makes them so) would
        let a scrape hang for as long as Redis does not answer."""
        out = {}
        for key, default in (
            ("socket_timeout", _DEFAULT_SOCKET_TIMEOUT),
            ("socket_connect_timeout", _DEFAULT_CONNECT_TIMEOUT),
        ):
            given = pool_kwargs.get(key)
            out[key] = self._number(config, key, given if given is not None else default)
        return out

    def _make_client(self, config: Mapping[str, Any]) -> Any:
        cluster = config.get("cluster", False)
        if not isinstance(cluster, bool):
            raise ConfigurationError(f"cluster must be True or False, got {cluster!r}.")
        if cluster or isinstance(config.get("client"), RedisCluster):
            self.cluster = True
            return self._make_cluster_client(config)
        given = [k for k in ("client", "connection_pool", "url") if config.get(k) is not None]
        if len(given) > 1:
            raise ConfigurationError(
                f"Give only one of client, connection_pool and url (got {given})."
            )
        options: dict[str, Any] = dict(config.get("connection_options") or {})
        # Fail fast: a scrape should answer 503 quickly rather than retry for seconds,
        # and the flusher retries by itself on its next interval. One retry covers the
        # stale pooled connection left by a Redis restart.
        options.setdefault("retry", Retry(NoBackoff(), 1))
        options.setdefault("decode_responses", True)
        client = config.get("client")
        pool = config.get("connection_pool")
        if client is not None:
            if not isinstance(client, redis.Redis):
                raise ConfigurationError(
                    f"client must be a redis.Redis instance, got {type(client).__name__}."
                )
            pool = client.connection_pool
        if pool is not None:
            if not isinstance(pool, redis.ConnectionPool):
                raise ConfigurationError(
                    f"connection_pool must be a redis.ConnectionPool, got {type(pool).__name__}."
                )
            return self._from_pool(pool, config, options)
        if config.get("url") is not None:
            url = config["url"]
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(
                    f"url {url!r} must start with redis://, rediss:// or unix://."
                )
            if "db" in config:
                raise ConfigurationError(
                    "Give the db in the url (redis://host:6379/1), not as db= beside it."
                )
            options.update(self._timeouts(config, options))
            try:
                return redis.Redis.from_url(url, **options)
            except ValueError as exc:
                raise ConfigurationError(f"Invalid Redis url {url!r}: {exc}") from exc
        for key in ("username", "password"):
            if config.get(key) is not None:
                options[key] = self._str(config, key, "")
        port = config.get("port", 6379)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be an int from 1 to 65535, got {port!r}.")
        options.update(self._timeouts(config, options))
        return redis.Redis(
            host=self._str(config, "host", "127.0.0.1"), port=port, db=self._db(config), **options
        )

    def _make_cluster_client(self, config: Mapping[str, Any]) -> RedisCluster:
        """A Redis Cluster client: a ready one, or one that finds the cluster from any
        node given by ``url`` or ``host``/``port``, with our timeouts."""
        client = config.get("client")
        if client is not None:
            if not isinstance(client, RedisCluster):
                raise ConfigurationError(
                    "With cluster=True, client must be a redis.cluster.RedisCluster, got "
                    f"{type(client).__name__}; or give the url, or host and port, of any node."
                )
            clash = sorted({"url", "host", "port", "username", "password", "db"} & set(config))
            if clash:
                raise ConfigurationError(
                    f"{clash[0]!r} cannot be given with a RedisCluster client, whose "
                    "connection settings are used; remove one of them."
                )
            self.owns_client = False
            return client
        if config.get("connection_pool") is not None:
            raise ConfigurationError(
                "A Redis Cluster has a pool per node: give the url, or host and port, of any "
                "node (or a ready redis.cluster.RedisCluster as client), not connection_pool."
            )
        if config.get("db", 0) != 0:
            raise ConfigurationError(
                f"A Redis Cluster has only database 0, got db={config['db']!r}; give metrics "
                "a prefix of their own instead."
            )
        options: dict[str, Any] = dict(config.get("connection_options") or {})
        options.setdefault("decode_responses", True)
        options.update(self._timeouts(config, options))
        for key in ("username", "password"):
            if config.get(key) is not None:
                options[key] = self._str(config, key, "")
        try:
            if config.get("url") is not None:
                url = config["url"]
                if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
                    raise ConfigurationError(
                        f"url {url!r} must start with redis:// or rediss:// (a node of the "
                        "cluster)."
                    )
                return RedisCluster.from_url(url, **options)
            port = config.get("port", 6379)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ConfigurationError(f"port must be an int from 1 to 65535, got {port!r}.")
            return RedisCluster(host=self._str(config, "host", "127.0.0.1"), port=port, **options)
        except REDIS_ERRORS as exc:
            # RedisCluster asks a node for the cluster's layout as it is made.
            raise ConfigurationError(
                f"Cannot reach the Redis Cluster ({exc}): check the url or host and port of "
                "a node, and that cluster mode is on (cluster-enabled yes)."
            ) from exc

    def _from_pool(
        self, pool: redis.ConnectionPool, config: Mapping[str, Any], options: dict[str, Any]
    ) -> redis.Redis:
        """A client of our own with ``pool``'s connection settings (host, password, TLS,
        ...), our timeouts and ``db`` if given: the application's pool keeps its own
        settings, and cache.clear() on another db cannot touch the metrics."""
        clash = sorted({"host", "port", "username", "password"} & set(config))
        if clash:
            raise ConfigurationError(
                f"{clash[0]!r} cannot be given with a client or connection_pool, whose "
                "connection settings are used; remove one of them."
            )
        if type(pool) not in PLAIN_POOLS:
            # A pool that makes its own connections (Sentinel's): used as it is.
            self.owns_client = False
            if pool.connection_kwargs.get("socket_timeout") is None:
                logger.warning(
                    "The %s given to MultiProcessRedisBackend has no socket_timeout: a "
                    "scrape waits for as long as Redis does not answer. Give it one.",
                    type(pool).__name__,
                )
            return redis.Redis(connection_pool=pool)
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(options)
        kwargs.update(self._timeouts(config, pool.connection_kwargs))
        if "db" in config:
            kwargs["db"] = self._db(config)
        return redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
