"""`benchmarks/run.py --quick` runs every row of a section and prints a ratio for each.

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
from typing import Any

import pytest

from tests.servers import require_program

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

# The rows of ANCHORS.md's "Many processes" table, at the sizes of --quick; the last
# one is measured against a baseline, which the table prints on a line of its own.
MULTIPROCESS_ROWS = [
    "`Counter.inc()`",
    "`Histogram.observe(0.3)`",
    "scrape of 1,000 series written by 4 processes",
    "scrape of 1,000 series written by 4 processes, first scrape of a fresh process",
    "scrape after 64 worker processes have come and gone",
]
MULTIPROCESS_BASELINE = "scrape after 1 worker process has come and gone"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _run_quick(section: str, report: Path) -> tuple[list[str], dict[str, Any]]:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--quick",
            "--section",
            section,
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
    data: dict[str, Any] = json.loads(report.read_text())
    return proc.stdout.splitlines(), data


def _check_table(lines: list[str], expected: list[str], theirs: str) -> None:
    header = next(_cells(line) for line in lines if line.startswith("| operation "))
    assert header[1] == theirs
    ratio_column = header.index("ratio (ours/theirs)")
    rows = {cells[0]: cells for cells in map(_cells, lines) if cells and cells[0] in expected}
    assert sorted(rows) == sorted(expected)
    for label, cells in rows.items():
        assert re.fullmatch(r"\d+\.(\d\d|\d{4})x", cells[ratio_column]), (label, cells)
        assert cells[ratio_column + 2] in ("PASS", "FAIL", "info"), (label, cells)


def _check_json_rows(rows: list[dict[str, Any]], expected: list[str]) -> None:
    assert [row["label"] for row in rows] == expected
    for row in rows:
        assert math.isfinite(row["ratio"]), row
        assert row["ratio"] > 0, row
        assert row["rounds"] == len(row["per_round"]["ours"]) == len(row["per_round"]["theirs"])


def test_quick_run_prints_every_row_with_a_ratio(tmp_path: Path) -> None:
    lines, data = _run_quick("inprocess", tmp_path / "bench.json")
    _check_table(lines, EXPECTED_ROWS, "prometheus_client")
    (section,) = data["sections"]
    assert section["key"] == "inprocess"
    _check_json_rows(section["rows"], EXPECTED_ROWS)


@pytest.mark.slow
@pytest.mark.redis
def test_quick_many_processes_section(tmp_path: Path) -> None:
    # Fails, rather than skips, without redis-server: the section is part of the benchmarks.
    require_program("redis-server")
    lines, data = _run_quick("multiprocess", tmp_path / "bench.json")
    _check_table(lines, [*MULTIPROCESS_ROWS, MULTIPROCESS_BASELINE], "prometheus_client mmap")
    (section,) = data["sections"]
    assert section["key"] == "multiprocess"
    _check_json_rows(section["rows"], MULTIPROCESS_ROWS)
    plain, restarts = section["rows"][:-1], section["rows"][-1]
    for row in plain:
        assert row["baseline"] is None, row
        assert (row["passed"] is None) == (row["target"] is None), row
    baseline = restarts["baseline"]
    assert baseline["label"] == MULTIPROCESS_BASELINE
    assert len(baseline["per_round"]["ours"]) == restarts["rounds"]
    for growth in (baseline["growth_ours"], baseline["growth_theirs"]):
        assert math.isfinite(growth), baseline
        assert growth > 0, baseline
    # The verdict of this row is on our growth against the baseline, not on the ratio.
    assert restarts["passed"] == (baseline["growth_ours"] <= restarts["target"])
