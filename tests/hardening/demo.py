"""The demo project under gunicorn on the Redis backend, a load generator beside it, and the
arithmetic of what they measured.

:class:`Demo` runs ``gunicorn demo_project.wsgi`` (4 workers, the demo's settings with
``PYTHEUS_REDIS_URL`` pointing at a test's Redis, DEBUG off) in a session of its own and
stops it by its own pid. :class:`Load` runs :mod:`tests.hardening.loadgen` in a process of
its own. Requests are timed on the ``time.monotonic()`` clock, shared by every process on
Linux, so a test can split them into before, during and after a fault.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pytheus.backends.redis_keys import KeyLayout
from tests import helpers
from tests.core.helpers import parse_text
from tests.e2e.helpers import ROOT, demo_env, http_get
from tests.servers import LOOPBACK, RedisServer, free_port

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: The demo's request counter of /fast/, the view the load generator calls.
FAST = {"method": "GET", "view": "/fast/", "status": "200"}


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None
) -> Any:
    """:func:`tests.helpers.wait_for`, with the tail of the demo's ``log`` in the failure."""
    try:
        return helpers.wait_for(condition, timeout=timeout, interval=0.05, what=what)
    except AssertionError as exc:
        if log is None:
            raise
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{exc}\n--- {log}:\n{tail}") from exc.__cause__


class Demo:
    """The demo under gunicorn; ``with Demo(...) as demo:`` starts it and waits until every
    worker has flushed to Redis once (so all of them count), and stops it afterwards."""

    def __init__(
        self,
        directory: Path,
        server: RedisServer,
        *,
        workers: int = 4,
        gunicorn_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.workers = workers
        self.port = free_port()
        self.prefix = f"hard{uuid.uuid4().hex[:10]}"
        self.log = directory / "gunicorn.log"
        self.env = demo_env(
            directory / "demo.sqlite3",
            PYTHEUS_REDIS_URL=server.url,
            PYTHEUS_REDIS_PREFIX=self.prefix,
            DEMO_DEBUG="0",
            DEMO_SECRET_KEY=uuid.uuid4().hex * 2,
            **(env or {}),
        )
        self.args = [
            sys.executable, "-m", "gunicorn", "demo_project.wsgi",
            "--workers", str(workers),
            "--bind", f"{LOOPBACK}:{self.port}",
            "--graceful-timeout", "5",
            # Not the control socket in ~/.gunicorn, which every gunicorn would share.
            "--no-control-socket",
            *gunicorn_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    # -- life cycle

    def __enter__(self) -> Demo:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its process group is its pid: workers go with it
            )
        try:
            wait_for(self._ready, START_TIMEOUT, "the demo's workers did not all report", self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"gunicorn exited:\n{self.log_text()}"
        # /metrics, not a view: the tests count every /fast/ request.
        return len(self.live_processes()) >= self.workers and self.scrape()[0] == 200

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    # -- looking at it

    def worker_pids(self) -> list[int]:
        """The master's children: its workers, as the kernel lists them."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(c) for c in children]

    def redis(self) -> redis.Redis:
        """A client of the database the demo's metrics are in (the cache's db + 1)."""
        return redis.Redis(port=self.server.port, db=1, decode_responses=True, socket_timeout=5)

    @property
    def keys(self) -> KeyLayout:
        """Where the demo's metrics are in Redis."""
        return KeyLayout(f"{self.prefix}:metrics")

    def live_processes(self) -> list[str]:
        """Processes registered in Redis under the demo's metrics prefix."""
        client = self.redis()
        try:
            return list(client.zrange(self.keys.procs, 0, -1))
        finally:
            client.close()

    def redis_time(self) -> float:
        """Redis's clock, which stamps every flush."""
        client = self.redis()
        try:
            seconds, micros = client.time()
            return float(seconds) + micros / 1e6
        finally:
            client.close()

    def flushed_since(self, since: float, pids: Iterable[int]) -> bool:
        """Whether each of ``pids`` has flushed after ``since`` (Redis's clock)."""
        client = self.redis()
        try:
            procs = client.zrange(self.keys.procs, 0, -1, withscores=True)
        finally:
            client.close()
        last = {int(proc.split(":")[-2]): score for proc, score in procs}
        return all(last.get(pid, 0.0) > since for pid in pids)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        return http_get(self.port, path, timeout=timeout)

    def scrape(self, timeout: float = 30.0) -> tuple[int, float, bytes]:
        """GET /metrics: status, seconds taken, body."""
        start = time.monotonic()
        status, body = self.get("/metrics", timeout=timeout)
        return status, time.monotonic() - start, body

    def fast_total(self) -> float | None:
        """The demo's count of answered /fast/ requests, read from /metrics."""
        status, _, body = self.scrape()
        if status != 200:
            return None
        return parse_text(body.decode()).samples.get(
            ("django_http_requests_total", frozenset(FAST.items()))
        )

    def wait_for_total(self, expected: float, timeout: float = 30.0) -> float:
        """Wait until /metrics shows ``expected`` /fast/ requests; fail if it shows more."""

        def landed() -> bool:
            total = self.fast_total()
            assert total is None or total <= expected, f"{total} counted, {expected} answered"
            return total == expected

        wait_for(landed, timeout, f"/metrics did not show {expected} /fast/ requests", self.log)
        return expected


@dataclass(frozen=True)
class Request:
    start: float  # time.monotonic()
    seconds: float
    status: int  # -1: no HTTP answer
    error: str

    @property
    def end(self) -> float:
        return self.start + self.seconds


class Load:
    """:mod:`tests.hardening.loadgen` in a process of its own, until :meth:`stop`."""

    def __init__(
        self,
        port: int,
        out: Path,
        *,
        path: str = "/fast/",
        rate: float = 100.0,
        threads: int = 4,
        duration: float = 60.0,
        max_requests: int = 20_000,
    ) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "tests.hardening.loadgen",
                "--port", str(port), "--path", path, "--rate", str(rate),
                "--threads", str(threads), "--duration", str(duration),
                "--max-requests", str(max_requests), "--out", str(out),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
        )  # fmt: skip
        self.duration = duration

    def stop(self) -> list[Request]:
        """Tell it to stop (end of its stdin), wait, and return every request it made."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(self.duration + 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        assert code == 0, f"the load generator exited with {code}"
        raw = json.loads(self.out.read_text())["requests"]
        return [Request(*r) for r in raw]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def between(requests: Iterable[Request], start: float, end: float) -> list[Request]:
    """Requests that started in [start, end)."""
    return [r for r in requests if start <= r.start < end]


def stats(requests: Sequence[Request]) -> dict[str, Any]:
    """Count, statuses, errors and latency percentiles (ms) of some requests."""
    answered = sorted(r.seconds for r in requests if r.status != -1)
    statuses: dict[str, int] = {}
    for r in requests:
        key = str(r.status) if r.status != -1 else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
    figures: dict[str, Any] = {"n": len(requests), "statuses": statuses}
    if answered:
        figures.update(
            p50_ms=round(statistics.median(answered) * 1e3, 2),
            p99_ms=round(answered[int(0.99 * (len(answered) - 1))] * 1e3, 2),
            max_ms=round(answered[-1] * 1e3, 2),
        )
    errors = sorted({r.error for r in requests if r.error})
    if errors:
        figures["errors"] = errors[:5]
    return figures


def redis_memory(server: RedisServer) -> int:
    """The memory Redis uses, in bytes: ``used_memory`` from ``INFO memory`` without the
    clients' buffers (``mem_clients_normal``), which vary with what each connection
    happens to be doing at that moment, not with what Redis keeps."""
    client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=5)
    try:
        info = client.info("memory")
        return int(info["used_memory"]) - int(info["mem_clients_normal"])
    finally:
        client.close()
