"""Make code written for ``prometheus_client`` record into pytheus, unchanged.

::

    import prometheus_client
    from pytheus.experimental.compatibility import patch_client

    patch_client(prometheus_client)  # before the metrics are defined

    requests = prometheus_client.Counter("requests", "Requests served.", ["method"])
    requests.labels("GET").inc()
    body = prometheus_client.generate_latest()  # pytheus's exposition, as bytes

The patched names are listed in :data:`PATCHES`. Configure pytheus (its backend, for
example) as usual: the metrics are pytheus metrics.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pytheus.experimental.adapters import (
    CounterAdapter,
    EnumAdapter,
    GaugeAdapter,
    HistogramAdapter,
    InfoAdapter,
    SummaryAdapter,
)
from pytheus.exposition import generate_metrics, make_wsgi_app, start_http_server
from pytheus.registry import REGISTRY, CollectorRegistry, Registry

__all__ = ["PATCHES", "generate_latest", "patch_client"]


def generate_latest(registry: Registry = REGISTRY) -> bytes:
    """The registry in the Prometheus text format, as bytes like prometheus_client's."""
    return generate_metrics(registry).encode()


#: What :func:`patch_client` sets on the module, by name.
PATCHES: dict[str, Any] = {
    "REGISTRY": REGISTRY,
    "CollectorRegistry": CollectorRegistry,
    "Counter": CounterAdapter,
    "Gauge": GaugeAdapter,
    "Histogram": HistogramAdapter,
    "Summary": SummaryAdapter,
    "Info": InfoAdapter,
    "Enum": EnumAdapter,
    "generate_latest": generate_latest,
    "make_wsgi_app": make_wsgi_app,
    "start_http_server": start_http_server,
}


def patch_client(client: ModuleType) -> None:
    """Replace ``client``'s metric classes, registry and exposition with pytheus's.

    Call it before the metrics are defined: a metric created earlier is prometheus_client's
    own and is not exposed by pytheus.
    """
    for name, substitute in PATCHES.items():
        setattr(client, name, substitute)
