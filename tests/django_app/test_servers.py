"""The app under real servers: gunicorn with 4 workers on the Redis backend (every
worker's scrape shows every worker's requests, exactly), and runserver's autoreloader."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.core.helpers import parse_text
from tests.servers import LOOPBACK, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET on a connection of its own (so that requests spread over workers)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what} within {timeout} s\n--- {log}:\n{log.read_text()[-5000:]}"
            )
        time.sleep(0.05)


def answers(port: int, path: str) -> bool:
    try:
        return get(port, path, timeout=2.0)[0] == 200
    except OSError:
        return False


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in a session of its own; stop it (and its children) by its own pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its process group is its pid: children go with it
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def requests_total(body: bytes, view: str) -> float | None:
    parsed = parse_text(body.decode())
    key = (
        "django_http_requests_total",
        frozenset({"method": "GET", "view": view, "status": "200"}.items()),
    )
    return parsed.samples.get(key)


@pytest.mark.slow
def test_gunicorn_workers_share_exact_counts(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.django_app.gunicorn_settings",
        "TEST_REDIS_URL": redis_server.url,
        "TEST_REDIS_PREFIX": f"gunicorn{uuid.uuid4().hex[:12]}",
    }
    args = [
        sys.executable, "-m", "gunicorn",
        "--workers", "4",
        "--bind", f"{LOOPBACK}:{port}",
        "--graceful-timeout", "5",
        "django.core.wsgi:get_wsgi_application()",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    n = 200
    with server(args, env, log) as process:
        wait_until(lambda: answers(port, "/hello/"), START_TIMEOUT, "gunicorn did not answer", log)
        workers: set[bytes] = set()
        warm_ups = 0

        def all_workers_answer() -> bool:
            # Concurrent slow requests: a busy worker leaves the next one to another. Until
            # every worker has booted and answered one, whatever the kernel does.
            nonlocal warm_ups
            with ThreadPoolExecutor(8) as pool:
                answered = list(pool.map(lambda _: get(port, "/warm-up/?sleep=0.05"), range(16)))
            warm_ups += len(answered)
            assert all(status == 200 for status, _ in answered)
            workers.update(b for _, b in answered)
            return len(workers) == 4

        wait_until(all_workers_answer, START_TIMEOUT, "not all 4 workers answered", log)
        assert str(process.pid).encode() not in workers  # workers answered, not the master
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: get(port, "/pid/?sleep=0.005"), range(n)))
        assert all(status == 200 for status, _ in results)

        # Each worker flushes every 0.2 s; a scrape shows them all once they have. All four
        # workers answered warm-up requests: their exact sum needs every worker's counts.
        seen: list[tuple[float | None, float | None]] = []

        def complete() -> bool:
            status, body = get(port, "/metrics")
            assert status == 200, body
            seen.append((requests_total(body, "/pid/"), requests_total(body, "/warm-up/")))
            pid, warm_up = seen[-1]
            assert (pid or 0) <= n, (seen[-5:], n)  # never more than were answered
            assert (warm_up or 0) <= warm_ups, (seen[-5:], warm_ups)
            return seen[-1] == (n, warm_ups)

        try:
            wait_until(complete, 30.0, f"/metrics never showed {n} and {warm_ups}", log)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast scrapes: {seen[-5:]}") from exc
        # And from then on, any worker's scrape shows exactly that.
        for _ in range(12):
            status, body = get(port, "/metrics")
            assert status == 200
            assert (requests_total(body, "/pid/"), requests_total(body, "/warm-up/")) == (
                n,
                warm_ups,
            )
        assert process.poll() is None, log.read_text()


@pytest.mark.slow
def test_runserver_with_autoreloader(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "django", "runserver", f"{LOOPBACK}:{port}"]
    log = tmp_path / "runserver.log"
    with server(args, {"DJANGO_SETTINGS_MODULE": "tests.settings"}, log) as process:
        wait_until(
            lambda: answers(port, "/metrics"), START_TIMEOUT, "runserver did not answer", log
        )
        for _ in range(3):
            assert get(port, "/hello/")[0] == 200
        status, body = get(port, "/metrics")
        assert status == 200
        assert requests_total(body, "/hello/") == 3
        # The autoreloader's child process serves; the process started is its parent.
        status, served_by = get(port, "/pid/")
        assert status == 200
        assert int(served_by) != process.pid
        assert process.poll() is None
