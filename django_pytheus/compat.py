"""django-prometheus 2.5's metrics, recorded by our instrumentation: ``PYTHEUS["COMPAT"]``.

With ``PYTHEUS = {"COMPAT": "django_prometheus"}`` a site that leaves django-prometheus
keeps every series its dashboards and alerts read, under django-prometheus's names,
types and labels, *as well as* our own metrics (:mod:`django_pytheus.metrics`), so that
the old dashboards keep working while new ones are built on ours. Nothing else is
installed: the same middleware, query observer and cache instrumentation record both
sets, with no ENGINE or cache BACKEND swapped and no model mixin.

django-prometheus's own settings keep their meaning: ``PROMETHEUS_METRIC_NAMESPACE``
prefixes these names, ``PROMETHEUS_LATENCY_BUCKETS`` sets the buckets of its latency
histograms.

What follows django-prometheus exactly (``view`` is the view name,
``request.resolver_match.view_name``, or ``<unnamed view>``; ``method`` an upper-case
method or ``<invalid method>``; ``transport`` ``http`` or ``https``; ``backend`` the
kind of cache: ``redis`` for django-redis, ``native_redis``, ``locmem``,
``filebased``, ``memcached``):

================================================================== ===============================
series                                                             labels
================================================================== ===============================
django_http_requests_before_middlewares_total                      -
django_http_responses_before_middlewares_total                     -
django_http_requests_latency_including_middlewares_seconds         - (histogram)
django_http_requests_unknown_latency_including_middlewares_total   - (always 0)
django_http_requests_latency_seconds_by_view_method                view, method (histogram)
django_http_requests_unknown_latency_total                         - (always 0)
django_http_ajax_requests_total                                    -
django_http_requests_total_by_method_total                         method
django_http_requests_total_by_transport_total                      transport
django_http_requests_total_by_view_transport_method_total          view, transport, method
django_http_requests_body_total_bytes                              - (histogram, 0 and 2^0..2^29)
django_http_responses_total_by_templatename_total                  templatename
django_http_responses_total_by_status_total                        status
django_http_responses_total_by_status_view_method_total            status, view, method
django_http_responses_body_total_bytes                             - (histogram, as requests)
django_http_responses_total_by_charset_total                       charset
django_http_responses_streaming_total                              -
django_http_exceptions_total_by_type_total                         type
django_http_exceptions_total_by_view_total                         view
django_db_new_connections_total                                    alias, vendor
django_db_new_connection_errors_total                              alias, vendor (never counted)
django_db_execute_total                                            alias, vendor
django_db_execute_many_total                                       alias, vendor
django_db_errors_total                                             alias, vendor, type
django_db_query_duration_seconds                                   alias, vendor (histogram)
django_cache_get_total, _get_hits_total, _get_misses_total,        backend
django_cache_get_fail_total
django_model_inserts_total, _updates_total, _deletes_total         model (``MODEL_METRICS``)
django_migrations_applied_total, django_migrations_unapplied_total connection (gauges,
                                                                   ``MIGRATION_METRICS``)
================================================================== ===============================

Where it differs, and why (the README's "Coming from django-prometheus" lists these too):

* Requests to ``EXCLUDE_VIEWS`` (``/metrics`` by default) are not counted; django-prometheus
  counted its scrapes unless they were served on a port of their own.
* Every request that reaches our middleware (first in ``MIDDLEWARE``) is counted in the
  per-method, per-status and latency series; django-prometheus's "after" middleware
  missed requests answered by a middleware above it, and timed only the view (we time
  the whole stack, as its "including middlewares" histogram does). A request whose view
  raised is observed once, not twice. An unknown HTTP verb is ``<invalid method>`` in
  the latency histogram too (django-prometheus put the raw verb there).
* ``django_db_query_duration_seconds``: with the default ``NAMESPACE`` this is our own
  histogram, which has a ``statement`` label as well and ``DB_LATENCY_BUCKETS``; sums by
  ``alias``/``vendor`` and its ``_count`` agree. Failed connection attempts are not seen
  (Django has no public hook for them).
* A cached ``None`` is a hit (django-prometheus counted a miss); only ``get()`` is counted,
  as there.
* There are no ``_created`` series (OpenMetrics scrapes carry none either).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from django_pytheus.conf import PytheusSettings
from django_pytheus.series import series_of
from pytheus.metrics import Counter, CounterChild, Gauge, Histogram, HistogramChild
from pytheus.registry import CollectorRegistry

__all__ = ["UNNAMED_VIEW", "CompatMetrics", "DbSeries", "cache_backend_label"]

logger = logging.getLogger("django_pytheus")

#: The ``view`` of requests that resolved to no view.
UNNAMED_VIEW = "<unnamed view>"
#: The ``method`` of requests with a verb outside :data:`_METHODS`.
INVALID_METHOD = "<invalid method>"
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"}
)
# Body sizes: 0, then powers of two up to 2**29 (django-prometheus's PowersOf(2, 30)).
BODY_BUCKETS = (0.0, *(float(2**i) for i in range(30)))

# The cache label django-prometheus gave each of its cache backends, by Django BACKEND path.
_CACHE_BACKENDS = {
    "django_redis.cache.RedisCache": "redis",
    "django.core.cache.backends.redis.RedisCache": "native_redis",
    "django.core.cache.backends.locmem.LocMemCache": "locmem",
    "django.core.cache.backends.filebased.FileBasedCache": "filebased",
    "django.core.cache.backends.memcached.PyMemcacheCache": "memcached",
    "django.core.cache.backends.memcached.PyLibMCCache": "memcached",
    # Sites that used django-prometheus's wrappers and keep the path a while.
    "django_prometheus.cache.backends.redis.RedisCache": "redis",
    "django_prometheus.cache.backends.redis.NativeRedisCache": "native_redis",
    "django_prometheus.cache.backends.locmem.LocMemCache": "locmem",
    "django_prometheus.cache.backends.filebased.FileBasedCache": "filebased",
    "django_prometheus.cache.backends.memcached.PyMemcacheCache": "memcached",
    "django_prometheus.cache.backends.memcached.PyLibMCCache": "memcached",
}


def cache_backend_label(path: str) -> str:
    """The ``backend`` label of a cache, from its ``BACKEND`` path.

    django-prometheus's own kinds keep their names; any other backend (which it did not
    instrument) is named by its class, lower case, without a ``Cache`` suffix.

    >>> cache_backend_label("django_redis.cache.RedisCache")
    'redis'
    >>> cache_backend_label("django.core.cache.backends.db.DatabaseCache")
    'database'
    """
    known = _CACHE_BACKENDS.get(path)
    if known is not None:
        return known
    name = path.rpartition(".")[2]
    return (name.removesuffix("Cache") or name).lower()


class _Request(NamedTuple):
    """The labelled series one (method, view, status, transport) records into."""

    by_method: CounterChild
    by_transport: CounterChild
    by_view: CounterChild | None  # None when no view was resolved
    by_status: CounterChild
    by_status_view: CounterChild
    latency: HistogramChild


class DbSeries(NamedTuple):
    """The series of one database connection (alias, vendor)."""

    execute: CounterChild
    execute_many: CounterChild
    duration: HistogramChild | None  # None when our own histogram has the name


class CompatMetrics:
    """django-prometheus's metric set, defined in ``registry``; see the module docstring.

    ``native_names`` are the names our own metrics already use: a compat metric of the
    same name (``django_db_query_duration_seconds`` with the default namespace) is left
    to ours.
    """

    def __init__(  # noqa: PLR0915 (one statement per metric of the set)
        self, settings: PytheusSettings, registry: CollectorRegistry, native_names: set[str]
    ) -> None:
        compat = settings.compat
        assert compat is not None
        self.settings = compat
        self.registry = registry
        self._metrics: list[Counter | Gauge | Histogram] = []
        name = compat.metric_name
        latency = compat.latency_buckets

        def counter(n: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
            # The name prometheus_client exposed (it added _total unless there was one),
            # given whole, so that it stays the same whatever PYTHEUS['COUNTER_NAMES'] says.
            exposed = n if n.endswith("_total") else f"{n}_total"
            metric = Counter(
                name(exposed), help_text, required_labels=labels or None, registry=registry
            )
            self._metrics.append(metric)
            return metric

        def histogram(
            n: str, help_text: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            metric = Histogram(
                name(n),
                help_text,
                required_labels=labels or None,
                registry=registry,
                buckets=buckets,
            )
            self._metrics.append(metric)
            return metric

        # The HELP texts are ours; names, types, labels and buckets are django-prometheus's.
        self.requests_before = counter(
            "django_http_requests_before_middlewares_total", "Requests received."
        )
        self.responses_before = counter(
            "django_http_responses_before_middlewares_total", "Responses sent."
        )
        self.latency_including = histogram(
            "django_http_requests_latency_including_middlewares_seconds",
            "Time to answer a request, middleware included.",
            latency,
        )
        self.unknown_latency_including = counter(
            "django_http_requests_unknown_latency_including_middlewares_total",
            "Requests whose latency was not measured (none: kept for compatibility).",
        )
        self.latency_by_view = histogram(
            "django_http_requests_latency_seconds_by_view_method",
            "Time to answer a request, by view name and method.",
            latency,
            ("view", "method"),
        )
        self.unknown_latency = counter(
            "django_http_requests_unknown_latency_total",
            "Requests whose latency was not measured (none: kept for compatibility).",
        )
        self.ajax = counter(
            "django_http_ajax_requests_total", "Requests with X-Requested-With: XMLHttpRequest."
        )
        self.by_method = counter(
            "django_http_requests_total_by_method", "Requests by method.", ("method",)
        )
        self.by_transport = counter(
            "django_http_requests_total_by_transport", "Requests by transport.", ("transport",)
        )
        self.by_view_transport_method = counter(
            "django_http_requests_total_by_view_transport_method",
            "Requests that resolved to a view, by view name, transport and method.",
            ("view", "transport", "method"),
        )
        self.request_body = histogram(
            "django_http_requests_body_total_bytes", "Request body sizes.", BODY_BUCKETS
        )
        self.by_templatename = counter(
            "django_http_responses_total_by_templatename",
            "Template responses by template name.",
            ("templatename",),
        )
        self.by_status = counter(
            "django_http_responses_total_by_status", "Responses by status.", ("status",)
        )
        self.by_status_view_method = counter(
            "django_http_responses_total_by_status_view_method",
            "Responses by status, view name and method.",
            ("status", "view", "method"),
        )
        self.response_body = histogram(
            "django_http_responses_body_total_bytes",
            "Response body sizes (streaming responses are not observed).",
            BODY_BUCKETS,
        )
        self.by_charset = counter(
            "django_http_responses_total_by_charset", "Responses by charset.", ("charset",)
        )
        self.streaming = counter("django_http_responses_streaming_total", "Streaming responses.")
        self.exceptions_by_type = counter(
            "django_http_exceptions_total_by_type",
            "Exceptions raised by views, by type.",
            ("type",),
        )
        self.exceptions_by_view = counter(
            "django_http_exceptions_total_by_view",
            "Exceptions raised by views, by view name.",
            ("view",),
        )

        db = ("alias", "vendor")
        self.db_connections = counter(
            "django_db_new_connections_total", "Database connections opened.", db
        )
        self.db_connection_errors = counter(
            "django_db_new_connection_errors_total",
            "Failed database connection attempts (not observed: kept for compatibility).",
            db,
        )
        self.db_execute = counter(
            "django_db_execute_total", "Statements executed, each of an executemany() too.", db
        )
        self.db_execute_many = counter(
            "django_db_execute_many_total", "Statements executed by executemany().", db
        )
        self.db_errors = counter(
            "django_db_errors_total", "Statements that raised, by exception type.", (*db, "type")
        )
        self.db_duration: Histogram | None = None
        if name("django_db_query_duration_seconds") not in native_names:
            self.db_duration = histogram(
                "django_db_query_duration_seconds", "Time spent executing statements.", latency, db
            )

        cache = ("backend",)
        self.cache_gets = counter("django_cache_get_total", "Cache get() calls.", cache)
        self.cache_hits = counter("django_cache_get_hits_total", "Cache get() hits.", cache)
        self.cache_misses = counter("django_cache_get_misses_total", "Cache get() misses.", cache)
        self.cache_fail = counter(
            "django_cache_get_fail_total", "Cache get() calls that raised.", cache
        )

        self._request: dict[tuple[str, str | None, str, bool], _Request] = {}
        self._cache_labels: dict[str, str] = {}
        self._charsets: dict[str, CounterChild] = {}
        self._warned = False

    def all(self) -> tuple[Counter | Gauge | Histogram, ...]:
        """Every metric of the set."""
        return tuple(self._metrics)

    def metric_name(self, name: str) -> str:
        """A django-prometheus name with its namespace."""
        return self.settings.metric_name(name)

    # ------------------------------------------------------------------ requests

    def record_request(
        self,
        request: Any,
        response: Any,
        status: str,
        duration: float,
        view_name: str | None,
    ) -> None:
        """Record one answered request (called by the middleware, after ours).

        ``response`` is None when the request ended in an exception that escaped the
        handler; ``view_name`` is None when no URL pattern matched. Never raises: a
        response this cannot read costs its compatibility series, not the request.
        """
        try:
            self._record_request(request, response, status, duration, view_name)
        except Exception:
            if not self._warned:
                self._warned = True
                logger.exception(
                    "django_pytheus could not record a request in django-prometheus's "
                    "series (PYTHEUS['COMPAT']); further failures are not logged."
                )

    def _record_request(
        self, request: Any, response: Any, status: str, duration: float, view_name: str | None
    ) -> None:
        raw = request.method
        method = raw if raw in _METHODS else INVALID_METHOD
        secure = request.is_secure()
        key = (method, view_name, status, secure)
        series = self._request.get(key)
        if series is None:
            series = self._request[key] = self._request_series(method, view_name, status, secure)
        self.requests_before.inc()
        self.responses_before.inc()
        self.latency_including.observe(duration)
        series.by_method.inc()
        series.by_transport.inc()
        meta = request.META
        if meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self.ajax.inc()
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        self.request_body.observe(length)
        if series.by_view is not None:
            series.by_view.inc()
        series.by_status.inc()
        series.by_status_view.inc()
        series.latency.observe(duration)
        if response is None:
            return
        if hasattr(response, "template_name"):
            self.by_templatename.labels(templatename=str(response.template_name)).inc()
        charset = str(response.charset)
        child = self._charsets.get(charset)
        if child is None:
            child = self._charsets[charset] = series_of(self.by_charset, charset=charset)
        child.inc()
        if response.streaming:
            self.streaming.inc()
        else:
            self.response_body.observe(len(response.content))

    def _request_series(
        self, method: str, view_name: str | None, status: str, secure: bool
    ) -> _Request:
        view = view_name or UNNAMED_VIEW
        transport = "https" if secure else "http"
        return _Request(
            series_of(self.by_method, method=method),
            series_of(self.by_transport, transport=transport),
            None
            if view_name is None
            else series_of(
                self.by_view_transport_method, view=view, transport=transport, method=method
            ),
            series_of(self.by_status, status=status),
            series_of(self.by_status_view_method, status=status, view=view, method=method),
            series_of(self.latency_by_view, view=view, method=method),
        )

    def view_exception(self, request: Any, exception: BaseException) -> None:
        """An exception raised by a view (``process_exception``), handled or not."""
        self.exceptions_by_type.labels(type=type(exception).__name__).inc()
        match = request.resolver_match
        if match is not None:
            self.exceptions_by_view.labels(view=match.view_name or UNNAMED_VIEW).inc()

    # ------------------------------------------------------------------ database

    def db_series(self, alias: str, vendor: str) -> DbSeries:
        """The series of one connection (kept with ours by
        :meth:`~django_pytheus.metrics.DjangoMetrics.query_series`, the one cache)."""
        return DbSeries(
            series_of(self.db_execute, alias=alias, vendor=vendor),
            series_of(self.db_execute_many, alias=alias, vendor=vendor),
            None
            if self.db_duration is None
            else series_of(self.db_duration, alias=alias, vendor=vendor),
        )

    def db_error(self, alias: str, vendor: str, exception: BaseException) -> None:
        """A statement raised."""
        self.db_errors.labels(alias=alias, vendor=vendor, type=type(exception).__name__).inc()

    def db_connected(self, alias: str, vendor: str) -> None:
        """A connection was opened."""
        self.db_connections.labels(alias=alias, vendor=vendor).inc()

    # ------------------------------------------------------------------ caches

    def cache_label(self, alias: str) -> str:
        """The ``backend`` label of the cache ``alias``."""
        label = self._cache_labels.get(alias)
        if label is None:
            from django.conf import settings

            config: Mapping[str, Any] = settings.CACHES.get(alias, {})
            label = self._cache_labels[alias] = cache_backend_label(str(config.get("BACKEND", "")))
        return label

    def cache_get(self, alias: str, hit: bool) -> None:
        """One ``get()`` of the cache ``alias`` found its key (``hit``) or not."""
        backend = self.cache_label(alias)
        self.cache_gets.labels(backend=backend).inc()
        (self.cache_hits if hit else self.cache_misses).labels(backend=backend).inc()

    def cache_get_failed(self, alias: str) -> None:
        """One ``get()`` of the cache ``alias`` raised."""
        backend = self.cache_label(alias)
        self.cache_gets.labels(backend=backend).inc()
        self.cache_fail.labels(backend=backend).inc()
