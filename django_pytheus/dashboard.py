"""What the admin dashboard shows, computed from the registry: no Django, no templates.

The admin page (:mod:`django_pytheus.admin`) reads ``REGISTRY.collect()`` once per
request and hands the families to :func:`build_families`, which groups each family's
samples into series (a histogram's ``_bucket``/``_count``/``_sum`` samples become one
series); :func:`select` then searches, filters and sorts them. Presentation (formatted
numbers, chart geometry) is computed only for the rows a page shows, by
:meth:`FamilyView.rows`, so that a registry of 10,000 series renders quickly.

Pure helpers with tests of their own:

* :func:`histogram_quantile`: PromQL's ``histogram_quantile`` on one series' buckets;
* :func:`mask_secrets`: a backend configuration made safe to show;
* :func:`format_value`, :func:`format_stat`: numbers for people.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytheus.naming import sample_name
from pytheus.samples import LabelSet, MetricFamily, escape_label_value

__all__ = [
    "QUANTILES",
    "TYPES",
    "FamilyView",
    "Row",
    "Series",
    "backend_status",
    "build_families",
    "format_stat",
    "format_value",
    "histogram_quantile",
    "mask_secrets",
    "select",
]

#: The quantiles estimated for every histogram series.
QUANTILES = (0.5, 0.9, 0.99)

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

NAN = math.nan
INF = math.inf

# --------------------------------------------------------------------------- quantiles


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
    if math.isnan(q):
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    merged: list[list[float]] = []
    for bound, count in sorted(buckets, key=lambda b: b[0]):
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    if len(merged) < 2 or merged[-1][0] != INF:
        return NAN
    # Float sums of counts can wobble by an ulp; keep such steps flat (as PromQL does,
    # with the same tolerance), then take the envelope so the counts never decrease.
    previous = merged[0][1]
    for b in merged[1:]:
        delta = abs(b[1] - previous)
        if delta and delta / b[1] <= 1e-12:
            b[1] = previous
        elif delta:
            previous = b[1]
    highest = merged[0][1]
    for b in merged[1:]:
        highest = b[1] = max(highest, b[1])
    observations = merged[-1][1]
    if observations <= 0:
        return NAN
    rank = q * observations
    counts = [b[1] for b in merged[:-1]]
    i = bisect.bisect_left(counts, rank)  # the first bucket holding the rank-th observation
    if i == len(merged) - 1:
        return merged[-2][0]
    upper, count = merged[i]
    if i == 0 and upper <= 0:
        return upper
    lower = 0.0
    if i > 0:
        lower = merged[i - 1][0]
        count -= merged[i - 1][1]
        rank -= merged[i - 1][1]
    if count == 0:  # only when q == 0 and the lowest bucket is empty
        return NAN
    return lower + (upper - lower) * (rank / count)


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


# --------------------------------------------------------------------------- numbers


def format_value(value: float) -> str:
    """A sample value for people: ``1,234``, ``0.25``, ``1.5e+09``, ``+Inf``, ``NaN``."""
    if value != value:
        return "NaN"
    if value in (INF, -INF):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if 1e-4 <= abs(value) < 1e9:
        return f"{value:,.6g}" if abs(value) >= 1e6 else f"{value:.6g}"
    return f"{value:.4g}"


_UNITS = {
    "seconds": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
    "bytes": ((1024.0**3, "GiB"), (1024.0**2, "MiB"), (1024.0, "KiB"), (1.0, "B")),
}


def unit_of(name: str, unit: str = "") -> str:
    """``seconds`` or ``bytes`` when the family measures them (by unit or name), else ''."""
    for known in _UNITS:
        if unit == known or name.endswith(f"_{known}"):
            return known
    return ""


def format_stat(value: float, unit: str = "") -> str:
    """A statistic of a distribution (sum, mean, quantile, bound) in a readable unit.

    ``format_stat(0.0123, "seconds")`` is ``12.3 ms``; ``format_stat(2048, "bytes")``
    is ``2 KiB``; without a known unit it is :func:`format_value`. NaN (no data) is
    shown as an em dash.
    """
    if value != value:
        return "—"
    if unit not in _UNITS or value in (INF, -INF) or value == 0:
        return format_value(value)
    scales = _UNITS[unit]
    scale, symbol = next(((s, u) for s, u in scales if abs(value) >= s), scales[-1])
    scaled = value / scale
    if unit == "seconds" and scale == 1.0 and abs(scaled) >= 1000:
        return f"{scaled:,.0f} s"
    return f"{scaled:.3g} {symbol}"


# --------------------------------------------------------------------------- series

# The label that tells a family's samples of one series apart, per type.
_PART_LABEL = {"histogram": "le", "summary": "quantile"}


@dataclass(slots=True)
class SeriesData:
    """A series' numbers, by type: counter/gauge/info ``value``; histogram ``count``,
    ``sum`` and cumulative ``buckets``; summary ``count``, ``sum``, ``quantiles``;
    state set ``states``."""

    value: float = NAN
    count: float = NAN
    sum: float = NAN
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (le, cumulative)
    quantiles: list[tuple[str, float]] = field(default_factory=list)
    states: list[tuple[str, float]] = field(default_factory=list)


class Series:
    """One series of a family. Its numbers (:attr:`data`) are read from its samples
    when first asked for: a page shows a few of 10,000 series, and searching them
    needs only their labels."""

    __slots__ = ("key", "labels", "_kind", "_name", "_samples", "_data")

    def __init__(
        self,
        key: str,
        labels: tuple[str, ...],
        kind: str = "gauge",
        name: str = "",
        samples: list[tuple[str, str, float]] | None = None,
    ) -> None:
        self.key = key  # the label text without le/quantile/state: stable across refreshes
        self.labels = labels  # values in the order of FamilyView.labelnames ('' if absent)
        self._kind = kind
        self._name = name
        self._samples = samples or []  # (sample name, le/quantile/state value, value)
        self._data: SeriesData | None = None

    @property
    def data(self) -> SeriesData:
        if self._data is None:
            self._data = _parse(self._kind, self._name, self._samples)
        return self._data

    def __repr__(self) -> str:
        return f"Series({self.key!r}, {self.data!r})"


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
    title: str  # "≤ 10 ms: 3 observations"
    cx: str = "0"  # the bar's centre, where its label goes
    show_label: bool = True  # labels too close together are thinned out


@dataclass(slots=True)
class Chart:
    """An inline SVG bar chart: ``height`` for the bars, ``full_height`` with the labels."""

    width: int
    height: int
    bars: list[Bar]
    large: bool

    @property
    def full_height(self) -> int:
        return self.height + (18 if self.large else 0)

    @property
    def label_y(self) -> int:
        return self.full_height - 4


@dataclass(slots=True)
class Row:
    """A series as a table row: label values, formatted cells, optional chart."""

    key: str
    labels: tuple[str, ...]
    cells: list[tuple[str, str]]  # (column id, text)
    chart: Chart | None = None


@dataclass
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

    @property
    def series_text(self) -> str:
        """The number of series, as the page shows it (``10,000``)."""
        return format_value(self.total_series)

    @property
    def query_name(self) -> str:
        """The name to query in PromQL: ``x_total`` for a counter, ``x_info`` for an info."""
        return sample_name(self.name, self.type)

    @property
    def type_display(self) -> str:
        return TYPES.get(self.type, self.type)

    @property
    def stat_unit(self) -> str:
        return unit_of(self.name, self.unit)

    @property
    def columns(self) -> list[tuple[str, str]]:
        """The value columns (id, title) of this family's series table."""
        if self.type == "histogram":
            return [
                ("count", "Count"),
                ("sum", "Sum"),
                ("mean", "Mean"),
                *((f"p{_q_id(q)}", f"p{_q_id(q)}") for q in QUANTILES),
            ]
        if self.type == "summary":
            quantiles = sorted(
                {q for s in self.series[:100] for q, _ in s.data.quantiles}, key=_float
            )
            return [
                ("count", "Count"),
                ("sum", "Sum"),
                ("mean", "Mean"),
                *((f"q{q}", f"q{q}") for q in quantiles),
            ]
        if self.type == "stateset":
            return [("state", "State")]
        if self.type == "info":
            return []
        return [("value", "Value")]

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

    def rows(self, series: Sequence[Series] | None = None, *, large: bool = False) -> list[Row]:
        """Presentation of ``series`` (default: all), computed only for them."""
        unit = self.stat_unit
        columns = [c for c, _ in self.columns]
        return [
            self._row(s, columns, unit, large) for s in (self.series if series is None else series)
        ]

    def _row(self, series: Series, columns: list[str], unit: str, large: bool) -> Row:
        s = series.data
        key, labels = series.key, series.labels
        if self.type == "histogram":
            mean = s.sum / s.count if s.count else NAN
            cells = [
                ("count", format_value(s.count)),
                ("sum", format_stat(s.sum, unit)),
                ("mean", format_stat(mean, unit)),
                *(
                    (f"p{_q_id(q)}", format_stat(histogram_quantile(q, s.buckets), unit))
                    for q in QUANTILES
                ),
            ]
            return Row(key, labels, cells, bucket_chart(s.buckets, unit, large=large))
        if self.type == "summary":
            mean = s.sum / s.count if s.count else NAN
            by_q = dict(s.quantiles)
            cells = [
                ("count", format_value(s.count)),
                ("sum", format_stat(s.sum, unit)),
                ("mean", format_stat(mean, unit)),
            ]
            cells += [(c, format_stat(by_q.get(c[1:], NAN), unit)) for c in columns[3:]]
            return Row(key, labels, cells)
        if self.type == "stateset":
            current = [state for state, v in s.states if v]
            return Row(key, labels, [("state", ", ".join(current) or "—")])
        if self.type == "info":
            return Row(key, labels, [])
        return Row(key, labels, [("value", format_value(s.value))])


def _q_id(q: float) -> str:
    """``0.5`` -> ``50``, ``0.99`` -> ``99``, ``0.999`` -> ``99.9``."""
    return f"{q * 100:g}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return NAN


def _svg_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bucket_chart(buckets: Sequence[tuple[float, float]], unit: str, *, large: bool) -> Chart:
    """Bars of the per-bucket (not cumulative) counts, +Inf included, in equal widths."""
    width, height = (640, 120) if large else (100, 24)
    ordered = sorted(buckets)
    counts: list[float] = []
    previous = 0.0
    for _, cumulative in ordered:
        counts.append(max(cumulative - previous, 0.0))
        previous = max(previous, cumulative)
    top = max(counts, default=0.0) or 1.0
    n = max(len(ordered), 1)
    slot = width / n
    gap = min(6.0 if large else 2.0, slot * 0.2)
    label_every = math.ceil(48 / slot)  # a bound's label needs about 48 units
    bars = []
    for i, ((bound, _), count) in enumerate(zip(ordered, counts, strict=True)):
        h = 0.0 if count != count else (count / top) * (height - 1)
        h = max(h, 1.0) if count else 0.0  # a non-empty bucket stays visible
        bound_text = format_stat(bound, unit)
        lower = format_stat(ordered[i - 1][0], unit) if i else None
        where = f"{lower} to {bound_text}" if lower else f"≤ {bound_text}"
        if bound == INF:
            where = f"> {lower}" if lower else "all"
        observations = "observation" if count == 1 else "observations"
        bars.append(
            Bar(
                x=_svg_number(i * slot + gap / 2),
                y=_svg_number(height - h),
                width=_svg_number(slot - gap),
                height=_svg_number(h),
                label=bound_text,
                title=f"{where}: {format_value(count)} {observations}",
                cx=_svg_number(i * slot + slot / 2),
                show_label=(n - 1 - i) % label_every == 0,
            )
        )
    return Chart(width, height, bars, large)


def _label_key(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


class _Group:
    """The samples of one series while a family is grouped."""

    __slots__ = ("labels", "fallback", "samples")

    def __init__(self) -> None:
        self.labels: Mapping[str, str] | None = None  # the series' own labels, if seen
        self.fallback: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self.samples: list[tuple[str, str, float]] = []  # (sample name, part, value)

    def names_values(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        labels = self.labels
        if labels is None:
            assert self.fallback is not None
            return self.fallback
        names = tuple(labels)
        if isinstance(labels, LabelSet):
            return names, labels.values_tuple
        return names, tuple(labels[n] for n in names)


def _without_part(
    labels: Mapping[str, str], part_label: str
) -> tuple[str, str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The slow way: (series key, part value, (names, values)) of a labelled sample."""
    names = tuple(labels)
    values = labels.values_tuple if isinstance(labels, LabelSet) else tuple(labels.values())
    if part_label not in names:
        return _label_key(names, values), "", (names, values)
    i = names.index(part_label)
    names, part, values = names[:i] + names[i + 1 :], values[i], values[:i] + values[i + 1 :]
    return _label_key(names, values), part, (names, values)


def _group(
    family: MetricFamily, part_sample: str | None, part_label: str | None, sample_names: set[str]
) -> dict[str, _Group]:
    """The family's samples by series, keyed by the series' label text.

    ``part_sample`` is the name of the samples that carry ``part_label`` (a histogram's
    ``_bucket`` samples carry ``le``). The core appends that label last to the series'
    own LabelSet, whose text is cached: the key is then a slice of the sample's text,
    which keeps a registry of 10,000 histogram series quick to group.
    """
    groups: dict[str, _Group] = {}
    for sample in family.samples:
        name = sample.name
        if name not in sample_names:
            continue
        labels = sample.labels
        part = ""
        own: Mapping[str, str] | None = None
        fallback = None
        if name != part_sample or part_label is None:
            own = labels
            key = labels.text if isinstance(labels, LabelSet) else _label_key(*_split(labels))
        else:
            key = ""
            values = labels.values_tuple if isinstance(labels, LabelSet) else ()
            tail = f'{part_label}="{values[-1]}"' if values else ""
            if tail and labels.text == tail:  # type: ignore[attr-defined]
                part = values[-1]
            elif tail and labels.text.endswith("," + tail):  # type: ignore[attr-defined]
                part = values[-1]
                key = labels.text[: -len(tail) - 1]  # type: ignore[attr-defined]
            else:
                key, part, fallback = _without_part(labels, part_label)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        if own is not None and group.labels is None:
            group.labels = own
        elif group.labels is None and group.fallback is None:
            if fallback is None:
                names = tuple(labels)[:-1]
                fallback = names, labels.values_tuple[:-1]  # type: ignore[attr-defined]
            group.fallback = fallback
        group.samples.append((name, part, sample.value))
    return groups


def _split(labels: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = tuple(labels)
    return names, tuple(labels[n] for n in names)


def _parse(kind: str, name: str, samples: list[tuple[str, str, float]]) -> SeriesData:
    """A series' numbers from its samples (sample name, part label value, value)."""
    d = SeriesData()
    if kind == "histogram":
        for sample_name, part, v in samples:
            if sample_name.endswith("_bucket"):
                d.buckets.append((_float(part), v))
            elif sample_name.endswith("_count"):
                d.count = v
            else:
                d.sum = v
        d.buckets.sort()
        if d.count != d.count and d.buckets:
            d.count = d.buckets[-1][1]
    elif kind == "summary":
        for sample_name, part, v in samples:
            if sample_name == name:
                d.quantiles.append((part, v))
            elif sample_name.endswith("_count"):
                d.count = v
            else:
                d.sum = v
    elif kind == "stateset":
        d.states = [(part, v) for _, part, v in samples]
    elif samples:
        d.value = samples[-1][2]
    return d


def build_family(family: MetricFamily, labelnames: Sequence[str] | None = None) -> FamilyView:
    """Group one family's samples into series. ``labelnames``: the definition's, if known."""
    kind = family.type
    name = family.name
    part_label = _PART_LABEL.get(kind)
    if kind == "stateset":
        part_label = name  # an Enum's state is the label named after the metric
    if kind == "histogram":
        wanted = {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    elif kind == "summary":
        wanted = {name, f"{name}_count", f"{name}_sum"}
    else:  # x_total for a counter, x_info for an info, else x
        wanted = {sample_name(name, kind)}
    part_sample = {"histogram": f"{name}_bucket"}.get(kind, name if part_label else None)
    groups = _group(family, part_sample, part_label, wanted)
    names = tuple(labelnames) if labelnames is not None else ()
    split = {key: group.names_values() for key, group in groups.items()}
    for series_names in dict.fromkeys(n for n, _ in split.values()):  # few distinct tuples
        names += tuple(n for n in series_names if n not in names)
    series = []
    for key, group in groups.items():
        series_names, values = split[key]
        if series_names != names:  # a series without some label, or in another order
            by_name = dict(zip(series_names, values, strict=True))
            values = tuple(by_name.get(n, "") for n in names)
        series.append(Series(key, values, kind, name, group.samples))
    series.sort(key=lambda s: s.labels)
    return FamilyView(
        name=name,
        type=kind,
        help=family.help,
        unit=family.unit,
        labelnames=names,
        series=series,
        total_series=len(series),
    )


def build_families(
    families: Iterable[MetricFamily], labelnames: Mapping[str, Sequence[str]] | None = None
) -> list[FamilyView]:
    """:func:`build_family` for each family; ``labelnames`` maps family names to the
    label names of local definitions (remote families learn theirs from samples)."""
    labelnames = labelnames or {}
    return [build_family(f, labelnames.get(f.name)) for f in families]


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """The families a page shows, after search, type filter and sort."""

    families: list[FamilyView]
    type_counts: dict[str, int]  # families per type, after the search
    total_families: int
    total_series: int

    @property
    def total_series_text(self) -> str:
        return format_value(self.total_series)


def _matches(s: Series, needle: str) -> bool:
    return any(needle in v.lower() for v in s.labels)


def select(
    families: Iterable[FamilyView],
    *,
    query: str = "",
    type: str = "",
    sort: str = "name",
) -> Selection:
    """Search names, help text and label values; filter by type; sort.

    A family whose name or help matches keeps all its series; otherwise it is shown
    with the series whose label values match, if any. ``sort`` is ``name`` or
    ``series`` (most series first).
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
            found.append(
                FamilyView(
                    f.name,
                    f.type,
                    f.help,
                    f.unit,
                    f.labelnames,
                    matching,
                    f.total_series,
                    matched_by_labels=True,
                )
            )
    type_counts = dict.fromkeys(TYPES, 0)
    for f in found:
        type_counts[f.type] = type_counts.get(f.type, 0) + 1
    if type:
        found = [f for f in found if f.type == type]
    if sort == "series":
        found.sort(key=lambda f: (-len(f.series), f.name))
    else:
        found.sort(key=lambda f: f.name)
    return Selection(
        families=found,
        type_counts=type_counts,
        total_families=len(everything),
        total_series=sum(f.total_series for f in everything),
    )


# --------------------------------------------------------------------------- backend


def _age(seconds: float) -> str:
    if seconds < 1:
        return "just now"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def backend_status(
    backend: object, config: Mapping[str, Any] | None = None, *, now: float | None = None
) -> dict[str, Any]:
    """What the status panel shows of ``backend``, secrets masked, without network I/O.

    Backends with a ``status()`` method (the Redis backend) report whether the last
    flush or scrape reached the server, when the last flush succeeded, how many series
    wait to be sent and how many errors there were; others (in-memory) only their class.
    Every value is a string or a bool, ready for the template and the JSON endpoint.
    """
    cls = type(backend)
    info: dict[str, Any] = {
        "backend": cls.__name__,
        "backend_path": f"{cls.__module__}.{cls.__qualname__}",
        "shared": False,
        "healthy": True,
        "health": "In this process only",
        "last_flush": "",
        "pending_series": "",
        "errors": "",
        "server": "",
        "process": "",
        "config": "",
    }
    if config:
        masked = mask_secrets(dict(config))
        info["config"] = ", ".join(f"{k}={v}" for k, v in masked.items())
    status = getattr(backend, "status", None)
    if not callable(status):
        return info
    raw = status()
    now = time.time() if now is None else now
    healthy = bool(raw.get("healthy", True))
    last = raw.get("last_flush")
    info.update(
        shared=True,
        healthy=healthy,
        health="Reachable" if healthy else "Unreachable",
        last_flush=_age(max(now - last, 0.0)) if last else "never",
        pending_series=format_value(raw.get("pending_series") or 0),
        errors=format_value(raw.get("errors") or 0),
        server=str(mask_secrets(str(raw.get("redis", "")))),
        process=str(raw.get("process", "")),
    )
    return info
