# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""The dashboard's pure parts: histogram_quantile against hand-computed values and a
real PromQL engine, secrets masking, regex routes made readable, grouping samples into
series, search, filter and order, the backend's status."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from django_pytheus import formatting as fmt
from django_pytheus.dashboard import (
    MASK,
    Estimate,
    FamilyView,
    Outage,
    backend_status,
    bucket_chart,
    build_families,
    build_family,
    histogram_quantile,
    mask_secrets,
    pretty_label,
    quantile_estimate,
    select,
)
from pytheus.backends import MemoryBackend
from pytheus.definitions import MetricSeries
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import CollectorRegistry
from pytheus.samples import LabelSet, MetricFamily, Sample

INF = math.inf

# ------------------------------------------------------------------ histogram_quantile

# (q, buckets as (le, cumulative count), expected), each worked out by hand below.
HAND_COMPUTED = [
    # 8 observations: 2 in (0, 1], 4 in (1, 2], 2 above 2.
    # rank 4 falls in (1, 2], 2 of its 4 in: 1 + (2 - 1) * 2/4.
    (0.5, [(1, 2), (2, 6), (INF, 8)], 1.5),
    # rank 2: the lowest bucket, starting at 0: 0 + 1 * 2/2.
    (0.25, [(1, 2), (2, 6), (INF, 8)], 1.0),
    # rank 0.8: 0 + 1 * 0.8/2.
    (0.1, [(1, 2), (2, 6), (INF, 8)], 0.4),
    # rank 7.2 is in the +Inf bucket: the highest finite bound.
    (0.9, [(1, 2), (2, 6), (INF, 8)], 2.0),
    (1.0, [(1, 2), (2, 6), (INF, 8)], 2.0),
    # q = 1 with nothing above 2: rank 6 is the top of (1, 2]: 1 + 1 * 4/4.
    (1.0, [(1, 2), (2, 6), (INF, 6)], 2.0),
    # q = 0: rank 0, the start of the lowest bucket.
    (0.0, [(1, 2), (2, 6), (INF, 8)], 0.0),
    # Latencies: 50 under 100 ms, 40 up to 500 ms, 10 up to 1 s.
    (0.5, [(0.1, 50), (0.5, 90), (1, 100), (INF, 100)], 0.1),
    # rank 90: the top of (0.1, 0.5]: 0.1 + 0.4 * 40/40.
    (0.9, [(0.1, 50), (0.5, 90), (1, 100), (INF, 100)], 0.5),
    # rank 99: 0.5 + 0.5 * 9/10.
    (0.99, [(0.1, 50), (0.5, 90), (1, 100), (INF, 100)], 0.95),
    # Everything in the +Inf bucket: the highest finite bound, whatever q.
    (0.5, [(1, 0), (2, 0), (INF, 5)], 2.0),
    (0.01, [(1, 0), (2, 0), (INF, 5)], 2.0),
    # A lowest bound of 0 or less is the answer when the rank falls in that bucket.
    (0.25, [(-1, 2), (0, 4), (INF, 4)], -1.0),
    # Unsorted input, and a count that decreases (a torn read) raised to 4:
    # [(1, 4), (2, 4), (+Inf, 10)]; rank 3: 0 + 1 * 3/4.
    (0.3, [(INF, 10), (1, 4), (2, 3)], 0.75),
    # Two buckets with the same bound are merged: [(1, 2), (2, 4), (+Inf, 4)].
    (0.5, [(1, 1), (1, 1), (2, 4), (INF, 4)], 1.0),
]

NAN_CASES = [
    (0.5, [(1, 0), (2, 0), (INF, 0)]),  # no observations
    (0.5, []),  # no buckets
    (0.5, [(INF, 3)]),  # one bucket only
    (0.5, [(1, 2), (2, 3)]),  # no +Inf bucket
    (math.nan, [(1, 2), (INF, 3)]),  # q is NaN
    (0.0, [(1, 0), (2, 6), (INF, 6)]),  # q = 0, lowest bucket empty: 0/0 in PromQL
]


@pytest.mark.parametrize(("q", "buckets", "expected"), HAND_COMPUTED)
def test_histogram_quantile_hand_computed(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    assert histogram_quantile(q, buckets) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("q", "buckets"), NAN_CASES)
def test_histogram_quantile_nan(q: float, buckets: list[tuple[float, float]]) -> None:
    assert math.isnan(histogram_quantile(q, buckets))


def test_histogram_quantile_out_of_range() -> None:
    buckets = [(1.0, 2.0), (INF, 3.0)]
    assert histogram_quantile(-0.1, buckets) == -INF
    assert histogram_quantile(1.1, buckets) == INF


def test_histogram_quantile_does_not_change_its_input() -> None:
    buckets = [(INF, 10.0), (1.0, 4.0), (2.0, 3.0)]
    histogram_quantile(0.5, buckets)
    assert buckets == [(INF, 10.0), (1.0, 4.0), (2.0, 3.0)]


def _le(bound: float) -> str:
    return "+Inf" if bound == INF else repr(float(bound))


def test_histogram_quantile_agrees_with_promql(promtool: str, tmp_path: Path) -> None:
    """Every case above, evaluated by PromQL itself (``promtool test rules``)."""
    series, tests = [], []
    cases = [(q, b) for q, b, _ in HAND_COMPUTED] + [
        (q, b) for q, b in NAN_CASES if len(b) >= 2 and not math.isnan(q)
    ]
    for i, (q, buckets) in enumerate(cases):
        # PromQL sums buckets with the same le; the merged case is given merged.
        merged: dict[float, float] = {}
        for bound, count in buckets:
            merged[bound] = merged.get(bound, 0) + count
        for bound, count in merged.items():
            series.append({"series": f'h{i}_bucket{{le="{_le(bound)}"}}', "values": str(count)})
        ours = histogram_quantile(q, buckets)
        # A NaN result cannot be written as an expected value: "> -Inf" drops it, so
        # PromQL must return no sample where we return NaN.
        tests.append(
            {
                "expr": f"histogram_quantile({q}, h{i}_bucket) > -Inf",
                "eval_time": "0m",
                "exp_samples": [] if math.isnan(ours) else [{"labels": "{}", "value": ours}],
            }
        )
    spec = {"tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    path = tmp_path / "quantiles.yml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ secrets


def test_mask_secrets_in_urls_and_keys() -> None:
    config = {
        "url": "redis://user:secret@host/0",
        "password": "hunter2",
        "prefix": "pytheus",
        "socket_timeout": 2.5,
        "nested": {"api_key": "k", "token": "t", "db": 0},
        "urls": ["rediss://:s3cr%40t@cache:6380/1", "redis://host/0"],
        "client": object(),
    }
    masked = mask_secrets(config)
    assert masked == {
        "url": f"redis://user:{MASK}@host/0",
        "password": MASK,
        "prefix": "pytheus",
        "socket_timeout": 2.5,
        "nested": {"api_key": MASK, "token": MASK, "db": 0},
        "urls": [f"rediss://:{MASK}@cache:6380/1", "redis://host/0"],
        "client": "<builtins.object>",
    }
    text = repr(masked)
    for secret in ("secret", "hunter2", "s3cr"):
        assert secret not in text
    assert config["password"] == "hunter2"  # the original is left alone


def test_mask_secrets_user_only_and_query_passwords() -> None:
    assert mask_secrets("https://token@example.invalid/x") == f"https://{MASK}@example.invalid/x"
    assert (
        mask_secrets("redis://host/0?password=hunter2&db=1")
        == f"redis://host/0?password={MASK}&db=1"
    )
    assert mask_secrets({"password": None}) == {"password": None}  # nothing to hide
    assert mask_secrets("not a url: secret") == "not a url: secret"


def test_backend_status_masks_the_configuration() -> None:
    status = backend_status(
        MemoryBackend(),
        {"url": "redis://user:secret@host/0", "password": "secret", "prefix": "p"},
    )
    assert status["backend"] == "MemoryBackend"
    assert status["shared"] is False
    assert "secret" not in json.dumps(status)
    # Keys and values, not a repr; the server's address is not repeated among them.
    assert status["config"] == [("password", MASK), ("prefix", "p")]


class FakeRedisStatus:
    """Only status(), as the Redis backend reports it."""

    def __init__(self, **fields: object) -> None:
        self.fields = fields

    def status(self) -> dict[str, object]:
        return self.fields


def test_backend_status_of_a_shared_backend() -> None:
    backend = FakeRedisStatus(
        healthy=False,
        last_flush=1000.0,
        pending_series=1234,
        errors=3,
        redis="<MultiProcessRedisBackend 127.0.0.1:6379 prefix='p'>",
        process="abc",
    )
    status = backend_status(backend, {"url": "redis://:pw@cache:6380/2"}, now=1042.0)
    assert status["health"] == "Unreachable"
    assert status["healthy"] is False
    assert status["last_flush"] == "42 s ago"
    assert status["pending_series"] == "1,234"
    assert status["errors"] == "3"
    assert status["server"] == f"redis://:{MASK}@cache:6380/2"  # from the config, masked
    assert "flush to Redis failed" in status["problem"]
    backend.fields.update(healthy=True, last_flush=None)
    status = backend_status(backend, None, now=1042.0)
    assert (status["health"], status["last_flush"], status["problem"]) == ("Reachable", "never", "")


def test_backend_status_explains_an_outage() -> None:
    backend = FakeRedisStatus(healthy=True, last_flush=900.0, errors=8)
    outage = Outage(since=1_700_000_000.0, error="Timeout reading from socket", failures=8)
    status = backend_status(backend, None, now=1_700_000_000.0 + 95, outage=outage)
    assert status["healthy"] is False
    assert status["health"] == "Unreachable"
    assert status["problem"] == (
        "Reading the metrics has failed since 22:13:20 UTC (95 s, 8 failed reads): "
        "Timeout reading from socket"
    )


# ------------------------------------------------------------------ estimates


def test_quantile_estimate_says_which_bucket() -> None:
    buckets = [(1.0, 2), (2.0, 6), (INF, 8)]
    assert quantile_estimate(0.5, buckets) == Estimate(1.5, 1.0, 2.0)
    assert quantile_estimate(0.1, buckets) == Estimate(0.4, 0.0, 1.0)
    # In the +Inf bucket: PromQL answers the highest finite bound; the bucket is above it.
    assert quantile_estimate(0.9, buckets) == Estimate(2.0, 2.0, INF)
    assert not quantile_estimate(0.5, []).estimated
    assert math.isnan(quantile_estimate(0.5, []).value)


@pytest.mark.parametrize(
    ("route", "shown"),
    [
        ("/admin/(?P<url>.*)$", "/admin/<url>"),
        ("/^old/(?P<year>[0-9]{4})/$", "/old/<year>/"),
        ("/(?P<a>x(?:y|z))/(?P<b>\\d+)/", "/<a>/<b>/"),
        ("/articles/<int:year>/", "/articles/<int:year>/"),
        ("plain value", "plain value"),
    ],
)
def test_pretty_label_reads_regex_routes(route: str, shown: str) -> None:
    assert pretty_label(route) == shown


# ------------------------------------------------------------------ grouping


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_histogram_series(registry: CollectorRegistry) -> None:
    h = Histogram("req_seconds", "Requests.", ["route"], buckets=[0.1, 0.5, 1], registry=registry)
    for v in (0.05, 0.05, 0.3, 0.7, 2.0):
        h.labels(route="/a").observe(v)
    h.labels(route="/b")
    view = build_family(h.local_series())
    assert view.labelnames == ("route",)
    assert [s.labels for s in view.series] == [("/a",), ("/b",)]
    a = view.series[0].data
    assert a.buckets == [(0.1, 2.0), (0.5, 3.0), (1.0, 4.0), (INF, 5.0)]
    assert (a.count, a.sum) == (5.0, pytest.approx(3.1))
    (row, _) = view.rows()
    cells = {c.id: c.text for c in row.cells}
    assert cells["total"] == "5"
    assert cells["mean"] == "620 ms"
    # Since start (no window): rank 2.5 in (0.1, 0.5]; ranks 4.5 and 4.95 above 1 s.
    assert (cells["p50"], cells["p90"], cells["p99"]) == ("100–500 ms", "> 1 s", "> 1 s")
    assert cells["rate"] == "—"  # no earlier reading, no rate
    assert row.chart is not None
    assert len(row.chart.bars) == 4
    assert row.chart.bars[0].title == "≤ 100 ms: 2 observations"
    assert row.chart.bars[-1].title == "> 1 s: 1 observation"
    assert row.chart.summary == (
        "Observations per bucket, since start: 5 in all, most (2) in ≤ 100 ms"
    )
    empty = {c.id: c.text for c in view.rows()[1].cells}
    assert (empty["total"], empty["mean"], empty["p50"]) == ("0", "—", "—")


def test_summary_info_and_state_set_series(registry: CollectorRegistry) -> None:
    s = Summary("size_bytes", "Sizes.", quantiles=(0.5, 0.9), registry=registry)
    s.observe(2048)
    view = build_family(s.local_series())
    # One naming of quantiles: p90 and p50, as for histograms (measured, not estimated).
    assert [c.id for c in view.columns] == ["rate", "p90", "p50", "mean", "total"]
    assert {c.id: (c.text, c.estimate) for c in view.rows()[0].cells} == {
        "rate": ("—", False),
        "p90": ("2 KiB", False),
        "p50": ("2 KiB", False),
        "mean": ("2 KiB", False),
        "total": ("1", False),
    }
    assert view.default_sort == "-p90"

    registry = CollectorRegistry()
    i = Info("build", "Build.", registry=registry)
    i.info({"version": "1.2", "commit": "abc"})
    view = build_family(i.local_series())
    assert view.query_name == "build_info"
    assert view.labelnames == ("version", "commit")
    assert [s.labels for s in view.series] == [("1.2", "abc")]

    registry = CollectorRegistry()
    e = Enum("mode", "Mode.", ["host"], states=["off", "on"], registry=registry)
    e.labels(host="a").state("on")
    e.labels(host="b").state("off")
    view = build_family(e.local_series())
    assert view.labelnames == ("host",)  # the state label is not a column
    assert view.state_names == ["off", "on"]
    assert [r.cells[0].text for r in view.rows()] == ["on", "off"]


def test_remote_family_learns_its_label_names_from_samples() -> None:
    family = MetricFamily("jobs", "counter", "Jobs.")
    family.add(3, {"queue": "a"})
    family.add(4, {"queue": "b", "zone": "eu"})
    view = build_family(family)  # no local definition
    assert view.labelnames == ("queue", "zone")
    assert [s.labels for s in view.series] == [("a", ""), ("b", "eu")]
    assert view.query_name == "jobs_total"


def test_labels_a_backend_adds_become_columns() -> None:
    # A gauge aggregated with multiprocess_mode="all" carries each process's pid.
    g = Gauge("workers", "Busy workers.", ["pool"], registry=CollectorRegistry())
    d = g.definition
    found = MetricSeries(
        d,
        [
            (LabelSet(("pool", "pid"), ("web", "12")), 3.0),
            (LabelSet(("pool",), ("db",)), 1.0),
        ],
    )
    view = build_family(found)
    assert view.labelnames == ("pool", "pid")
    assert [(s.labels, s.data.value) for s in view.series] == [
        (("db", ""), 1.0),
        (("web", "12"), 3.0),
    ]


def test_custom_family_with_plain_dict_labels_and_le_not_last() -> None:
    family = MetricFamily("lat", "histogram", "Latency.")
    for le, count in (("1.0", 1), ("+Inf", 3)):
        family.samples.append(Sample("lat_bucket", {"le": le, "x": "1"}, count))
    family.samples.append(Sample("lat_count", {"x": "1"}, 3))
    family.samples.append(Sample("lat_sum", {"x": "1"}, 4.5))
    view = build_family(family)
    assert view.labelnames == ("x",)
    (series,) = view.series
    assert series.data.buckets == [(1.0, 1), (INF, 3)]
    assert series.key == 'x="1"'


# ------------------------------------------------------------------ search, filter, sort


def families() -> list[FamilyView]:
    registry = CollectorRegistry()
    c = Counter("jobs", "Jobs done.", ["queue"], registry=registry)
    for q in ("emails", "reports", "billing"):
        c.labels(queue=q).inc()
    h = Histogram("latency_seconds", "How long.", ["route"], registry=registry)
    h.labels(route="/reports/").observe(1)
    Counter("errors", "Errors by queue.", registry=registry).inc()
    return build_families(registry.collect_series())


def test_search_names_help_and_label_values() -> None:
    everything = families()
    by_name = select(everything, query="JOBS")
    assert [f.name for f in by_name.families] == ["jobs"]
    assert not by_name.families[0].matched_by_labels
    assert len(by_name.families[0].series) == 3
    by_help = select(everything, query="by queue")
    assert [f.name for f in by_help.families] == ["errors"]
    by_label = select(everything, query="report")
    assert [(f.name, len(f.series), f.matched_by_labels) for f in by_label.families] == [
        ("jobs", 1, True),
        ("latency_seconds", 1, True),
    ]
    assert by_label.type_counts["counter"] == 1
    assert by_label.type_counts["histogram"] == 1
    assert select(everything, query="nothing like it").families == []


def test_filter_by_type_and_order() -> None:
    everything = families()
    assert [f.name for f in select(everything, type="histogram").families] == ["latency_seconds"]
    assert [f.name for f in select(everything, sort="name").families] == [
        "errors",
        "jobs",
        "latency_seconds",
    ]
    selection = select(everything, type="counter")
    assert (selection.total_families, selection.total_series) == (3, 5)
    # The search summary counts the series found, not all of them.
    assert select(everything, query="report").matched_series == 2


def test_this_sites_metrics_come_first() -> None:
    registry = CollectorRegistry()
    for name in ("process_cpu_seconds", "django_http_requests", "shop_orders", "aa_jobs"):
        Counter(name, "Something.", registry=registry).inc()
    Info("python", "Python.", registry=registry).info({"version": "3.11"})
    views = build_families(registry.collect_series())
    order = [f.name for f in select(views, app={"django_http_requests"}).families]
    assert order == [
        "aa_jobs",
        "shop_orders",
        "django_http_requests",
        "process_cpu_seconds",
        "python",
    ]


def test_large_chart_thins_out_its_labels() -> None:
    bounds = [float(i) for i in range(1, 40)] + [INF]
    chart = bucket_chart(bounds, [1.0] * 40, fmt.PLAIN, large=True)
    shown = [b.label for b in chart.bars if b.show_label]
    assert shown[-1] == "+Inf"  # the last bucket is always labelled
    assert 5 < len(shown) < len(bounds)
    for bar in chart.bars:
        float(bar.x), float(bar.height)  # plain numbers, never localised
        assert "," not in bar.x + bar.y + bar.width + bar.height
