"""Registries: the set of collectors that one scrape reads.

Metrics register themselves in the global :data:`REGISTRY` when they are created (or in
the ``registry=`` they are given). ``REGISTRY`` is a proxy: :func:`set_registry` points it
at another :class:`CollectorRegistry`, for example a fresh one per test.

A *collector* is any object with a ``collect()`` method that yields
:class:`~pytheus.samples.MetricFamily` objects; register custom ones with
``REGISTRY.register(collector)``. A collector may also have ``describe()``, returning the
names it will produce, so that the registry can check for clashes without collecting.

A registry knows collectors, never the metric classes: those that are also
:class:`~pytheus.definitions.SeriesSource` objects (every metric) are read through the
active backend in one call per scrape. Two ways to read a registry:

* :meth:`CollectorRegistry.collect`: families of samples, what the exposition renders;
* :meth:`CollectorRegistry.collect_series`: a :class:`~pytheus.definitions.MetricSeries`
  per family (definition, label sets, values), for readers that want series rather than
  samples, such as a dashboard. Families of custom collectors are read back into series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from pytheus.backends import SeriesBackend, get_backend
from pytheus.definitions import MetricSeries, SeriesSource
from pytheus.exceptions import DuplicateMetricError, MetricDefinitionError
from pytheus.families import as_family, as_series
from pytheus.naming import implied_family, series_names, validate_metric_name
from pytheus.samples import MetricFamily

__all__ = [
    "REGISTRY",
    "Collector",
    "CollectorRegistry",
    "CollectorRegistryProxy",
    "CustomCollector",
    "Registry",
    "RegistryProxy",
    "get_registry",
    "real_registry",
    "set_registry",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Collector(Protocol):
    """Anything that yields metric families at scrape time.

    ``collect()`` is called once per scrape, possibly from several threads at once, so
    it must be thread-safe; it should be quick and must not block on the network.
    """

    def collect(self) -> Iterable[MetricFamily]: ...


class CustomCollector:
    """Base class of custom collectors, as in pytheus 0.6.1 (also in pytheus.metrics).

    Subclass it and write ``collect()``, yielding metric objects made afresh with
    ``registry=None`` (registered nowhere, so that the next collect() can make them
    again), or :class:`~pytheus.samples.MetricFamily` objects::

        class QueueCollector(CustomCollector):
            def collect(self):
                jobs = Gauge("jobs_queued", "Jobs waiting.", registry=None)
                jobs.set(queue_length())
                yield jobs


        REGISTRY.register(QueueCollector())

    Metric objects are exposed with the values they hold in this process, on every
    backend. ``register()`` calls ``collect()`` once to learn the names (or
    ``describe()``, if you write one returning them): a name that another collector or
    metric of the registry already produces is refused there, with
    :class:`~pytheus.exceptions.DuplicateMetricError` (pytheus 0.6.1 left the collector
    out silently).
    """

    @property
    def name(self) -> str:
        """The class name in lower case, as pytheus 0.6.1 named custom collectors."""
        return type(self).__name__.lower()

    def collect(self) -> Iterable[Any]:
        """Yield the metrics (or families) of one scrape."""
        raise NotImplementedError(f"{type(self).__name__} must define collect().")


class Registry(Protocol):
    """What metrics need of a registry: :class:`CollectorRegistry` or the proxy."""

    @property
    def prefix(self) -> str: ...

    def register(self, collector: Collector) -> None: ...

    def unregister(self, collector: Collector) -> None: ...

    def collect(self, names: Collection[str] | None = None) -> Iterator[MetricFamily]: ...


def _item_name(item: MetricSeries | MetricFamily) -> str:
    return item.definition.name if isinstance(item, MetricSeries) else item.name


def _families(items: Iterable[object]) -> list[MetricFamily]:
    """What a custom collector yielded, as families: metric objects (pytheus 0.6.1's custom
    collectors yield metrics made with ``registry=None``) give their local values."""
    return [i.local_family() if isinstance(i, SeriesSource) else i for i in items]  # type: ignore[misc]


def _family_names(families: Iterable[MetricFamily]) -> set[str]:
    names: set[str] = set()
    for f in families:
        names.update(series_names(f.name, f.type))
        names.update(s.name for s in f.samples)
    return names


class CollectorRegistry:
    """A set of collectors whose series names never clash.

    ``prefix`` (e.g. ``"myapp"``) is put in front of the name of every metric defined
    with this registry: ``Counter("hits", ...)`` becomes ``myapp_hits_total``.
    """

    def __init__(self, prefix: str | None = None) -> None:
        if prefix:
            validate_metric_name(prefix)
        self._prefix = prefix or ""
        self._lock = threading.Lock()
        self._collectors: dict[Collector, frozenset[str]] = {}
        # Those read through the backend (metrics), told apart once, when registered.
        self._sources: dict[Collector, SeriesSource] = {}
        self._owners: dict[str, Collector] = {}

    @property
    def prefix(self) -> str:
        """The prefix added to the names of metrics defined with this registry."""
        return self._prefix

    def _names_of(self, collector: Collector) -> frozenset[str]:
        describe = getattr(collector, "describe", None)
        if describe is not None:
            described = list(describe())
            names = {d for d in described if isinstance(d, str)}
            # A described "x_total" or "x_info" is, in OpenMetrics, a sample of family x
            # (a counter, an info): claim x too, or a Gauge("x") would expose x twice.
            names |= {f for f in map(implied_family, names) if f is not None}
            names |= _family_names(d for d in described if isinstance(d, MetricFamily))
            return frozenset(names)
        return frozenset(_family_names(_families(collector.collect())))

    def register(self, collector: Collector) -> None:
        """Add a collector; raise DuplicateMetricError if a name it produces is taken."""
        if not callable(getattr(collector, "collect", None)):
            raise MetricDefinitionError(
                f"{collector!r} is not a collector: it needs a collect() method that "
                "yields MetricFamily objects."
            )
        names = self._names_of(collector)
        with self._lock:
            if collector in self._collectors:
                raise DuplicateMetricError(f"{collector!r} is already registered.")
            clashes = sorted(n for n in names if n in self._owners)
            if clashes:
                owner = self._owners[clashes[0]]
                raise DuplicateMetricError(
                    f"Cannot register {collector!r}: the name {clashes[0]!r} is already "
                    f"produced by {owner!r}. Metric names must be unique in a registry "
                    "(including derived series such as _total, _bucket, _sum, _count); "
                    "reuse the existing metric or choose another name."
                )
            self._collectors[collector] = names
            if isinstance(collector, SeriesSource):
                self._sources[collector] = collector
            for n in names:
                self._owners[n] = collector
        # A metric defined with registry=None joins the active backend when registered.
        attach = getattr(collector, "attach_to_backend", None)
        if attach is not None:
            try:
                attach()
            except BaseException:
                self.unregister(collector)
                raise

    def unregister(self, collector: Collector) -> None:
        """Remove a collector; its names can be registered again."""
        with self._lock:
            names = self._collectors.pop(collector, None)
            if names is None:
                raise KeyError(f"{collector!r} is not registered.")
            self._sources.pop(collector, None)
            for n in names:
                self._owners.pop(n, None)

    def collectors(self) -> list[Collector]:
        """The registered collectors, in registration order."""
        with self._lock:
            return list(self._collectors)

    def collect(self, names: Collection[str] | None = None) -> Iterator[MetricFamily]:
        """Yield every family, or only those producing one of ``names`` (``name[]``),
        sorted by name.

        Metrics are read through the active backend in one call, so a multi-process
        backend can fetch them all in one round trip. A custom collector that raises is
        logged and left out rather than failing the whole scrape. The order is the same
        whatever the backend returns them in (the Redis backend reads them in hash
        order) and whatever the order of definition, so that two scrapes, of two
        processes or two backends, can be read and diffed side by side.
        """
        for item in self._collect(names, series=False):
            yield as_family(item)

    def collect_series(self, names: Collection[str] | None = None) -> Iterator[MetricSeries]:
        """Yield a :class:`~pytheus.definitions.MetricSeries` per family, as :meth:`collect`.

        Each has the definition (name, type, help, unit, label names, buckets, ...) and
        every series' label set and value (shaped by type, see
        :data:`pytheus.definitions.SERIES_VALUES`), so that a reader never regroups
        samples. Families of custom collectors are read back into series
        (:func:`pytheus.families.series_of_family`).
        """
        for item in self._collect(names, series=True):
            yield as_series(item)

    def _collect(
        self, names: Collection[str] | None, *, series: bool
    ) -> Iterator[MetricSeries | MetricFamily]:
        """Families or, with ``series``, series where the backend gives them."""
        with self._lock:
            items = list(self._collectors.items())
            sources = dict(self._sources)
        if names is not None:
            wanted = set(names)
            items = [(c, n) for c, n in items if not wanted.isdisjoint(n)]
        metrics = [sources[c] for c, _ in items if c in sources]
        found: list[MetricSeries | MetricFamily] = []
        # Only the global registry shows metrics that other processes defined.
        include_remote = self is get_registry()
        if metrics or include_remote:
            backend = get_backend()
            if series and isinstance(backend, SeriesBackend):
                found += backend.collect_series(metrics, names=names, include_remote=include_remote)
            else:
                found += backend.collect(metrics, names=names, include_remote=include_remote)
        for collector, _ in items:
            if collector in sources:
                continue
            try:
                collected = _families(collector.collect())
            except Exception:
                logger.exception("Collector %r failed; its metrics are left out.", collector)
                continue
            if names is not None:
                collected = [f for f in collected if not wanted.isdisjoint(_family_names([f]))]
            found += collected
        found.sort(key=_item_name)
        yield from found

    def get_sample_value(
        self, name: str, labels: Mapping[str, object] | None = None
    ) -> float | None:
        """Return the value of one sample, or None; meant for tests.

        >>> REGISTRY.get_sample_value("http_requests_total", {"code": "200"})
        """
        wanted = {k: str(v) for k, v in (labels or {}).items()}
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and dict(sample.labels) == wanted:
                    return sample.value
        return None


class RegistryProxy:
    """Stands for the registry that :func:`set_registry` (or its method
    ``REGISTRY.set_registry()``, pytheus 0.6.1's spelling) last installed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def set_registry(self, registry: CollectorRegistry) -> None:
        """Stand for ``registry`` from now on; do it before defining metrics, which take
        the registry's prefix and register in it when they are defined."""
        if not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"set_registry() takes a CollectorRegistry, got {type(registry).__name__}."
            )
        self._registry = registry

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the proxy stands for now."""
        return self._registry

    @property
    def prefix(self) -> str:
        return self._registry.prefix

    def register(self, collector: Collector) -> None:
        self._registry.register(collector)

    def unregister(self, collector: Collector) -> None:
        self._registry.unregister(collector)

    def collectors(self) -> list[Collector]:
        return self._registry.collectors()

    def collect(self, names: Collection[str] | None = None) -> Iterator[MetricFamily]:
        return self._registry.collect(names)

    def collect_series(self, names: Collection[str] | None = None) -> Iterator[MetricSeries]:
        return self._registry.collect_series(names)

    def get_sample_value(
        self, name: str, labels: Mapping[str, object] | None = None
    ) -> float | None:
        return self._registry.get_sample_value(name, labels)

    def __repr__(self) -> str:
        return f"<RegistryProxy for {self._registry!r}>"


#: The global registry (a proxy); metrics register here unless given ``registry=``.
#: :mod:`pytheus.collectors` adds the process, platform and GC collectors to the registry
#: it first stands for.
REGISTRY = RegistryProxy(CollectorRegistry())


#: pytheus 0.6.1's name for the proxy class.
CollectorRegistryProxy = RegistryProxy


def set_registry(registry: CollectorRegistry) -> None:
    """Point :data:`REGISTRY` at ``registry``; metrics defined afterwards register there."""
    REGISTRY.set_registry(registry)


def get_registry() -> CollectorRegistry:
    """The registry that :data:`REGISTRY` currently stands for."""
    return REGISTRY._registry


def real_registry(registry: Registry) -> Registry:
    """``registry`` itself, or the registry a :class:`RegistryProxy` stands for now."""
    return registry.registry if isinstance(registry, RegistryProxy) else registry
