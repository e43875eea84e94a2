"""Backends written to pytheus 0.6.1's per-value protocol, run through an adapter.

pytheus 0.6.1 documented "bring your own backend" as a class whose instances each hold
*one value* of one series::

    class MyBackend:
        def __init__(self, config, metric, histogram_bucket=None): ...
        def inc(self, value): ...
        def dec(self, value): ...
        def set(self, value): ...
        def get(self): ...

        @classmethod
        def _initialize(cls, config): ...  # optional, once at load_backend()

        @classmethod
        def _generate_samples(cls, registry): ...  # optional, one call per scrape

:func:`~pytheus.backends.load_backend` recognises such a class and wraps it in
:class:`PerValueBackendAdapter`, so the values live in it as they did there: every
``inc()``, ``dec()``, ``set()`` and ``observe()`` calls the class's own methods, and a scrape
reads them back with ``_generate_samples()`` when the class has it, else with ``get()``.

It is the *compatible* path, not the fast one: each recording is a Python call into the
backend (and, for a networked one, whatever it does there). Our own backends
(:class:`~pytheus.backends.memory.MemoryBackend`, ``MultiProcessRedisBackend``) record in
the process and never wait on I/O.

What the per-value protocol cannot hold stays in the process: Info and Enum series, the
series dropped past ``max_series``, exemplars. Summaries with quantiles are refused (the
protocol stores a count and a sum only).

The ``metric`` handed to the class is a :class:`PytheusMetricView`: the attributes of a
pytheus 0.6.1 metric object that its backends read (``_collector.name``, ``_labels``,
``_collector._default_labels``, ...). Histogram values are kept as pytheus kept them, one
value per bucket, cumulative (a bucket counts the observations ``<=`` its bound), with
``histogram_bucket`` set to the bound (``"0.5"``, ``"1"``, ``"+Inf"``), ``"sum"`` or
``"count"``.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pytheus.children import (
    Child,
    CounterChild,
    GaugeChild,
    HistogramChild,
    SummaryChild,
    as_number,
    check_exemplar,
)
from pytheus.definitions import (
    HistogramState,
    MetricDefinition,
    MetricSeries,
    SeriesSource,
    SummaryState,
)
from pytheus.exceptions import (
    BackendUnavailableError,
    InvalidBackendConfigException,
    InvalidValueError,
    MetricDefinitionError,
)
from pytheus.families import build_family
from pytheus.samples import EMPTY_LABELS, LabelSet, MetricFamily

__all__ = [
    "PER_VALUE_METHODS",
    "PerValueBackendAdapter",
    "PytheusCollectorView",
    "PytheusMetricView",
    "bucket_key",
    "is_per_value_backend",
]

logger = logging.getLogger(__name__)

#: The methods that make a class a per-value backend.
PER_VALUE_METHODS = ("inc", "dec", "set", "get")

# The metric types pytheus 0.6.1 had, the only ones its backends know how to store.
_STORED_TYPES = frozenset({"counter", "gauge", "histogram", "summary"})


def is_per_value_backend(cls: type) -> bool:
    """True if ``cls`` implements pytheus 0.6.1's per-value backend protocol."""
    return all(callable(getattr(cls, m, None)) for m in PER_VALUE_METHODS)


def bucket_key(bound: float) -> str:
    """The ``histogram_bucket`` of a bound, written as pytheus 0.6.1 and its Rust backend
    wrote it: ``"0.005"``, ``"1"`` (no ``.0``), ``"+Inf"``, never an exponent."""
    if bound == math.inf:
        return "+Inf"
    text = format(Decimal(repr(float(bound))), "f")
    return text.removesuffix(".0")


class PytheusCollectorView:
    """What a pytheus 0.6.1 ``_MetricCollector`` showed its backends, for one metric."""

    def __init__(self, definition: MetricDefinition) -> None:
        d = definition
        # pytheus keyed its values by the name given to the metric; counters are usually
        # named with _total there ("page_hit_total"), which is what their key becomes.
        self.name = f"{d.name}_total" if d.type == "counter" else d.name
        self.description = d.help
        self.type_ = d.type
        self._required_labels: set[str] | None = set(d.labelnames) or None
        self._default_labels: dict[str, str] | None = None
        self._default_labels_count = 0
        self._metric = PytheusMetricView(self, None)
        # Read by backends that rebuild the bucket keys when reading (pytheus-backend-rs).
        self._metric._upper_bounds = list(d.buckets)

    def __repr__(self) -> str:
        return f"<PytheusCollectorView {self.name!r}>"


class PytheusMetricView:
    """What a pytheus 0.6.1 metric object showed its backends: the ``metric`` argument."""

    def __init__(self, collector: PytheusCollectorView, labels: dict[str, str] | None) -> None:
        self._collector = collector
        self.name = collector.name
        self.description = collector.description
        self.type_ = collector.type_
        self._labels = labels
        self._upper_bounds: list[float] = []

    def __repr__(self) -> str:
        return f"<PytheusMetricView {self.name!r} {self._labels!r}>"


class _LocalCell:
    """A value kept in the process: the series dropped past ``max_series`` use these."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, value: float) -> None:
        self.value += value

    def dec(self, value: float) -> None:
        self.value -= value

    def set(self, value: float) -> None:
        self.value = value

    def get(self) -> float:
        return self.value


class PerValueBackendAdapter:
    """Our :class:`~pytheus.backends.base.Backend`, over a per-value backend class.

    Made by :func:`~pytheus.backends.load_backend` for a class with ``inc``, ``dec``,
    ``set`` and ``get``; ``config`` is handed to it as a dict, as pytheus did.
    """

    def __init__(self, backend_class: type, config: Mapping[str, Any] | None) -> None:
        self.backend_class = backend_class
        self.config: dict[str, Any] = dict(config or {})
        initialize = getattr(backend_class, "_initialize", None)
        if initialize is not None:
            try:
                initialize(self.config)
            except Exception as exc:
                raise InvalidBackendConfigException(
                    f"{_qualname(backend_class)}._initialize() refused the backend config "
                    f"{self.config!r}: {exc!r}. Check its options (for a networked backend: "
                    "host, port, and that the server is up)."
                ) from exc
        self._lock = threading.Lock()
        # Weak: a metric nobody references any more can go away.
        self._views: weakref.WeakKeyDictionary[SeriesSource, PytheusCollectorView] = (
            weakref.WeakKeyDictionary()
        )
        self._warned = False
        self._classes = _forwarding_classes(self)

    def __repr__(self) -> str:
        return f"<PerValueBackendAdapter for {_qualname(self.backend_class)}>"

    # ---- the Backend protocol

    def register_metric(self, metric: SeriesSource) -> None:
        """Make the metric's series keep their values in per-value backend instances."""
        d = metric.definition
        if d.type not in _STORED_TYPES:
            return  # Info and Enum: the protocol has no way to store them
        if d.type == "summary" and d.quantiles:
            raise MetricDefinitionError(
                f"Summary {d.name!r} has quantiles, which a per-value backend "
                f"({_qualname(self.backend_class)}) cannot store; remove quantiles= or "
                "use a Histogram."
            )
        with self._lock:
            self._views[metric] = PytheusCollectorView(d)
        metric.use_child_class(self._classes[d.type], _carry_in)

    def collect(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        """Read the values back: one ``_generate_samples()`` call when the class has it,
        else ``get()`` on every value of every series."""
        stored = [m for m in metrics if m in self._views]
        try:
            generated: dict[SeriesSource, list[tuple[LabelSet, Any]]] = {}
            if stored and hasattr(self.backend_class, "_generate_samples"):
                generated = self._generate(stored)
            families = []
            for metric in metrics:
                if metric not in self._views:
                    families.append(metric.local_family())
                elif metric in generated:
                    families.append(
                        build_family(MetricSeries(metric.definition, generated[metric]))
                    )
                else:
                    families.append(build_family(metric.local_series()))
        except Exception as exc:
            raise BackendUnavailableError(
                f"{_qualname(self.backend_class)} could not read the values back: {exc!r}"
            ) from exc
        yield from families

    def close(self) -> None:
        """Give the metrics back their in-process series, with the values read last."""
        with self._lock:
            metrics = list(self._views)
            self._views.clear()
        ours = set(self._classes.values())
        for metric in metrics:
            if metric.__dict__.get("child_class") in ours:
                metric.use_child_class(None, _carry_out)

    # ---- for the forwarding series

    def cells(self, metric: SeriesSource, labelset: LabelSet) -> Any:
        """The per-value instances of one series (local cells for a dropped series)."""
        d = metric.definition
        local = bool(d.labelnames) and labelset is EMPTY_LABELS
        view = PytheusMetricView(self._views[metric], dict(labelset) or None)
        if d.type == "histogram":
            view._upper_bounds = list(d.buckets)
            keys = [bucket_key(b) for b in d.buckets]
            return [self._cell(view, k, local) for k in (*keys, "sum", "count")]
        if d.type == "summary":
            return [self._cell(view, k, local) for k in ("sum", "count")]
        return self._cell(view, None, local)

    def _cell(self, view: PytheusMetricView, bucket: str | None, local: bool) -> Any:
        if local:
            return _LocalCell()
        return self.backend_class(self.config, view, histogram_bucket=bucket)

    def call(self, method: Any, value: float) -> None:
        """Call one recording method of the backend; never let it break the application."""
        try:
            method(value)
        except Exception:
            if not self._warned:
                self._warned = True
                logger.exception(
                    "%s failed to record a value; this and later failures drop the value.",
                    _qualname(self.backend_class),
                )

    # ---- reading back with _generate_samples

    def _generate(
        self, metrics: list[SeriesSource]
    ) -> dict[SeriesSource, list[tuple[LabelSet, Any]]]:
        views = {m: self._views[m] for m in metrics}
        registry = _ViewRegistry(list(views.values()))
        samples_of = self.backend_class._generate_samples(registry)  # type: ignore[attr-defined]
        result: dict[SeriesSource, list[tuple[LabelSet, Any]]] = {}
        for metric in metrics:
            samples = samples_of.get(views[metric])
            if samples is not None:
                result[metric] = _series_from_samples(metric.definition, samples)
        return result


class _ViewRegistry:
    """The registry a ``_generate_samples()`` is given: its collectors are the views."""

    prefix = None

    def __init__(self, collectors: list[PytheusCollectorView]) -> None:
        self._collectors = collectors

    def collect(self) -> list[PytheusCollectorView]:
        return list(self._collectors)


def _series_from_samples(d: MetricDefinition, samples: Any) -> list[tuple[LabelSet, Any]]:
    """Samples as pytheus 0.6.1 built them (``suffix``, ``labels``, ``value``), grouped into
    our ``(labels, snapshot)`` series."""
    names = d.labelnames
    grouped: dict[tuple[str, ...], dict[str, Any]] = {}
    bounds = {b: i for i, b in enumerate(d.buckets)}
    for sample in samples:
        labels = dict(sample.labels or {})
        le = labels.pop("le", None)
        try:
            key = tuple(str(labels[n]) for n in names)
        except KeyError:
            continue  # a value stored under other labels (an older definition): not ours
        parts = grouped.setdefault(key, {"buckets": [0.0] * len(d.buckets)})
        suffix, value = sample.suffix, float(sample.value)
        if suffix == "_bucket" and le is not None:
            i = bounds.get(math.inf if le == "+Inf" else float(le))
            if i is not None:
                parts["buckets"][i] = value
        else:
            parts[suffix] = value
    series: list[tuple[LabelSet, Any]] = []
    for key, parts in grouped.items():
        labelset = LabelSet(names, key) if key else EMPTY_LABELS
        snapshot: Any
        if d.type == "histogram":
            snapshot = _histogram_state(parts["buckets"], parts.get("_sum", 0.0))
        elif d.type == "summary":
            snapshot = SummaryState(parts.get("_count", 0.0), parts.get("_sum", 0.0))
        elif d.type == "counter":
            snapshot = (parts.get("", 0.0), None)
        else:
            snapshot = parts.get("", 0.0)
        series.append((labelset, snapshot))
    return series


def _histogram_state(cumulative: Sequence[float], total: float) -> HistogramState:
    counts, below = [], 0.0
    for c in cumulative:
        counts.append(c - below)
        below = c
    return HistogramState(tuple(counts), total)


# --------------------------------------------------------------------------- series


def _forwarding_classes(adapter: PerValueBackendAdapter) -> dict[str, type[Child]]:
    """Series classes whose recording methods call ``adapter``'s per-value instances."""
    call = adapter.call

    class Counter(CounterChild):
        __slots__ = ("_cell",)

        def __init__(self, metric: Any, labelset: LabelSet) -> None:
            super().__init__(metric, labelset)
            self._cell = adapter.cells(metric, labelset)

        def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
            if type(amount) is not float:
                amount = as_number(amount)
            if not amount >= 0:
                raise InvalidValueError(
                    f"Counters only go up: inc({amount!r}) is not allowed. Use a Gauge for "
                    "values that can decrease."
                )
            if exemplar is not None:
                check_exemplar(exemplar)  # refused as elsewhere, but not stored
            call(self._cell.inc, amount)

        def snapshot(self) -> tuple[float, None]:
            return float(self._cell.get() or 0.0), None

    class Gauge(GaugeChild):
        __slots__ = ("_cell",)

        def __init__(self, metric: Any, labelset: LabelSet) -> None:
            super().__init__(metric, labelset)
            self._cell = adapter.cells(metric, labelset)

        def inc(self, amount: float = 1.0) -> None:
            call(self._cell.inc, amount if type(amount) is float else as_number(amount))

        def dec(self, amount: float = 1.0) -> None:
            call(self._cell.dec, amount if type(amount) is float else as_number(amount))

        def set(self, value: float) -> None:
            call(self._cell.set, value if type(value) is float else as_number(value))

        def snapshot(self) -> float:
            return float(self._cell.get() or 0.0)

    class Histogram(HistogramChild):
        __slots__ = ("_cells",)

        def __init__(self, metric: Any, labelset: LabelSet) -> None:
            super().__init__(metric, labelset)
            self._cells = adapter.cells(metric, labelset)

        def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
            if type(value) is not float:
                value = as_number(value)
            if exemplar is not None:
                check_exemplar(exemplar)
            cells = self._cells
            call(cells[-2].inc, value)
            for bound, cell in zip(self._bounds, cells, strict=False):
                # Cumulative, as pytheus stored them; NaN lands in +Inf only.
                if value <= bound or bound == math.inf:
                    call(cell.inc, 1.0)
            call(cells[-1].inc, 1.0)

        def snapshot(self) -> HistogramState:
            cells = self._cells
            n = len(self._bounds)
            cumulative = [float(c.get() or 0.0) for c in cells[:n]]
            return _histogram_state(cumulative, float(cells[n].get() or 0.0))

    class Summary(SummaryChild):
        __slots__ = ("_cells",)

        def __init__(self, metric: Any, labelset: LabelSet) -> None:
            super().__init__(metric, labelset)
            self._cells = adapter.cells(metric, labelset)

        def observe(self, value: float) -> None:
            if type(value) is not float:
                value = as_number(value)
            call(self._cells[0].inc, value)
            call(self._cells[1].inc, 1.0)

        def snapshot(self) -> SummaryState:
            total, count = (float(c.get() or 0.0) for c in self._cells)
            return SummaryState(count, total)

    return {"counter": Counter, "gauge": Gauge, "histogram": Histogram, "summary": Summary}


def _carry_in(old: Any, new: Any) -> None:
    """Hand the values a series recorded in the process over to the per-value backend."""
    state = old.snapshot()
    cells: Any = getattr(new, "_cells", None)  # the forwarding series of histograms, summaries
    if isinstance(new, CounterChild):
        if state[0]:
            new.inc(state[0])
    elif isinstance(new, GaugeChild):
        if state:
            new.set(state)
    elif isinstance(new, HistogramChild):
        cumulative = 0.0
        for count, cell in zip(state.counts, cells, strict=False):
            cumulative += count
            if cumulative:
                cell.inc(cumulative)
        if cumulative:
            cells[-2].inc(state.sum)
            cells[-1].inc(cumulative)
    elif isinstance(new, SummaryChild) and state.observations:
        cells[0].inc(state.sum)
        cells[1].inc(state.observations)


def _carry_out(old: Any, new: Any) -> None:
    """Keep, in a series of the process, the values read last from the per-value backend."""
    try:
        state = old.snapshot()
    except Exception:  # the backend is unreachable: the series starts again from zero
        logger.warning("Could not read %r back from its per-value backend.", old.labelset)
        return
    if isinstance(new, CounterChild):
        new._value = state[0]
    elif isinstance(new, GaugeChild):
        new._value = state
    elif isinstance(new, HistogramChild):
        new._counts = list(state.counts)
        new._sum = state.sum
    elif isinstance(new, SummaryChild):
        new._count, new._sum = state.observations, state.sum


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
