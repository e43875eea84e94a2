"""What the admin dashboard shows, computed from the registry: no Django, no templates.

The admin page (:mod:`django_pytheus.admin`) reads ``REGISTRY.collect_series()`` once
per request and hands what it yields to :func:`build_families`: each metric's
definition with its series' label sets and values (a histogram's per-bucket counts and
sum), so no sample is ever regrouped into series here. Each family then gets its
:class:`~django_pytheus.history.Window` (:meth:`FamilyView.observe`), from which
:meth:`FamilyView.stats` computes rates, means and quantiles over the window;
:func:`select` searches, filters and orders the families; :meth:`FamilyView.sorted`
orders a family's series by a column, worst first by default; :meth:`FamilyView.rows`
turns the series a page shows into text cells (through
:mod:`django_pytheus.formatting`, the only place numbers become text).

Pure helpers with tests of their own:

* :func:`histogram_quantile`: PromQL's ``histogram_quantile`` on one series' buckets,
  and :func:`quantile_estimate`, the same with the bucket it falls in;
* :func:`mask_secrets`: a backend configuration made safe to show;
* :func:`pretty_label`: a regex route label (``^old/(?P<year>[0-9]{4})/$``) as people
  read it (``old/<year>/``).
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import math
import operator
import re
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django_pytheus import formatting as fmt
from django_pytheus.formatting import Unit
from django_pytheus.history import History, Reading, Window
from pytheus.definitions import MetricDefinition, MetricSeries
from pytheus.families import as_series
from pytheus.naming import sample_name
from pytheus.samples import LabelSet, MetricFamily, escape_label_value

__all__ = [
    "QUANTILES",
    "TYPES",
    "Estimate",
    "FamilyView",
    "Row",
    "Selection",
    "Series",
    "Stats",
    "backend_status",
    "build_families",
    "build_family",
    "histogram_quantile",
    "mask_secrets",
    "pretty_label",
    "quantile_estimate",
    "select",
]

#: The quantiles estimated for every histogram series, shown highest first.
QUANTILES = (0.99, 0.9, 0.5)

#: Family types in the order the type filter lists them, with their display names.
TYPES = {
    "counter": "Counter",
    "gauge": "Gauge",
    "histogram": "Histogram",
    "summary": "Summary",
    "info": "Info",
    "stateset": "State set",
    "unknown": "Untyped",
}

#: Family name prefixes of the process and runtime collectors, listed last.
RUNTIME_PREFIXES = ("process_", "python_", "pytheus_")

NAN = math.nan
INF = math.inf

# --------------------------------------------------------------------------- quantiles


@dataclass(frozen=True, slots=True)
class Estimate:
    """A quantile: ``value`` as PromQL computes it and, for a histogram, the bucket
    ``(lower, upper]`` it falls in (NaN for a summary's measured quantile)."""

    value: float
    lower: float = NAN
    upper: float = NAN

    @property
    def estimated(self) -> bool:
        return self.lower == self.lower


NO_ESTIMATE = Estimate(NAN)


def _merge(buckets: Iterable[tuple[float, float]]) -> tuple[list[float], list[float]] | None:
    """Sorted bounds and their counts, equal bounds merged; None if unusable."""
    bounds: list[float] = []
    counts: list[float] = []
    for bound, count in sorted(buckets, key=lambda b: b[0]):
        if bounds and bounds[-1] == bound:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    if len(bounds) < 2 or bounds[-1] != INF:
        return None
    return bounds, counts


def _estimate(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> Estimate:
    """The quantile of buckets whose ``bounds`` increase strictly up to ``+Inf``."""
    if math.isnan(q):
        return NO_ESTIMATE
    if q < 0:
        return Estimate(-INF)
    if q > 1:
        return Estimate(INF)
    n = len(bounds)
    if n < 2 or bounds[-1] != INF:
        return NO_ESTIMATE
    counts = cumulative
    if not all(map(operator.le, counts, itertools.islice(counts, 1, None))):
        # Float sums of counts can wobble by an ulp; keep such steps flat (as PromQL
        # does, with the same tolerance), then take the envelope so that the counts
        # never decrease. (Counts that never decrease need neither: the usual case.)
        counts = list(cumulative)
        previous = highest = counts[0]
        for i in range(1, n):
            c = counts[i]
            delta = abs(c - previous)
            if delta and delta / c <= 1e-12:
                c = previous
            elif delta:
                previous = c
            counts[i] = highest = max(c, highest)
    observations = counts[-1]
    if observations <= 0:
        return NO_ESTIMATE
    rank = q * observations
    i = bisect.bisect_left(counts, rank, 0, n - 1)  # the first bucket holding that rank
    if i == n - 1:
        # Past the highest finite bound: PromQL answers that bound.
        return Estimate(bounds[-2], bounds[-2], INF)
    upper, count = bounds[i], counts[i]
    if i == 0 and upper <= 0:
        return Estimate(upper, -INF, upper)
    lower = 0.0
    if i > 0:
        lower = bounds[i - 1]
        count -= counts[i - 1]
        rank -= counts[i - 1]
    if count == 0:  # only when q == 0 and the lowest bucket is empty
        return NO_ESTIMATE
    return Estimate(lower + (upper - lower) * (rank / count), lower, upper)


def quantile_estimate(q: float, buckets: Iterable[tuple[float, float]]) -> Estimate:
    """:func:`histogram_quantile` with the bucket the quantile falls in.

    >>> quantile_estimate(0.5, [(1.0, 2), (2.0, 6), (math.inf, 8)])
    Estimate(value=1.5, lower=1.0, upper=2.0)
    """
    merged = _merge(buckets)
    if merged is None:
        return _estimate(q, (), ())
    return _estimate(q, *merged)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Estimate the ``q``-quantile of one histogram series as PromQL does.

    ``buckets`` are ``(upper bound, cumulative count)`` pairs, as the ``_bucket``
    samples carry them (``le`` and value), in any order; the last bound must be
    ``+Inf``. The quantile is interpolated linearly inside the bucket it falls in, the
    lowest bucket starting at 0 (unless its bound is 0 or less: then that bound is the
    answer). Special cases, all as in ``histogram_quantile()``:

    * no observations, fewer than two buckets, or no ``+Inf`` bucket: NaN;
    * the quantile falls in the ``+Inf`` bucket: the highest finite bound;
    * ``q < 0``: -Inf; ``q > 1``: +Inf; ``q`` NaN: NaN;
    * ``q = 0`` with an empty lowest bucket: NaN (PromQL divides 0 by 0 there).

    Counts that decrease from one bucket to the next (a torn read) are raised to the
    running maximum first, and buckets with equal bounds are merged.

    >>> histogram_quantile(0.5, [(1.0, 2), (2.0, 6), (math.inf, 8)])
    1.5
    """
    return quantile_estimate(q, buckets).value


# --------------------------------------------------------------------------- secrets

MASK = "********"
_SECRET_KEY = re.compile(r"pass|secret|token|credential|auth|(^|_)key$", re.IGNORECASE)


_QUERY_SECRET = re.compile(r"(?i)([?&;](?:[a-z_]*pass(?:word)?|secret|token|auth)=)[^&;#]*")


def _mask_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        # A lone user part may be a token (https://token@host): masked too.
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{MASK}@{hostport}"
    masked = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return _QUERY_SECRET.sub(rf"\g<1>{MASK}", masked)


def mask_secrets(value: Any) -> Any:
    """Return ``value`` safe to show: passwords in URLs and secret-looking keys masked.

    Mappings are copied with the values of keys such as ``password``, ``secret``,
    ``token`` or ``api_key`` replaced by ``********`` (recursively); strings that are
    URLs lose the password of their user part (``redis://user:********@host/0``);
    objects other than strings, numbers, booleans, None, mappings and sequences are
    shown by their type name only, since their ``repr`` may hold a secret.

    >>> mask_secrets({"url": "redis://user:secret@host/0", "password": "hunter2"})
    {'url': 'redis://user:********@host/0', 'password': '********'}
    """
    if isinstance(value, Mapping):
        return {
            str(k): MASK if _SECRET_KEY.search(str(k)) and v not in (None, "") else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, str):
        return _mask_url(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


# --------------------------------------------------------------------------- labels

_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")


def pretty_label(value: str) -> str:
    """A label value as people read it: a regex route (``re_path``) loses its regex
    syntax, ``/admin/(?P<url>.*)$`` reading ``/admin/<url>``; anything else as is."""
    if "(?P<" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        match = _NAMED_GROUP.match(value, i)
        if match is None:
            out.append(value[i])
            i += 1
            continue
        out.append(f"<{match.group(1)}>")
        depth, i = 1, match.end()
        while i < len(value) and depth:  # skip the group's pattern, nested groups too
            if value[i] == "\\":
                i += 1
            elif value[i] == "(":
                depth += 1
            elif value[i] == ")":
                depth -= 1
            i += 1
    text = "".join(out)
    if text.startswith("/^"):
        text = "/" + text[2:]
    return text.removeprefix("^").removesuffix("$")


# --------------------------------------------------------------------------- series

#: Values of a sort column for some series of a family, in their order.
Ordering = Callable[[Sequence["Series"]], list[float]]

#: A histogram series' quantile since start, by (family, bounds, quantile) then series
#: key: ``(its bucket counts, the quantile)``, valid while the counts are the same. The
#: page orders every series of a family to show the worst few; most have not changed.
_SINCE_START: dict[tuple[str, tuple[float, ...], float], dict[str, tuple[Any, float]]] = {}
_SINCE_START_FAMILIES = 64

# The label that tells a family's samples of one series apart, per type.
# Types whose values only go up, and so have rates over a window.
RATED = frozenset({"counter", "histogram", "summary"})


@dataclass(slots=True)
class SeriesData:
    """A series' numbers, by type: counter/gauge/info ``value``; histogram ``count``,
    ``sum`` and cumulative ``buckets``; summary ``count``, ``sum``, ``quantiles``;
    state set ``states``."""

    value: float = NAN
    count: float = NAN
    sum: float = NAN
    bounds: tuple[float, ...] = ()  # a histogram's le, increasing (+Inf last)
    cumulative: list[float] = field(default_factory=list)  # its counts, per bound
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    states: list[tuple[str, float]] = field(default_factory=list)

    @property
    def buckets(self) -> list[tuple[float, float]]:
        """``(le, cumulative count)`` pairs, as the ``_bucket`` samples carry them."""
        return list(zip(self.bounds, self.cumulative, strict=True))


class Series:
    """One series of a family. Its numbers (:attr:`data`) are worked out from its value
    when first asked for: a page shows a few of 10,000 series, and searching them
    needs only their labels."""

    __slots__ = ("key", "labels", "_definition", "_value", "_data")

    def __init__(
        self,
        key: str,
        labels: tuple[str, ...],
        definition: MetricDefinition | None = None,
        value: Any = None,
        *,
        data: SeriesData | None = None,
    ) -> None:
        self.key = key  # the series' label text: stable across refreshes
        self.labels = labels  # values in the order of FamilyView.labelnames ('' if absent)
        self._definition = definition
        self._value = value  # as MetricSeries carries it
        self._data = data  # known already, or worked out from the value when asked for

    @property
    def data(self) -> SeriesData:
        if self._data is None:
            assert self._definition is not None, "a Series needs a definition or its data"
            self._data = series_data(self._definition, self._value)
        return self._data

    def __repr__(self) -> str:
        return f"Series({self.key!r}, {self.data!r})"


class Stats:
    """A series' numbers as the page shows them, over the family's window.

    ``total`` (a counter's value, a histogram's or summary's count) and ``sum`` are
    since the series was created; ``rate`` and ``increase`` over the window (NaN
    without one); ``mean``, the quantiles and the chart's ``bars`` over the window
    when ``windowed``, else since start. Quantiles are worked out when first asked for.
    """

    __slots__ = (
        "total",
        "value",
        "sum",
        "rate",
        "increase",
        "mean",
        "windowed",
        "state",
        "mean_since_start",
        "_bounds",
        "_cumulative",
        "_since_start",
        "_quantiles",
    )

    def __init__(self) -> None:
        self.total = NAN
        self.value = NAN
        self.sum = NAN
        self.rate = NAN
        self.increase = NAN
        self.mean = NAN
        self.windowed = False
        self.state = ""
        self.mean_since_start = NAN
        self._bounds: Sequence[float] = ()  # a histogram's, increasing up to +Inf
        self._cumulative: Sequence[float] = ()  # over the window, or since start
        self._since_start: Sequence[float] = ()
        self._quantiles: dict[float, Estimate] = {}

    def quantile(self, q: float) -> Estimate:
        estimate = self._quantiles.get(q)
        if estimate is None:
            estimate = self._quantiles[q] = _estimate(q, self._bounds, self._cumulative)
        return estimate

    def quantile_since_start(self, q: float) -> float:
        """For ordering series idle over the window (whose quantile there is NaN)."""
        if self._since_start is self._cumulative:
            return self.quantile(q).value
        return _estimate(q, self._bounds, self._since_start).value

    @property
    def bars(self) -> list[float]:
        """Per-bucket (not cumulative) counts, +Inf last: the chart's bars."""
        out = []
        previous = 0.0
        for cumulative in self._cumulative:
            out.append(max(cumulative - previous, 0.0))
            previous = max(previous, cumulative)
        return out


@dataclass(frozen=True, slots=True)
class Column:
    """A value column of a series table: its id (cells, sorting), title and tooltip."""

    id: str
    title: str
    description: str = ""
    numeric: bool = True
    essential: bool = True  # shown on a phone without asking for all columns


@dataclass(slots=True)
class Cell:
    """One value as text, with the tooltip that says what it is (or PromQL's value of
    an estimate shown as a range)."""

    id: str
    text: str
    title: str = ""
    estimate: bool = False


@dataclass(slots=True)
class Bar:
    """One bucket of a histogram chart: geometry in SVG units and a tooltip.

    Numbers are strings already: a template would localise floats (``12,5`` in German),
    which SVG does not read.
    """

    x: str
    y: str
    width: str
    height: str
    label: str  # the bucket's bound, under the bar in large charts
    title: str  # "≤ 5 ms: 3 observations"
    cx: str = "0"  # the bar's centre, where its label goes
    show_label: bool = True  # labels too close together are thinned out
    count: str = ""  # the observations, for the chart's table
    where: str = ""  # the bucket, as formatting.value_range() says it


@dataclass(slots=True)
class Chart:
    """An inline SVG bar chart: ``height`` for the bars, ``full_height`` with the labels;
    ``summary`` says in words what it shows (its accessible name)."""

    width: int
    height: int
    bars: list[Bar]
    large: bool
    summary: str = ""

    @property
    def full_height(self) -> int:
        return self.height + (18 if self.large else 0)

    @property
    def label_y(self) -> int:
        return self.full_height - 4


@dataclass(slots=True)
class Row:
    """A series as a table row: label values as shown, text cells, optional chart."""

    key: str
    labels: tuple[str, ...]
    raw_labels: tuple[str, ...]  # the values themselves, where ``labels`` prettified them
    cells: list[Cell]
    chart: Chart | None = None

    def label_pairs(self) -> list[tuple[str, str]]:
        """(shown, title) per label: the title is the raw value when it was prettified."""
        return [
            (shown, raw if raw != shown else "")
            for shown, raw in zip(self.labels, self.raw_labels, strict=True)
        ]


@dataclass(eq=False)
class FamilyView:
    """A metric family as the dashboard shows it."""

    name: str  # the family name (a counter's without _total)
    type: str
    help: str
    unit: str
    labelnames: tuple[str, ...]
    series: list[Series]
    total_series: int = 0
    matched_by_labels: bool = False  # the search matched some series, not the family
    unit_hint: Unit | None = None  # overrides what the name and unit say
    window: Window | None = None  # set by observe()
    read_at: float = 0.0  # when these values were read (Unix time)
    stale_since: float = 0.0  # when these values were read, if they are old (outage)
    local_only: bool = False  # this process's own values (the backend is unreachable)
    _stats: dict[str, Stats] = field(default_factory=dict, repr=False)
    _bounds: tuple[float, ...] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ about

    @property
    def series_text(self) -> str:
        """The number of series, as the page shows it (``10,000``)."""
        return fmt.count(self.total_series)

    @property
    def query_name(self) -> str:
        """The name to query in PromQL: ``x_total`` for a counter, ``x_info`` for an info."""
        return sample_name(self.name, self.type)

    @property
    def type_display(self) -> str:
        return TYPES.get(self.type, self.type)

    @property
    def value_unit(self) -> Unit:
        """The unit of the values (of observations, for histograms and summaries)."""
        if self.unit_hint is not None:
            return self.unit_hint
        return fmt.unit_for(self.name, self.unit, self.type)

    @property
    def bounds(self) -> tuple[float, ...]:
        """A histogram's bucket bounds (``+Inf`` last), from its first series; empty
        when they do not increase strictly (a custom collector's repeated bounds)."""
        if self._bounds is None:
            first = next((s for s in self.series if s.data.bounds), None)
            bounds = first.data.bounds if first else ()
            increasing = all(a < b for a, b in itertools.pairwise(bounds))
            self._bounds = bounds if increasing and bounds and bounds[-1] == INF else ()
        return self._bounds

    @property
    def rated(self) -> bool:
        return self.type in RATED

    @property
    def window_text(self) -> str:
        """Over what the rates, means and quantiles are: ``last 58 s``, ``since start``."""
        if not self.rated:
            return ""
        span = self.window.span if self.window is not None else 0.0
        return f"last {fmt.duration(span)}" if span > 0 else "since start"

    @property
    def window_bounds(self) -> tuple[float, float]:
        """The window as Unix times (its first and last reading), for its tooltip."""
        span = self.window.span if self.window is not None else 0.0
        return (self.read_at - span, self.read_at) if span > 0 else (0.0, self.read_at)

    @property
    def window_title(self) -> str:
        start, end = self.window_bounds
        if not start:
            return "Since each series was created: there is no earlier reading to compare"
        return (
            f"Rates, means and percentiles from {fmt.clock(start)} to {fmt.clock(end)}: "
            "between the first and the last reading of this window"
        )

    @property
    def columns(self) -> list[Column]:
        """The value columns of this family's series table."""
        over = self.window_text
        if self.type == "counter":
            return [
                Column("rate", "Per second", f"Increase per second, {over}"),
                Column("total", "Total", "Since the series was created"),
            ]
        if self.type in ("histogram", "summary"):
            what = "estimated from the buckets" if self.type == "histogram" else "measured"
            quantiles = QUANTILES if self.type == "histogram" else self._summary_quantiles()
            return [
                Column("rate", "Per second", f"Observations per second, {over}"),
                *(
                    Column(
                        fmt.quantile_name(q),
                        fmt.quantile_name(q),
                        f"{_ordinal(q)} percentile, {what}"
                        + (f", {over}" if self.type == "histogram" else ""),
                        essential=i == 0,
                    )
                    for i, q in enumerate(quantiles)
                ),
                Column(
                    "mean", "Mean", f"Sum of observations / their count, {over}", essential=False
                ),
                Column(
                    "total", "Count", "Observations since the series was created", essential=False
                ),
            ]
        if self.type == "stateset":
            return [Column("state", "State", "The current state", numeric=False)]
        if self.type == "info":
            return []
        return [Column("value", "Value", "The current value")]

    def _summary_quantiles(self) -> list[float]:
        found = {q for s in self.series[:100] for q, _ in s.data.quantiles}
        return sorted((q for q in found if q == q), reverse=True)

    @property
    def state_names(self) -> list[str]:
        """A state set's states (of its first series), for the header."""
        return (
            [state for state, _ in self.series[0].data.states]
            if self.type == "stateset" and self.series
            else []
        )

    @property
    def has_chart(self) -> bool:
        return self.type == "histogram"

    # ------------------------------------------------------------------ window

    def reading(self, now: float, previous: Reading | None = None) -> Reading | None:
        """The values of every series now, for :class:`~django_pytheus.history.History`;
        None for types without rates. Taken from the values as read, in bulk: the page
        works out a series' numbers (:attr:`Series.data`) only for the rows it shows."""
        kind = self.type
        series = self.series
        keys = [s.key for s in series]
        if kind == "counter":
            values = array("d", [s._value[0] for s in series])
            return Reading.of_arrays(
                now, keys, values, array("d", values), width=1, total_index=0, layout=kind,
                previous=previous,
            )  # fmt: skip
        if kind == "summary":
            data = array("d")
            for s in series:
                data.append(s._value.observations)
                data.append(s._value.sum)
            return Reading.of_arrays(
                now, keys, data, data[0::2], width=2, total_index=0, layout=kind,
                previous=previous,
            )  # fmt: skip
        if kind != "histogram" or not self.bounds:
            return None
        bounds = self.bounds
        n = len(bounds)
        data = array("d")
        accumulate, extend, append = itertools.accumulate, data.extend, data.append
        for s in series:
            value = s._value
            extend(accumulate(value.counts))
            append(value.sum)
        if len(data) != len(keys) * (n + 1):  # counts that do not match the bounds
            return None
        return Reading.of_arrays(
            now, keys, data, data[n - 1 :: n + 1], width=n + 1, total_index=n - 1,
            layout=bounds, previous=previous,
        )  # fmt: skip

    def observe(self, history: History, seconds: float, now: float) -> None:
        """Give ``history`` this family's values now and take its window (of the last
        ``seconds``; 0 keeps the reading but shows totals since start)."""
        if not self.rated:
            return
        reading = self.reading(now, history.latest(self.name))
        if reading is None:
            return
        window = history.observe(self.name, reading, seconds or 60.0)
        self.window = window if seconds else Window(reading)
        self._stats.clear()

    # ------------------------------------------------------------------ numbers

    def stats(self, series: Series) -> Stats:
        """``series``' numbers over this family's window (computed once)."""
        s = self._stats.get(series.key)
        if s is not None:
            return s
        s = self._stats[series.key] = Stats()
        d = series.data
        kind = self.type
        window = self.window
        span = window.span if window is not None else 0.0
        increase = window.increase(series.key) if window is not None and span > 0 else None
        if kind == "counter":
            s.total = d.value
            if increase is not None:
                s.increase, s.rate = increase[0], increase[0] / span
        elif kind == "histogram":
            s.total, s.sum = d.count, d.sum
            s.mean = s.mean_since_start = d.sum / d.count if d.count else NAN
            if d.bounds == self.bounds:
                s._bounds, s._cumulative = d.bounds, d.cumulative
            else:  # bounds that repeat or differ: merged as PromQL does
                merged = _merge(d.buckets)
                if merged is not None:
                    s._bounds, s._cumulative = merged
            s._since_start = s._cumulative
            if increase is not None:
                n = len(self.bounds)
                s.increase, s.rate, s.windowed = increase[n - 1], increase[n - 1] / span, True
                s._cumulative = increase[:n]
                s.mean = increase[n] / s.increase if s.increase > 0 else NAN
        elif kind == "summary":
            s.total, s.sum = d.count, d.sum
            s.mean = s.mean_since_start = d.sum / d.count if d.count else NAN
            if increase is not None:
                s.increase, s.rate, s.windowed = increase[0], increase[0] / span, True
                s.mean = increase[1] / increase[0] if increase[0] > 0 else NAN
            # Measured by the summary itself, over its own time window.
            s._quantiles = {q: Estimate(v) for q, v in d.quantiles}
        elif kind == "stateset":
            s.state = ", ".join(state for state, v in d.states if v) or fmt.NO_DATA
        else:
            s.value = d.value
        return s

    # ------------------------------------------------------------------ order

    @property
    def default_sort(self) -> str:
        """The column that answers the question, worst first: the highest rate, p99 or
        value (``-`` means highest first); label order for states and infos."""
        if self.type == "counter":
            return "-rate"
        if self.type == "histogram":
            return "-p99"
        if self.type == "summary":
            quantiles = self._summary_quantiles()
            return f"-{fmt.quantile_name(quantiles[0])}" if quantiles else "-rate"
        if self.type in ("gauge", "unknown"):
            return "-value"
        return ""

    def sort_options(self) -> list[str]:
        """Every valid sort key: value columns and labels, each either way."""
        keys = [c.id for c in self.columns] + [f"label-{n}" for n in self.labelnames]
        return keys + [f"-{k}" for k in keys]

    def sorted(
        self, series: Sequence[Series], sort: str = "", limit: int | None = None
    ) -> list[Series]:
        """``series`` ordered by ``sort`` (a column id, ``-`` first for highest first;
        ``label-<name>`` for a label); numbers missing (NaN) go last either way, ties
        by total (highest first), then by labels. With ``limit``, only the first
        ``limit`` (the dashboard shows the worst 10 of 10,000)."""
        sort = sort if sort in self.sort_options() else self.default_sort
        descending = sort.startswith("-")
        column = sort.lstrip("-")
        if not column:
            return list(series)[:limit]
        if column.startswith("label-"):
            i = self.labelnames.index(column[len("label-") :])
            ordered = sorted(series, key=lambda s: (s.labels[i], s.labels), reverse=descending)
            return ordered[:limit]
        getters = self._sort_values(column)
        if getters is None:
            ordered = sorted(series, key=lambda s: self.stats(s).state, reverse=descending)
            return ordered[:limit]
        now, since_start = getters
        sign = -1.0 if descending else 1.0
        # The value over the window first; series idle over it (NaN) after the others,
        # ordered by the same value since start; missing values last either way. Keys
        # end with the position, so that two keys never tie.
        totals = self._totals(series)
        ties = [-total if total == total else 0.0 for total in totals]
        values = [sign * value for value in now(series)]
        # (value, tie) pairs made and compared in C; NaN (idle) never passes ``<=``.
        pairs = list(zip(values, ties, strict=True))
        present = [pair for pair in pairs if pair[0] == pair[0]]
        if limit is not None and len(present) > limit:
            cut = heapq.nsmallest(limit, present)[-1]  # only the series up to it can be shown
            few = [(*pair, series[i].labels, i) for i, pair in enumerate(pairs) if pair <= cut]
            return [series[key[-1]] for key in heapq.nsmallest(limit, few)]
        active, idle = [], []
        for i, pair in enumerate(pairs):
            if pair[0] == pair[0]:
                active.append((*pair, series[i].labels, i))
            else:
                idle.append(i)
        active.sort()
        out = [series[key[-1]] for key in active]
        if idle:
            rest = []
            for i, value in zip(idle, since_start([series[i] for i in idle]), strict=True):
                missing = value != value
                rest.append(
                    (missing, 0.0 if missing else sign * value, ties[i], series[i].labels, i)
                )
            if limit is not None:
                rest = heapq.nsmallest(limit - len(out), rest)
            else:
                rest.sort()
            out += [series[key[-1]] for key in rest]
        return out

    def _totals(self, series: Sequence[Series]) -> list[float]:
        """Each series' total (a counter's value, a histogram's or summary's count; NaN
        for other types), from the values as read: ordering 10,000 series must not work
        out each one's numbers."""
        kind = self.type
        if kind == "counter":
            return [float(s._value[0]) for s in series]
        if kind == "histogram":
            return [float(sum(s._value.counts)) for s in series]
        if kind == "summary":
            return [float(s._value.observations) for s in series]
        return [NAN] * len(series)

    def _values(self, series: Sequence[Series]) -> list[float]:
        """A gauge's (or an untyped metric's) values, from the values as read."""
        if self.type in ("gauge", "unknown"):
            return [
                float(v) if isinstance(v := s._value, int | float) else s.data.value for s in series
            ]
        return [s.data.value for s in series]

    def _sort_values(self, column: str) -> tuple[Ordering, Ordering] | None:
        """Functions that give a column's values over the window and since start, for
        ordering all the series of a family: in bulk and lean (no :class:`Stats` for
        each), as a family of 10,000 series is ordered to show 10 of them."""
        window = self.window
        span = window.span if window is not None else 0.0
        nothing: Ordering = lambda series: [NAN] * len(series)  # noqa: E731
        if column == "rate":
            if window is None or span <= 0:
                return nothing, self._totals
            increases = window.total_increases()
            return (lambda series: [increases.get(s.key, NAN) / span for s in series]), self._totals
        if column in ("total", "value"):
            return (self._totals if column == "total" else self._values), nothing
        if column == "mean":
            return (
                lambda series: [self.stats(s).mean for s in series],
                lambda series: [self.stats(s).mean_since_start for s in series],
            )
        if not column.startswith("p"):
            return None
        q = _float(column[1:]) / 100
        if self.type == "summary":
            return (lambda series: [dict(s.data.quantiles).get(q, NAN) for s in series]), nothing
        bounds = self.bounds
        if not bounds:  # buckets that differ between series: the slow way
            return (lambda series: [self.stats(s).quantile(q).value for s in series]), nothing
        n = len(bounds)

        # Most series are idle over a short window and ordered by their quantile since
        # start, which changes only with their counts: kept per family, keyed by them.
        cache_key = (self.name, bounds, q)
        known = _SINCE_START.get(cache_key)
        if known is None or len(known) > 2 * self.total_series + 100:  # series come and go
            if len(_SINCE_START) >= _SINCE_START_FAMILIES:
                _SINCE_START.clear()
            known = _SINCE_START[cache_key] = {}

        def since_start(series: Sequence[Series]) -> list[float]:
            out = []
            for s in series:
                counts = s._value.counts
                hit = known.get(s.key)
                if hit is not None and hit[0] == counts:
                    out.append(hit[1])
                    continue
                value = NAN
                if len(counts) == n:
                    value = _estimate(q, bounds, list(itertools.accumulate(counts))).value
                known[s.key] = (counts, value)
                out.append(value)
            return out

        if window is None or span <= 0:
            return since_start, nothing

        increases = window.total_increases()

        def now(series: Sequence[Series]) -> list[float]:
            out = []
            for s in series:
                if not increases.get(s.key):  # idle over the window: no quantile there
                    out.append(NAN)
                    continue
                increase = window.increase(s.key)
                out.append(NAN if increase is None else _estimate(q, bounds, increase[:n]).value)
            return out

        return now, since_start

    # ------------------------------------------------------------------ text

    def rows(self, series: Sequence[Series] | None = None, *, large: bool = False) -> list[Row]:
        """Presentation of ``series`` (default: all), computed only for them."""
        columns = self.columns
        return [self._row(s, columns, large) for s in (self.series if series is None else series)]

    def _row(self, series: Series, columns: list[Column], large: bool) -> Row:
        stats = self.stats(series)
        cells = [self._cell(column, stats) for column in columns]
        chart = None
        if self.type == "histogram":
            over = self.window_text if stats.windowed else "since start"
            chart = bucket_chart(self.bounds, stats.bars, self.value_unit, large=large, over=over)
        shown = tuple(pretty_label(v) for v in series.labels)
        return Row(series.key, shown, series.labels, cells, chart)

    def _cell(self, column: Column, s: Stats) -> Cell:
        unit = self.value_unit
        over = self.window_text
        cid = column.id
        if cid == "rate":
            if s.rate != s.rate:
                return Cell(
                    cid, fmt.NO_DATA, "Needs an earlier reading: shown from the next refresh on"
                )
            counted = unit if self.type == "counter" else fmt.PLAIN
            increase = (
                fmt.number(s.increase, counted)
                if counted.kind in ("seconds", "bytes", "currency")
                else fmt.count(s.increase)
            )
            return Cell(cid, fmt.rate(s.rate, counted), f"{increase} in the {over}")
        if cid == "total":
            if self.type == "counter" and unit.kind in ("seconds", "bytes", "currency"):
                return Cell(cid, fmt.number(s.total, unit), "Since the series was created")
            return Cell(cid, fmt.count(s.total), "Since the series was created")
        if cid == "value":
            return Cell(cid, fmt.number(s.value, unit))
        if cid == "mean":
            return Cell(cid, fmt.number(s.mean, unit), column.description)
        if cid == "state":
            return Cell(cid, s.state)
        q = _float(cid[1:]) / 100
        estimate = s.quantile(q)
        if estimate.value != estimate.value:
            nothing = f"No observations in the {over}" if s.windowed else "No observations yet"
            return Cell(cid, fmt.NO_DATA, nothing)
        if not estimate.estimated:
            return Cell(cid, fmt.number(estimate.value, unit), column.description)
        text = fmt.value_range(estimate.lower, estimate.upper, unit)
        # A bucket of whole numbers one wide holds one value: exact, not an estimate.
        exact = unit.whole and estimate.upper - max(estimate.lower, -1.0) <= 1
        title = (
            f"The {_ordinal(q)} percentile is in the bucket {text} "
            f"({'the ' + over if s.windowed else 'since start'}). PromQL's "
            f"histogram_quantile() interpolates {_precise(estimate.value, unit)} in it."
        )
        return Cell(cid, text, title, estimate=not exact)


def _ordinal(q: float) -> str:
    n = f"{round(q * 100, 6):g}"
    if n.endswith("1") and not n.endswith("11"):
        return f"{n}st"
    if n.endswith("2") and not n.endswith("12"):
        return f"{n}nd"
    if n.endswith("3") and not n.endswith("13"):
        return f"{n}rd"
    return f"{n}th"


def _precise(value: float, unit: Unit) -> str:
    """PromQL's value in a tooltip: in the unit, with more digits than the page's."""
    if unit.kind == "seconds":
        return f"{value:.6g} s"
    if unit.kind == "bytes":
        return f"{value:,.6g} B"
    suffix = f" {unit.symbol}" if unit.symbol and unit.kind == "plain" else ""
    return f"{value:.6g}{suffix}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return NAN


def _svg_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@functools.lru_cache(maxsize=256)
def _chart_layout(
    bounds: tuple[float, ...], unit: Unit, large: bool
) -> tuple[int, int, tuple[tuple[str, str, str, str, str, bool], ...]]:
    """What a chart of these buckets draws whatever the counts: its size and, per bar,
    (x, width, the bound's label, its centre, the bucket as text, whether it is labelled).
    Worked out once: a family page draws 100 charts of the same buckets."""
    width, height = (640, 120) if large else (100, 24)
    n = max(len(bounds), 1)
    slot = width / n
    gap = min(6.0 if large else 2.0, slot * 0.2)
    label_every = math.ceil(48 / slot)  # a bound's label needs about 48 units
    bars = []
    for i, bound in enumerate(bounds):
        lower = bounds[i - 1] if i else (0.0 if bound > 0 else -INF)
        bars.append(
            (
                _svg_number(i * slot + gap / 2),
                _svg_number(slot - gap),
                fmt.number(bound, unit) if bound != INF else "+Inf",
                _svg_number(i * slot + slot / 2),
                fmt.value_range(lower, bound, unit) if n > 1 else "all",
                (n - 1 - i) % label_every == 0,
            )
        )
    return width, height, tuple(bars)


def bucket_chart(
    bounds: Sequence[float],
    counts: Sequence[float],
    unit: Unit,
    *,
    large: bool,
    over: str = "since start",
) -> Chart:
    """Bars of the per-bucket (not cumulative) ``counts``, +Inf included, in equal
    widths; its ``summary`` names the busiest bucket and the total."""
    width, height, layout = _chart_layout(tuple(bounds), unit, large)
    top = max(counts, default=0.0) or 1.0
    bars = []
    for (x, bar_width, label, cx, where, show_label), count in zip(layout, counts, strict=False):
        h = 0.0 if count != count else (count / top) * (height - 1)
        h = max(h, 1.0) if count else 0.0  # a non-empty bucket stays visible
        observations = "observation" if count == 1 else "observations"
        counted = fmt.count(count)
        bars.append(
            Bar(
                x=x,
                y=_svg_number(height - h),
                width=bar_width,
                height=_svg_number(h),
                label=label,
                title=f"{where}: {counted} {observations}",
                cx=cx,
                show_label=show_label,
                count=counted,
                where=where,
            )
        )
    total = sum(counts)
    if not total:
        summary = f"Observations per bucket, {over}: none"
    else:
        busiest = max(range(len(bars)), key=lambda i: counts[i])
        where = bars[busiest].where
        summary = (
            f"Observations per bucket, {over}: {fmt.count(total)} in all, "
            f"most ({fmt.count(counts[busiest])}) in {where}"
        )
    return Chart(width, height, bars, large, summary)


def _label_key(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


def series_data(definition: MetricDefinition, value: Any) -> SeriesData:
    """A series' numbers from its value as :class:`~pytheus.definitions.MetricSeries`
    carries it (shaped by type, see :data:`pytheus.definitions.SERIES_VALUES`)."""
    kind = definition.type
    if kind == "counter":
        return SeriesData(value=value[0])
    if kind == "histogram":
        cumulative = list(itertools.accumulate(value.counts))
        count = cumulative[-1] if cumulative else 0.0
        return SeriesData(
            count=count, sum=value.sum, bounds=definition.buckets, cumulative=cumulative
        )
    if kind == "summary":
        return SeriesData(count=value.observations, sum=value.sum, quantiles=list(value.quantiles))
    if kind == "stateset":
        return SeriesData(states=[(s, 1.0 if s == value else 0.0) for s in definition.states])
    if kind == "info":
        return SeriesData(value=1.0)
    return SeriesData(value=value)


_LABELS = operator.attrgetter("labels")


def build_family(item: MetricSeries | MetricFamily, unit_hint: Unit | None = None) -> FamilyView:
    """One metric's series as the dashboard shows them.

    ``item`` is what ``REGISTRY.collect_series()`` yields: the definition and each
    series' label set and value, so nothing is regrouped here. A family of samples (a
    custom collector's, in tests) is read back into series by the core first.
    """
    ms = as_series(item)
    d = ms.definition
    kind = d.type
    names = d.labelnames
    found: list[tuple[LabelSet, Any]] = list(ms.series)
    if kind == "info":  # the info's labels are shown as columns after the series' own
        found = [(LabelSet.of({**labels, **value}), value) for labels, value in found]
    label_names = {labels.names_tuple for labels, _ in found}
    if label_names == {names} or not found:  # the usual case: no label to add or align
        series = [Series(labels.text, labels.values_tuple, d, value) for labels, value in found]
    else:
        for labels, _ in found:  # labels a backend adds (pid), or an info's
            if labels.names_tuple != names:
                names += tuple(n for n in labels.names_tuple if n not in names)
        series = []
        for labels, value in found:
            values = labels.values_tuple
            if labels.names_tuple != names:
                by_name = dict(zip(labels.names_tuple, values, strict=True))
                values = tuple(by_name.get(n, "") for n in names)
            series.append(Series(labels.text, values, d, value))
    series.sort(key=_LABELS)
    return FamilyView(
        name=d.name,
        type=kind,
        help=d.help,
        unit=d.unit,
        labelnames=names,
        series=series,
        total_series=len(series),
        unit_hint=unit_hint,
    )


def build_families(
    found: Iterable[MetricSeries | MetricFamily], unit_hints: Mapping[str, Unit] | None = None
) -> list[FamilyView]:
    """What ``REGISTRY.collect_series()`` returned, as the dashboard's families of series.

    ``unit_hints`` gives units the names do not tell (the queries per request are whole
    numbers of queries).
    """
    unit_hints = unit_hints or {}
    families = [as_series(item) for item in found]
    return [build_family(ms, unit_hints.get(ms.definition.name)) for ms in families]


# --------------------------------------------------------------------------- selection

#: Where a family comes from, in the order the dashboard lists them, with headings.
ORIGINS = {
    "site": "This site's metrics",
    "django": "Requests, database and cache (django_pytheus)",
    "runtime": "Process and runtime",
}
#: The orders of the family list.
SORTS = {"": "This site first", "name": "Name", "active": "Most active"}


def origin(name: str, app: Collection[str] = ()) -> str:
    """``site``, ``django`` (one of ``app``, django_pytheus's own families) or
    ``runtime`` (the process, Python and pytheus collectors)."""
    if f"{name}_".startswith(RUNTIME_PREFIXES):  # an Info's family "python" too
        return "runtime"
    return "django" if name in app else "site"


@dataclass
class Selection:
    """The families a page shows, after search, type filter and sort."""

    families: list[FamilyView]
    type_counts: dict[str, int]  # families per type, after the search
    total_families: int
    total_series: int
    matched_series: int  # series of the families found (those that matched, by label)

    @property
    def total_series_text(self) -> str:
        return fmt.count(self.total_series)

    @property
    def matched_series_text(self) -> str:
        return fmt.count(self.matched_series)


def _matches(s: Series, needle: str) -> bool:
    return any(needle in v.lower() for v in s.labels)


def activity(family: FamilyView) -> float:
    """Observations or increase per second over the family's window, all series."""
    window = family.window
    if not family.rated or window is None or window.span <= 0:
        return 0.0
    keys = {s.key for s in family.series}
    increases = window.total_increases()
    return sum(v for k, v in increases.items() if k in keys) / window.span


def select(
    families: Iterable[FamilyView],
    *,
    query: str = "",
    type: str = "",
    sort: str = "",
    app: Collection[str] = (),
) -> Selection:
    """Search names, help text and label values; filter by type; order.

    A family whose name or help matches keeps all its series; otherwise it is shown
    with the series whose label values match, if any. ``sort`` is ``""`` (this site's
    metrics, then django_pytheus's, named in ``app``, then the process's; by name
    within each), ``name`` or ``active`` (highest rate first).
    """
    needle = query.strip().lower()
    everything = list(families)
    found: list[FamilyView] = []
    for f in everything:
        if not needle or needle in f.query_name.lower() or needle in f.help.lower():
            found.append(f)
            continue
        matching = [s for s in f.series if _matches(s, needle)]
        if matching:
            found.append(_with_series(f, matching))
    type_counts = dict.fromkeys(TYPES, 0)
    for f in found:
        type_counts[f.type] = type_counts.get(f.type, 0) + 1
    if type:
        found = [f for f in found if f.type == type]
    if sort == "name":
        found.sort(key=lambda f: f.name)
    elif sort == "active":
        found.sort(key=lambda f: (-activity(f), f.name))
    else:
        ranks = {o: i for i, o in enumerate(ORIGINS)}
        found.sort(key=lambda f: (ranks[origin(f.name, app)], f.name))
    return Selection(
        families=found,
        type_counts=type_counts,
        total_families=len(everything),
        total_series=sum(f.total_series for f in everything),
        matched_series=sum(len(f.series) for f in found),
    )


def _with_series(family: FamilyView, series: list[Series]) -> FamilyView:
    """``family`` showing only ``series`` (its numbers and window shared)."""
    return FamilyView(
        family.name,
        family.type,
        family.help,
        family.unit,
        family.labelnames,
        series,
        family.total_series,
        matched_by_labels=True,
        unit_hint=family.unit_hint,
        window=family.window,
        read_at=family.read_at,
        stale_since=family.stale_since,
        local_only=family.local_only,
        _stats=family._stats,
        _bounds=family._bounds,
    )


# --------------------------------------------------------------------------- backend


@dataclass
class Outage:
    """Reading the metrics has been failing since ``since`` (Unix time): ``error`` is
    the last failure, ``failures`` how many reads failed in a row."""

    since: float
    error: str
    failures: int = 1


# Configuration keys shown as the server, not again among the options.
_SERVER_KEYS = frozenset({"url", "host", "port", "db", "unix_socket_path"})


def _server(backend: object, config: Mapping[str, Any] | None) -> str:
    """Where a Redis backend's server is (``127.0.0.1:6379, db 0``), without secrets."""
    client = getattr(backend, "client", None)
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, Mapping):
        if kwargs.get("path"):
            return f"{kwargs['path']}, db {kwargs.get('db', 0)}"
        if kwargs.get("host"):
            return f"{kwargs['host']}:{kwargs.get('port', 6379)}, db {kwargs.get('db', 0)}"
    url = (config or {}).get("url")
    return str(mask_secrets(url)) if isinstance(url, str) else ""


def backend_status(
    backend: object,
    config: Mapping[str, Any] | None = None,
    *,
    now: float | None = None,
    outage: Outage | None = None,
    cache_alias: str | None = None,
) -> dict[str, Any]:
    """What the page shows of ``backend``, secrets masked, without network I/O.

    Backends with a ``status()`` method (the Redis backend) report whether the last
    flush or scrape reached the server, when the last flush succeeded, how many series
    wait to be sent and how many errors there were; others (in-memory) only their class.
    ``outage`` (tracked by the page) says since when reading has failed, and why. Every
    value is a string, a bool or a list of ``(key, value)`` strings.
    """
    cls = type(backend)
    now = time.time() if now is None else now
    info: dict[str, Any] = {
        "backend": cls.__name__,
        "backend_path": f"{cls.__module__}.{cls.__qualname__}",
        "shared": False,
        "healthy": outage is None,
        "health": "In this process only",
        "last_flush": "",
        "pending_series": "",
        "errors": "",
        "server": "",
        "config": [],
        "problem": "",
    }
    if config:
        masked = mask_secrets(dict(config))
        info["config"] = [(str(k), str(v)) for k, v in masked.items() if str(k) not in _SERVER_KEYS]
    if cache_alias:
        info["config"].insert(0, ("CACHE", cache_alias))
    status = getattr(backend, "status", None)
    raw: Mapping[str, Any] = status() if callable(status) else {}
    if callable(status):
        healthy = bool(raw.get("healthy", True)) and outage is None
        last = raw.get("last_flush")
        info.update(
            shared=True,
            healthy=healthy,
            health="Reachable" if healthy else "Unreachable",
            last_flush=fmt.age(max(now - last, 0.0)) if last else "never",
            pending_series=fmt.count(raw.get("pending_series") or 0),
            errors=fmt.count(raw.get("errors") or 0),
            server=_server(backend, config),
        )
    if outage is not None:
        info["health"] = "Unreachable" if info["shared"] else "Unreadable"
        info["problem"] = (
            f"Reading the metrics has failed since {fmt.clock(outage.since)} "
            f"({fmt.duration(max(now - outage.since, 0.0))}, {fmt.count(outage.failures)} "
            f"failed read{'s' if outage.failures != 1 else ''}): {outage.error}"
        )
    elif info["shared"] and not info["healthy"]:
        info["problem"] = (
            "The last flush to Redis failed; values recorded since wait in this process "
            "and are sent when Redis answers again."
        )
    return info
