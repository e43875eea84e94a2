"""A URLconf that forgets django_pytheus.urls (system check W003)."""

from __future__ import annotations

from django.urls import path

from tests.django_app.testapp import views

urlpatterns = [path("hello/", views.hello)]
