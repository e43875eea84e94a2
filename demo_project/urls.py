"""The demo's URLs: the shop at /, the admin at /admin/, the metrics at /metrics."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("django_pytheus.urls")),  # /metrics
    path("", include("demo_project.shop.urls")),
]

if settings.SERVE_STATIC and not settings.DEBUG:
    # The container runs with DEBUG off and no web server in front, so Django serves the
    # admin's CSS itself (collected at build time). Fine for a demo, not for production,
    # where a web server or WhiteNoise should.
    urlpatterns.append(
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT})
    )
