"""Views of the hardening tests (see ``urls.py``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from pytheus.metrics import Counter

#: A business metric labelled by user id: what the cardinality guard is for. Set by the
#: test that uses it (each test has a registry of its own).
USER_VISITS: Counter | None = None


def user_page(request: HttpRequest, user_id: int) -> HttpResponse:
    if USER_VISITS is not None:
        USER_VISITS.labels(user=str(user_id)).inc()
    return HttpResponse(f"user {user_id}".encode())


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello")
