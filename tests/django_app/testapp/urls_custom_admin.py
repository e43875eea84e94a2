"""A URLconf with a second admin site, on which the metrics dashboard is registered too."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from django_pytheus.admin import MetricAdmin
from django_pytheus.models import Metric

site = admin.AdminSite(name="ops")
site.register(Metric, MetricAdmin)

urlpatterns = [
    path("ops/", site.urls),
    path("admin/", admin.site.urls),
]
