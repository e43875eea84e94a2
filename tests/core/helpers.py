"""Helpers for the core tests: validating and parsing exposition text, waiting on conditions.

Every exposition a test produces goes through three independent judges: ``promtool check
metrics`` (the Prometheus project's own parser and linter) for the text format, and
prometheus_client's text parser and strict OpenMetrics parser. Parsed samples come back as
plain dicts so that tests can compare exact values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text_families

from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.registry import REGISTRY, Registry
from tests.servers import promtool_check_metrics

__all__ = [
    "Parsed",
    "SampleKey",
    "parse_openmetrics",
    "parse_text",
    "same_value",
    "scrape",
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

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def _collect(text: str, families: Iterable[Any]) -> Parsed:
    parsed = Parsed(text)
    for family in families:  # consumes the generator: parse errors surface here
        assert family.name not in parsed.types, f"family {family.name!r} appears twice"
        parsed.types[family.name] = family.type
        parsed.helps[family.name] = family.documentation
        parsed.units[family.name] = family.unit
        for sample in family.samples:
            k = key(sample.name, sample.labels)
            assert k not in parsed.samples, f"sample {k!r} appears twice"
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


def scrape(
    registry: Registry = REGISTRY, *, promtool: bool = True, lint: bool = True
) -> tuple[Parsed, Parsed]:
    """Render ``registry`` (the current global one by default) in both formats, validate
    both, and return ``(text, openmetrics)`` parsed.

    ``promtool=False`` skips promtool, for callers that check many expositions and run it
    once on a batch.
    """
    text = generate_metrics(registry)
    om = generate_openmetrics(registry)
    if promtool:
        promtool_check_metrics(text, lint=lint)
    return parse_text(text), parse_openmetrics(om)


def same_value(a: float, b: float) -> bool:
    """Equal, counting NaN as equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition {condition!r} did not hold within {timeout} s")
        time.sleep(interval)
