"""A tiny WSGI application for the gunicorn test: counts requests, serves /metrics.

The backend comes from the environment (``PYTHEUS_BACKEND_CLASS`` and
``PYTHEUS_BACKEND_CONFIG``), as a deployment would configure it::

    gunicorn -w 4 --preload tests.redis_backend.wsgi_app:application
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
    return [b"ok\n"]
