"""Times the original pytheus 0.6.1 for ``run.py --with-original``; runs in its own venv.

The original has our import name, so it cannot share our process: ``_original.py`` starts
this script with the Python of ``benchmarks/.peers/pytheus-0.6.1`` and drives it over
JSON lines, one batch at a time, so that its batches interleave with ours in each round.

On start it writes ``{"version", "module", "keys"}`` (the rows it supports); then it
answers each request on stdin with one line on stdout:

* ``{"prepare": key, "params": {...}, "seconds": s}`` -> ``{"ok": true}`` (builds and
  calibrates the case of ``pytheus_cases.CASES[key]``);
* ``{"batch": key}`` -> ``{"seconds": per-operation seconds of one batch}``;
* ``{"release": key}`` -> ``{"ok": true}``.

Any failure is answered with ``{"error": "..."}``. End of input ends the worker.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _harness import LocalContender
from pytheus_cases import CASES

import pytheus
from pytheus.backends.base import SingleProcessBackend, load_backend

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    # The protocol owns the real stdout; a stray print() (ours or the library's) goes to
    # stderr instead of corrupting it.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    module = Path(pytheus.__file__).resolve()
    if module.parent == REPO / "pytheus":
        send({"error": f"imported our pytheus ({module}), not the original"})
        return 1
    load_backend(SingleProcessBackend)
    send({"version": version("pytheus"), "module": str(module), "keys": sorted(CASES)})

    contenders: dict[str, LocalContender] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "prepare" in request:
                key = request["prepare"]
                case = CASES[key](request["params"])
                contenders[key] = LocalContender(case, request["seconds"])
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
