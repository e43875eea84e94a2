"""pytheus 0.6.1's backend page (backend.md): loading backends, its names, the environment
variables, and "bring your own backend" with the per-value protocol."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from pytheus.backends import (
    BackendConfig,
    MemoryBackend,
    PerValueBackendAdapter,
    SingleProcessBackend,
    base,
    get_backend,
    load_backend,
)
from pytheus.exceptions import BackendUnavailableError, InvalidBackendConfigException
from pytheus.metrics import Counter, Gauge, Histogram, Info, Summary
from tests.compat.conftest import text_scrape
from tests.compat.per_value_backends import DictBackend, GeneratingBackend


@pytest.fixture(autouse=True)
def _empty_stores() -> None:
    # Metrics of earlier tests, alive in reference cycles, would be handed to the
    # backends loaded here.
    gc.collect()
    DictBackend.store.clear()
    DictBackend.initialized.clear()
    GeneratingBackend.store.clear()


def test_names_of_pytheus_0_6_1() -> None:
    assert SingleProcessBackend is MemoryBackend
    assert base.load_backend is load_backend
    assert base.SingleProcessBackend is MemoryBackend
    assert base.BackendConfig is BackendConfig
    load_backend()
    assert isinstance(get_backend(), SingleProcessBackend)
    load_backend(SingleProcessBackend)
    assert isinstance(get_backend(), MemoryBackend)


@pytest.mark.parametrize("backend_class", [DictBackend, GeneratingBackend])
def test_per_value_backend_holds_the_values(backend_class: type[DictBackend]) -> None:
    config = {"host": "127.0.0.1", "custom": 1}
    adapter = load_backend(backend_class, config)
    assert isinstance(adapter, PerValueBackendAdapter)
    assert DictBackend.initialized == [config]  # _initialize(config) once, at load_backend
    hits = Counter("page_hit_total", "Hits.", required_labels=["method"])
    hits.labels(method="GET").inc(2)
    gauge = Gauge("temperature", "T.")
    gauge.set(20)
    gauge.inc(2)
    gauge.dec()
    histogram = Histogram("latency_seconds", "L.", buckets=(0.5, 1))
    histogram.observe(0.3)
    histogram.observe(0.7)
    summary = Summary("size_bytes", "S.")
    summary.observe(10)
    store = backend_class.store
    # The values are in the backend's own storage, pytheus 0.6.1's way (cumulative
    # buckets, one value per bucket, sum and count).
    assert store["page_hit_total", repr({"method": "GET"})] == 2.0
    assert store["temperature", "None"] == 21.0
    assert store["latency_seconds:0.5", "None"] == 1.0
    assert store["latency_seconds:1", "None"] == 2.0
    assert store["latency_seconds:+Inf", "None"] == 2.0
    assert store["latency_seconds:sum", "None"] == pytest.approx(1.0)
    assert store["size_bytes:count", "None"] == 1.0
    parsed = text_scrape()
    assert parsed.value("page_hit_total", {"method": "GET"}) == 2.0
    assert parsed.value("temperature") == 21.0
    assert parsed.value("latency_seconds_bucket", {"le": "0.5"}) == 1.0
    assert parsed.value("latency_seconds_bucket", {"le": "1.0"}) == 2.0
    assert parsed.value("latency_seconds_count") == 2.0
    assert parsed.value("size_bytes_sum") == 10.0


def test_generate_samples_sees_series_this_process_never_made() -> None:
    """Values another process stored (here: put straight into the storage) are exposed, as
    the backend's _generate_samples returns them."""
    load_backend(GeneratingBackend)
    hits = Counter("page_hit_total", "Hits.", required_labels=["method"])
    hits.labels(method="GET").inc()
    GeneratingBackend.store["page_hit_total", repr({"method": "POST"})] = 5.0
    before = GeneratingBackend.generated
    parsed = text_scrape()
    assert GeneratingBackend.generated > before
    assert parsed.value("page_hit_total", {"method": "POST"}) == 5.0
    assert parsed.value("page_hit_total", {"method": "GET"}) == 1.0


def test_values_recorded_before_load_backend_are_carried_over() -> None:
    hits = Counter("page_hit_total", "Hits.")
    hits.inc(3)
    load_backend(DictBackend)
    hits.inc()
    assert DictBackend.store["page_hit_total", "None"] == 4.0
    load_backend(MemoryBackend)
    hits.inc()
    assert text_scrape().value("page_hit_total") == 5.0
    assert DictBackend.store["page_hit_total", "None"] == 4.0


def test_what_the_protocol_cannot_store_stays_in_the_process() -> None:
    load_backend(DictBackend)
    Info("build", "Build.").info({"version": "1.2"})
    assert text_scrape().value("build_info", {"version": "1.2"}) == 1.0
    with pytest.raises(Exception, match="quantiles"):
        Summary("s", "S.", quantiles=(0.5,))


def test_a_failing_backend_never_breaks_the_application(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(DictBackend):
        def inc(self, value: float) -> None:
            raise ConnectionError("storage down")

        def get(self) -> float:
            raise ConnectionError("storage down")

    load_backend(Broken)
    hits = Counter("page_hit_total", "Hits.")
    hits.inc()  # logged, not raised
    hits.inc()
    assert "storage down" in caplog.text
    assert caplog.text.count("failed to record") == 1
    with pytest.raises(BackendUnavailableError, match="storage down"):
        text_scrape()


def test_initialize_that_fails_is_a_config_error() -> None:
    class Unreachable(DictBackend):
        @classmethod
        def _initialize(cls, config: dict[str, object]) -> None:
            raise ConnectionRefusedError("127.0.0.1:1")

    with pytest.raises(InvalidBackendConfigException, match=r"127\.0\.0\.1:1"):
        load_backend(Unreachable, {"host": "127.0.0.1", "port": 1})
    assert isinstance(get_backend(), MemoryBackend), "the old backend stays"


def test_per_value_backend_from_environment_variables(tmp_path: object) -> None:
    config = os.path.join(str(tmp_path), "config.json")
    with open(config, "w") as f:
        f.write('{"answer": 42}')
    program = (
        "from pytheus.metrics import Counter\n"
        "from pytheus.backends import get_backend\n"
        "from tests.compat.per_value_backends import DictBackend\n"
        "Counter('jobs_total', 'Jobs.').inc(2)\n"
        "print(type(get_backend()).__name__, DictBackend.initialized,"
        " dict(DictBackend.store))\n"
    )
    env = {
        **os.environ,
        "PYTHEUS_BACKEND_CLASS": "tests.compat.per_value_backends.DictBackend",
        "PYTHEUS_BACKEND_CONFIG": config,
    }
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "PerValueBackendAdapter [{'answer': 42}] {('jobs_total', 'None'): 2.0}"
    )
