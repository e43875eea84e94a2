"""Times the original pytheus 0.6.1 for ``run.py --with-original``; runs in its own venv.

The original has our import name, so it cannot share our process: ``_original.py`` starts
this script with the Python of ``benchmarks/.peers/pytheus-0.6.1`` and drives it over
JSON lines, one batch at a time, so that its batches interleave with ours in each round.

Its hello is ``{"version", "module", "keys"}`` (the rows it supports, those of
``pytheus_cases.CASES``); the protocol is ``_worker.py``'s.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

from _worker import serve
from pytheus_cases import CASES

import pytheus
from pytheus.backends.base import SingleProcessBackend, load_backend

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    module = Path(pytheus.__file__).resolve()
    if module.parent == REPO / "pytheus":
        print(json.dumps({"error": f"imported our pytheus ({module}), not the original"}))
        return 1
    load_backend(SingleProcessBackend)
    hello = {"version": version("pytheus"), "module": str(module), "keys": sorted(CASES)}
    return serve(hello, lambda key, params, seconds: CASES[key](params))


if __name__ == "__main__":
    sys.exit(main())
