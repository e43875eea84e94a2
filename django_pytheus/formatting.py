"""Numbers for people: the one place where the admin dashboard turns a number into text.

Every number the dashboard shows goes through :func:`number` (a value in its unit),
:func:`count` (an exact count), :func:`rate` (per second), :func:`value_range` (a
histogram bucket, for estimates) or :func:`timestamp`, so that the whole page reads
alike: three significant digits (never fewer than the integer part), thousands
separators, and a unit taken from the metric's unit or its name's suffix.

>>> number(0.0326087, unit_for("http_request_duration_seconds"))
'32.6 ms'
>>> number(62_963_712, unit_for("process_resident_memory_bytes"))
'60 MiB'
>>> value_range(0.0025, 0.005, unit_for("x_seconds"))
'2.5\u20135 ms'

Nothing here knows Django or the registry: pure functions, tested on their own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = [
    "NO_DATA",
    "Unit",
    "age",
    "clock",
    "count",
    "duration",
    "number",
    "plain",
    "quantile_name",
    "rate",
    "timestamp",
    "unit_for",
    "value_range",
]

#: Between the two ends of a range (``5\u201310 ms``).
EN_DASH = "\u2013"
#: What a missing number (NaN: no observations, no reading yet) is shown as.
NO_DATA = "—"

INF = math.inf

# Scales of the units that have them, largest first: (divisor, symbol).
_SECONDS = ((86400.0 * 2, 86400.0, "d"), (7200.0, 3600.0, "h"), (120.0, 60.0, "min"))
_SUBSECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_BYTES = ((1024.0**4, "TiB"), (1024.0**3, "GiB"), (1024.0**2, "MiB"), (1024.0, "KiB"))

# OpenMetrics units (or name suffixes) shown with a symbol.
_CURRENCIES = {
    "euros": "€",
    "eur": "€",
    "dollars": "$",
    "usd": "$",
    "pounds": "£",
    "gbp": "£",
    "yen": "¥",
    "jpy": "¥",
}
_CURRENCY_SIGNS = frozenset(_CURRENCIES.values())
_SYMBOLS = {"celsius": "°C", "percent": "%", "volts": "V", "watts": "W", "meters": "m"}
# Zero in the units whose scale would otherwise be picked by the magnitude.
_ZERO = {"seconds": "0 s", "bytes": "0 B", "ratio": "0 %"}
# Name suffixes of gauges that hold a Unix time (process_start_time_seconds).
_TIMESTAMP_SUFFIXES = ("_timestamp_seconds", "_time_seconds", "_timestamp")


@dataclass(frozen=True, slots=True)
class Unit:
    """How the values of one metric read.

    ``kind`` is ``seconds``, ``bytes``, ``ratio`` (shown as a percentage),
    ``timestamp`` (a Unix time, shown as a date and an age), ``currency`` or
    ``plain``; ``symbol`` is the currency sign or a unit word (``°C``, ``queries``);
    ``whole`` says that observations are whole numbers (a count of queries), so that
    the bucket ``(2, 3]`` can only hold 3.
    """

    kind: str = "plain"
    symbol: str = ""
    whole: bool = False


PLAIN = Unit()


def unit_for(name: str, unit: str = "", type: str = "") -> Unit:
    """The :class:`Unit` of a family, from its OpenMetrics unit or its name.

    ``type`` matters for timestamps: only a gauge named ``..._time_seconds`` holds a
    moment (a histogram of that name measures durations).

    >>> unit_for("process_start_time_seconds", type="gauge").kind
    'timestamp'
    >>> unit_for("shop_order_value", "euros").symbol
    '€'
    """
    base = name.removesuffix("_total")
    unit = unit.lower()
    if type in ("gauge", "unknown", "") and base.endswith(_TIMESTAMP_SUFFIXES):
        return Unit("timestamp")
    for kind in ("seconds", "bytes", "ratio"):
        if unit == kind or base.endswith(f"_{kind}"):
            return Unit(kind)
    for word, symbol in _CURRENCIES.items():
        if unit == word or base.endswith(f"_{word}"):
            return Unit("currency", symbol)
    for word, symbol in _SYMBOLS.items():
        if unit == word or base.endswith(f"_{word}"):
            return Unit("plain", symbol)
    return Unit("plain", unit) if unit else PLAIN


# --------------------------------------------------------------------------- digits


def _significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, but every digit of its integer
    part (``12,584``, ``12.6``, ``0.0326``), trailing zeros dropped."""
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1):
        return f"{round(value):,}"
    decimals = digits - 1 - math.floor(math.log10(magnitude))
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def plain(value: float) -> str:
    """A number without a unit: exact when whole (``1,234``), else three significant
    digits (``0.0326``, ``12.6``); scientific only far from 1 (``1.5e+20``)."""
    if value != value:
        return NO_DATA
    if value in (INF, -INF):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if magnitude >= 1e15 or (magnitude < 1e-4 and value != 0):
        return f"{value:.3g}"
    if value == int(value):
        return f"{int(value):,}"
    return _significant(value)


def count(value: float) -> str:
    """An exact count (a counter's total, a histogram's observations): ``12,584``."""
    return plain(value)


# --------------------------------------------------------------------------- units


def _seconds(value: float) -> str:
    magnitude = abs(value)
    for threshold, divisor, symbol in _SECONDS:
        if magnitude >= threshold:
            return f"{_significant(value / divisor)} {symbol}"
    if magnitude >= 1.0:
        return f"{_significant(value)} s"
    for divisor, symbol in _SUBSECONDS[1:]:
        if magnitude >= divisor:
            return f"{_significant(value / divisor)} {symbol}"
    return f"{_significant(value / 1e-9)} ns"


def _bytes(value: float) -> str:
    magnitude = abs(value)
    for divisor, symbol in _BYTES:
        if magnitude >= divisor:
            return f"{_significant(value / divisor)} {symbol}"
    return f"{plain(value)} B"


def number(value: float, unit: Unit = PLAIN, *, now: float | None = None) -> str:
    """``value`` in ``unit``: ``12.6 ms``, ``60 MiB``, ``3.26 %``, ``€1,234.50``.

    NaN (no data) is an em dash; infinities stay ``+Inf``/``-Inf``.
    """
    if value != value:
        return NO_DATA
    if value in (INF, -INF):
        return plain(value)
    kind = unit.kind
    if kind == "timestamp":
        return timestamp(value, now=now)
    if value == 0 and kind in _ZERO:
        return _ZERO[kind]
    if kind == "seconds":
        return _seconds(value)
    if kind == "bytes":
        return _bytes(value)
    if kind == "ratio":
        return f"{_significant(value * 100)} %"
    if kind == "currency":
        sign = "-" if value < 0 else ""
        # Cents when there are any: a bucket bound of €1,000 needs none.
        amount = f"{abs(value):,.0f}" if value == int(value) else f"{abs(value):,.2f}"
        return f"{sign}{unit.symbol}{amount}"
    text = plain(value)
    if not unit.symbol:
        return text
    return f"{text} {_singular(unit.symbol) if value == 1 else unit.symbol}"


def _singular(word: str) -> str:
    """``queries`` -> ``query``, ``units`` -> ``unit``; symbols (``°C``) unchanged."""
    if len(word) < 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def rate(value: float, unit: Unit = PLAIN) -> str:
    """A per-second rate: ``12.6/s``; of seconds, ``250 ms/s``; of bytes, ``1.2 MiB/s``."""
    if value != value:
        return NO_DATA
    if value == 0:
        return "0/s"
    if unit.kind in ("seconds", "bytes", "currency"):
        return f"{number(value, unit)}/s"
    if unit.symbol:
        return f"{plain(value)} {unit.symbol}/s"
    magnitude = abs(value)
    text = _significant(value) if 1e-4 <= magnitude < 1e15 else f"{value:.3g}"
    return f"{text}/s"


def _same_scale(lower: str, upper: str) -> tuple[str, str] | None:
    """``("2.5 ms", "5 ms")`` -> ``("2.5", "5 ms")``: one unit symbol for both ends
    (``("€100", "€200")`` -> ``("€100", "200")``)."""
    if lower[:1] in _CURRENCY_SIGNS and lower[:1] == upper[:1]:
        return lower, upper[1:]
    low_number, _, low_unit = lower.partition(" ")
    high_number, _, high_unit = upper.partition(" ")
    if low_unit == high_unit and low_unit:
        return low_number, f"{high_number} {high_unit}"
    return None


def value_range(lower: float, upper: float, unit: Unit = PLAIN) -> str:
    """A histogram bucket ``(lower, upper]`` as people read it.

    ``-Inf`` or 0 below a positive bound reads ``≤ upper``; ``+Inf`` above reads
    ``> lower``; otherwise ``lower-upper`` (an en dash) with one unit symbol when both
    ends share it. With whole observations (``unit.whole``), ``(2, 3]`` is exactly
    ``3`` and ``(3, 5]`` is ``4-5``.
    """
    if upper == INF:
        return f"> {number(lower, unit)}"
    if unit.whole:
        low = max(math.floor(lower) + 1, 0) if lower > -INF else 0  # never below none
        high = math.floor(upper)
        if low >= high:
            return number(high, unit)
        lower, upper = float(low), float(high)
        shared = _same_scale(number(lower, unit), number(upper, unit))
        if shared:
            return f"{shared[0]}{EN_DASH}{shared[1]}"
        return f"{plain(lower)}{EN_DASH}{number(upper, unit)}"
    if lower == -INF or (lower == 0 and upper > 0):
        return f"≤ {number(upper, unit)}"
    low_text, high_text = number(lower, unit), number(upper, unit)
    shared = _same_scale(low_text, high_text)
    if shared:
        return f"{shared[0]}{EN_DASH}{shared[1]}"
    return f"{low_text}{EN_DASH}{high_text}"


def quantile_name(q: float) -> str:
    """One naming of quantiles for histograms and summaries: ``0.5`` is ``p50``,
    ``0.999`` is ``p99.9``."""
    return f"p{round(q * 100, 6):g}"


# --------------------------------------------------------------------------- time


def age(seconds: float) -> str:
    """How long ago: ``just now``, ``42 s ago``, ``12 min ago``, ``3 h ago``, ``2 d ago``."""
    if seconds != seconds:
        return NO_DATA
    if seconds < 0:
        return "in the future"
    if seconds < 1:
        return "just now"
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    """A span of time in whole units: ``42 s``, ``12 min``, ``3 h``, ``2 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def timestamp(value: float, *, now: float | None = None) -> str:
    """A Unix time as a UTC date and an age: ``2025-12-05 11:41 UTC (3 h ago)``."""
    if value != value or value in (INF, -INF):
        return plain(value)
    if value <= 0:
        return "never"
    now = time.time() if now is None else now
    try:
        date = time.strftime("%Y-%m-%d %H:%M", time.gmtime(value))
    except (OverflowError, OSError, ValueError):
        return plain(value)
    return f"{date} UTC ({age(now - value)})"


def clock(value: float) -> str:
    """A Unix time as a UTC time of day: ``11:41:50 UTC``."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(value))
