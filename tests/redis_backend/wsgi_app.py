"""A tiny WSGI application for the gunicorn test: counts requests, serves /metrics.

The backend comes from the environment (``PYTHEUS_BACKEND_CLASS`` and
``PYTHEUS_BACKEND_CONFIG``), as a deployment would configure it::

    gunicorn -w 4 --preload tests.redis_backend.wsgi_app:application

``/hold`` keeps the worker that answers it busy until the test releases it: with
``TEST_HOLD_DIR`` set, it creates ``held-<pid>`` there, then waits until ``release``
exists (60 s at most). A sync worker serves one request at a time, so N requests held
at once are held by N different workers: the test reaches every worker by design, not
by hoping that the kernel spreads its connections.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pytheus.backends import load_backend
from pytheus.exposition import make_wsgi_app
from pytheus.metrics import Counter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

load_backend()  # from the environment
REQUESTS = Counter("app_requests", "Requests served by the app.", required_labels=["path"])
metrics_app = make_wsgi_app()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO") or "/"
    if path == "/metrics":
        return metrics_app(environ, start_response)
    REQUESTS.labels(path=path).inc()
    if path == "/hold":
        hold(Path(os.environ["TEST_HOLD_DIR"]))
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
    return [b"ok\n"]


def hold(directory: Path, timeout: float = 60.0) -> None:
    """Say that this worker holds a request, and keep it until the test releases it."""
    (directory / f"held-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while not (directory / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
