"""The timing helper behind ``time()``, ``track_inprogress()`` and ``count_exceptions()``.

Each of those returns an :class:`Instrument`: a context manager that is also a decorator
for sync and async functions::

    with latency.time():
        handle()


    @latency.time()
    async def handle(): ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

__all__ = ["Instrument"]

F = TypeVar("F", bound=Callable[..., Any])


class Instrument:
    """A context manager that is also a decorator for sync and async functions.

    ``start()`` runs on entry and returns a token; ``stop(token, exc)`` runs on exit, even
    when the block raises. A fresh instance is made per ``time()`` call, so the token of
    a ``with`` block is kept on the instance; decorated calls keep theirs on the stack.
    """

    __slots__ = ("_start", "_stop", "_token")

    def __init__(
        self, start: Callable[[], Any], stop: Callable[[Any, BaseException | None], None]
    ) -> None:
        self._start = start
        self._stop = stop

    def __enter__(self) -> None:
        self._token = self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop(self._token, exc)

    def __call__(self, func: F) -> F:
        start, stop = self._start, self._stop
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    stop(token, exc)
                    raise
                stop(token, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                stop(token, exc)
                raise
            stop(token, None)
            return result

        return cast(F, wrapper)
