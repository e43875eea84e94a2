"""What Redis holds stays right: flushes applied exactly once, histograms never torn, and
a scrape whose cost does not grow with the processes that have come and gone."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from pytheus.backends import get_backend, redis_scripts
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.backends.redis_format import canonical_definition
from pytheus.backends.redis_keys import KeyLayout
from pytheus.exceptions import BackendUnavailableError
from pytheus.exposition import generate_metrics
from pytheus.metrics import Counter, Gauge, Histogram, MetricDefinition
from pytheus.registry import CollectorRegistry, set_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    CHILD_LIFETIME,
    Child,
    ChildContext,
    ReplyDropper,
    fork_child,
    keys_under,
    parse_text,
    scrape,
    wait_for,
)
from tests.servers import RedisServer

# ------------------------------------------------------------------------- idempotency


def write(client: redis.Redis, keys: KeyLayout, process: str, seq: int, delta: float) -> list[Any]:
    """One WRITE of the counter ``hits`` (its one series), as redis_scripts documents it."""
    definition = canonical_definition(MetricDefinition("hits", "counter", "Hits."))
    script_keys = [keys.family("hits"), keys.touched("hits")]
    chunk = [seq, "1", definition, "=Hits.", "c", 1, "[]", delta]
    client.hset(keys.families, "hits", "")  # what the heartbeat does in a flush
    script = client.register_script(redis_scripts.WRITE)
    # No series ttl; the live processes unknown (no other definition is stored anyway).
    (reply,) = script(keys=script_keys, args=[process, "0", "-", *chunk])
    return list(reply[:3])  # status, the other definition, lost


def test_each_write_is_applied_once_and_in_order(
    backend: MultiProcessRedisBackend, client: redis.Redis
) -> None:
    keys = backend.keys
    assert write(client, keys, "host:1:a", 1, 5) == [1, "", 0]
    # The reply was lost; the same chunk arrives again: not applied.
    assert write(client, keys, "host:1:a", 1, 5) == [0, "", 0]
    assert scrape().value("hits_total") == 5
    # One that comes before an earlier one (refused for memory, say) is refused too, so
    # the earlier one can still be applied when it is sent again; Redis says where the
    # family's sequence of this process stops (after a failover, it may stop earlier
    # than the process knows).
    assert write(client, keys, "host:1:a", 3, 100) == [-1, "1", 0]
    assert write(client, keys, "host:1:a", 2, 7) == [1, "", 0]
    assert write(client, keys, "host:1:a", 3, 1) == [1, "", 0]
    assert write(client, keys, "host:1:a", 2, 7) == [0, "", 0]
    assert scrape().value("hits_total") == 13
    # Sequence numbers are per process: another process's 1 is its own.
    assert write(client, keys, "host:2:b", 1, 1) == [1, "", 0]
    assert scrape().value("hits_total") == 14
    # The family's hash is lost (evicted): a resend of an applied chunk finds no sequence
    # number and says so; it cannot be applied twice, since what it was added to is gone.
    client.delete(keys.family("hits"))
    assert write(client, keys, "host:1:a", 3, 1) == [1, "", 1]
    assert scrape().value("hits_total") == 1


@pytest.fixture
def dropper(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def every_command_logged(client: redis.Redis) -> Iterator[Callable[[str, str], int]]:
    """SLOWLOG with threshold 0 (every command); ``calls(script, key)`` counts, since it was
    last called, the calls of that script (its source) that named that key."""
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 100_000)
    client.slowlog_reset()

    def calls(script: str, key: str) -> int:
        sha = hashlib.sha1(script.encode()).hexdigest()
        entries = client.execute_command("SLOWLOG", "GET", -1)
        client.slowlog_reset()
        return sum(1 for entry in entries if entry[3][1:2] == [sha] and key in entry[3])

    try:
        yield calls

    finally:
        client.config_set("slowlog-log-slower-than", 10_000)
        client.slowlog_reset()


def test_a_flush_whose_reply_was_lost_is_not_applied_twice(
    load_redis_backend: LoadBackend,
    dropper: ReplyDropper,
    client: redis.Redis,
    every_command_logged: Callable[[str, str], int],
) -> None:
    """Redis executes the flush, the reply never arrives: the backend must send it again
    (it cannot know) and Redis must recognise it."""
    backend = load_redis_backend(port=dropper.port, socket_timeout=1.0, flush_interval=60)
    hits = Counter("hits", "Hits.")
    assert backend.flush()  # connected: a new connection's handshake would time out first
    key = backend.keys.family("hits")
    writes_of_hits = functools.partial(every_command_logged, redis_scripts.WRITE, key)
    writes_of_hits()

    def stored() -> float:
        return float(client.hget(key, "[]") or 0)

    # Every reply lost: redis-py's own retry cannot connect either, the flush fails.
    hits.inc(5)
    dropper.drop.set()
    assert backend.flush() is False
    assert stored() == 5  # but Redis applied it
    hits.inc(2)
    dropper.drop.clear()
    writes_of_hits()
    # The lost chunk again (recognised, not applied), then the 2.
    assert backend.flush()
    assert writes_of_hits() == 2
    assert stored() == 7
    assert scrape().value("hits_total") == 7
    assert backend.status()["healthy"]

    # One reply lost: redis-py retries at once on a new connection, with the same flush
    # (redis-py 5.0 retries a timed-out pipeline only with retry_on_timeout: the next
    # flush sends it again instead).
    hits.inc(10)
    dropper.lose_replies()
    writes_of_hits()
    assert backend.flush() or backend.flush()
    assert writes_of_hits() == 2  # Redis ran it twice...
    assert stored() == 17  # ...and applied it once
    # The same for a scrape, whose flush and reads go in one pipeline.
    hits.inc(100)
    dropper.lose_replies()
    writes_of_hits()
    with contextlib.suppress(BackendUnavailableError):
        assert scrape().value("hits_total") == 117
    assert scrape().value("hits_total") == 117
    assert writes_of_hits() == 2
    assert stored() == 117


def test_the_last_flush_of_a_process_that_exits_is_applied_once(
    load_redis_backend: LoadBackend,
    dropper: ReplyDropper,
    client: redis.Redis,
    every_command_logged: Callable[[str, str], int],
) -> None:
    """The last flush also says the process left; sent again after a lost reply, Redis
    must still recognise it (the process is gone: nothing else would)."""
    backend = load_redis_backend(port=dropper.port, socket_timeout=1.0, flush_interval=60)
    hits = Counter("hits", "Hits.")
    hits.inc(1)
    assert backend.flush()
    key = backend.keys.family("hits")
    every_command_logged(redis_scripts.WRITE, key)
    hits.inc(10)
    dropper.lose_replies()
    backend.close()
    # redis-py sends the pipeline again on a new connection (5.0 does not, after a
    # timeout: then the first one, which Redis ran, is all there is).
    assert every_command_logged(redis_scripts.WRITE, key) in (1, 2)
    assert float(client.hget(key, "[]")) == 11
    # Gone at once, its sequence numbers kept while the last flush can come again.
    assert client.zscore(backend.keys.dead, backend.status()["process"]) is not None


def test_a_small_scrape_is_one_round_trip(
    load_redis_backend: LoadBackend, client: redis.Redis
) -> None:
    """A flush and the reads, pipelined: scripts only, and no other command from the
    client (such as redis-py's SCRIPT EXISTS before every pipeline of Script objects)."""
    backend = load_redis_backend(flush_interval=60)
    Counter("hits", "Hits.", ["x"]).labels(x="1").inc()
    Histogram("h", "H.").observe(1)
    scrape()  # the first one loads the scripts
    pipelines = 0
    make_pipeline = backend.client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return make_pipeline(*args, **kwargs)

    backend.client.pipeline = counting_pipeline  # type: ignore[method-assign]
    client.config_resetstat()
    for _ in range(5):
        scrape()
    stats = client.info("commandstats")
    from_clients = {k for k in stats if k.startswith(("cmdstat_eval", "cmdstat_script"))}
    assert from_clients == {"cmdstat_evalsha"}, stats
    assert pipelines == 5


# ----------------------------------------------------------------------- torn histograms

OBSERVERS = 3


def observe_until_released(index: int) -> Any:
    def run(ctx: ChildContext) -> int:
        set_registry(CollectorRegistry())
        h = Histogram("work_seconds", "Work.", ["shard"], buckets=[1, 2, 5])
        series = [h.labels(shard=str(s)) for s in range(2)]
        ctx.send("started")
        n = 0
        while not ctx.released() and n < 2_000_000:
            # A pair in two buckets: a flush between them must still add up.
            s = series[n % 2]
            s.observe(1.0)
            s.observe(3.0)
            n += 1
            if n % 200 == 0:
                time.sleep(0.0005)  # share two cores with the scraper
        return n

    return run


def check_histogram(parsed: Any, name: str) -> list[float]:
    """Assert that every series of histogram ``name`` is whole; return their counts."""
    by_series: dict[frozenset[tuple[str, str]], dict[str, float]] = {}
    for (sample, labels), value in parsed.samples.items():
        if not sample.startswith(name):
            continue
        plain = frozenset((k, v) for k, v in labels if k != "le")
        le = dict(labels).get("le")
        field = f"le={le}" if sample.endswith("_bucket") else sample.rsplit("_", 1)[1]
        by_series.setdefault(plain, {})[field] = value
    counts = []
    for labels, s in by_series.items():
        buckets = [s["le=1.0"], s["le=2.0"], s["le=5.0"], s["le=+Inf"]]
        assert buckets == sorted(buckets), (labels, s)
        assert s["le=+Inf"] == s["count"], (labels, s)
        ones, threes = s["le=1.0"], s["le=5.0"] - s["le=1.0"]
        assert s["le=2.0"] == ones, (labels, s)
        assert s["sum"] == ones + 3 * threes, (labels, s)
        # Observations come in pairs per series; a flush may split the last pair only.
        assert ones - threes in (0, 1), (labels, s)
        counts.append(s["count"])
    return counts


def test_scrapes_never_see_a_torn_histogram(load_redis_backend: LoadBackend) -> None:
    load_redis_backend(flush_interval=0.005)
    children = [fork_child(observe_until_released(i)) for i in range(OBSERVERS)]
    seen: set[float] = set()
    scrapes = 0
    try:
        for c in children:
            assert c.result() == "started"
        # 3 s or 300 scrapes, and in any case until enough scrapes have overlapped with the
        # observing: a loaded machine makes fewer (9 in 3 s at a load of 10). The children
        # observe for CHILD_LIFETIME at most.
        start = time.monotonic()
        deadline = start + CHILD_LIFETIME / 2
        while scrapes < 300 and time.monotonic() < deadline:
            if time.monotonic() - start >= 3.0 and scrapes >= 20 and len(seen) >= 10:
                break
            parsed = parse_text(generate_metrics())
            scrapes += 1
            seen.update(check_histogram(parsed, "work_seconds"))
    finally:
        for c in children:
            c.release()
    totals = [c.result() for c in children]
    assert all(c.wait() == 0 for c in children)
    assert scrapes >= 20
    assert len(seen) >= 10, "the scrapes did not overlap with the observing"
    final = scrape()
    check_histogram(final, "work_seconds")
    assert final.value("work_seconds_count", {"shard": "0"}) + final.value(
        "work_seconds_count", {"shard": "1"}
    ) == 2 * sum(totals)


# -------------------------------------------------------------------- flat scrape cost


def short_lived(killed: bool) -> Any:
    def run(ctx: ChildContext) -> None:
        backend = get_backend()
        assert isinstance(backend, MultiProcessRedisBackend)
        set_registry(CollectorRegistry())
        Counter("visits", "Visits.").inc()
        Gauge("busy", "Busy (livesum).").set(1)
        Gauge("level", "Level.", multiprocess_mode="sum").set(2)
        Gauge("each", "Per process.", multiprocess_mode="all").set(3)
        Histogram("h", "H.", buckets=[1]).observe(0.5)
        if killed:
            assert backend.flush()
            ctx.send("flushed")
            ctx.hold()  # until SIGKILLed

    return run


def run_short_lived(count: int, batch: int = 10) -> None:
    """``count`` processes, ``batch`` at a time: each defines and records; every fifth is
    SIGKILLed after its flush, the others exit normally."""
    done = 0
    while done < count:
        wave: list[tuple[Child, bool]] = []
        for i in range(done, min(done + batch, count)):
            killed = i % 5 == 4
            wave.append((fork_child(short_lived(killed), exit_normally=not killed), killed))
        try:
            for child, killed in wave:
                if killed:
                    assert child.result() == "flushed"
                    child.kill()
                    assert child.wait() == -9
                else:
                    child.result()
                    assert child.wait() == 0
        finally:
            for child, _ in wave:
                if child.exit_status is None:
                    child.kill()
                    child.wait()
        done += len(wave)


def family_fields(client: redis.Redis, keys: KeyLayout) -> tuple[int, int, int]:
    """What a scrape reads: the series fields of every family and their bytes, and the
    bookkeeping fields (a sequence number per process, kept a while after it died)."""
    series = size = bookkeeping = 0
    for name in client.hkeys(keys.families):
        if name.startswith("\0"):
            continue
        for field, value in client.hgetall(keys.family(name)).items():
            if field.startswith("["):
                series += 1
                size += len(field) + len(value)
            else:
                bookkeeping += 1
    return series, size, bookkeeping


@pytest.mark.slow
def test_scrape_cost_does_not_grow_with_dead_processes(
    load_redis_backend: LoadBackend, client: redis.Redis
) -> None:
    timeout = 0.5
    # Short socket timeouts: an exited process's sequence numbers are kept as long as its
    # last flush could be sent again, 2 x (0.2 + 0.2) + 1 s.
    backend = load_redis_backend(
        flush_interval=0.05,
        process_timeout=timeout,
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
    )
    keys = backend.keys
    me = backend.status()["process"]

    def settled() -> bool:
        # Only this process is alive, no gauge value of another is left to fold, and the
        # dead kept for a while are the killed ones only.
        procs = client.zrange(keys.procs, 0, -1)
        gauges = {k for k in keys_under(client, keys.prefix) if k.startswith(keys.shared + "g:")}
        killed = len(client.zrangebyscore(keys.dead, time.time() - 3600, "+inf"))
        return (
            procs == [me]
            and gauges <= {keys.gauges_of(me)}
            and not client.exists(keys.fold)
            and client.zcard(keys.dead) == killed
        )

    def footprint() -> tuple[set[str], tuple[int, int, int], float]:
        wait_for(settled, timeout=timeout + 10, what="the dead processes are reaped")
        # A SIGKILLed process's sequence numbers are kept for a day (a flush it sends
        # again must be known as one already applied): their set, and the dead set.
        retained = {k for k in keys_under(client, keys.prefix) if k.startswith(keys.shared + "q:")}
        left = keys_under(client, keys.prefix) - retained - {keys.dead, keys.turn}  # turn: expires
        return left, family_fields(client, keys), scrape().value("visits_total")

    run_short_lived(20)
    keys_20, (series_20, size_20, _), visits_20 = footprint()
    run_short_lived(180)
    keys_200, (series_200, size_200, bookkeeping_200), visits_200 = footprint()

    assert (visits_20, visits_200) == (20, 200)
    assert keys_200 == keys_20 | {keys.sequences_of(me)} or keys_200 == keys_20
    assert series_200 == series_20
    assert size_200 <= size_20 + 64  # larger numbers only: 200 is a digit longer than 20
    for name in ("busy", "level", "each"):
        fields = [f for f in client.hkeys(keys.family(name)) if f.startswith("[")]
        assert len(fields) <= 1, fields  # the retired value, not one per dead process
    # What stays per process ever killed, for a day: a sequence number per family it
    # wrote (40 of the 200 were killed); nothing of those that exited. (A child flushes
    # every family alive in this process, other tests' too.)
    assert client.zcard(keys.dead) == 40
    families = client.hlen(keys.families) - 1  # its epoch field aside
    per_family = 2  # definition and help
    assert bookkeeping_200 <= (40 + 1 + per_family) * families
    parsed = scrape()
    assert parsed.get("busy") is None
    assert parsed.value("level") == 400  # "sum" keeps what dead processes had
    assert parsed.series("each") == {}
    assert parsed.value("h_count") == 200
    assert not math.isnan(parsed.value("h_sum"))
