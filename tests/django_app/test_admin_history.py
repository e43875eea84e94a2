# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""Readings kept for rates over a window (django_pytheus.history): increases, resets as
PromQL's rate() treats them, series that appear, thinning and the memory bound; and
windowed quantiles from bucket differences, checked against PromQL itself."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from array import array
from pathlib import Path

import pytest

from django_pytheus.dashboard import build_family, quantile_estimate
from django_pytheus.history import MAX_AGE, History, Reading, Window
from pytheus.metrics import Counter, Histogram
from pytheus.registry import CollectorRegistry

INF = math.inf


def counter_reading(t: float, **values: float) -> Reading:
    return Reading.of(t, [(k, [v]) for k, v in values.items()], width=1, total_index=0)


def test_rate_is_the_increase_over_the_time_between_readings() -> None:
    history = History()
    first = history.observe("c", counter_reading(100.0, a=10, b=0), 60)
    assert first.span == 0
    assert first.rate("a") is None  # no earlier reading: no rate, not a made-up one
    window = history.observe("c", counter_reading(110.0, a=30, b=5), 60)
    assert window.span == 10
    assert window.rate("a") == 2.0
    assert window.rate("b") == 0.5
    assert window.increase("a") == [20.0]
    assert window.rate("gone") is None


def test_a_reset_counts_the_new_value_whole_as_promql_does() -> None:
    # 100 -> 120 -> (restart) 5 -> 20: 20 before the restart, then 20 from zero.
    history = History()
    for t, v in ((0.0, 100), (10.0, 120), (20.0, 5)):
        history.observe("c", counter_reading(t, a=v), 60)
    window = history.observe("c", counter_reading(30.0, a=20), 60)
    assert window.increase("a") == [40.0]
    assert window.rate("a") == pytest.approx(40 / 30)
    # A reset hidden by the value growing past the old one is still seen: 100 -> 5 -> 150.
    history = History()
    history.observe("c", counter_reading(0.0, a=100), 60)
    history.observe("c", counter_reading(10.0, a=5), 60)
    assert history.observe("c", counter_reading(20.0, a=150), 60).increase("a") == [150.0]


def test_a_reset_between_readings_thinned_out_is_remembered() -> None:
    # 100 -> (restart) 5 -> 150 -> 160 -> 170: 170 in all since the first reading.
    history = History()
    for t, v in ((0.0, 100), (2.0, 5), (4.0, 150)):
        history.observe("c", counter_reading(t, a=v), 600)
    assert history.observe("c", counter_reading(200.0, a=160), 600).increase("a") == [160.0]
    # Thinning has dropped the readings of the restart by now; its trace is kept.
    assert [r.time for r in history._readings["c"]] == [0.0, 200.0]
    assert history.observe("c", counter_reading(210.0, a=170), 600).increase("a") == [170.0]


def test_a_series_that_appears_counts_from_zero() -> None:
    history = History()
    history.observe("c", counter_reading(0.0, a=1), 60)
    window = history.observe("c", counter_reading(5.0, a=1, new=7), 60)
    assert window.increase("new") == [7.0]
    assert window.rate("new") == pytest.approx(1.4)


def test_the_window_starts_at_the_oldest_reading_inside_it() -> None:
    history = History()
    for t in range(0, 200, 10):
        history.observe("c", counter_reading(float(t), a=float(t)), 60)
    window = history.observe("c", counter_reading(200.0, a=200.0), 60)
    assert 50 <= window.span <= 60
    assert window.rate("a") == pytest.approx(1.0)
    # Nothing inside a short window: the last reading before it, and the span says so.
    history.observe("c", counter_reading(1000.0, a=1000.0), 60)
    late = history.observe("c", counter_reading(1100.0, a=1100.0), 60)
    assert late.span == 100


def test_readings_thin_out_as_they_age_and_expire() -> None:
    history = History()
    for t in range(2000):  # a poll every second for half an hour
        history.observe("c", counter_reading(float(t), a=float(t)), 60)
    readings = history._readings["c"]
    assert len(readings) < 60
    assert readings[-1].time == 1999
    assert 1999 - readings[0].time <= MAX_AGE
    # Recent readings are dense, old ones sparse: a gap is about a sixth of its age
    # (at most twice that, as readings between are dropped), so a window always finds
    # a first reading close to its start.
    for older, newer in itertools.pairwise(readings):
        assert newer.time - older.time <= max(2.0, (1999 - older.time) / 3)


def test_memory_is_bounded_oldest_first_never_the_newest() -> None:
    history = History(max_values=1000)
    big = [(str(i), [float(i)]) for i in range(400)]
    for t in range(10):
        reading = Reading.of(t * 100.0, big, width=1, total_index=0)
        history.observe("big", reading, 900)
        history.observe("small", counter_reading(t * 100.0, a=t), 900)
    assert history._values <= 1000
    assert history._readings["big"][-1].time == 900.0
    assert len(history._readings["small"]) > 1


def test_new_buckets_start_a_new_history() -> None:
    history = History()
    history.observe(
        "h", Reading.of(0.0, [("", [1, 2, 3])], width=3, total_index=1, layout=(1,)), 60
    )
    other = Reading.of(5.0, [("", [1, 1, 2, 3])], width=4, total_index=2, layout=(1, 2))
    assert history.observe("h", other, 60).span == 0


# --------------------------------------------------------------------------- families


def test_family_windowed_quantiles_come_from_bucket_differences() -> None:
    registry = CollectorRegistry()
    h = Histogram("t_seconds", "T.", ["view"], buckets=[0.1, 0.5, 1], registry=registry)
    series = h.labels(view="/a")
    for _ in range(1000):
        series.observe(0.05)  # a long history of fast requests
    history = History()
    family = build_family(h.local_series())
    family.observe(history, 60, now=0.0)
    for _ in range(10):
        series.observe(0.7)  # then an incident: ten slow ones
    family = build_family(h.local_series())
    family.observe(history, 60, now=10.0)
    (s,) = family.series
    stats = family.stats(s)
    assert stats.windowed
    assert stats.rate == 1.0
    assert stats.quantile(0.5) == quantile_estimate(0.5, [(0.1, 0), (0.5, 0), (1, 10), (INF, 10)])
    assert (stats.quantile(0.99).lower, stats.quantile(0.99).upper) == (0.5, 1.0)
    assert stats.mean == pytest.approx(0.7)
    assert stats.bars == [0.0, 0.0, 10.0, 0.0]
    # Since start, the incident is invisible: the p99 is in the fastest bucket.
    total = quantile_estimate(0.99, [(0.1, 1000), (0.5, 1000), (1, 1010), (INF, 1010)])
    assert total.upper == 0.1
    rows = family.rows()
    cells = {c.id: c for c in rows[0].cells}
    assert cells["p99"].text == "500 ms–1 s"
    assert cells["p99"].estimate
    assert "histogram_quantile() interpolates 0.995 s" in cells["p99"].title
    assert cells["rate"].text == "1/s"
    assert cells["total"].text == "1,010"


def test_counter_family_rates_and_worst_first_order() -> None:
    registry = CollectorRegistry()
    c = Counter("jobs", "Jobs.", ["queue"], registry=registry)
    for queue, n in (("a", 1000), ("b", 10), ("c", 500)):
        c.labels(queue=queue).inc(n)
    history = History()
    build_family(c.local_series()).observe(history, 60, now=0.0)
    c.labels(queue="b").inc(50)  # b is the busy one now, though a has the most in all
    c.labels(queue="c").inc(5)
    family = build_family(c.local_series())
    family.observe(history, 60, now=5.0)
    assert family.default_sort == "-rate"
    order = [s.labels[0] for s in family.sorted(family.series)]
    assert order == ["b", "c", "a"]
    assert [s.labels[0] for s in family.sorted(family.series, "-total")] == ["a", "c", "b"]
    assert [s.labels[0] for s in family.sorted(family.series, "label-queue")] == ["a", "b", "c"]
    assert [s.labels[0] for s in family.sorted(family.series, "-label-queue")] == ["c", "b", "a"]
    # An unknown sort falls back to the default rather than failing.
    assert [s.labels[0] for s in family.sorted(family.series, "-bogus")] == order
    cells = {c.id: c.text for c in family.rows(family.sorted(family.series))[0].cells}
    assert cells == {"rate": "10/s", "total": "60"}


def test_the_worst_few_are_the_first_few_of_the_whole_order() -> None:
    """The dashboard asks for the worst ``limit`` series only: they must be the first of
    the full order, whichever series are busy over the window, idle or never observed."""
    registry = CollectorRegistry()
    h = Histogram("waits", "Waits.", ["queue"], buckets=[0.1, 1.0, 10.0], registry=registry)
    for i in range(40):
        if i % 7:  # every seventh never observed: no quantile at all
            h.labels(queue=f"q{i:02}").observe((i % 5) * 0.3)
        else:
            h.labels(queue=f"q{i:02}")
    history = History()
    build_family(h.local_series()).observe(history, 60, now=0.0)
    for i in (3, 11, 12, 30):  # busy now, with ties between them
        h.labels(queue=f"q{i:02}").observe(2.0 if i < 20 else 0.05)
    family = build_family(h.local_series())
    family.observe(history, 60, now=5.0)
    for sort in ("-p99", "p99", "-rate", "rate", "-total", "-mean", "label-queue"):
        whole = family.sorted(family.series, sort)
        assert len(whole) == 40
        for limit in (1, 3, 4, 5, 10, 40, 50):
            top = family.sorted(family.series, sort, limit=limit)
            assert [s.key for s in top] == [s.key for s in whole[:limit]], (sort, limit)
    # The busy ones first (equal p99s: by total, then by label), the idle ones after.
    top = family.sorted(family.series, "-p99", limit=5)
    assert [s.labels[0] for s in top[:4]] == ["q03", "q11", "q12", "q30"]
    assert top[4].labels[0] not in ("q03", "q11", "q12", "q30")


def test_quantiles_since_start_follow_the_counts() -> None:
    """Idle series are ordered by their quantile since start, kept between orderings
    while their counts stay the same: a series that changes must move."""
    registry = CollectorRegistry()
    h = Histogram("sizes", "Sizes.", ["kind"], buckets=[1.0, 10.0, 100.0], registry=registry)
    h.labels(kind="a").observe(5)
    h.labels(kind="b").observe(50)
    first = build_family(h.local_series())
    assert [s.labels[0] for s in first.sorted(first.series, "-p99")] == ["b", "a"]
    for _ in range(10):
        h.labels(kind="a").observe(500)  # a's p99 is now in the top bucket
    second = build_family(h.local_series())
    assert [s.labels[0] for s in second.sorted(second.series, "-p99")] == ["a", "b"]
    assert [s.labels[0] for s in second.sorted(second.series, "p99")] == ["b", "a"]


def test_readings_from_arrays_are_the_readings_of_vectors() -> None:
    vectors = [("a", [1.0, 3.0, 0.5]), ("b", [0.0, 2.0, 0.25])]
    of = Reading.of(1.0, vectors, width=3, total_index=1)
    data = array("d", [v for _, vector in vectors for v in vector])
    arrays = Reading.of_arrays(1.0, ["a", "b"], data, data[1::3], width=3, total_index=1)
    assert arrays.keys == of.keys
    assert arrays.data == of.data
    assert arrays.totals == of.totals
    again = Reading.of_arrays(2.0, ["a", "b"], data, data[1::3], width=3, total_index=1,
                              previous=arrays)  # fmt: skip
    assert again.keys is arrays.keys  # shared: the window then subtracts in bulk


def _le(bound: float) -> str:
    return "+Inf" if bound == INF else repr(float(bound))


def test_windowed_quantiles_and_rates_agree_with_promql(promtool: str, tmp_path: Path) -> None:
    """Readings a minute apart, a restart among them; PromQL evaluates the same samples
    (``promtool test rules``) with ``rate()`` and ``histogram_quantile(q, rate())``.

    The samples lie on the window's edges, so PromQL extrapolates nothing and its
    increase is ours; rate() treats each bucket as a counter, and all of them restart
    together here, as they do when a process restarts."""
    bounds = [0.1, 0.5, 1.0, INF]
    # Cumulative bucket counts (and the counter's value) at 0, 1, ..., 5 minutes.
    buckets = [
        [10, 12, 12, 12],
        [20, 30, 31, 31],
        [25, 40, 45, 46],
        [2, 3, 3, 4],  # restarted
        [5, 9, 14, 20],
        [6, 15, 30, 41],
    ]
    history = History()
    window: Window | None = None
    for minute, counts in enumerate(buckets):
        reading = Reading.of(
            minute * 60.0, [("", [*counts, 0.0])], width=5, total_index=3, layout=tuple(bounds)
        )
        window = history.observe("h", reading, 300)
    assert window is not None
    assert window.span == 300
    increase = window.increase("")
    assert increase is not None
    series = [
        {
            "series": f'h_bucket{{le="{_le(b)}"}}',
            "values": " ".join(str(counts[i]) for counts in buckets),
        }
        for i, b in enumerate(bounds)
    ]
    tests = [
        {
            "expr": 'rate(h_bucket{le="+Inf"}[5m])',
            "eval_time": "5m",
            "exp_samples": [{"labels": '{le="+Inf"}', "value": increase[3] / 300}],
        }
    ]
    for q in (0.5, 0.9, 0.99):
        ours = quantile_estimate(q, list(zip(bounds, increase[:4], strict=True))).value
        tests.append(
            {
                "expr": f"histogram_quantile({q}, rate(h_bucket[5m]))",
                "eval_time": "5m",
                "exp_samples": [{"labels": "{}", "value": ours}],
            }
        )
    spec = {"tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    path = tmp_path / "window.yml"
    path.write_text(json.dumps(spec))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # And the arithmetic by hand for the +Inf bucket: 19 + 15 before the restart, then
    # 4 (from zero) + 16 + 21.
    assert increase[3] == 31 - 12 + 46 - 31 + 4 + 20 - 4 + 41 - 20
