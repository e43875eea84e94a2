"""A throwaway redis-server for the benchmarks: a free loopback port, a temp directory.

The benchmarks' small equivalent of ``tests/servers.py``'s ``RedisServer`` (which is
built on pytest): nothing is persisted, and the server is stopped by its own pid.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["RedisServer", "RedisServerError"]

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0


class RedisServerError(RuntimeError):
    """redis-server is missing or did not start; the message says what to do."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``with RedisServer(directory) as server:`` ... ``server.url``."""

    def __init__(self, directory: Path, extra_args: list[str] | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisServerError(
                "The 'Many processes' section needs redis-server on PATH "
                "(scripts/install-system-deps.sh installs it; `make test` runs that)."
            )
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._argv = [
            executable,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
            *(extra_args or []),
        ]  # fmt: skip
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RedisServerError("The redis-server has not been started.")
        return self._proc.pid

    def version(self) -> str:
        out = subprocess.run(
            [self._argv[0], "--version"], capture_output=True, text=True, check=False
        ).stdout
        # "Redis server v=7.0.15 sha=... bits=64 build=..."
        return next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())

    def _ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> Self:
        log_path = self.directory / "redis-server.log"
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(
                    f"redis-server on port {self.port} did not answer PING:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # SIGTERM to this server's own pid
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
