"""What a Redis-backed scrape exposes: valid for promtool and both parsers, the same values
in both formats, awkward label values intact, and the backend's own health metrics."""

from __future__ import annotations

import time

from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import run_script, scrape, scrape_openmetrics
from tests.servers import promtool_check_metrics

AWKWARD = {"path": 'a"b\\c\nd', "user": "é€ 🙂", "empty": ""}

SELF_METRICS = {
    "pytheus_backend_errors": "counter",
    "pytheus_backend_flush_seconds": "counter",
    "pytheus_backend_last_flush_timestamp_seconds": "gauge",
    "pytheus_backend_pending_series": "gauge",
}


def test_a_redis_backed_scrape_is_valid_and_the_same_in_both_formats(
    load_redis_backend: LoadBackend, prefix: str
) -> None:
    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    run_script("record", config, 40, 1)  # every type, from another process
    Counter("requests", "Requests\nwith a \\ in help.", list(AWKWARD)).labels(AWKWARD).inc(2)
    temperature = Gauge("temperature", "T.", ["room"], unit="celsius", multiprocess_mode="all")
    temperature.labels(room="x").set(-3.5)
    payload = Histogram("payload", "P.", ["kind"], unit="bytes", buckets=[10, 1e6])
    payload.labels(kind="a").observe(5e5)
    Summary("wait", "W.", unit="seconds").observe(0.5)
    Info("runtime", "R.").info({"python": "3", "quote": '"'})
    Enum("mode", "M.", ["shard"], states=["a", "b"]).labels(shard="1").state("b")

    text = scrape()
    promtool_check_metrics(text.text)
    om = scrape_openmetrics()
    assert om.text.endswith("# EOF\n")
    assert text.value("requests_total", AWKWARD) == om.value("requests_total", AWKWARD) == 2
    assert text.helps["requests"] == "Requests\nwith a \\ in help."
    # Both formats carry the same samples (OpenMetrics names info and state sets its way).
    common = {k for k in text.samples if not k[0].startswith(("pytheus_backend_", "runtime"))}
    assert common - om.samples.keys() == set()
    for k in common:
        assert text.samples[k] == om.samples[k], k
    assert om.types["runtime"] == "info"
    assert om.value("runtime_info", {"python": "3", "quote": '"'}) == 1
    assert om.types["mode"] == "stateset"
    assert om.value("mode", {"shard": "1", "mode": "b"}) == 1
    assert om.value("payload_bytes_bucket", {"kind": "a", "le": "1000000.0"}) == 1
    assert len(om.series("temperature_celsius")) == 1
    assert list(om.series("temperature_celsius").values()) == [-3.5]
    assert om.value("jobs_total", {"kind": "a", "queue": "q"}) == 40


def test_self_metrics(backend: MultiProcessRedisBackend) -> None:
    Counter("hits", "Hits.").inc()
    before = time.time()
    assert backend.flush()
    parsed = scrape()
    for name, kind in SELF_METRICS.items():
        assert parsed.types[name] == kind, name
    assert parsed.value("pytheus_backend_errors_total") == 0
    assert parsed.value("pytheus_backend_flush_seconds_total") > 0
    assert before - 1 <= parsed.value("pytheus_backend_last_flush_timestamp_seconds") <= time.time()
    assert parsed.value("pytheus_backend_pending_series") >= 0
    status = backend.status()
    assert status["healthy"] is True
    assert status["process"].split(":")[1].isdigit()
    assert status["last_flush"] >= before
