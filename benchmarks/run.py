"""Benchmarks against the peers: one table per section, with ratios and ANCHORS.md's targets.

    .venv/bin/python benchmarks/run.py                    # every section (make bench)
    .venv/bin/python benchmarks/run.py --quick            # a smoke test: few rounds, small sizes
    .venv/bin/python benchmarks/run.py --section inprocess --with-original --json out.json

The sides of a row take turns, batch after batch in alternating order, so that the
ratios hold on a busy machine even when the absolute figures drift. The in-process
section runs them in this process (except ``--with-original``, see ``_original.py``);
"Many processes" (``multiprocess.py``) in processes of their own, around a redis-server
it starts; "Django" (``djangobench.py``) in a worker process per configuration of a
minimal Django project. "Capacity of one Redis" (``scale.py``) compares with no peer: it
measures what one Redis spends per flush, per changed series and per process, for
``docs/scaling.md``. Missing a target is reported, not fatal: the exit status is 0 unless the
run itself failed.

A new section is a module with a ``SECTION`` (see ``_harness.Section``) added to
``SECTIONS`` below.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import _original
import djangobench
import inprocess
import multiprocess
import scale
from _harness import External, Section, SectionResult, Settings, eprint, render_table, run_section

import pytheus

# Side-by-side tables against a peer, and scale's measurement of our own capacity.
SECTIONS: dict[str, Section | scale.ScaleSection] = {
    s.key: s for s in (inprocess.SECTION, multiprocess.SECTION, djangobench.SECTION, scale.SECTION)
}

FULL = Settings(rounds=11, batch_seconds=0.05)
QUICK = Settings(rounds=3, batch_seconds=0.002, quick=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--section",
        action="append",
        choices=sorted(SECTIONS),
        help="run only this section (repeatable); default: all",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few rounds and small sizes: a smoke test"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per row")
    parser.add_argument("--batch-seconds", type=float, help="length of one batch of one side")
    parser.add_argument(
        "--with-original",
        action="store_true",
        help="add a column for the original pytheus 0.6.1 (installed once into benchmarks/.peers/)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    return parser.parse_args(argv)


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "prometheus_client": version("prometheus_client"),
        "pytheus": version("pytheus"),
        "pytheus_path": str(Path(pytheus.__file__).parent),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    base = QUICK if args.quick else FULL
    settings = Settings(
        rounds=args.rounds or base.rounds,
        batch_seconds=args.batch_seconds or base.batch_seconds,
        quick=base.quick,
    )
    sections = [SECTIONS[k] for k in (args.section or SECTIONS)]

    externals: list[External] = []
    original: _original.OriginalPytheus | None = None
    if args.with_original:
        try:
            original = _original.OriginalPytheus(_original.ensure_venv())
        except _original.OriginalUnavailableError as exc:
            eprint(exc)
            return 2
        externals.append(original)

    env = _environment()
    load_before = os.getloadavg()
    started = time.perf_counter()
    print(
        f"Python {env['python']} ({env['implementation']}, {env['machine']}, {env['cpus']} CPUs); "
        f"prometheus_client {env['prometheus_client']}; pytheus (ours) {env['pytheus']} "
        f"from {env['pytheus_path']}"
        + (f"; pytheus {original.version} in {_original.PEER_DIR}" if original else "")
    )
    print(
        f"{settings.rounds} interleaved rounds per row, batches of ~{settings.batch_seconds:g} s "
        f"per side; figures are medians; load average {load_before[0]:.2f}\n"
    )

    results: list[SectionResult | scale.ScaleResult] = []
    try:
        for section in sections:
            if isinstance(section, Section):
                table = run_section(section, settings, externals, progress=eprint)
                text = render_table(table)
                results.append(table)
            else:
                measured = section.measure(settings, eprint)
                text = measured.render()
                results.append(measured)
            print(text, end="\n\n", flush=True)
    finally:
        if original is not None:
            original.close()

    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print(f"Took {elapsed:.0f} s; load average {load_before[0]:.2f} -> {load_after[0]:.2f}.")
    if args.json is not None:
        report = {
            "environment": env,
            "settings": {
                "rounds": settings.rounds,
                "batch_seconds": settings.batch_seconds,
                "quick": settings.quick,
            },
            "load_average": [load_before[0], load_after[0]],
            "sections": [r.as_dict() for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        eprint(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
