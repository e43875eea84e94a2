"""The last flush at exit is bounded: a backend that hangs costs at most the exit timeout,
and the log line says what was not sent. (Real processes and a real Redis that does not
answer: tests/celery_app/test_short_lived.py.)"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import pytest

from pytheus import backends
from pytheus.exceptions import ConfigurationError
from pytheus.samples import MetricFamily


class HangingBackend:
    """Takes ``delay`` seconds to close; reports what it holds as unsent."""

    def __init__(self, delay: float, took: bool = True) -> None:
        self.delay = delay
        self.took = took
        self.closed = threading.Event()

    def register_metric(self, metric: Any) -> None: ...

    def collect(
        self,
        metrics: Sequence[Any],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        return iter(())

    def close(self) -> bool:
        time.sleep(self.delay)
        self.closed.set()
        return self.took

    def flush(self) -> bool:
        return self.close()

    def unsent(self) -> dict[str, int]:
        return {"jobs": 3, "latency_seconds": 1}

    def __repr__(self) -> str:
        return "<HangingBackend>"


def test_a_hanging_backend_costs_the_timeout_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = HangingBackend(delay=30)
    start = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="pytheus.backends"):
        assert backends.close_backend(timeout=0.3, backend=backend) is False
    assert time.monotonic() - start < 5
    (record,) = caplog.records
    message = record.getMessage()
    assert "did not finish within 0.3 s" in message
    assert "4 changed series were not sent: jobs (3), latency_seconds (1)" in message
    assert "PYTHEUS_EXIT_TIMEOUT" in message


def test_a_refused_flush_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pytheus.backends"):
        assert backends.close_backend(timeout=5, backend=HangingBackend(0, took=False)) is False
    assert "could not reach the backend" in caplog.records[0].getMessage()


def test_a_quick_backend_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    backend = HangingBackend(delay=0.01)
    with caplog.at_level(logging.ERROR, logger="pytheus.backends"):
        assert backends.close_backend(timeout=5, backend=backend) is True
    assert backend.closed.is_set()
    assert caplog.records == []


def test_flush_on_the_memory_backend_is_a_no_op() -> None:
    assert backends.flush() is True


def test_exit_timeout_is_checked() -> None:
    before = backends._exit.timeout
    try:
        backends.set_exit_timeout(0.5)
        assert backends._exit.timeout == 0.5
        with pytest.raises(ConfigurationError, match="number of seconds >= 0"):
            backends.set_exit_timeout(-1)
        with pytest.raises(ConfigurationError, match="is not a number of seconds"):
            backends._exit_timeout_from_env("soon")
    finally:
        backends._exit.timeout = before
