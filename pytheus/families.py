"""How a definition and its series become a family of samples, and back.

The one place that knows which samples each type exposes: a counter's ``_total``, a
histogram's cumulative ``_bucket`` samples (``le`` appended to the series' labels),
``_count`` and ``_sum``, a summary's ``quantile`` samples, an info's ``_info`` sample
with its labels, a state set's sample per state. The names come from
:mod:`pytheus.naming`.

* :func:`build_family` turns a :class:`~pytheus.definitions.MetricSeries` (what backends
  read) into a :class:`~pytheus.samples.MetricFamily` (what the exposition renders);
* :func:`series_of_family` goes the other way for families that only a custom collector
  (or an older backend) yields, so that readers of series see every family;
* :func:`as_family` and :func:`as_series` take either and return the one asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytheus.definitions import HistogramState, MetricDefinition, MetricSeries, SummaryState
from pytheus.naming import sample_name
from pytheus.samples import EMPTY_LABELS, Exemplar, LabelSet, MetricFamily, Sample, format_float

__all__ = [
    "add_samples",
    "as_family",
    "as_series",
    "build_family",
    "empty_family",
    "le_values",
    "series_of_family",
]

# Builds a Sample without the Python-level namedtuple __new__: exposition makes one per
# series per scrape.
_sample = tuple.__new__

Pairs = Iterable[tuple[LabelSet, Any]]


# --------------------------------------------------------------------------- series -> family


def _counter(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    name = sample_name(d.name, "counter")
    out.extend([_sample(Sample, (name, labels, v, None, ex)) for labels, (v, ex) in series])


def _value(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    name = d.name
    out.extend([_sample(Sample, (name, labels, v, None, None)) for labels, v in series])


def _histogram(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    name = d.name
    bucket, total, count = f"{name}_bucket", f"{name}_sum", f"{name}_count"
    le = le_values(d)
    append = out.append
    for labels, (counts, sum_, exemplars) in series:
        cumulative = 0.0
        # The bucket labels are kept by the series' LabelSet: built once per series,
        # not once per scrape. The dashboard's grouping relies on le coming last.
        bucket_labels = labels.with_label_each("le", le)
        for i, c in enumerate(counts):
            cumulative += c
            ex = exemplars[i] if exemplars else None
            append(_sample(Sample, (bucket, bucket_labels[i], cumulative, None, ex)))
        append(_sample(Sample, (count, labels, cumulative, None, None)))
        append(_sample(Sample, (total, labels, sum_, None, None)))


def le_values(d: MetricDefinition) -> tuple[str, ...]:
    """The ``le`` label of each of a histogram's buckets, as its samples carry it."""
    return tuple([format_float(b) for b in d.buckets])


def _summary(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    name = d.name
    total, count = f"{name}_sum", f"{name}_count"
    append = out.append
    for labels, (count_, sum_, quantiles) in series:
        for q, v in quantiles:
            quantile = labels.with_label("quantile", format_float(q))
            append(_sample(Sample, (name, quantile, v, None, None)))
        append(_sample(Sample, (count, labels, count_, None, None)))
        append(_sample(Sample, (total, labels, sum_, None, None)))


def _info(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    name = sample_name(d.name, "info")
    for labels, info in series:
        # Not with_label(): info values may change, and its results are kept.
        merged = LabelSet((*labels, *info), (*labels.values(), *info.values()))
        out.append(_sample(Sample, (name, merged, 1.0, None, None)))


def _stateset(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    # Each state is a sample labelled with the metric's own name: 1 if current, else 0.
    name = d.name
    for labels, current in series:
        for s in d.states:
            value = 1.0 if s == current else 0.0
            out.append(_sample(Sample, (name, labels.with_label(name, s), value, None, None)))


_BUILDERS: dict[str, Callable[[MetricDefinition, Pairs, list[Sample]], None]] = {
    "counter": _counter,
    "gauge": _value,
    "histogram": _histogram,
    "summary": _summary,
    "info": _info,
    "stateset": _stateset,
    "unknown": _value,
}


def build_family(ms: MetricSeries) -> MetricFamily:
    """The family of samples that ``ms`` exposes, as both exposition formats render it."""
    family = empty_family(ms.definition)
    add_samples(ms.definition, ms.series, family.samples)
    return family


def empty_family(d: MetricDefinition) -> MetricFamily:
    """The family of definition ``d``, without samples yet (see :func:`add_samples`)."""
    return MetricFamily(d.name, d.type, d.help, unit=d.unit, given_name=d.given_name)


def add_samples(d: MetricDefinition, series: Pairs, out: list[Sample]) -> None:
    """Append the samples of ``series`` (label sets and values of definition ``d``) to
    ``out``, series after series. A reader that keeps each series' samples between
    scrapes (the Redis backend's) builds only those of the series that changed."""
    _BUILDERS[d.type](d, series, out)


# --------------------------------------------------------------------------- family -> series


def _part(labels: Mapping[str, str], label: str) -> tuple[LabelSet, str]:
    """``labels`` without ``label``, and that label's value ('' when absent)."""
    names = tuple(n for n in labels if n != label)
    return LabelSet(names, tuple(labels[n] for n in names)), labels.get(label, "")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class _Grouped:
    """The samples of one series while a family is read back."""

    __slots__ = ("labels", "parts", "sum", "count", "value", "exemplar")

    def __init__(self, labels: LabelSet) -> None:
        self.labels = labels
        self.parts: dict[str, tuple[float, Exemplar | None]] = {}  # le/quantile/state
        self.sum = 0.0
        self.count: float | None = None
        self.value = 0.0
        self.exemplar: Exemplar | None = None


def _group(family: MetricFamily, part_label: str | None) -> dict[LabelSet, _Grouped]:
    """The family's samples by series; ``part_label`` (``le``, ``quantile``, the state
    label) tells apart the samples of one series that carry it."""
    name = family.name
    value_name = sample_name(name, family.type)
    part_sample = f"{name}_bucket" if family.type == "histogram" else name
    groups: dict[LabelSet, _Grouped] = {}
    for sample in family.samples:
        part: str | None = None
        if part_label is not None and sample.name == part_sample:
            labels, part = _part(sample.labels, part_label)
        else:
            labels = LabelSet.of(sample.labels)
        group = groups.get(labels)
        if group is None:
            group = groups[labels] = _Grouped(labels)
        if part is not None:
            group.parts[part] = (sample.value, sample.exemplar)
        elif sample.name == f"{name}_sum":
            group.sum = sample.value
        elif sample.name == f"{name}_count":
            group.count = sample.value
        elif sample.name == value_name:
            group.value, group.exemplar = sample.value, sample.exemplar
        # Other samples (_created, _gsum, ...) have no place in a series' value.
    return groups


def _histogram_series(family: MetricFamily, groups: Iterable[_Grouped]) -> MetricSeries:
    groups = list(groups)
    bounds = sorted({_number(le) for g in groups for le in g.parts} | {math.inf})
    series = []
    for g in groups:
        # Cumulative counts by bound; a series without some bound keeps the count of
        # the bound below it (a custom family may give its series different bounds).
        cumulative = sorted((_number(le), v) for le, (v, _) in g.parts.items())
        if not cumulative and g.count is not None:
            cumulative = [(math.inf, g.count)]
        counts, previous, i = [], 0.0, 0
        for bound in bounds:
            while i < len(cumulative) and cumulative[i][0] <= bound:
                previous = max(previous, cumulative[i][1])
                i += 1
            counts.append(previous)
        per_bucket = tuple(b - a for a, b in zip([0.0, *counts[:-1]], counts, strict=True))
        series.append((g.labels, HistogramState(per_bucket, g.sum)))
    return MetricSeries(_definition(family, groups, buckets=tuple(bounds)), series)


def _definition(family: MetricFamily, groups: Sequence[_Grouped], **extra: Any) -> MetricDefinition:
    labelnames = tuple(dict.fromkeys(n for g in groups for n in g.labels))
    return MetricDefinition(
        name=family.name,
        type=family.type,
        help=family.help,
        labelnames=labelnames,
        unit=family.unit,
        **extra,
    )


def series_of_family(family: MetricFamily) -> MetricSeries:
    """Read a family's samples back into series: the fallback for custom collectors.

    Samples that carry no part of a series' value (``_created``, say) are left out; a
    histogram's bounds are those of all its series; an info's labels all become its
    value (a family does not tell which of them label the series); a state set's value
    is its first state whose sample is not 0.
    """
    kind = family.type
    part_label = {"histogram": "le", "summary": "quantile", "stateset": family.name}.get(kind)
    groups = list(_group(family, part_label).values())
    if kind == "histogram":
        return _histogram_series(family, groups)
    if kind == "summary":
        quantiles = sorted({_number(q) for g in groups for q in g.parts})
        series: list[tuple[LabelSet, Any]] = [
            (
                g.labels,
                SummaryState(
                    g.count if g.count is not None else math.nan,
                    g.sum,
                    tuple(sorted((_number(q), v) for q, (v, _) in g.parts.items())),
                ),
            )
            for g in groups
        ]
        return MetricSeries(_definition(family, groups, quantiles=tuple(quantiles)), series)
    if kind == "stateset":
        states = tuple(dict.fromkeys(s for g in groups for s in g.parts))
        series = [(g.labels, next((s for s, (v, _) in g.parts.items() if v), "")) for g in groups]
        return MetricSeries(_definition(family, groups, states=states), series)
    if kind == "info":
        series = [(EMPTY_LABELS, dict(g.labels)) for g in groups]
        return MetricSeries(_definition(family, []), series)
    if kind == "counter":
        series = [(g.labels, (g.value, g.exemplar)) for g in groups]
    else:
        series = [(g.labels, g.value) for g in groups]
    return MetricSeries(_definition(family, groups), series)


def as_family(item: MetricSeries | MetricFamily) -> MetricFamily:
    """``item`` as a family of samples (built from its series if it is a MetricSeries)."""
    return build_family(item) if isinstance(item, MetricSeries) else item


def as_series(item: MetricSeries | MetricFamily) -> MetricSeries:
    """``item`` as a MetricSeries (read back from its samples if it is a family)."""
    return item if isinstance(item, MetricSeries) else series_of_family(item)
