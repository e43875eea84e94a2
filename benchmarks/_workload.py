"""The data every side of a row records: the same label values and observations.

Standard library only: the worker timing the original pytheus imports it too.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "check_samples", "label_values", "observations"]

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
