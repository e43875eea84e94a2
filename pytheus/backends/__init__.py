"""Choosing the backend that scrapes read metric values from.

One call switches the whole process, including metrics defined before it::

    from pytheus.backends import load_backend
    from pytheus.backends.redis import MultiProcessRedisBackend

    load_backend(
        backend_class=MultiProcessRedisBackend,
        backend_config={"host": "127.0.0.1", "port": 6379},
    )

Without a call, the backend comes from the environment: ``PYTHEUS_BACKEND_CLASS`` (a
dotted path) and ``PYTHEUS_BACKEND_CONFIG`` (inline JSON, or the path of a JSON file);
with neither set it is the in-memory backend.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytheus.backends.base import Backend, SeriesBackend
from pytheus.backends.memory import MemoryBackend
from pytheus.backends.per_value import PerValueBackendAdapter, is_per_value_backend
from pytheus.definitions import SeriesSource
from pytheus.exceptions import (
    ConfigurationError,
    InvalidBackendClassException,
    InvalidBackendConfigException,
)

#: A backend's configuration, as pytheus 0.6.1 named its type.
BackendConfig = dict[str, Any]

#: pytheus 0.6.1's name for the in-memory backend.
SingleProcessBackend = MemoryBackend

__all__ = [
    "Backend",
    "BackendConfig",
    "MemoryBackend",
    "PerValueBackendAdapter",
    "SeriesBackend",
    "SingleProcessBackend",
    "attach_metric",
    "attached_metrics",
    "get_backend",
    "import_backend_class",
    "load_backend",
]

ENV_CLASS = "PYTHEUS_BACKEND_CLASS"
ENV_CONFIG = "PYTHEUS_BACKEND_CONFIG"

# Reentrant: a backend's register_metric may define self-metrics of its own.
_lock = threading.RLock()
_backend: Backend | None = None
# Every metric alive in this process, so that load_backend can hand them to the new
# backend; weak, so that a metric nobody references can go away.
_metrics: weakref.WeakSet[SeriesSource] = weakref.WeakSet()


def import_backend_class(path: str) -> type[Backend]:
    """Import a backend class from its dotted path, with an error that says what failed."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise InvalidBackendClassException(
            f"Backend class {path!r} must be a dotted path such as "
            "'pytheus.backends.redis.MultiProcessRedisBackend'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = ""
        if "redis" in str(exc):
            hint = " Install the Redis client: pip install redis hiredis."
        raise InvalidBackendClassException(
            f"Cannot import backend module {module_name!r}: {exc}.{hint}"
        ) from exc
    try:
        cls: type[Backend] = getattr(module, class_name)
    except AttributeError:
        raise InvalidBackendClassException(
            f"Module {module_name!r} has no backend class {class_name!r}."
        ) from None
    return cls


def _config_from_env(raw: str) -> dict[str, Any]:
    text = raw.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise InvalidBackendConfigException(
                f"{ENV_CONFIG}={raw!r} is neither inline JSON nor a readable file: {exc}."
            ) from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidBackendConfigException(f"{ENV_CONFIG} is not valid JSON: {exc}.") from exc
    if not isinstance(config, dict):
        raise InvalidBackendConfigException(f"{ENV_CONFIG} must be a JSON object, got {config!r}.")
    return config


def _make_backend(
    backend_class: type[Backend] | str | None, backend_config: Mapping[str, Any] | None
) -> Backend:
    if backend_class is None:
        env_class = os.environ.get(ENV_CLASS)
        backend_class = env_class or MemoryBackend
        if backend_config is None and os.environ.get(ENV_CONFIG):
            backend_config = _config_from_env(os.environ[ENV_CONFIG])
    if isinstance(backend_class, str):
        backend_class = import_backend_class(backend_class)
    if not isinstance(backend_class, type):
        raise InvalidBackendClassException(
            f"backend_class must be a class or a dotted path, got {backend_class!r}."
        )
    if backend_config is not None and not isinstance(backend_config, Mapping):
        raise InvalidBackendConfigException(
            f"backend_config must be a mapping, got {type(backend_config).__name__}."
        )
    if backend_class is Backend:
        raise InvalidBackendClassException(
            "pytheus.backends.base.Backend is the protocol backends implement; name a class "
            "that implements it, such as pytheus.backends.memory.MemoryBackend."
        )
    not_a_backend = InvalidBackendClassException(
        f"{backend_class.__module__}.{backend_class.__qualname__} is not a backend: it needs "
        "register_metric(), collect() and close() (see pytheus.backends.base.Backend), or "
        "pytheus 0.6.1's per-value inc(), dec(), set() and get() "
        "(see pytheus.backends.per_value)."
    )
    # Checked before instantiating: a wrong dotted path must fail with this message,
    # not with whatever that class's constructor makes of a config.
    if not all(
        callable(getattr(backend_class, m, None)) for m in ("register_metric", "collect", "close")
    ):
        if is_per_value_backend(backend_class):
            return PerValueBackendAdapter(backend_class, backend_config)
        raise not_a_backend
    try:
        backend = backend_class(backend_config)  # type: ignore[call-arg]
    except TypeError as exc:
        raise InvalidBackendConfigException(
            f"Cannot create {backend_class.__qualname__} from its backend_config: {exc}. A "
            "backend class takes one argument, its config mapping (or None)."
        ) from exc
    except ConfigurationError as exc:
        if isinstance(exc, InvalidBackendConfigException | InvalidBackendClassException):
            raise
        # The backend's own check of its options: the pytheus 0.6.1 class for it.
        raise InvalidBackendConfigException(str(exc)) from exc
    if not isinstance(backend, Backend):
        raise not_a_backend
    return backend


def get_backend() -> Backend:
    """The active backend (created from the environment on first use)."""
    backend = _backend
    if backend is None:
        with _lock:
            if _backend is None:
                _install(_make_backend(None, None))
            backend = _backend
    assert backend is not None
    return backend


def _install(backend: Backend) -> None:
    global _backend
    for metric in list(_metrics):
        backend.register_metric(metric)
    old, _backend = _backend, backend
    if old is not None and old is not backend:
        old.close()


def load_backend(
    backend_class: type[Backend] | str | None = None,
    backend_config: Mapping[str, Any] | None = None,
) -> Backend:
    """Make a new backend the active one and return it.

    ``backend_class`` is a class or a dotted path; when omitted, it and the config come
    from ``PYTHEUS_BACKEND_CLASS`` and ``PYTHEUS_BACKEND_CONFIG``, else the in-memory
    backend is used. Every existing metric is registered with the new backend first;
    if it refuses one, the error is raised and the old backend stays active.
    """
    backend = _make_backend(backend_class, backend_config)
    with _lock:
        try:
            _install(backend)
        except BaseException:
            backend.close()
            raise
    return backend


def attach_metric(metric: SeriesSource) -> None:
    """Register a newly defined metric with the active backend (called by metrics)."""
    with _lock:
        get_backend().register_metric(metric)
        _metrics.add(metric)


def attached_metrics() -> list[SeriesSource]:
    """Every metric alive in this process that was attached, in no particular order."""
    return list(_metrics)


@atexit.register
def _close_at_exit() -> None:
    backend = _backend
    if backend is not None:
        backend.close()
