"""The ``/metrics`` view: what Prometheus scrapes.

It answers ``GET`` and ``HEAD`` with the registry in the format the scraper asks for
(``Accept``: OpenMetrics or text 0.0.4), gzipped when accepted, filtered by
``?name[]=...``, after :func:`django_pytheus.access.check_access`. When the backend
cannot be read (Redis down) it answers 503 with the reason, never a 500 or zeros.
It is exempt from ``LoginRequiredMiddleware``: scrapers authenticate through
``PYTHEUS["AUTH"]``, not a login session.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from django_pytheus.access import check_access
from django_pytheus.metrics import get_metrics
from django_pytheus.startup import raise_setup_error
from pytheus.exceptions import BackendUnavailableError
from pytheus.exposition import expose
from pytheus.registry import REGISTRY

__all__ = ["metrics"]


@login_not_required
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the metrics of the global registry (see the module docstring)."""
    raise_setup_error()
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    denied = check_access(request)
    if denied is not None:
        return denied
    names = request.GET.getlist("name[]") or None
    orm = get_metrics().orm
    if orm is not None:  # MIGRATION_METRICS: read at scrapes, never at start-up
        orm.refresh_migrations()
    try:
        result = expose(
            REGISTRY,
            accept=request.META.get("HTTP_ACCEPT"),
            accept_encoding=request.META.get("HTTP_ACCEPT_ENCODING"),
            names=names,
        )
    except BackendUnavailableError as exc:
        return HttpResponse(
            f"Metrics are unavailable: {exc}\n",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": "5", "Cache-Control": "no-store"},
        )
    # HEAD: the headers of the GET, Content-Length included, without the body.
    body = b"" if request.method == "HEAD" else result.body
    response = HttpResponse(body, headers=result.headers)
    response["Cache-Control"] = "no-store"
    return response
