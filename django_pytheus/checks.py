"""System checks (``manage.py check``), each with a stable id and a hint.

==================== ======= ==========================================================
id                   level   problem
==================== ======= ==========================================================
django_pytheus.E001  Error   ``PYTHEUS`` is invalid (unknown key, wrong type, unsorted
                             buckets, ...); the message names the key
django_pytheus.E002  Error   ``PYTHEUS['BACKEND']`` cannot be imported, or is no backend
django_pytheus.E003  Error   the backend could not be loaded with ``BACKEND_CONFIG``
django_pytheus.E004  Error   ``PYTHEUS['MODEL_METRICS']`` names a model that is not
                             installed
django_pytheus.W001  Warning ``PytheusMiddleware`` is not in ``MIDDLEWARE``: no request
                             metrics
django_pytheus.W002  Warning ``PytheusMiddleware`` is not first in ``MIDDLEWARE``:
                             requests answered or failed by the middleware above it are
                             not seen
django_pytheus.W003  Warning the metrics URL is not included
                             (``reverse("django_pytheus:metrics")`` fails)
django_pytheus.W004  Warning ``DEBUG`` is off and ``/metrics`` has no access control
                             (``PYTHEUS['AUTH']``)
django_pytheus.W005  Warning the Redis backend shares a Redis database with a cache:
                             ``cache.clear()`` (``FLUSHDB``) deletes every metric
django_pytheus.W006  Warning (``--deploy``) Redis's ``maxmemory-policy`` can evict the
                             metrics' keys (``allkeys-*`` with ``maxmemory`` set)
django_pytheus.I001  Info    (``--deploy``) Redis did not answer within a second, so its
                             eviction policy could not be checked
django_pytheus.W007  Warning ``CELERY`` is on with the in-memory backend (and tasks are
                             not eager): what Celery workers record never reaches
                             ``/metrics``
django_pytheus.W008  Warning (``--deploy``) the Redis backend's ``wait_replicas`` exceeds
                             the replicas connected to the primary: no flush is
                             ever confirmed, and a failover can lose counts
==================== ======= ==========================================================

Silence a warning you mean to live with in ``SILENCED_SYSTEM_CHECKS``. The app registers
the checks of :data:`CHECKS` in ``ready()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from django_pytheus import startup
from django_pytheus.conf import get_settings
from django_pytheus.middleware import PytheusMiddleware
from django_pytheus.orm import chosen_models
from pytheus.backends import Backend, MemoryBackend, get_backend, import_backend_class
from pytheus.exceptions import BackendUnavailableError, ConfigurationError

__all__ = [
    "CHECKS",
    "check_backend",
    "check_celery",
    "check_middleware",
    "check_models",
    "check_redis_eviction",
    "check_redis_replication",
    "check_redis_shared_with_cache",
    "check_security",
    "check_settings",
    "check_urls",
]

MIDDLEWARE_PATH = "django_pytheus.middleware.PytheusMiddleware"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: the ``PYTHEUS`` setting validates (and AUTH's CALLABLE imports)."""
    hint = "Fix the PYTHEUS setting as the message says; django_pytheus.conf describes every key."
    try:
        check = get_settings().auth.check
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=hint, id="django_pytheus.E001")]
    if isinstance(check, str):
        try:
            import_string(check)
        except ImportError as exc:
            return [
                Error(
                    f"PYTHEUS['AUTH']['CALLABLE'] = {check!r} cannot be imported: {exc}",
                    hint=hint,
                    id="django_pytheus.E001",
                )
            ]
    return []


def check_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002: the backend class imports; E003: ``ready()`` could load the backend."""
    try:
        backend = get_settings().backend
    except ImproperlyConfigured:
        return []  # reported by E001
    if backend is not None:
        try:
            # object: a dotted path may name anything, not only a class.
            cls: object = import_backend_class(backend) if isinstance(backend, str) else backend
        except ConfigurationError as exc:
            return [
                Error(
                    f"PYTHEUS['BACKEND'] cannot be imported: {exc}",
                    hint="Use a dotted path such as "
                    "'pytheus.backends.redis.MultiProcessRedisBackend' and install what it "
                    "needs (pip install redis hiredis, the 'redis' extra of this package).",
                    id="django_pytheus.E002",
                )
            ]
        if not isinstance(cls, type) or not all(
            callable(getattr(cls, m, None)) for m in ("register_metric", "collect", "close")
        ):
            return [
                Error(
                    f"PYTHEUS['BACKEND'] = {backend!r} is not a backend class: it needs "
                    "register_metric(), collect() and close().",
                    hint=f"See {Backend.__module__}.Backend, or use "
                    "'pytheus.backends.redis.MultiProcessRedisBackend'.",
                    id="django_pytheus.E002",
                )
            ]
    error = startup.setup_error()
    if isinstance(error, startup.BackendLoadError):
        return [
            Error(
                str(error),
                hint="Check PYTHEUS['BACKEND_CONFIG'] against the backend's options "
                "(pytheus.backends.redis.MultiProcessRedisBackend lists them).",
                id="django_pytheus.E003",
            )
        ]
    return []


def check_models(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E004: every model ``MODEL_METRICS`` names is installed."""
    try:
        config = get_settings()
    except ImproperlyConfigured:
        return []  # reported by E001
    try:
        chosen_models(config)
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint='Use the labels `python manage.py shell -c "from django.apps import apps; '
                'print([m._meta.label for m in apps.get_models()])"` prints.',
                id="django_pytheus.E004",
            )
        ]
    return []


def _is_ours(path: object) -> bool:
    if path == MIDDLEWARE_PATH:
        return True
    if not isinstance(path, str):
        return False
    try:
        cls = import_string(path)
    except ImportError:
        return False  # Django reports middleware that does not import
    return isinstance(cls, type) and issubclass(cls, PytheusMiddleware)


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: the middleware is installed; W002: it comes first."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    positions = [i for i, path in enumerate(middleware) if _is_ours(path)]
    if not positions:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE, so no request metrics are recorded.",
                hint=f'Add it first: MIDDLEWARE = ["{MIDDLEWARE_PATH}", *MIDDLEWARE].',
                id="django_pytheus.W001",
            )
        ]
    if positions[0] != 0:
        above = ", ".join(middleware[: positions[0]])
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not first in MIDDLEWARE: requests that {above} "
                "answers or fails on are not measured, nor the time spent there.",
                hint="Move it to the top of MIDDLEWARE, or add this id to "
                "SILENCED_SYSTEM_CHECKS if that is what you want.",
                id="django_pytheus.W002",
            )
        ]
    return []


def check_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W003: the metrics URL is included in the URLconf."""
    try:
        reverse("django_pytheus:metrics")
    except NoReverseMatch:
        return [
            Warning(
                "The metrics view is not in the URLconf: reverse('django_pytheus:metrics') "
                "fails, so Prometheus has nothing to scrape.",
                hint='Add path("", include("django_pytheus.urls")) to urlpatterns in '
                f"{settings.ROOT_URLCONF}.",
                id="django_pytheus.W003",
            )
        ]
    except Exception:  # a broken URLconf: Django's own URL checks report it
        return []
    return []


def check_security(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W004: /metrics is not public when DEBUG is off."""
    try:
        auth = get_settings().auth
    except ImproperlyConfigured:
        return []
    if settings.DEBUG or auth.enabled:
        return []
    return [
        Warning(
            "/metrics is served to anyone: PYTHEUS['AUTH'] sets no access control and "
            "DEBUG is off. Metrics reveal traffic, views and error rates.",
            hint='Set PYTHEUS["AUTH"], e.g. {"TOKENS": [os.environ["METRICS_TOKEN"]]} '
            '(Prometheus: authorization: {credentials: ...}) or {"NETWORKS": '
            '["10.0.0.0/8"]}; or silence django_pytheus.W004 if a proxy guards it.',
            id="django_pytheus.W004",
        )
    ]


def check_celery(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W007: Celery metrics need a backend that other processes can write to."""
    try:
        on = get_settings().celery
    except ImproperlyConfigured:
        return []
    if not on or not isinstance(get_backend(), MemoryBackend):
        return []
    try:
        from celery import current_app

        if current_app.conf.task_always_eager:
            return []  # every task runs in the process that calls it: all counted here
    except Exception:  # an app whose configuration cannot be read: warn
        pass
    return [
        Warning(
            "PYTHEUS['CELERY'] is on, but the backend is the in-memory one: a Celery "
            "worker is a process of its own, so what it records never reaches this "
            "site's /metrics (tasks run eagerly, in this process, are counted).",
            hint="Use the Redis backend: PYTHEUS['BACKEND'] = "
            "'pytheus.backends.redis.MultiProcessRedisBackend' with a BACKEND_CONFIG; or "
            "silence django_pytheus.W007 if your tasks only run eagerly.",
            id="django_pytheus.W007",
        )
    ]


# --------------------------------------------------------------------------- Redis

# The cache backends whose clear() empties their whole Redis database (FLUSHDB).
_REDIS_CACHES = (
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.redis.RedisCache",
)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Seconds that `check --deploy` waits for Redis: a deploy must not hang on it.
EVICTION_CHECK_TIMEOUT = 1.0


def _redis_backend() -> Any:
    """The active backend if it is the Redis one (as ready() loaded it), else None."""
    backend = get_backend()
    return backend if isinstance(backend, startup.REDIS_BACKENDS) else None


def _database(kwargs: Mapping[str, Any]) -> tuple[object, ...]:
    """Which Redis database connection settings point at, comparable across spellings."""
    db = int(kwargs.get("db") or 0)
    if kwargs.get("path"):
        return ("unix", str(kwargs["path"]), db)
    host = str(kwargs.get("host") or "localhost").lower()
    return ("tcp", "loopback" if host in _LOOPBACK else host, int(kwargs.get("port") or 6379), db)


def _cache_databases(cache: Mapping[str, Any]) -> list[tuple[object, ...]]:
    from redis.connection import parse_url

    location = cache.get("LOCATION") or []
    urls = location.split(",") if isinstance(location, str) else list(location)
    out = []
    for url in urls:
        try:
            # redis-py's parse_url has no annotations; it returns connection keywords.
            kwargs: dict[str, Any] = parse_url(url.strip())  # type: ignore[no-untyped-call]
            out.append(_database(kwargs))
        except ValueError:
            continue  # the cache reports its own bad LOCATION
    return out


def check_redis_shared_with_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W005: the metrics are not in a Redis database that a cache empties on clear()."""
    backend = _redis_backend()
    if backend is None:
        return []
    pool = getattr(backend.client, "connection_pool", None)
    if pool is None or getattr(pool, "service_name", None) is not None:
        # Through Sentinel the primary's address is known only by asking the sentinels
        # (I/O a check must not do), and a cluster has a pool per node and only db 0:
        # nothing to compare a cache's LOCATION with.
        return []
    ours = _database(pool.connection_kwargs)
    shared = [
        alias
        for alias, cache in (getattr(settings, "CACHES", None) or {}).items()
        if cache.get("BACKEND") in _REDIS_CACHES and ours in _cache_databases(cache)
    ]
    if not shared:
        return []
    alias = shared[0]
    return [
        Warning(
            f"The metrics and the cache {alias!r} share Redis database {ours[-1]} "
            f"({backend!r}): cache.clear() empties that database (FLUSHDB), every metric "
            "with it.",
            hint=f'Give metrics a database of their own: PYTHEUS["BACKEND_CONFIG"] = '
            f'{{"CACHE": {alias!r}, "db": 1}} (or a "url" ending in /1), or a Redis of '
            "their own.",
            id="django_pytheus.W005",
        )
    ]


def check_redis_eviction(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W006 (``--deploy``): Redis will not evict the metrics' keys; I001 if it did not
    answer in time."""
    backend = _redis_backend()
    if backend is None:
        return []
    try:
        risk = backend.eviction_risk(timeout=EVICTION_CHECK_TIMEOUT)
    except BackendUnavailableError as exc:
        return [
            Info(
                f"Could not check Redis's eviction policy: {exc}",
                hint="Run `manage.py check --deploy` where Redis is reachable.",
                id="django_pytheus.I001",
            )
        ]
    if risk is None:
        return []
    return [
        Warning(
            f"{risk} ({backend!r})",
            hint="CONFIG SET maxmemory-policy noeviction (or volatile-lru), or point "
            'PYTHEUS["BACKEND_CONFIG"] at a Redis that is not a cache. With noeviction, '
            "metrics wait in the workers when Redis is full; scrapes still read.",
            id="django_pytheus.W006",
        )
    ]


def check_redis_replication(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W008 (``--deploy``): the primary has the replicas that ``wait_replicas`` waits for.
    (A Redis that does not answer in time is I001's to report.)"""
    backend = _redis_backend()
    if backend is None:
        return []
    try:
        risk = backend.replication_risk(timeout=EVICTION_CHECK_TIMEOUT)
    except BackendUnavailableError:
        return []
    if risk is None:
        return []
    return [
        Warning(
            f"{risk} ({backend!r})",
            hint='Set PYTHEUS["BACKEND_CONFIG"]["wait_replicas"] to the number of replicas '
            "the primary has (0 where it has none), or bring the replicas back.",
            id="django_pytheus.W008",
        )
    ]


Check = Callable[..., list[CheckMessage]]

#: Every check with the tags it is registered under and whether it runs only with
#: ``check --deploy`` (``ready()`` registers them).
CHECKS: Sequence[tuple[Check, tuple[str, ...], bool]] = (
    (check_settings, (), False),
    (check_backend, (), False),
    (check_models, (Tags.models,), False),
    (check_middleware, (), False),
    (check_urls, (Tags.urls,), False),
    (check_security, (Tags.security,), False),
    (check_redis_shared_with_cache, (), False),
    (check_redis_eviction, (), True),
    (check_redis_replication, (), True),
    (check_celery, (), False),
)
