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

import functools
import inspect
import itertools
import logging
import math
import os
import random
import reprlib
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar, cast

from pytheus.collectors import CustomCollector
from pytheus.exceptions import (
    BucketException,
    InvalidValueError,
    LabelDefinitionError,
    LabelError,
    MetricDefinitionError,
    UnobservableMetricException,
)
from pytheus.naming import validate_label_name, validate_label_names, validate_metric_name
from pytheus.registry import REGISTRY
from pytheus.samples import (
    EMPTY_LABELS,
    Exemplar,
    LabelSet,
    MetricFamily,
    Sample,
    format_float,
    replace_surrogates,
    series_names,
)

if TYPE_CHECKING:
    from typing import Self

    from pytheus.registry import Registry

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

# Builds a Sample without the Python-level namedtuple __new__: exposition makes one per
# series per scrape.
_sample = tuple.__new__

# Exemplar label names and values together may not exceed this many characters
# (OpenMetrics 1.0, "Exemplars").
_EXEMPLAR_MAX_CHARS = 128
# A summary's age buckets each keep up to _Window's capacity of observations per series.
_MAX_AGE_BUCKETS = 1000
_INF = math.inf
_NAN = math.nan

F = TypeVar("F", bound=Callable[..., Any])
ChildT = TypeVar("ChildT", bound="_Child")


@dataclass(frozen=True)
class MetricDefinition:
    """Everything that defines a metric, independent of its values.

    Multi-process backends store it so that any process can expose metrics defined by
    another, and compare it to detect the same name defined two different ways.
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
            given = f"{self.name}_total" if self.type == "counter" else self.name
            object.__setattr__(self, "given_name", given)

    def series_names(self) -> tuple[str, ...]:
        """Every sample name this metric can produce, for clash detection."""
        return series_names(self.name, self.type)


class HistogramState(NamedTuple):
    """A histogram series at one moment: per-bucket (not cumulative) counts and the sum."""

    counts: tuple[float, ...]
    sum: float
    exemplars: tuple[Exemplar | None, ...] = ()


class SummaryState(NamedTuple):
    """A summary series at one moment; ``quantiles`` pairs each quantile with its value."""

    observations: float
    sum: float
    quantiles: tuple[tuple[float, float], ...] = ()


# --------------------------------------------------------------------------- helpers


class _Limits:
    """Process-wide defaults, changed with :func:`set_default_max_series`."""

    max_series: int | None = 10_000


_limits = _Limits()


def set_default_max_series(limit: int | None) -> None:
    """Set how many series a metric may have unless it says otherwise (``max_series=``).

    Past the limit, new label sets are not stored: their values are dropped and counted
    in ``pytheus_dropped_series_total{metric=...}``, and one warning names the metric,
    so a label with unbounded values cannot exhaust memory (or Redis). The default is
    10,000; ``None`` removes the limit.
    """
    if limit is not None and (type(limit) is not int or limit < 1):
        raise MetricDefinitionError(
            f"The default max_series must be a whole number >= 1 or None, got {limit!r}."
        )
    _limits.max_series = limit


# By id of the registry, holding the counters weakly: each counter is registered in (so
# kept alive by) its registry, and goes with it. Keyed weakly by the registry instead,
# the counter (which references its registry) would keep its key, and so the registry
# with all its metrics, alive for ever.
_dropped_counters: weakref.WeakValueDictionary[int, Counter] = weakref.WeakValueDictionary()
_dropped_lock = threading.Lock()


def _dropped_series_counter(registry: Registry) -> Counter:
    """The counter of dropped series in ``registry`` (created on first use)."""
    target: Any = getattr(registry, "_registry", registry)  # the proxy's current registry
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


def _label_value(value: object) -> str:
    # Lone surrogates (os.fsdecode() of undecodable bytes) are replaced here, where the
    # series is keyed, not only when exposed: two values differing only in them would
    # otherwise be two series exposed under one label set, and a multi-process backend
    # could not encode them (UTF-8) to send at all.
    return replace_surrogates(value if type(value) is str else str(value))


def _number(value: object) -> float:
    """``value`` as a float, for the recording methods, when it is not a float already.

    Recording does arithmetic on floats only: an int past the float range would raise
    OverflowError halfway through a histogram's update, and a complex number (or an array)
    would be added in and break every later scrape.
    """
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        if isinstance(value, int):
            what = f"an int of {value.bit_length()} bits, too large for a float"
        else:
            what = f"{type(value).__name__} {reprlib.repr(value)}, not a number"
        raise InvalidValueError(
            f"Metrics record numbers that fit a float; got {what}. Convert it first."
        ) from None


def _check_exemplar(exemplar: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(exemplar, Mapping):
        raise InvalidValueError(
            f"An exemplar is a dict of labels such as {{'trace_id': '...'}}, "
            f"got {reprlib.repr(exemplar)}."
        )
    labels = {validate_label_name(k): _label_value(v) for k, v in exemplar.items()}
    size = sum(len(k) + len(v) for k, v in labels.items())
    if size > _EXEMPLAR_MAX_CHARS:
        raise InvalidValueError(
            f"Exemplar {labels!r} is {size} characters long; OpenMetrics allows at most "
            f"{_EXEMPLAR_MAX_CHARS} characters of label names and values together."
        )
    return labels


def _exception_types(value: object) -> type[BaseException] | tuple[type[BaseException], ...]:
    """``value`` if it is an exception class or a tuple of them; checked when the counting
    is set up, not when an exception is already on its way."""
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(
            f"count_exceptions() takes an exception class or a tuple of them, such as "
            f"(KeyError, ValueError); got {reprlib.repr(value)}."
        )
    return value  # type: ignore[return-value]


class _Instrument:
    """A context manager that is also a decorator for sync and async functions.

    ``start()`` runs on entry and returns a token; ``stop(token, exc)`` runs on exit, even
    when the block raises. A fresh instance is made per ``time()`` call, so the token of
    a ``with`` block is kept on the instance; decorated calls keep theirs on the stack.
    """

    __slots__ = ("_start", "_stop", "_token")

    def __init__(
        self, start: Callable[[], Any], stop: Callable[[Any, BaseException | None], None]
    ) -> None:
        self._start = start
        self._stop = stop

    def __enter__(self) -> None:
        self._token = self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop(self._token, exc)

    def __call__(self, func: F) -> F:
        start, stop = self._start, self._stop
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    stop(token, exc)
                    raise
                stop(token, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                stop(token, exc)
                raise
            stop(token, None)
            return result

        return cast(F, wrapper)


class _CountsExceptionsWhenCalled:
    """``@counter`` counts the exceptions a function raises (and re-raises them), and
    ``@counter(exceptions=(KeyError, ValueError))`` only those: pytheus 0.6.1's shortcut
    for ``count_exceptions()``, on a counter and on its children."""

    __slots__ = ()

    def __call__(
        self: Any,
        func: F | None = None,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> Any:
        instrument = self.count_exceptions(Exception if exceptions is None else exceptions)
        return instrument if func is None else instrument(func)


class _TimesWhenCalled:
    """``@histogram`` (or a summary, or a gauge) records the duration of each call of the
    function it decorates: pytheus 0.6.1's shortcut for ``time()``."""

    __slots__ = ()

    def __call__(self: Any, func: F | None = None) -> Any:
        instrument = self.time()
        return instrument if func is None else instrument(func)


class _GaugeWhenCalled:
    """``@gauge`` sets the gauge to the duration of each call; ``@gauge(track_inprogress=True)``
    counts the calls in progress instead (pytheus 0.6.1's shortcuts)."""

    __slots__ = ()

    def __call__(self: Any, func: F | None = None, track_inprogress: bool = False) -> Any:
        instrument = self.track_inprogress() if track_inprogress else self.time()
        return instrument if func is None else instrument(func)


# --------------------------------------------------------------------------- children


class _Child:
    """The values of one series. Every mutation holds ``_lock``.

    ``acquire``/``release`` in ``try``/``finally`` rather than ``with``: on CPython 3.11
    the ``with`` statement costs as much again as the increment it protects.
    """

    __slots__ = ("_lock", "labelset", "__weakref__")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        self._lock = metric.lock_factory()
        self.labelset = labelset

    def snapshot(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class CounterChild(_CountsExceptionsWhenCalled, _Child):
    """One counter series."""

    __slots__ = ("_value", "_exemplar")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._value = 0.0
        self._exemplar: Exemplar | None = None

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (>= 0); optionally attach an OpenMetrics exemplar."""
        if type(amount) is not float:
            amount = _number(amount)
        if not amount >= 0:
            raise InvalidValueError(
                f"Counters only go up: inc({amount!r}) is not allowed. Use a Gauge for "
                "values that can decrease."
            )
        if exemplar is not None:
            self._inc_with_exemplar(amount, exemplar)
            return
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()

    def _inc_with_exemplar(self, amount: float, exemplar: Mapping[str, str]) -> None:
        # Checked before recording: a refused exemplar must not leave the increment behind.
        ex = Exemplar(_check_exemplar(exemplar), amount, time.time())
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
            self._exemplar = ex
        finally:
            lock.release()

    def count_exceptions(
        self,
        exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> _Instrument:
        """Count exceptions of the given type(s) raised in a block or decorated function
        (``exceptions=`` is pytheus 0.6.1's name for the argument)."""
        watched = _exception_types(exception if exceptions is None else exceptions)

        def stop(_token: object, exc: BaseException | None) -> None:
            if exc is not None and isinstance(exc, watched):
                self.inc()

        return _Instrument(lambda: None, stop)

    def snapshot(self) -> tuple[float, Exemplar | None]:
        """The value and the latest exemplar."""
        return self._value, self._exemplar


class GaugeChild(_GaugeWhenCalled, _Child):
    """One gauge series."""

    __slots__ = ("_value",)

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (which may be negative)."""
        if type(amount) is not float:
            amount = _number(amount)
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        if type(amount) is not float:
            amount = _number(amount)
        lock = self._lock
        lock.acquire()
        try:
            self._value -= amount
        finally:
            lock.release()

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        if type(value) is not float:
            value = _number(value)
        lock = self._lock
        lock.acquire()
        try:
            self._value = value
        finally:
            lock.release()

    def set_to_current_time(self) -> None:
        """Set the gauge to the current Unix time in seconds."""
        self.set(time.time())

    def track_inprogress(self) -> _Instrument:
        """Raise the gauge by one while a block or decorated function runs.

        The gauge always comes back down, also when the block raises.
        """
        return _Instrument(self.inc, lambda _token, _exc: self.dec())

    def time(self) -> _Instrument:
        """Set the gauge to the duration in seconds of a block or decorated function."""
        return _Instrument(
            time.perf_counter, lambda start, _exc: self.set(time.perf_counter() - start)
        )

    def snapshot(self) -> float:
        """The current value."""
        return self._value


class HistogramChild(_TimesWhenCalled, _Child):
    """One histogram series: a count per bucket and the sum of observations."""

    __slots__ = ("_bounds", "_counts", "_sum", "_exemplars")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._bounds: tuple[float, ...] = metric.definition.buckets
        self._counts = [0.0] * len(self._bounds)
        self._sum = 0.0
        self._exemplars: list[Exemplar | None] | None = None

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation; optionally attach an exemplar to its bucket."""
        if type(value) is not float:
            value = _number(value)
        # bisect_left finds the first bound >= value, i.e. the bucket `le` means.
        # NaN compares false with everything and would land in the first bucket.
        i = bisect_left(self._bounds, value) if value == value else len(self._bounds) - 1
        if exemplar is not None:
            self._observe_with_exemplar(i, value, exemplar)
            return
        lock = self._lock
        lock.acquire()
        try:
            self._counts[i] += 1.0
            self._sum += value
        finally:
            lock.release()

    def _observe_with_exemplar(self, i: int, value: float, exemplar: Mapping[str, str]) -> None:
        # Checked before recording: a refused exemplar must not leave the observation behind.
        ex = Exemplar(_check_exemplar(exemplar), value, time.time())
        lock = self._lock
        lock.acquire()
        try:
            self._counts[i] += 1.0
            self._sum += value
            if self._exemplars is None:
                self._exemplars = [None] * len(self._bounds)
            self._exemplars[i] = ex
        finally:
            lock.release()

    def time(self) -> _Instrument:
        """Observe the duration in seconds of a block or decorated function."""
        return _Instrument(
            time.perf_counter, lambda start, _exc: self.observe(time.perf_counter() - start)
        )

    def snapshot(self) -> HistogramState:
        """Counts, sum and exemplars, taken together so they never disagree."""
        lock = self._lock
        lock.acquire()
        try:
            counts = tuple(self._counts)
            total = self._sum
        finally:
            lock.release()
        exemplars = tuple(self._exemplars) if self._exemplars is not None else ()
        return HistogramState(counts, total, exemplars)


class _Window:
    """Observations of the last ``max_age`` seconds, for summary quantiles.

    The window is split into ``age_buckets`` slices that rotate, so old observations
    leave in steps of ``max_age / age_buckets``. Each slice keeps at most ``capacity``
    observations, sampled uniformly (reservoir sampling) once it is full, so memory is
    bounded whatever the traffic; each kept observation then stands for
    ``seen / kept`` observations when quantiles are computed.
    """

    __slots__ = ("_slices", "_seen", "_head", "_step", "_rotate_at", "_capacity")

    def __init__(self, max_age: float, age_buckets: int, capacity: int = 1024) -> None:
        self._slices: list[list[float]] = [[] for _ in range(age_buckets)]
        self._seen = [0] * age_buckets
        self._head = 0
        self._step = max_age / age_buckets
        self._rotate_at = time.monotonic() + self._step
        self._capacity = capacity

    def _rotate(self, now: float) -> None:
        n = len(self._slices)
        steps = min(n, int((now - self._rotate_at) // self._step) + 1)
        for _ in range(steps):
            self._head = (self._head + 1) % n
            self._slices[self._head] = []
            self._seen[self._head] = 0
        self._rotate_at += self._step * (int((now - self._rotate_at) // self._step) + 1)

    def add(self, value: float) -> None:
        now = time.monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        head = self._head
        kept = self._slices[head]
        self._seen[head] += 1
        if len(kept) < self._capacity:
            kept.append(value)
        else:
            j = random.randrange(self._seen[head])
            if j < self._capacity:
                kept[j] = value

    def quantiles(self, qs: Sequence[float]) -> tuple[tuple[float, float], ...]:
        now = time.monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        weighted: list[tuple[float, float]] = []
        for kept, seen in zip(self._slices, self._seen, strict=True):
            if kept:
                weight = seen / len(kept)
                weighted.extend((v, weight) for v in kept)
        if not weighted:
            return tuple((q, _NAN) for q in qs)
        weighted.sort()
        total = sum(w for _, w in weighted)
        result = []
        for q in qs:
            target, acc = q * total, 0.0
            value = weighted[-1][0]
            for v, w in weighted:
                acc += w
                if acc >= target:
                    value = v
                    break
            result.append((q, value))
        return tuple(result)


class SummaryChild(_TimesWhenCalled, _Child):
    """One summary series: count, sum and, optionally, windowed quantiles."""

    __slots__ = ("_count", "_sum", "_window", "_quantiles")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._count = 0.0
        self._sum = 0.0
        d = metric.definition
        self._quantiles = d.quantiles
        self._window = (
            _Window(d.options["max_age_seconds"], d.options["age_buckets"]) if d.quantiles else None
        )

    def observe(self, value: float) -> None:
        """Record one observation."""
        if type(value) is not float:
            value = _number(value)
        lock = self._lock
        lock.acquire()
        try:
            self._count += 1.0
            self._sum += value
            if self._window is not None:
                self._window.add(value)
        finally:
            lock.release()

    def time(self) -> _Instrument:
        """Observe the duration in seconds of a block or decorated function."""
        return _Instrument(
            time.perf_counter, lambda start, _exc: self.observe(time.perf_counter() - start)
        )

    def snapshot(self) -> SummaryState:
        """Count, sum and the quantiles of the current window."""
        lock = self._lock
        lock.acquire()
        try:
            quantiles = self._window.quantiles(self._quantiles) if self._window is not None else ()
            return SummaryState(self._count, self._sum, quantiles)
        finally:
            lock.release()


class InfoChild(_Child):
    """One info series: a set of key/value pairs exposed as labels of a constant 1."""

    __slots__ = ("_info", "_reserved")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._info: dict[str, str] = {}
        self._reserved = frozenset(metric.definition.labelnames)

    def info(self, value: Mapping[str, object]) -> None:
        """Replace the info with ``value``, e.g. ``{"version": "1.2.3"}``."""
        if not isinstance(value, Mapping):
            raise InvalidValueError(
                f"info() takes a dict such as {{'version': '1.2.3'}}, got {reprlib.repr(value)}."
            )
        info = {}
        for k, v in value.items():
            try:
                validate_label_name(k, reserved=self._reserved)
            except MetricDefinitionError as exc:
                raise LabelError(f"Info key {k!r} cannot be a label: {exc}") from None
            info[k] = _label_value(v)
        lock = self._lock
        lock.acquire()
        try:
            self._info = info
        finally:
            lock.release()

    def snapshot(self) -> dict[str, str]:
        """The current info."""
        return self._info


class EnumChild(_Child):
    """One state-set series: exactly one of a fixed list of states is current."""

    __slots__ = ("_state", "_states")

    def __init__(self, metric: Metric[Any], labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._states = metric.definition.states
        self._state = self._states[0]

    def state(self, state: str) -> None:
        """Make ``state`` the current state."""
        # As with the states at definition and label values: 404 means "404".
        state = _label_value(state)
        if state not in self._states:
            raise InvalidValueError(
                f"Unknown state {state!r}; this Enum's states are {list(self._states)}."
            )
        lock = self._lock
        lock.acquire()
        try:
            self._state = state
        finally:
            lock.release()

    def snapshot(self) -> str:
        """The current state."""
        return self._state


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
    child_class: type[_Child]
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
        description = replace_surrogates(description)  # as label values, see _label_value
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
            defaults[k] = _label_value(v)
        given_total = self.metric_type == "counter" and name.endswith("_total")
        name = self._family_name(name)
        if unit:
            if self.metric_type in ("info", "stateset"):
                raise MetricDefinitionError(
                    f"{name!r} cannot have unit {unit!r}: OpenMetrics allows no unit on "
                    f"{self.metric_type} metrics; remove unit=."
                )
            validate_label_name(unit)
            if not name.endswith(f"_{unit}"):
                name = f"{name}_{unit}"
            if self.metric_type == "counter" and name.endswith("_total"):
                # The exposition takes _total off a counter's family name, and the unit
                # with it: OpenMetrics then refuses the family (its name lacks the unit).
                raise MetricDefinitionError(
                    f"Counter {name!r} cannot have unit {unit!r}: a counter's name ends "
                    "in its unit, and _total is added to its samples; choose a base unit "
                    "such as 'seconds' or 'bytes'."
                )

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
        from pytheus.backends import attach_metric

        attach_metric(self)
        self._attached = True

    @staticmethod
    def detached(definition: MetricDefinition) -> Metric[Any]:
        """A metric that only builds families for ``definition``; it records nothing.

        Multi-process backends use it for metrics that another process defined.
        """
        metric: Metric[Any] = object.__new__(METRIC_CLASSES[definition.type])
        metric.definition = definition
        return metric

    # ---- naming

    @staticmethod
    def _family_name(name: str) -> str:
        return name

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
            merged[k] = _label_value(v)
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
        limit = self.max_series if self.max_series is not None else _limits.max_series
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
        if not isinstance(child, _Child):
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
        child_class: type[_Child] | None,
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
        from pytheus.backends import get_backend

        yield from get_backend().collect([self._root])

    def local_family(self) -> MetricFamily:
        """This process's own values of the metric, as a family."""
        return self.build_family([(c.labelset, c.snapshot()) for c in self.children()])

    def build_family(self, series: Iterable[tuple[LabelSet, Any]]) -> MetricFamily:
        """Turn ``(labels, snapshot)`` pairs into a family of samples.

        Backends call this with values read locally or aggregated across processes;
        a snapshot has the shape that this type's ``child.snapshot()`` returns.
        """
        d = self.definition
        family = MetricFamily(d.name, d.type, d.help, unit=d.unit, given_name=d.given_name)
        self._add_samples(family.samples, series)
        return family

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = self.definition.name
        for labels, value in series:
            out.append(_sample(Sample, (name, labels, value, None, None)))


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

    @staticmethod
    def _family_name(name: str) -> str:
        # Every trailing _total goes: "x_total_total" must not expose x_total_total.
        while name.endswith("_total") and name != "_total":
            name = name.removesuffix("_total")
        return name

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (>= 0) to the counter."""
        self._default_child().inc(amount, exemplar)

    def count_exceptions(
        self,
        exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> _Instrument:
        """Count exceptions raised in a ``with`` block or a decorated function
        (``exceptions=`` is pytheus 0.6.1's name for the argument)."""
        watched = _exception_types(exception if exceptions is None else exceptions)
        # The child is looked up at each use, not here: clear() replaces it, and a
        # decorator applied at import time must follow. Missing labels still fail here.
        self._default_child()

        def stop(_token: object, exc: BaseException | None) -> None:
            if exc is not None and isinstance(exc, watched):
                self._default_child().inc()

        return _Instrument(lambda: None, stop)

    def local_family(self) -> MetricFamily:
        # The in-memory scrape of the most common type, without intermediate snapshots.
        d = self.definition
        name = f"{d.name}_total"
        samples = [
            _sample(Sample, (name, c.labelset, c._value, None, c._exemplar))
            for c in self.children()
        ]
        return MetricFamily(d.name, d.type, d.help, samples, unit=d.unit, given_name=d.given_name)

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = f"{self.definition.name}_total"
        for labels, (value, exemplar) in series:
            out.append(_sample(Sample, (name, labels, value, None, exemplar)))


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
        samples = [
            _sample(Sample, (d.name, c.labelset, c._value, None, None)) for c in self.children()
        ]
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

    def track_inprogress(self) -> _Instrument:
        """Count the blocks or calls in progress; exception-safe."""
        # The child is looked up at each use, not here: clear() replaces it, and a
        # decorator applied at import time must follow. Missing labels still fail here.
        self._default_child()

        def start() -> GaugeChild:
            child = self._default_child()
            child.inc()
            return child

        return _Instrument(start, lambda child, _exc: child.dec())

    def time(self) -> _Instrument:
        """Set to the duration of a block or decorated function."""
        self._default_child()  # as in track_inprogress()
        return _Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().set(time.perf_counter() - start),
        )


def _definition_numbers(name: str, what: str, numbers: Iterable[float]) -> tuple[float, ...]:
    if isinstance(numbers, str | bytes):
        raise MetricDefinitionError(f"{what} of {name!r} must be a list of numbers, not a str.")
    try:
        return tuple(float(n) for n in numbers)
    except (TypeError, ValueError, OverflowError):
        raise MetricDefinitionError(
            f"{what} of {name!r} must be numbers that fit a float, got {reprlib.repr(numbers)}."
        ) from None


def _check_buckets(name: str, buckets: Iterable[float]) -> tuple[float, ...]:
    bounds = list(_definition_numbers(name, "Buckets", buckets))
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
            _definition_extra={"buckets": _check_buckets(name, buckets)},
        )

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation."""
        self._default_child().observe(value, exemplar)

    def time(self) -> _Instrument:
        """Observe the duration of a block or decorated function."""
        self._default_child()  # as in Gauge.track_inprogress()
        return _Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().observe(time.perf_counter() - start),
        )

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = self.definition.name
        bucket, total, count = f"{name}_bucket", f"{name}_sum", f"{name}_count"
        le = [format_float(b) for b in self.definition.buckets]
        for labels, (counts, sum_, exemplars) in series:
            cumulative = 0.0
            for i, c in enumerate(counts):
                cumulative += c
                out.append(
                    _sample(
                        Sample,
                        (
                            bucket,
                            labels.with_label("le", le[i]),
                            cumulative,
                            None,
                            exemplars[i] if exemplars else None,
                        ),
                    )
                )
            out.append(_sample(Sample, (count, labels, cumulative, None, None)))
            out.append(_sample(Sample, (total, labels, sum_, None, None)))


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
        qs = _definition_numbers(name, "Quantiles", quantiles)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise MetricDefinitionError(
                    f"Quantile {q!r} of summary {name!r} must be a number from 0 to 1."
                )
        if list(qs) != sorted(set(qs)):
            raise MetricDefinitionError(
                f"Quantiles of summary {name!r} must be sorted without repeats, got {list(qs)}."
            )
        # Each age bucket keeps up to 1,024 observations per series: the limit bounds
        # memory (a mistyped 10**12 would allocate until the process is killed).
        max_age: object = max_age_seconds  # checked as it comes, whatever the annotation
        if (
            not isinstance(max_age, int | float)
            or not max_age > 0
            or type(age_buckets) is not int
            or not 0 < age_buckets <= _MAX_AGE_BUCKETS
        ):
            raise MetricDefinitionError(
                f"Summary {name!r} needs a number max_age_seconds > 0 and a whole age_buckets "
                f"from 1 to {_MAX_AGE_BUCKETS}, got {max_age_seconds!r} and {age_buckets!r}."
            )
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

    def time(self) -> _Instrument:
        """Observe the duration of a block or decorated function."""
        self._default_child()  # as in Gauge.track_inprogress()
        return _Instrument(
            time.perf_counter,
            lambda start, _exc: self._default_child().observe(time.perf_counter() - start),
        )

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = self.definition.name
        total, count = f"{name}_sum", f"{name}_count"
        for labels, (count_, sum_, quantiles) in series:
            for q, v in quantiles:
                quantile = labels.with_label("quantile", format_float(q))
                out.append(_sample(Sample, (name, quantile, v, None, None)))
            out.append(_sample(Sample, (count, labels, count_, None, None)))
            out.append(_sample(Sample, (total, labels, sum_, None, None)))


class Info(Metric[InfoChild]):
    """Constant facts as labels of a series whose value is 1, such as a build version.

    >>> build = Info("build", "Build information.")
    >>> build.info({"version": "1.2.3", "commit": "abc123"})

    is exposed as ``build_info{version="1.2.3",commit="abc123"} 1``.
    """

    metric_type = "info"
    child_class = InfoChild

    @staticmethod
    def _family_name(name: str) -> str:
        return name.removesuffix("_info") or name

    def info(self, value: Mapping[str, object]) -> None:
        """Set the info to ``value``."""
        self._default_child().info(value)

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = f"{self.definition.name}_info"
        for labels, info in series:
            # Not with_label(): info values may change, and its results are kept.
            merged = LabelSet((*labels, *info), (*labels.values(), *info.values()))
            out.append(_sample(Sample, (name, merged, 1.0, None, None)))


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
        given: object = states  # checked as it comes, whatever the annotation
        if isinstance(given, str) or not isinstance(given, Iterable) or not states:
            raise MetricDefinitionError(
                f"Enum {name!r} needs a non-empty list of states, got {states!r}."
            )
        states = tuple(_label_value(s) for s in states)
        if len(set(states)) != len(states):
            raise MetricDefinitionError(f"States of Enum {name!r} repeat: {list(states)}.")
        validate_metric_name(name)
        if name in (required_labels or ()):
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

    def _add_samples(self, out: list[Sample], series: Iterable[tuple[LabelSet, Any]]) -> None:
        name = self.definition.name
        states = self.definition.states
        for labels, current in series:
            for s in states:
                value = 1.0 if s == current else 0.0
                out.append(_sample(Sample, (name, labels.with_label(name, s), value, None, None)))


def _fresh_locks_after_fork() -> None:
    """Give every metric and series a new lock in a forked child.

    Only the thread that called fork() lives on in the child: a lock another thread held
    at that moment (recording, or a flusher reading a series) would stay held for ever,
    and the first use of that series in the child would hang.
    """
    from pytheus.backends import _metrics

    for metric in list(_metrics):
        metric._lock = threading.Lock()
        for child in list(metric._children.values()):
            child._lock = metric.lock_factory()
        if metric._sink is not None:
            metric._sink._lock = metric.lock_factory()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


#: The metric class for each ``MetricDefinition.type``.
METRIC_CLASSES: dict[str, type[Metric[Any]]] = {
    cls.metric_type: cls for cls in (Counter, Gauge, Histogram, Summary, Info, Enum)
}
