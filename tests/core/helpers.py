"""Helpers for the core tests: a scrape in both formats, validated by three judges.

Every exposition a test produces goes through ``promtool check metrics`` (the Prometheus
project's own parser and linter) for the text format, and prometheus_client's text parser
and strict OpenMetrics parser (:mod:`tests.helpers`, where parsing and waiting live).
"""

from __future__ import annotations

from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.registry import REGISTRY, Registry
from tests.helpers import (
    Parsed,
    SampleKey,
    key,
    parse_openmetrics,
    parse_text,
    same_value,
    wait_for,
)
from tests.servers import promtool_check_metrics

__all__ = [
    "Parsed",
    "SampleKey",
    "key",
    "parse_openmetrics",
    "parse_text",
    "same_value",
    "scrape",
    "wait_for",
]


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
