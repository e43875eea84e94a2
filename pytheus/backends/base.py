"""The Backend protocol: where metric values are read from at scrape time.

Recording never goes through the backend: every process keeps the values it records
in its own metric objects (see :mod:`pytheus.metrics`), so ``inc()`` and ``observe()``
never wait on I/O. A backend decides what a scrape sees:

* :class:`~pytheus.backends.memory.MemoryBackend` (the default) reads those local
  values directly;
* :class:`~pytheus.backends.redis.MultiProcessRedisBackend` ships them to Redis in the
  background and reads what every process wrote.

A backend sees a metric only as a :class:`~pytheus.definitions.SeriesSource` (its
definition and series) and never imports the metric classes. It reads values as
:class:`~pytheus.definitions.MetricSeries` (:class:`SeriesBackend`), which registries
prefer; a backend with only ``collect()`` yields families instead. A backend class is
instantiated with one argument, its config mapping (or ``None``), by
:func:`pytheus.backends.load_backend`.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from pytheus.definitions import MetricSeries, SeriesSource
from pytheus.samples import MetricFamily

__all__ = ["Backend", "SeriesBackend"]

# pytheus 0.6.1 defined these here; code that imports them from here keeps working.
_FROM_PACKAGE = frozenset({"BackendConfig", "SingleProcessBackend", "load_backend"})
# and imported these into it.
_FROM_EXCEPTIONS = frozenset({"InvalidBackendClassException", "InvalidBackendConfigException"})


def __getattr__(name: str) -> Any:
    if name in _FROM_PACKAGE:
        # The package has finished importing by now: importing this module imports it.
        return getattr(sys.modules["pytheus.backends"], name)
    if name in _FROM_EXCEPTIONS:
        return getattr(sys.modules["pytheus.exceptions"], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@runtime_checkable
class Backend(Protocol):
    """What pytheus asks of a backend. All methods must be thread-safe."""

    def register_metric(self, metric: SeriesSource) -> None:
        """Take note of a metric; called once when it is defined.

        Also called for every existing metric when this backend is loaded, so metrics
        defined before :func:`~pytheus.backends.load_backend` follow the new backend.
        Raise :class:`~pytheus.exceptions.MetricDefinitionError` to refuse a metric the
        backend cannot store (for example summary quantiles across processes). Must
        not do network I/O: definitions happen at import time.
        """

    def collect(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterable[MetricFamily]:
        """Yield the families of ``metrics`` for one scrape (``metric.local_family()``).

        With ``include_remote`` (set when the global registry is collected), also yield
        the families of metrics that only other processes defined, keeping those that
        produce one of ``names`` when it is given. Raise
        :class:`~pytheus.exceptions.BackendUnavailableError` when the values cannot be
        read; never return made-up values instead.
        """
        ...

    def close(self) -> None:
        """Release resources (flush pending data); called when another backend is loaded
        and at interpreter exit. Must be idempotent."""


@runtime_checkable
class SeriesBackend(Backend, Protocol):
    """A backend that also reads series rather than samples; registries prefer it.

    Both backends of pytheus are. A backend with only ``collect()`` works too: its
    families are read back into series for those who ask for series.
    """

    def collect_series(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterable[MetricSeries]:
        """As :meth:`Backend.collect`, one :class:`~pytheus.definitions.MetricSeries` per
        metric: the definition with each series' labels and value, shaped as
        ``metric.local_series()`` shapes them (:data:`pytheus.definitions.SERIES_VALUES`).
        """
        ...
