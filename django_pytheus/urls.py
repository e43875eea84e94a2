"""URLs of django_pytheus: ``path("", include("django_pytheus.urls"))`` serves /metrics.

Reverse it with ``reverse("django_pytheus:metrics")``.
"""

from __future__ import annotations

from django.urls import path

from django_pytheus import views

app_name = "django_pytheus"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
