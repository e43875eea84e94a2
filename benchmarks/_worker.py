"""Timing in another interpreter: a worker script driven over JSON lines.

Some sides cannot share the runner's process: the original pytheus has our import name,
and prometheus_client picks its multiprocess mode when it is imported. Such a side runs
in a worker script (``original_worker.py``, ``mmap_worker.py``) that speaks this protocol:

* on start it writes one line, its *hello* (what it is, which row keys it supports);
* then it answers each request on stdin with one line on stdout:
  ``{"prepare": key, "id": id, "params": {...}, "seconds": s}`` -> ``{"ok": true}``
  (builds and calibrates the case of row ``key`` under the name ``id``, which defaults
  to ``key``: a row may time one key twice, with other params), ``{"batch": id}`` ->
  ``{"seconds": per-operation seconds of one batch}``, ``{"release": id}`` ->
  ``{"ok": true}``;
* any failure is answered with ``{"error": "..."}``; end of input ends the worker.

:class:`Worker` is the runner's end; :func:`serve` is the worker's.

Standard library only: the workers import it in virtualenvs of their own.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from _harness import Case, Contender, LocalContender

__all__ = ["RemoteContender", "Worker", "WorkerError", "serve"]


class WorkerError(RuntimeError):
    """The worker could not be started, or failed; the message says why."""


class Worker:
    """A worker process started with ``argv`` and ``env``; ``hello`` is its first line."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
        self.what = what
        self._prepared = 0
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=dict(env),
        )
        try:
            self.hello: dict[str, Any] = self._read()
        except BaseException:
            self.close()
            raise

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self._proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            code = self._proc.wait()
            raise WorkerError(f"{self.what}: the worker exited (code {code}); its stderr is above.")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise WorkerError(f"{self.what}: the worker failed: {message['error']}")
        return message

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self._read()

    def contender(self, key: str, params: Mapping[str, Any], seconds: float) -> RemoteContender:
        """Have the worker build and calibrate row ``key``'s case; time it batch by batch."""
        self._prepared += 1
        name = f"{key}#{self._prepared}"
        self.ask({"prepare": key, "id": name, "params": dict(params), "seconds": seconds})
        return RemoteContender(self, name)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        # End of input ends it, unless a forked process still holds a copy of the pipe
        # (one left behind by a failure): then it is told to stop, by its own pid.
        for stop in (None, self._proc.terminate, self._proc.kill):
            if stop is not None:
                stop()
            try:
                self._proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class RemoteContender:
    """A row's side prepared in a :class:`Worker`."""

    def __init__(self, worker: Worker, key: str) -> None:
        self._worker = worker
        self._key = key

    def batch(self) -> float:
        seconds: float = self._worker.ask({"batch": self._key})["seconds"]
        return seconds

    def release(self) -> None:
        self._worker.ask({"release": self._key})


def serve(
    hello: Mapping[str, Any],
    prepare: Callable[[str, Mapping[str, Any], float], Case | Contender],
) -> int:
    """The worker's loop: answer requests until end of input; ``prepare`` builds a side."""
    # The protocol owns the real stdout; a stray print() (ours or a library's) goes to
    # stderr instead of corrupting it.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr

    def send(message: Mapping[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    send(hello)
    contenders: dict[str, Contender] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "prepare" in request:
                key = request["prepare"]
                made = prepare(key, request["params"], request["seconds"])
                contenders[request.get("id", key)] = (
                    LocalContender(made, request["seconds"]) if isinstance(made, Case) else made
                )
                send({"ok": True})
            elif "batch" in request:
                send({"seconds": contenders[request["batch"]].batch()})
            elif "release" in request:
                contenders.pop(request["release"]).release()
                gc.collect()
                send({"ok": True})
            else:
                send({"error": f"unknown request {request!r}"})
        except Exception as exc:
            send({"error": f"{type(exc).__name__}: {exc}"})
    for contender in contenders.values():
        contender.release()
    return 0
