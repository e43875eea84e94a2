"""Redis Sentinel and replication: the backend follows a failover and loses no count.

Real servers only (see ``conftest.py``): a primary, its replica and three sentinels, each a
``redis-server`` on a free loopback port. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.backends.redis_keys import KeyLayout
from pytheus.exceptions import ConfigurationError
from pytheus.metrics import Counter
from tests.redis_backend.helpers import read_line, start_script, wait_for
from tests.sentinel.conftest import SERVICE, Replicated

Make = Callable[..., Replicated]

#: The slowest inc() we accept across a failover: the hot path never waits for Redis, so
#: what is left is the scheduler of a loaded machine (a generous bound, not a speed goal).
INC_BOUND = 0.05


def counted(client: redis.Redis, prefix: str, name: str = "app_events") -> dict[str, float]:
    """The counter's series in Redis, by their field (the JSON list of label values)."""
    fields = client.hgetall(KeyLayout(prefix).family(name))
    return {k: float(v) for k, v in fields.items() if k.startswith("[")}


def unconfirmed(backend: MultiProcessRedisBackend) -> set[str]:
    """The families of the chunks that Redis applied and no replica confirmed yet (read
    between flushes: a flush takes them while it sends them again)."""
    with backend._flush_lock:
        return {c.name for c in backend._writer.unconfirmed}


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"service_name": "m"}, "service_name is given without sentinels"),
        ({"sentinels": [["127.0.0.1", 26379]]}, "sentinels need the service_name"),
        ({"sentinels": "127.0.0.1:26379", "service_name": "m"}, "list of [host, port] pairs"),
        ({"sentinels": [], "service_name": "m"}, "sentinels is empty"),
        ({"sentinels": [["127.0.0.1", "26379"]], "service_name": "m"}, "is not a [host, port]"),
        ({"sentinels": [["127.0.0.1", 0]], "service_name": "m"}, "is not a [host, port]"),
        ({"sentinels": [["127.0.0.1", 1]], "service_name": ""}, "need the service_name"),
        ({"sentinels": [["127.0.0.1", 1]], "service_name": "m", "port": 6379}, "'port' cannot"),
        ({"sentinels": [["127.0.0.1", 1]], "url": "redis://127.0.0.1"}, "Give only one of"),
        ({"sentinel_password": "x"}, "is an option of Redis Sentinel"),
        ({"wait_replicas": -1}, "wait_replicas must be an int >= 0"),
        ({"wait_replicas": True}, "wait_replicas must be an int >= 0"),
        ({"wait_replicas": 1, "flush_interval": 0}, "wait_replicas needs a flush_interval > 0"),
        ({"wait_timeout": 0}, "wait_timeout must be a number of seconds > 0"),
        ({"sentinel": [["127.0.0.1", 1]]}, "Did you mean 'sentinels'?"),
    ],
)
def test_mistakes_are_said_at_configuration(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MultiProcessRedisBackend(config)
    assert message in str(info.value)


def test_sentinel_options_reach_redis_py() -> None:
    """No server needed: the options become a SentinelConnectionPool with our timeouts, and
    the sentinels' own connections get them too (a hung sentinel must not hang a flush)."""
    backend = MultiProcessRedisBackend(
        {
            "sentinels": [["127.0.0.1", 1], ("::1", 2)],
            "service_name": "metrics",
            "password": "primary-secret",
            "sentinel_password": "sentinel-secret",
            "socket_timeout": 0.5,
            "db": 2,
            "flush_interval": 2.0,
        }
    )
    try:
        cfg = backend.config
        pool = backend.client.connection_pool
        assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
        assert pool.service_name == "metrics"
        kwargs = pool.connection_kwargs
        assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"]) == (
            "primary-secret",
            2,
            0.5,
        )
        assert cfg.sentinel is not None
        sentinel_kwargs = cfg.sentinel.sentinels[0].connection_pool.connection_kwargs
        assert sentinel_kwargs["password"] == "sentinel-secret"
        assert sentinel_kwargs["socket_timeout"] == 0.5
        assert "sentinel service 'metrics'/2" in repr(backend)
        # Replicas are there with Sentinel: wait for one by default, a quarter of the
        # flush interval at most per flush, within the socket timeout.
        assert (cfg.wait_replicas, cfg.wait_block_ms) == (1, 250)
    finally:
        backend.close()
    plain = MultiProcessRedisBackend({"port": 1, "flush_interval": 2.0})
    try:
        assert plain.config.wait_replicas == 0
    finally:
        plain.close()


# ---------------------------------------------------------------------------- WAIT


def test_changes_are_kept_until_a_replica_confirms_them(
    replicated: Make, load_redis_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With the replica stopped, flushes go on (Redis applies them) but their chunks stay
    unconfirmed, sent again with every flush; once it is back, they are confirmed and
    forgotten."""
    group = replicated()
    backend = load_redis_backend(
        url=group.primary.url, wait_replicas=1, wait_timeout=120, flush_interval=0.2
    )
    hits = Counter("hits", "Hits.")
    hits.inc(2)
    wait_for(lambda: backend.status()["last_flush"] and not unconfirmed(backend), what="confirmed")

    group.replica.pause()
    try:
        hits.inc(3)
        primary = group.client(group.primary)
        wait_for(lambda: counted(primary, backend.config.prefix, "hits") == {"[]": 5.0})
        # Flushes carry on; the chunk that carried the 3 stays unconfirmed through them.
        flushed = backend.status()["last_flush"]
        wait_for(lambda: backend.status()["last_flush"] > flushed, what="a later flush")
        flushed = backend.status()["last_flush"]
        wait_for(lambda: backend.status()["last_flush"] > flushed, what="another flush")
        assert "hits" in unconfirmed(backend)
        assert counted(primary, backend.config.prefix, "hits") == {"[]": 5.0}  # applied once
    finally:
        group.replica.resume()
    wait_for(lambda: not unconfirmed(backend), timeout=30, what="the replica's confirmation")
    replica = group.client(group.replica)
    assert counted(replica, backend.config.prefix, "hits") == {"[]": 5.0}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unconfirmed_changes_are_given_up_after_wait_timeout(
    replicated: Make, load_redis_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica that stays away costs memory for ``wait_timeout`` only, and says so."""
    group = replicated()
    backend = load_redis_backend(
        url=group.primary.url, wait_replicas=1, wait_timeout=0.5, flush_interval=0.2
    )
    hits = Counter("hits", "Hits.")
    group.replica.pause()
    try:
        hits.inc()
        wait_for(lambda: backend._writer.forgotten, timeout=30, what="giving up")
        # (The backend's own statistics change with every flush: younger chunks of
        # theirs are kept, each for wait_timeout.)
        wait_for(lambda: "hits" not in unconfirmed(backend), timeout=30, what="hits given up")
        assert "No 1 replica(s) of Redis confirmed" in caplog.text
    finally:
        group.replica.resume()
    hits.inc()
    wait_for(lambda: not backend._writer.forgotten, timeout=30, what="confirmed again")
    assert "confirm this process's metric writes again" in caplog.text


@pytest.mark.slow
def test_a_flush_no_replica_received_reaches_the_promoted_replica(
    replicated: Make, load_redis_backend: Any
) -> None:
    """The case replication alone loses: Redis applied (and acknowledged) a flush, then
    died before any replica had it. The replica comes back from a snapshot taken before
    that flush and is promoted; the process sends the unconfirmed chunks again, and the
    new primary applies each exactly once."""
    group = replicated(sentinels=3)
    backend = load_redis_backend(**group.sentinel_config(flush_interval=0.2, wait_timeout=120))
    prefix = backend.config.prefix
    hits = Counter("hits", "Hits.", required_labels=["kind"])
    hits.labels(kind="a").inc(5)
    replica = group.client(group.replica)
    wait_for(lambda: counted(replica, prefix, "hits") == {'["a"]': 5.0}, what="replicated")
    wait_for(lambda: not unconfirmed(backend), what="confirmed")
    assert replica.save()  # what the replica will come back with

    group.replica.pause()
    hits.labels(kind="a").inc(7)
    hits.labels(kind="b").inc(1)  # a series the new primary will never have heard of
    primary = group.client(group.primary)
    wait_for(
        lambda: counted(primary, prefix, "hits") == {'["a"]': 12.0, '["b"]': 1.0},
        what="applied by the primary",
    )
    assert "hits" in unconfirmed(backend)
    group.primary.kill()
    group.replica.kill()  # from the snapshot: as if the replication never arrived
    group.replica.start()
    assert counted(replica, prefix, "hits") == {'["a"]': 5.0}
    started = time.monotonic()
    group.wait_for_new_primary()
    failover = time.monotonic() - started
    hits.labels(kind="b").inc(2)
    wait_for(
        lambda: counted(replica, prefix, "hits") == {'["a"]': 12.0, '["b"]': 3.0},
        timeout=30,
        what="the unconfirmed chunks sent again to the new primary",
    )
    # The new primary has no replica (the old primary is dead): nothing it holds is
    # confirmed, so this process keeps it, for wait_timeout.
    assert "hits" in unconfirmed(backend)
    print(f"failover (sentinels naming the replica) took {failover:.1f} s")


def test_a_process_exiting_with_unconfirmed_writes_names_them(
    replicated: Make, load_redis_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """close() sends the unconfirmed chunks with its last flush and waits for the replicas
    once more; what they still have not confirmed is named, as a failover could lose it."""
    group = replicated()
    backend = load_redis_backend(
        url=group.primary.url, wait_replicas=1, wait_timeout=120, flush_interval=0.2
    )
    Counter("hits", "Hits.").inc()
    wait_for(
        lambda: "hits" in counted_families(group) and "hits" not in unconfirmed(backend),
        what="hits flushed and confirmed",
    )
    group.replica.pause()
    try:
        Counter("jobs", "Jobs.").inc()
        assert backend.close()  # Redis took the last flush ...
    finally:
        group.replica.resume()
    # ... but no replica confirmed it.
    assert "exits with writes of 'jobs'" in caplog.text
    assert "'hits'" not in caplog.text.split("exits with writes of", 1)[1].split("\n")[0]


def counted_families(group: Replicated) -> set[str]:
    with group.client(group.primary) as c:
        return {k.rsplit("{", 1)[1].rstrip("}") for k in c.keys("*{*}") if "{@}" not in k}


def test_a_primary_that_lost_acknowledged_writes_does_not_freeze_a_family(
    load_redis_backend: Any, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Without wait_replicas, a failover (or a restore from an older copy) can lose the
    last writes and their sequence numbers. Redis then refuses the next chunk (an earlier
    one is missing) and says where its sequence stops; the process carries on from there
    instead of being refused for ever. What was lost is lost, and said so."""
    backend = load_redis_backend(flush_interval=3600)
    hits = Counter("hits", "Hits.")
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    family = KeyLayout(backend.config.prefix).family("hits")
    seq_field = "\0q\0" + backend.status()["process"]
    hits.inc(1)
    assert backend.flush()
    older = {"[]": client.hget(family, "[]"), seq_field: client.hget(family, seq_field)}
    hits.inc(2)
    assert backend.flush()
    assert counted(client, backend.config.prefix, "hits") == {"[]": 3.0}
    client.hset(family, mapping=older)  # the promoted replica had only the first flush

    hits.inc(4)
    assert backend.flush()  # refused: Redis lacks chunk 2 ...
    assert "Redis lacks changes of metric 'hits'" in caplog.text
    assert backend.flush()  # ... so the 4 goes again as chunk 2
    assert counted(client, backend.config.prefix, "hits") == {"[]": 5.0}  # the 2 is lost
    hits.inc(1)
    assert backend.flush()
    assert counted(client, backend.config.prefix, "hits") == {"[]": 6.0}
    client.close()


# ---------------------------------------------------------------------------- failover


@pytest.mark.slow
def test_failover_under_load_loses_no_count(replicated: Make, prefix: str) -> None:
    """Several processes count while the primary is SIGKILLed and Sentinel promotes the
    replica: they never raise, inc() never waits for Redis, and every count they made is in
    the totals afterwards, exactly."""
    group = replicated(sentinels=3)
    config = group.sentinel_config(prefix=prefix, flush_interval=0.25)
    workers = [start_script("count", config, i, 120) for i in range(3)]
    try:
        for w in workers:
            assert "ready" in read_line(w, timeout=60)
        primary = group.client(group.primary)
        wait_for(lambda: len(counted(primary, prefix)) == 3, what="every worker counted")
        # Let them count for a few flushes, then crash the primary under them.
        before = sum(counted(primary, prefix).values())
        wait_for(lambda: sum(counted(primary, prefix).values()) > before, what="more counts")
        group.primary.kill()
        started = time.monotonic()
        group.wait_for_new_primary()
        failover = time.monotonic() - started
        new = group.client(group.replica)
        # The workers reach the new primary: their counts grow there.
        at = sum(counted(new, prefix).values())
        wait_for(lambda: sum(counted(new, prefix).values()) > at, timeout=60, what="counting on")
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("stop\n")
            w.stdin.flush()
        results = []
        for w in workers:
            out, err = w.communicate(timeout=60)
            assert w.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.communicate()
    totals = counted(new, prefix)
    made = {f'["{i}"]': float(r["count"]) for i, r in enumerate(results)}
    slowest = max(r["slowest"] for r in results)
    print(
        f"failover took {failover:.1f} s; {int(sum(made.values()))} counts; "
        f"slowest inc() {slowest * 1000:.2f} ms"
    )
    assert all(r["closed"] for r in results)
    assert totals == made
    assert slowest < INC_BOUND


def test_sentinel_service_name_is_used(replicated: Make, load_redis_backend: Any) -> None:
    """The backend finds the primary through the sentinels alone and writes there."""
    group = replicated(sentinels=3)
    backend = load_redis_backend(**group.sentinel_config())
    assert backend.client.connection_pool.get_master_address() == (
        "127.0.0.1",
        group.primary.port,
    )
    Counter("hits", "Hits.").inc(4)
    assert backend.flush()
    assert counted(group.client(group.primary), backend.config.prefix, "hits") == {"[]": 4.0}
    assert SERVICE in repr(backend)
