"""Logging of the demo: the failing view fails on purpose, so it gets one line, not a traceback."""

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
