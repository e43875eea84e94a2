"""Backends written to pytheus 0.6.1's per-value protocol (its backend.md), importable by
dotted path for the environment-variable tests."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, ClassVar


class DictBackend:
    """One value per instance, shared through a class-level dict keyed the way pytheus
    0.6.1's own Redis backend keyed them: metric name (and bucket), then the labels."""

    store: ClassVar[dict[tuple[str, str], float]] = defaultdict(float)
    initialized: ClassVar[list[dict[str, Any]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: dict[str, Any], metric: Any, histogram_bucket: str | None = None):
        self.config = config
        name = metric._collector.name
        self.key = (
            f"{name}:{histogram_bucket}" if histogram_bucket else name,
            repr(metric._labels),
        )

    @classmethod
    def _initialize(cls, config: dict[str, Any]) -> None:
        cls.initialized.append(dict(config))

    def inc(self, value: float) -> None:
        with self.lock:
            self.store[self.key] += value

    def dec(self, value: float) -> None:
        with self.lock:
            self.store[self.key] -= value

    def set(self, value: float) -> None:
        with self.lock:
            self.store[self.key] = value

    def get(self) -> float:
        with self.lock:
            return self.store[self.key]


class Sample:
    """pytheus 0.6.1's Sample: suffix, labels, value."""

    def __init__(self, suffix: str, labels: dict[str, str] | None, value: float) -> None:
        self.suffix, self.labels, self.value = suffix, labels, value


class GeneratingBackend(DictBackend):
    """Reads everything back in one ``_generate_samples(registry)`` call, as pytheus 0.6.1's
    Redis backend and pytheus-backend-rs do, from the store alone (not from get())."""

    store: ClassVar[dict[tuple[str, str], float]] = defaultdict(float)
    generated: ClassVar[int] = 0

    def get(self) -> float:
        return 0.0  # as pytheus-backend-rs: reads go through _generate_samples

    @classmethod
    def _generate_samples(cls, registry: Any) -> dict[Any, list[Sample]]:
        cls.generated += 1
        result: dict[Any, list[Sample]] = {}
        for collector in registry.collect():
            samples: list[Sample] = result.setdefault(collector, [])
            name = collector.name
            for (key, labels_repr), value in list(cls.store.items()):
                labels = eval(labels_repr) or {}  # the repr of a dict of str, written above
                if key == name:
                    samples.append(Sample("", labels or None, value))
                elif key.startswith(f"{name}:"):
                    part = key[len(name) + 1 :]
                    if part in ("sum", "count"):
                        samples.append(Sample(f"_{part}", labels or None, value))
                    else:
                        samples.append(Sample("_bucket", {**labels, "le": part}, value))
        return result
