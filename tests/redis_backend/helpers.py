"""Helpers for the Redis backend tests: scraping, waiting on values, child processes, Redis keys.

Child processes are real: ``fork_children`` forks this (pytest) process the way gunicorn
``--preload`` forks its master, ``run_script`` starts a fresh interpreter running
:mod:`tests.redis_backend.workers`. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.registry import REGISTRY, Registry
from tests.helpers import Parsed, parse_openmetrics, parse_text, wait_for
from tests.servers import LOOPBACK

__all__ = [
    "CHILD_LIFETIME",
    "REPO",
    "Child",
    "ChildContext",
    # Parsing and waiting live in tests.helpers; these tests import them from here too.
    "Parsed",
    "ReplyDropper",
    "fork_child",
    "keys_under",
    "parse_openmetrics",
    "parse_text",
    "quiet_fork",
    "read_line",
    "run_script",
    "scrape",
    "scrape_openmetrics",
    "start_script",
    "wait_for",
    "wait_for_value",
]

REPO = Path(__file__).resolve().parents[2]

#: Seconds after which a forked child is killed (SIGALRM), whatever it is doing.
CHILD_LIFETIME = 60


def scrape(registry: Registry = REGISTRY) -> Parsed:
    """Scrape ``registry`` (the global one by default) through the active backend, parsed."""
    return parse_text(generate_metrics(registry))


def scrape_openmetrics(registry: Registry = REGISTRY) -> Parsed:
    return parse_openmetrics(generate_openmetrics(registry))


def wait_for_value(
    name: str,
    labels: Mapping[str, str] | None,
    expected: float | None,
    *,
    timeout: float = 10.0,
    registry: Registry = REGISTRY,
) -> Parsed:
    """Scrape until sample ``name{labels}`` is ``expected`` (None: absent); return that scrape."""
    last: list[float | None] = []

    def check() -> Parsed | None:
        parsed = scrape(registry)
        last[:] = [parsed.get(name, labels)]
        return parsed if parsed.get(name, labels) == expected else None

    try:
        result: Parsed = wait_for(check, timeout=timeout, interval=0.05)
    except AssertionError as exc:
        raise AssertionError(
            f"{name}{dict(labels or {})} is {last[0] if last else '?'}, not {expected}"
        ) from exc
    return result


# ------------------------------------------------------------------------------ processes


@contextlib.contextmanager
def quiet_fork() -> Iterator[None]:
    """Fork in a process with threads (the flusher): fine here, as for gunicorn, because
    pytheus re-initialises after fork; Python 3.12+ warns about it anyway."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@dataclass
class Child:
    """A forked child: its pid, and a pipe on which it sends one JSON result."""

    pid: int
    result_fd: int
    control_fd: int
    exit_status: int | None = None
    _buffer: bytes = b""

    def result(self, timeout: float = 20.0) -> Any:
        """The JSON value the child sent (it sends one line when its function returns)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"child {self.pid} sent no result within {timeout} s")
            ready, _, _ = select.select([self.result_fd], [], [], remaining)
            if ready:
                chunk = os.read(self.result_fd, 65536)
                if not chunk:
                    raise AssertionError(f"child {self.pid} closed its pipe without a result")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        value = json.loads(line)
        if isinstance(value, dict) and "error" in value:
            raise AssertionError(f"child {self.pid} failed:\n{value['error']}")
        return value

    def release(self) -> None:
        """Tell a child waiting in ``hold()`` to go on (to exit)."""
        with contextlib.suppress(OSError):
            os.write(self.control_fd, b"x")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the child to exit; return its exit code (negative: killed by a signal)."""
        if self.exit_status is None:
            deadline = time.monotonic() + timeout
            while True:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.exit_status = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() >= deadline:
                    self.kill()
                    os.waitpid(self.pid, 0)
                    raise AssertionError(f"child {self.pid} did not exit within {timeout} s")
                time.sleep(0.005)
            os.close(self.result_fd)
            os.close(self.control_fd)
        return self.exit_status


class ChildContext:
    """What a forked child's function gets: a way to report and to wait for the parent."""

    def __init__(self, result_fd: int, control_fd: int) -> None:
        self._result_fd = result_fd
        self._control_fd = control_fd

    def send(self, value: Any) -> None:
        os.write(self._result_fd, json.dumps(value).encode() + b"\n")

    def released(self) -> bool:
        """Whether the parent has called ``release()``; does not block."""
        ready, _, _ = select.select([self._control_fd], [], [], 0)
        return bool(ready)

    def hold(self, timeout: float = 30.0) -> None:
        """Block until the parent calls ``release()`` (or ``timeout`` passes)."""
        select.select([self._control_fd], [], [], timeout)


def fork_child(func: Callable[[ChildContext], Any], *, exit_normally: bool = True) -> Child:
    """Run ``func(ctx)`` in a forked child; its return value is sent as the child's result.

    With ``exit_normally`` the child then does what interpreter exit does for pytheus (the
    atexit handler closes the backend); either way it leaves with ``os._exit``, since a
    forked pytest must never go back into pytest.
    """
    result_r, result_w = os.pipe()
    control_r, control_w = os.pipe()
    with quiet_fork():
        pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            # Bounded: a child that hangs (a deadlock after fork) dies by itself.
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_LIFETIME)
            os.close(result_r)
            os.close(control_w)
            ctx = ChildContext(result_w, control_r)
            value = func(ctx)
            if exit_normally:
                from pytheus.backends import _close_at_exit

                _close_at_exit()
            ctx.send(value)
        except BaseException:
            code = 1
            with contextlib.suppress(BaseException):
                os.write(result_w, json.dumps({"error": traceback.format_exc()}).encode() + b"\n")
        finally:
            os._exit(code)
    os.close(result_w)
    os.close(control_r)
    return Child(pid, result_r, control_w)


def run_script(
    command: str, *args: Any, timeout: float = 30.0, env: Mapping[str, str] | None = None
) -> Any:
    """Run ``python -m tests.redis_backend.workers command args...`` to its (normal) end and
    return the JSON it prints last."""
    proc = start_script(command, *args, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"worker {command} exited with {proc.returncode}:\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def start_script(
    command: str, *args: Any, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m tests.redis_backend.workers command args...`` (JSON arguments)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.redis_backend.workers",
            command,
            *(json.dumps(a) for a in args),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> Any:
    """The next JSON line a started worker prints."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"worker {proc.pid} printed nothing within {timeout} s"
    line = proc.stdout.readline()
    assert line, f"worker {proc.pid} exited early: {proc.stderr.read() if proc.stderr else ''}"
    return json.loads(line)


# ------------------------------------------------------------------------------ Redis


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    """Every key in Redis that belongs to ``prefix``."""
    return {k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(f"{prefix}:*")}


class ReplyDropper:
    """A TCP proxy in front of Redis that can swallow Redis's replies.

    Requests still reach Redis (and are executed) but their replies never come back:
    exactly the "lost reply" that a flush must survive without being applied twice.
    While ``drop`` is set, every connection loses its replies (new connections cannot
    even finish their handshake); ``lose_replies()`` makes only the connections open
    now lose theirs, so that a client's retry on a new connection gets through.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop = threading.Event()
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._open: set[int] = set()
        self._losing: set[int] = set()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def lose_replies(self) -> None:
        """The connections open now lose every reply from here on."""
        with self._lock:
            self._losing |= self._open

    def _accept(self) -> None:
        number = 0
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=5)
            number += 1
            with self._lock:
                self._sockets += [client, upstream]
                self._open.add(number)
            for src, dst, replies in ((client, upstream, False), (upstream, client, True)):
                t = threading.Thread(
                    target=self._pump, args=(number, src, dst, replies), daemon=True
                )
                self._threads.append(t)
                t.start()

    def _pump(self, number: int, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            src.settimeout(0.2)
        except OSError:  # closed by close() before this thread started
            return
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if replies and (self.drop.is_set() or number in self._losing):
                continue
            try:
                dst.sendall(data)
            except OSError:
                break
        with self._lock:
            self._open.discard(number)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
        for t in self._threads:
            t.join(timeout=2)
