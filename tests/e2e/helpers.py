"""Running the demo project for real: manage.py commands, gunicorn, and a Prometheus server.

Everything runs in processes of its own, with the demo's settings (never the test
settings this pytest process has loaded), on loopback, in the test's temporary directory,
and is stopped by its own pid.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from tests.servers import LOOPBACK, ServerError, free_port, require_program

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

# Variables of the developer's shell that would change what the demo does.
_DEMO_VARIABLES = ("DJANGO_SETTINGS_MODULE", "PYTHEUS_BACKEND_CLASS", "PYTHEUS_BACKEND_CONFIG")
_DEMO_PREFIXES = ("DEMO_", "PYTHEUS_REDIS_")


def demo_env(db_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a demo process: demo settings, this database, ``extra`` on top."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DEMO_VARIABLES and not k.startswith(_DEMO_PREFIXES)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="demo_project.settings",
        DEMO_DB_PATH=str(db_path),
        PYTHONPATH=str(ROOT),
        # `python` in scripts (the container's entry point) is this interpreter.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(extra)
    return env


def manage(
    env: Mapping[str, str], *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py args...``; with ``check``, fail with its output unless it exits 0."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited with {result.returncode}\n"
            f"--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"
        )
    return result


def django_shell(env: Mapping[str, str], code: str) -> Any:
    """Run ``code`` in ``manage.py shell``; it prints one JSON document, returned parsed."""
    result = manage(env, "shell", "--no-imports", "-c", code)
    return json.loads(result.stdout.strip().splitlines()[-1])


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One GET to 127.0.0.1 on a connection of its own (so requests spread over workers)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def answers(port: int, path: str) -> bool:
    try:
        return http_get(port, path, timeout=2.0)[0] == 200
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, logs: tuple[Path, ...] = ()
) -> None:
    """Poll ``condition`` until it holds; after ``timeout`` s fail with ``what`` and the logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            tails = "".join(
                f"\n--- {log}:\n{log.read_text(errors='replace')[-5000:]}"
                for log in logs
                if log.exists()
            )
            raise AssertionError(f"{what} within {timeout} s{tails}")
        time.sleep(0.1)


@contextmanager
def running(
    args: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in a session of its own; stop it and its children by its own pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its process group is its pid: children go with it
        )
        try:
            yield process
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


class PrometheusServer:
    """A real Prometheus (Debian's ``prometheus``) on a free loopback port, data in ``directory``.

    It scrapes ``targets`` (``host:port``) as job ``job`` every ``scrape_interval`` and
    evaluates ``rule_files`` as often; :meth:`query` asks its HTTP API.
    """

    def __init__(
        self,
        directory: Path,
        targets: list[str],
        *,
        job: str = "demo",
        scrape_interval: str = "1s",
        rule_files: list[Path] | None = None,
    ) -> None:
        self.executable = require_program("prometheus")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = directory / "prometheus.yml"
        self.log_path = directory / "prometheus.log"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": scrape_interval,
            },
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        if rule_files:
            config["rule_files"] = [str(path) for path in rule_files]
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command_line(self) -> list[str]:
        return [
            self.executable,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
        ]

    def start(self) -> PrometheusServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command_line(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(self.port, "/-/ready"):
            if self.process.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise ServerError(
                    f"prometheus on port {self.port} did not become ready "
                    f"(exit code {self.process.returncode}).\n{self.log_text()}"
                )
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query (a vector: ``[{"metric": ..., "value": [t, "v"]}]``)."""
        status, body = http_get(
            self.port, "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        reply = json.loads(body)
        if status != 200 or reply.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {status} {reply}")
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The value of a query that yields at most one series; None when it yields none."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr!r} yields {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
