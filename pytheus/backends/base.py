"""The Backend protocol: where metric values are read from at scrape time.

Recording never goes through the backend: every process keeps the values it records
in its own metric objects (see :mod:`pytheus.metrics`), so ``inc()`` and ``observe()``
never wait on I/O. A backend decides what a scrape sees:

* :class:`~pytheus.backends.memory.MemoryBackend` (the default) reads those local
  values directly;
* :class:`~pytheus.backends.redis.MultiProcessRedisBackend` ships them to Redis in the
  background and reads what every process wrote.

A backend class is instantiated with one argument, its config mapping (or ``None``),
by :func:`pytheus.backends.load_backend`.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytheus.metrics import Metric
    from pytheus.samples import MetricFamily

__all__ = ["Backend"]

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

    def register_metric(self, metric: Metric[Any]) -> None:
        """Take note of a metric; called once when it is defined.

        Also called for every existing metric when this backend is loaded, so metrics
        defined before :func:`~pytheus.backends.load_backend` follow the new backend.
        Raise :class:`~pytheus.exceptions.MetricDefinitionError` to refuse a metric the
        backend cannot store (for example summary quantiles across processes). Must
        not do network I/O: definitions happen at import time.
        """

    def collect(
        self,
        metrics: Sequence[Metric[Any]],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterable[MetricFamily]:
        """Yield the families of ``metrics`` for one scrape.

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
