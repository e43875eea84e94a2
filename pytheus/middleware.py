"""HTTP metrics for ASGI applications (Starlette, FastAPI), as pytheus 0.6.1 offered them.

::

    from fastapi import FastAPI
    from pytheus.middleware import PytheusMiddlewareASGI

    app = FastAPI()
    app.add_middleware(PytheusMiddlewareASGI)

Three histograms, labelled by ``method``, ``route`` and ``status_code``:

* ``http_request_duration_seconds``: from the request's arrival to the last byte of the
  response body (a streamed response is timed to its end);
* ``http_request_size_bytes``: the request body, from ``Content-Length`` or, without one,
  the bytes the application read;
* ``http_response_size_bytes``: the response body bytes sent.

``route`` is the route *template* the framework matched (``/items/{item_id}``, with the
prefixes of mounted sub-applications), never the raw path, so that a path with an id in it
cannot create a series per id; requests no route matched are ``<unmatched>``. Methods other
than the standard HTTP ones are ``other``, for the same reason. An exception raised by the
application is recorded with status ``500`` (or the status already sent) and re-raised.

The middleware is plain ASGI: it needs no framework, and reads ``scope["route"]`` where the
framework sets it (Starlette and FastAPI do).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from pytheus.metrics import DEFAULT_BUCKETS, Histogram
from pytheus.registry import REGISTRY, Registry, RegistryProxy

__all__ = ["SIZE_BUCKETS", "PytheusMiddlewareASGI"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bounds of the two size histograms: 10 bytes to 100 MB, a decade apart.
SIZE_BUCKETS: tuple[float, ...] = tuple(10.0**i for i in range(1, 9))

UNMATCHED = "<unmatched>"
_LABELS = ("method", "route", "status_code")
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

# One set of histograms per registry: an application (or a test suite) builds its
# middleware stack more than once, and each would otherwise define the metrics again.
_shared: weakref.WeakKeyDictionary[Any, tuple[Histogram, Histogram, Histogram]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()


def _histograms(
    registry: Registry, duration_buckets: Iterable[float], size_buckets: Iterable[float]
) -> tuple[Histogram, Histogram, Histogram]:
    key: Any = registry._registry if isinstance(registry, RegistryProxy) else registry
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = (
                Histogram(
                    "http_request_duration_seconds",
                    "Duration of HTTP requests in seconds.",
                    required_labels=_LABELS,
                    registry=registry,
                    buckets=duration_buckets,
                ),
                Histogram(
                    "http_request_size_bytes",
                    "Size of HTTP request bodies in bytes.",
                    required_labels=_LABELS,
                    registry=registry,
                    buckets=size_buckets,
                ),
                Histogram(
                    "http_response_size_bytes",
                    "Size of HTTP response bodies in bytes.",
                    required_labels=_LABELS,
                    registry=registry,
                    buckets=size_buckets,
                ),
            )
            _shared[key] = found
        return found


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if length >= 0 else None
    return None


def _path_format(route: Any) -> str | None:
    text = getattr(route, "path_format", None) or getattr(route, "path", None)
    return text if isinstance(text, str) else None


def _find_template(routes: Sequence[Any], target: Any, prefix: str, depth: int = 0) -> str | None:
    for route in routes:
        if route is target:
            own = _path_format(route)
            return prefix + own if own is not None else None
        children = getattr(route, "routes", None)
        if children and depth < 8:
            # A mount's format ends in the "/{path}" it hands on to its own routes.
            mount = (_path_format(route) or "").removesuffix("/{path}")
            found = _find_template(children, target, prefix + mount, depth + 1)
            if found is not None:
                return found
    return None


class PytheusMiddlewareASGI:
    """Record the duration and sizes of every HTTP request an ASGI application serves.

    ``registry`` is where the three histograms are defined (the global one by default); the
    middleware instances of one registry share them. ``duration_buckets`` and
    ``size_buckets`` change their bounds (the first middleware of a registry decides).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: Registry = REGISTRY,
        duration_buckets: Iterable[float] = DEFAULT_BUCKETS,
        size_buckets: Iterable[float] = SIZE_BUCKETS,
    ) -> None:
        self.app = app
        (
            self.http_request_duration_seconds,
            self.http_request_size_bytes,
            self.http_response_size_bytes,
        ) = _histograms(registry, duration_buckets, size_buckets)
        # Route object -> its full template; bounded by the number of routes.
        self._templates: dict[int, tuple[Any, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # The outermost application, read now: a mounted one replaces it in the scope.
        app = scope.get("app")
        status: int | None = None
        received = 0
        sent = 0
        recorded = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        def record(status_code: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            try:
                duration = time.perf_counter() - start
                self._record(scope, app, status_code, duration, received=received, sent=sent)
            except Exception:  # metrics must never break the application
                logger.exception("PytheusMiddlewareASGI could not record a request.")

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                record(status if status is not None else 500)

        try:
            await self.app(scope, counting_receive, observed_send)
        except BaseException:
            record(status if status is not None else 500)
            raise
        # An application may end without a final body message (a client that went away).
        record(status if status is not None else 500)

    def _record(
        self, scope: Scope, app: Any, status: int, duration: float, *, received: int, sent: int
    ) -> None:
        method = scope.get("method", "")
        labels = {
            "method": method if method in _METHODS else "other",
            "route": self._route(scope, app),
            "status_code": str(status),
        }
        self.http_request_duration_seconds.labels(labels).observe(duration)
        declared = _content_length(scope.get("headers", ()))
        size = declared if declared is not None else received
        self.http_request_size_bytes.labels(labels).observe(float(size))
        self.http_response_size_bytes.labels(labels).observe(float(sent))

    def _route(self, scope: Scope, app: Any) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        cached = self._templates.get(id(route))
        if cached is not None and cached[0] is route:
            return cached[1]
        routes = getattr(app, "routes", None) or ()
        template = _find_template(routes, route, "") or _path_format(route) or UNMATCHED
        self._templates[id(route)] = (route, template)
        return template
