"""`benchmarks/run.py --quick` runs every row of a section and prints a ratio for each.

Only that the benchmarks work is checked here. Whether our figures meet ANCHORS.md's
targets is for `make bench` to say: speed goals never live in unit tests, where a busy
machine would make them fail for no fault of the code.
"""

from __future__ import annotations

import json
import math
import re
import statistics
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


# The rows of ANCHORS.md's Django table (and an informational one), each after its
# reference line: the same operation on bare Django, which the ratio's added times are over.
DJANGO_ROWS = {
    "middleware overhead, per request": (
        "per request, bare Django (trivial view, WSGI handler)",
        0.3,
    ),
    "per `SELECT 1` query (its database ENGINE wrapper)": (
        "per `SELECT 1` query, bare Django",
        0.2,
    ),
    "per `SELECT 1` query on one open cursor": (
        "per `SELECT 1` query on one open cursor, bare Django",
        None,
    ),
    # Ours with PYTHEUS["COMPAT"] = "django_prometheus": both metric sets recorded.
    "middleware overhead, per request, compat mode": (
        "per request, bare Django (trivial view, WSGI handler)",
        0.5,
    ),
    "per `SELECT 1` query, compat mode": (
        "per `SELECT 1` query, bare Django",
        0.3,
    ),
}
# "94.9 us (+49.3 us)": the figure, then the time it adds to bare Django.
_ADDED_CELL = re.compile(r"[\d,.]+ us \([+-][\d,.]+ us\)")


def test_quick_django_section(tmp_path: Path) -> None:
    lines, data = _run_quick("django", tmp_path / "bench.json")
    header = next(_cells(line) for line in lines if line.startswith("| operation "))
    assert header[1:3] == ["django-prometheus", "django_pytheus (ours)"]
    table = [_cells(line) for line in lines if line.startswith("| ")]
    labels = [cells[0] for cells in table[1:]]
    expected_lines = [label for row, (ref, _) in DJANGO_ROWS.items() for label in (ref, row)]
    assert labels == expected_lines
    for reference, row in zip(table[1::2], table[2::2], strict=True):
        # The reference line: one figure, the same in both columns, no ratio of its own.
        assert reference[1] == reference[2], reference
        assert reference[3:6] == ["-", "-", "info"], reference
        assert _ADDED_CELL.fullmatch(row[1]), row
        assert _ADDED_CELL.fullmatch(row[2]), row
        assert re.fullmatch(r"-?\d+\.(\d\d|\d{4})x", row[3]), row
        target = DJANGO_ROWS[row[0]][1]
        assert row[4] == ("-" if target is None else f"added <= {target:g}x"), row
        assert row[5] in (("info",) if target is None else ("PASS", "FAIL")), row

    (section,) = data["sections"]
    assert section["key"] == "django"
    assert [row["label"] for row in section["rows"]] == list(DJANGO_ROWS)
    for row in section["rows"]:
        reference = row["reference"]
        assert reference["label"] == DJANGO_ROWS[row["label"]][0]
        bare = reference["per_round"]
        theirs, ours = row["per_round"]["theirs"], row["per_round"]["ours"]
        assert row["rounds"] == len(bare) == len(theirs) == len(ours) > 3, row
        for figure in (*bare, *theirs, *ours):
            assert math.isfinite(figure), row
            assert figure > 0, row
        # The ratio is of the times added to bare Django, round by round.
        ratios = [
            (o - b) / (t - b) if t > b else math.inf
            for o, t, b in zip(ours, theirs, bare, strict=True)
        ]
        assert row["ratio"] == pytest.approx(statistics.median(ratios)), row
        assert reference["added_theirs"] == pytest.approx(
            statistics.median(t - b for t, b in zip(theirs, bare, strict=True))
        ), row
        if row["target"] is None:
            assert row["passed"] is None, row
        else:
            assert row["passed"] == (row["ratio"] <= row["target"]), row


# The model's constants that `run.py --section scale` measures (docs/scaling.md): CPU
# times (INFO cpu, the flusher's thread), bytes and averages, positive however loaded
# the machine is.
SCALE_FIGURES = [
    "redis_cpu_per_flush_us",
    "redis_cpu_per_series_us",
    "idle_flush_redis_cpu_us",
    "idle_flush_script_us",
    "flusher_cpu_per_flush_us",
    "flusher_cpu_per_series_us",
    "flusher_cpu_idle_flush_us",
    "memory_bytes_per_process",
    "memory_bytes_per_process_with_connection",
    "scrape_wall_per_series_us",
    "scrape_cpu_per_series_us",
    "scrape_redis_cpu_per_series_us",
    "floor_script_call_us",
    "floor_ping_us",
]
# Lines fitted to the scripts' time in Redis, a wall-clock time that grows whenever Redis
# waits for a core: on a busy machine a quick run's line can slope either way.
SCALE_WALL_FITS = ["script_per_flush_us", "script_per_series_us"]
SCALE_TYPES = ["counter", "histogram", "gauge", "summary"]


@pytest.mark.redis
def test_quick_scale_section(tmp_path: Path) -> None:
    require_program("redis-server")
    lines, data = _run_quick("scale", tmp_path / "bench.json")
    (section,) = data["sections"]
    assert section["key"] == "scale"
    figures = section["figures"]
    for key in SCALE_FIGURES:
        assert math.isfinite(figures[key]), (key, figures[key])
        assert figures[key] > 0, (key, figures[key])
    for key in SCALE_WALL_FITS:
        assert math.isfinite(figures[key]), (key, figures[key])
    assert list(figures["memory_bytes_per_series"]) == SCALE_TYPES
    assert all(size > 0 for size in figures["memory_bytes_per_series"].values()), figures
    # A type's own cost is the difference of two measured figures: finite, not always > 0.
    for key in ("redis_cpu_per_series_by_type_us", "script_per_series_by_type_us"):
        assert list(figures[key]) == SCALE_TYPES
        assert all(math.isfinite(v) for v in figures[key].values()), figures[key]
    # An idle flush's script calls, each sent again: at least the heartbeat, by name.
    assert figures["replayed_call_us"], figures
    for name, cpu in figures["replayed_call_us"].items():
        assert not name.startswith("script "), name
        assert cpu > 0, figures["replayed_call_us"]
    assert [e["changed"] for e in figures["examples"]] == [100, 200]
    assert all(e["redis_core_percent"] > 0 for e in figures["examples"])

    # Every point counted its flushes, none failed, and the scripts were seen by SHA.
    changed = [p["changed"] for p in section["points"]]
    assert changed[0] == 0
    assert len(changed) >= 3
    assert changed == sorted(changed)
    assert [p["kind"] for p in section["types"]] == SCALE_TYPES
    for point in section["points"] + section["types"]:
        assert point["flushes"] > 0, point
        assert point["failed"] == 0, point
        assert point["script_calls"] >= 1, point
        # Named after the backend's scripts (an unknown SHA would read "script 1a2b3c4d").
        assert point["scripts"], point
        for name, script in point["scripts"].items():
            assert not name.startswith("script "), point["scripts"]
            assert script["calls_per_flush"] > 0, point
            assert script["usec_per_call"] > 0, point
    assert section["idle"]["flushes"] > 0
    assert section["scrape"]["series"] >= 4 * section["sizes"]["series_per_type"]

    # The table, then the figures as JSON on stdout too.
    assert "## Capacity of one Redis (scale)" in lines
    assert any(line.startswith("| Redis CPU per flush (fit, INFO cpu)") for line in lines)
    printed = json.loads(next(line for line in lines if line.startswith('{"redis_cpu')))
    assert printed == figures


@pytest.mark.redis
def test_replication_wait_runs(tmp_path: Path) -> None:
    """benchmarks/replication_wait.py: a primary and its replica, a flush with and without
    WAIT, and the figures for both (their size is for the benchmark to say)."""
    require_program("redis-server")
    report = tmp_path / "wait.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "replication_wait.py"),
            "--rounds",
            "5",
            "--series",
            "10",
            "--repeats",
            "1",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WAIT adds" in proc.stdout
    rows = json.loads(report.read_text())
    assert [(r["series"], r["wait_replicas"]) for r in rows] == [(10, 0), (10, 1)]
    assert all(r["median_ms"] > 0 and r["p99_ms"] >= r["median_ms"] for r in rows)
