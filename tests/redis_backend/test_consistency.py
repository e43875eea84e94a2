"""What Redis holds stays right: flushes applied exactly once, histograms never torn, and
a scrape whose cost does not grow with the processes that have come and gone."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from pytheus.backends import get_backend, redis_scripts
from pytheus.backends.redis import MultiProcessRedisBackend, _canonical_definition
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


def flush_args(prefix: str, process: str, seq: int, counts: list[list[Any]]) -> list[Any]:
    """Arguments of the FLUSH script, as its docstring lays them out: one counter's deltas."""
    definition = MetricDefinition("hits", "counter", "Hits.")
    payload = {
        "d": {"hits": _canonical_definition(definition)},
        "h": {"hits": "Hits."},
        "c": counts,
        "g": [],
        "s": [],
    }
    return [prefix, process, seq, 600, 86400, "0", 0, json.dumps(payload)]


def test_flush_script_applies_each_sequence_number_once(
    backend: MultiProcessRedisBackend, client: redis.Redis, prefix: str
) -> None:
    flush = client.register_script(redis_scripts.FLUSH)
    first = flush_args(prefix, "host:1:a", 1, [["hits", "[]", "5"]])
    assert flush(keys=[], args=first)[0] == 1
    # The reply was lost; the same flush arrives again: not applied.
    assert flush(keys=[], args=first)[0] == 0
    assert scrape().value("hits_total") == 5
    # A later flush is applied; an older one arriving late is not.
    assert flush(keys=[], args=flush_args(prefix, "host:1:a", 3, [["hits", "[]", "7"]]))[0] == 1
    assert flush(keys=[], args=flush_args(prefix, "host:1:a", 2, [["hits", "[]", "100"]]))[0] == 0
    assert scrape().value("hits_total") == 12
    # Sequence numbers are per process: another process's 1 is its own.
    assert flush(keys=[], args=flush_args(prefix, "host:2:b", 1, [["hits", "[]", "1"]]))[0] == 1
    assert scrape().value("hits_total") == 13


@pytest.fixture
def dropper(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_flush_whose_reply_was_lost_is_not_applied_twice(
    load_redis_backend: LoadBackend, dropper: ReplyDropper, client: redis.Redis, prefix: str
) -> None:
    """Redis executes the flush, the reply never arrives: the backend must send it again
    (it cannot know) and Redis must recognise it."""
    backend = load_redis_backend(port=dropper.port, socket_timeout=0.3, flush_interval=60)
    hits = Counter("hits", "Hits.")
    assert backend.flush()  # connected: a new connection's handshake would time out first

    def stored() -> float:
        return float(client.hget(f"{prefix}:v:hits", "[]") or 0)

    def scripts_run() -> int:
        return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    # Every reply lost: redis-py's own retry cannot connect either, the flush fails.
    hits.inc(5)
    dropper.drop.set()
    assert backend.flush() is False
    assert stored() == 5  # but Redis applied it
    hits.inc(2)
    dropper.drop.clear()
    before = scripts_run()
    assert backend.flush()  # the lost flush again (recognised, not applied), then the 2
    assert scripts_run() - before == 2
    assert stored() == 7
    assert scrape().value("hits_total") == 7
    assert backend.status()["healthy"]

    # One reply lost: redis-py retries at once on a new connection, with the same flush.
    hits.inc(10)
    dropper.lose_replies()
    before = scripts_run()
    assert backend.flush()
    assert scripts_run() - before == 2  # Redis ran it twice...
    assert stored() == 17  # ...and applied it once
    # The same for a scrape, whose flush and read go in one pipeline.
    hits.inc(100)
    dropper.lose_replies()
    before = scripts_run()
    assert scrape().value("hits_total") == 117
    assert scripts_run() - before == 4
    assert stored() == 117


def test_a_scrape_is_one_round_trip(load_redis_backend: LoadBackend, client: redis.Redis) -> None:
    """A flush and a read, pipelined: two scripts, and no other command from the client
    (such as redis-py's SCRIPT EXISTS before every pipeline of Script objects)."""
    load_redis_backend(flush_interval=60)
    Counter("hits", "Hits.", ["x"]).labels(x="1").inc()
    Histogram("h", "H.").observe(1)
    scrape()  # the first one loads the scripts
    client.config_resetstat()
    for _ in range(5):
        scrape()
    stats = client.info("commandstats")
    from_clients = {k for k in stats if k.startswith(("cmdstat_eval", "cmdstat_script"))}
    assert from_clients == {"cmdstat_evalsha"}, stats
    assert stats["cmdstat_evalsha"]["calls"] == 2 * 5


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


def read_reply(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """What one scrape reads: the number of values in the READ reply and their bytes."""
    reply = client.register_script(redis_scripts.READ)(keys=[], args=[prefix, 1.0])
    items = 0
    size = 0

    def walk(x: Any) -> None:
        nonlocal items, size
        if isinstance(x, list):
            for y in x:
                walk(y)
        else:
            items += 1
            size += len(str(x))

    walk(reply[1:])  # reply[0] is Redis's clock
    return items, size


@pytest.mark.slow
def test_scrape_cost_does_not_grow_with_dead_processes(
    load_redis_backend: LoadBackend, client: redis.Redis, prefix: str
) -> None:
    timeout = 0.5
    backend = load_redis_backend(flush_interval=0.05, process_timeout=timeout)
    me = backend.status()["process"]

    def settled() -> bool:
        # Only this process is alive, and nothing of any other is read by a scrape.
        procs = client.zrange(f"{prefix}:procs", 0, -1)
        pg = {k for k in keys_under(client, prefix) if k.startswith(f"{prefix}:pg:")}
        return procs == [me] and pg <= {f"{prefix}:pg:{me}"}

    def footprint() -> tuple[set[str], tuple[int, int], float]:
        wait_for(settled, timeout=timeout + 10, what="the dead processes are reaped")
        keys = keys_under(client, prefix) - {f"{prefix}:seq", f"{prefix}:dead"}
        return keys, read_reply(client, prefix), scrape().value("visits_total")

    run_short_lived(20)
    keys_20, (items_20, size_20), visits_20 = footprint()
    run_short_lived(180)
    keys_200, (items_200, size_200), visits_200 = footprint()

    assert (visits_20, visits_200) == (20, 200)
    assert keys_200 == keys_20
    assert items_200 == items_20
    assert size_200 <= size_20 + 64  # larger numbers only: 200 is a digit longer than 20
    for name in ("busy", "level", "each"):
        fields = client.hkeys(f"{prefix}:v:{name}")
        assert len(fields) <= 3, fields  # the retired value(s), not one per dead process
    parsed = scrape()
    assert parsed.get("busy") is None
    assert parsed.value("level") == 400  # "sum" keeps what dead processes had
    assert parsed.series("each") == {}
    assert parsed.value("h_count") == 200
    assert not math.isnan(parsed.value("h_sum"))
    # What stays per process ever seen: one field of the seq hash, one of the dead set.
    assert client.hlen(f"{prefix}:seq") <= 201
