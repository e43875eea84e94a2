"""A real gunicorn with four workers: exact request counts from any worker's /metrics.

Every worker is reached by design: one request per worker is held open until all of
them are (``/hold`` in :mod:`tests.redis_backend.wsgi_app`), so the test never depends
on how the kernel spreads connections or on how fast the workers boot.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.backends.redis_keys import KeyLayout
from tests.redis_backend.helpers import REPO, parse_openmetrics, parse_text, wait_for
from tests.servers import LOOPBACK, RedisServer, free_port, promtool_check_metrics

WORKERS = 4
REQUESTS = 300
# How long the held requests may wait for every worker to boot (a loaded machine forks
# and imports slowly); gunicorn's worker --timeout is above it, so no held worker is killed.
HOLD_TIMEOUT = 90.0


def get(
    port: int, path: str, accept: str | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


class Gunicorn:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: Path, hold_dir: Path
    ) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.hold_dir = hold_dir

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def held(self) -> set[str]:
        """The pids of the workers holding a ``/hold`` request now (or until released)."""
        return {p.name.removeprefix("held-") for p in self.hold_dir.glob("held-*")}


@pytest.fixture(params=[True, False], ids=["preload", "import-per-worker"])
def gunicorn(
    request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> Iterator[Gunicorn]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    config = {"port": redis_server.port, "prefix": prefix, "flush_interval": 0.1}
    env = {
        **os.environ,
        "PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend",
        "PYTHEUS_BACKEND_CONFIG": json.dumps(config),
        "TEST_HOLD_DIR": str(hold_dir),
    }
    command = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(WORKERS),
        "--bind", f"{LOOPBACK}:{port}",
        "--graceful-timeout", "10",
        "--timeout", str(int(HOLD_TIMEOUT) + 30),
        *(["--preload"] if request.param else []),
        "tests.redis_backend.wsgi_app:application",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    server = Gunicorn(process, port, log, hold_dir)
    try:

        def answers() -> bool:
            assert process.poll() is None, f"gunicorn exited:\n{server.log_text()}"
            return get(port, "/metrics")[0] == 200

        wait_for(answers, timeout=30, interval=0.1, what="gunicorn answers")
        yield server
    finally:
        (hold_dir / "release").touch()  # a test that failed midway leaves no worker held
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # its own pid: the master stops its workers
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def hold_every_worker(server: Gunicorn) -> set[str]:
    """One request per worker, each held until all are: when this returns, every worker
    has booted, answered and counted a request. Returns their pids."""
    with ThreadPoolExecutor(WORKERS) as pool:
        held = [
            pool.submit(get, server.port, "/hold", timeout=HOLD_TIMEOUT + 10)
            for _ in range(WORKERS)
        ]
        try:
            # A sync worker serves one request at a time: N held requests, N workers.
            wait_for(
                lambda: len(server.held()) == WORKERS,
                timeout=HOLD_TIMEOUT,
                interval=0.05,
                what=f"all {WORKERS} workers hold a request",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; held by {server.held()}\n{server.log_text()}") from exc
        finally:
            (server.hold_dir / "release").touch()
        answers = [f.result() for f in held]
    assert [status for status, _, _ in answers] == [200] * WORKERS
    pids = {headers["X-Worker"] for _, headers, _ in answers}
    assert pids == server.held()
    assert str(server.process.pid) not in pids  # workers answered, not the master
    return pids


@pytest.mark.slow
def test_gunicorn_workers_count_exactly(
    gunicorn: Gunicorn, redis_server: RedisServer, prefix: str
) -> None:
    assert len(hold_every_worker(gunicorn)) == WORKERS

    def client(first: int) -> None:
        for i in range(first, REQUESTS, WORKERS):
            status, _, _ = get(gunicorn.port, f"/page/{i % 3}")
            assert status == 200

    # As many clients at once as workers: sync workers serve one request each at a time.
    # Which worker answers which request is the kernel's business: the counts are exact.
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(client, range(WORKERS)))

    def exact() -> str | None:
        status, _, body = get(gunicorn.port, "/metrics")
        assert status == 200, f"{body}\n{gunicorn.log_text()}"
        parsed = parse_text(body)
        counts = [parsed.get("app_requests_total", {"path": f"/page/{p}"}) for p in range(3)]
        # One held request per worker: this sum needs every worker's count.
        held = parsed.get("app_requests_total", {"path": "/hold"})
        return body if counts == [REQUESTS / 3] * 3 and held == WORKERS else None

    text = wait_for(exact, timeout=15, interval=0.1, what=f"/metrics shows {REQUESTS} requests")
    # Every scrape, whichever worker answers it, shows the same exact counts.
    for _ in range(2 * WORKERS):
        assert exact() is not None
    promtool_check_metrics(text)
    status, headers, om = get(
        gunicorn.port, "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    parsed_om = parse_openmetrics(om)
    assert parsed_om.value("app_requests_total", {"path": "/page/0"}) == REQUESTS / 3
    assert parsed_om.value("app_requests_total", {"path": "/hold"}) == WORKERS

    # Stopped: every worker (and the preloading master) left Redis as it exited, and
    # the counts stay.
    gunicorn.process.send_signal(signal.SIGTERM)
    assert gunicorn.process.wait(30) == 0, gunicorn.log_text()
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        assert client.zcard(KeyLayout(prefix).procs) == 0
    finally:
        client.close()
    reader = MultiProcessRedisBackend({"port": redis_server.port, "prefix": prefix})
    try:
        families = {f.name: f for f in reader.collect([], include_remote=True)}
    finally:
        reader.close()
    assert sum(s.value for s in families["app_requests"].samples) == REQUESTS + WORKERS
