from __future__ import annotations

from django.urls import include, path

from tests.celery_app import views

urlpatterns = [
    path("enqueue/", views.enqueue),
    path("job/", views.job),
    path("", include("django_pytheus.urls")),
]
