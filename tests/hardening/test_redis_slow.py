"""Redis answering slowly (``DEBUG SLEEP`` from a second connection blocks the whole server):
a Django view on the Redis backend answers as fast as before, because recording never
touches the network; a scrape answers within its socket timeout (503 while Redis sleeps
longer than that, the data once it answers), never hanging; and nothing recorded meanwhile
is lost.
"""

from __future__ import annotations

import gc
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from tests.core.helpers import parse_text
from tests.django_app.conftest import fresh_metrics, pytheus_settings  # noqa: F401  (fixtures)
from tests.hardening.conftest import report
from tests.servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.faults]

SOCKET_TIMEOUT = 0.5
SLEEP = 4.0  # longer than the worst a scrape may take (see below), shorter than a test
# A scrape waits for a flush in flight (one call and one retry: 2 x SOCKET_TIMEOUT), then
# makes its own (the same again); past that it hangs.
SCRAPE_BOUND = 4 * SOCKET_TIMEOUT + 1.0
HELLO = {"method": "GET", "view": "/hello/", "status": "200"}


@pytest.fixture(autouse=True)
def urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.hardening.urls"


@pytest.fixture
def debug_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory(extra_args=["--enable-debug-command", "local"])


def use_redis(pytheus_settings: Callable[..., None], server: RedisServer) -> str:  # noqa: F811
    gc.collect()  # metrics of earlier tests, alive in cycles, must not reach this backend
    prefix = f"slow{uuid.uuid4().hex[:8]}"
    pytheus_settings(
        BACKEND="pytheus.backends.redis.MultiProcessRedisBackend",
        BACKEND_CONFIG={
            "url": server.url,
            "prefix": prefix,
            "flush_interval": 0.05,  # as in production: a background flusher
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
        },
    )
    assert isinstance(get_backend(), MultiProcessRedisBackend)
    return prefix


class Sleeper(threading.Thread):
    """``DEBUG SLEEP`` on a connection of its own; started, it waits until Redis sleeps."""

    def __init__(self, server: RedisServer, seconds: float) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.seconds = seconds
        self.reply: bytes | None = None
        self.sent = threading.Event()

    def run(self) -> None:
        with socket.create_connection((self.server.host, self.server.port), timeout=30) as sock:
            sock.sendall(b"DEBUG SLEEP %s\r\n" % str(self.seconds).encode())
            self.sent.set()
            self.reply = sock.recv(64).split(b"\r\n", 1)[0]

    def start_and_wait(self) -> None:
        self.start()
        assert self.sent.wait(5), "DEBUG SLEEP was not sent"
        # Sent: Redis sleeps once it has read it. A PING it has not answered within a third
        # of the sleep says so; one that was only slow (a loaded machine) is asked again.
        deadline = time.monotonic() + 5
        while self.server.ping(timeout=min(0.5, self.seconds / 3)):
            assert time.monotonic() < deadline, "Redis did not start sleeping"


def timed_get(client: Client, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    status = client.get(path).status_code
    return status, time.perf_counter() - start


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1e3, 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def test_a_sleeping_redis_slows_no_request_and_hangs_no_scrape(
    debug_redis: RedisServer,
    pytheus_settings: Callable[..., None],  # noqa: F811
) -> None:
    use_redis(pytheus_settings, debug_redis)
    client = Client()
    before = []
    for _ in range(300):
        status, seconds = timed_get(client, "/hello/")
        assert status == 200
        before.append(seconds)
    assert client.get("/metrics").status_code == 200

    sleeper = Sleeper(debug_redis, SLEEP)
    sleeper.start_and_wait()
    slept_at = time.monotonic()
    scrape_status, scrape_seconds = timed_get(client, "/metrics")
    during = []
    while sleeper.is_alive() and len(during) < 50_000:
        status, seconds = timed_get(client, "/hello/")
        assert status == 200
        during.append(seconds)
    sleeper.join(SLEEP + 5)
    assert sleeper.reply == b"+OK"
    assert time.monotonic() - slept_at >= SLEEP - 0.5  # the requests did span the sleep

    # Everything recorded during the sleep arrives once Redis answers again.
    deadline = time.monotonic() + 10
    expected = len(before) + len(during)
    while True:
        response = client.get("/metrics")
        if response.status_code == 200:
            total = parse_text(response.content.decode()).samples.get(
                ("django_http_requests_total", frozenset(HELLO.items()))
            )
            if total == expected:
                break
        assert time.monotonic() < deadline, f"/hello/ count is not {expected}"
        time.sleep(0.05)

    figures = {
        "before": percentiles(before),
        "during_sleep": percentiles(during),
        "scrape_during_sleep": {"status": scrape_status, "seconds": round(scrape_seconds, 3)},
        "socket_timeout_s": SOCKET_TIMEOUT,
        "redis_sleep_s": SLEEP,
    }
    report("redis_debug_sleep", figures)
    assert scrape_status == 503
    assert scrape_seconds < SCRAPE_BOUND, figures
    # Recording has no network call: a request that called Redis would take the whole
    # SOCKET_TIMEOUT (500 ms); one that waited for the flush lock, which the flusher holds
    # across its stuck call, would wait most of it, every 50 ms flush interval: a few
    # percent of the requests. Half the timeout leaves room for a loaded two-core machine,
    # where a request is descheduled for tens of milliseconds (a p99 of 50 ms is the
    # machine's, not ours).
    assert figures["during_sleep"]["p99_ms"] < 1000 * SOCKET_TIMEOUT / 2, figures
    assert figures["during_sleep"]["max_ms"] < 1000 * SOCKET_TIMEOUT, figures


def test_a_scrape_waits_for_a_redis_that_is_only_slow(
    debug_redis: RedisServer,
    pytheus_settings: Callable[..., None],  # noqa: F811
) -> None:
    """Slower than usual but within the socket timeout: the scrape has the data."""
    use_redis(pytheus_settings, debug_redis)
    client = Client()
    assert client.get("/hello/").status_code == 200
    assert client.get("/metrics").status_code == 200
    sleeper = Sleeper(debug_redis, 0.3)
    sleeper.start_and_wait()
    response_status, seconds = timed_get(client, "/metrics")
    sleeper.join(5)
    report("redis_debug_sleep_short", {"status": response_status, "seconds": round(seconds, 3)})
    assert response_status == 200
    assert seconds < 2 * SOCKET_TIMEOUT
