"""Per-request state shared by the middleware and the database wrapper.

A context variable rather than a thread-local: under ASGI many requests share one
thread, and ``sync_to_async`` copies the context into the thread that runs the ORM,
so a query made there still finds the request it belongs to.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["RequestState", "current_request", "note_exception"]


class RequestState:
    """What is learnt about a request while it is answered."""

    __slots__ = ("queries", "exception")

    def __init__(self) -> None:
        #: Database queries made so far (counted by ``django_pytheus.db``).
        self.queries = 0
        #: The type name of the unhandled exception that produced a 500, if any.
        self.exception: str | None = None


#: The state of the request being answered, set by ``PytheusMiddleware``.
current_request: ContextVar[RequestState | None] = ContextVar(
    "django_pytheus_request", default=None
)


def note_exception(sender: Any, **kwargs: Any) -> None:
    """``got_request_exception`` receiver: note the type of the unhandled exception.

    Django's handler sends the signal while it turns the exception into a 500, inside
    the middleware's call, so the request's state is current here. Connected in
    ``ready()``.
    """
    state = current_request.get()
    if state is not None and state.exception is None:
        exc = sys.exc_info()[1]
        state.exception = type(exc).__name__ if exc is not None else "Exception"
