"""A deploy that changes a metric (other buckets, another label): the new definition takes
over once no live process holds the old one, and nothing counted under it is lost."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pytheus.backends import get_backend
from pytheus.metrics import Counter, Histogram
from pytheus.registry import CollectorRegistry, set_registry
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    REPO,
    ChildContext,
    fork_child,
    parse_text,
    scrape,
    wait_for,
)
from tests.servers import LOOPBACK, RedisServer, free_port

LOGGER = "pytheus.backends.redis"
TAKEOVER = "changed definition"
WAITING = "which a live process still holds"


def release_a(ctx: ChildContext) -> str:
    """A process of the previous release: histogram buckets 0.1 and 1, a counter by view."""
    set_registry(CollectorRegistry())
    latency = Histogram("latency_seconds", "Latency.", buckets=[0.1, 1])
    views = Counter("views", "Views.", ["view"])
    for _ in range(10):
        latency.observe(0.3)
        views.labels(view="home").inc()
    from pytheus.backends import get_backend

    backend = get_backend()
    assert backend.flush()  # type: ignore[attr-defined]
    ctx.send("flushed")
    ctx.hold()
    return "done"


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("old_release", ["exits", "is killed"])
def test_a_changed_definition_waits_for_the_old_one_then_takes_over(
    load_redis_backend: LoadBackend, caplog: pytest.LogCaptureFixture, old_release: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    timeout = 1.5
    backend = load_redis_backend(flush_interval=0.3, process_timeout=timeout)
    old = fork_child(release_a, exit_normally=old_release == "exits")
    try:
        assert old.result() == "flushed"
        assert scrape().value("views_total", {"view": "home"}) == 10  # this process knows A
        # The new release: another bucket, another label. Defining it is not refused,
        # though this process has read the other definition: it is what a deploy does.
        latency = Histogram("latency_seconds", "Latency.", buckets=[0.1, 0.5, 1])
        views = Counter("views", "Views.", ["view", "method"])
        for _ in range(1000):
            latency.observe(0.3)
            views.labels(view="home", method="GET").inc()
        assert backend.flush()
        # Kept here, said once per metric with both definitions, not written.
        waiting = messages(caplog, WAITING)
        assert len(waiting) == 2, waiting
        assert any('"buckets":["0.1","1.0","inf"]' in m and "0.5" in m for m in waiting)
        assert backend.status()["definitions_waiting"] == ["latency_seconds", "views"]
        for _ in range(3):
            assert backend.flush()
        parsed = scrape()
        assert parsed.value("views_total", {"view": "home"}) == 10
        assert parsed.value("latency_seconds_count") == 10
        assert parsed.get("latency_seconds_bucket", {"le": "0.5"}) is None
        assert messages(caplog, TAKEOVER) == []
        assert len(messages(caplog, WAITING)) == 2  # not once per flush

        # A process of the new release that exits meanwhile says what it loses.
        def exits_while_waiting(_ctx: ChildContext) -> list[str]:
            records: list[logging.LogRecord] = []
            handler = logging.Handler(logging.WARNING)
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger(LOGGER).addHandler(handler)
            views.labels(view="home", method="GET").inc()
            get_backend().close()
            return [r.getMessage() for r in records]

        short_lived = fork_child(exits_while_waiting, exit_normally=False)
        said = short_lived.result()
        assert short_lived.wait() == 0
        assert any("exits with values of" in m and "'views'" in m for m in said), said
    finally:
        if old_release == "exits":
            old.release()
            assert old.wait() == 0
        else:
            old.kill()
            old.wait()

    if old_release == "is killed":
        # Silent: it holds the old definition until process_timeout says it is dead.
        assert backend.flush()
        assert scrape().value("views_total", {"view": "home"}) == 10

    def new_one_rules() -> bool:
        backend.flush()
        return scrape().get("views_total", {"view": "home", "method": "GET"}) == 1000

    wait_for(new_one_rules, timeout=10 * timeout, what="the new definition takes over")
    parsed = scrape()
    assert parsed.value("latency_seconds_count") == 1000
    assert parsed.value("latency_seconds_bucket", {"le": "0.5"}) == 1000
    assert parsed.value("latency_seconds_bucket", {"le": "0.1"}) == 0
    assert parsed.get("views_total", {"view": "home"}) is None
    takeovers = messages(caplog, TAKEOVER)
    assert len(takeovers) == 2, takeovers
    assert backend.status()["definitions_waiting"] == []
    # And then it is an ordinary metric.
    views.labels(view="home", method="GET").inc()
    assert scrape().value("views_total", {"view": "home", "method": "GET"}) == 1001


# ----------------------------------------------------------------- a rolling deploy

WORKERS = 4


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Deploy:
    """gunicorn serving tests/redis_backend/wsgi_deploy.py, release A or B from a file."""

    def __init__(self, redis_server: RedisServer, prefix: str, tmp_path: Path) -> None:
        self.release_file = tmp_path / "release"
        self.release_file.write_text("A")
        self.log = tmp_path / "gunicorn.log"
        self.port = free_port()
        config = {"port": redis_server.port, "prefix": prefix, "flush_interval": 0.1}
        env = {
            **os.environ,
            "RELEASE_FILE": str(self.release_file),
            "PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend",
            "PYTHEUS_BACKEND_CONFIG": json.dumps(config),
        }
        command = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(WORKERS),
            "--bind", f"{LOOPBACK}:{self.port}",
            "--graceful-timeout", "20",
            "tests.redis_backend.wsgi_deploy:application",
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        pid = self.process.pid
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)  # the master's own pid

    def serve(self, count: int) -> dict[str, int]:
        """``count`` requests from as many threads as workers: answers by release."""

        def one(_: int) -> str:
            status, body = get(self.port, "/")
            assert status == 200, body
            return body.split()[0]

        with ThreadPoolExecutor(WORKERS) as pool:
            releases = list(pool.map(one, range(count)))
        return {r: releases.count(r) for r in ("A", "B")}

    def scrape(self) -> Any:
        status, body = get(self.port, "/metrics")
        assert status == 200, f"{body}\n{self.log_text()[-3000:]}"
        return parse_text(body)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def deploy(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Iterator[Deploy]:
    server = Deploy(redis_server, prefix, tmp_path)
    try:

        def answers() -> bool:
            assert server.process.poll() is None, f"gunicorn exited:\n{server.log_text()}"
            return len(server.workers()) == WORKERS and get(server.port, "/metrics")[0] == 200

        wait_for(answers, timeout=30, interval=0.1, what="gunicorn answers")
        yield server
    finally:
        server.stop()


def total(parsed: Any, name: str) -> float:
    return sum(parsed.series(name).values())


@pytest.mark.slow
def test_a_rolling_deploy_that_changes_a_metric_counts_the_new_release_exactly(
    deploy: Deploy,
) -> None:
    """4 workers of release A; 4 of release B start beside them (gunicorn TTIN) and serve
    while A's still run; then A's are stopped (TTOU stops the oldest first). B's counts,
    those of the overlap included, are exact once B's definition takes over."""
    served_a = deploy.serve(40)["A"]
    assert served_a == 40
    wait_for(lambda: total(deploy.scrape(), "deploy_requests_total") == 40, what="A's 40")
    release_a = deploy.workers()

    deploy.release_file.write_text("B")
    for count in range(WORKERS + 1, 2 * WORKERS + 1):
        # One at a time: the kernel keeps one pending signal of a kind, not two.
        deploy.signal(signal.SIGTTIN)
        wait_for(lambda c=count: len(deploy.workers()) == c, timeout=30, what=f"{count} workers")
    # Served until release B's workers (importing the app) have answered some.
    during = {"A": 0, "B": 0}

    def some_by_b() -> bool:
        for release, count in deploy.serve(20).items():
            during[release] += count
        return during["B"] >= 20

    wait_for(some_by_b, timeout=60, interval=0, what="release B's workers serve")
    # Both releases serve; A's definition is the one in Redis, B's counts wait in B's
    # workers. Every scrape, from either release, shows A's (once A's workers flushed).
    served_a += during["A"]
    wait_for(
        lambda: total(deploy.scrape(), "deploy_requests_total") == served_a,
        what=f"A's {served_a}",
    )
    for _ in range(2 * WORKERS):
        parsed = deploy.scrape()
        assert parsed.get("deploy_latency_seconds_bucket", {"le": "0.5"}) is None
        assert total(parsed, "deploy_requests_total") == served_a
    assert deploy.log_text().count(TAKEOVER) == 0

    for count in range(2 * WORKERS - 1, WORKERS - 1, -1):
        deploy.signal(signal.SIGTTOU)  # gunicorn stops its oldest worker: one of A's
        wait_for(lambda c=count: len(deploy.workers()) == c, timeout=40, what=f"{count} workers")
    assert not deploy.workers() & release_a, "a worker of release A is still there"
    after = deploy.serve(100)
    assert after == {"A": 0, "B": 100}
    served_b = during["B"] + after["B"]

    def exact() -> bool:
        parsed = deploy.scrape()
        return (
            parsed.get("deploy_requests_total", {"view": "page", "method": "GET"}) == served_b
            and parsed.get("deploy_latency_seconds_count") == served_b
        )

    wait_for(exact, timeout=20, interval=0.1, what=f"B's {served_b} requests, exactly")
    parsed = deploy.scrape()
    assert parsed.series("deploy_requests_total") == {
        frozenset({("view", "page"), ("method", "GET")}): served_b
    }
    assert parsed.value("deploy_latency_seconds_bucket", {"le": "0.5"}) == served_b
    log = deploy.log_text()
    # One line per metric says what happened, from the worker that made B's the rule.
    assert log.count(TAKEOVER) == 2, log[-5000:]
    assert log.count(WAITING) >= 1
