"""The public surface: __all__ is sorted and honest, and the core never imports Django."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import pytheus
import pytheus.backends
import pytheus.backends.per_value
import pytheus.backends.redis_options
import pytheus.collectors
import pytheus.exceptions
import pytheus.experimental.adapters
import pytheus.experimental.compatibility
import pytheus.exposition
import pytheus.metrics
import pytheus.middleware
import pytheus.naming
import pytheus.registry
import pytheus.samples


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    if name.isupper() or (name.upper() == name and "_" in name):
        return 0, name
    return (1 if name[:1].isupper() else 2), name


MODULES = [
    pytheus,
    pytheus.backends,
    pytheus.backends.per_value,
    pytheus.backends.redis_options,
    pytheus.collectors,
    pytheus.exceptions,
    pytheus.experimental.adapters,
    pytheus.experimental.compatibility,
    pytheus.exposition,
    pytheus.metrics,
    pytheus.middleware,
    pytheus.naming,
    pytheus.registry,
    pytheus.samples,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_every_name_exists(module: ModuleType) -> None:
    names = module.__all__
    assert names == sorted(names, key=_isort_key)
    assert len(set(names)) == len(names)
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == []


def test_top_level_exports() -> None:
    expected = {
        "Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "REGISTRY",
        "CollectorRegistry", "set_registry", "generate_metrics", "generate_openmetrics",
        "PROMETHEUS_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "load_backend",
        "make_wsgi_app", "start_http_server", "PytheusError", "MetricDefinitionError",
        "DuplicateMetricError", "LabelError", "InvalidValueError", "ConfigurationError",
        "BackendError", "BackendUnavailableError",
    }  # fmt: skip
    assert expected <= set(pytheus.__all__)
    assert pytheus.Counter is pytheus.metrics.Counter
    assert pytheus.REGISTRY is pytheus.registry.REGISTRY
    assert isinstance(pytheus.__version__, str)


def test_exception_tree() -> None:
    e = pytheus.exceptions
    assert issubclass(e.DuplicateMetricError, e.MetricDefinitionError)
    for cls in (e.MetricDefinitionError, e.LabelError, e.InvalidValueError, e.ConfigurationError):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, e.PytheusError)
    assert issubclass(e.BackendUnavailableError, e.BackendError)
    assert issubclass(e.BackendError, e.PytheusError)
    assert not issubclass(e.BackendError, ValueError)
    # pytheus 0.6.1's names, placed so that its except clauses catch what they caught.
    assert e.PytheusException is e.PytheusError
    assert issubclass(e.UnobservableMetricException, e.LabelError)
    assert issubclass(e.LabelError, e.LabelValidationException)
    assert issubclass(e.LabelDefinitionError, e.LabelValidationException)
    assert issubclass(e.LabelDefinitionError, e.MetricDefinitionError)
    assert issubclass(e.BucketException, e.MetricDefinitionError)
    assert issubclass(e.InvalidBackendClassException, e.ConfigurationError)
    assert issubclass(e.InvalidBackendConfigException, e.ConfigurationError)


def test_core_never_imports_django() -> None:
    code = (
        "import pytheus, pytheus.exposition, pytheus.backends, sys; "
        "assert not any(m.startswith('django') for m in sys.modules)"
    )
    also_collectors = (
        "import pytheus.collectors, pytheus.metrics, pytheus.registry, sys; "
        "bad = sorted(m for m in sys.modules if m.startswith('django')); assert not bad, bad"
    )
    for program in (code, also_collectors):
        result = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
