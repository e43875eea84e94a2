"""``prometheus_client``'s metric classes, recording into pytheus metrics.

Each adapter takes ``prometheus_client``'s arguments (``name, documentation, labelnames,
namespace, subsystem, unit, registry``) and defines the pytheus metric that holds the
values; ``.labels()`` takes label values positionally, in ``labelnames`` order, or by
keyword, and returns the same child adapter for the same values::

    requests = CounterAdapter("requests", "Requests served.", ["method"])
    requests.labels("GET").inc()
    requests.labels(method="POST").inc()

Label names keep the order they were given in (pytheus 0.6.1 sorted them, which paired
positional values with the wrong names when they were not given sorted).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pytheus.exceptions import LabelError
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Metric, Summary
from pytheus.registry import REGISTRY

if TYPE_CHECKING:
    from typing import Self

    from pytheus.registry import Registry
    from pytheus.timing import Instrument

__all__ = [
    "DEFAULT_BUCKETS",
    "CounterAdapter",
    "EnumAdapter",
    "GaugeAdapter",
    "HistogramAdapter",
    "InfoAdapter",
    "MetricAdapter",
    "SummaryAdapter",
]

#: prometheus_client's default histogram bounds, which code written for it expects.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


def _build_name(name: str, namespace: str = "", subsystem: str = "") -> str:
    """``namespace_subsystem_name``, leaving out the empty parts, as prometheus_client does."""
    return "_".join(part for part in (namespace, subsystem, name) if part)


class MetricAdapter:
    """A prometheus_client metric (or one of its children) backed by a pytheus metric."""

    pytheus_class: ClassVar[type[Metric[Any]]]

    def __init__(  # noqa: PLR0917 (prometheus_client's positional signature)
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        **options: Any,
    ) -> None:
        if isinstance(labelnames, str):
            labelnames = [labelnames]
        self._labelnames = tuple(labelnames)
        if unit:
            options["unit"] = unit
        self._metric: Metric[Any] = self.pytheus_class(
            _build_name(name, namespace, subsystem),
            documentation,
            required_labels=self._labelnames or None,
            registry=registry,
            **options,
        )
        self._target: Any = self._metric
        self._children: dict[tuple[str, ...], Self] = {}
        self._lock = threading.Lock()

    @property
    def pytheus_metric(self) -> Metric[Any]:
        """The pytheus metric that holds the values."""
        return self._metric

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self._metric!r}>"

    def labels(self, *labelvalues: object, **labelkwargs: object) -> Self:
        """The child for these label values, given in ``labelnames`` order or by name."""
        names = self._labelnames
        if not names:
            raise LabelError(f"{self!r} has no label names (or is already a child).")
        if labelvalues and labelkwargs:
            raise LabelError("Give label values positionally or by keyword, not both.")
        if labelkwargs:
            if sorted(labelkwargs) != sorted(names):
                raise LabelError(f"Label names {sorted(labelkwargs)} do not match {list(names)}.")
            values = tuple(str(labelkwargs[n]) for n in names)
        else:
            if len(labelvalues) != len(names):
                raise LabelError(
                    f"{len(labelvalues)} label values given for the labels {list(names)}."
                )
            values = tuple(str(v) for v in labelvalues)
        try:
            return self._children[values]
        except KeyError:
            pass
        with self._lock:
            child = self._children.get(values)
            if child is None:
                child = object.__new__(type(self))
                child._labelnames = ()
                child._metric = self._metric
                child._target = self._metric.labels(dict(zip(names, values, strict=True)))
                child._children = {}
                child._lock = self._lock
                self._children[values] = child
            return child

    def remove(self, *labelvalues: object) -> None:
        """Forget the child with these label values."""
        values = tuple(str(v) for v in labelvalues)
        with self._lock:
            self._children.pop(values, None)
        self._metric.remove(dict(zip(self._labelnames, values, strict=True)))

    def clear(self) -> None:
        """Forget every child."""
        with self._lock:
            self._children.clear()
        self._metric.clear()


class CounterAdapter(MetricAdapter):
    """prometheus_client's ``Counter``."""

    pytheus_class = Counter

    def inc(self, amount: float = 1, exemplar: Mapping[str, str] | None = None) -> None:
        self._target.inc(amount, exemplar)

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> Instrument:
        """Count exceptions raised in a ``with`` block or a decorated function."""
        return self._target.count_exceptions(exception)  # type: ignore[no-any-return]


class GaugeAdapter(MetricAdapter):
    """prometheus_client's ``Gauge`` (``multiprocess_mode`` is pytheus's own, see Gauge)."""

    pytheus_class = Gauge

    def __init__(  # noqa: PLR0917 (prometheus_client's positional signature)
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        multiprocess_mode: str = "livesum",
    ) -> None:
        # prometheus_client's default "all" keeps a series per process; its "liveall"
        # and the others are ours too. Anything else falls back to our default.
        mode = multiprocess_mode if multiprocess_mode != "unused" else "livesum"
        super().__init__(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            unit,
            registry,
            multiprocess_mode=mode,
        )

    def inc(self, amount: float = 1) -> None:
        self._target.inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._target.dec(amount)

    def set(self, value: float) -> None:
        self._target.set(value)

    def set_to_current_time(self) -> None:
        self._target.set_to_current_time()

    def track_inprogress(self) -> Instrument:
        return self._target.track_inprogress()  # type: ignore[no-any-return]

    def time(self) -> Instrument:
        return self._target.time()  # type: ignore[no-any-return]


class HistogramAdapter(MetricAdapter):
    """prometheus_client's ``Histogram``, with its default buckets."""

    pytheus_class = Histogram

    def __init__(  # noqa: PLR0917 (prometheus_client's positional signature)
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(
            name, documentation, labelnames, namespace, subsystem, unit, registry, buckets=buckets
        )

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        self._target.observe(amount, exemplar)

    def time(self) -> Instrument:
        return self._target.time()  # type: ignore[no-any-return]


class SummaryAdapter(MetricAdapter):
    """prometheus_client's ``Summary`` (count and sum, as there)."""

    pytheus_class = Summary

    def observe(self, amount: float) -> None:
        self._target.observe(amount)

    def time(self) -> Instrument:
        return self._target.time()  # type: ignore[no-any-return]


class InfoAdapter(MetricAdapter):
    """prometheus_client's ``Info``."""

    pytheus_class = Info

    def info(self, val: Mapping[str, str]) -> None:
        self._target.info(val)


class EnumAdapter(MetricAdapter):
    """prometheus_client's ``Enum``."""

    pytheus_class = Enum

    def __init__(  # noqa: PLR0917 (prometheus_client's positional signature)
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        states: Sequence[str] = (),
    ) -> None:
        super().__init__(
            name, documentation, labelnames, namespace, subsystem, unit, registry, states=states
        )

    def state(self, state: str) -> None:
        self._target.state(state)
