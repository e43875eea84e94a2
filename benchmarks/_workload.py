"""The data every side of a row records: the same label values and observations.

Standard library only: the worker timing the original pytheus imports it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "BUCKETS",
    "RESTART_LINES",
    "RESTART_SERIES",
    "check_samples",
    "check_scrape",
    "label_values",
    "observations",
    "restart_totals",
    "sample_totals",
    "writer_amount",
    "writer_totals",
]

# The buckets of the histogram exposition row, given explicitly to every side so that each
# renders the same series: pytheus's default (Go's), 11 bounds and +Inf. prometheus_client's
# own default has 15 bounds and +Inf, so its output would be a quarter longer.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def label_values(i: int) -> tuple[str, str]:
    """Series ``i``'s two label values: a hundred values of ``b`` under each ``a``."""
    return f"endpoint_{i // 100}", f"code_{i % 100}"


def observations(i: int) -> tuple[float, float]:
    """Two observations for histogram series ``i``, spread over the default buckets."""
    return 0.3, (i % 40) * 0.05


def check_samples(body: bytes, expected: int, who: str) -> None:
    """Fail unless ``body`` holds ``expected`` sample lines: sides must render the same series."""
    count = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    if count != expected:
        raise RuntimeError(
            f"{who} rendered {count} sample lines where {expected} were expected; "
            "the sides of this row would not be doing the same work."
        )


# --------------------------------------------------------------------------- many processes
# What the processes of the "Many processes" section record, on every side alike.


def writer_amount(i: int) -> int:
    """How much each writer process adds to series ``i`` of the counter ``bench_requests``."""
    return i % 7 + 1


def writer_totals(series: int, processes: int) -> dict[str, float]:
    """The sums a scrape must show after ``processes`` writers added to every series."""
    return {"bench_requests_total": float(processes * sum(map(writer_amount, range(series))))}


#: Series of ``bench_jobs`` (counter) and ``bench_job_seconds`` (histogram, BUCKETS) that
#: every short-lived worker touches: workers of one server serve the same endpoints.
RESTART_SERIES = 3

#: Sample lines after the workers are gone: the counter's series, the histogram's (11
#: bounds, +Inf, _count, _sum each) and the livesum gauge ``bench_workers``.
RESTART_LINES = RESTART_SERIES + RESTART_SERIES * 14 + 1


def restart_totals(processes: int) -> dict[str, float]:
    """The sums a scrape must show after ``processes`` workers came and went.

    Each worker adds 1 to each counter series, observes ``observations(j)`` in each
    histogram series and sets the gauge to 1; a livesum gauge forgets dead processes,
    so only the scraping process's 0 remains.
    """
    values = [v for j in range(RESTART_SERIES) for v in observations(j)]
    bounds = (*BUCKETS, math.inf)
    return {
        "bench_jobs_total": float(processes * RESTART_SERIES),
        "bench_job_seconds_count": float(processes * len(values)),
        "bench_job_seconds_sum": processes * sum(values),
        # Cumulative buckets: an observation counts in every bucket whose bound it is under.
        "bench_job_seconds_bucket": float(
            processes * sum(1 for v in values for b in bounds if v <= b)
        ),
        "bench_workers": 0.0,
    }


def sample_totals(body: bytes) -> tuple[int, dict[str, float]]:
    """The number of sample lines of a text exposition, and the sum of values per name."""
    lines = 0
    totals: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        lines += 1
        series, _, value = line.rpartition(" ")
        name = series.partition("{")[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return lines, totals


def check_scrape(body: bytes, lines: int, totals: Mapping[str, float], who: str) -> None:
    """Fail unless ``body`` has ``lines`` sample lines and these sums: sides must agree."""
    count, found = sample_totals(body)
    wrong = {
        name: (found.get(name), want)
        for name, want in totals.items()
        if not math.isclose(found.get(name, math.nan), want, rel_tol=1e-9, abs_tol=1e-9)
    }
    if count != lines or wrong:
        raise RuntimeError(
            f"{who}'s scrape has {count} sample lines (expected {lines}); sums that differ "
            f"(found, expected): {wrong or 'none'}. The sides of this row would not be "
            "measuring the same data."
        )
