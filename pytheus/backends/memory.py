"""The default backend: each process exposes the values it recorded itself."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from pytheus.definitions import MetricSeries, SeriesSource
from pytheus.exceptions import ConfigurationError
from pytheus.samples import MetricFamily

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Values live in this process only; a scrape reads them directly.

    Right for a single process (``runserver``, a one-worker server, a script). With
    several worker processes each one would expose only its own counts: use
    :class:`~pytheus.backends.redis.MultiProcessRedisBackend` there.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        if config:
            raise ConfigurationError(
                f"MemoryBackend takes no configuration, got {dict(config)!r}; "
                "remove backend_config or choose another backend_class."
            )

    def register_metric(self, metric: SeriesSource) -> None:
        """Nothing to do: values stay in the metric objects."""

    def collect(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        """Each metric's local values as a family (there are no other processes to read)."""
        for metric in metrics:
            yield metric.local_family()

    def collect_series(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricSeries]:
        """Each metric's local values (there are no other processes to read)."""
        for metric in metrics:
            yield metric.local_series()

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "MemoryBackend()"
