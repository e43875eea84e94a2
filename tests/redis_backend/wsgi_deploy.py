"""A WSGI application whose metrics change definition between two releases, for the
rolling-deploy test (tests/redis_backend/test_deploys.py).

Each worker reads its release ("A" or "B") from the file named by ``RELEASE_FILE`` when
it imports this module, as a worker of a new release would load new code::

    RELEASE_FILE=/tmp/release gunicorn -w 4 tests.redis_backend.wsgi_deploy:application

Release B adds a bucket to the histogram and a label to the counter, as a deploy that
changes ``PYTHEUS["LATENCY_BUCKETS"]`` and the labels of a request counter would.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pytheus.backends import load_backend
from pytheus.exposition import make_wsgi_app
from pytheus.metrics import Counter, Histogram

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RELEASE = Path(os.environ["RELEASE_FILE"]).read_text().strip()
BUCKETS = {"A": [0.1, 1.0], "B": [0.1, 0.5, 1.0]}[RELEASE]
LABELS = {"A": ["view"], "B": ["view", "method"]}[RELEASE]

load_backend()  # from the environment
REQUESTS = Counter("deploy_requests", "Requests served.", required_labels=LABELS)
LATENCY = Histogram("deploy_latency_seconds", "Request latency.", buckets=BUCKETS)
metrics_app = make_wsgi_app()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/metrics":
        return metrics_app(environ, start_response)
    labels = {"view": "page", "method": "GET"}
    REQUESTS.labels({name: labels[name] for name in LABELS}).inc()
    LATENCY.observe(0.3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{RELEASE} {os.getpid()}\n".encode()]
