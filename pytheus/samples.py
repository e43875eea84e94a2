"""The data that collectors hand to the exposition: families of samples.

A collector's ``collect()`` yields :class:`MetricFamily` objects. Custom collectors build
them directly::

    from pytheus.samples import MetricFamily


    class QueueCollector:
        def collect(self):
            family = MetricFamily("jobs_queued", "gauge", "Jobs waiting in each queue.")
            for queue, size in queue_sizes().items():
                family.add(size, {"queue": queue})
            yield family
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

from pytheus.naming import family_name, sample_name, series_names

__all__ = [
    "METRIC_TYPES",
    "Exemplar",
    "HistogramRun",
    "LabelSet",
    "MetricFamily",
    "Sample",
    "SeriesRun",
    "escape_label_value",
    "format_float",
    "label_value",
    "replace_surrogates",
    "series_names",
]

#: Family types, as OpenMetrics spells them (``stateset`` and ``info`` become ``gauge``
#: in the text format 0.0.4, which lacks them).
METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "info", "stateset", "unknown"}
)

_INF = math.inf


def format_float(value: float) -> str:
    """Format a sample value or a bound the way Prometheus expects (``+Inf``, ``NaN``, ``1.0``)."""
    if value == _INF:
        return "+Inf"
    if value == -_INF:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD so that ``text`` can be encoded as UTF-8.

    They come from ``os.fsdecode()`` of undecodable bytes, for example; a single one in a
    label value or help text would otherwise make every scrape fail to encode.
    """
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def label_value(value: object) -> str:
    """A label value as series are keyed by: ``str(value)``, lone surrogates replaced.

    Replaced where the series is keyed, not only when exposed: two values differing
    only in them would otherwise be two series exposed under one label set, and a
    multi-process backend could not encode them (UTF-8) to send at all.
    """
    return replace_surrogates(value if type(value) is str else str(value))


def escape_label_value(value: str) -> str:
    """Escape a label value for both exposition formats (backslash, double quote, line feed)."""
    value = replace_surrogates(value)
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


@lru_cache(maxsize=1024)
def _label_text(name: str, value: str) -> str:
    """``name="value"``, escaped; kept for the few pairs that recur in every series
    (a histogram's ``le`` values)."""
    return f'{name}="{escape_label_value(value)}"'


class LabelSet(Mapping[str, str]):
    """An immutable mapping of label names to values that renders itself once.

    ``text`` is the inside of the braces in both exposition formats, e.g.
    ``method="GET",code="200"``; computing it once per series instead of once per scrape
    is what keeps exposition fast.
    """

    __slots__ = ("_names", "_values", "text", "_derived", "_each")

    _names: tuple[str, ...]
    _values: tuple[str, ...]
    text: str
    _derived: dict[tuple[str, str], LabelSet] | None  # with_label's
    _each: dict[tuple[str, tuple[str, ...]], list[LabelSet]] | None  # with_label_each's

    def __init__(self, names: tuple[str, ...] = (), values: tuple[str, ...] = ()) -> None:
        self._names = names
        self._values = values
        self._derived = self._each = None
        pairs = zip(names, values, strict=True)
        joined = "".join(values)
        if joined.isascii() and '"' not in joined and "\\" not in joined and "\n" not in joined:
            # Nothing to escape (the common case): one check for all the values.
            self.text = ",".join([f'{n}="{v}"' for n, v in pairs])
        else:
            self.text = ",".join([f'{n}="{escape_label_value(v)}"' for n, v in pairs])

    @classmethod
    def of(cls, labels: Mapping[str, str] | None) -> LabelSet:
        """Return ``labels`` as a LabelSet (itself if it already is one)."""
        if isinstance(labels, LabelSet):
            return labels
        if not labels:
            return EMPTY_LABELS
        return cls(tuple(labels), tuple(str(v) for v in labels.values()))

    def with_label(self, name: str, value: str) -> LabelSet:
        """Return this LabelSet with one more label appended (``le``, ``quantile``, ...).

        Results are kept, so a histogram's bucket labels are built once per series, not
        once per scrape.
        """
        derived = self._derived
        if derived is None:
            derived = self._derived = {}
        try:
            return derived[name, value]
        except KeyError:
            pass
        new = LabelSet.__new__(LabelSet)
        new._names = (*self._names, name)
        new._values = (*self._values, value)
        new._derived = new._each = None
        extra = f'{name}="{escape_label_value(value)}"'
        new.text = f"{self.text},{extra}" if self.text else extra
        derived[name, value] = new
        return new

    def with_label_each(self, name: str, values: Sequence[str]) -> list[LabelSet]:
        """``[self.with_label(name, v) for v in values]``, in one call: the bucket labels
        (``le``) of a histogram's series. The list is kept (as one entry: a process's first
        scrape of a large histogram makes hundreds of thousands of these)."""
        key = (name, values if type(values) is tuple else tuple(values))
        each = self._each
        if each is None:
            each = self._each = {}
        else:
            kept = each.get(key)
            if kept is not None:
                return kept
        make = LabelSet.__new__
        names = (*self._names, name)
        own = self._values
        prefix = f"{self.text}," if self.text else ""
        out = []
        for value in key[1]:
            new = make(LabelSet)
            new._names = names
            new._values = (*own, value)
            new._derived = new._each = None
            new.text = prefix + _label_text(name, value)
            out.append(new)
        each[key] = out
        return out

    @property
    def names_tuple(self) -> tuple[str, ...]:
        """The label names in order."""
        return self._names

    @property
    def values_tuple(self) -> tuple[str, ...]:
        """The label values in order."""
        return self._values

    def __getitem__(self, key: str) -> str:
        try:
            return self._values[self._names.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"LabelSet({dict(zip(self._names, self._values, strict=True))!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(zip(self._names, self._values, strict=True)))


EMPTY_LABELS = LabelSet()


class Exemplar(NamedTuple):
    """An OpenMetrics exemplar: a reference (e.g. a trace id) to one observed event."""

    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None


class Sample(NamedTuple):
    """One line of exposition: a series name, its labels and its value."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None
    exemplar: Exemplar | None = None


class HistogramRun(NamedTuple):
    """A histogram series as a :class:`SeriesRun` may hold it instead of its samples:
    its labels, the text of each bucket's ``le``, per-bucket (not cumulative) counts and
    the sum. The exposition renders it without making a sample (a process's first scrape
    of a large histogram makes over ten samples and label sets a series otherwise)."""

    labels: LabelSet
    le: tuple[str, ...]
    counts: tuple[float, ...]
    sum: float


class SeriesRun:
    """The samples of one series, with their text in each format once rendered.

    A reader that keeps a series' samples between scrapes while the series does not
    change (the Redis backend) hands the exposition these runs too
    (:attr:`MetricFamily.runs`): a series unchanged since the last scrape is then not
    rendered again, which is most of a large scrape's time.

    A histogram's run may be made from a :class:`HistogramRun` and a function that makes
    its samples (``SeriesRun.of_histogram``): the samples are made when first asked for,
    which a scrape never does.
    """

    # The lines of these samples in each rendering, None until rendered: filled by the
    # exposition. The samples are immutable tuples, so a text never goes stale. (Slots,
    # not a dict: a large scrape makes one run per series.)
    __slots__ = ("_samples", "_make", "histogram", "size", "text", "text_as_given", "openmetrics")

    _samples: list[Sample] | None
    _make: Callable[[HistogramRun], list[Sample]] | None
    histogram: HistogramRun | None
    size: int  # how many samples
    text: str | None  # the text format
    text_as_given: str | None  # the text format, counters named as given
    openmetrics: str | None

    def __init__(self, samples: list[Sample]) -> None:
        self._samples = samples
        self._make = self.histogram = None
        self.size = len(samples)
        self.text = self.text_as_given = self.openmetrics = None

    @classmethod
    def of_histogram(
        cls, histogram: HistogramRun, make: Callable[[HistogramRun], list[Sample]]
    ) -> SeriesRun:
        """The run of a histogram series whose samples ``make(histogram)`` makes: its
        buckets, ``_count`` and ``_sum``."""
        run = cls.__new__(cls)
        run._samples = None
        run._make, run.histogram = make, histogram
        run.size = len(histogram.counts) + 2
        run.text = run.text_as_given = run.openmetrics = None
        return run

    @property
    def samples(self) -> list[Sample]:
        samples = self._samples
        if samples is None:
            make, histogram = self._make, self.histogram
            if make is None or histogram is None:  # pragma: no cover - made with one or the other
                raise RuntimeError("A SeriesRun holds neither samples nor a histogram.")
            samples = self._samples = make(histogram)
        return samples


class MetricFamily:
    """A metric family: the samples of one metric, with its type, help text and unit.

    ``name`` is the OpenMetrics family name: for a counter it is the name without the
    ``_total`` suffix that its samples carry (``http_requests`` for samples named
    ``http_requests_total``), for an info without ``_info`` (see
    :func:`pytheus.naming.family_name`). ``given_name`` is the name as given (with or
    without ``_total``), which the text format shows for counters when counter names are
    "as_given" (see :func:`pytheus.exposition.set_counter_names`).
    """

    __slots__ = ("name", "type", "help", "unit", "_samples", "given_name", "runs")

    def __init__(
        self,
        name: str,
        type: str,
        help: str,
        samples: list[Sample] | None = None,
        *,
        unit: str = "",
        given_name: str = "",
    ) -> None:
        if type not in METRIC_TYPES:
            raise ValueError(f"Unknown metric type {type!r}; use one of {sorted(METRIC_TYPES)}.")
        self.given_name = given_name or name
        self.name = family_name(name, type)
        self.type = type
        self.help = help
        self.unit = unit
        self._samples: list[Sample] | None = samples if samples is not None else []
        #: ``samples`` series by series, when the family was built so (see
        #: :class:`SeriesRun`); the exposition uses them only while they hold as many
        #: samples as ``samples``: whoever changes the samples sets this to None.
        self.runs: list[SeriesRun] | None = None

    @property
    def samples(self) -> list[Sample]:
        """The family's samples (those of its runs, made when first asked for, for a
        family made with :meth:`of_runs`)."""
        samples = self._samples
        if samples is None:
            samples = self._samples = [s for run in self.runs or () for s in run.samples]
        return samples

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        self._samples = samples

    def of_runs(self, runs: list[SeriesRun]) -> None:
        """Make ``runs`` the family's series; its samples are theirs, made when asked for."""
        self.runs = runs
        self._samples = None

    def current_runs(self) -> list[SeriesRun] | None:
        """The family's runs if they still hold its samples (nobody changed these), else
        None: then the samples are the family's."""
        runs = self.runs
        if runs is None:
            return None
        if self._samples is None:
            return runs
        if sum(run.size for run in runs) != len(self._samples):
            return None
        return runs

    def add(
        self,
        value: float,
        labels: Mapping[str, str] | None = None,
        *,
        suffix: str = "",
        timestamp: float | None = None,
        exemplar: Exemplar | None = None,
    ) -> MetricFamily:
        """Append a sample named ``name + suffix`` and return the family, for chaining.

        Without ``suffix``, a counter's sample is named ``<name>_total`` and an info's
        ``<name>_info`` (:func:`pytheus.naming.sample_name`).
        """
        name = self.name + suffix if suffix else sample_name(self.name, self.type)
        self.samples.append(Sample(name, LabelSet.of(labels), value, timestamp, exemplar))
        return self

    def __repr__(self) -> str:
        return (
            f"MetricFamily({self.name!r}, {self.type!r}, {self.help!r}, "
            f"samples={self.samples!r}, unit={self.unit!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricFamily):
            return NotImplemented
        return (self.name, self.type, self.help, self.unit, self.samples) == (
            other.name,
            other.type,
            other.help,
            other.unit,
            other.samples,
        )

    __hash__ = None  # type: ignore[assignment]
