from __future__ import annotations

from django.conf import settings
from django.urls import include, path

from tests.e2e.compat_site import views

urlpatterns = [
    path("fast/", views.fast, name="fast"),
    path("echo/", views.echo, name="echo"),
    path("page/", views.page, name="page"),
    path("boom/", views.boom, name="boom"),
    path("missing/", views.missing, name="missing"),
    path("notes/", views.notes, name="notes"),
    path("notes/<int:pk>/", views.note, name="note"),
    path("cached/", views.cached, name="cached"),
    path("stream/", views.stream, name="stream"),
    path("bulk/", views.bulk, name="bulk"),
    path("db-error/", views.db_error, name="db-error"),
]
if not settings.DJANGO_PROMETHEUS:
    urlpatterns.append(path("", include("django_pytheus.urls")))
