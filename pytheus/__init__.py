"""pytheus: Prometheus metrics for Python that work the same in one process or many.

::

    from pytheus.metrics import Counter
    from pytheus.exposition import generate_metrics

    page_hit_total = Counter("page_hit_total", "Pages served.")
    page_hit_total.inc()
    print(generate_metrics())

Switch to Redis for many processes with :func:`pytheus.backends.load_backend`.
"""

# Imported for its effect too: the default collectors register themselves on REGISTRY.
from pytheus import collectors  # noqa: F401
from pytheus.backends import load_backend
from pytheus.exceptions import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    DuplicateMetricError,
    InvalidValueError,
    LabelError,
    MetricDefinitionError,
    PytheusError,
)
from pytheus.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    generate_metrics,
    generate_openmetrics,
    make_wsgi_app,
    start_http_server,
)
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import REGISTRY, CollectorRegistry, set_registry

__version__ = "0.7.0"

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "PROMETHEUS_CONTENT_TYPE",
    "REGISTRY",
    "BackendError",
    "BackendUnavailableError",
    "CollectorRegistry",
    "ConfigurationError",
    "Counter",
    "DuplicateMetricError",
    "Enum",
    "Gauge",
    "Histogram",
    "Info",
    "InvalidValueError",
    "LabelError",
    "MetricDefinitionError",
    "PytheusError",
    "Summary",
    "generate_metrics",
    "generate_openmetrics",
    "load_backend",
    "make_wsgi_app",
    "set_registry",
    "start_http_server",
]
