"""Metric types: Counter, Gauge, Histogram, Summary, Info and Enum.

A metric is defined once, at import time, and registered in a registry::

    from pytheus.metrics import Counter, Histogram

    page_hit_total = Counter("page_hit_total", "Pages served.")
    page_hit_total.inc()

    latency = Histogram(
        "request_duration_seconds",
        "Time spent answering a request.",
        required_labels=["method", "view"],
        default_labels={"method": "GET"},
    )
    latency.labels(view="home").observe(0.23)


    @latency.labels(view="report").time()
    def report(): ...

Each distinct set of label values is a *series*, kept in a child object. ``labels()``
returns that child (or, while labels are still missing, a partially labelled view on
which ``labels()`` can be called again). Children are cached: looking one up costs a
dictionary lookup, and keeping it in a variable costs nothing.

Values live in the process that records them, so recording is never slowed down by
I/O; the active backend (see :mod:`pytheus.backends`) decides how they are read at
scrape time: directly (the in-memory backend) or aggregated across processes (Redis).
"""

from __future__ import annotations

import logging
import os
import reprlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from pytheus import limits
from pytheus.backends import attach_metric, attached_metrics, get_backend
from pytheus.children import (
    Child,
    CounterChild,
    EnumChild,
    GaugeChild,
    HistogramChild,
    InfoChild,
    SummaryChild,
    _CountsExceptionsWhenCalled,
    _GaugeWhenCalled,
    _TimesWhenCalled,
    exception_types,
)
from pytheus.definitions import (
    DEFAULT_BUCKETS,
    GAUGE_MODES,
    HistogramState,
    MetricDefinition,
    MetricSeries,
    SummaryState,
    check_buckets,
    check_quantiles,
    check_states,
    check_summary_window,
    check_unit,
)
from pytheus.exceptions import (
    LabelDefinitionError,
    LabelError,
    MetricDefinitionError,
    UnobservableMetricException,
)
from pytheus.families import build_family
from pytheus.limits import set_default_max_series
from pytheus.naming import (
    family_name,
    sample_name,
    validate_label_names,
    validate_metric_name,
)
from pytheus.registry import REGISTRY, CustomCollector, Registry, real_registry
from pytheus.samples import EMPTY_LABELS, LabelSet, MetricFamily, label_value, replace_surrogates
from pytheus.timing import Instrument

if TYPE_CHECKING:
    from typing import Self

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BUCKETS",
    "GAUGE_MODES",
    "METRIC_CLASSES",
    "Counter",
    "CounterChild",
    "CustomCollector",
    "Enum",
    "EnumChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "HistogramState",
    "Info",
    "InfoChild",
    "Metric",
    "MetricDefinition",
    "Summary",
    "SummaryChild",
    "SummaryState",
    "set_default_max_series",
]

ChildT = TypeVar("ChildT", bound=Child)


# --------------------------------------------------------------------------- the series cap

# By id of the registry, holding the counters weakly: each counter is registered in (so
# kept alive by) its registry, and goes with it. Keyed weakly by the registry instead,
# the counter (which references its registry) would keep its key, and so the registry
# with all its metrics, alive for ever.
_dropped_counters: weakref.WeakValueDictionary[int, Counter] = weakref.WeakValueDictionary()
_dropped_lock = threading.Lock()


def _dropped_series_counter(registry: Registry) -> Counter:
    """The counter of dropped series in ``registry`` (created on first use)."""
    target = real_registry(registry)  # a proxy stands for different registries over time
    with _dropped_lock:
        counter = _dropped_counters.get(id(target))
        if counter is None or counter._registry is not target:
            counter = Counter(
                "pytheus_dropped_series_total",
                "Label sets not stored because their metric reached max_series.",
                required_labels=["metric"],
                registry=target,
                max_series=100_000,
            )
            _dropped_counters[id(target)] = counter
        return counter


# --------------------------------------------------------------------------- metrics


class Metric(Generic[ChildT]):
    """Base class of all metric types: definition, registration and labels.

    Subclasses set ``metric_type``, ``child_class`` and ``hot_methods`` (the recording methods
    that, on a metric with all labels known, are bound straight to its only child so
    that a call costs one Python call and no lookup).
    """

    metric_type: ClassVar[str]
    #: The class of this type's series; a backend may replace it on one metric with
    #: :meth:`use_child_class`.
    child_class: type[Child]
    hot_methods: ClassVar[tuple[str, ...]] = ()
    reserved_labels: ClassVar[frozenset[str]] = frozenset()
    #: Makes each child's lock; a backend may replace it on a metric (the Redis
    #: backend's write-through mode flushes when a child's lock is released).
    lock_factory: Callable[[], Any] = threading.Lock

    definition: MetricDefinition

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Sequence[str] | None = None,
        default_labels: Mapping[str, object] | None = None,
        registry: Registry | None = REGISTRY,
        *,
        max_series: int | None = None,
        unit: str = "",
        _definition_extra: Mapping[str, Any] | None = None,
    ) -> None:
        validate_metric_name(name)
        if not isinstance(description, str):
            raise MetricDefinitionError(
                f"The description of {name!r} must be a str, not {type(description).__name__}."
            )
        description = replace_surrogates(description)  # as label values, see label_value
        labelnames = validate_label_names(required_labels, reserved=self.reserved_labels)
        if default_labels is not None and not isinstance(default_labels, Mapping):
            raise MetricDefinitionError(
                f"default_labels of {name!r} must be a dict of label values, "
                f"got {reprlib.repr(default_labels)}."
            )
        defaults: dict[str, str] = {}
        for k, v in (default_labels or {}).items():
            if k not in labelnames:
                raise LabelDefinitionError(
                    f"Default label {k!r} of {name!r} is not one of its required labels "
                    f"{list(labelnames)}; add it to required_labels or remove the default."
                )
            defaults[k] = label_value(v)
        given_total = self.metric_type == "counter" and name.endswith("_total")
        name = check_unit(family_name(name, self.metric_type), self.metric_type, unit)

        self._registry: Registry | None = registry
        prefix = registry.prefix if registry is not None else ""
        if prefix:
            name = f"{prefix}_{name}"
        self.definition = MetricDefinition(
            name=name,
            type=self.metric_type,
            help=description,
            labelnames=labelnames,
            unit=unit,
            given_name=f"{name}_total" if given_total else name,
            **(_definition_extra or {}),
        )
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], ChildT] = {}
        # Results of labels() keyed by the items exactly as the caller passed them;
        # only str values are cached, so 1, 1.0 and True never share an entry.
        self._cache: dict[tuple[tuple[str, Any], ...], Any] = {}
        # Partial views handed out by labels(): remove() and clear() empty their caches
        # too, or a kept view would go on returning a forgotten child.
        self._views: weakref.WeakSet[Metric[ChildT]] = weakref.WeakSet()
        self._bound: dict[str, str] = defaults
        self._root: Metric[ChildT] = self
        if max_series is not None and (type(max_series) is not int or max_series < 1):
            raise MetricDefinitionError(
                f"max_series of {name!r} must be a whole number >= 1 (or None for the "
                f"default), got {max_series!r}."
            )
        self.max_series = max_series
        self._sink: ChildT | None = None
        self._attached = False

        # registry=None (as in pytheus 0.6.1): registered nowhere, so that a custom
        # collector can make its metrics afresh at every collect(). Such a metric keeps
        # its values in this process until a registry.register() attaches it to the
        # backend.
        if registry is not None:
            registry.register(self)
            try:
                self.attach_to_backend()
            except BaseException:
                registry.unregister(self)
                raise
        self._bind_hot_methods()

    def attach_to_backend(self) -> None:
        """Hand the metric to the active backend (once); registries call it when a metric
        defined with ``registry=None`` is registered."""
        if self._attached:
            return
        attach_metric(self)
        self._attached = True

    # ---- naming

    @property
    def name(self) -> str:
        """The family name (for a counter, without its ``_total`` suffix)."""
        return self.definition.name

    @property
    def description(self) -> str:
        """The help text."""
        return self.definition.help

    def describe(self) -> tuple[str, ...]:
        """The sample names this metric can produce (used by the registry for clashes)."""
        return self.definition.series_names()

    def __repr__(self) -> str:
        bound = f", labels={self._bound!r}" if self._bound else ""
        return f"<{type(self).__name__} {self.name!r}{bound}>"

    # ---- labels

    def labels(
        self, labels: Mapping[str, object] | None = None, /, **kwargs: object
    ) -> ChildT | Self:
        """Return the series for these labels, or a view still missing some labels.

        Labels can be given as a dict, as keywords, or both; on a partially labelled
        view they add to the labels given before. Values are converted with ``str()``.
        """
        if labels is None:
            labels = kwargs
        elif kwargs:
            labels = {**labels, **kwargs}
        try:
            return self._cache[tuple(labels.items())]  # type: ignore[no-any-return]
        except (KeyError, TypeError, AttributeError):
            return self._labels_slow(labels)

    def _labels_slow(self, labels: Mapping[str, object]) -> ChildT | Self:
        if not labels and isinstance(labels, Mapping):
            return self  # as in pytheus 0.6.1: labels({}) adds nothing
        if not isinstance(labels, Mapping):
            raise LabelError(
                f"labels() takes a dict or keywords, got {reprlib.repr(labels)}; "
                f"write labels(name=value) or labels({{'name': value}})."
            )
        root = self._root
        names = root.definition.labelnames
        merged = dict(self._bound)
        for k, v in labels.items():
            if k not in names:
                if not names:
                    raise LabelError(
                        f"{root.name!r} was defined without labels, so labels({k}=...) "
                        "is not allowed; add required_labels to its definition."
                    )
                raise LabelError(f"{root.name!r} has no label {k!r}; its labels are {list(names)}.")
            merged[k] = label_value(v)
        result: Any
        if len(merged) == len(names):
            result = root._child(tuple(merged[n] for n in names))
        else:
            result = self._partial(merged)
        # A dropped series is not cached: each use counts as dropped, and the cache of
        # an unbounded label must not grow either.
        if result is not root._sink and all(type(v) is str for v in labels.values()):
            self._cache[tuple(labels.items())] = result
        return cast("ChildT | Self", result)

    def _partial(self, bound: dict[str, str]) -> Self:
        view = object.__new__(type(self))
        view.__dict__.update(self._root.__dict__)
        view._bound = bound
        view._cache = {}
        view._bind_hot_methods()
        with self._root._lock:
            self._root._views.add(view)
        return view

    def _child(self, values: tuple[str, ...]) -> ChildT:
        try:
            return self._children[values]
        except KeyError:
            pass
        limit = self.max_series if self.max_series is not None else limits.default_max_series()
        with self._lock:
            child = self._children.get(values)
            if child is not None:
                return child
            if limit is None or len(self._children) < limit:
                labelset = LabelSet(self.definition.labelnames, values) if values else EMPTY_LABELS
                child = cast(ChildT, self.child_class(self, labelset))
                self._children[values] = child
                return child
            sink = self._sink
            first_drop = sink is None
            if sink is None:
                sink = self._sink = cast(ChildT, self.child_class(self, EMPTY_LABELS))
        return self._dropped(sink, limit, first_drop)

    def _dropped(self, sink: ChildT, limit: int, first_drop: bool) -> ChildT:
        """A label set past the cardinality limit: counted, warned about once, and given a
        sink series that records but is never exposed."""
        if first_drop:
            logger.warning(
                "Metric %r reached its limit of %d series; new label sets are dropped and "
                "counted in pytheus_dropped_series_total. A label with unbounded values "
                "(user ids, raw paths) is the usual cause; raise max_series only if the "
                "values are bounded.",
                self.name,
                limit,
            )
        counter = _dropped_series_counter(self._registry or REGISTRY)
        if counter is not self:
            counter.labels(metric=self.name).inc()
        return sink

    def _complete_values(self) -> tuple[str, ...] | None:
        names = self._root.definition.labelnames
        if len(self._bound) != len(names):
            return None
        return tuple(self._bound[n] for n in names)

    def _bind_hot_methods(self) -> None:
        """Bind recording methods to the only child when all labels are known."""
        values = self._complete_values()
        for method in self.hot_methods:
            self.__dict__.pop(method, None)
        if values is not None:
            child = self._root._child(values)
            for method in self.hot_methods:
                setattr(self, method, getattr(child, method))

    def _default_child(self) -> ChildT:
        values = self._complete_values()
        if values is None:
            names = self._root.definition.labelnames
            missing = [n for n in names if n not in self._bound]
            raise UnobservableMetricException(
                f"{self.name!r} needs values for the labels {missing} before it can record; "
                f"call .labels({', '.join(f'{n}=...' for n in missing)}) first."
            )
        return self._root._child(values)

    def remove(self, labels: Mapping[str, object] | None = None, /, **kwargs: object) -> None:
        """Forget the series with these labels (it disappears from the exposition)."""
        child = self.labels(labels, **kwargs)
        if not isinstance(child, Child):
            raise LabelError(f"remove() needs every label of {self.name!r}.")
        root = self._root
        with root._lock:
            root._children.pop(child.labelset.values_tuple, None)
            root._cache.clear()
            for view in root._views:
                view._cache.clear()
        self._cache.clear()
        root._bind_hot_methods()
        if self is not root:
            self._bind_hot_methods()

    def clear(self) -> None:
        """Forget every series of this metric."""
        root = self._root
        with root._lock:
            root._children.clear()
            root._cache.clear()
            for view in root._views:
                view._cache.clear()
        self._cache.clear()
        root._bind_hot_methods()
        if self is not root:
            self._bind_hot_methods()

    def use_child_class(
        self,
        child_class: type[Child] | None,
        carry: Callable[[Any, Any], None] = lambda old, new: None,
    ) -> None:
        """Keep this metric's series in ``child_class`` instances from now on (``None``: the
        type's own class), for a backend that stores values outside the metric.

        Existing series are replaced by new ones with the same labels; ``carry(old, new)``
        moves each one's values over. Call it from ``register_metric()`` (or ``close()``),
        before values are recorded: a reference to an old series taken earlier still records
        into the old one.
        """
        root = self._root
        with root._lock:
            if child_class is None:
                root.__dict__.pop("child_class", None)
            else:
                root.child_class = child_class
            cls = root.child_class
            for values, old in list(root._children.items()):
                new = cast(ChildT, cls(root, old.labelset))
                carry(old, new)
                root._children[values] = new
            root._sink = None
            root._cache.clear()
            views = list(root._views)
            for view in views:
                view._cache.clear()
        root._bind_hot_methods()
        for view in views:
            view._bind_hot_methods()

    # ---- reading

    def children(self) -> list[ChildT]:
        """A snapshot of the list of series (children) of this metric."""
        return list(self._root._children.values())

    def collect(self) -> Iterator[MetricFamily]:
        """Yield this metric's family, as read through the active backend."""
        yield from get_backend().collect([self._root])

    def local_series(self) -> MetricSeries:
        """This process's own values of every series, with the definition."""
        return MetricSeries(self.definition, [(c.labelset, c.snapshot()) for c in self.children()])

    def local_family(self) -> MetricFamily:
        """This process's own values of the metric, as a family of samples."""
        return build_family(self.local_series())

    def build_family(self, series: Iterable[tuple[LabelSet, Any]]) -> MetricFamily:
        """The family of samples for ``(labels, value)`` pairs of this metric's series.

        For backends that yield families: the values are shaped as ``local_series()``
        shapes them (see :func:`pytheus.families.build_family`, which this calls).
        """
        return build_family(MetricSeries(self.definition, list(series)))

    # ---- locks

    def use_lock_factory(self, factory: Callable[[], Any]) -> None:
        """Make the lock of every series, existing and future, with ``factory``.

        Backends call it from ``register_metric`` (the Redis backend's write-through
        mode flushes when a series' lock is released).
        """
        root = self._root
        root.lock_factory = factory
        for child in root.children():
            child.use_lock(factory())
        if root._sink is not None:
            root._sink.use_lock(factory())

    def renew_locks(self) -> None:
        """Give the metric and every series a new lock: in a forked child (see below)."""
        self._lock = threading.Lock()
        self.use_lock_factory(self.lock_factory)


class Counter(_CountsExceptionsWhenCalled, Metric[CounterChild]):
    """A value that only goes up, such as requests served or errors seen.

    Samples are named ``<name>_total``: ``Counter("hits", ...)`` and
    ``Counter("hits_total", ...)`` both produce ``hits_total``, never ``_total_total``.

    >>> requests = Counter("requests", "Requests served.", required_labels=["code"])
    >>> requests.labels(code=200).inc()
    """

    metric_type = "counter"
    child_class = CounterChild
    hot_methods = ("inc",)

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (>= 0) to the counter."""
        self._default_child().inc(amount, exemplar)

    def local_family(self) -> MetricFamily:
        # In one pass: the family that build_family(self.local_series()) makes.
        d = self.definition
        samples = CounterChild.samples(sample_name(d.name, d.type), self.children())
        return MetricFamily(d.name, d.type, d.help, samples, unit=d.unit, given_name=d.given_name)

    def count_exceptions(
        self,
        exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> Instrument:
        """Count exceptions raised in a ``with`` block or a decorated function
        (``exceptions=`` is pytheus 0.6.1's name for the argument)."""
        watched = exception_types(exception if exceptions is None else exceptions)
        # The child is looked up at each use, not here: clear() replaces it, and a
        # decorator applied at import time must follow. Missing labels still fail here.
        self._default_child()

        def stop(_token: object, exc: BaseException | None) -> None:
            if exc is not None and isinstance(exc, watched):
                self._default_child().inc()

        return Instrument(lambda: None, stop)


class Gauge(_GaugeWhenCalled, Metric[GaugeChild]):
    """A value that goes up and down, such as requests in progress or queue length.

    ``multiprocess_mode`` says how a multi-process backend combines the values of many
    processes (one of :data:`GAUGE_MODES`; ``livesum`` by default); the in-memory
    backend ignores it.
    """

    metric_type = "gauge"
    child_class = GaugeChild
    hot_methods = ("inc", "dec", "set")

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Sequence[str] | None = None,
        default_labels: Mapping[str, object] | None = None,
        registry: Registry | None = REGISTRY,
        *,
        max_series: int | None = None,
        unit: str = "",
        multiprocess_mode: str = "livesum",
    ) -> None:
        mode: object = multiprocess_mode  # checked as it comes, whatever the annotation
        if not isinstance(mode, str) or mode not in GAUGE_MODES:
            raise MetricDefinitionError(
                f"Unknown multiprocess_mode {multiprocess_mode!r} for gauge {name!r}; "
                f"use one of {sorted(GAUGE_MODES)}."
            )
        super().__init__(
            name,
            description,
            required_labels,
            default_labels,
            registry,
            unit=unit,
            max_series=max_series,
            _definition_extra={"multiprocess_mode": multiprocess_mode},
        )

    def local_family(self) -> MetricFamily:
        # As Counter.local_family: gauges are the other common type.
        d = self.definition
        samples = GaugeChild.samples(d.name, self.children())
        return MetricFamily(d.name, d.type, d.help, samples, unit=d.unit, given_name=d.given_name)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self._default_child().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self._default_child().dec(amount)

    def set(self, value: float) -> None:
        """Set to ``value``."""
        self._default_child().set(value)

    def set_to_current_time(self) -> None:
        """Set to the current Unix time in seconds."""
        self._default_child().set_to_current_time()

    def track_inprogress(self) -> Instrument:
        """Count the blocks or calls in progress; exception-safe."""
        # The child is looked up at each use, not here: clear() replaces it, and a
        # decorator applied at import time must follow. Missing labels still fail here.
        self._default_child()

        def start() -> GaugeChild:
            child = self._default_child()
            child.inc()
            return child

        return Instrument(start, lambda child, _exc: child.dec())

    def time(self) -> Instrument:
        """Set to the duration of a block or decorated function."""
        self._default_child()  # as in track_inprogress()
        return Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().set(time.perf_counter() - start),
        )


class Histogram(_TimesWhenCalled, Metric[HistogramChild]):
    """Observations counted in buckets, such as request durations or response sizes.

    ``buckets`` are upper bounds in increasing order; ``+Inf`` is added for you.
    """

    metric_type = "histogram"
    child_class = HistogramChild
    hot_methods = ("observe",)
    reserved_labels = frozenset({"le"})

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Sequence[str] | None = None,
        default_labels: Mapping[str, object] | None = None,
        registry: Registry | None = REGISTRY,
        *,
        max_series: int | None = None,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        unit: str = "",
    ) -> None:
        super().__init__(
            name,
            description,
            required_labels,
            default_labels,
            registry,
            unit=unit,
            max_series=max_series,
            _definition_extra={"buckets": check_buckets(name, buckets)},
        )

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation."""
        self._default_child().observe(value, exemplar)

    def time(self) -> Instrument:
        """Observe the duration of a block or decorated function."""
        self._default_child()  # as in Gauge.track_inprogress()
        return Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().observe(time.perf_counter() - start),
        )


class Summary(_TimesWhenCalled, Metric[SummaryChild]):
    """Observations summarised by count and sum, and optionally by quantiles.

    With ``quantiles=(0.5, 0.9, 0.99)`` the summary also reports those quantiles of the
    observations made in the last ``max_age_seconds``, a window that moves in
    ``age_buckets`` steps. Quantiles cannot be aggregated across processes or
    instances: prefer a Histogram where you need that.
    """

    metric_type = "summary"
    child_class = SummaryChild
    hot_methods = ("observe",)
    reserved_labels = frozenset({"quantile"})

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Sequence[str] | None = None,
        default_labels: Mapping[str, object] | None = None,
        registry: Registry | None = REGISTRY,
        *,
        max_series: int | None = None,
        quantiles: Iterable[float] = (),
        max_age_seconds: float = 600.0,
        age_buckets: int = 5,
        unit: str = "",
    ) -> None:
        qs = check_quantiles(name, quantiles)
        check_summary_window(name, max_age_seconds, age_buckets)
        super().__init__(
            name,
            description,
            required_labels,
            default_labels,
            registry,
            unit=unit,
            max_series=max_series,
            _definition_extra={
                "quantiles": qs,
                "options": {
                    "max_age_seconds": float(max_age_seconds),
                    "age_buckets": age_buckets,
                },
            },
        )

    def observe(self, value: float) -> None:
        """Record one observation."""
        self._default_child().observe(value)

    def time(self) -> Instrument:
        """Observe the duration of a block or decorated function."""
        self._default_child()  # as in Gauge.track_inprogress()
        return Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().observe(time.perf_counter() - start),
        )


class Info(Metric[InfoChild]):
    """Constant facts as labels of a series whose value is 1, such as a build version.

    >>> build = Info("build", "Build information.")
    >>> build.info({"version": "1.2.3", "commit": "abc123"})

    is exposed as ``build_info{version="1.2.3",commit="abc123"} 1``.
    """

    metric_type = "info"
    child_class = InfoChild

    def info(self, value: Mapping[str, object]) -> None:
        """Set the info to ``value``."""
        self._default_child().info(value)


class Enum(Metric[EnumChild]):
    """Which one of a fixed set of states something is in (an OpenMetrics state set).

    >>> phase = Enum("task_phase", "Phase of the task.", states=["idle", "running"])
    >>> phase.state("running")

    The first state is the initial one. Each state is a series labelled with the
    metric's own name, with value 1 for the current state and 0 for the others.
    """

    metric_type = "stateset"
    child_class = EnumChild

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Sequence[str] | None = None,
        default_labels: Mapping[str, object] | None = None,
        registry: Registry | None = REGISTRY,
        *,
        max_series: int | None = None,
        states: Sequence[str],
    ) -> None:
        states = check_states(name, states, required_labels)
        super().__init__(
            name,
            description,
            required_labels,
            default_labels,
            registry,
            max_series=max_series,
            _definition_extra={"states": states},
        )

    def state(self, state: str) -> None:
        """Make ``state`` current."""
        self._default_child().state(state)


# --------------------------------------------------------------------------- fork safety


def _fresh_locks_after_fork() -> None:
    """Give every metric and series a new lock in a forked child.

    Only the thread that called fork() lives on in the child: a lock another thread held
    at that moment (recording, or a flusher reading a series) would stay held for ever,
    and the first use of that series in the child would hang.
    """
    for metric in attached_metrics():
        if isinstance(metric, Metric):
            metric.renew_locks()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


#: The metric class for each ``MetricDefinition.type``.
METRIC_CLASSES: dict[str, type[Metric[Any]]] = {
    cls.metric_type: cls for cls in (Counter, Gauge, Histogram, Summary, Info, Enum)
}
