"""Registries: the set of collectors that one scrape reads.

Metrics register themselves in the global :data:`REGISTRY` when they are created (or in
the ``registry=`` they are given). ``REGISTRY`` is a proxy: :func:`set_registry` points it
at another :class:`CollectorRegistry`, for example a fresh one per test.

A *collector* is any object with a ``collect()`` method that yields
:class:`~pytheus.samples.MetricFamily` objects; register custom ones with
``REGISTRY.register(collector)``. A collector may also have ``describe()``, returning the
names it will produce, so that the registry can check for clashes without collecting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from pytheus.exceptions import DuplicateMetricError, MetricDefinitionError
from pytheus.naming import validate_metric_name
from pytheus.samples import MetricFamily, series_names

__all__ = [
    "REGISTRY",
    "Collector",
    "CollectorRegistry",
    "CollectorRegistryProxy",
    "Registry",
    "RegistryProxy",
    "get_registry",
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


class Registry(Protocol):
    """What metrics need of a registry: :class:`CollectorRegistry` or the proxy."""

    @property
    def prefix(self) -> str: ...

    def register(self, collector: Collector) -> None: ...

    def unregister(self, collector: Collector) -> None: ...

    def collect(self, names: Collection[str] | None = None) -> Iterator[MetricFamily]: ...


def _families(items: Iterable[object]) -> list[MetricFamily]:
    """What a custom collector yielded, as families: metric objects (pytheus 0.6.1's custom
    collectors yield metrics made with ``registry=None``) give their local values."""
    from pytheus.metrics import Metric

    return [i.local_family() if isinstance(i, Metric) else i for i in items]  # type: ignore[misc]


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
            names |= {
                n[: -len(s)] for n in names for s in ("_total", "_info") if n.endswith(s) and n != s
            }
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
            for n in names:
                self._owners.pop(n, None)

    def collectors(self) -> list[Collector]:
        """The registered collectors, in registration order."""
        with self._lock:
            return list(self._collectors)

    def collect(self, names: Collection[str] | None = None) -> Iterator[MetricFamily]:
        """Yield every family, or only those producing one of ``names`` (``name[]``).

        Metrics are read through the active backend in one call, so a multi-process
        backend can fetch them all in one round trip. A custom collector that raises is
        logged and left out rather than failing the whole scrape.
        """
        from pytheus.backends import get_backend
        from pytheus.metrics import Metric

        with self._lock:
            items = list(self._collectors.items())
        if names is not None:
            wanted = set(names)
            items = [(c, n) for c, n in items if not wanted.isdisjoint(n)]
        metrics = [c for c, _ in items if isinstance(c, Metric)]
        # Only the global registry shows metrics that other processes defined.
        include_remote = self is get_registry()
        if metrics or include_remote:
            yield from get_backend().collect(metrics, names=names, include_remote=include_remote)
        for collector, _ in items:
            if isinstance(collector, Metric):
                continue
            try:
                families = _families(collector.collect())
            except Exception:
                logger.exception("Collector %r failed; its metrics are left out.", collector)
                continue
            if names is not None:
                families = [f for f in families if not wanted.isdisjoint(_family_names([f]))]
            yield from families

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

    def get_sample_value(
        self, name: str, labels: Mapping[str, object] | None = None
    ) -> float | None:
        return self._registry.get_sample_value(name, labels)

    def __repr__(self) -> str:
        return f"<RegistryProxy for {self._registry!r}>"


def _default_registry() -> CollectorRegistry:
    from pytheus.collectors import register_default_collectors

    registry = CollectorRegistry()
    register_default_collectors(registry)
    return registry


#: The global registry (a proxy); metrics register here unless given ``registry=``.
REGISTRY = RegistryProxy(_default_registry())


#: pytheus 0.6.1's name for the proxy class.
CollectorRegistryProxy = RegistryProxy


def set_registry(registry: CollectorRegistry) -> None:
    """Point :data:`REGISTRY` at ``registry``; metrics defined afterwards register there."""
    REGISTRY.set_registry(registry)


def get_registry() -> CollectorRegistry:
    """The registry that :data:`REGISTRY` currently stands for."""
    return REGISTRY._registry
