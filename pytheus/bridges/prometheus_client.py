"""prometheus_client's registry in pytheus's ``/metrics``: for libraries instrumented with it.

::

    from pytheus.bridges import prometheus_client

    prometheus_client.register()  # in Django: PYTHEUS["PROMETHEUS_CLIENT"] = True

From then on every family of ``prometheus_client.REGISTRY`` appears in pytheus's
scrapes (and in the admin dashboard), named and typed as prometheus_client exposes it.

How: each family is *mirrored* by a pytheus metric of the same type, name, labels and
buckets, registered in pytheus's registry. Its series take their values from
prometheus_client whenever they are read: at a scrape, and at every flush of the Redis
backend. A value read from prometheus_client is this process's absolute value; the
Redis backend sends counters, histograms and summaries as the change since its last
flush, so Redis holds, for each series, the sum over processes of their last values,
those of processes that have exited included: a counter never goes backwards when a
worker dies, and nothing piles up per process. Gauges keep their prometheus_client
``multiprocess_mode`` (``all``, ``liveall``, ``sum``, ``livesum``, ``max``, ...: the
same names and meanings in pytheus); gauges of custom collectors, which have none, get
prometheus_client's default, ``all`` (one series per process, labelled ``pid``).

Details:

* Exemplars and ``_created`` series are shown as prometheus_client has them with the
  in-memory backend; through Redis, which keeps neither, they are left out (the
  creation time of a sum over processes is not one process's).
* prometheus_client's own process, platform and GC collectors are not bridged: pytheus's
  default collectors report the same.
* A name that pytheus's registry already has is not bridged: one warning names both,
  and the scrape has one family of that name, pytheus's. A pytheus metric defined later
  under the name of a bridged family raises
  :class:`~pytheus.exceptions.DuplicateMetricError` naming the bridged one.
* Metrics that prometheus_client defines later are bridged as they are defined; new
  families of custom collectors from the next scrape on. Summary quantiles (which
  prometheus_client's own Summary does not have), gauge histograms and untyped families
  are not bridged (logged once each).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pytheus.exceptions import PytheusError
from pytheus.metrics import (
    Counter,
    CounterChild,
    Enum,
    EnumChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    Info,
    InfoChild,
    Metric,
    Summary,
    SummaryChild,
)
from pytheus.registry import REGISTRY, Registry
from pytheus.samples import Exemplar, MetricFamily, Sample

__all__ = ["PrometheusClientBridge", "get_bridge", "register", "unregister"]

logger = logging.getLogger(__name__)

#: The gauge mode of gauges that prometheus_client gives none (custom collectors).
DEFAULT_GAUGE_MODE = "all"


def _exemplar(sample: Any) -> Exemplar | None:
    ex = getattr(sample, "exemplar", None)
    if ex is None:
        return None
    ts = ex.timestamp
    return Exemplar(dict(ex.labels), float(ex.value), None if ts is None else float(ts))


# --------------------------------------------------------------------------- children
# Each mirrored type keeps its values in a subclass of pytheus's child, loaded from
# prometheus_client's samples; recording through it is never done.


class _CounterMirror(CounterChild):
    __slots__ = ("created",)

    def load(self, value: float, exemplar: Exemplar | None, created: float | None) -> None:
        with self._lock:
            self._value = value
            self._exemplar = exemplar
        self.created = created


class _GaugeMirror(GaugeChild):
    __slots__ = ()

    def load(self, value: float) -> None:
        with self._lock:
            self._value = value


class _HistogramMirror(HistogramChild):
    __slots__ = ("created",)

    def load(
        self,
        counts: list[float],
        total: float,
        exemplars: list[Exemplar | None],
        created: float | None,
    ) -> None:
        with self._lock:
            self._counts = counts
            self._sum = total
            self._exemplars = exemplars if any(e is not None for e in exemplars) else None
        self.created = created


class _SummaryMirror(SummaryChild):
    __slots__ = ("created",)

    def load(self, count: float, total: float, created: float | None) -> None:
        with self._lock:
            self._count = count
            self._sum = total
        self.created = created


class _InfoMirror(InfoChild):
    __slots__ = ()

    def load(self, info: dict[str, str]) -> None:
        with self._lock:
            self._info = info


class _EnumMirror(EnumChild):
    __slots__ = ()

    def load(self, state: str) -> None:
        with self._lock:
            self._state = state


# --------------------------------------------------------------------------- metrics


class _Mirror:
    """What every mirrored metric adds to its pytheus type (listed first in its bases).

    ``children()`` (what a scrape and every flush of the Redis backend read) loads the
    current values from prometheus_client first.
    """

    _source: _Source
    definition: Any

    def children(self) -> list[Any]:
        self._source.refresh()
        return super().children()  # type: ignore[misc, no-any-return]

    def local_family(self) -> MetricFamily:
        # With prometheus_client's _created series, after each series' own samples.
        family: MetricFamily = super().local_family()  # type: ignore[misc]
        series: list[Any] = super().children()  # type: ignore[misc]
        # By the series' label values (a sample's labels are those and le or quantile).
        created = {
            c.labelset.values_tuple: (c.labelset, c.created)
            for c in series
            if getattr(c, "created", None)
        }
        if not created or len(created) != len(series):
            # All or none: the text format expects them as the family's last samples.
            return family
        name = f"{self.definition.name}_created"
        names = self.definition.labelnames
        samples: list[Sample] = []
        previous: tuple[str, ...] | None = None
        for sample in family.samples:
            labels = sample.labels
            key = tuple([labels[n] for n in names])
            if previous is not None and key != previous and previous in created:
                samples.append(Sample(name, *created[previous]))
            samples.append(sample)
            previous = key
        if previous is not None and previous in created:
            samples.append(Sample(name, *created[previous]))
        family.samples = samples
        return family

    def load(self, samples: list[Any]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"<{type(self).__bases__[1].__name__} {self.definition.name!r} from prometheus_client>"
        )


class _Loader:
    """Groups a family's samples by label set and keeps the metric's series in step."""

    def __init__(self, metric: Metric[Any]) -> None:
        self.metric = metric
        self.names = metric.definition.labelnames
        self.seen: set[tuple[str, ...]] = set()

    def key(self, labels: Mapping[str, str], extra: int = 0) -> tuple[str, ...] | None:
        """The label values of a sample that has the definition's labels (and ``extra``
        more: ``le``, a state), or None for one that does not (left out)."""
        if len(labels) != len(self.names) + extra:
            return None
        try:
            return tuple([labels[n] for n in self.names])
        except KeyError:
            return None

    def child(self, values: tuple[str, ...]) -> Any:
        self.seen.add(values)
        return self.metric._child(values)

    def finish(self) -> None:
        """Forget the series prometheus_client no longer has (``remove()``, ``clear()``)."""
        if not self.names:
            return
        for child in Metric.children(self.metric):
            if child.labelset.values_tuple not in self.seen:
                self.metric.remove(dict(child.labelset))


class _MirroredCounter(_Mirror, Counter):
    child_class = _CounterMirror

    def load(self, samples: list[Any]) -> None:
        name = self.definition.name
        loader = _Loader(self)
        values: dict[tuple[str, ...], tuple[float, Exemplar | None]] = {}
        created: dict[tuple[str, ...], float] = {}
        total, created_name = f"{name}_total", f"{name}_created"
        for s in samples:
            if s.name == total:
                key = loader.key(s.labels)
                if key is not None:
                    values[key] = (float(s.value), _exemplar(s) if s.exemplar else None)
            elif s.name == created_name:
                key = loader.key(s.labels)
                if key is not None:
                    created[key] = float(s.value)
        for key, (value, exemplar) in values.items():
            loader.child(key).load(value, exemplar, created.get(key))
        loader.finish()


class _MirroredGauge(_Mirror, Gauge):
    child_class = _GaugeMirror

    def load(self, samples: list[Any]) -> None:
        loader = _Loader(self)
        for s in samples:
            key = loader.key(s.labels)
            if key is not None and s.name == self.definition.name:
                loader.child(key).load(float(s.value))
        loader.finish()


class _MirroredHistogram(_Mirror, Histogram):
    child_class = _HistogramMirror

    def load(self, samples: list[Any]) -> None:
        name = self.definition.name
        bucket_name, sum_name, created_name = f"{name}_bucket", f"{name}_sum", f"{name}_created"
        bounds = self.definition.buckets
        index = {b: i for i, b in enumerate(bounds)}
        # The le texts of a family are few: parse each once.
        slots: dict[str, int | None] = {}
        loader = _Loader(self)
        cumulative: dict[tuple[str, ...], list[float]] = {}
        exemplars: dict[tuple[str, ...], list[Exemplar | None]] = {}
        sums: dict[tuple[str, ...], float] = {}
        created: dict[tuple[str, ...], float] = {}
        for s in samples:
            le = s.labels.get("le")
            key = loader.key(s.labels, 0 if le is None else 1)
            if key is None:
                continue
            if s.name == bucket_name:
                if le not in slots:
                    slots[le] = index.get(_bound(le or ""))
                i = slots[le]
                if i is None:
                    continue  # a bucket the definition does not have
                cumulative.setdefault(key, [0.0] * len(bounds))[i] = float(s.value)
                exemplars.setdefault(key, [None] * len(bounds))[i] = (
                    _exemplar(s) if s.exemplar else None
                )
            elif s.name == sum_name:
                sums[key] = float(s.value)
            elif s.name == created_name:
                created[key] = float(s.value)
        for key, cum in cumulative.items():
            counts = [cum[0]] + [b - a for a, b in itertools.pairwise(cum)]
            loader.child(key).load(counts, sums.get(key, 0.0), exemplars[key], created.get(key))
        loader.finish()


class _MirroredSummary(_Mirror, Summary):
    child_class = _SummaryMirror

    def load(self, samples: list[Any]) -> None:
        name = self.definition.name
        loader = _Loader(self)
        parts: dict[tuple[str, ...], dict[str, float]] = {}
        for s in samples:
            if "quantile" in s.labels:
                continue  # not bridged: quantiles cannot be added up across processes
            key = loader.key(s.labels)
            if key is not None and s.name.startswith(name):
                parts.setdefault(key, {})[s.name[len(name) :]] = float(s.value)
        for key, p in parts.items():
            loader.child(key).load(p.get("_count", 0.0), p.get("_sum", 0.0), p.get("_created"))
        loader.finish()


class _MirroredInfo(_Mirror, Info):
    child_class = _InfoMirror

    def load(self, samples: list[Any]) -> None:
        names = self.definition.labelnames
        loader = _Loader(self)
        for s in samples:
            if not all(n in s.labels for n in names):
                continue
            values = tuple(s.labels[n] for n in names)
            info = {k: v for k, v in s.labels.items() if k not in names}
            loader.child(values).load(info)
        loader.finish()


class _MirroredEnum(_Mirror, Enum):
    child_class = _EnumMirror

    def load(self, samples: list[Any]) -> None:
        name = self.definition.name
        states = self.definition.states
        loader = _Loader(self)
        for s in samples:
            key = loader.key(s.labels, 1)
            if key is not None and s.value == 1 and s.labels.get(name) in states:
                loader.child(key).load(s.labels[name])
        loader.finish()


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return math.nan


# --------------------------------------------------------------------------- sources


class _Source:
    """One collector of prometheus_client's registry and the metrics mirroring it."""

    def __init__(self, bridge: PrometheusClientBridge, collector: Any) -> None:
        self.bridge = bridge
        self.collector = collector
        # A prometheus_client metric (Counter(...), Histogram(...)) yields one family, the
        # same one every time: once seen, the bridge need not collect it to look for new
        # ones (a scrape would otherwise collect it twice). Custom collectors may yield
        # new families at any scrape.
        self.fixed = type(collector).__module__ == "prometheus_client.metrics"
        self.seen = False
        self.mirrors: dict[str, _Mirror] = {}
        self.lock = threading.Lock()
        # Set when mirrors are read in a forked child before the bridge's own after-fork
        # hook ran (the Redis backend's hook): they must keep what they held at fork.
        self.pid = os.getpid()

    def families(self) -> list[Any]:
        try:
            return list(self.collector.collect())
        except Exception:
            self.bridge.once(
                ("collect", id(self.collector)),
                "prometheus_client collector %r failed; its metrics are left out.",
                self.collector,
                exc_info=True,
            )
            return []

    def refresh(self) -> None:
        """Load every mirror of this collector with prometheus_client's current values."""
        if self.pid != os.getpid():
            return
        with self.lock:
            for family in self.families():
                mirror = self.mirrors.get(family.name)
                if mirror is not None:
                    mirror.load(family.samples)


class PrometheusClientBridge:
    """The families of a prometheus_client registry, mirrored into a pytheus registry.

    Registered in ``registry`` as a collector of its own, which yields nothing: at each
    scrape it bridges the families that custom collectors started to yield. Made by
    :func:`register`.
    """

    def __init__(self, source: Any, registry: Registry) -> None:
        import prometheus_client

        self.source = source
        self.registry = registry
        self._skip = {
            id(c)
            for c in (
                prometheus_client.PROCESS_COLLECTOR,
                prometheus_client.PLATFORM_COLLECTOR,
                prometheus_client.GC_COLLECTOR,
            )
        }
        self._lock = threading.RLock()
        self._sources: dict[int, _Source] = {}
        self._logged: set[Any] = set()
        self._patched: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<PrometheusClientBridge from {self.source!r}>"

    # ---- the collector in pytheus's registry

    def describe(self) -> tuple[str, ...]:
        """No names of its own: the mirrored metrics are registered one by one."""
        return ()

    def collect(self) -> Iterator[MetricFamily]:
        """Bridge what is new since the last scrape; the values come through the mirrors."""
        self.sync()
        return iter(())

    # ---- keeping in step with the source

    def once(self, key: Any, message: str, *args: Any, exc_info: bool = False) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(message, *args, exc_info=exc_info)

    def sync(self) -> None:
        """Mirror every collector of the source that is not mirrored yet, and every new
        family of those that are."""
        collectors = list(getattr(self.source, "_collector_to_names", {}))
        with self._lock:
            for collector in collectors:
                self._mirror(collector)

    def _mirror(self, collector: Any) -> None:
        if id(collector) in self._skip:
            return
        src = self._sources.get(id(collector))
        if src is None:
            src = self._sources[id(collector)] = _Source(self, collector)
        elif src.fixed and src.seen:
            return
        src.seen = True
        for family in src.families():
            if family.name not in src.mirrors:
                mirror = self._define(collector, family)
                if mirror is not None:
                    mirror._source = src
                    src.mirrors[family.name] = mirror
                    with src.lock:
                        mirror.load(family.samples)

    def _forget(self, collector: Any) -> None:
        with self._lock:
            src = self._sources.pop(id(collector), None)
        if src is None:
            return
        for mirror in src.mirrors.values():
            with contextlib.suppress(KeyError):  # the registry was emptied meanwhile
                self.registry.unregister(mirror)  # type: ignore[arg-type]

    def _define(self, collector: Any, family: Any) -> _Mirror | None:
        """A pytheus metric for one prometheus_client family, registered; or None."""
        kind = family.type
        make = _MAKERS.get(kind)
        if make is None:
            self.once(
                ("type", family.name),
                "prometheus_client's %s %r is not bridged: pytheus has no %s type to "
                "expose it with.",
                kind,
                family.name,
                kind,
            )
            return None
        try:
            mirror = make(collector, family)
        except PytheusError as exc:
            self.once(
                ("invalid", family.name),
                "prometheus_client's %s %r is not bridged: %s",
                kind,
                family.name,
                exc,
            )
            return None
        try:
            self.registry.register(mirror)  # type: ignore[arg-type]
        except PytheusError as exc:
            self.once(
                ("clash", family.name),
                "prometheus_client's %s %r (%r) is not shown: the name is already "
                "pytheus's (%s). Rename one of them; until then the scrape shows pytheus's.",
                kind,
                family.name,
                collector,
                exc,
            )
            return None
        return mirror

    # ---- life

    def start(self) -> None:
        """Mirror what the source has, and follow what it registers from now on."""
        self.sync()
        self.registry.register(self)
        original_register = self.source.register
        original_unregister = self.source.unregister
        bridge = weakref.ref(self)

        def register(collector: Any) -> None:
            original_register(collector)
            if (b := bridge()) is not None:
                with b._lock:
                    b._mirror(collector)

        def unregister(collector: Any) -> None:
            original_unregister(collector)
            if (b := bridge()) is not None:
                b._forget(collector)

        # On the instance: prometheus_client's metrics register themselves through it
        # when they are defined (in a Celery worker that is never scraped, too).
        self._patched = {"register": register, "unregister": unregister}
        self.source.register = register
        self.source.unregister = unregister

    def stop(self) -> None:
        """Stop following the source and unregister every mirror."""
        for name, patched in self._patched.items():
            if self.source.__dict__.get(name) is patched:
                del self.source.__dict__[name]
        self._patched = {}
        for collector in [s.collector for s in list(self._sources.values())]:
            self._forget(collector)
        with contextlib.suppress(KeyError):
            self.registry.unregister(self)

    def _before_fork(self) -> None:
        # The child keeps, in the mirrors, exactly what prometheus_client held at fork:
        # the Redis backend counts only what changes after it there (the parent sends
        # the rest), and must not read prometheus_client in its after-fork hook (a lock
        # another thread held at fork would never be released in the child).
        for src in list(self._sources.values()):
            src.refresh()

    def _after_fork_in_child(self) -> None:
        # Locks another thread held at fork would stay held in the child for ever.
        self._lock = threading.RLock()
        for src in list(self._sources.values()):
            src.lock = threading.Lock()
            src.pid = os.getpid()


# --------------------------------------------------------------------------- definitions


def _labelnames(collector: Any, family: Any, strip: Iterable[str] = ()) -> list[str]:
    names = getattr(collector, "_labelnames", None)
    if isinstance(names, tuple | list):
        return list(names)
    dropped = set(strip)
    for s in family.samples:
        return [n for n in s.labels if n not in dropped]
    return []


def _unit(family: Any) -> str:
    return str(getattr(family, "unit", "") or "")


def _counter(collector: Any, family: Any) -> _Mirror:
    return _MirroredCounter(
        family.name,
        family.documentation,
        _labelnames(collector, family),
        registry=None,
        unit=_unit(family),
    )


def _gauge(collector: Any, family: Any) -> _Mirror:
    mode = getattr(collector, "_multiprocess_mode", None) or DEFAULT_GAUGE_MODE
    return _MirroredGauge(
        family.name,
        family.documentation,
        _labelnames(collector, family),
        registry=None,
        unit=_unit(family),
        multiprocess_mode=mode,
    )


def _histogram(collector: Any, family: Any) -> _Mirror:
    bounds = getattr(collector, "_upper_bounds", None)
    if not bounds:
        bounds = sorted(
            {_bound(s.labels.get("le", "")) for s in family.samples if s.name.endswith("_bucket")}
        )
    return _MirroredHistogram(
        family.name,
        family.documentation,
        _labelnames(collector, family, ("le",)),
        registry=None,
        buckets=[b for b in bounds if b == b],
        unit=_unit(family),
    )


def _summary(collector: Any, family: Any) -> _Mirror:
    return _MirroredSummary(
        family.name,
        family.documentation,
        _labelnames(collector, family, ("quantile",)),
        registry=None,
        unit=_unit(family),
    )


def _info(collector: Any, family: Any) -> _Mirror:
    names = getattr(collector, "_labelnames", None)
    if not isinstance(names, tuple | list):
        # A custom collector's info: every label is a key, no label names a series.
        names = ()
    return _MirroredInfo(family.name, family.documentation, list(names), registry=None)


def _stateset(collector: Any, family: Any) -> _Mirror:
    states = getattr(collector, "_states", None)
    if not states:
        states = list(dict.fromkeys(s.labels.get(family.name, "") for s in family.samples))
    return _MirroredEnum(
        family.name,
        family.documentation,
        _labelnames(collector, family, (family.name,)),
        registry=None,
        states=list(states),
    )


_MAKERS: dict[str, Callable[[Any, Any], _Mirror]] = {
    "counter": _counter,
    "gauge": _gauge,
    "histogram": _histogram,
    "summary": _summary,
    "info": _info,
    "stateset": _stateset,
}


# --------------------------------------------------------------------------- the switch

_bridge: PrometheusClientBridge | None = None
_switch = threading.Lock()


def get_bridge() -> PrometheusClientBridge | None:
    """The bridge :func:`register` made, or None."""
    return _bridge


def register(source: Any = None, registry: Registry = REGISTRY) -> PrometheusClientBridge:
    """Show the families of ``source`` (default ``prometheus_client.REGISTRY``) in
    ``registry`` (default pytheus's global one), from now on; see the module docstring.

    Calling it again replaces the bridge.
    """
    global _bridge
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "pytheus.bridges.prometheus_client needs prometheus_client: "
            "pip install prometheus-client."
        ) from exc
    target: Registry = getattr(registry, "_registry", registry)  # the proxy's registry
    with _switch:
        if _bridge is not None:
            _bridge.stop()
        bridge = PrometheusClientBridge(
            source if source is not None else prometheus_client.REGISTRY, target
        )
        bridge.start()
        _bridge = bridge
    return bridge


def unregister() -> None:
    """Stop bridging: the mirrored families leave pytheus's registry."""
    global _bridge
    with _switch:
        if _bridge is not None:
            _bridge.stop()
            _bridge = None


def _before_fork() -> None:
    if (bridge := _bridge) is not None:
        bridge._before_fork()


def _after_fork_in_child() -> None:
    if (bridge := _bridge) is not None:
        bridge._after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
