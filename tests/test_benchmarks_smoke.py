"""`benchmarks/run.py --quick` runs every in-process row and prints a ratio for each.

Only that the benchmarks work is checked here. Whether our figures meet ANCHORS.md's
targets is for `make bench` to say: speed goals never live in unit tests, where a busy
machine would make them fail for no fault of the code.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The rows of ANCHORS.md's in-process table, at the sizes of --quick.
EXPECTED_ROWS = [
    "`Counter.inc()`, no labels",
    "`Counter` (2 labels) `.labels(a, b).inc()`, looked up each time",
    "`Counter` (2 labels) `.labels(a=..., b=...).inc()`, keywords, looked up each time",
    "cached child `.inc()`",
    "`Gauge.set(v)`",
    "`Histogram.observe(0.3)`, default buckets",
    "`Histogram` (2 labels) `.labels(a, b).observe(0.3)`",
    "exposition, 200 counter series",
    "exposition, 200 counter series, prometheus_client without `_created`",
    "exposition, 20 histogram series",
]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_quick_run_prints_every_row_with_a_ratio(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--quick",
            "--section",
            "inprocess",
            "--json",
            str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = proc.stdout.splitlines()
    header = next(_cells(line) for line in lines if line.startswith("| operation "))
    assert header[1] == "prometheus_client"
    ratio_column = header.index("ratio (ours/theirs)")
    rows = {cells[0]: cells for cells in map(_cells, lines) if cells and cells[0] in EXPECTED_ROWS}
    assert sorted(rows) == sorted(EXPECTED_ROWS)
    for label, cells in rows.items():
        assert re.fullmatch(r"\d+\.\d\dx", cells[ratio_column]), (label, cells)
        assert cells[ratio_column + 2] in ("PASS", "FAIL", "info"), (label, cells)

    data = json.loads(report.read_text())
    (section,) = data["sections"]
    assert section["key"] == "inprocess"
    assert [row["label"] for row in section["rows"]] == EXPECTED_ROWS
    for row in section["rows"]:
        assert math.isfinite(row["ratio"]), row
        assert row["ratio"] > 0, row
        assert row["rounds"] == len(row["per_round"]["ours"]) == len(row["per_round"]["theirs"])
