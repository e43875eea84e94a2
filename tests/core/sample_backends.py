"""Small real backends for the tests, importable by dotted path
(``tests.core.sample_backends.RecordingBackend``)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from pytheus.exceptions import BackendUnavailableError, MetricDefinitionError
from pytheus.metrics import Metric
from pytheus.samples import MetricFamily


class RecordingBackend:
    """Reads local values, like the in-memory backend, and remembers what it was asked."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config) if config is not None else None
        self.registered: list[Metric[Any]] = []
        self.collected: list[str] = []
        self.closed = 0
        self._lock = threading.Lock()

    def register_metric(self, metric: Metric[Any]) -> None:
        with self._lock:
            self.registered.append(metric)

    def collect(
        self,
        metrics: Sequence[Metric[Any]],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        for metric in metrics:
            with self._lock:
                self.collected.append(metric.name)
            yield metric.local_family()

    def close(self) -> None:
        self.closed += 1


class NoQuantilesBackend(RecordingBackend):
    """Cannot aggregate summary quantiles (as a multi-process backend), so refuses them."""

    def register_metric(self, metric: Metric[Any]) -> None:
        d = metric.definition
        if d.type == "summary" and d.quantiles:
            raise MetricDefinitionError(
                f"Summary {d.name!r} has quantiles, which NoQuantilesBackend cannot "
                "aggregate; remove quantiles= or use a Histogram."
            )
        super().register_metric(metric)


class UnavailableBackend(RecordingBackend):
    """Its storage is down: every scrape fails."""

    def collect(
        self,
        metrics: Sequence[Metric[Any]],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        raise BackendUnavailableError("storage at 127.0.0.1:1 is unreachable")
