"""``PytheusMiddleware``: request metrics, natively sync and async.

Put it first in ``MIDDLEWARE`` so that it sees every request and every response,
including those that other middleware answer or fail on::

    MIDDLEWARE = ["django_pytheus.middleware.PytheusMiddleware", *MIDDLEWARE]

One class serves WSGI and ASGI: when the handler it wraps is a coroutine function,
the instance marks itself as one and Django awaits it directly, so under ASGI it adds
no thread hop (no ``MiddlewareMixin``, no ``sync_to_async``).

What is recorded, and when (metric names in :mod:`django_pytheus.metrics`):

* ``view`` is known only once the URL has been resolved, so it is read from
  ``request.resolver_match`` after the response is made; requests that matched no
  pattern (404s from the resolver, requests answered by a middleware before
  resolution) are ``<unmatched>``, never their raw path.
* Requests to ``EXCLUDE_VIEWS`` (by default ``/metrics`` itself) are not recorded.
  Those whose URL takes no arguments are recognised by path before anything is
  measured; the others are known only once resolved, and so do show in the
  in-progress gauge (labelled by method only) while they run.
* Unhandled exceptions, from the view or from any middleware below this one, are
  turned into a 500 by Django's handler; their type is learnt from the
  ``got_request_exception`` signal and counted in ``http_exceptions_total``. An
  exception that escapes the handler (``DEBUG_PROPAGATE_EXCEPTIONS``) is counted
  the same way, with status 500. (The receiver is
  :func:`django_pytheus.context.note_exception`, connected in ``ready()``.)
* Streaming responses are recorded when the server closes them, after the last
  chunk: the duration covers the whole stream, the response size is the sum of the
  chunks that passed (nothing is read ahead or buffered), and queries made while
  streaming count for the request. A ``FileResponse`` serving a file is left
  untouched so that the server can still send it with ``sendfile``: it is recorded
  when the response is returned, with its ``Content-Length`` as the size.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from time import perf_counter
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import NoReverseMatch, reverse

from django_pytheus import metrics as _metrics
from django_pytheus.conf import get_settings
from django_pytheus.context import RequestState, current_request
from django_pytheus.metrics import METHODS
from django_pytheus.startup import raise_setup_error

__all__ = ["PytheusMiddleware"]

# Method label per method, so that the common case costs one dictionary lookup.
_METHOD_LABELS = {m: m for m in METHODS}


def _content_length(value: str | None) -> int | None:
    if value:
        try:
            n = int(value)
        except ValueError:
            return None
        return n if n >= 0 else None
    return None


class _Recording:
    """One request's measurements until they are recorded, exactly once."""

    __slots__ = (
        "middleware",
        "request",
        "method",
        "state",
        "start",
        "progress",
        "done",
        "response",
    )

    def __init__(
        self, middleware: PytheusMiddleware, request: HttpRequest, method: str, start: float
    ) -> None:
        self.middleware = middleware
        self.request = request
        self.method = method
        self.state = RequestState()
        self.start = start
        self.progress = _metrics.get_metrics().in_progress(method)
        self.done = False
        self.response: HttpResponseBase | None = None

    def finish(self, status: str, response_size: int | None) -> None:
        if self.done:
            return
        self.done = True
        duration = perf_counter() - self.start
        self.progress.dec()
        self.middleware._record(self, status, duration, response_size)


class _Stream:
    """What both stream wrappers share: the bytes passed so far and the closing record."""

    __slots__ = ("_chunks", "_recording", "_status", "size")

    def __init__(self, chunks: Any, recording: _Recording, status: str) -> None:
        self._chunks = chunks
        self._recording = recording
        self._status = status
        self.size = 0

    def close(self) -> None:
        self._recording.finish(self._status, self.size)


class _SyncStream(_Stream):
    """Passes a streaming response's chunks through, counting their bytes.

    Its ``close()`` (called by the server through ``response.close()``) records the
    request. Queries made while the stream is read count for the request.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = current_request.set(self._recording.state)
        try:
            chunk: bytes = next(self._chunks)
        finally:
            current_request.reset(token)
        self.size += len(chunk)
        return chunk


class _AsyncStream(_Stream):
    """The asynchronous counterpart of :class:`_SyncStream`."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        token = current_request.set(self._recording.state)
        try:
            chunk: bytes = await anext(self._chunks)
        finally:
            current_request.reset(token)
        self.size += len(chunk)
        return chunk


class PytheusMiddleware:
    """Records request metrics; see the module docstring. Put it first in MIDDLEWARE."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        raise_setup_error()
        settings = get_settings()
        self.get_response = get_response
        self._exclude = settings.exclude_views
        self._skip_paths: frozenset[str] | None = None
        self._async = iscoroutinefunction(get_response)
        # The same handler, typed as each call path uses it.
        self._get = cast(Callable[[HttpRequest], HttpResponseBase], get_response)
        self._aget = cast(Callable[[HttpRequest], Awaitable[HttpResponseBase]], get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        skip = self._skip_paths
        if skip is None:
            skip = self._find_skip_paths()
        if request.path in skip:
            return self._get(request)
        rec = self._start(request)
        token = current_request.set(rec.state)
        response = None
        try:
            response = self._get(request)
            return response
        except BaseException as exc:
            if rec.state.exception is None:
                rec.state.exception = type(exc).__name__
            raise
        finally:
            current_request.reset(token)
            self._finish(rec, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        skip = self._skip_paths
        if skip is None:
            skip = self._find_skip_paths()
        if request.path in skip:
            return await self._aget(request)
        rec = self._start(request)
        token = current_request.set(rec.state)
        response = None
        try:
            response = await self._aget(request)
            return response
        except BaseException as exc:
            if rec.state.exception is None:
                rec.state.exception = type(exc).__name__
            raise
        finally:
            current_request.reset(token)
            self._finish(rec, response)

    # ------------------------------------------------------------------ shared work

    def _find_skip_paths(self) -> frozenset[str]:
        # Excluded views whose URL takes no arguments (the metrics view) are recognised
        # by their path before anything is recorded, so that a scrape does not even
        # show in the in-progress gauge. Others are excluded once resolved. Computed at
        # the first request, when the URLconf and the script prefix are known; reverse()
        # includes that prefix, as request.path does.
        paths = set()
        for name in self._exclude:
            with contextlib.suppress(NoReverseMatch):
                paths.add(reverse(name))
        self._skip_paths = frozenset(paths)
        return self._skip_paths

    def _start(self, request: HttpRequest) -> _Recording:
        method = _METHOD_LABELS.get(request.method or "", "other")
        rec = _Recording(self, request, method, perf_counter())
        rec.progress.inc()
        return rec

    def _finish(self, rec: _Recording, response: HttpResponseBase | None) -> None:
        rec.response = response
        if response is None:  # the exception propagates; Django or the server answers 500
            rec.finish("500", None)
            return
        status = str(response.status_code)
        if response.streaming and getattr(response, "file_to_stream", None) is None:
            # Recorded when the server closes the response (see the module docstring).
            # A streaming response is a StreamingHttpResponse (Django's handler assumes it).
            streaming = cast(StreamingHttpResponse, response)
            stream: _SyncStream | _AsyncStream
            if streaming.is_async:
                stream = _AsyncStream(streaming.streaming_content, rec, status)
            else:
                stream = _SyncStream(streaming.streaming_content, rec, status)
            streaming.streaming_content = stream
            return
        # Content-Length when set (CommonMiddleware sets it), as it costs nothing; a file
        # response without one (size unknown) records no response size.
        size = _content_length(response.get("Content-Length"))
        if size is None and not response.streaming:
            size = len(cast(HttpResponse, response).content)
        rec.finish(status, size)

    def _record(
        self, rec: _Recording, status: str, duration: float, response_size: int | None
    ) -> None:
        m = _metrics.get_metrics()
        series = m.request_series(rec.method, status, rec.request.resolver_match)
        if series is None:  # an excluded view
            return
        series.requests.inc()
        series.duration.observe(duration)
        series.request_size.observe(_content_length(rec.request.META.get("CONTENT_LENGTH")) or 0)
        if response_size is not None:
            series.response_size.observe(response_size)
        state = rec.state
        if series.queries is not None:
            series.queries.observe(state.queries)
        if state.exception is not None:
            m.exceptions_total.labels(
                view=series.requests.labelset["view"], type=state.exception
            ).inc()
        if m.compat is not None:  # PYTHEUS["COMPAT"]: django-prometheus's names as well
            match = rec.request.resolver_match
            m.compat.record_request(
                rec.request,
                rec.response,
                status,
                duration,
                None if match is None else match.view_name,
            )

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Django calls this when a view raises; only the compatibility mode needs it
        (django-prometheus counted every exception a view raised, Http404 included)."""
        m = _metrics.get_metrics()
        if m.compat is not None and m.view_label(request.resolver_match) is not None:
            m.compat.view_exception(request, exception)
