"""A middleware that fails on request, to test exceptions raised outside views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest


class MiddlewareError(Exception):
    """Raised by FailingMiddleware."""


class FailingMiddleware:
    """Raises MiddlewareError for requests with ``?fail-in-middleware``.

    Sync and async, like every middleware in the test settings, so that under ASGI
    the whole chain stays asynchronous.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        if "fail-in-middleware" in request.GET:
            raise MiddlewareError("raised by a middleware")
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        if "fail-in-middleware" in request.GET:
            raise MiddlewareError("raised by a middleware")
        return await self.get_response(request)
