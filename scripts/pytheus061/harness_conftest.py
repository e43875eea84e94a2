"""Harness for running pytheus 0.6.1's test suite against this package (see run.sh): copied
beside that suite's tests as their conftest.py, never run from this repository.

It changes no test. It only lets the test modules be *collected*: names that exist in
pytheus 0.6.1 as private internals (not in its documentation) and are imported at module
level are set to placeholders that fail the test that actually uses them, so that the other
tests of the same module run. With HARNESS_FRESH_REGISTRY=1, every test also starts with a
fresh global registry (pytheus 0.6.1 silently ignored a second metric of the same name; the
suite relies on it, the drop-in refuses it on purpose).
"""

import os
import sys
import types

import pytest
import redis

import pytheus.backends.base
import pytheus.backends.redis
import pytheus.exposition
import pytheus.metrics
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.registry import REGISTRY, CollectorRegistry

USED_INTERNALS = set()


class Internal:
    """Stands for a private name of pytheus 0.6.1; any use fails the test."""

    def __init__(self, name):
        self._name = name

    def _fail(self, *args, **kwargs):
        USED_INTERNALS.add(self._name)
        raise AssertionError(f"uses pytheus 0.6.1's internal {self._name}")

    def __getattr__(self, attr):
        if attr.startswith(("__", "_pytest")):
            raise AttributeError(attr)  # Python's and pytest's own probing
        self._fail()

    def __repr__(self):
        return f"<internal {self._name}>"

    __call__ = _fail
    __instancecheck__ = _fail


for module, names in {
    pytheus.metrics: ["_Metric", "_MetricCollector", "Sample"],
    pytheus.exposition: ["_escape_help", "format_labels"],
    pytheus.backends.base: ["_import_backend_class", "get_backend_class", "get_backend"],
}.items():
    for name in names:
        if not hasattr(module, name):
            setattr(module, name, Internal(f"{module.__name__}.{name}"))

utils = types.ModuleType("pytheus.utils")
utils.InfFloat = Internal("pytheus.utils.InfFloat")
utils.MetricType = Internal("pytheus.utils.MetricType")
sys.modules["pytheus.utils"] = utils


class CollectableRedisBackend(MultiProcessRedisBackend):
    """The drop-in's MultiProcessRedisBackend, except that constructing it as pytheus
    0.6.1's per-value object, ``MultiProcessRedisBackend(config, metric)`` (done by
    test_redis.py at import, in a parametrize), gives a placeholder that fails the test
    using it instead of failing the collection of the whole module."""

    def __new__(cls, *args, **kwargs):
        if len(args) + len(kwargs) >= 2:
            return Internal("MultiProcessRedisBackend(config, metric): a per-value instance")
        return super().__new__(cls)


pytheus.backends.redis.MultiProcessRedisBackend = CollectableRedisBackend
# test_redis.py flushes Redis between tests with the class's connection pool, an internal;
# the harness hands it a client of the same server (127.0.0.1:6379, as in its tox setup).
CollectableRedisBackend.CONNECTION_POOL = redis.Redis(decode_responses=True)


@pytest.fixture(autouse=True)
def _fresh_registry():
    if os.environ.get("HARNESS_FRESH_REGISTRY") == "1":
        REGISTRY.set_registry(CollectorRegistry())
