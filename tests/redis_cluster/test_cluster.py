"""The Redis backend on a real Redis Cluster: the promises it makes on one Redis, kept
with the families spread over the primaries, and a primary killed under load."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exceptions import ConfigurationError
from pytheus.metrics import Counter, Gauge, Histogram
from tests.helpers import wait_for
from tests.redis_backend.helpers import ChildContext, fork_child, scrape
from tests.redis_cluster.conftest import LoadClusterBackend
from tests.servers import RedisCluster, RedisServer

FAMILIES = 12
CHILDREN = 4
ROUNDS = 300


def family_keys_by_node(cluster: RedisCluster, backend: MultiProcessRedisBackend) -> list[int]:
    """How many family hashes of ``backend``'s prefix each primary holds."""
    counts = []
    for node in cluster.roles()["master"]:
        client = redis.Redis(host=node.host, port=node.port, decode_responses=True)
        try:
            keys = client.keys(f"{backend.keys.prefix}:*")
        finally:
            client.close()
        counts.append(len([k for k in keys if backend.keys.family_name(str(k)) is not None]))
    return counts


def count(ctx: ChildContext) -> Any:
    """A worker: counts ROUNDS times in every family, observes, sets a summed gauge."""
    backend = get_backend()
    assert isinstance(backend, MultiProcessRedisBackend)
    counters = [Counter(f"hits{i}", "Hits.", required_labels=["worker"]) for i in range(FAMILIES)]
    latency = Histogram("latency", "Latency.", buckets=[0.1, 1])
    for _ in range(ROUNDS):
        for c in counters:
            c.labels({"worker": "w"}).inc()
        latency.observe(0.5)
    Gauge("level", "Summed.", multiprocess_mode="sum").set(2)
    return backend.status()["process"]


def test_exact_totals_from_many_processes_with_families_on_every_primary(
    shared_cluster: RedisCluster, load_cluster_backend: LoadClusterBackend
) -> None:
    backend = load_cluster_backend(shared_cluster, flush_interval=0.05)
    children = [fork_child(count) for _ in range(CHILDREN)]
    processes = [c.result(timeout=60) for c in children]
    assert all(c.wait(timeout=30) == 0 for c in children)
    assert len(set(processes)) == CHILDREN
    parsed = scrape()
    for i in range(FAMILIES):
        assert parsed.value(f"hits{i}_total", {"worker": "w"}) == CHILDREN * ROUNDS
    # A histogram's buckets, sum and count are written together, in one family's slot.
    assert parsed.value("latency_count") == CHILDREN * ROUNDS
    assert parsed.value("latency_bucket", {"le": "1.0"}) == CHILDREN * ROUNDS
    assert parsed.value("latency_bucket", {"le": "0.1"}) == 0
    assert parsed.value("latency_sum") == CHILDREN * ROUNDS * 0.5
    # The children exited: each folded its own value of the summed gauge as it left.
    assert parsed.value("level") == 2 * CHILDREN
    # The families (one hash tag each) are spread over the three primaries.
    counts = family_keys_by_node(shared_cluster, backend)
    assert len(counts) == 3
    assert all(n > 0 for n in counts), counts
    assert backend.status()["errors"] == 0


def test_a_killed_process_is_reaped_and_its_gauges_folded(
    shared_cluster: RedisCluster, load_cluster_backend: LoadClusterBackend
) -> None:
    """Reaping runs in the keys of the whole prefix, folding in each family's: both by
    the process whose heartbeat took the housekeeping turn."""
    backend = load_cluster_backend(shared_cluster, flush_interval=0.05, process_timeout=0.5)
    summed = Gauge("summed", "Summed.", multiprocess_mode="sum")
    live = Gauge("live", "Live sum.", multiprocess_mode="livesum")
    summed.set(1)
    live.set(1)
    assert backend.flush()

    def hold(ctx: ChildContext) -> Any:
        summed.set(10)  # the child's own value
        live.set(10)
        child = get_backend()
        assert isinstance(child, MultiProcessRedisBackend)
        assert child.flush()
        ctx.send(child.status()["process"])
        ctx.hold()

    child = fork_child(hold)
    process = child.result(timeout=30)
    parsed = scrape()
    assert (parsed.value("summed"), parsed.value("live")) == (11, 11)
    child.kill()
    child.wait()
    gauges = backend.keys.gauges_of(process)
    wait_for(
        lambda: (
            not backend.client.exists(gauges)
            and not backend.client.zscore(backend.keys.fold, process)
        ),
        timeout=20,
        what="the killed process is reaped and its gauge values folded",
    )
    parsed = scrape()
    assert parsed.value("summed") == 11  # "sum" keeps what dead processes left
    assert parsed.value("live") == 1
    fields = backend.client.hkeys(backend.keys.family("summed"))
    assert not [f for f in map(str, fields) if process in f and not f.startswith("\0q")]


def test_configuration_errors_name_the_fix(shared_cluster: RedisCluster) -> None:
    with pytest.raises(ConfigurationError, match="only database 0"):
        MultiProcessRedisBackend({"cluster": True, "port": shared_cluster.port, "db": 1})
    with pytest.raises(ConfigurationError, match="cluster must be True or False"):
        MultiProcessRedisBackend({"cluster": "yes", "port": shared_cluster.port})
    # A plain redis-server is no cluster: said when the backend is made.
    with RedisServer(shared_cluster.directory / "plain") as plain:
        config = {"cluster": True, "port": plain.port}
        with pytest.raises(ConfigurationError, match="cluster-enabled"):
            MultiProcessRedisBackend(config)
    from redis.cluster import RedisCluster as Client

    client = Client(host=shared_cluster.host, port=shared_cluster.port, decode_responses=True)
    try:
        backend = MultiProcessRedisBackend({"client": client, "prefix": "given"})
        try:
            assert backend.config.cluster
            Counter("given_client", "Hits.").inc()
        finally:
            backend.close()
    finally:
        client.close()


def work_until_released(ctx: ChildContext, counters: list[Counter]) -> Any:
    """A worker under load until the parent says stop: what it counted, the slowest
    inc() it saw, and whether any raised."""
    counted, slowest, raised = 0, 0.0, 0
    for _ in range(2_000_000):  # bounded: about a minute at the most
        if counted % 50 == 0 and ctx.released():
            break
        for c in counters:
            start = time.perf_counter()
            try:
                c.inc()
            except Exception:  # counted, and asserted on by the parent
                raised += 1
            slowest = max(slowest, time.perf_counter() - start)
        counted += 1
        if counted % 20 == 0:
            time.sleep(0.001)  # a worker that does something else too
        if counted == 1:
            ctx.send("started")
    return {"counted": counted, "slowest": slowest, "raised": raised}


def test_a_primary_killed_under_load_loses_no_count(
    own_cluster: RedisCluster, load_cluster_backend: LoadClusterBackend
) -> None:
    """SIGKILL of the primary that holds the prefix's own keys (heartbeats, the list of
    families) and some families, while three processes count: its replica takes over,
    the application never raises nor waits, and every count is in the totals."""
    backend = load_cluster_backend(own_cluster, flush_interval=0.05, process_timeout=30)
    counters = [Counter(f"load{i}", "Load.") for i in range(FAMILIES)]
    children = [fork_child(lambda ctx: work_until_released(ctx, counters)) for _ in range(3)]
    for c in children:
        assert c.result(timeout=30) == "started"

    def all_counting() -> bool:
        try:
            parsed = scrape()
        except Exception:  # not yet
            return False
        return all((parsed.get(f"load{i}_total") or 0) > 0 for i in range(FAMILIES))

    wait_for(all_counting, timeout=30, what="every family counted")
    cluster_client: Any = backend.client
    slot_owner = cluster_client.get_node_from_key(backend.keys.procs)
    victim = next(n for n in own_cluster.nodes if n.port == slot_owner.port)
    victim.kill()
    own_cluster.wait_until_ok(timeout=60, replicated=False)
    assert victim not in own_cluster.roles()["master"]

    def counted_after_failover() -> float | None:
        try:
            return scrape().value("load0_total")
        except Exception:  # the client catches up with the change
            return None

    before = wait_for(counted_after_failover, timeout=30, what="a scrape after the failover")
    wait_for(
        lambda: (counted_after_failover() or 0) > before,
        timeout=30,
        what="counts arriving after the failover",
    )
    for c in children:
        c.release()
    results = [c.result(timeout=60) for c in children]
    assert all(c.wait(timeout=30) == 0 for c in children)
    assert sum(r["raised"] for r in results) == 0
    slowest = max(r["slowest"] for r in results)
    assert slowest < 0.05, f"an inc() took {slowest * 1000:.1f} ms"
    expected = sum(r["counted"] for r in results)
    parsed = scrape()
    totals = [parsed.value(f"load{i}_total") for i in range(FAMILIES)]
    assert totals == [expected] * FAMILIES


def test_families_come_back_after_the_list_of_families_is_lost(
    shared_cluster: RedisCluster, load_cluster_backend: LoadClusterBackend
) -> None:
    """The list lives on one primary, the families on all three: found again with a SCAN
    of every primary."""
    backend = load_cluster_backend(shared_cluster, flush_interval=0.05)
    names = [f"listed{i}" for i in range(FAMILIES)]
    for name in names:
        Counter(name, "Listed.").inc()
    assert backend.flush()
    listed = set(backend.client.hkeys(backend.keys.families))
    assert set(names) <= listed
    backend.client.delete(backend.keys.families)
    wait_for(
        lambda: set(names) <= set(backend.client.hkeys(backend.keys.families)),
        timeout=20,
        what="every family listed again",
    )
    parsed = scrape()
    assert all(parsed.value(f"{name}_total") == 1 for name in names)
