"""Helpers the whole suite shares: parsing exposition text, waiting on a condition, a fresh
registry.

Exposition text is parsed by independent judges, prometheus_client's text parser and its
strict OpenMetrics parser (promtool is in :mod:`tests.servers`); samples come back as
plain dicts so that tests compare exact values. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text_families

from pytheus.backends import ENV_CLASS, ENV_CONFIG
from pytheus.registry import CollectorRegistry, get_registry, set_registry

__all__ = [
    "Parsed",
    "SampleKey",
    "installed_registry",
    "key",
    "parse_openmetrics",
    "parse_text",
    "same_value",
    "wait_for",
]

SampleKey = tuple[str, frozenset[tuple[str, str]]]


def key(name: str, labels: Mapping[str, str] | None = None) -> SampleKey:
    """The key of one sample in :attr:`Parsed.samples`."""
    return name, frozenset((labels or {}).items())


@dataclass
class Parsed:
    """One exposition, parsed: families by name and every sample's value by name and labels."""

    text: str
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    samples: dict[SampleKey, float] = field(default_factory=dict)
    exemplars: dict[SampleKey, Any] = field(default_factory=dict)
    timestamps: dict[SampleKey, Any] = field(default_factory=dict)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self.samples[key(name, labels)]

    def get(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        return self.samples.get(key(name, labels))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample called ``name``, by its labels."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def _collect(text: str, families: Iterable[Any]) -> Parsed:
    parsed = Parsed(text)
    for family in families:  # consumes the generator: parse errors surface here
        assert family.name not in parsed.types, f"family {family.name!r} appears twice:\n{text}"
        parsed.types[family.name] = family.type
        parsed.helps[family.name] = family.documentation
        parsed.units[family.name] = family.unit
        for sample in family.samples:
            k = key(sample.name, sample.labels)
            assert k not in parsed.samples, f"sample {k!r} appears twice:\n{text}"
            parsed.samples[k] = sample.value
            if sample.exemplar is not None:
                parsed.exemplars[k] = sample.exemplar
            if sample.timestamp is not None:
                parsed.timestamps[k] = sample.timestamp
    return parsed


def parse_text(text: str) -> Parsed:
    """Parse the text format 0.0.4 with prometheus_client."""
    return _collect(text, parse_text_families(text))


def parse_openmetrics(text: str) -> Parsed:
    """Parse OpenMetrics 1.0 with prometheus_client's strict parser."""
    assert text.endswith("# EOF\n"), f"OpenMetrics must end with '# EOF':\n{text}"
    return _collect(text, parse_openmetrics_families(text))


def same_value(a: float, b: float) -> bool:
    """Equal, counting NaN as equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail after
    ``timeout`` seconds (an exception raised by the condition counts as not yet)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except Exception as exc:  # e.g. a scrape during an outage
            result, last_error = None, exc
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            raise AssertionError(
                f"{what or condition!r} did not hold within {timeout} s{detail}"
            ) from last_error
        time.sleep(interval)


@contextlib.contextmanager
def installed_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorRegistry]:
    """An empty registry as ``REGISTRY`` (the previous one put back afterwards), with no
    backend chosen by the environment."""
    monkeypatch.delenv(ENV_CLASS, raising=False)
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    previous = get_registry()
    fresh = CollectorRegistry()
    set_registry(fresh)
    try:
        yield fresh
    finally:
        set_registry(previous)
