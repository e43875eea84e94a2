"""The series cap: how many series a metric may hold unless it says otherwise.

Past its limit a metric stores no new label sets: their values are dropped and counted
in ``pytheus_dropped_series_total{metric=...}`` (see :mod:`pytheus.metrics`), so that a
label with unbounded values cannot exhaust memory (or Redis).
"""

from __future__ import annotations

from pytheus.exceptions import MetricDefinitionError

__all__ = ["default_max_series", "set_default_max_series"]

_default: int | None = 10_000


def set_default_max_series(limit: int | None) -> None:
    """Set how many series a metric may have unless it says otherwise (``max_series=``).

    Past the limit, new label sets are not stored: their values are dropped and counted
    in ``pytheus_dropped_series_total{metric=...}``, and one warning names the metric,
    so a label with unbounded values cannot exhaust memory (or Redis). The default is
    10,000; ``None`` removes the limit.
    """
    global _default
    if limit is not None and (type(limit) is not int or limit < 1):
        raise MetricDefinitionError(
            f"The default max_series must be a whole number >= 1 or None, got {limit!r}."
        )
    _default = limit


def default_max_series() -> int | None:
    """The limit of series per metric that :func:`set_default_max_series` set."""
    return _default
