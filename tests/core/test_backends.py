"""load_backend(): by class, dotted path or environment; switching keeps existing metrics."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytheus.backends import ENV_CLASS, ENV_CONFIG, MemoryBackend, get_backend, load_backend
from pytheus.exceptions import ConfigurationError, MetricDefinitionError
from pytheus.metrics import Counter, Histogram, Summary
from pytheus.registry import CollectorRegistry
from tests.core.helpers import Parsed
from tests.core.sample_backends import NoQuantilesBackend, RecordingBackend

Scrape = Callable[..., tuple[Parsed, Parsed]]

RECORDING = "tests.core.sample_backends.RecordingBackend"


@pytest.fixture
def no_stale_metrics() -> None:
    """load_backend() hands every metric alive in the process to the new backend; metrics of
    earlier tests live on in reference cycles until the garbage collector runs."""
    gc.collect()


def test_default_is_memory() -> None:
    assert isinstance(get_backend(), MemoryBackend)
    assert repr(get_backend()) == "MemoryBackend()"


def test_load_by_class_and_by_dotted_path() -> None:
    backend = load_backend(RecordingBackend, {"answer": 42})
    assert get_backend() is backend
    assert isinstance(backend, RecordingBackend)
    assert backend.config == {"answer": 42}
    by_path = load_backend(RECORDING)
    assert get_backend() is by_path
    assert isinstance(by_path, RecordingBackend)
    assert by_path.config is None
    assert backend.closed == 1  # the previous backend was closed
    memory = load_backend("pytheus.backends.memory.MemoryBackend")
    assert isinstance(memory, MemoryBackend)
    assert by_path.closed == 1


def test_load_from_environment_inline_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CLASS, RECORDING)
    monkeypatch.setenv(ENV_CONFIG, ' {"url": "redis://127.0.0.1:1/0", "flush_interval": 0} ')
    backend = load_backend()
    assert isinstance(backend, RecordingBackend)
    assert backend.config == {"url": "redis://127.0.0.1:1/0", "flush_interval": 0}


def test_load_from_environment_json_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "backend.json"
    config.write_text(json.dumps({"prefix": "app", "ports": [1, 2]}))
    monkeypatch.setenv(ENV_CLASS, RECORDING)
    monkeypatch.setenv(ENV_CONFIG, str(config))
    backend = load_backend()
    assert isinstance(backend, RecordingBackend)
    assert backend.config == {"prefix": "app", "ports": [1, 2]}


def test_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CLASS, "no.such.Backend")
    monkeypatch.setenv(ENV_CONFIG, "{not json")
    backend = load_backend(RecordingBackend, {"a": 1})
    assert isinstance(backend, RecordingBackend)
    assert backend.config == {"a": 1}


@pytest.mark.parametrize(
    ("backend_class", "config", "match"),
    [
        ("NoDots", None, "must be a dotted path"),
        ("no_such_module_xyz.Backend", None, "Cannot import backend module 'no_such_module_xyz'"),
        ("pytheus.backends.memory.Nope", None, "has no backend class 'Nope'"),
        ("pytheus.backends.base.Backend", None, "is the protocol"),
        ("collections.OrderedDict", None, "collections.OrderedDict is not a backend"),
        ("json.JSONDecoder", None, "JSONDecoder is not a backend"),
        ("os.path.join", None, "must be a class or a dotted path"),
        (42, None, "must be a class or a dotted path"),
        (MemoryBackend, {"host": "x"}, "MemoryBackend takes no configuration"),
        (RecordingBackend, [("a", 1)], "must be a mapping"),
    ],
)
def test_bad_backend_class_or_config(backend_class: object, config: object, match: str) -> None:
    before = get_backend()
    with pytest.raises(ConfigurationError, match=match):
        load_backend(backend_class, config)  # type: ignore[arg-type]
    assert get_backend() is before


class NeedsTwoArguments(RecordingBackend):
    def __init__(self, config: object, other: object) -> None:
        super().__init__(None)


def test_backend_with_wrong_constructor() -> None:
    with pytest.raises(ConfigurationError, match="takes one argument"):
        load_backend(NeedsTwoArguments)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1', "not valid JSON"),
        ("/no/such/file.json", "neither inline JSON nor a readable file"),
    ],
)
def test_bad_environment_config(monkeypatch: pytest.MonkeyPatch, raw: str, match: str) -> None:
    monkeypatch.setenv(ENV_CLASS, RECORDING)
    monkeypatch.setenv(ENV_CONFIG, raw)
    before = get_backend()
    with pytest.raises(ConfigurationError, match=match):
        load_backend()
    assert get_backend() is before


def test_environment_config_must_be_an_object(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "list.json"
    config.write_text("[1, 2]")
    monkeypatch.setenv(ENV_CLASS, RECORDING)
    monkeypatch.setenv(ENV_CONFIG, str(config))
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        load_backend()


def test_environment_config_without_class_goes_to_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONFIG, '{"host": "127.0.0.1"}')
    with pytest.raises(ConfigurationError, match="MemoryBackend takes no configuration"):
        load_backend()


def test_metric_defined_before_load_backend_follows_the_new_backend(
    registry: CollectorRegistry, exposition: Scrape
) -> None:
    c = Counter("before", "H.", required_labels=["k"])
    child = c.labels(k="a")
    child.inc()
    h = Histogram("before_seconds", "H.", buckets=[1])
    h.observe(0.5)
    backend = load_backend(RecordingBackend)
    assert c in backend.registered
    assert h in backend.registered
    child.inc()  # a child kept from before the switch
    c.labels(k="b").inc(5)
    h.observe(2)
    after = Counter("after", "H.")
    after.inc()
    assert backend.registered.count(after) == 1  # registered once, at definition
    text, om = exposition()
    for parsed in (text, om):
        assert parsed.value("before_total", {"k": "a"}) == 2.0
        assert parsed.value("before_total", {"k": "b"}) == 5.0
        assert parsed.value("before_seconds_count") == 2.0
        assert parsed.value("after_total") == 1.0
    assert backend.collected.count("before") == 2  # read through the new backend
    assert backend.collected.count("after") == 2


def test_backend_refuses_a_metric_at_definition(
    registry: CollectorRegistry, no_stale_metrics: None
) -> None:
    backend = load_backend(NoQuantilesBackend)
    with pytest.raises(MetricDefinitionError, match="'latency' has quantiles"):
        Summary("latency", "H.", quantiles=[0.5])
    assert registry.collectors() == []  # not left registered
    plain = Summary("latency", "H.")  # the name is free
    plain.observe(1)
    # Metrics defined elsewhere in this process (at import time) are registered too.
    assert plain in backend.registered
    assert not any(m.name == "latency" and m is not plain for m in backend.registered)
    assert registry.get_sample_value("latency_count") == 1.0


def test_load_backend_that_refuses_an_existing_metric_keeps_the_old_one(
    registry: CollectorRegistry, no_stale_metrics: None
) -> None:
    old = load_backend(RecordingBackend)
    s = Summary("latency", "H.", quantiles=[0.5])
    s.observe(3)
    with pytest.raises(MetricDefinitionError, match="'latency' has quantiles"):
        load_backend(NoQuantilesBackend)
    assert get_backend() is old
    assert old.closed == 0
    s.observe(5)
    assert registry.get_sample_value("latency_count") == 2.0
    assert registry.get_sample_value("latency", {"quantile": "0.5"}) == 3.0
    assert "latency" in old.collected


def test_refused_load_closes_the_new_backend(
    registry: CollectorRegistry, no_stale_metrics: None
) -> None:
    Summary("latency", "H.", quantiles=[0.5])
    made: list[NoQuantilesBackend] = []

    class Tracked(NoQuantilesBackend):
        def __init__(self, config: object = None) -> None:
            super().__init__(None)
            made.append(self)

    with pytest.raises(MetricDefinitionError):
        load_backend(Tracked)
    assert len(made) == 1
    assert made[0].closed == 1
