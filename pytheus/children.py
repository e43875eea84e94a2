"""The series (children) of each metric type: where recorded values live.

A metric (:mod:`pytheus.metrics`) keeps one child per set of label values; its
recording methods are the child's. Every mutation holds the child's lock, and
``snapshot()`` reads a consistent value (see :data:`pytheus.definitions.SERIES_VALUES`
for its shape), which is all a backend ever reads.
"""

from __future__ import annotations

import reprlib
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from pytheus.definitions import HistogramState, MetricDefinition, SummaryState
from pytheus.exceptions import InvalidValueError, LabelError, MetricDefinitionError
from pytheus.naming import validate_label_name
from pytheus.samples import Exemplar, LabelSet, Sample, label_value
from pytheus.timing import Instrument
from pytheus.window import QuantileWindow

__all__ = [
    "Child",
    "CounterChild",
    "EnumChild",
    "GaugeChild",
    "HistogramChild",
    "InfoChild",
    "SeriesOwner",
    "SummaryChild",
    "as_number",
    "check_exemplar",
    "exception_types",
]

F = TypeVar("F", bound=Callable[..., Any])

# Builds a Sample without the Python-level namedtuple __new__ (see CounterChild.samples).
_sample = tuple.__new__

# Exemplar label names and values together may not exceed this many characters
# (OpenMetrics 1.0, "Exemplars").
_EXEMPLAR_MAX_CHARS = 128


class SeriesOwner(Protocol):
    """What a child needs of its metric when it is made: the definition and a lock maker."""

    @property
    def definition(self) -> MetricDefinition: ...

    @property
    def lock_factory(self) -> Callable[[], Any]: ...


def as_number(value: object) -> float:
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


def check_exemplar(exemplar: Mapping[str, str]) -> dict[str, str]:
    """An exemplar's labels, checked (names, size) and with values as label values."""
    if not isinstance(exemplar, Mapping):
        raise InvalidValueError(
            f"An exemplar is a dict of labels such as {{'trace_id': '...'}}, "
            f"got {reprlib.repr(exemplar)}."
        )
    labels = {validate_label_name(k): label_value(v) for k, v in exemplar.items()}
    size = sum(len(k) + len(v) for k, v in labels.items())
    if size > _EXEMPLAR_MAX_CHARS:
        raise InvalidValueError(
            f"Exemplar {labels!r} is {size} characters long; OpenMetrics allows at most "
            f"{_EXEMPLAR_MAX_CHARS} characters of label names and values together."
        )
    return labels


def exception_types(value: object) -> type[BaseException] | tuple[type[BaseException], ...]:
    """``value`` if it is an exception class or a tuple of them; checked when the counting
    is set up, not when an exception is already on its way."""
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(
            f"count_exceptions() takes an exception class or a tuple of them, such as "
            f"(KeyError, ValueError); got {reprlib.repr(value)}."
        )
    return value  # type: ignore[return-value]


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

    def time(self: Any) -> Instrument:
        """Observe the duration in seconds of a block or decorated function."""
        return Instrument(
            time.perf_counter, lambda start, _exc: self.observe(time.perf_counter() - start)
        )


class _GaugeWhenCalled:
    """``@gauge`` sets the gauge to the duration of each call; ``@gauge(track_inprogress=True)``
    counts the calls in progress instead (pytheus 0.6.1's shortcuts)."""

    __slots__ = ()

    def __call__(self: Any, func: F | None = None, track_inprogress: bool = False) -> Any:
        instrument = self.track_inprogress() if track_inprogress else self.time()
        return instrument if func is None else instrument(func)


class Child:
    """The values of one series. Every mutation holds ``_lock``.

    ``acquire``/``release`` in ``try``/``finally`` rather than ``with``: on CPython 3.11
    the ``with`` statement costs as much again as the increment it protects.
    """

    __slots__ = ("_lock", "labelset", "__weakref__")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        self._lock = metric.lock_factory()
        self.labelset = labelset

    def use_lock(self, lock: Any) -> None:
        """Guard this series with ``lock`` from now on (see ``Metric.use_lock_factory``)."""
        self._lock = lock

    def snapshot(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class CounterChild(_CountsExceptionsWhenCalled, Child):
    """One counter series."""

    __slots__ = ("_value", "_exemplar")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._value = 0.0
        self._exemplar: Exemplar | None = None

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (>= 0); optionally attach an OpenMetrics exemplar."""
        if type(amount) is not float:
            amount = as_number(amount)
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
        ex = Exemplar(check_exemplar(exemplar), amount, time.time())
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
    ) -> Instrument:
        """Count exceptions of the given type(s) raised in a block or decorated function
        (``exceptions=`` is pytheus 0.6.1's name for the argument)."""
        watched = exception_types(exception if exceptions is None else exceptions)

        def stop(_token: object, exc: BaseException | None) -> None:
            if exc is not None and isinstance(exc, watched):
                self.inc()

        return Instrument(lambda: None, stop)

    def snapshot(self) -> tuple[float, Exemplar | None]:
        """The value and the latest exemplar."""
        return self._value, self._exemplar

    @staticmethod
    def samples(name: str, children: Iterable[CounterChild]) -> list[Sample]:
        """The samples, named ``name``, of these series, read in one pass.

        The in-memory scrape of the most common type: the samples that
        :func:`pytheus.families.build_family` makes of the series' snapshots, without
        making the snapshots (a third of a 10,000-series scrape).
        """
        return [_sample(Sample, (name, c.labelset, c._value, None, c._exemplar)) for c in children]


class GaugeChild(_GaugeWhenCalled, Child):
    """One gauge series."""

    __slots__ = ("_value",)

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (which may be negative)."""
        if type(amount) is not float:
            amount = as_number(amount)
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        if type(amount) is not float:
            amount = as_number(amount)
        lock = self._lock
        lock.acquire()
        try:
            self._value -= amount
        finally:
            lock.release()

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        if type(value) is not float:
            value = as_number(value)
        lock = self._lock
        lock.acquire()
        try:
            self._value = value
        finally:
            lock.release()

    def set_to_current_time(self) -> None:
        """Set the gauge to the current Unix time in seconds."""
        self.set(time.time())

    def track_inprogress(self) -> Instrument:
        """Raise the gauge by one while a block or decorated function runs.

        The gauge always comes back down, also when the block raises.
        """
        return Instrument(self.inc, lambda _token, _exc: self.dec())

    def time(self) -> Instrument:
        """Set the gauge to the duration in seconds of a block or decorated function."""
        return Instrument(
            time.perf_counter, lambda start, _exc: self.set(time.perf_counter() - start)
        )

    def reset_in_forked_child(self) -> None:
        """Set the value back to 0 without taking the lock, in a forked child only.

        For after-fork hooks (a backend forgetting what the parent process set): there
        the lock may be one that notifies the backend on release, and no other thread
        of the child can be recording yet.
        """
        self._value = 0.0

    def snapshot(self) -> float:
        """The current value."""
        return self._value

    @staticmethod
    def samples(name: str, children: Iterable[GaugeChild]) -> list[Sample]:
        """As :meth:`CounterChild.samples`: gauges are the other common type."""
        return [_sample(Sample, (name, c.labelset, c._value, None, None)) for c in children]


class HistogramChild(_TimesWhenCalled, Child):
    """One histogram series: a count per bucket and the sum of observations."""

    __slots__ = ("_bounds", "_counts", "_sum", "_exemplars")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._bounds: tuple[float, ...] = metric.definition.buckets
        self._counts = [0.0] * len(self._bounds)
        self._sum = 0.0
        self._exemplars: list[Exemplar | None] | None = None

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation; optionally attach an exemplar to its bucket."""
        if type(value) is not float:
            value = as_number(value)
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
        ex = Exemplar(check_exemplar(exemplar), value, time.time())
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


class SummaryChild(_TimesWhenCalled, Child):
    """One summary series: count, sum and, optionally, windowed quantiles."""

    __slots__ = ("_count", "_sum", "_window", "_quantiles")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._count = 0.0
        self._sum = 0.0
        d = metric.definition
        self._quantiles = d.quantiles
        self._window = (
            QuantileWindow(d.options["max_age_seconds"], d.options["age_buckets"])
            if d.quantiles
            else None
        )

    def observe(self, value: float) -> None:
        """Record one observation."""
        if type(value) is not float:
            value = as_number(value)
        lock = self._lock
        lock.acquire()
        try:
            self._count += 1.0
            self._sum += value
            if self._window is not None:
                self._window.add(value)
        finally:
            lock.release()

    def snapshot(self) -> SummaryState:
        """Count, sum and the quantiles of the current window."""
        lock = self._lock
        lock.acquire()
        try:
            quantiles = self._window.quantiles(self._quantiles) if self._window is not None else ()
            return SummaryState(self._count, self._sum, quantiles)
        finally:
            lock.release()


class InfoChild(Child):
    """One info series: a set of key/value pairs exposed as labels of a constant 1."""

    __slots__ = ("_info", "_reserved")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
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
            info[k] = label_value(v)
        lock = self._lock
        lock.acquire()
        try:
            self._info = info
        finally:
            lock.release()

    def snapshot(self) -> dict[str, str]:
        """The current info."""
        return self._info


class EnumChild(Child):
    """One state-set series: exactly one of a fixed list of states is current."""

    __slots__ = ("_state", "_states")

    def __init__(self, metric: SeriesOwner, labelset: LabelSet) -> None:
        super().__init__(metric, labelset)
        self._states = metric.definition.states
        self._state = self._states[0]

    def state(self, state: str) -> None:
        """Make ``state`` the current state."""
        # As with the states at definition and label values: 404 means "404".
        state = label_value(state)
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
