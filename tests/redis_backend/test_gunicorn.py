"""A real gunicorn with four workers: exact request counts from any worker's /metrics."""

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


def get(port: int, path: str, accept: str | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


class Gunicorn:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@pytest.fixture(params=[True, False], ids=["preload", "import-per-worker"])
def gunicorn(
    request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> Iterator[Gunicorn]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    config = {"port": redis_server.port, "prefix": prefix, "flush_interval": 0.1}
    env = {
        **os.environ,
        "PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend",
        "PYTHEUS_BACKEND_CONFIG": json.dumps(config),
    }
    command = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(WORKERS),
        "--bind", f"{LOOPBACK}:{port}",
        "--graceful-timeout", "10",
        *(["--preload"] if request.param else []),
        "tests.redis_backend.wsgi_app:application",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    server = Gunicorn(process, port, log)
    try:

        def answers() -> bool:
            assert process.poll() is None, f"gunicorn exited:\n{server.log_text()}"
            return get(port, "/metrics")[0] == 200

        wait_for(answers, timeout=30, interval=0.1, what="gunicorn answers")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # its own pid: the master stops its workers
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_gunicorn_workers_count_exactly(
    gunicorn: Gunicorn, redis_server: RedisServer, prefix: str
) -> None:
    def client(first: int) -> set[str]:
        workers = set()
        for i in range(first, REQUESTS, WORKERS):
            status, headers, _ = get(gunicorn.port, f"/page/{i % 3}")
            assert status == 200
            workers.add(headers["X-Worker"])
        return workers

    # As many clients at once as workers: sync workers serve one request each at a time.
    with ThreadPoolExecutor(WORKERS) as pool:
        served_by = set().union(*pool.map(client, range(WORKERS)))

    def exact() -> str | None:
        status, _, body = get(gunicorn.port, "/metrics")
        assert status == 200, f"{body}\n{gunicorn.log_text()}"
        parsed = parse_text(body)
        counts = [parsed.get("app_requests_total", {"path": f"/page/{p}"}) for p in range(3)]
        return body if counts == [REQUESTS / 3] * 3 else None

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
    assert parse_openmetrics(om).value("app_requests_total", {"path": "/page/0"}) == REQUESTS / 3

    # Stopped: every worker (and the preloading master) left Redis as it exited, and
    # the counts stay.
    gunicorn.process.send_signal(signal.SIGTERM)
    assert gunicorn.process.wait(30) == 0, gunicorn.log_text()
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    assert client.zcard(KeyLayout(prefix).procs) == 0
    reader = MultiProcessRedisBackend({"port": redis_server.port, "prefix": prefix})
    try:
        families = {f.name: f for f in reader.collect([], include_remote=True)}
    finally:
        reader.close()
    assert sum(s.value for s in families["app_requests"].samples) == REQUESTS
    assert len(served_by) >= 2, "all requests went to one worker: nothing was shared"
