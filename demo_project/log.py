"""Logging of the demo: one line, not a traceback, for what happens on purpose or is expected.

The failing view fails on purpose; an unreachable cache is served around (django-redis's
``IGNORE_EXCEPTIONS``), and says so once per operation.
"""

from __future__ import annotations

import logging


class ShortDemoErrors(logging.Filter):
    """Drops the traceback of ``DemoError`` (raised by ``/boom/``), keeping the log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "DemoError":
            record.exc_info = None
            record.exc_text = None
            record.msg = f"{record.msg} (DemoError, raised on purpose)"
        return True


class ShortCacheErrors(logging.Filter):
    """Turns django-redis's "Exception ignored" (an error with a traceback, once per cache
    operation while Redis is down) into a one-line warning that says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            cause = exc.__cause__ or exc
            record.exc_info = None
            record.exc_text = None
            record.msg = "cache unreachable, served without it: %s: %s"
            record.args = (type(cause).__name__, cause)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
