"""pytheus 0.6.1's exception classes: an ``except`` clause written for them catches the
mistakes it caught there, and our own classes catch them too."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytheus import exceptions as e
from pytheus.backends import load_backend
from pytheus.metrics import Counter, Histogram


class NotABackend:
    pass


MISTAKES: dict[str, tuple[Callable[[], object], type[Exception], type[Exception]]] = {
    # name: (the mistake, pytheus 0.6.1's class for it, ours)
    "unobservable": (
        lambda: Counter("c", "d", required_labels=["a"]).inc(),
        e.UnobservableMetricException,
        e.LabelError,
    ),
    "invalid label name": (
        lambda: Counter("c", "d", required_labels=["__x"]),
        e.LabelValidationException,
        e.MetricDefinitionError,
    ),
    "unknown label": (
        lambda: Counter("c", "d", required_labels=["a"]).labels(b="1"),
        e.LabelValidationException,
        e.LabelError,
    ),
    "unsorted buckets": (
        lambda: Histogram("h", "d", buckets=(0.2, 1, 0.5)),
        e.BucketException,
        e.MetricDefinitionError,
    ),
    "backend class not importable": (
        lambda: load_backend("pytheus.doesntexist.Class"),
        e.InvalidBackendClassException,
        e.ConfigurationError,
    ),
    "not a backend": (
        lambda: load_backend(NotABackend),
        e.InvalidBackendClassException,
        e.ConfigurationError,
    ),
    "backend config refused": (
        lambda: load_backend("pytheus.backends.memory.MemoryBackend", {"host": "x"}),
        e.InvalidBackendConfigException,
        e.ConfigurationError,
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_pytheus_and_our_classes_both_catch_the_mistake(mistake: str) -> None:
    make, theirs, ours = MISTAKES[mistake]
    with pytest.raises(theirs) as caught:
        make()
    assert isinstance(caught.value, ours)
    assert isinstance(caught.value, e.PytheusException)
    assert isinstance(caught.value, e.PytheusError)


def test_config_file_that_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHEUS_BACKEND_CLASS", "pytheus.backends.memory.MemoryBackend")
    monkeypatch.setenv("PYTHEUS_BACKEND_CONFIG", "/nonexistent/pytheus.json")
    with pytest.raises(e.InvalidBackendConfigException, match="nonexistent"):
        load_backend()


def test_the_base_class_is_the_same() -> None:
    assert e.PytheusException is e.PytheusError
    for name in (
        "UnobservableMetricException",
        "LabelValidationException",
        "BucketException",
        "InvalidBackendClassException",
        "InvalidBackendConfigException",
    ):
        assert issubclass(getattr(e, name), e.PytheusException)
