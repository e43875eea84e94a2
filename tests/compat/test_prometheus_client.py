"""pytheus 0.6.1's experimental ``patch_client(prometheus_client)``: code written for
prometheus_client records into pytheus and is exposed by it, on both backends."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from pytheus.experimental.adapters import CounterAdapter, HistogramAdapter
from pytheus.experimental.compatibility import patch_client
from pytheus.registry import REGISTRY
from tests.compat.conftest import text_scrape


@pytest.fixture
def client() -> Iterator[ModuleType]:
    """prometheus_client, patched; reloaded afterwards so that other tests get it unpatched."""
    import prometheus_client

    patch_client(prometheus_client)
    try:
        yield prometheus_client
    finally:
        importlib.reload(prometheus_client)


def test_metrics_written_for_prometheus_client(client: ModuleType, backend_name: str) -> None:
    requests = client.Counter("requests", "Requests served.", ["method", "code"])
    assert isinstance(requests, CounterAdapter)
    requests.labels("GET", "200").inc()
    requests.labels(method="GET", code=200).inc(2)
    requests.labels("POST", "500").inc()
    assert requests.labels("GET", "200") is requests.labels(method="GET", code="200")
    in_progress = client.Gauge("in_progress", "Requests in progress.")
    with in_progress.track_inprogress():
        in_progress.inc(2)
    latency = client.Histogram("latency_seconds", "Latency.", ["view"])
    assert isinstance(latency, HistogramAdapter)

    @latency.labels("home").time()
    def home() -> str:
        return "ok"

    assert home() == "ok"
    with latency.labels(view="about").time():
        pass
    sizes = client.Summary("size_bytes", "Sizes.", namespace="app", subsystem="upload")
    sizes.observe(512)
    parsed = text_scrape()
    assert parsed.value("requests_total", {"method": "GET", "code": "200"}) == 3.0
    assert parsed.value("requests_total", {"method": "POST", "code": "500"}) == 1.0
    assert parsed.value("in_progress") == 2.0
    assert parsed.value("latency_seconds_count", {"view": "home"}) == 1.0
    assert parsed.value("latency_seconds_count", {"view": "about"}) == 1.0
    # prometheus_client's own default buckets, which such code expects.
    assert parsed.value("latency_seconds_bucket", {"view": "home", "le": "0.075"}) == 1.0
    assert parsed.value("app_upload_size_bytes_sum") == 512.0


def test_positional_label_values_follow_labelnames_order(client: ModuleType) -> None:
    # pytheus 0.6.1 sorted the label names and paired these values with the wrong ones.
    c = client.Counter("moves", "Moves.", ["to", "from"])
    c.labels("b", "a").inc()
    assert text_scrape().value("moves_total", {"to": "b", "from": "a"}) == 1.0


def test_count_exceptions_and_label_mistakes(client: ModuleType) -> None:
    errors = client.Counter("errors", "Errors.")

    @errors.count_exceptions(KeyError)
    def lookup() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        lookup()
    with pytest.raises(ValueError, match="label values"):
        client.Counter("c", "C.", ["a", "b"]).labels("only one")
    with pytest.raises(ValueError, match="no label names"):
        errors.labels("x")
    assert text_scrape().value("errors_total") == 1.0


def test_generate_latest_registry_and_info_enum(client: ModuleType) -> None:
    assert client.REGISTRY is REGISTRY
    client.Info("build", "Build.").info({"version": "1.2"})
    client.Enum("phase", "Phase.", states=["idle", "busy"]).state("busy")
    body = client.generate_latest()
    assert isinstance(body, bytes)
    text = body.decode()
    assert 'build_info{version="1.2"} 1.0' in text
    assert 'phase{phase="busy"} 1.0' in text
    own = client.CollectorRegistry()
    client.Counter("private", "P.", registry=own).inc()
    assert b"private_total 1.0" in client.generate_latest(own)
    assert b"private_total" not in client.generate_latest()
