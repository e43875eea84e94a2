"""URLs of the hardening tests' Django views: a view with an unbounded label, the admin
(the metrics dashboard) and /metrics."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from tests.hardening import views

urlpatterns = [
    path("users/<int:user_id>/", views.user_page),
    path("hello/", views.hello),
    path("admin/", admin.site.urls),
    path("", include("django_pytheus.urls")),
]
