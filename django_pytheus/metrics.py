"""The metrics django_pytheus records, defined from the ``PYTHEUS`` setting.

Names below are with the default ``NAMESPACE`` ("django"):

========================================== ========= ===============================
metric                                     type      labels
========================================== ========= ===============================
django_http_requests_total                 counter   method, view, status
django_http_request_duration_seconds       histogram method, view
django_http_requests_in_progress           gauge     method (livesum across processes)
django_http_request_size_bytes             histogram method, view
django_http_response_size_bytes            histogram method, view
django_http_exceptions_total               counter   view, type
django_db_queries_per_request              histogram view
django_db_query_duration_seconds           histogram alias, vendor, statement
django_db_query_errors_total               counter   alias, vendor, type
django_db_connections_total                counter   alias, vendor
django_cache_hits_total                    counter   cache
django_cache_misses_total                  counter   cache
django_cache_operation_duration_seconds    histogram cache, operation
django_cache_operation_errors_total        counter   cache, operation, type
========================================== ========= ===============================

The number of queries is ``django_db_query_duration_seconds_count``. ``method`` is an
upper-case HTTP method, or ``other`` for unknown verbs; ``view`` is the route pattern
(``/articles/<int:year>/``) or, with ``VIEW_LABEL = "view_name"``, the view name,
and ``<unmatched>`` for URLs that resolved to no view; ``statement`` is ``select``,
``insert``, ``update``, ``delete`` or ``other``.

The metrics are created once, when the app is ready, in the registry that is current
then; :func:`get_metrics` returns them. The :class:`DjangoMetrics` object is also the one
cache of the series that requests, queries and cache operations record into (with its
optional sets, :mod:`django_pytheus.orm` and :mod:`django_pytheus.compat`): recording
code asks it each time (a dictionary lookup) and keeps nothing, so when the metrics are
made anew (tests) the old series go with the old object. Other code (an admin page, a
test) reads the metrics from there::

    from django_pytheus.metrics import get_metrics

    m = get_metrics()
    m.requests_total.labels(method="GET", view="/", status="200")
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple, Protocol

from django_pytheus import orm as _orm
from django_pytheus.compat import CompatMetrics, DbSeries
from django_pytheus.conf import PytheusSettings, get_settings
from django_pytheus.series import series_of
from pytheus.metrics import Counter, CounterChild, Gauge, GaugeChild, Histogram, HistogramChild
from pytheus.registry import CollectorRegistry, get_registry

__all__ = [
    "METHODS",
    "STATEMENTS",
    "UNMATCHED",
    "CacheSeries",
    "DjangoMetrics",
    "QuerySeries",
    "RequestSeries",
    "get_metrics",
    "reset_metrics",
]

#: HTTP methods kept as they are; any other verb is counted as ``other``.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
#: The ``statement`` label values of the query metrics.
STATEMENTS = ("select", "insert", "update", "delete", "other")
#: The ``view`` label of requests that matched no URL pattern.
UNMATCHED = "<unmatched>"


class ResolvedURL(Protocol):
    """What labels a request: Django's ``ResolverMatch`` (``request.resolver_match``)."""

    @property
    def route(self) -> str: ...

    @property
    def view_name(self) -> str: ...


class RequestSeries(NamedTuple):
    """The series one (method, view, status) records into, looked up once."""

    requests: CounterChild
    duration: HistogramChild
    request_size: HistogramChild
    response_size: HistogramChild
    queries: HistogramChild | None  # None with DB_METRICS off


class QuerySeries(NamedTuple):
    """The series of one database connection (alias, vendor), looked up once."""

    durations: dict[str, HistogramChild]  # by statement kind (STATEMENTS)
    compat: DbSeries | None  # django-prometheus's (PYTHEUS["COMPAT"]), else None


class CacheSeries(NamedTuple):
    """The series of one cache alias."""

    hits: CounterChild
    misses: CounterChild
    durations: dict[str, HistogramChild]


class DjangoMetrics:
    """Every metric of the app, created from settings in ``registry``."""

    def __init__(self, settings: PytheusSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.registry = registry
        name = settings.metric_name

        def counter(n: str, help: str, labels: list[str]) -> Counter:
            # Named with _total, so that it keeps it in the text format whatever
            # PYTHEUS['COUNTER_NAMES'] says: that setting is for the application's counters.
            return Counter(f"{name(n)}_total", help, required_labels=labels, registry=registry)

        def histogram(
            n: str, help: str, labels: list[str], buckets: tuple[float, ...], unit: str
        ) -> Histogram:
            return Histogram(
                name(n),
                help,
                required_labels=labels,
                registry=registry,
                buckets=buckets,
                unit=unit,
            )

        s = settings
        # Requests (PytheusMiddleware).
        self.requests_total = counter(
            "http_requests", "HTTP requests answered.", ["method", "view", "status"]
        )
        self.request_duration = histogram(
            "http_request_duration",
            "Time to answer a request, to the end of the stream for streaming responses.",
            ["method", "view"],
            s.latency_buckets,
            "seconds",
        )
        self.requests_in_progress = Gauge(
            name("http_requests_in_progress"),
            "HTTP requests being answered.",
            required_labels=["method"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.request_size = histogram(
            "http_request_size",
            "Size of request bodies (Content-Length).",
            ["method", "view"],
            s.size_buckets,
            "bytes",
        )
        self.response_size = histogram(
            "http_response_size",
            "Size of response bodies, streamed ones included.",
            ["method", "view"],
            s.size_buckets,
            "bytes",
        )
        self.exceptions_total = counter(
            "http_exceptions",
            "Exceptions raised while answering a request and not handled (HTTP 500).",
            ["view", "type"],
        )
        self.queries_per_request = histogram(
            "db_queries_per_request",
            "Database queries made while answering one request.",
            ["view"],
            s.query_count_buckets,
            "",
        )
        # Database (django_pytheus.db).
        self.query_duration = histogram(
            "db_query_duration",
            "Time spent executing database queries; _count is the number of queries.",
            ["alias", "vendor", "statement"],
            s.db_latency_buckets,
            "seconds",
        )
        self.query_errors_total = counter(
            "db_query_errors", "Database queries that raised.", ["alias", "vendor", "type"]
        )
        self.connections_total = counter(
            "db_connections", "Database connections opened.", ["alias", "vendor"]
        )
        # Caches (django_pytheus.cache).
        self.cache_hits_total = counter(
            "cache_hits", "Cache lookups that found the key.", ["cache"]
        )
        self.cache_misses_total = counter(
            "cache_misses", "Cache lookups that did not find the key.", ["cache"]
        )
        self.cache_duration = histogram(
            "cache_operation_duration",
            "Time spent in cache operations.",
            ["cache", "operation"],
            s.cache_latency_buckets,
            "seconds",
        )
        self.cache_errors_total = counter(
            "cache_operation_errors",
            "Cache operations that raised.",
            ["cache", "operation", "type"],
        )

        # Optional sets, defined only when the settings ask for them.
        native = {n for m in self.all() for n in m.definition.series_names()}
        self.orm: _orm.OrmMetrics | None = None
        if s.model_metrics is not None or s.migration_metrics:
            self.orm = _orm.OrmMetrics(s, registry, native)
        self.compat: CompatMetrics | None = None
        if s.compat is not None:
            self.compat = CompatMetrics(s, registry, native)

        # The one cache of series (see the module docstring).
        self._by_route = settings.view_label == "route"
        self._request_series: dict[tuple[str, str | None, str], RequestSeries | None] = {}
        self._progress: dict[str, GaugeChild] = {}
        self._query_series: dict[tuple[str, str], QuerySeries] = {}
        self._cache_series: dict[str, CacheSeries] = {}

    def all(self) -> tuple[Any, ...]:
        """Every metric object, in definition order (the optional sets' last)."""
        own = tuple(v for v in vars(self).values() if isinstance(v, Counter | Gauge | Histogram))
        optional = (getattr(self, "orm", None), getattr(self, "compat", None))
        return own + tuple(m for extra in optional if extra is not None for m in extra.all())

    def unregister(self) -> None:
        """Remove every metric from its registry (their names can be defined again)."""
        for metric in self.all():
            self.registry.unregister(metric)

    # Series are looked up once per label combination and kept here, the one cache: the
    # middleware, the query observer and the cache wrappers ask for them at each use (a
    # dictionary lookup) and keep nothing. Two threads racing to fill an entry get the
    # same children from labels(), so no lock is needed.

    def view_label(self, match: ResolvedURL | None) -> str | None:
        """The ``view`` label of a request resolved to ``match``; None if it is excluded.

        The route pattern (``/articles/<int:year>/``) or the view name, as ``VIEW_LABEL``
        says; ``<unmatched>`` when no URL pattern matched (never the raw path).
        """
        if match is None:
            return UNMATCHED
        view = "/" + match.route if self._by_route else match.view_name
        exclude = self.settings.exclude_views
        if match.view_name in exclude or view in exclude:
            return None
        return view

    def request_series(
        self, method: str, status: str, match: ResolvedURL | None
    ) -> RequestSeries | None:
        """The series a request records into, or None when its view is excluded."""
        view_key = None if match is None else match.route if self._by_route else match.view_name
        key = (method, view_key, status)
        try:
            return self._request_series[key]
        except KeyError:
            pass
        view = self.view_label(match)
        series = None
        if view is not None:
            series = RequestSeries(
                series_of(self.requests_total, method=method, view=view, status=status),
                series_of(self.request_duration, method=method, view=view),
                series_of(self.request_size, method=method, view=view),
                series_of(self.response_size, method=method, view=view),
                series_of(self.queries_per_request, view=view)
                if self.settings.db_metrics
                else None,
            )
        self._request_series[key] = series
        return series

    def in_progress(self, method: str) -> GaugeChild:
        """The in-progress gauge of one method."""
        child = self._progress.get(method)
        if child is None:
            child = self._progress[method] = series_of(self.requests_in_progress, method=method)
        return child

    def query_series(self, alias: str, vendor: str) -> QuerySeries:
        """The series the queries of one database connection record into."""
        series = self._query_series.get((alias, vendor))
        if series is None:
            series = self._query_series[alias, vendor] = QuerySeries(
                {
                    kind: series_of(self.query_duration, alias=alias, vendor=vendor, statement=kind)
                    for kind in STATEMENTS
                },
                None if self.compat is None else self.compat.db_series(alias, vendor),
            )
        return series

    def cache_series(self, alias: str) -> CacheSeries:
        """The hit, miss and duration series of one cache."""
        series = self._cache_series.get(alias)
        if series is None:
            series = self._cache_series[alias] = CacheSeries(
                series_of(self.cache_hits_total, cache=alias),
                series_of(self.cache_misses_total, cache=alias),
                {},
            )
        return series

    def cache_duration_series(self, alias: str, operation: str) -> HistogramChild:
        """The duration series of one cache operation."""
        durations = self.cache_series(alias).durations
        child = durations.get(operation)
        if child is None:
            child = durations[operation] = series_of(
                self.cache_duration, cache=alias, operation=operation
            )
        return child


#: The metrics in use; ``None`` until the app is ready (or :func:`get_metrics` is called).
current: DjangoMetrics | None = None


def get_metrics() -> DjangoMetrics:
    """The app's metrics, created from settings in the current registry on first use."""
    global current
    metrics = current
    if metrics is None:
        metrics = current = DjangoMetrics(get_settings(), get_registry())
        _orm.activate(metrics.orm)
    return metrics


def reset_metrics() -> DjangoMetrics:
    """Unregister the app's metrics and create them again from the current settings.

    For tests, after switching the registry or changing ``PYTHEUS``: recording code
    follows the new metrics at once (it keeps no series of its own).
    """
    global current
    old = current
    current = None
    if old is not None:
        for metric in old.all():
            with contextlib.suppress(KeyError):  # the registry was emptied meanwhile
                old.registry.unregister(metric)
    return get_metrics()
