"""The Redis backend in a production Redis: a cache that evicts, memory that runs out,
other prefixes and other programs' values, pools without timeouts, and scripts that
must never hold Redis for long, whatever the number of series."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from pytheus.backends import get_backend, redis_scripts
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.backends.redis_flush import CHUNK_COST
from pytheus.backends.redis_read import READ_COUNT, ROUND_FIELDS
from pytheus.exceptions import BackendDataError, BackendUnavailableError
from pytheus.exposition import generate_metrics, make_wsgi_app
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry, get_registry, set_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    ChildContext,
    ReplyDropper,
    fork_child,
    parse_text,
    run_script,
    scrape,
    wait_for,
)
from tests.servers import RedisServer

Factory = Callable[..., RedisServer]
LOGGER = "pytheus.backends.redis"


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def wsgi_get(path: str = "/metrics") -> tuple[str, bytes]:
    """GET ``path`` from pytheus's WSGI app: its status line and body."""
    seen: dict[str, str] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        seen["status"] = status

    body = b"".join(make_wsgi_app()({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return seen["status"], body


@pytest.fixture
def dropper(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


# ------------------------------------------------------------------ a Redis that evicts


@pytest.mark.parametrize(
    ("redis_memory", "warned"),
    [
        (("64mb", "allkeys-lfu"), True),
        (("64mb", "allkeys-random"), True),
        (("64mb", "volatile-lru"), False),  # evicts keys with a TTL only: ours have none
        (("0", "allkeys-lru"), False),  # no maxmemory: nothing is ever evicted
    ],
)
def test_an_evicting_redis_is_reported_at_first_contact(
    load_redis_backend: LoadBackend,
    redis_server_factory: Factory,
    caplog: pytest.LogCaptureFixture,
    redis_memory: tuple[str, str],
    warned: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    maxmemory, policy = redis_memory
    server = redis_server_factory(
        extra_args=["--maxmemory", maxmemory, "--maxmemory-policy", policy]
    )
    backend = load_redis_backend(server=server, flush_interval=60)
    Counter("hits", "Hits.").inc()
    assert logged(caplog, "maxmemory-policy") == []  # no network I/O before a flush
    assert backend.flush()
    assert backend.flush()
    warnings = logged(caplog, "maxmemory-policy")
    assert len(warnings) == warned, warnings
    if warned:
        (message,) = warnings
        assert policy in message
        assert "noeviction" in message
        assert "of their own" in message


@pytest.mark.parametrize(
    "lost", ["family", "families", "procs", "last", "dead", "turn", "sequences", "gauges"]
)
def test_a_key_lost_between_a_flush_and_its_resend_never_counts_twice(
    load_redis_backend: LoadBackend,
    dropper: ReplyDropper,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    lost: str,
) -> None:
    """The case an evicting cache made: Redis applied a flush, the reply was lost, a key
    was evicted, the flush was sent again. Whichever key it was, nothing is counted twice
    (before: the sequence numbers' hash, 11 -> 211 instead of 111)."""
    backend = load_redis_backend(port=dropper.port, socket_timeout=1.0, flush_interval=60)
    keys = backend.keys
    process = backend.status()["process"]
    hits = Counter("hits", "Hits.")
    level = Gauge("level", "Set once.", multiprocess_mode="max")
    hits.inc(1)
    level.set(3)
    assert backend.flush()
    hits.inc(10)
    dropper.drop.set()
    assert backend.flush() is False  # applied, but the reply was lost
    dropper.drop.clear()
    assert float(client.hget(keys.family("hits"), "[]")) == 11
    key = {
        "family": keys.family("hits"),
        "families": keys.families,
        "procs": keys.procs,
        "last": keys.last,
        "dead": keys.dead,
        "turn": keys.turn,
        "sequences": keys.sequences_of(process),
        "gauges": keys.gauges_of(process),
    }[lost]
    deleted = client.delete(key)
    if lost != "turn":  # a housekeeping turn may have been taken in the last second or not
        assert deleted == (lost != "dead")
    hits.inc(100)
    assert backend.flush()  # the lost flush again, then the 100
    assert backend.flush()  # what Redis said it lost, written again
    parsed = scrape()
    # The 1 goes with a lost family hash; the 10 is never added twice.
    assert parsed.value("hits_total") == (110 if lost == "family" else 111)
    assert parsed.value("level") == 3  # every series shows, even one never changed since


def test_every_family_comes_back_after_the_list_of_families_is_lost(
    load_redis_backend: LoadBackend,
    client: redis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Also those of processes that are gone, which nobody will write again."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    backend = load_redis_backend(flush_interval=0.05)
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    run_script("define", config, "child_only")  # defines made_in_child, then exits
    Counter("mine", "Mine.").inc()
    Gauge("set_once", "Set at start-up.").set(5)
    families = {"made_in_child", "mine", "set_once"}
    assert families <= scrape().types.keys()
    client.delete(backend.keys.families)
    wait_for(lambda: families <= scrape().types.keys(), what="every family is listed again")
    parsed = scrape()
    assert parsed.value("made_in_child_total", {"who": "child"}) == 7
    assert parsed.value("set_once") == 5
    assert len(logged(caplog, "list of metric families")) == 1


def counting_through(port: int, prefix: str, series: int, rounds: int) -> Any:
    """A worker that counts ``rounds`` times in each series, flushing through ``port``."""

    def run(ctx: ChildContext) -> int:
        from pytheus.backends import load_backend

        set_registry(CollectorRegistry())
        config = {"port": port, "prefix": prefix, "flush_interval": 0.02, "socket_timeout": 0.3}
        backend = load_backend(MultiProcessRedisBackend, config)
        counter = Counter("work", "Work.", ["n"])
        for _ in range(rounds):
            for n in range(series):
                counter.labels(n=str(n)).inc()
            time.sleep(0.01)
        wait_for(backend.flush, timeout=20, what="a last flush")
        return rounds

    return run


@pytest.mark.slow
def test_a_cache_that_evicts_never_makes_a_count_too_high(
    load_redis_backend: LoadBackend,
    redis_server_factory: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 3 MB allkeys-lfu cache under traffic, with replies lost now and then: counts may
    be lost with evicted keys (which the warning says), never counted twice."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = redis_server_factory(
        extra_args=["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lfu"]
    )
    backend = load_redis_backend(server=server, flush_interval=0.05)
    assert backend.flush()
    assert len(logged(caplog, "maxmemory-policy allkeys-lfu")) == 1
    proxy = ReplyDropper(server.port)
    stop = threading.Event()

    def cache_traffic() -> None:
        with redis.Redis(port=server.port) as cache:
            i = 0
            while not stop.is_set() and i < 2_000_000:
                cache.set(f"cache:{i}", b"x" * 1024)
                cache.get(f"cache:{i // 2}")
                i += 1

    def lose_replies() -> None:
        while not stop.wait(0.2):
            proxy.lose_replies()

    threads = [threading.Thread(target=f, daemon=True) for f in (cache_traffic, lose_replies)]
    for t in threads:
        t.start()
    series, rounds = 50, 300
    try:
        workers = [
            fork_child(counting_through(proxy.port, backend.config.prefix, series, rounds))
            for _ in range(2)
        ]
        for w in workers:
            assert w.result(timeout=120) == rounds
            assert w.wait() == 0
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        proxy.close()
    evicted = int(backend.client.info("stats")["evicted_keys"])
    assert evicted > 1000, "the cache traffic did not make Redis evict"
    values = scrape().series("work_total")
    assert values, "every series of the counter was evicted at the end"
    assert max(values.values()) <= 2 * rounds, values


# ------------------------------------------------------------------ out of memory


def test_out_of_memory_keeps_the_metrics_reads_work_and_the_log_says_why(
    load_redis_backend: LoadBackend,
    redis_server_factory: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """noeviction and maxmemory reached: flushes are refused, scrapes still read what
    Redis holds (not a 503), the log says out of memory (not "cannot reach"), the
    application never notices, and everything is sent, exactly, once there is room."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = redis_server_factory(
        extra_args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
    )
    backend = load_redis_backend(server=server, flush_interval=60)
    hits = Counter("hits", "Hits.", ["n"])
    hits.labels(n="0").inc()
    assert backend.flush()

    def worker_counts(ctx: ChildContext) -> None:
        hits.labels(n="child").inc(5)
        assert not get_backend().flush()  # type: ignore[attr-defined]
        ctx.send("counted")
        ctx.hold()  # its changes wait in it; it exits (and flushes) when released

    filler = redis.Redis(port=server.port, db=1)
    for i in range(100_000):  # bounded: 3 MB of 1 kB values
        try:
            filler.set(f"fill:{i}", b"x" * 1024)
        except redis.exceptions.OutOfMemoryError:
            break
    else:
        pytest.fail("Redis never ran out of memory")
    worker = fork_child(worker_counts)
    assert worker.result() == "counted"
    start = time.perf_counter()
    for i in range(100):
        hits.labels(n=str(i % 10)).inc()
    assert time.perf_counter() - start < 0.05  # recording never touches Redis
    assert backend.flush() is False
    assert backend.flush() is False
    assert len(logged(caplog, "out of memory")) == 1
    assert logged(caplog, "cannot reach") == []
    assert not backend.status()["healthy"]
    status, body = wsgi_get()
    assert status.startswith("200"), body
    assert parse_text(body.decode()).series("hits_total") == {frozenset({("n", "0")}): 1.0}

    filler.flushdb()
    filler.close()
    worker.release()
    assert worker.wait() == 0
    assert backend.flush()
    assert logged(caplog, "Redis stores metrics again")
    parsed = scrape()
    assert parsed.value("hits_total", {"n": "0"}) == 11
    assert all(parsed.value("hits_total", {"n": str(i)}) == 10 for i in range(1, 10))
    assert parsed.value("hits_total", {"n": "child"}) == 5
    assert backend.status()["healthy"]


# ------------------------------------------------------------------ keys and values


def test_prefixes_that_extend_each_other_never_collide(
    load_redis_backend: LoadBackend, redis_server: RedisServer, prefix: str
) -> None:
    """Before, prefix ``a``'s metric ``defs`` was stored at ``a:v:defs``, the definitions
    of prefix ``a:v``: both scrapes then failed."""
    backend = load_redis_backend()
    for name in ("defs", "v", "procs", "families", "help"):
        Counter(name, "Named like a key.").inc(3)
    for other in (f"{prefix}:v", f"{prefix}:"):
        run_script("record", {"port": redis_server.port, "prefix": other}, 4, 1)
        theirs = MultiProcessRedisBackend({"port": redis_server.port, "prefix": other})
        try:
            families = {f.name: f for f in theirs.collect([], include_remote=True)}
        finally:
            theirs.close()
        assert sum(s.value for s in families["jobs"].samples) == 4 * 1.5
        assert not {"defs", "v", "procs"} & families.keys()
    parsed = scrape()
    for name in ("defs", "v", "procs", "families", "help"):
        assert parsed.value(f"{name}_total") == 3
    assert "jobs" not in parsed.types
    assert backend.status()["healthy"]


def corrupt(client: redis.Redis, keys: Any, corruption: str) -> None:
    """Write what pytheus never writes."""
    if corruption == "definition":
        client.hset(keys.family("hits"), "\0d", '{"type": "coun')
    elif corruption == "counter":
        client.hset(keys.family("hits"), '["a"]', "many")
    elif corruption == "histogram":
        client.hset(keys.family("lat"), "[]", "1,2")  # 2 buckets (and +Inf) and a sum: 4
    elif corruption == "gauge":
        client.hset(keys.family("level"), "[]\0p\0someone", "high,noon")
    elif corruption == "series":
        client.hset(keys.family("hits"), '["a"', "1")
    else:  # another type of key where a family's hash should be
        client.delete(keys.family("lat"))
        client.set(keys.family("lat"), "x")


CORRUPTIONS = ["definition", "counter", "histogram", "gauge", "series", "type"]


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_malformed_stored_value_is_a_503_that_names_it(
    load_redis_backend: LoadBackend,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    corruption: str,
) -> None:
    backend = load_redis_backend(flush_interval=60)
    hits = Counter("hits", "Hits.", ["k"])
    lat = Histogram("lat", "Latency.", buckets=[1, 2])
    level = Gauge("level", "Level.", multiprocess_mode="max")
    hits.labels(k="a").inc()
    lat.observe(0.5)
    level.set(1)
    assert backend.flush()
    corrupt(client, backend.keys, corruption)
    with pytest.raises(BackendDataError, match=r"malformed value at key '.*\{(hits|lat|level)\}'"):
        generate_metrics()
    status, body = wsgi_get()
    assert status.startswith("503"), body
    assert b"malformed value" in body
    # Recording goes on, and flushes of what is not malformed too.
    hits.labels(k="b").inc()
    level.set(2)
    backend.flush()
    assert client.hget(backend.keys.family("hits"), '["b"]') == "1"


# ------------------------------------------------------------------ timeouts


def test_our_timeouts_apply_to_a_pool_that_has_none(
    load_redis_backend: LoadBackend, redis_server_factory: Factory
) -> None:
    """django-redis makes pools without timeouts: a scrape through one waited for as long
    as Redis did not answer (over 15 s with redis-py 5.2 in the report)."""
    server = redis_server_factory()
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=server.port, socket_timeout=None, socket_connect_timeout=None
    )
    backend = load_redis_backend(connection_pool=pool, socket_timeout=0.5, flush_interval=60)
    Counter("hits", "Hits.").inc()
    assert scrape().value("hits_total") == 1
    server.pause()
    outcome: list[BaseException | float] = []

    def scrape_now() -> None:
        start = time.monotonic()
        try:
            generate_metrics()
        except BaseException as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - start)

    thread = threading.Thread(target=scrape_now, daemon=True)
    thread.start()
    thread.join(20)
    server.resume()
    assert not thread.is_alive(), "the scrape waited for a Redis that did not answer"
    error, seconds = outcome
    assert isinstance(error, BackendUnavailableError)
    assert isinstance(seconds, float)
    assert seconds < 2 * (0.5 + 0.5) + 1  # a retry at most
    pool.disconnect()
    backend.close()


# ------------------------------------------------------------------ short scripts


@pytest.fixture
def slowlog(redis_server_factory: Factory) -> Iterator[tuple[RedisServer, Callable[[], Any]]]:
    """A server of this test's own logging every command with its duration (SLOWLOG
    with threshold 0); the callable returns them as {script name: [(microseconds,
    arguments)]} and starts again."""
    server = redis_server_factory(
        extra_args=["--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000000"]
    )
    names = {
        hashlib.sha1(source.encode()).hexdigest(): name
        for name, source in redis_scripts.SCRIPTS.items()
    }
    with redis.Redis(port=server.port, decode_responses=True) as control:

        def take() -> dict[str, list[tuple[int, list[str]]]]:
            entries = control.execute_command("SLOWLOG", "GET", -1)
            control.slowlog_reset()
            out: dict[str, list[tuple[int, list[str]]]] = {}
            for entry in entries:
                args = entry[3]
                if entry[4] == "?:0":
                    continue  # run by a script: its time is in the script's
                command = args[0].lower()
                name = names.get(args[1], "") if command == "evalsha" else command.upper()
                out.setdefault(name, []).append((int(entry[2]), args))
            return out

        yield server, take


def writer(port: int, prefix: str, series: int) -> Any:
    """A process that writes ``series`` counter and ``series`` histogram series."""

    def run(_ctx: ChildContext) -> None:
        from pytheus.backends import load_backend

        set_registry(CollectorRegistry())
        config = {"port": port, "prefix": prefix, "flush_interval": 600}
        backend = load_backend(MultiProcessRedisBackend, config)
        counter = Counter("c", "C.", ["a", "b"], max_series=1_000_000)
        histogram = Histogram("h", "H.", ["a", "b"], max_series=1_000_000)  # 11 buckets, +Inf
        for i in range(series):
            labels = {"a": str(i // 100), "b": str(i % 100)}
            counter.labels(labels).inc()
            histogram.labels(labels).observe(i / series)
        assert backend.flush()

    return run


def arguments(args: list[str]) -> int:
    """How many arguments a call had: SLOWLOG keeps 32 of them and says how many more."""
    more = re.fullmatch(r"\.\.\. \((\d+) more arguments\)", args[-1])
    return len(args) - 1 + int(more.group(1)) if more else len(args)


def test_every_script_does_a_bounded_amount_of_work_whatever_the_series(
    load_redis_backend: LoadBackend, slowlog: tuple[RedisServer, Callable[[], Any]]
) -> None:
    """10 times the series: as many more script calls, each as long as before (before,
    one script did everything: 2,025 ms for a worker's first flush at 100k series);
    reads in more slices, none larger than a round."""
    server, take = slowlog
    prefix = f"t{uuid.uuid4().hex[:12]}"
    load_redis_backend(server=server, prefix=prefix, flush_interval=600)
    runs = {}
    for series in (1_000, 10_000):
        for child in [fork_child(writer(server.port, f"{prefix}{series}", series))]:
            child.result(timeout=120)
            assert child.wait() == 0
        ours = {f"{prefix}{series}:{{c}}", f"{prefix}{series}:{{h}}"}
        writes = [(us, args) for us, args in take()["WRITE"] if ours & set(args)]
        reader = MultiProcessRedisBackend({"port": server.port, "prefix": f"{prefix}{series}"})
        try:
            for _ in range(3):
                families = {f.name: f for f in reader.collect([], include_remote=True)}
                assert sum(s.value for s in families["c"].samples) == series
        finally:
            reader.close()
        reads = [(us, args) for us, args in take()["HSCAN"] if args[1] in ours]
        runs[series] = (writes, reads)
        # A series is two arguments, and costs at least 1 of a call's CHUNK_COST.
        assert max(arguments(args) for _, args in writes) <= 2 * CHUNK_COST + 100
        # HSCAN's COUNT: a slice is of a bounded size, larger for a large family.
        assert all(READ_COUNT <= int(args[-1]) <= ROUND_FIELDS for _, args in reads)
    (writes_1k, reads_1k), (writes_10k, reads_10k) = runs[1_000], runs[10_000]
    assert len(writes_10k) >= 5 * len(writes_1k)
    # Reads: slices of at most ROUND_FIELDS fields, so at least this many per family and
    # scrape (fewer, larger ones than at 1k series, up to that bound).
    assert len(reads_10k) >= 3 * 2 * (10_000 // ROUND_FIELDS)
    # Each full call as long as before (a family's last chunk or slice is smaller; a slice
    # per field asked for). The shortest is what a call costs Redis: a busy machine only
    # ever makes one look longer. One script doing it all (as before) would take 10 times
    # as long.
    for family in ("c", "h"):
        for small, large, reads in ((writes_1k, writes_10k, False), (reads_1k, reads_10k, True)):
            before, after = shortest(small, family, reads), shortest(large, family, reads)
            assert after < 3 * before + 500, (family, before, after)


def shortest(calls: list[tuple[int, list[str]]], family: str, reads: bool) -> float:
    """The shortest of the full calls (microseconds) of ``family``: first slices (HSCAN
    cursor 0) of reads of more fields than a slice, per READ_COUNT fields asked for (their
    COUNT: slices of a family known to be large are larger); WRITEs as long as its longest."""
    named = [(us, args) for us, args in calls if any(a.endswith(f"{{{family}}}") for a in args)]
    if reads:
        return min(us * READ_COUNT / int(args[-1]) for us, args in named if args[2] == "0")
    longest = max(arguments(args) for _, args in named)
    return min(us for us, args in named if arguments(args) >= 0.8 * longest)


def test_a_filtered_scrape_reads_only_the_families_it_asks_for(
    load_redis_backend: LoadBackend, slowlog: tuple[RedisServer, Callable[[], Any]]
) -> None:
    """``name[]`` (or the admin page polling one family) beside a family of 20,000
    series: before, it read everything (310-353 ms of Redis at 100k series)."""
    server, take = slowlog
    backend = load_redis_backend(server=server, flush_interval=600)
    big = Counter("big", "Big.", ["n"], max_series=1_000_000)
    for n in range(20_000):
        big.labels(n=str(n)).inc()
    Counter("small", "Small.").inc(2)
    assert backend.flush()
    take()
    for names in (["small_total"], ["small"]):
        families = list(get_registry().collect(names))
        assert [(f.name, [s.value for s in f.samples]) for f in families] == [("small", [2.0])]
        calls = take()
        read = {args[1] for _, args in calls["HSCAN"]}
        assert read <= {backend.keys.family(n) for n in ("small", "small_total")}, read
        assert backend.keys.family("big") not in read
        meta = calls["READ_META"]
        assert len(meta) == 1
    # The full scrape reads the big one, slice by slice (of a round's fields at most).
    assert len(scrape().series("big_total")) == 20_000
    calls = take()
    slices = sum(backend.keys.family("big") in args for _, args in calls["HSCAN"])
    assert slices >= 20_000 // ROUND_FIELDS


def observe_many(series: int) -> Any:
    def run(ctx: ChildContext) -> int:
        set_registry(CollectorRegistry())
        h = Histogram("wide_seconds", "Work.", ["s"], buckets=[1, 2, 5])
        children = [h.labels(s=str(s)) for s in range(series)]
        ctx.send("started")
        n = 0
        while not ctx.released() and n < 200:
            for child in children:
                # A pair in two buckets: a flush or a read between them must still add up.
                child.observe(1.0)
                child.observe(3.0)
            n += 1
            time.sleep(0.001)
        return n

    return run


def test_a_histogram_read_in_slices_is_never_torn(load_redis_backend: LoadBackend) -> None:
    """Series spread over many WRITE chunks and HSCAN slices: each one whole."""
    load_redis_backend(flush_interval=0.01)
    series = 3 * READ_COUNT
    child = fork_child(observe_many(series))
    scrapes = 0
    seen_counts: set[float] = set()
    try:
        assert child.result() == "started"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (scrapes < 5 or len(seen_counts) < 3):
            parsed = scrape()
            scrapes += 1
            for s in range(series):
                labels = {"s": str(s)}
                count = parsed.get("wide_seconds_count", labels)
                if count is None:
                    continue
                ones = parsed.value("wide_seconds_bucket", {**labels, "le": "1.0"})
                below_five = parsed.value("wide_seconds_bucket", {**labels, "le": "5.0"})
                assert parsed.value("wide_seconds_bucket", {**labels, "le": "+Inf"}) == count
                assert parsed.value("wide_seconds_sum", labels) == ones + 3 * (below_five - ones)
                assert ones - (below_five - ones) in (0, 1)  # a pair split by a flush at most
                seen_counts.add(count)
    finally:
        child.release()
    rounds = child.result()
    assert child.wait() == 0
    assert len(seen_counts) >= 3, "the scrapes did not overlap with the observing"
    parsed = scrape()
    assert sum(parsed.series("wide_seconds_count").values()) == 2 * rounds * series
