"""What a Redis-backed scrape exposes: valid for promtool and both parsers, the same values
in both formats, awkward label values intact, and the backend's own health metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from pytheus.backends import MemoryBackend, load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import choose_format, generate_metrics, generate_openmetrics
from pytheus.families import build_family
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import get_registry
from pytheus.samples import MetricFamily
from tests.redis_backend.conftest import LoadBackend
from tests.redis_backend.helpers import (
    read_line,
    run_script,
    scrape,
    scrape_openmetrics,
    start_script,
)
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
    # The statistics go with the first flush, then with every tenth.
    for _ in range(10):
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


class TwoFamilies:
    """A custom collector, whose families are sorted in with the metrics'."""

    def collect(self) -> Iterator[MetricFamily]:
        yield MetricFamily("m15_custom", "gauge", "Custom.").add(1)
        yield MetricFamily("a_custom", "gauge", "Custom.").add(2)


def test_families_are_sorted_by_name_on_every_backend(
    load_redis_backend: LoadBackend, prefix: str
) -> None:
    """In memory and in Redis (whose small hashes keep the order of insertion, large ones
    the order of their hash table) the families come sorted by name, whatever the order
    they were defined in: two scrapes read and diff side by side."""
    load_backend(MemoryBackend)
    for i in reversed(range(20)):  # defined, registered and written in reverse order
        Counter(f"m{i:02d}", "Counted.").inc(i)
    Histogram("h", "H.", buckets=[1]).observe(0.5)
    get_registry().register(TwoFamilies())
    in_memory = list(scrape().types)
    expected = sorted(["h", "a_custom", "m15_custom", *(f"m{i:02d}" for i in range(20))])
    assert in_memory == expected

    backend = load_redis_backend()
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    run_script("define", config, "child_only")  # a family only another process defined
    in_redis = scrape()
    # Besides, the backend's own metrics, and any other metric alive in this process
    # (the Django app's), which a newly loaded backend takes over.
    names = list(in_redis.types)
    assert {*expected, "made_in_child", "pytheus_backend_errors"} <= set(names)
    assert names == sorted(names)
    assert list(scrape_openmetrics().types) == names
    assert in_redis.value("m07_total") == 7


def fresh_renders() -> tuple[str, str]:
    """Both formats rendered from series read now and built anew (no kept samples)."""
    families = [build_family(ms) for ms in get_registry().collect_series()]
    render_text = choose_format(None)[0]
    render_openmetrics = choose_format("application/openmetrics-text")[0]
    return render_text(families), render_openmetrics(families)


def without_self_metrics(text: str) -> list[str]:
    # The backend's own metrics (flush durations) change between two scrapes.
    return [line for line in text.splitlines() if "pytheus_backend_" not in line]


def test_a_scrape_that_keeps_the_last_ones_samples_renders_what_a_fresh_read_does(
    load_redis_backend: LoadBackend, prefix: str
) -> None:
    """A series whose stored value is unchanged keeps its samples and text from the last
    scrape: every change (a value, a new series, a negative sum that OpenMetrics leaves
    out, a process that exits and leaves the live gauges) must still show, byte for byte
    what a read of series built from scratch renders."""
    backend = load_redis_backend(process_timeout=600)
    config = {"port": backend.client.connection_pool.connection_kwargs["port"], "prefix": prefix}
    counter = Counter("requests", "R.", list(AWKWARD))
    latency = Histogram("latency", "L.", ["path"], buckets=[-1, 1, 5])
    mode = Enum("mode", "M.", states=["a", "b"])
    build = Info("build", "B.")

    def check(step: str) -> None:
        text, om = generate_metrics(), generate_openmetrics()
        fresh_text, fresh_om = fresh_renders()
        assert without_self_metrics(text) == without_self_metrics(fresh_text), step
        assert without_self_metrics(om) == without_self_metrics(fresh_om), step

    proc = start_script("hold", config, 5, 30)  # every gauge mode, while it lives
    try:
        read_line(proc)
        counter.labels(AWKWARD).inc()
        latency.labels(path="/").observe(2)
        mode.state("a")
        build.info({"v": "1"})
        check("first")
        check("nothing changed")
        counter.labels(AWKWARD).inc()
        latency.labels(path="/").observe(-3)  # a negative sum: not in OpenMetrics
        latency.labels(path="/new").observe(0.5)
        mode.state("b")
        build.info({"v": "2"})
        check("changed")
        assert scrape().value("latency_bucket", {"path": "/", "le": "1.0"}) == 1
        proc.communicate("go\n", timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check("its process gone")
    assert scrape().get("inprogress") is None


def test_series_that_come_and_go_do_not_grow_what_scrapes_keep(
    load_redis_backend: LoadBackend,
) -> None:
    """A scrape keeps each series' samples for the next one; series that leave Redis
    (expired, deleted) are forgotten, or label values that change all the time would
    grow the scraping process without bound."""
    backend = load_redis_backend()
    Counter("churn", "C.", ["n"]).labels(n="first").inc()
    assert backend.flush()
    key = backend.keys.family("churn")
    largest = 0
    for generation in range(6):
        # Written as another process writes them: the JSON list of the label values.
        fields = {json.dumps([f"{generation}-{n}"]): "1" for n in range(1000)}
        backend.client.hset(key, mapping=fields)
        assert len(scrape().series("churn_total")) == 1001
        backend.client.hdel(key, *fields)
        largest = max(largest, len(backend._reader._samples["churn"][2]))
    # Kept up to about twice those in Redis (1,001) and 1,000 more; 6,001 without forgetting.
    assert 2000 < largest <= 2 * 1001 + 1000
    assert len(scrape().series("churn_total")) == 1
