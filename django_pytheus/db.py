"""Query metrics through Django's public execute-wrapper hook, for every connection.

Django runs each query through the callables in ``connection.execute_wrappers``
(outermost first); ``connection.execute_wrapper(fn)`` is the documented way to add one
for the duration of a ``with`` block, and does so by appending to that list and popping
it afterwards. We need a wrapper for the connection's whole life, in every thread,
for requests, management commands and background workers alike, so:

* :func:`install` puts a :class:`QueryObserver` on the connections that already exist
  and, through the ``connection_created`` signal, on every connection when it
  connects (before its first query), whatever its database engine. No ``ENGINE`` is
  swapped, so other custom engines keep working.
* The observer is *inserted at the front* of the list, not appended: a connection may
  be opened inside someone's ``with connection.execute_wrapper(...)`` block, whose
  exit pops the *last* wrapper, which must still be theirs and not ours.
* Installing is idempotent (``connection_created`` fires again on every reconnect).

The observer costs two ``perf_counter()`` calls, a dictionary lookup to classify the
statement from its first characters and one histogram observation per query.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from django_pytheus import metrics as _metrics
from django_pytheus.compat import DbSeries
from django_pytheus.context import current_request
from django_pytheus.metrics import DjangoMetrics, QuerySeries

__all__ = ["QueryObserver", "install", "statement_kind", "uninstall"]

# What the ORM emits ("SELECT ..."), classified without any parsing.
_FAST_KINDS = {
    "SELECT ": "select",
    "INSERT ": "insert",
    "UPDATE ": "update",
    "DELETE ": "delete",
}
_KEYWORDS = {"SELECT": "select", "INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
# A WITH clause's main statement is normally found within this many characters; the
# scan is bounded so that a huge generated query costs no more than a short one.
_MAX_SCAN = 20_000


def _skip_noise(sql: str, i: int) -> int:
    """Skip whitespace, comments and opening parentheses from ``i``."""
    n = len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == "(":
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            break
    return i


def _word_at(sql: str, i: int) -> tuple[str, int]:
    j = i
    n = len(sql)
    while j < n and sql[j] in _WORD_CHARS:
        j += 1
    return sql[i:j].upper(), j


def _main_statement_after_with(sql: str, i: int) -> str:
    """The kind of the statement that follows a ``WITH`` clause's definitions."""
    depth = 0
    n = min(len(sql), _MAX_SCAN)
    while i < n:
        c = sql[i]
        if c in "'\"`":  # a string or quoted identifier: skip to its end
            end = sql.find(c, i + 1)
            i = n if end < 0 else end + 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            i = _skip_noise(sql, i)
        elif depth == 0 and c in _WORD_CHARS:
            word, i = _word_at(sql, i)
            kind = _KEYWORDS.get(word)
            if kind is not None:
                return kind
        else:
            i += 1
    return "other"


def statement_kind(sql: object) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other``, from the SQL text.

    Leading whitespace, comments and parentheses are skipped, and for ``WITH ...``
    the main statement after the common table expressions decides.

    >>> statement_kind("/* app */ with recent as (select 1) delete from t")
    'delete'
    """
    if isinstance(sql, bytes):
        sql = sql.decode(errors="replace")
    elif not isinstance(sql, str):
        return "other"  # e.g. a psycopg sql.Composed object
    fast = _FAST_KINDS.get(sql[:7])
    if fast is not None:
        return fast
    word, end = _word_at(sql, _skip_noise(sql, 0))
    if word == "WITH":
        return _main_statement_after_with(sql, end)
    return _KEYWORDS.get(word, "other")


class QueryObserver:
    """An execute wrapper that times one connection's queries.

    Called by Django as ``observer(execute, sql, params, many, context)`` for each
    ``cursor.execute()`` and ``executemany()``; records the duration by statement kind,
    the error type when the query raises, and one more query for the current request.
    """

    __slots__ = ("_metrics", "_series", "alias", "vendor")

    def __init__(self, alias: str, vendor: str) -> None:
        self.alias = alias
        self.vendor = vendor
        self._metrics: DjangoMetrics | None = None
        self._series: QuerySeries | None = None

    def _bind(self) -> QuerySeries:
        # This connection's series, from the one cache (DjangoMetrics), remembered with
        # the metrics object they belong to: a query pays one identity check, not a
        # call and a lookup (tests replace the metrics; a running site never does).
        m = _metrics.get_metrics()
        series = self._series = m.query_series(self.alias, self.vendor)
        self._metrics = m
        return series

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        start = perf_counter()
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            m = _metrics.get_metrics()
            m.query_errors_total.labels(
                alias=self.alias, vendor=self.vendor, type=type(exc).__name__
            ).inc()
            if m.compat is not None:
                m.compat.db_error(self.alias, self.vendor, exc)
            raise
        finally:
            elapsed = perf_counter() - start
            series = self._series
            if series is None or self._metrics is not _metrics.current:
                series = self._bind()
            kind = _FAST_KINDS.get(sql[:7]) if type(sql) is str else None
            series.durations[kind or statement_kind(sql)].observe(elapsed)
            state = current_request.get()
            if state is not None:
                state.queries += 1
            if series.compat is not None:
                _count_compat(series.compat, many, params, elapsed)

    def __repr__(self) -> str:
        return f"<QueryObserver alias={self.alias!r} vendor={self.vendor!r}>"


def _count_compat(series: DbSeries, many: bool, params: Any, elapsed: float) -> None:
    # django-prometheus counted each statement of an executemany(), as executed and as
    # bulk; a parameter list without a length (an iterator) counts as one.
    n = len(params) if many and hasattr(params, "__len__") else 1
    series.execute.inc(n)
    if many:
        series.execute_many.inc(n)
    if series.duration is not None:
        series.duration.observe(elapsed)


def observe_connection(connection: BaseDatabaseWrapper) -> bool:
    """Put a :class:`QueryObserver` on ``connection`` unless it has one; say if it was added."""
    wrappers = connection.execute_wrappers
    if any(type(w) is QueryObserver for w in wrappers):
        return False
    wrappers.insert(0, QueryObserver(connection.alias, connection.vendor))
    return True


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    observe_connection(connection)
    m = _metrics.get_metrics()
    m.connections_total.labels(alias=connection.alias, vendor=connection.vendor).inc()
    if m.compat is not None:
        m.compat.db_connected(connection.alias, connection.vendor)


_DISPATCH_UID = "django_pytheus.db"


def install() -> None:
    """Observe the queries of every connection, existing and future; no database I/O."""
    connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID)
    # Connection objects are per thread; those of other threads are made (and
    # connect) later, and get their observer from the signal.
    for connection in connections.all(initialized_only=True):
        observe_connection(connection)


def uninstall() -> None:
    """Stop observing: disconnect the signal and remove the observers of this thread."""
    connection_created.disconnect(dispatch_uid=_DISPATCH_UID)
    for connection in connections.all(initialized_only=True):
        connection.execute_wrappers[:] = [
            w for w in connection.execute_wrappers if type(w) is not QueryObserver
        ]
