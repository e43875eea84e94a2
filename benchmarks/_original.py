"""The "pytheus 0.6.1" column: the original pytheus, timed in a virtualenv of its own.

It has our import name, so it cannot be imported next to ours. :func:`ensure_venv`
creates ``benchmarks/.peers/pytheus-0.6.1`` once (gitignored) and installs it there;
:class:`OriginalPytheus` runs ``original_worker.py`` with that venv's Python (see
``_worker.py``) and asks it for one batch at a time, so that its batches take turns with
ours and prometheus_client's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _harness import Contender, Row, Settings
from _worker import Worker, WorkerError

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
        try:
            self._worker = Worker([str(python), str(WORKER)], env, "--with-original")
        except WorkerError as exc:
            raise OriginalUnavailableError(str(exc)) from exc
        hello = self._worker.hello
        if hello.get("version") != ORIGINAL_VERSION:
            self.close()
            raise OriginalUnavailableError(
                f"--with-original: the worker runs pytheus {hello.get('version')!r} from "
                f"{hello.get('module')!r}, not {ORIGINAL_VERSION}; delete {PEER_DIR} to "
                "have it created again."
            )
        self.version: str = hello["version"]
        self.keys: frozenset[str] = frozenset(hello["keys"])

    def prepare(self, row: Row, settings: Settings) -> Contender | None:
        if row.key not in self.keys:
            return None
        return self._worker.contender(row.key, row.params, settings.batch_seconds)

    def close(self) -> None:
        self._worker.close()
