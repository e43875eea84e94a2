"""Forked processes for the "Many processes" section: worker processes and forked sides.

* :func:`run_children` forks short-lived children (writers, workers that come and go),
  a few at a time, each running a function and exiting with ``os._exit``, as a
  pre-forking server's workers do. The parent has imported and defined everything, so
  a child costs a fork, not an interpreter start.
* :class:`ForkedContender` builds a row's side in a forked child and times it there,
  batch by batch on request: a process of its own per side (its own backend, its own
  key prefix), still interleaved with the other sides in the same rounds.
* :class:`FirstInProcess` times one call in a newly forked process per batch: the first
  scrape of a fresh process, before any cache of its own is warm.

Linux (``os.fork``) and the standard library only.
"""

from __future__ import annotations

import gc
import json
import os
import select
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO

from _harness import Case, Contender, LocalContender

__all__ = [
    "ChildError",
    "FirstInProcess",
    "ForkedContender",
    "fork_child",
    "run_children",
    "wait_child",
]


class ChildError(RuntimeError):
    """A forked child failed; the message says how (its traceback is on stderr)."""


def fork_child(body: Callable[[], int]) -> int:
    """Fork; the child runs ``body`` and exits with its code (1 on an exception)."""
    # Buffered output would otherwise be written twice, by the parent and the child.
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit is all the parent sees
        code = 1
        try:
            code = body()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            # Not sys.exit: no atexit handlers, no flushing of buffers the parent owns.
            os._exit(code)
    return pid


def wait_child(pid: int, what: str) -> None:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise ChildError(f"{what} (pid {pid}) exited with code {code}; its traceback is above.")


def run_children(
    count: int,
    body: Callable[[int], None],
    *,
    concurrency: int = 2,
    on_exit: Callable[[int], None] | None = None,
) -> None:
    """Fork ``count`` children, at most ``concurrency`` at a time; child ``i`` runs ``body(i)``.

    ``on_exit(pid)`` runs in the parent after each child has exited (and been reaped),
    as a pre-forking server's master does. A child that fails fails the call.
    """

    def child(i: int) -> Callable[[], int]:
        def run() -> int:
            body(i)
            return 0

        return run

    running: list[int] = []
    started = 0
    while started < count or running:
        while started < count and len(running) < concurrency:
            running.append(fork_child(child(started)))
            started += 1
        pid = running.pop(0)
        wait_child(pid, "a forked child")
        if on_exit is not None:
            on_exit(pid)


class ForkedContender:
    """A side built by ``build()`` in a forked child of this process, and timed there.

    The child calibrates the case like :class:`~_harness.LocalContender`, then answers
    one line per request. It quits when asked, or when this process is gone.
    """

    def __init__(self, build: Callable[[], Case | Contender], seconds: float, what: str) -> None:
        self.what = what
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        parent = os.getpid()

        def child() -> int:
            os.close(request_w)
            os.close(reply_r)
            return _serve(build, seconds, request_r, reply_w, parent)

        self._pid = fork_child(child)
        os.close(request_r)
        os.close(reply_w)
        self._requests: IO[str] | None = os.fdopen(request_w, "w", buffering=1)
        self._replies: IO[str] | None = os.fdopen(reply_r, "r")
        try:
            self._ask(None)
        except BaseException:
            self.release()
            raise

    def _ask(self, request: str | None) -> dict[str, float]:
        if self._requests is None or self._replies is None:
            raise ChildError(f"{self.what}: already released")
        if request is not None:
            self._requests.write(request + "\n")
        line = self._replies.readline()
        if not line:
            raise ChildError(f"{self.what}: the forked process ended without an answer.")
        reply: dict[str, float | str] = json.loads(line)
        if "error" in reply:
            raise ChildError(f"{self.what}: {reply['error']}")
        return {k: float(v) for k, v in reply.items()}

    def batch(self) -> float:
        return self._ask("batch")["seconds"]

    def release(self) -> None:
        if self._requests is None or self._replies is None:
            return
        # An explicit quit: other forked processes hold copies of this pipe, so closing
        # our end would not be seen as the end of input.
        try:
            self._requests.write("quit\n")
            self._requests.close()
        except BrokenPipeError:
            pass  # it is gone already; its exit code says why
        self._replies.close()
        self._requests = self._replies = None
        wait_child(self._pid, self.what)


def _serve(
    build: Callable[[], Case | Contender], seconds: float, request_r: int, reply_w: int, parent: int
) -> int:
    replies = os.fdopen(reply_w, "w", buffering=1)
    try:
        made = build()
        contender = LocalContender(made, seconds) if isinstance(made, Case) else made
    except Exception as exc:
        traceback.print_exc()
        replies.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    replies.write('{"ready": 1}\n')
    pending = b""
    while True:
        # Wake up now and then to notice an orphaning (the runner killed or crashed).
        readable, _, _ = select.select([request_r], [], [], 1.0)
        if not readable:
            if os.getppid() != parent:
                return 1
            continue
        chunk = os.read(request_r, 4096)
        if not chunk:
            return 0
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line == b"quit":
                contender.release()
                return 0
            replies.write(json.dumps({"seconds": contender.batch()}) + "\n")


class FirstInProcess:
    """Each batch is one call of ``produce`` in a process forked for it, then ``cleanup``.

    The figure is that call alone, timed in the child with the garbage collector off
    (as in every batch): what the first scrape of a fresh process costs, whatever this
    process would have cached. This process must not have warmed anything itself.
    """

    def __init__(
        self, produce: Callable[[], object], cleanup: Callable[[], object] | None = None
    ) -> None:
        self._produce = produce
        self._cleanup = cleanup

    def batch(self) -> float:
        read_end, write_end = os.pipe()

        def child() -> int:
            os.close(read_end)
            gc.disable()
            start = time.perf_counter()
            self._produce()
            elapsed = time.perf_counter() - start
            os.write(write_end, repr(elapsed).encode())
            if self._cleanup is not None:
                self._cleanup()
            return 0

        pid = fork_child(child)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reply:
            data = reply.read()
        wait_child(pid, "a process forked for its first scrape")
        return float(data)

    def release(self) -> None:
        pass
