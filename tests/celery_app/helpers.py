"""A Django site and its Celery workers, each a real process, sharing one redis-server.

The redis-server is the broker (database 1) and the metrics backend (database 0, a prefix
per site). Every process runs in a session of its own and is stopped by its own pid.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.core.helpers import Parsed, key, parse_openmetrics, parse_text
from tests.servers import LOOPBACK, RedisServer, free_port, promtool_check_metrics

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; fail with ``what()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what()} (waited {timeout} s)")
        time.sleep(0.1)


def http_get(port: int, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=20)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Process:
    """A process in a session of its own, its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its process group is its pid: children go with it
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        self._out.flush()
        return f"--- {self.log}:\n{self.log.read_text(errors='replace')[-chars:]}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the process group, wait; SIGKILL it if it has not gone in time."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        self._out.close()


class Site:
    """A web server (gunicorn, 2 workers) of ``tests.celery_app``, and its workers."""

    def __init__(
        self,
        redis: RedisServer,
        tmp_path: Path,
        stack: ExitStack,
        web_workers: int = 2,
        **env: str,
    ) -> None:
        self.redis = redis
        self.tmp_path = tmp_path
        self.stack = stack
        self.prefix = f"celery{uuid.uuid4().hex[:10]}"
        self.env = {
            "DJANGO_SETTINGS_MODULE": "tests.celery_app.settings",
            "TEST_REDIS_URL": redis.url,
            "TEST_REDIS_PREFIX": self.prefix,
            "TEST_BROKER_URL": f"redis://{LOOPBACK}:{redis.port}/1",
            **env,
        }
        self.port = free_port()
        self.web = self._start(
            [
                sys.executable, "-m", "gunicorn",
                "--workers", str(web_workers),
                "--bind", f"{LOOPBACK}:{self.port}",
                "--graceful-timeout", "5",
                "django.core.wsgi:get_wsgi_application()",
            ],
            "web",
        )  # fmt: skip
        wait_until(self._answers, START_TIMEOUT, lambda: f"the site did not answer\n{self.logs()}")
        self.workers: list[Process] = []

    def _start(self, args: list[str], name: str, env: Mapping[str, str] | None = None) -> Process:
        process = Process(args, {**self.env, **(env or {})}, self.tmp_path / f"{name}.log")
        self.stack.callback(process.stop)
        return process

    def _answers(self) -> bool:
        try:
            return http_get(self.port, "/metrics")[0] == 200
        except OSError:
            return False

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in [self.web, *getattr(self, "workers", [])])

    def worker(self, pool: str, concurrency: int = 2, **env: str) -> Process:
        """Start a worker (``--pool``), and wait until all its processes report."""
        name = f"w{len(self.workers)}"
        process = self._start(
            [
                sys.executable, "-m", "celery", "-A", "tests.celery_app.celery", "worker",
                "--pool", pool,
                "--concurrency", str(concurrency),
                "--hostname", f"{name}@test",
                "--without-heartbeat", "--without-mingle", "--without-gossip",
                "--loglevel", "INFO",
            ],
            f"worker-{name}",
            env,
        )  # fmt: skip
        self.workers.append(process)
        pool_processes = concurrency if pool == "prefork" else 0

        def ready() -> bool:
            assert process.running(), process.log_tail()
            scraped = self.scrape()
            main = get(scraped, "celery_worker_processes", worker=f"{name}@test", role="main")
            pool_ = get(scraped, "celery_worker_processes", worker=f"{name}@test", role="pool")
            return main == 1 and (pool_ or 0) == pool_processes

        wait_until(ready, START_TIMEOUT, lambda: f"worker {name} did not report\n{self.logs()}")
        return process

    def enqueue(self, kind: str, n: int = 1, **params: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in {"kind": kind, "n": str(n), **params}.items())
        status, body = http_get(self.port, f"/enqueue/?{query}")
        assert status == 200, body

    def scrape_text(self, openmetrics: bool = False) -> str:
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        status, body = http_get(self.port, "/metrics", headers)
        assert status == 200, body
        return body.decode()

    def scrape(self) -> Parsed:
        return parse_text(self.scrape_text())

    def check_exposition(self) -> Parsed:
        """A scrape in both formats, each accepted by its judges (promtool, the strict
        OpenMetrics parser)."""
        text = self.scrape_text()
        promtool_check_metrics(text)
        parse_openmetrics(self.scrape_text(openmetrics=True))
        return parse_text(text)


@contextmanager
def site(redis: RedisServer, tmp_path: Path, web_workers: int = 2, **env: str) -> Iterator[Site]:
    with ExitStack() as stack:
        yield Site(redis, tmp_path, stack, web_workers, **env)


def get(parsed: Parsed, name: str, **labels: str) -> float | None:
    """One sample's value, or None."""
    return parsed.samples.get(key(name, labels))


def celery_samples(parsed: Parsed) -> dict[tuple[str, frozenset[tuple[str, str]]], Any]:
    """The celery_* samples, for messages."""
    return {k: v for k, v in parsed.samples.items() if k[0].startswith("celery_")}
