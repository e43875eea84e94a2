"""Configuring the Redis backend: every way to say where Redis is, and mistakes said clearly."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from pytheus.backends import ENV_CLASS, ENV_CONFIG, get_backend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.backends.redis_keys import KeyLayout
from pytheus.exceptions import BackendUnavailableError, ConfigurationError
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import keys_under, run_script, scrape, wait_for
from tests.servers import RedisServer, free_port

Factory = Callable[..., RedisServer]


def counts_one(prefix: str, client: redis.Redis) -> None:
    """Define, increment and scrape a counter; check that it went through Redis."""
    hits = Counter("hits", "Hits.")
    hits.inc(3)
    assert scrape().value("hits_total") == 3.0
    assert KeyLayout(prefix).family("hits") in keys_under(client, prefix)


def test_url_redis(load_redis_backend: LoadBackend, redis_server: RedisServer, prefix: str,
                   client: redis.Redis) -> None:  # fmt: skip
    backend = load_redis_backend(url=f"redis://127.0.0.1:{redis_server.port}/0")
    assert f"127.0.0.1:{redis_server.port}" in repr(backend)
    counts_one(prefix, client)


def test_url_unix_socket(
    load_redis_backend: LoadBackend, redis_server_factory: Factory, prefix: str, tmp_path: Path
) -> None:
    sock = tmp_path / "r.sock"
    server = redis_server_factory(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"])
    backend = load_redis_backend(url=f"unix://{sock}")
    assert str(sock) in repr(backend)
    with redis.Redis(unix_socket_path=str(sock), decode_responses=True) as client:
        counts_one(prefix, client)
    # Not through the TCP port by accident: the same keys are on the server behind it.
    with redis.Redis(port=server.port) as tcp:
        assert tcp.exists(KeyLayout(prefix).family("hits"))


def test_host_port_db_password(
    load_redis_backend: LoadBackend, redis_server_factory: Factory, prefix: str
) -> None:
    server = redis_server_factory()
    # Set after start: the factory's readiness check is a PING without a password.
    assert server.command("CONFIG", "SET", "requirepass", "s3cret") == b"+OK"
    load_redis_backend(host="127.0.0.1", port=server.port, db=3, password="s3cret")
    with redis.Redis(port=server.port, db=3, password="s3cret", decode_responses=True) as client:
        counts_one(prefix, client)
        client.select(0)
    with redis.Redis(port=server.port, db=0, password="s3cret") as db0:
        assert db0.dbsize() == 0

    # A wrong or missing password is an unavailable backend at scrape time, not a crash.
    for wrong in ({"password": "nope"}, {}):
        load_redis_backend(port=server.port, db=3, prefix=prefix, **wrong)
        with pytest.raises(BackendUnavailableError):
            generate_metrics()


def test_prefixes_isolate_services(
    load_redis_backend: LoadBackend, redis_server: RedisServer, client: redis.Redis
) -> None:
    mine = load_redis_backend()
    theirs = {"port": redis_server.port, "prefix": mine.config.prefix + "x"}
    run_script("record", theirs, 5, 1)  # defines jobs, latency_seconds, ... in a process
    Counter("jobs", "Mine, another type and labels than theirs.").inc(1)
    parsed = scrape()
    assert parsed.value("jobs_total") == 1.0
    assert parsed.helps["jobs"] == "Mine, another type and labels than theirs."
    assert not {"latency_seconds", "size_bytes", "build", "phase"} & parsed.types.keys()

    other = MultiProcessRedisBackend(theirs)
    try:
        families = {f.name: f for f in other.collect([], include_remote=True)}
    finally:
        other.close()
    assert {"jobs", "latency_seconds", "size_bytes", "build", "phase"} <= families.keys()
    assert sum(s.value for s in families["jobs"].samples) == 5 * 1.5
    prefixes = {k.split(":", 1)[0] for k in client.scan_iter(f"{mine.config.prefix}*")}
    assert prefixes == {mine.config.prefix, mine.config.prefix + "x"}


@pytest.mark.parametrize("decode_responses", [False, True])
def test_ready_client(
    load_redis_backend: LoadBackend,
    redis_server: RedisServer,
    prefix: str,
    client: redis.Redis,
    decode_responses: bool,
) -> None:
    """A client made elsewhere (django-redis makes them without decode_responses): its
    connection settings, in a pool of the backend's own, with the backend's timeouts."""
    ready = redis.Redis(
        port=redis_server.port,
        decode_responses=decode_responses,
        socket_timeout=None,  # redis-py's default before 6.0; ours apply
        socket_connect_timeout=None,
    )
    backend = load_redis_backend(client=ready)
    assert backend.client.connection_pool is not ready.connection_pool
    kwargs = backend.client.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
        redis_server.port,
        5.0,
        2.0,
    )
    Gauge("temperature", "T.", ["room"], multiprocess_mode="all").labels(room="é").set(21.5)
    Histogram("h", "H.", buckets=[1]).observe(0.5)
    counts_one(prefix, client)
    parsed = scrape()
    assert list(parsed.series("temperature").values()) == [21.5]
    assert parsed.value("h_count") == 1.0
    backend.close()
    assert ready.ping()  # the caller's client is still the caller's
    ready.close()


def test_connection_pool_settings_with_another_db_and_our_timeouts(
    load_redis_backend: LoadBackend, redis_server: RedisServer, prefix: str
) -> None:
    """A pool without timeouts (django-redis makes them so) gets ours; its own timeouts
    are kept when the options give none; ``db`` puts metrics in another database."""
    pool = redis.ConnectionPool(host="127.0.0.1", port=redis_server.port, db=0, socket_timeout=None)
    backend = load_redis_backend(connection_pool=pool, db=2, socket_timeout=0.7)
    kwargs = backend.client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
        2,
        0.7,
        2.0,
    )
    assert pool.connection_kwargs["socket_timeout"] is None  # the application's is untouched
    with redis.Redis(port=redis_server.port, db=2, decode_responses=True) as db2:
        counts_one(prefix, db2)
    with redis.Redis(port=redis_server.port, db=0, decode_responses=True) as db0:
        assert not keys_under(db0, prefix)
    timed = redis.ConnectionPool(port=redis_server.port, socket_timeout=3, socket_connect_timeout=1)
    kwargs = load_redis_backend(connection_pool=timed).client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (3, 1)
    with pytest.raises(ConfigurationError, match="'port' cannot be given with a client"):
        MultiProcessRedisBackend({"connection_pool": pool, "port": 1})
    pool.disconnect()
    timed.disconnect()


def test_backend_from_environment(
    load_redis_backend: LoadBackend,
    redis_server: RedisServer,
    prefix: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_redis_backend()  # only for the fixture's clean-up of the backend and registry
    monkeypatch.setenv(ENV_CLASS, "pytheus.backends.redis.MultiProcessRedisBackend")
    monkeypatch.setenv(
        ENV_CONFIG, f'{{"url": "redis://127.0.0.1:{redis_server.port}/0", "prefix": "{prefix}"}}'
    )
    assert isinstance(load_backend(), MultiProcessRedisBackend)
    counts_one(prefix, client)


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        ({"flush_intervall": 1}, "flush_interval"),
        ({"prefx": "a"}, "prefix"),
        ({"sockettimeout": 1}, "socket_timeout"),
        ({"connection_pol": None}, "connection_pool"),
    ],
)
def test_unknown_option_suggests_the_right_one(given: dict[str, Any], suggestion: str) -> None:
    with pytest.raises(ConfigurationError, match=f"Did you mean '{suggestion}'") as info:
        MultiProcessRedisBackend(given)
    assert repr(next(iter(given))) in str(info.value)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"port": "6379"}, "port"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"db": -1}, "db"),
        ({"db": "0"}, "db"),
        ({"prefix": 3}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a b"}, "prefix"),
        ({"prefix": "app{1}"}, "braces"),
        ({"host": 127}, "host"),
        ({"password": 123}, "password"),
        ({"flush_interval": "1"}, "flush_interval"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"process_timeout": None}, "process_timeout"),
        ({"flush_interval": 5, "process_timeout": 2}, "process_timeout"),
        ({"socket_timeout": "fast"}, "socket_timeout"),
        ({"socket_connect_timeout": -0.5}, "socket_connect_timeout"),
        ({"series_ttl": "1d"}, "series_ttl"),
        ({"client": "redis://x"}, "client"),
        ({"connection_pool": object()}, "connection_pool"),
        ({"url": "http://127.0.0.1:6379"}, "url"),
        ({"url": 6379}, "url"),
        ({"url": "redis://127.0.0.1:6379", "client": redis.Redis()}, "client"),
    ],
)
def test_bad_values_name_the_option(config: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        MultiProcessRedisBackend(config)


def test_a_refused_config_keeps_the_previous_backend(backend: MultiProcessRedisBackend) -> None:
    with pytest.raises(ConfigurationError):
        load_backend(MultiProcessRedisBackend, {"port": "nope"})
    assert get_backend() is backend


@pytest.mark.parametrize("down", ["closed port", "paused server"])
def test_load_and_define_never_wait_for_redis(
    load_redis_backend: LoadBackend, redis_server_factory: Factory, down: str
) -> None:
    """Definitions happen at import time: with Redis down they must neither fail nor wait.

    A closed port refuses at once; a paused (SIGSTOPped) server accepts connections and
    never answers, so any network call before the first scrape would hang for the timeout.
    """
    if down == "closed port":
        port = free_port()
    else:
        server = redis_server_factory()
        server.pause()
        port = server.port
    # A paused server makes any network call wait the whole timeout; a loaded two-core
    # machine slows these few thousand operations to tenths of a second at worst.
    timeout = 2.0
    start = time.perf_counter()
    backend = load_redis_backend(
        port=port, socket_timeout=timeout, socket_connect_timeout=timeout, flush_interval=0.05
    )
    counter = Counter("c", "C.", ["x"])
    gauge = Gauge("g", "G.")
    histogram = Histogram("h", "H.")
    for i in range(1000):
        counter.labels(x=str(i % 7)).inc()
        gauge.set(i)
        histogram.observe(i / 1000)
    elapsed = time.perf_counter() - start
    assert elapsed < timeout / 2, f"took {elapsed:.3f} s: something waited on the network"
    if down == "paused server":
        return  # the rest would wait for the timeouts; test_faults pauses Redis at length

    with pytest.raises(BackendUnavailableError, match="Redis"):
        generate_metrics()
    wait_for(lambda: not backend.status()["healthy"], what="status() reports the outage")
    status = backend.status()
    assert status["errors"] >= 1
    assert "password" not in repr(status)


def test_a_cluster_needs_a_redis_py_that_pipelines_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Said when the backend is made, with the fix, not as an error of every flush."""
    monkeypatch.setattr(redis, "__version__", "8.1.0")
    with pytest.raises(ConfigurationError, match=r"redis-py 8\.2 or later.*redis>=8\.2"):
        MultiProcessRedisBackend({"cluster": True, "port": 1})
