# ruff: noqa: RUF001, RUF003 (the en dash of ranges such as "5–10 ms" is what the page shows)
"""The dashboard's one number format (django_pytheus.formatting): digits, units from
the metric's unit or name, bucket ranges, rates, timestamps and ages."""

from __future__ import annotations

import math

import pytest

from django_pytheus import formatting as fmt
from django_pytheus.formatting import Unit

INF = math.inf
SECONDS = Unit("seconds")
BYTES = Unit("bytes")
RATIO = Unit("ratio")
EUROS = Unit("currency", "€")
QUERIES = Unit("plain", "queries", whole=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (3.0, "3"),
        (1234567.0, "1,234,567"),  # exact counts keep every digit, with separators
        (12.5843, "12.6"),  # three significant digits...
        (0.0326087, "0.0326"),
        (12584.3, "12,584"),  # ...but never fewer than the integer part
        (0.25, "0.25"),
        (1.5, "1.5"),  # no trailing zeros
        (1e-7, "1e-07"),
        (1.5e20, "1.5e+20"),
        (-2.0, "-2"),
        (INF, "+Inf"),
        (-INF, "-Inf"),
        (math.nan, "—"),
    ],
)
def test_plain(value: float, text: str) -> None:
    assert fmt.plain(value) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0123, SECONDS, "12.3 ms"),
        (0.0326087, SECONDS, "32.6 ms"),
        (2.5, SECONDS, "2.5 s"),
        (0.0000034, SECONDS, "3.4 µs"),
        (5e-10, SECONDS, "0.5 ns"),
        (90.0, SECONDS, "90 s"),
        (5000.0, SECONDS, "83.3 min"),
        (4 * 3600.0, SECONDS, "4 h"),
        (3 * 86400.0, SECONDS, "3 d"),
        (0.0, SECONDS, "0 s"),
        (2048.0, BYTES, "2 KiB"),
        (62_963_712.0, BYTES, "60 MiB"),  # the raw memory gauge
        (100.0, BYTES, "100 B"),
        (3 * 1024.0**4, BYTES, "3 TiB"),
        (0.0326087, RATIO, "3.26 %"),
        (1.5, RATIO, "150 %"),
        (0.0, RATIO, "0 %"),
        (1234.5, EUROS, "€1,234.50"),  # money: cents, never four decimals
        (1000.0, EUROS, "€1,000"),  # ...unless there are none
        (-3.0, EUROS, "-€3"),
        (3.0, QUERIES, "3 queries"),
        (1.0, QUERIES, "1 query"),
        (2.5, QUERIES, "2.5 queries"),
        (21.5, Unit("plain", "°C"), "21.5 °C"),
        (7.0, fmt.PLAIN, "7"),
        (INF, SECONDS, "+Inf"),
        (math.nan, SECONDS, "—"),
    ],
)
def test_number_in_units(value: float, unit: Unit, text: str) -> None:
    assert fmt.number(value, unit) == text


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http_request_duration_seconds", "", "histogram", Unit("seconds")),
        ("process_cpu_seconds_total", "", "counter", Unit("seconds")),
        ("process_resident_memory_bytes", "", "gauge", Unit("bytes")),
        ("x", "bytes", "gauge", Unit("bytes")),
        ("cache_hit_ratio", "", "gauge", Unit("ratio")),
        ("process_start_time_seconds", "", "gauge", Unit("timestamp")),
        ("last_backup_timestamp_seconds", "", "gauge", Unit("timestamp")),
        # A histogram of that name measures durations, not moments.
        ("request_time_seconds", "", "histogram", Unit("seconds")),
        ("shop_order_value", "euros", "histogram", Unit("currency", "€")),
        ("shop_order_value_euros", "", "histogram", Unit("currency", "€")),
        ("room_temperature_celsius", "", "gauge", Unit("plain", "°C")),
        ("widgets", "widgets", "gauge", Unit("plain", "widgets")),
        ("jobs", "", "counter", fmt.PLAIN),
    ],
)
def test_unit_from_the_unit_or_the_name(name: str, unit: str, kind: str, expected: Unit) -> None:
    assert fmt.unit_for(name, unit, kind) == expected


def test_timestamps_read_as_a_date_and_an_age() -> None:
    start = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    unit = fmt.unit_for("process_start_time_seconds", type="gauge")
    assert fmt.number(start, unit, now=start + 3 * 3600) == "2023-11-14 22:13 UTC (3 h ago)"
    assert fmt.timestamp(start, now=start + 42) == "2023-11-14 22:13 UTC (42 s ago)"
    assert fmt.timestamp(0.0) == "never"
    assert fmt.clock(start) == "22:13:20 UTC"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "just now"), (42.4, "42 s ago"), (600.0, "10 min ago"), (3 * 3600.0, "3 h ago")],
)
def test_age(seconds: float, text: str) -> None:
    assert fmt.age(seconds) == text


@pytest.mark.parametrize(
    ("lower", "upper", "unit", "text"),
    [
        (0.0, 0.005, SECONDS, "≤ 5 ms"),  # the lowest bucket starts at 0
        (0.0025, 0.005, SECONDS, "2.5–5 ms"),  # one unit symbol for both ends
        (0.5, 1.0, SECONDS, "500 ms–1 s"),
        (30.0, INF, SECONDS, "> 30 s"),
        (-INF, -1.0, fmt.PLAIN, "≤ -1"),
        (1024.0, 4096.0, BYTES, "1–4 KiB"),
        (100.0, 200.0, EUROS, "€100–200"),
        # Whole observations: (2, 3] holds only 3, (3, 5] holds 4 and 5.
        (2.0, 3.0, QUERIES, "3 queries"),
        (3.0, 5.0, QUERIES, "4–5 queries"),
        (-INF, 0.0, QUERIES, "0 queries"),
        (500.0, INF, QUERIES, "> 500 queries"),
    ],
)
def test_value_range(lower: float, upper: float, unit: Unit, text: str) -> None:
    assert fmt.value_range(lower, upper, unit) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (12.5843, fmt.PLAIN, "12.6/s"),
        (0.0326087, fmt.PLAIN, "0.0326/s"),
        (0.0, fmt.PLAIN, "0/s"),
        (1500.0, fmt.PLAIN, "1,500/s"),
        (0.25, SECONDS, "250 ms/s"),  # CPU seconds per second
        (2048.0, BYTES, "2 KiB/s"),
        (math.nan, fmt.PLAIN, "—"),
    ],
)
def test_rate(value: float, unit: Unit, text: str) -> None:
    assert fmt.rate(value, unit) == text


def test_one_naming_of_quantiles() -> None:
    assert [fmt.quantile_name(q) for q in (0.5, 0.9, 0.99, 0.999, 0.25)] == [
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p25",
    ]
