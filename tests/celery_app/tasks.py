"""The test site's tasks: one of each outcome."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import shared_task


class TaskFailed(Exception):
    """What the failing task raises (its class name is a label value)."""


@shared_task
def ok(secret: str = "") -> int:
    """Succeeds. Its argument must never show in a label."""
    return len(secret)


@shared_task
def fail() -> None:
    """Raises."""
    raise TaskFailed("as asked")


@shared_task(bind=True, max_retries=1)
def retry_once(self: Any) -> str:
    """Asks to be retried once, then succeeds."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "done"


@shared_task
def slow(seconds: float = 0.3) -> None:
    """Takes a while."""
    time.sleep(seconds)


@shared_task
def block(flag: str) -> int:
    """Writes its pid to the file ``flag``, then waits for ever (to be killed there)."""
    Path(flag).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()
