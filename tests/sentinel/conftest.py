"""A replicated Redis of the test's own: a primary, a replica and (optionally) three sentinels.

Every server is a real ``redis-server`` (sentinels run it with ``--sentinel``) on a free
loopback port, in a temporary directory, stopped by its own pid when the test ends::

    def test_failover(replicated):
        group = replicated(sentinels=3)
        group.primary.kill()
        group.wait_for_new_primary()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import wait_for
from tests.redis_backend.conftest import load_redis_backend, prefix
from tests.servers import LOOPBACK, RedisServer, SentinelServer

__all__ = ["Replicated", "load_redis_backend", "prefix", "replicated"]

SERVICE = "metrics"
#: Sentinel's failure detection, short so that a failover takes seconds, not a minute.
DOWN_AFTER_MS = 1000
#: How long a test waits for a failover at most: detection, the vote, the promotion, on a
#: loaded two-core machine.
FAILOVER_DEADLINE = 60.0


@dataclass
class Replicated:
    """The servers of one replicated group, and what tests ask of them."""

    primary: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer] = field(default_factory=list)

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)

    def replica_in_sync(self) -> bool:
        with self.client(self.replica) as c:
            info = c.info("replication")
        return info.get("master_link_status") == "up"

    def sentinel_config(self, **extra: Any) -> dict[str, Any]:
        """The backend options that reach this group through its sentinels."""
        return {
            "sentinels": [[LOOPBACK, s.port] for s in self.sentinels],
            "service_name": SERVICE,
            **extra,
        }

    def named_primary(self, sentinel: SentinelServer) -> int | None:
        with redis.Redis(host=LOOPBACK, port=sentinel.port, decode_responses=True) as c:
            address = c.sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1]) if address else None

    def sentinels_ready(self) -> bool:
        """Every sentinel knows the primary, the replica and the two other sentinels: a
        failover can be voted and carried out."""
        for s in self.sentinels:
            with redis.Redis(host=LOOPBACK, port=s.port, decode_responses=True) as c:
                if len(c.sentinel_sentinels(SERVICE)) < len(self.sentinels) - 1:
                    return False
                replicas = c.sentinel_slaves(SERVICE)
                if not any(
                    int(r["port"]) == self.replica.port and not r["is_sdown"] for r in replicas
                ):
                    return False
        return True

    def wait_for_new_primary(self) -> None:
        """Wait until every sentinel names the replica as the primary."""
        wait_for(
            lambda: all(self.named_primary(s) == self.replica.port for s in self.sentinels),
            timeout=FAILOVER_DEADLINE,
            interval=0.05,
            what="the sentinels promoting the replica",
        )
        wait_for(
            lambda: self.client(self.replica).info("replication")["role"] == "master",
            timeout=FAILOVER_DEADLINE,
            what="the replica taking the primary's role",
        )


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Callable[..., Replicated]]:
    """Make a primary and its replica in sync, with ``sentinels=3`` sentinels watching
    them (none by default); every server is stopped when the test ends."""
    servers: list[RedisServer] = []

    def make(*, sentinels: int = 0) -> Replicated:
        primary = RedisServer(tmp_path / "primary")
        servers.append(primary)
        primary.start()
        replica = RedisServer(
            tmp_path / "replica",
            # The snapshot a test takes (SAVE) is what a restart loads; nothing else is saved.
            extra_args=["--replicaof", LOOPBACK, str(primary.port)],
        )
        servers.append(replica)
        replica.start()
        group = Replicated(primary, replica)
        wait_for(group.replica_in_sync, timeout=30, what="the replica in sync with the primary")
        for i in range(sentinels):
            sentinel = SentinelServer(
                tmp_path / f"sentinel-{i}",
                service=SERVICE,
                primary_port=primary.port,
                down_after_ms=DOWN_AFTER_MS,
            )
            servers.append(sentinel)
            group.sentinels.append(sentinel.start())
        if sentinels:
            # Sentinels find the replica and each other through the primary, every 2 s or so.
            wait_for(group.sentinels_ready, timeout=60, interval=0.1, what="sentinels ready")
        return group

    try:
        yield make
    finally:
        for server in reversed(servers):
            server.stop()
