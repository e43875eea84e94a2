"""The "pytheus 0.6.1" column: the original pytheus, timed in a virtualenv of its own.

It has our import name, so it cannot be imported next to ours. :func:`ensure_venv`
creates ``benchmarks/.peers/pytheus-0.6.1`` once (gitignored) and installs it there;
:class:`OriginalPytheus` runs ``original_worker.py`` with that venv's Python and asks it
for one batch at a time, so that its batches take turns with ours and prometheus_client's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from _harness import Contender, Row, Settings

__all__ = ["ORIGINAL_VERSION", "OriginalPytheus", "OriginalUnavailableError", "ensure_venv"]

ORIGINAL_VERSION = "0.6.1"
HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / ".peers" / f"pytheus-{ORIGINAL_VERSION}"
WORKER = HERE / "original_worker.py"


class OriginalUnavailableError(RuntimeError):
    """The original pytheus could not be installed or started; the message says why."""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_venv(peer_dir: Path = PEER_DIR) -> Path:
    """Create the venv with ``pytheus==0.6.1`` unless done before; return its Python."""
    python = peer_dir / "bin" / "python"
    stamp = peer_dir / ".installed"
    if stamp.exists() and python.exists():
        return python
    requirement = f"pytheus=={ORIGINAL_VERSION}"
    print(f"--with-original: creating {peer_dir} with {requirement}", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(peer_dir)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OriginalUnavailableError(
                f"--with-original: `{' '.join(step)}` failed (exit {proc.returncode}):\n"
                f"{_tail(proc.stdout + proc.stderr)}\n"
                f"The original pytheus is needed in {peer_dir} for that column; fix the "
                "install (network, package index) and run again, or run without --with-original."
            )
    stamp.write_text(requirement + "\n")
    return python


class _RemoteContender:
    def __init__(self, worker: OriginalPytheus, key: str) -> None:
        self._worker = worker
        self._key = key

    def batch(self) -> float:
        seconds: float = self._worker.ask({"batch": self._key})["seconds"]
        return seconds

    def release(self) -> None:
        self._worker.ask({"release": self._key})


class OriginalPytheus:
    """An external column backed by ``original_worker.py`` in the 0.6.1 venv."""

    name = f"pytheus {ORIGINAL_VERSION}"

    def __init__(self, python: Path) -> None:
        # Without PYTHONPATH (it could lead to our package) or our backend settings.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHEUS_BACKEND_CLASS", "PYTHEUS_BACKEND_CONFIG")
        }
        self._proc = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        hello = self._read()
        if hello.get("version") != ORIGINAL_VERSION:
            self.close()
            raise OriginalUnavailableError(
                f"--with-original: the worker runs pytheus {hello.get('version')!r} from "
                f"{hello.get('module')!r}, not {ORIGINAL_VERSION}; delete {PEER_DIR} to "
                "have it created again."
            )
        self.version: str = hello["version"]
        self.keys: frozenset[str] = frozenset(hello["keys"])

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self._proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            code = self._proc.wait()
            raise OriginalUnavailableError(
                f"--with-original: the worker exited (code {code}); its stderr is above."
            )
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise OriginalUnavailableError(
                f"--with-original: the worker failed: {message['error']}"
            )
        return message

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self._read()

    def prepare(self, row: Row, settings: Settings) -> Contender | None:
        if row.key not in self.keys:
            return None
        self.ask(
            {"prepare": row.key, "params": dict(row.params), "seconds": settings.batch_seconds}
        )
        return _RemoteContender(self, row.key)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
