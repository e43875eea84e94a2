"""Start-up: what ``ready()`` sets up, with no network or database I/O.

:func:`setup`:

1. validates ``PYTHEUS`` (:mod:`django_pytheus.conf`) and sets the core's default
   series limit per metric from ``MAX_SERIES``;
2. loads the configured backend, before the app's metrics are defined; metrics that
   other apps defined at import time follow it (the core re-registers them). With
   ``BACKEND_CONFIG = {"CACHE": alias}`` the backend gets that django-redis cache's
   connection settings (in a pool of its own, with its own timeouts and ``db``); making
   the client opens no connection. The Redis backend's key prefix is the project's own
   unless ``BACKEND_CONFIG`` gives one;
3. defines the metrics (:mod:`django_pytheus.metrics`);
4. installs the query observer on every connection (:mod:`django_pytheus.db`),
   instruments every cache (:mod:`django_pytheus.cache`), connects the model
   signals (:mod:`django_pytheus.orm`) and Celery's (:mod:`pytheus.contrib.celery`,
   ``CELERY``), and bridges prometheus_client's registry
   (:mod:`pytheus.bridges.prometheus_client`, ``PROMETHEUS_CLIENT``), as the settings
   ask; ``EXIT_TIMEOUT`` bounds the last flush at exit.

A mistake in the settings does not stop ``django.setup()``: :func:`start` (what
``ready()`` calls) keeps it, ``manage.py check`` reports it (``django_pytheus.E001``/
``E003``) and :func:`raise_setup_error` raises it when the middleware or the metrics view
is loaded, so a server does not start half-instrumented.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from django_pytheus import cache, db, metrics, orm
from django_pytheus.conf import PytheusSettings, get_settings
from pytheus.backends import Backend, import_backend_class, load_backend, set_exit_timeout
from pytheus.bridges import prometheus_client as prometheus_client_bridge
from pytheus.contrib import celery as celery_metrics
from pytheus.exceptions import PytheusError
from pytheus.exposition import set_counter_names
from pytheus.metrics import set_default_max_series
from pytheus.registry import get_registry

try:
    from pytheus.backends.redis import MultiProcessRedisBackend

    #: The Redis backend's class, or nothing when the redis package is not installed
    #: (a site on the in-memory backend needs no Redis client).
    REDIS_BACKENDS: tuple[type[Any], ...] = (MultiProcessRedisBackend,)
except ImportError:
    REDIS_BACKENDS = ()

__all__ = [
    "REDIS_BACKENDS",
    "BackendLoadError",
    "backend_config",
    "default_prefix",
    "load_configured_backend",
    "raise_setup_error",
    "setup",
    "setup_error",
    "start",
]

logger = logging.getLogger("django_pytheus")


class BackendLoadError(ImproperlyConfigured):
    """The configured backend could not be made (system check ``django_pytheus.E003``)."""


# Why the last start() failed, or None.
_error: ImproperlyConfigured | None = None


def setup_error() -> ImproperlyConfigured | None:
    """Why the last :func:`start` failed, or None if it succeeded."""
    return _error


def raise_setup_error() -> None:
    """Raise the error that stopped the last :func:`start`, if there was one."""
    if _error is not None:
        raise _error


def backend_config(settings: PytheusSettings) -> Mapping[str, Any] | None:
    """``BACKEND_CONFIG`` as the backend takes it: ``CACHE`` resolved to that cache's
    connection pool, and, for the Redis backend, a ``prefix`` of this project's own
    unless one is given (:func:`default_prefix`)."""
    config = settings.backend_config
    alias = settings.backend_cache_alias
    if alias is not None:
        config = {**(config or {}), "connection_pool": _cache_pool(alias)}
    if _is_redis_backend(settings.backend) and "prefix" not in (config or {}):
        config = {**(config or {}), "prefix": default_prefix()}
    return config


def default_prefix() -> str:
    """The Redis key prefix of this Django project when ``BACKEND_CONFIG`` gives none:
    ``pytheus:`` and the settings' top package (``myshop.settings`` -> ``pytheus:myshop``),
    so that two projects sharing a Redis do not add up each other's requests."""
    module = getattr(django_settings, "SETTINGS_MODULE", None) or ""
    return f"pytheus:{module.split('.')[0] or 'django'}"


def _is_redis_backend(backend: str | type | None) -> bool:
    try:
        cls = import_backend_class(backend) if isinstance(backend, str) else backend
    except PytheusError:
        return False  # reported by check E002
    return isinstance(cls, type) and issubclass(cls, REDIS_BACKENDS)


def _cache_pool(alias: str) -> Any:
    cache_ = caches[alias]
    get_client = getattr(getattr(cache_, "client", None), "get_client", None)
    if get_client is None:
        raise BackendLoadError(
            f"PYTHEUS['BACKEND_CONFIG']['CACHE'] is {alias!r}, a "
            f"{type(cache_).__module__}.{type(cache_).__qualname__}; only a django-redis "
            "cache (django_redis.cache.RedisCache) has a connection pool to share. Give "
            "BACKEND_CONFIG a 'url' instead."
        )
    # django-redis makes the client and its pool without connecting. The backend takes
    # the pool's connection settings (host, password, TLS) into a pool of its own, with
    # its own timeouts and the "db" of BACKEND_CONFIG if given.
    return get_client(write=True).connection_pool


def load_configured_backend(settings: PytheusSettings | None = None) -> Backend | None:
    """Load the backend ``PYTHEUS`` names; with neither BACKEND nor BACKEND_CONFIG, keep
    the current one (the core's default: the environment, else in-memory)."""
    settings = settings or get_settings()
    if settings.backend is None and settings.backend_config is None:
        return None
    try:
        return load_backend(settings.backend, backend_config(settings))
    except PytheusError as exc:
        raise BackendLoadError(
            f"PYTHEUS['BACKEND'] = {settings.backend!r} could not be loaded: {exc}"
        ) from exc


def setup() -> None:
    """Validate settings, load the backend, define metrics, install instrumentation.

    Tests call it again after changing ``PYTHEUS``. Raises
    :class:`~django.core.exceptions.ImproperlyConfigured`.
    """
    settings = get_settings()
    set_default_max_series(settings.max_series)
    if settings.counter_names is not None:
        set_counter_names(settings.counter_names)
    if settings.exit_timeout is not None:
        set_exit_timeout(settings.exit_timeout)
    load_configured_backend(settings)
    orm.install(settings, metrics.reset_metrics().orm)
    if settings.celery:
        # In web processes (which publish tasks) and Celery workers alike: Celery's
        # Django fix-up sets Django up in a worker before it consumes.
        celery_metrics.instrument(registry=get_registry())
    else:
        celery_metrics.uninstrument()  # imports no Celery unless it was instrumented
    if settings.prometheus_client:
        prometheus_client_bridge.register()
    else:
        prometheus_client_bridge.unregister()
    if settings.db_metrics:
        db.install()
    else:
        db.uninstall()
    if settings.cache_metrics:
        cache.install()
    else:
        cache.uninstall()


def start() -> None:
    """:func:`setup`, keeping (and logging) an error instead of raising it: ``ready()``."""
    global _error
    try:
        setup()
    except ImproperlyConfigured as exc:
        _error = exc
        logger.error("django_pytheus is not set up: %s", exc)
    else:
        _error = None
