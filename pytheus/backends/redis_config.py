"""The Redis backend's options, validated, and the client they make (``RedisConfig``).

Where Redis is comes as a ``url``, as ``host``/``port``/``db``/``username``/``password``, as
Redis Sentinel's ``sentinels`` and ``service_name``, or as the connection settings of a
``client`` or ``connection_pool`` made elsewhere (a django-redis cache's): the backend
always talks through a pool of its own, so that its timeouts apply whatever the
application's pool has (django-redis makes pools without any, and a scrape through one
waited for as long as Redis did not answer), and ``db`` can put metrics in another
database than the cache's (whose ``clear()`` empties its database).

With Sentinel, the pool is redis-py's ``SentinelConnectionPool``: every new connection asks
the sentinels where the primary is, so the backend follows a failover by itself. Replication
is asynchronous, so ``wait_replicas`` (1 by default with Sentinel) makes the flusher keep
each flush's changes until a replica confirms it has them (``WAIT``; see
:mod:`pytheus.backends.redis_flush`), and a failover loses nothing the flusher forgot.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from pytheus.backends.redis_keys import check_prefix
from pytheus.backends.redis_options import map_pytheus_options
from pytheus.exceptions import ConfigurationError

__all__ = [
    "PLAIN_POOLS",
    "REDIS_ERRORS",
    "RedisConfig",
    "connection_kwargs",
    "eviction_risk",
    "replication_risk",
]

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
        "sentinels",
        "service_name",
        "sentinel_username",
        "sentinel_password",
        "wait_replicas",
        "wait_timeout",
    }
)
_DEFAULT_SOCKET_TIMEOUT = 5.0
_DEFAULT_CONNECT_TIMEOUT = 2.0
#: How long a flush's changes are kept, and sent again, while no replica confirms them.
_DEFAULT_WAIT_TIMEOUT = 5.0
# Where Redis is: one of these ways at most.
_WHERE = ("client", "connection_pool", "url", "sentinels")
#: Pools whose connection settings can be copied into a pool of the backend's own.
PLAIN_POOLS = (redis.ConnectionPool, redis.BlockingConnectionPool)

# The first redis-py whose cluster pipelines take EVALSHA (a flush's scripts).
_CLUSTER_REDIS_PY = (8, 2)


def _version(text: str) -> tuple[int, ...]:
    """``"8.2.0"`` -> ``(8, 2, 0)``; what is not a number ends it (``"8.2.0b1"`` -> ``(8, 2)``)."""
    out = []
    for part in text.split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


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


def replication_risk(replication_info: Mapping[str, Any], wanted: int) -> str | None:
    """What ``INFO replication`` says about ``wait_replicas=wanted`` ever being met, or None."""
    if wanted <= 0:
        return None
    role = str(replication_info.get("role", ""))
    if role != "master":
        return (
            f"wait_replicas is {wanted}, but the Redis the metrics are written to answers as "
            f"a {role or 'server of unknown role'}, not a primary: point the backend at the "
            "primary (or at the sentinels), or set wait_replicas to 0."
        )
    connected = int(replication_info.get("connected_slaves", 0) or 0)
    if connected >= wanted:
        return None
    return (
        f"wait_replicas is {wanted}, but the Redis primary has {connected} connected "
        "replica(s): no flush is ever confirmed, so every process keeps its changes and sends "
        "them again for wait_timeout, then gives them up, and a failover can lose them. Start "
        f"the replicas, or set wait_replicas to {connected}."
    )


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
        #: The redis.sentinel.Sentinel the client asks where the primary is, if any.
        self.sentinel: redis.sentinel.Sentinel | None = None
        self.client = self._make_client(config)
        kwargs = connection_kwargs(self.client)
        timeout = float(kwargs.get("socket_timeout") or _DEFAULT_SOCKET_TIMEOUT)
        connect = float(kwargs.get("socket_connect_timeout") or _DEFAULT_CONNECT_TIMEOUT)
        # How long a flush can take at worst: what close() waits for the flusher.
        self.socket_timeout_total = timeout + 1.0
        # How long an exited process is remembered as gone: its last flush can be sent
        # again (redis-py retries once, after a timeout) for that long, not later.
        self.leave_retention = 2 * (timeout + connect) + 1.0
        self._replication(config, timeout)

    def _replication(self, config: Mapping[str, Any], socket_timeout: float) -> None:
        """``wait_replicas`` and ``wait_timeout``: how many replicas must confirm a flush
        before its changes are forgotten here, and for how long they are kept otherwise."""
        pool = getattr(self.client, "connection_pool", None)
        sentinel = isinstance(pool, redis.sentinel.SentinelConnectionPool)
        # Where a failover is the setup's purpose (Sentinel, a cluster, whose primaries
        # have replicas), the replicas confirm each flush.
        default = 1 if (sentinel or self.cluster) and self.flush_interval > 0 else 0
        replicas = config.get("wait_replicas", default)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ConfigurationError(
                f"wait_replicas must be an int >= 0 (replicas that must confirm each flush; "
                f"0 waits for none), got {replicas!r}."
            )
        if replicas and self.flush_interval <= 0:
            raise ConfigurationError(
                "wait_replicas needs a flush_interval > 0: the background flusher waits for "
                "the replicas, and with flush_interval=0 every change is written by the "
                "application's own thread. Set flush_interval (1.0), or wait_replicas=0."
            )
        self.wait_replicas: int = replicas
        self.wait_timeout = self._number(config, "wait_timeout", _DEFAULT_WAIT_TIMEOUT)
        if self.wait_timeout <= 0:
            raise ConfigurationError(
                f"wait_timeout must be a number of seconds > 0, got {self.wait_timeout!r}."
            )
        # The longest one WAIT may block the flusher (holding the flush lock, which a
        # scrape waits for): a replica answers in a round trip, so a quarter of the
        # interval is plenty; below the socket timeout, or the pipeline would time out.
        block = min(self.wait_timeout, self.flush_interval / 4, socket_timeout / 2)
        self.wait_block_ms = max(1, int(block * 1000))

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
            sentinel = sorted({"sentinels", "service_name"} & set(config))
            if sentinel:
                raise ConfigurationError(
                    f"{sentinel[0]!r} is an option of Redis Sentinel, not of a Redis Cluster "
                    "(which fails over by itself): remove it, or cluster."
                )
            return self._make_cluster_client(config)
        given = [k for k in _WHERE if config.get(k) is not None]
        if len(given) > 1:
            raise ConfigurationError(
                f"Give only one of client, connection_pool, url and sentinels (got {given})."
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
        if config.get("sentinels") is not None or "service_name" in config:
            return self._from_sentinels(config, options)
        sentinel_only = sorted({"sentinel_username", "sentinel_password"} & set(config))
        if sentinel_only:
            raise ConfigurationError(
                f"{sentinel_only[0]!r} is an option of Redis Sentinel: give it with "
                "'sentinels' and 'service_name', or remove it."
            )
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
        version = _version(redis.__version__)
        if version < _CLUSTER_REDIS_PY:
            raise ConfigurationError(
                f"The Redis backend on a Redis Cluster needs redis-py "
                f"{'.'.join(map(str, _CLUSTER_REDIS_PY))} or later, which sends a flush's "
                f"scripts to every primary in one pipeline; this is redis-py "
                f"{redis.__version__}: pip install 'redis>=8.2'."
            )
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

    def _from_sentinels(self, config: Mapping[str, Any], options: dict[str, Any]) -> redis.Redis:
        """A client of the primary that the sentinels name for ``service_name``; its pool
        asks them again whenever it connects, so it follows a failover."""
        example = '"sentinels": [["10.0.0.1", 26379], ["10.0.0.2", 26379]]'
        sentinels = config.get("sentinels")
        if sentinels is None:
            raise ConfigurationError(
                f"service_name is given without sentinels: add the Sentinel addresses "
                f"({example}), or remove service_name."
            )
        if isinstance(sentinels, str | bytes) or not isinstance(sentinels, list | tuple):
            raise ConfigurationError(
                f"sentinels must be a list of [host, port] pairs ({example}), got {sentinels!r}."
            )
        if not sentinels:
            raise ConfigurationError(f"sentinels is empty: list at least one ({example}).")
        pairs: list[tuple[str, int]] = []
        for entry in sentinels:
            ok = isinstance(entry, list | tuple) and len(entry) == 2
            host, port = entry if ok else (None, None)
            if not (
                isinstance(host, str)
                and host
                and isinstance(port, int)
                and not isinstance(port, bool)
                and 0 < port < 65536
            ):
                raise ConfigurationError(
                    f"sentinels entry {entry!r} is not a [host, port] pair with a port from 1 "
                    f"to 65535 ({example})."
                )
            pairs.append((host, port))
        service = config.get("service_name")
        if not isinstance(service, str) or not service:
            raise ConfigurationError(
                "sentinels need the service_name the sentinels monitor (the <master-name> of "
                f"`sentinel monitor` in sentinel.conf), got {service!r}."
            )
        clash = sorted({"host", "port"} & set(config))
        if clash:
            raise ConfigurationError(
                f"{clash[0]!r} cannot be given with sentinels, which say where the primary "
                "is; remove it."
            )
        for key in ("username", "password"):
            if config.get(key) is not None:
                options[key] = self._str(config, key, "")
        options.update(self._timeouts(config, options))
        # The sentinels' own connections: the same timeouts (a sentinel that hangs must not
        # hold a flush or a scrape longer than Redis could), their own credentials.
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
        }
        for key in ("username", "password"):
            if config.get(f"sentinel_{key}") is not None:
                sentinel_kwargs[key] = self._str(config, f"sentinel_{key}", "")
        self.sentinel = redis.sentinel.Sentinel(pairs, sentinel_kwargs=sentinel_kwargs)
        self._sentinel_options = {"service_name": service, "db": self._db(config), **options}
        client: redis.Redis = self.sentinel.master_for(**self._sentinel_options)
        return client

    def checking_client(self, timeout: float) -> Any:
        """A client of the same Redis that gives up after ``timeout`` seconds and does not
        retry, for deployment checks (close it after use); the backend's own client where
        its pool cannot be copied (one given as it is)."""
        quick = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.sentinel is not None:
            client: redis.Redis = self.sentinel.master_for(**{**self._sentinel_options, **quick})
            return client
        if not isinstance(self.client, redis.Redis):
            return self.client  # a cluster's: a pool per node
        pool = self.client.connection_pool
        if type(pool) not in PLAIN_POOLS:
            return self.client
        kwargs = {**pool.connection_kwargs, **quick}
        return redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )

    def close_client(self) -> None:
        """Close the client's connections (and the sentinels'), if this config made it.
        A later call reconnects."""
        if not self.owns_client:
            return
        self.client.close()
        if isinstance(self.client, redis.Redis):
            self.client.connection_pool.disconnect()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                client.close()
                client.connection_pool.disconnect()

    def where(self) -> str:
        """Where Redis is, for messages: ``host:port/db``, a socket, the Sentinel service,
        or a node of the cluster."""
        if not isinstance(self.client, redis.Redis):
            kwargs = connection_kwargs(self.client)
            return f"cluster {kwargs.get('host')}:{kwargs.get('port')}"
        pool = self.client.connection_pool
        kwargs = pool.connection_kwargs
        db = kwargs.get("db", 0)
        service = getattr(pool, "service_name", None)
        if service is not None:
            return f"sentinel service {service!r}/{db}"
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"{where}/{db}"

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
