"""Core fixtures: every test gets its own registry and in-memory backend.

Metrics register themselves in the global ``REGISTRY`` proxy, and the active backend is
process-wide; both are replaced for the duration of each test, so no test sees another's
metrics or backend.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytheus.backends import MemoryBackend, get_backend
from pytheus.registry import REGISTRY, CollectorRegistry, Registry
from tests.core.helpers import Parsed, scrape


@pytest.fixture(autouse=True)
def registry(fresh_registry: CollectorRegistry) -> CollectorRegistry:
    """A fresh, empty registry installed as ``REGISTRY`` and a fresh in-memory backend."""
    assert isinstance(get_backend(), MemoryBackend)
    return fresh_registry


@pytest.fixture
def exposition() -> Callable[..., tuple[Parsed, Parsed]]:
    """Render a registry in both formats, check with promtool and both parsers, parse.

    ``exposition()`` scrapes the test's registry; ``exposition(other)`` another one.
    Returns ``(text, openmetrics)`` as :class:`~tests.core.helpers.Parsed`.
    """

    def check(registry: Registry = REGISTRY, *, lint: bool = True) -> tuple[Parsed, Parsed]:
        return scrape(registry, lint=lint)

    return check
