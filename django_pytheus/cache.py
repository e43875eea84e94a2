"""Hit, miss, latency and error metrics for every configured cache.

How the caches are instrumented: Django makes each cache object through
``caches.create_connection(alias)`` (per thread, on first use). :func:`install`
replaces that method *on the ``caches`` handler instance* with one that instruments
the object it returns, and instruments the objects that already exist. An
instrumented cache is the very same object, of the same class (``isinstance`` checks,
django-redis's ``get_redis_connection()`` and ``cache.client`` keep working); only
some of its methods are shadowed by instance attributes that time and count, then
call the original.

Hits and misses are told apart with a private sentinel passed as ``get()``'s
default, so a cached ``0``, ``""``, ``None`` or ``False`` is a hit and is returned
unchanged, and the caller's own default is returned on a miss. Only the outermost
operation is recorded: ``get_many()`` implemented with ``get()`` (the base class), or
``get()`` implemented with ``get_many()`` (the database cache), count once.
``get_or_set()``, ``has_key()``, ``incr()`` and the ``a*`` async methods of the base
class go through ``get()`` and the other instrumented methods, and are counted there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

from django_pytheus import metrics as _metrics

__all__ = ["OPERATIONS", "install", "instrument", "is_instrumented", "uninstall"]

#: Timed operations besides ``get`` and ``get_many``.
OPERATIONS = (
    "set",
    "add",
    "delete",
    "set_many",
    "delete_many",
    "incr",
    "decr",
    "touch",
    "clear",
)

_MISSING = object()
_MARK = "_django_pytheus_alias"
# Set while an instrumented operation runs, so that the operations it is built from
# are not counted a second time.
_inside: ContextVar[bool] = ContextVar("django_pytheus_cache_op", default=False)


def _record(alias: str, operation: str, start: float) -> None:
    _metrics.get_metrics().cache_duration_series(alias, operation).observe(perf_counter() - start)


def _count_get(alias: str, value: Any, default: Any) -> Any:
    """Count a get() as a hit or a miss (a cached falsy value is a hit) and return what
    the caller gets: the value, or its default on a miss."""
    m = _metrics.get_metrics()
    series = m.cache_series(alias)
    hit = value is not _MISSING
    (series.hits if hit else series.misses).inc()
    if m.compat is not None:
        m.compat.cache_get(alias, hit)
    return value if hit else default


def _error(alias: str, operation: str, exc: BaseException) -> None:
    m = _metrics.get_metrics()
    m.cache_errors_total.labels(cache=alias, operation=operation, type=type(exc).__name__).inc()
    if m.compat is not None and operation == "get":
        m.compat.cache_get_failed(alias)


def _wrap_get(alias: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get(key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return original(key, default, *args, **kwargs)
        token = _inside.set(True)
        start = perf_counter()
        try:
            value = original(key, _MISSING, *args, **kwargs)
        except Exception as exc:
            _error(alias, "get", exc)
            raise
        finally:
            _inside.reset(token)
            _record(alias, "get", start)
        return _count_get(alias, value, default)

    return get


def _wrap_get_many(alias: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_many(keys: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return original(keys, *args, **kwargs)
        keys = list(keys)  # a generator could be read only once
        token = _inside.set(True)
        start = perf_counter()
        try:
            found = original(keys, *args, **kwargs)
        except Exception as exc:
            _error(alias, "get_many", exc)
            raise
        finally:
            _inside.reset(token)
            _record(alias, "get_many", start)
        series = _metrics.get_metrics().cache_series(alias)
        hits = len(found)
        if hits:
            series.hits.inc(hits)
        if len(keys) > hits:
            series.misses.inc(len(keys) - hits)
        return found

    return get_many


def _wrap_timed(alias: str, operation: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return original(*args, **kwargs)
        token = _inside.set(True)
        start = perf_counter()
        try:
            return original(*args, **kwargs)
        except Exception as exc:
            _error(alias, operation, exc)
            raise
        finally:
            _inside.reset(token)
            _record(alias, operation, start)

    return timed


def _wrap_async_timed(
    alias: str, operation: str, original: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return await original(*args, **kwargs)
        token = _inside.set(True)
        start = perf_counter()
        try:
            return await original(*args, **kwargs)
        except Exception as exc:
            _error(alias, operation, exc)
            raise
        finally:
            _inside.reset(token)
            _record(alias, operation, start)

    return timed


def _wrap_async_get(alias: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def aget(key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return await original(key, default, *args, **kwargs)
        token = _inside.set(True)
        start = perf_counter()
        try:
            value = await original(key, _MISSING, *args, **kwargs)
        except Exception as exc:
            _error(alias, "get", exc)
            raise
        finally:
            _inside.reset(token)
            _record(alias, "get", start)
        return _count_get(alias, value, default)

    return aget


def is_instrumented(cache: BaseCache) -> bool:
    """Whether :func:`instrument` has been applied to this cache object."""
    return _MARK in vars(cache)


def instrument(alias: str, cache: BaseCache) -> BaseCache:
    """Shadow the cache's methods with timed, counting ones; idempotent. Returns ``cache``."""
    if is_instrumented(cache):
        return cache
    cls = type(cache)
    attrs = vars(cache)
    attrs["get"] = _wrap_get(alias, cache.get)
    attrs["get_many"] = _wrap_get_many(alias, cache.get_many)
    for op in OPERATIONS:
        if callable(getattr(cache, op, None)):
            attrs[op] = _wrap_timed(alias, op, getattr(cache, op))
    # The base class's async methods call the sync ones (instrumented above); a cache
    # with async methods of its own gets those instrumented too.
    if getattr(cls, "aget", BaseCache.aget) is not BaseCache.aget:
        attrs["aget"] = _wrap_async_get(alias, cache.aget)
    for op in OPERATIONS:
        name = f"a{op}"
        own = getattr(cls, name, None)
        if own is not None and own is not getattr(BaseCache, name, None):
            attrs[name] = _wrap_async_timed(alias, op, getattr(cache, name))
    attrs[_MARK] = alias
    return cache


def uninstrument(cache: BaseCache) -> None:
    """Remove the instance attributes that :func:`instrument` added."""
    if not is_instrumented(cache):
        return
    attrs = vars(cache)
    for name in ("get", "get_many", "aget", *OPERATIONS, *(f"a{op}" for op in OPERATIONS)):
        attrs.pop(name, None)
    del attrs[_MARK]


class _CreateConnection:
    """Stands in for ``caches.create_connection``: makes the cache, then instruments it."""

    def __init__(self, original: Callable[[str], BaseCache]) -> None:
        self.original = original

    def __call__(self, alias: str) -> BaseCache:
        return instrument(alias, self.original(alias))


def install() -> None:
    """Instrument every cache, existing and future; no network I/O."""
    if not isinstance(vars(caches).get("create_connection"), _CreateConnection):
        # On the handler instance: the class's method is left as it is.
        vars(caches)["create_connection"] = _CreateConnection(caches.create_connection)
    for alias in caches.settings:
        cache = _existing(alias)
        if cache is not None:
            instrument(alias, cache)


def uninstall() -> None:
    """Stop instrumenting new caches and restore this thread's existing ones."""
    ours = vars(caches).get("create_connection")
    if isinstance(ours, _CreateConnection):
        if getattr(ours.original, "__self__", None) is caches:
            del caches.create_connection  # back to the class's own method
        else:
            vars(caches)["create_connection"] = ours.original
    for alias in caches.settings:
        cache = _existing(alias)
        if cache is not None:
            uninstrument(cache)


def _existing(alias: str) -> BaseCache | None:
    # The cache objects this thread has already made, without making new ones (the
    # handler's per-thread storage; BaseConnectionHandler.all() does the same).
    connections = vars(caches)["_connections"]  # a Local, one attribute per alias
    cache: BaseCache | None = getattr(connections, alias, None)
    return cache
