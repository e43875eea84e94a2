"""What defines a metric, the shapes its values take, and what backends see of it.

This module sits under the metric classes, the registry and the backends, and imports
none of them:

* :class:`MetricDefinition`: everything that defines a metric, independent of its
  values, and the checks a definition must pass (buckets, quantiles, states, units);
* the value of one series at one moment, by type (:data:`SERIES_VALUES` tells which):
  a float, ``(value, exemplar)``, :class:`HistogramState`, :class:`SummaryState`, a
  dict of info labels or the current state;
* :class:`MetricSeries`: a definition with the label sets and values of its series, as
  one scrape reads them. Backends yield it, :mod:`pytheus.families` turns it into the
  samples of a family, and ``REGISTRY.collect_series()`` hands it to readers that want
  series rather than samples (the admin dashboard);
* :class:`SeriesSource` and :class:`Series`: what registries and backends see of a
  metric and of one of its series, so that they never import the metric classes.
"""

from __future__ import annotations

import itertools
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pytheus.exceptions import BucketException, MetricDefinitionError
from pytheus.naming import sample_name, series_names, validate_label_name, validate_metric_name
from pytheus.samples import Exemplar, LabelSet, MetricFamily, format_float, label_value

__all__ = [
    "DEFAULT_BUCKETS",
    "GAUGE_MODES",
    "SERIES_VALUES",
    "HistogramState",
    "MetricDefinition",
    "MetricSeries",
    "Series",
    "SeriesSource",
    "SummaryState",
    "check_buckets",
    "check_numbers",
    "check_quantiles",
    "check_states",
    "check_summary_window",
    "check_unit",
]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: How a gauge written by many processes is aggregated by a multi-process backend.
#: ``live*`` modes forget processes that stopped, so a killed worker's in-progress count
#: does not stick; ``all`` keeps one series per process (labelled ``pid``).
GAUGE_MODES = frozenset(
    {
        "all",
        "liveall",
        "sum",
        "livesum",
        "max",
        "livemax",
        "min",
        "livemin",
        "mostrecent",
        "livemostrecent",
    }
)

# A summary's age buckets each keep up to the window's capacity of observations per series.
MAX_AGE_BUCKETS = 1000
_INF = math.inf


@dataclass(frozen=True)
class MetricDefinition:
    """Everything that defines a metric, independent of its values.

    Multi-process backends store it so that any process can expose metrics defined by
    another, and compare it to detect the same name defined two different ways.
    ``name`` is the family name (a counter's without ``_total``), ``help`` the help
    text and ``labelnames`` the metric's own label names, in order.
    """

    name: str
    type: str
    help: str
    labelnames: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()
    states: tuple[str, ...] = ()
    multiprocess_mode: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: The name as the metric was defined (prefix and unit included): for a counter,
    #: with or without ``_total``. The text format shows it when counter names are
    #: "as_given" (see :func:`pytheus.exposition.set_counter_names`). By default the
    #: conventional name: ``<name>_total`` for a counter.
    given_name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.given_name:
            object.__setattr__(
                self,
                "given_name",
                sample_name(self.name, self.type) if self.type == "counter" else self.name,
            )

    def series_names(self) -> tuple[str, ...]:
        """Every sample name this metric can produce, for clash detection."""
        return series_names(self.name, self.type)


class HistogramState(NamedTuple):
    """A histogram series at one moment: per-bucket (not cumulative) counts and the sum.

    ``counts[i]`` is the number of observations in the bucket whose upper bound is
    ``definition.buckets[i]`` and above the bound before it; ``exemplars`` is empty or
    has one entry (or None) per bucket.
    """

    counts: tuple[float, ...]
    sum: float
    exemplars: tuple[Exemplar | None, ...] = ()


class SummaryState(NamedTuple):
    """A summary series at one moment; ``quantiles`` pairs each quantile with its value."""

    observations: float
    sum: float
    quantiles: tuple[tuple[float, float], ...] = ()


#: The value of one series, by metric type, as :class:`MetricSeries` carries it.
SERIES_VALUES: Mapping[str, str] = {
    "counter": "(value, exemplar or None)",
    "gauge": "value",
    "histogram": "HistogramState",
    "summary": "SummaryState",
    "info": "dict of info labels",
    "stateset": "the current state",
    "unknown": "value",
}


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """A metric's definition and the label sets and values of its series, for one scrape.

    Each item of ``series`` is ``(labels, value)``, the value shaped by the type as
    :data:`SERIES_VALUES` says (what the series' ``snapshot()`` returns)::

        for ms in REGISTRY.collect_series():
            d = ms.definition
            if d.type == "histogram":
                for labels, state in ms.series:
                    print(d.name, dict(labels), dict(zip(d.buckets, state.counts)))

    A label set may carry labels besides ``definition.labelnames`` that a backend adds
    (``pid`` for a gauge aggregated with ``multiprocess_mode="all"``).
    """

    definition: MetricDefinition
    series: Sequence[tuple[LabelSet, Any]]


class Series(Protocol):
    """One series of a metric as backends read it: its labels and a consistent snapshot."""

    @property
    def labelset(self) -> LabelSet: ...

    def snapshot(self) -> Any:
        """The series' value now, shaped as :data:`SERIES_VALUES` says; thread-safe."""
        ...


@runtime_checkable
class SeriesSource(Protocol):
    """A metric as registries and backends see it (:class:`pytheus.metrics.Metric` is one).

    A registry hands its sources to the active backend in one call per scrape, so that
    a multi-process backend reads them all in one round trip; other collectors it
    collects itself.
    """

    @property
    def definition(self) -> MetricDefinition: ...

    def children(self) -> Sequence[Series]:
        """The series recorded in this process; a snapshot of the list, thread-safe."""
        ...

    def local_series(self) -> MetricSeries:
        """This process's own values of every series."""
        ...

    def local_family(self) -> MetricFamily:
        """The same values as samples: ``build_family(local_series())``, maybe faster."""
        ...

    def use_child_class(
        self, child_class: type[Any] | None, carry: Callable[[Any, Any], None] = ...
    ) -> None:
        """Keep the series in ``child_class`` instances (None: the type's own class), for a
        backend that stores values outside the metric; ``carry(old, new)`` moves values."""
        ...

    def use_lock_factory(self, factory: Callable[[], Any]) -> None:
        """Make the lock of every series, existing and future, with ``factory``.

        A backend may call it from ``register_metric`` (the Redis backend's
        write-through mode uses locks that flush when they are released).
        """
        ...


# --------------------------------------------------------------------------- checks


def check_numbers(name: str, what: str, numbers: Iterable[float]) -> tuple[float, ...]:
    """``numbers`` as floats, or raise naming ``what`` (``"Buckets"``) of metric ``name``."""
    if isinstance(numbers, str | bytes):
        raise MetricDefinitionError(f"{what} of {name!r} must be a list of numbers, not a str.")
    try:
        return tuple(float(n) for n in numbers)
    except (TypeError, ValueError, OverflowError):
        raise MetricDefinitionError(
            f"{what} of {name!r} must be numbers that fit a float, got {reprlib.repr(numbers)}."
        ) from None


def check_buckets(name: str, buckets: Iterable[float]) -> tuple[float, ...]:
    """Histogram bounds, increasing and without NaN, with ``+Inf`` added if missing."""
    bounds = list(check_numbers(name, "Buckets", buckets))
    if any(b != b for b in bounds):
        raise BucketException(f"Buckets of {name!r} must not contain NaN: {bounds}.")
    for lower, upper in itertools.pairwise(bounds):
        if not lower < upper:
            raise BucketException(
                f"Buckets of {name!r} must be sorted in increasing order without repeats; "
                f"{format_float(lower)} comes before {format_float(upper)} in {bounds}. "
                f"Use sorted(set(buckets))."
            )
    if not bounds or bounds[-1] != _INF:
        bounds.append(_INF)
    return tuple(bounds)


def check_quantiles(name: str, quantiles: Iterable[float]) -> tuple[float, ...]:
    """Summary quantiles: numbers from 0 to 1, sorted, without repeats."""
    qs = check_numbers(name, "Quantiles", quantiles)
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise MetricDefinitionError(
                f"Quantile {q!r} of summary {name!r} must be a number from 0 to 1."
            )
    if list(qs) != sorted(set(qs)):
        raise MetricDefinitionError(
            f"Quantiles of summary {name!r} must be sorted without repeats, got {list(qs)}."
        )
    return qs


def check_summary_window(name: str, max_age_seconds: object, age_buckets: object) -> None:
    """The window of a summary's quantiles: ``max_age_seconds > 0``, 1 to 1,000 buckets."""
    # Each age bucket keeps up to 1,024 observations per series: the limit bounds
    # memory (a mistyped 10**12 would allocate until the process is killed).
    if (
        not isinstance(max_age_seconds, int | float)
        or not max_age_seconds > 0
        or type(age_buckets) is not int
        or not 0 < age_buckets <= MAX_AGE_BUCKETS
    ):
        raise MetricDefinitionError(
            f"Summary {name!r} needs a number max_age_seconds > 0 and a whole age_buckets "
            f"from 1 to {MAX_AGE_BUCKETS}, got {max_age_seconds!r} and {age_buckets!r}."
        )


def check_unit(name: str, type: str, unit: str) -> str:
    """The metric's name with ``_<unit>`` appended unless it ends so already."""
    if not unit:
        return name
    if type in ("info", "stateset"):
        raise MetricDefinitionError(
            f"{name!r} cannot have unit {unit!r}: OpenMetrics allows no unit on "
            f"{type} metrics; remove unit=."
        )
    validate_label_name(unit)
    if not name.endswith(f"_{unit}"):
        name = f"{name}_{unit}"
    if type == "counter" and name.endswith("_total"):
        # The exposition takes _total off a counter's family name, and the unit with
        # it: OpenMetrics then refuses the family (its name lacks the unit).
        raise MetricDefinitionError(
            f"Counter {name!r} cannot have unit {unit!r}: a counter's name ends "
            "in its unit, and _total is added to its samples; choose a base unit "
            "such as 'seconds' or 'bytes'."
        )
    return name


def check_states(
    name: str, states: Iterable[object], labelnames: Iterable[str] | None
) -> tuple[str, ...]:
    """An Enum's states as label values: a non-empty list without repeats.

    Its states are exposed under a label named after the metric, so the name must be a
    valid label name and not one of its own labels.
    """
    given: object = states  # checked as it comes, whatever the annotation
    if isinstance(given, str) or not isinstance(given, Iterable) or not given:
        raise MetricDefinitionError(
            f"Enum {name!r} needs a non-empty list of states, got {states!r}."
        )
    values = tuple(label_value(s) for s in given)
    if len(set(values)) != len(values):
        raise MetricDefinitionError(f"States of Enum {name!r} repeat: {list(values)}.")
    validate_metric_name(name)
    if name in (labelnames or ()):
        raise MetricDefinitionError(
            f"Enum {name!r} labels its states with its own name, so {name!r} cannot "
            "also be one of its required labels."
        )
    try:
        validate_label_name(name)
    except MetricDefinitionError:
        raise MetricDefinitionError(
            f"Enum name {name!r} is also used as the label of its states, so it must "
            "be a valid label name (no colons)."
        ) from None
    return values
